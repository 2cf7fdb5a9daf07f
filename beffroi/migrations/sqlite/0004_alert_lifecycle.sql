-- The alert lifecycle: who holds an alert, when an operator last acted on it, and the audit trail
-- of operators' actions (acknowledge, start, resolve, close, comment). A comment keeps the status:
-- its entry has from_status = to_status. Times are UTC text, as in the other tables.
ALTER TABLE alerts ADD COLUMN owner TEXT;
ALTER TABLE alerts ADD COLUMN updated_at TEXT;

CREATE TABLE alert_audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    TEXT NOT NULL REFERENCES alerts (alert_id),
    at          TEXT NOT NULL,
    operator    TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    comment     TEXT
);

CREATE INDEX alert_audit_alert ON alert_audit (alert_id, seq);
-- open alerts of a site: the map's zone colours and the sites list's counts
CREATE INDEX alerts_site_status ON alerts (site_id, status);
