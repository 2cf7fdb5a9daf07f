-- Alerts, keyed on their derived alert_id. source_ids is a JSON array.
CREATE TABLE alerts (
    alert_id    TEXT PRIMARY KEY,
    site_id     TEXT NOT NULL,
    zone_id     TEXT,
    device_id   TEXT,
    rule        TEXT NOT NULL,
    category    TEXT NOT NULL,
    severity    TEXT NOT NULL,
    status      TEXT NOT NULL,
    raised_at   TEXT NOT NULL,
    title       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    value       REAL,
    source_ids  TEXT NOT NULL,
    stored_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX alerts_site_raised ON alerts (site_id, raised_at DESC, alert_id DESC);
CREATE INDEX alerts_status ON alerts (status);
