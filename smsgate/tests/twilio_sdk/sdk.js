// Drives smsgate through the official `twilio` package from npm, as an application would.
//
// Called by smsgate/tests/twilio_compat.rs: `node sdk.js COMMAND JSON`; prints one JSON document.
// The only smsgate-specific lines are the ones an application changes: the credentials, the base
// URL (`client.api.baseUrl`) and, to name the end user, a custom `httpClient` adding
// `X-Smsgate-End-User-IP`.
"use strict";

const twilio = require("twilio");

class EndUserRequestClient extends twilio.RequestClient {
  constructor(endUserIp) {
    super();
    this.endUserIp = endUserIp;
  }

  request(opts) {
    opts.headers = { ...opts.headers, "X-Smsgate-End-User-IP": this.endUserIp };
    return super.request(opts);
  }
}

function client(args) {
  const options = args.end_user_ip ? { httpClient: new EndUserRequestClient(args.end_user_ip) } : {};
  const c = twilio(args.sid, args.token, options);
  c.api.baseUrl = args.base_url;
  return c;
}

function refused(e) {
  if (!(e instanceof twilio.RestException)) throw e;
  return { ok: false, exception: e.constructor.name, code: e.code, status: e.status, message: e.message };
}

async function send(args) {
  try {
    const params = { to: args.to, body: args.body };
    if (args.from) params.from = args.from;
    if (args.status_callback) params.statusCallback = args.status_callback;
    const m = await client(args).messages.create(params);
    return {
      ok: true, sid: m.sid, status: m.status, num_segments: m.numSegments,
      date_created: m.dateCreated ? m.dateCreated.toISOString() : null,
      account_sid: m.accountSid, to: m.to,
    };
  } catch (e) {
    return refused(e);
  }
}

async function burst(args) {
  return Promise.all(args.to.slice(0, args.n).map((to) => send({ ...args, to })));
}

async function fetch(args) {
  try {
    const m = await client(args).messages(args.message_sid).fetch();
    return {
      ok: true, sid: m.sid, status: m.status, num_segments: m.numSegments,
      date_created: m.dateCreated ? m.dateCreated.toISOString() : null,
      date_updated: m.dateUpdated ? m.dateUpdated.toISOString() : null,
    };
  } catch (e) {
    return refused(e);
  }
}

async function validate(args) {
  return { valid: twilio.validateRequest(args.token, args.signature, args.url, args.params) };
}

const COMMANDS = { send, burst, fetch, validate };

COMMANDS[process.argv[2]](JSON.parse(process.argv[3]))
  .then((out) => console.log(JSON.stringify(out)))
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
