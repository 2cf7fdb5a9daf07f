-- Rejected messages with their exact original bytes.
CREATE TABLE dead_letters (
    dead_letter_id text        PRIMARY KEY,
    source         text        NOT NULL,
    reason         text        NOT NULL,
    detail         text        NOT NULL,
    received_at    timestamptz NOT NULL,
    payload        bytea       NOT NULL,
    stage          text        NOT NULL
);

CREATE INDEX dead_letters_received ON dead_letters (received_at DESC, dead_letter_id DESC);
CREATE INDEX dead_letters_reason ON dead_letters (reason);
