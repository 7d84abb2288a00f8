-- Retention (issue 15): the archive expires by kind, and expiry is a DROP of whole daily
-- partitions, never a row-by-row DELETE.
--
--   sms_events            PARTITION BY LIST (outcome)
--     sms_events_accepted   PARTITION BY RANGE (at)  → sms_events_accepted_YYYYMMDD (one UTC day)
--     sms_events_rejected   PARTITION BY RANGE (at)  → sms_events_rejected_YYYYMMDD
--     sms_events_blocked    PARTITION BY RANGE (at)  → sms_events_blocked_YYYYMMDD
--   sms_status            PARTITION BY RANGE (at)    → sms_status_YYYYMMDD  (kind `delivery`)
--
-- A unique key of a partitioned table must hold its partition keys, so the event id alone is
-- no longer the key: it is (id, outcome, at) and (id, at). Redelivery stays harmless: the same
-- stream entry always carries the same id, outcome and decision time, so ON CONFLICT on the
-- wider key skips exactly what ON CONFLICT (id) skipped (ids are UUID v7 minted once per
-- decision, so two different events never share one).
--
-- The existing archive is moved over in this migration's one transaction: the old table is
-- renamed, every row is copied into its day's partition, the counts are compared, and only
-- then is the old table dropped. A failure anywhere rolls the whole move back.

-- The day partitions, created on demand (the archiver, ahead of time and for each batch's days)
-- and by this migration for the days an existing archive holds.
CREATE OR REPLACE FUNCTION sms_archive_partition_parent(kind text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind
        WHEN 'accepted' THEN 'sms_events_accepted'
        WHEN 'rejected' THEN 'sms_events_rejected'
        WHEN 'blocked' THEN 'sms_events_blocked'
        WHEN 'delivery' THEN 'sms_status'
    END
$$;

CREATE OR REPLACE FUNCTION sms_archive_ensure_day(kind text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    parent text := sms_archive_partition_parent(kind);
    child text;
BEGIN
    IF parent IS NULL THEN
        RAISE EXCEPTION 'unknown archive kind %', kind;
    END IF;
    child := parent || '_' || to_char(day, 'YYYYMMDD');
    IF to_regclass(child) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   child, parent,
                   (day::timestamp AT TIME ZONE 'UTC'),
                   ((day + 1)::timestamp AT TIME ZONE 'UTC'));
    RETURN true;
END
$$;

-- What expiry has dropped: rows of `kind` decided before `retained_from` are no longer held.
-- Replay, audit and history read it to say so instead of returning silently less.
CREATE TABLE IF NOT EXISTS sms_retention (
    kind           text        PRIMARY KEY
                   CHECK (kind IN ('accepted', 'rejected', 'blocked', 'delivery')),
    retained_from  timestamptz NOT NULL,
    dropped_at     timestamptz NOT NULL DEFAULT now()
);

-- Decisions.
ALTER TABLE sms_events RENAME TO sms_events_unpartitioned;
ALTER INDEX sms_events_pkey RENAME TO sms_events_unpartitioned_pkey;
DROP INDEX sms_events_at, sms_events_to_at, sms_events_ip_at, sms_events_stream_order;

CREATE TABLE sms_events (
    id              uuid        NOT NULL,
    stream_id       text        NOT NULL,
    partition       smallint    NOT NULL,
    at              timestamptz NOT NULL,
    at_us           bigint      NOT NULL,
    ip              inet        NOT NULL,
    "to"            text        NOT NULL,
    "from"          text,
    -- In the form `message_stored` names (SMSGATE_STORE_MESSAGE: full, redacted, preview or
    -- none); NULL for events recorded before smsgate said, which hold the body as sent.
    message         text        NOT NULL,
    segments        integer     NOT NULL,
    outcome         text        NOT NULL
                    CONSTRAINT sms_events_outcome_check
                    CHECK (outcome IN ('accepted', 'rejected', 'blocked')),
    violated        text[]      NOT NULL DEFAULT '{}',
    retry_after     bigint      NOT NULL,
    policy          text        NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now(),
    shadow_violated text[]      NOT NULL DEFAULT '{}',
    reason          text,
    country         text,
    client          text,
    message_stored  text,
    PRIMARY KEY (id, outcome, at)
) PARTITION BY LIST (outcome);

CREATE TABLE sms_events_accepted PARTITION OF sms_events
    FOR VALUES IN ('accepted') PARTITION BY RANGE (at);
CREATE TABLE sms_events_rejected PARTITION OF sms_events
    FOR VALUES IN ('rejected') PARTITION BY RANGE (at);
CREATE TABLE sms_events_blocked PARTITION OF sms_events
    FOR VALUES IN ('blocked') PARTITION BY RANGE (at);

-- The same indexes as before (see 0001 and 0002), now on every partition.
CREATE INDEX sms_events_at ON sms_events USING brin (at);
CREATE INDEX sms_events_to_at ON sms_events ("to", at);
CREATE INDEX sms_events_ip_at ON sms_events (ip, at);
CREATE INDEX sms_events_stream_order ON sms_events (
    partition,
    (split_part(stream_id, '-', 1)::bigint),
    (split_part(stream_id, '-', 2)::bigint)
);

SELECT sms_archive_ensure_day(outcome, day)
FROM (SELECT DISTINCT outcome, (at AT TIME ZONE 'UTC')::date AS day
      FROM sms_events_unpartitioned) AS days;

INSERT INTO sms_events
    (id, stream_id, partition, at, at_us, ip, "to", "from", message, segments, outcome,
     violated, retry_after, policy, archived_at, shadow_violated, reason, country, client)
SELECT id, stream_id, partition, at, at_us, ip, "to", "from", message, segments, outcome,
       violated, retry_after, policy, archived_at, shadow_violated, reason, country, client
FROM sms_events_unpartitioned;


-- Delivery status changes (kind `delivery`).
ALTER TABLE sms_status RENAME TO sms_status_unpartitioned;
ALTER INDEX sms_status_pkey RENAME TO sms_status_unpartitioned_pkey;
DROP INDEX sms_status_message;

CREATE TABLE sms_status (
    id          uuid        NOT NULL,
    message_id  uuid        NOT NULL,
    stream_id   text        NOT NULL,
    partition   int2        NOT NULL,
    at          timestamptz NOT NULL,
    "to"        text        NOT NULL,
    status      text        NOT NULL,
    provider    text        NOT NULL,
    provider_id text,
    attempt     int4        NOT NULL,
    detail      text,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX sms_status_message ON sms_status (message_id, at);

SELECT sms_archive_ensure_day('delivery', day)
FROM (SELECT DISTINCT (at AT TIME ZONE 'UTC')::date AS day FROM sms_status_unpartitioned) AS days;

INSERT INTO sms_status SELECT * FROM sms_status_unpartitioned;

-- Every row of both old tables is in the new ones, or the whole migration rolls back.
DO $$
DECLARE
    moved record;
BEGIN
    FOR moved IN
        SELECT 'sms_events' AS name,
               (SELECT count(*) FROM sms_events_unpartitioned) AS before,
               (SELECT count(*) FROM sms_events) AS after
        UNION ALL
        SELECT 'sms_status',
               (SELECT count(*) FROM sms_status_unpartitioned),
               (SELECT count(*) FROM sms_status)
    LOOP
        IF moved.before <> moved.after THEN
            RAISE EXCEPTION '%: % rows before the move, % after', moved.name, moved.before, moved.after;
        END IF;
    END LOOP;
END
$$;

DROP TABLE sms_events_unpartitioned;
DROP TABLE sms_status_unpartitioned;
