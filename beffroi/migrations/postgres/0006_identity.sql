-- Identity and audit: local users (argon2 hashes, a role, their sites; '*' for every site) and the
-- append-only audit log (sign-ins, alert actions, procedure steps and changes, user changes,
-- exports). The log refuses UPDATE and DELETE.
CREATE TABLE users (
    name          text COLLATE "C" PRIMARY KEY,
    role          text        NOT NULL,
    sites         text[]      NOT NULL,
    password_hash text,
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL
);

CREATE TABLE audit_log (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL,
    kind    text        NOT NULL,
    actor   text        NOT NULL,
    site_id text,
    target  text,
    client  text,
    detail  text        NOT NULL
);

CREATE INDEX audit_log_site ON audit_log (site_id, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
