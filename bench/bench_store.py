"""Store write throughput on the real PostgreSQL, against a raw COPY of the same rows.

    source ~/.local/state/beffroi/stack.env
    python -m bench.bench_store [--rows 200000] [--batch 5000]

Prints rows/s for `PostgresStore.write_readings` (fresh rows, then the same rows again, as an
at-least-once redelivery would send them), for its idempotent path alone (staging table + INSERT
... ON CONFLICT, what a redelivered batch takes), for the executemany + pipeline alternative, and for the
baseline: the same rows as PostgreSQL text (what `psql \\copy` reads from a file) streamed by a bare
`COPY ... FROM STDIN` into a plain table without keys or indexes; then into one with the key and
indexes of `readings`, to show what the indexes cost and what idempotency adds on top. Each run
uses throw-away schemas.
"""

from __future__ import annotations

import argparse
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from beffroi.events import LatLon, Reading, derived_id
from beffroi.postgres_store import PostgresDialect, PostgresStore
from beffroi.settings import PostgresSettings
from beffroi.sql_store import READINGS, reading_row
from tower.settings import load_settings

_READING_COLUMNS = READINGS.column_list


def _reading_row(r: Reading) -> tuple[object, ...]:
    return reading_row(r, PostgresDialect.time, PostgresDialect.text_list)


def readings(count: int, *, tag: str) -> list[Reading]:
    """`count` readings from 2,000 sensors over the last hours, as the bridge would produce them."""
    start = datetime.now(UTC) - timedelta(hours=3)
    return [
        Reading(
            message_id=derived_id("bench", tag, str(i)),
            device_id=f"aq-{i % 2000:04d}",
            site_id=f"site-{i % 4}",
            zone_id=f"zone-{i % 40}",
            stream_id=f"urn:lo:nsid:beffroi:aq-{i % 2000:04d}!air",
            model="beffroi.air_quality.v1",
            ts=start + timedelta(milliseconds=50 * i),
            received_at=start + timedelta(milliseconds=50 * i + 120),
            value={"pm25": 12.5 + i % 97, "pm10": 20.0 + i % 53, "co": 0.1 * (i % 11)},
            location=LatLon(lat=48.9245 + (i % 100) * 1e-5, lon=2.3602),
            tags=(f"site:site-{i % 4}", f"zone:zone-{i % 40}"),
        )
        for i in range(count)
    ]


@contextmanager
def throwaway_schema(base: PostgresSettings) -> Iterator[PostgresSettings]:
    settings = base.model_copy(update={"db_schema": f"bench_{uuid.uuid4().hex[:10]}"})
    try:
        yield settings
    finally:
        with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.db_schema))
            )


def batches(rows: Sequence[Reading], size: int) -> list[Sequence[Reading]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bench_store(
    base: PostgresSettings, rows: list[Reading], batch: int, *, copy_direct: bool = True
) -> tuple[float, float, bytes, str]:
    """Seconds for fresh rows and for the same rows again; the rows as COPY text; the partitioning."""
    with throwaway_schema(base) as settings, PostgresStore(settings, copy_direct=copy_direct) as store:
        store.migrate()
        chunks = batches(rows, batch)
        fresh = timed(lambda: [store.write_readings(c) for c in chunks])
        again = timed(lambda: [store.write_readings(c) for c in chunks])
        assert store.count_readings() == len(rows), "the store lost or doubled rows"
        with psycopg.connect(settings.conninfo(), options=f"-c search_path={settings.db_schema}") as conn:
            text = io.BytesIO()
            with conn.cursor().copy(f"COPY (SELECT {_READING_COLUMNS} FROM readings) TO STDOUT") as copy:
                for data in copy:
                    text.write(data)
            native = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'readings'::regclass)"
            ).fetchone()
    kind = "native daily partitions" if native and native[0] else "TimescaleDB hypertable"
    return fresh, again, text.getvalue(), kind


