"""Drives smsgate through the official `twilio` package from PyPI, as an application would.

Called by smsgate/tests/twilio_compat.rs: `python sdk.py COMMAND JSON`; prints one JSON document.
The only smsgate-specific lines are the ones an application changes: the credentials, the base
URL (`client.api.base_url`) and, to name the end user, a custom `http_client` adding
`X-Smsgate-End-User-IP`.
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client


class EndUserHttpClient(TwilioHttpClient):
    """Adds the end user's IP to every request, so smsgate's per-person rule applies."""

    def __init__(self, end_user_ip):
        super().__init__()
        self.end_user_ip = end_user_ip

    def request(self, method, url, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        headers = dict(headers or {})
        headers["X-Smsgate-End-User-IP"] = self.end_user_ip
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


def client(args):
    http = EndUserHttpClient(args["end_user_ip"]) if args.get("end_user_ip") else None
    c = Client(args["sid"], args["token"], http_client=http)
    c.api.base_url = args["base_url"]
    return c


def refused(e):
    return {"ok": False, "exception": type(e).__name__, "code": e.code, "status": e.status,
            "message": e.msg}


def send(args):
    try:
        kwargs = {"to": args["to"], "body": args["body"]}
        if args.get("from"):
            kwargs["from_"] = args["from"]
        if args.get("status_callback"):
            kwargs["status_callback"] = args["status_callback"]
        m = client(args).messages.create(**kwargs)
        return {"ok": True, "sid": m.sid, "status": m.status, "num_segments": m.num_segments,
                "date_created": m.date_created.isoformat() if m.date_created else None,
                "account_sid": m.account_sid, "to": m.to}
    except TwilioRestException as e:
        return refused(e)


def burst(args):
    with ThreadPoolExecutor(max_workers=args["n"]) as pool:
        return list(pool.map(lambda i: send({**args, "to": args["to"][i]}), range(args["n"])))


def fetch(args):
    try:
        m = client(args).messages(args["message_sid"]).fetch()
        return {"ok": True, "sid": m.sid, "status": m.status, "num_segments": m.num_segments,
                "date_created": m.date_created.isoformat() if m.date_created else None,
                "date_updated": m.date_updated.isoformat() if m.date_updated else None}
    except TwilioRestException as e:
        return refused(e)


def validate(args):
    validator = RequestValidator(args["token"])
    return {"valid": validator.validate(args["url"], args["params"], args["signature"])}


COMMANDS = {"send": send, "burst": burst, "fetch": fetch, "validate": validate}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))))
