-- Readings, the time series, partitioned by time.
--
-- Where the TimescaleDB extension can be enabled, `readings` is a hypertable with daily chunks.
-- Otherwise it uses native range partitioning on ts: one partition per UTC day, named
-- readings_pYYYY_MM_DD, created ahead by readings_ensure_partitions() (called by migrate() and by
-- writes), plus a DEFAULT partition so that a timestamp outside every partition never fails a write.
--
-- The primary key is (message_id, ts): every unique key of a partitioned table must contain the
-- partition key. A message id is a hash of the payload, which holds the timestamp, so one message
-- still gives exactly one row.
DO $migration$
DECLARE
    v_columns CONSTANT text := $cols$
        message_id  text             NOT NULL,
        device_id   text             NOT NULL,
        site_id     text             NOT NULL,
        zone_id     text,
        stream_id   text             NOT NULL,
        model       text             NOT NULL,
        ts          timestamptz      NOT NULL,
        received_at timestamptz      NOT NULL,
        value       jsonb            NOT NULL,
        lat         double precision,
        lon         double precision,
        tags        text[]           NOT NULL,
        PRIMARY KEY (message_id, ts)
    $cols$;
    v_timescale_schema name;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb SCHEMA public;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'timescaledb is available but cannot be enabled (%): native partitioning', SQLERRM;
        END;
    END IF;
    SELECT n.nspname INTO v_timescale_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'timescaledb';

    IF v_timescale_schema IS NOT NULL THEN
        EXECUTE format('CREATE TABLE readings (%s)', v_columns);
        EXECUTE format(
            'SELECT %I.create_hypertable(%L::regclass, %L, chunk_time_interval => interval %L)',
            v_timescale_schema, 'readings', 'ts', '1 day');
    ELSE
        EXECUTE format('CREATE TABLE readings (%s) PARTITION BY RANGE (ts)', v_columns);
        CREATE TABLE readings_default PARTITION OF readings DEFAULT;
    END IF;
END
$migration$;

CREATE INDEX readings_site_ts ON readings (site_id, ts);
CREATE INDEX readings_device_ts ON readings (device_id, ts);

-- Create the daily partitions of the given UTC days that do not exist yet, moving any of their rows
-- out of the DEFAULT partition first. Returns how many partitions it created. A no-op on a hypertable.
CREATE FUNCTION readings_ensure_partitions(p_days date[])
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_day     date;
    v_name    text;
    v_lo      timestamptz;
    v_hi      timestamptz;
    v_created integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'readings'::regclass) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.readings_ensure_partitions'));
    FOR v_day IN SELECT DISTINCT d FROM unnest(p_days) AS d WHERE d IS NOT NULL ORDER BY d LOOP
        v_name := 'readings_p' || to_char(v_day, 'YYYY_MM_DD');
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM pg_class
            WHERE relname = v_name AND relnamespace = current_schema()::regnamespace);
        v_lo := v_day::timestamp AT TIME ZONE 'UTC';
        v_hi := (v_day + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I (LIKE readings INCLUDING DEFAULTS INCLUDING STORAGE)', v_name);
        -- lets ATTACH skip its validation scan
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (ts >= %L AND ts < %L)',
                       v_name, v_name || '_range', v_lo, v_hi);
        EXECUTE format(
            'WITH moved AS (DELETE FROM readings_default WHERE ts >= %L AND ts < %L RETURNING *) '
            'INSERT INTO %I SELECT * FROM moved', v_lo, v_hi, v_name);
        EXECUTE format('ALTER TABLE readings ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       v_name, v_lo, v_hi);
        v_created := v_created + 1;
    END LOOP;
    RETURN v_created;
END
$fn$;
