-- Readings. Times are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ', which sorts like the instant.
-- value is a JSON object (json_extract(value, '$.pm25')), tags a JSON array.
-- Unique on (message_id, ts), as in PostgreSQL (see beffroi/store.py).
CREATE TABLE readings (
    message_id  TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    site_id     TEXT NOT NULL,
    zone_id     TEXT,
    stream_id   TEXT NOT NULL,
    model       TEXT NOT NULL,
    ts          TEXT NOT NULL,
    received_at TEXT NOT NULL,
    value       TEXT NOT NULL,
    lat         REAL,
    lon         REAL,
    tags        TEXT NOT NULL,
    PRIMARY KEY (message_id, ts)
);

CREATE INDEX readings_site_ts ON readings (site_id, ts);
CREATE INDEX readings_device_ts ON readings (device_id, ts);
