-- Policy as rules (issue 13): requests refused outright are `blocked` with a reason; shadow
-- rules record what they would have refused; the client network the rules counted and the
-- destination country travel with the event so audits re-derive multi-rule decisions.
ALTER TABLE sms_events DROP CONSTRAINT IF EXISTS sms_events_outcome_check;
ALTER TABLE sms_events ADD CONSTRAINT sms_events_outcome_check
    CHECK (outcome IN ('accepted', 'rejected', 'blocked'));
ALTER TABLE sms_events ADD COLUMN IF NOT EXISTS shadow_violated text[] NOT NULL DEFAULT '{}';
ALTER TABLE sms_events ADD COLUMN IF NOT EXISTS reason text;
ALTER TABLE sms_events ADD COLUMN IF NOT EXISTS country text;
ALTER TABLE sms_events ADD COLUMN IF NOT EXISTS client text;
