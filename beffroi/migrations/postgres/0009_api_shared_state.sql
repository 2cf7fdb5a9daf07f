-- What several API processes on one store share about requests: failed sign-ins (per key: a user
-- name or a client address; rows older than the limit's window are deleted) and Idempotency-Key
-- claims with their first answer (status NULL: still being answered).
CREATE TABLE sign_in_failures (
    key text COLLATE "C" NOT NULL,
    at  timestamptz      NOT NULL
);

CREATE INDEX sign_in_failures_key ON sign_in_failures (key, at);
CREATE INDEX sign_in_failures_at ON sign_in_failures (at);

CREATE TABLE request_keys (
    owner       text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    fingerprint text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    status      integer,
    body        bytea,
    PRIMARY KEY (owner, key)
);

CREATE INDEX request_keys_expiry ON request_keys (expires_at);
