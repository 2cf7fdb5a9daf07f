-- Escalation of alerts nobody acknowledged: how many times an alert was escalated, when last, and
-- from which severity (an alert is escalated at most once per severity level; critical stays
-- critical).
ALTER TABLE alerts
    ADD COLUMN escalations integer NOT NULL DEFAULT 0,
    ADD COLUMN escalated_at timestamptz,
    ADD COLUMN escalated_from text;
