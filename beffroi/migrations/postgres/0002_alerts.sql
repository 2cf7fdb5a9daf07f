-- Alerts, keyed on their derived alert_id. Enum fields are stored as their text values.
CREATE TABLE alerts (
    alert_id    text             PRIMARY KEY,
    site_id     text             NOT NULL,
    zone_id     text,
    device_id   text,
    rule        text             NOT NULL,
    category    text             NOT NULL,
    severity    text             NOT NULL,
    status      text             NOT NULL,
    raised_at   timestamptz      NOT NULL,
    title       text             NOT NULL,
    detail      text             NOT NULL,
    value       double precision,
    source_ids  text[]           NOT NULL,
    stored_at   timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX alerts_site_raised ON alerts (site_id, raised_at DESC, alert_id DESC);
CREATE INDEX alerts_status ON alerts (status);
