-- One row per decision recorded on the event stream. The event UUID (v7, minted by ingest) is
-- the primary key, which is what makes redelivery harmless: inserts are ON CONFLICT DO NOTHING.
CREATE TABLE IF NOT EXISTS sms_events (
    id          uuid        PRIMARY KEY,
    -- Where the event stood on the stream, for cross-checks with the hot tail and dead letters.
    stream_id   text        NOT NULL,
    partition   smallint    NOT NULL,
    -- Decision time (Redis TIME). `at` serves range queries; `at_us` keeps the exact integer
    -- the limiter decided with, so audits can replay the policy bit for bit.
    at          timestamptz NOT NULL,
    at_us       bigint      NOT NULL,
    ip          inet        NOT NULL,
    "to"        text        NOT NULL,
    "from"      text,
    message     text        NOT NULL,
    segments    integer     NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    violated    text[]      NOT NULL DEFAULT '{}',
    retry_after bigint      NOT NULL,
    -- The policy in force for this decision, e.g. `3/1m,10/1d`.
    policy      text        NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);

-- History buckets scan by time: events arrive in time order, so a BRIN index serves ranges at
-- almost no insert cost. Audits look up one number or one client IP over a time range.
CREATE INDEX IF NOT EXISTS sms_events_at ON sms_events USING brin (at);
CREATE INDEX IF NOT EXISTS sms_events_to_at ON sms_events ("to", at);
CREATE INDEX IF NOT EXISTS sms_events_ip_at ON sms_events (ip, at);
