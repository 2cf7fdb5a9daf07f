-- Escalation of alerts nobody acknowledged: how many times an alert was escalated, when last, and
-- from which severity (an alert is escalated at most once per severity level; critical stays
-- critical). Times are UTC text, as in the other tables.
ALTER TABLE alerts ADD COLUMN escalations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN escalated_at TEXT;
ALTER TABLE alerts ADD COLUMN escalated_from TEXT;
