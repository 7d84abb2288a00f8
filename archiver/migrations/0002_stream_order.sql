-- Replay reads each partition in stream order. Stream ids are `<ms>-<seq>` text, which does not
-- sort numerically (`9-0` > `10-0`), so the order is an index on the two numbers. An expression
-- index leaves the table (and the archiver's insert) unchanged; readers order by the same
-- expressions so the planner walks the index instead of sorting.
CREATE INDEX IF NOT EXISTS sms_events_stream_order ON sms_events (
    partition,
    (split_part(stream_id, '-', 1)::bigint),
    (split_part(stream_id, '-', 2)::bigint)
);
