-- What a replay needs: the video pipeline's zone states and the detectors' scores as they were
-- consumed, and each alert's provenance (hashes of the settings and of the model weights behind it).
-- Times are UTC text, as in the other tables; state and streams are JSON text.
ALTER TABLE alerts ADD COLUMN settings_hash TEXT;
ALTER TABLE alerts ADD COLUMN weights_hash TEXT;

CREATE TABLE zone_states (
    site_id TEXT NOT NULL,
    zone_id TEXT NOT NULL,
    ts      TEXT NOT NULL,
    state   TEXT NOT NULL,
    PRIMARY KEY (site_id, zone_id, ts)
);

CREATE INDEX zone_states_ts ON zone_states (ts);

CREATE TABLE scores (
    site_id TEXT NOT NULL,
    tick    TEXT NOT NULL,
    streams TEXT NOT NULL,
    PRIMARY KEY (site_id, tick)
);

CREATE INDEX scores_tick ON scores (tick);
