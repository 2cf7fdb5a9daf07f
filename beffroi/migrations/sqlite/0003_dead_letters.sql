-- Rejected messages with their exact original bytes.
CREATE TABLE dead_letters (
    dead_letter_id TEXT PRIMARY KEY,
    source         TEXT NOT NULL,
    reason         TEXT NOT NULL,
    detail         TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    payload        BLOB NOT NULL,
    stage          TEXT NOT NULL
);

CREATE INDEX dead_letters_received ON dead_letters (received_at DESC, dead_letter_id DESC);
CREATE INDEX dead_letters_reason ON dead_letters (reason);
