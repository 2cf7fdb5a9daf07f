-- What a replay needs: the video pipeline's zone states and the detectors' scores as they were
-- consumed, and each alert's provenance (hashes of the settings and of the model weights behind it).
-- state and streams are JSON documents kept as text (written and read back as they are).
ALTER TABLE alerts ADD COLUMN settings_hash text;
ALTER TABLE alerts ADD COLUMN weights_hash text;

CREATE TABLE zone_states (
    site_id text NOT NULL,
    zone_id text NOT NULL,
    ts      timestamptz NOT NULL,
    state   text NOT NULL,
    PRIMARY KEY (site_id, zone_id, ts)
);

CREATE INDEX zone_states_ts ON zone_states (ts);

CREATE TABLE scores (
    site_id text NOT NULL,
    tick    timestamptz NOT NULL,
    streams text NOT NULL,
    PRIMARY KEY (site_id, tick)
);

CREATE INDEX scores_tick ON scores (tick);
