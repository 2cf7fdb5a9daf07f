-- Identity and audit: local users (argon2 hashes, a role, their sites as a JSON list; '*' for every
-- site) and the append-only audit log. The log refuses UPDATE and DELETE. Times are UTC text.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT    NOT NULL,
    sites         TEXT    NOT NULL,
    password_hash TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL
);

CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    actor   TEXT NOT NULL,
    site_id TEXT,
    target  TEXT,
    client  TEXT,
    detail  TEXT NOT NULL
);

CREATE INDEX audit_log_site ON audit_log (site_id, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