def bench_executemany(base: PostgresSettings, rows: list[Reading], batch: int) -> float:
    """The alternative write path: INSERT ... ON CONFLICT DO NOTHING by executemany (pipelined)."""
    values = ", ".join([*["%s"] * 8, "%s::jsonb", "%s", "%s", "%s"])
    query = f"INSERT INTO readings ({_READING_COLUMNS}) VALUES ({values}) ON CONFLICT DO NOTHING"
    with throwaway_schema(base) as settings, PostgresStore(settings) as store:
        store.migrate()
        with psycopg.connect(settings.conninfo(), options=f"-c search_path={settings.db_schema}") as conn:

            def write() -> None:
                for chunk in batches(rows, batch):
                    prepared = sorted((_reading_row(r) for r in chunk), key=lambda row: (row[0], row[6]))
                    with conn.transaction(), conn.cursor() as cur:
                        cur.executemany(query, prepared)

            seconds = timed(write)
    return seconds


def bench_raw_copy(base: PostgresSettings, text: bytes, *, indexed: bool) -> float:
    """Baseline: the rows as COPY text (what `psql \\copy` sends) into a plain table, with no key and
    no index, or with the key and indexes of `readings` (but no partitions and no duplicate check)."""
    with throwaway_schema(base) as settings, psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(settings.db_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.db_schema)))
        conn.execute(
            'CREATE TABLE readings_plain (message_id text COLLATE "C", device_id text COLLATE "C",'
            ' site_id text COLLATE "C", zone_id text, stream_id text, model text, ts timestamptz,'
            " received_at timestamptz, value jsonb, lat double precision, lon double precision, tags text[])"
        )
        if indexed:
            conn.execute("ALTER TABLE readings_plain ADD PRIMARY KEY (message_id, ts)")
            conn.execute("CREATE INDEX ON readings_plain (site_id, ts)")
            conn.execute("CREATE INDEX ON readings_plain (device_id, ts)")

        def copy_all() -> None:
            with (
                conn.transaction(),
                conn.cursor().copy(f"COPY readings_plain ({_READING_COLUMNS}) FROM STDIN") as cp,
            ):
                view = memoryview(text)
                for i in range(0, len(view), 1 << 20):
                    cp.write(view[i : i + (1 << 20)])

        return timed(copy_all)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_store", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure is its best round")
    args = parser.parse_args(argv)

    pg = load_settings(mode="stack").postgres
    where = f"postgresql://{pg.host}:{pg.port}/{pg.dbname}"
    print(f"store bench: {args.rows:,} readings in batches of {args.batch:,}, best of {args.repeat}, {where}")
    rows = readings(args.rows, tag="fresh")
    other = readings(args.rows, tag="executemany")
    third = readings(args.rows, tag="idempotent")

    # the variants take turns, `--repeat` times, and each keeps its best time: the machine's other
    # load then weighs on all of them alike
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(seconds, best.get(name, seconds))

    kind = ""
    for _ in range(args.repeat):
        fresh, again, text, kind = bench_store(pg, rows, args.batch)
        keep("fresh", fresh)
        keep("again", again)
        keep("idempotent", bench_store(pg, third, args.batch, copy_direct=False)[0])
        keep("executemany", bench_executemany(pg, other, args.batch))
        keep("raw", bench_raw_copy(pg, text, indexed=False))
        keep("raw_indexed", bench_raw_copy(pg, text, indexed=True))
    fresh, again, idempotent = best["fresh"], best["again"], best["idempotent"]
    executemany, raw, raw_indexed = best["executemany"], best["raw"], best["raw_indexed"]

    lines = [
        ("PostgresStore.write_readings, new rows", fresh),
        ("PostgresStore.write_readings, the same rows again", again),
        ("its idempotent path alone (staging + ON CONFLICT), new rows", idempotent),
        ("executemany + pipeline (alternative), new rows", executemany),
        ("baseline: raw COPY into a plain table", raw),
        ("raw COPY into a plain table with readings' indexes", raw_indexed),
    ]
    print(f"  readings table: {kind}  [load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}]")
    for label, seconds in lines:
        print(f"  {label:<60} {args.rows / seconds:>10,.0f} rows/s  ({seconds:.2f} s)")
    print(f"  ratio write_readings / raw COPY (rows/s): {raw / fresh:.2f}")
    print(f"  ratio write_readings / raw COPY with indexes (rows/s): {raw_indexed / fresh:.2f}")
    print(f"  ratio write_readings / executemany (rows/s): {executemany / fresh:.2f}")
    print(f"  ratio write_readings / its idempotent path alone (rows/s): {idempotent / fresh:.2f}")
    print(f"  target: 100,000 rows/s; reached {args.rows / fresh / 100_000:.2f} of it")


if __name__ == "__main__":
    main()
