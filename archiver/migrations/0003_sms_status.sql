-- Delivery status changes (limiter::delivery::StatusEvent), one row per event on the stream.
-- The event's own UUID is the key, so a redelivered entry is inserted once.
CREATE TABLE IF NOT EXISTS sms_status (
    id          uuid PRIMARY KEY,
    message_id  uuid        NOT NULL,
    stream_id   text        NOT NULL,
    partition   int2        NOT NULL,
    at          timestamptz NOT NULL,
    "to"        text        NOT NULL,
    status      text        NOT NULL,
    provider    text        NOT NULL,
    provider_id text,
    attempt     int4        NOT NULL,
    detail      text
);
CREATE INDEX IF NOT EXISTS sms_status_message ON sms_status (message_id, at);
