-- The alert lifecycle: who holds an alert, when an operator last acted on it, and the audit trail
-- of operators' actions (acknowledge, start, resolve, close, comment). A comment keeps the status:
-- its entry has from_status = to_status. Entries of one alert are written under its row lock, so
-- their seq order is the order they happened in.
ALTER TABLE alerts
    ADD COLUMN owner text,
    ADD COLUMN updated_at timestamptz;

CREATE TABLE alert_audit (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    text COLLATE "C" NOT NULL REFERENCES alerts (alert_id),
    at          timestamptz      NOT NULL,
    operator    text             NOT NULL,
    action      text             NOT NULL,
    from_status text             NOT NULL,
    to_status   text             NOT NULL,
    comment     text
);

CREATE INDEX alert_audit_alert ON alert_audit (alert_id, seq);
-- open alerts of a site: the map's zone colours and the sites list's counts
CREATE INDEX alerts_site_status ON alerts (site_id, status);
