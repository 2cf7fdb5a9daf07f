-- Ids and the keys we filter on compare byte-wise (collation "C"), whatever the database's locale:
-- orderings that break ties by id are then the same as SQLite's, and key comparisons are cheaper.
ALTER TABLE readings
    ALTER COLUMN message_id TYPE text COLLATE "C",
    ALTER COLUMN site_id TYPE text COLLATE "C",
    ALTER COLUMN device_id TYPE text COLLATE "C";

ALTER TABLE alerts
    ALTER COLUMN alert_id TYPE text COLLATE "C",
    ALTER COLUMN site_id TYPE text COLLATE "C";

ALTER TABLE dead_letters
    ALTER COLUMN dead_letter_id TYPE text COLLATE "C";
