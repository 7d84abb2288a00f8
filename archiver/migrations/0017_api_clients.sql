-- The Twilio-compatible API (issue 17): the API client (account SID) that sent a request, and
-- whether its IP is only the client's own address (no end user's IP was named, so rules keyed on
-- `ip` did not judge it). Audits need both to re-derive those decisions.
ALTER TABLE sms_events ADD COLUMN IF NOT EXISTS api_client text;
ALTER TABLE sms_events ADD COLUMN IF NOT EXISTS ip_unattributed boolean NOT NULL DEFAULT false;
