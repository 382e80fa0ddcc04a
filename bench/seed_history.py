#!/usr/bin/env python3
"""Seed a Trellis database (SQLite or PostgreSQL) with a realistic history, for benchmarks.

Usage: seed_history.py DB [--days 90] [--runs-per-day 4] [--seed 20261201]

DB is a SQLite file, or a PostgreSQL URL (`postgres://…` or `postgresql://…`), which is
read and written with `psql` (it must be on PATH; the rows go in with `COPY`, in one
transaction). It must already hold the schema and exactly one real run, as written by
`trellis check` (the benchmark scripts do that first). The newest run is taken as "now": for every control
it stored a result for, this adds one scheduled run every 24/runs-per-day hours for the
`--days` UTC days before it (plus two days more, so the page's window starts in a known
state), all strictly before the real run, so the real run stays the newest result and the page's
current statuses do not change.

Rows are written exactly as the application writes them (see src/store/mod.rs):
- timestamps are RFC 3339 text in UTC with `+00:00`, their fraction as chrono writes it
  (none, 3 or 6 digits: `2026-12-01T22:02:52.358503+00:00`), which sorts chronologically as
  text on SQLite (PostgreSQL parses the same text into `timestamptz`);
- runs.id is a hyphenated UUID v7 (its time part is the run's start);
- a run's results are all evaluated at the run's start time (as `trellis check` does);
- checks, evidence_ids and exceptions are JSON arrays (`[]`: no evidence is stored for
  the seeded rows, so no findings either), finding_counts is the JSON object of every status
  (sorted keys, as serde writes a BTreeMap) with zero counts, matching the absent findings.

Statuses are mostly the control's real current status, with deterministic (fixed seed)
realistic variation:
- a currently failing control started failing some days ago (passing before), or failed
  all along for a few of them;
- a currently waived control was failing for a few days before its exception was filed;
- some currently passing controls had a failure streak of 1-6 days in the past, and some had
  a single errored run (a probe timeout), which shows as "not verified" for that day;
- controls that currently error (their source is not configured) errored all along.

The rows carry no digests: like rows from before the hash chains, they are sealed (chained)
at the application's next connection, which also brings the history roll-up (`control_days`)
up to date for them.

Only the Python standard library is used (sqlite3; `psql` through subprocess for PostgreSQL).
"""

import argparse
import csv
import datetime as dt
import io
import os
import random
import re
import sqlite3
import subprocess
import sys
import uuid

STATUSES = ["error", "fail", "not_applicable", "pass", "waived"]  # sorted, as serde writes
ZERO_COUNTS = "{" + ",".join(f'"{s}":0' for s in STATUSES) + "}"
TIMEOUT_SUMMARY = "could not collect evidence: timed out after 60s"


def parse_ts(text: str) -> dt.datetime:
    """Parses the app's RFC 3339 text (any fraction length) into an aware UTC datetime."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise ValueError(f"unexpected timestamp format: {text!r}")
    base = dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=dt.timezone.utc)
    frac = (m.group(2) or "").ljust(6, "0")[:6]
    if m.group(3) not in ("Z", "+00:00"):
        raise ValueError(f"timestamp not in UTC: {text!r}")
    return base + dt.timedelta(microseconds=int(frac or 0))


def fmt_ts(t: dt.datetime) -> str:
    """RFC 3339 UTC with +00:00, exactly as the app stores a (microsecond) timestamp on SQLite.

    chrono (`SecondsFormat::AutoSi`) writes as few fractional digits as the value needs among
    none, 3 and 6 (9 for nanoseconds, which the store truncates away)."""
    t = t.astimezone(dt.timezone.utc)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    us = t.microsecond
    if us == 0:
        frac = ""
    elif us % 1000 == 0:
        frac = f".{us // 1000:03d}"
    else:
        frac = f".{us:06d}"
    return f"{base}{frac}+00:00"


def uuid7(t: dt.datetime, rng: random.Random) -> str:
    """A UUID v7 (RFC 9562) for time `t`, with random bits from `rng` (deterministic)."""
    ms = int(t.timestamp() * 1000)
    rand_a = rng.getrandbits(12)
    rand_b = rng.getrandbits(62)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rand_a << 64
    value |= 0b10 << 62
    value |= rand_b
    return str(uuid.UUID(int=value))


def micro(rng: random.Random) -> int:
    """Random microseconds (0 excluded, so a start is never exactly on the second)."""
    return rng.randrange(1, 1_000_000)


def counts_of(summary: str):
    """(passed, total) from a summary like '31 of 33 pass, 2 fail', else None."""
    m = re.match(r"(\d+) of (\d+) pass", summary)
    return (int(m.group(1)), int(m.group(2))) if m else None


def pass_summary(real_summary: str) -> str:
    c = counts_of(real_summary)
    return f"{c[1]} of {c[1]} pass" if c and c[1] > 0 else "1 of 1 pass"


def fail_summary(real_summary: str, rng: random.Random) -> str:
    c = counts_of(real_summary)
    total = c[1] if c and c[1] > 0 else 1
    failing = min(total, rng.choice([1, 1, 1, 2]))
    return f"{total - failing} of {total} pass, {failing} fail"


RUN_COLUMNS = (
    "id, trigger, state, started_at, finished_at, controls_total, controls_done, error"
)
RESULT_COLUMNS = (
    "run_id, control_id, status, summary, evaluated_at, definition_sha256, checks, "
    "evidence_ids, finding_counts, exceptions"
)


class SqliteDb:
    """A SQLite file, through the sqlite3 module."""

    def __init__(self, path: str):
        self.name = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA foreign_keys = ON")

    def query(self, sql: str, params=()):
        return self.db.execute(sql, params).fetchall()

    def insert(self, run_rows, result_rows):
        with self.db:
            self.db.executemany(
                f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", run_rows
            )
            self.db.executemany(
                f"INSERT INTO control_results ({RESULT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                result_rows,
            )
        self.db.close()


class PostgresDb:
    """A PostgreSQL database, through `psql` (CSV out, `COPY … FROM STDIN` in)."""

    def __init__(self, url: str):
        self.name = re.sub(r"//[^@/]*@", "//…@", url)  # no password in messages
        self.url = url

    def psql(self, *args, stdin=None) -> str:
        done = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *args, self.url],
            input=stdin, capture_output=True, text=True,
            env={**os.environ, "PGTZ": "UTC"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed on {self.name}: {done.stderr.strip()}")
        return done.stdout

    def query(self, sql: str, params=()):
        # Parameters are inlined as SQL literals (only run ids and numbers here).
        for p in params:
            literal = str(p) if isinstance(p, int) else "'" + str(p).replace("'", "''") + "'"
            sql = sql.replace("?", literal, 1)
        out = self.psql("--csv", "-c", sql)
        rows = list(csv.reader(io.StringIO(out)))[1:]  # without the header
        return [tuple(row) for row in rows]

    @staticmethod
    def copy_text(rows) -> str:
        """Rows in COPY's text format (tab-separated, backslash escapes, \\N for NULL)."""
        def field(v):
            if v is None:
                return "\\N"
            v = str(v)
            return (v.replace("\\", "\\\\").replace("\t", "\\t")
                    .replace("\n", "\\n").replace("\r", "\\r"))
        return "".join("\t".join(field(v) for v in row) + "\n" for row in rows)

    def insert(self, run_rows, result_rows):
        script = (
            "BEGIN;\n"
            f"COPY runs ({RUN_COLUMNS}) FROM STDIN;\n{self.copy_text(run_rows)}\\.\n"
            f"COPY control_results ({RESULT_COLUMNS}) FROM STDIN;\n"
            f"{self.copy_text(result_rows)}\\.\n"
            "COMMIT;\n"
        )
        self.psql("-f", "-", stdin=script)


def open_db(target: str):
    if target.startswith(("postgres://", "postgresql://")):
        return PostgresDb(target)
    return SqliteDb(target)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "db", help="SQLite database file, or postgres:// URL, written by `trellis check`"
    )
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs-per-day", type=int, default=4)
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()
    if args.runs_per_day < 1 or 24 % args.runs_per_day:
        ap.error("--runs-per-day must divide 24")
    rng = random.Random(args.seed)

    db = open_db(args.db)
    # The start as stored on SQLite; PostgreSQL says it in the same RFC 3339 form.
    started_text = (
        "started_at" if isinstance(db, SqliteDb)
        else "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
    )
    newest = db.query(
        f"SELECT id, {started_text} FROM runs ORDER BY started_at DESC LIMIT 1"
    )
    if not newest:
        print("error: no run in the database: run `trellis check` first", file=sys.stderr)
        return 2
    real_run, real_started = newest[0][0], parse_ts(newest[0][1])
    already = int(db.query("SELECT COUNT(*) FROM runs")[0][0])
    if already > 1:
        print(f"error: {db.name} already has {already} runs: seed a fresh database", file=sys.stderr)
        return 2
    real = db.query(
        "SELECT control_id, status, summary, definition_sha256 FROM control_results "
        "WHERE run_id = ? ORDER BY control_id",
        (real_run,),
    )
    if not real:
        print(f"error: run {real_run} stored no results", file=sys.stderr)
        return 2

    # Scheduled run times: every 24/runs-per-day hours from midnight UTC, `days` (+2) days back,
    # strictly before the real run (at least a minute, so the real run stays the newest).
    step = dt.timedelta(hours=24 // args.runs_per_day)
    today = real_started.replace(hour=0, minute=0, second=0, microsecond=0)
    t = today - dt.timedelta(days=args.days + 2)
    times = []
    while t < real_started - dt.timedelta(minutes=1):
        # Cron fires on the hour; the run starts a little after.
        times.append(t + dt.timedelta(seconds=rng.randrange(0, 3), microseconds=micro(rng)))
        t += step
    n = len(times)
    day_of = [(x - today).days for x in times]  # 0 = today, -1 = yesterday, …

    # One status (and summary) per control per seeded run.
    timelines = {}
    for control_id, status, summary, _sha in real:
        cur = (status, summary)
        tl = [cur] * n
        if status == "fail":
            if rng.random() < 0.2:
                pass  # failing all along
            else:
                since_day = -rng.randint(2, 40)
                ok = (pass_summary(summary) if counts_of(summary) else "1 of 1 pass")
                tl = [("pass", ok) if day_of[i] < since_day else cur for i in range(n)]
        elif status == "waived":
            filed = -rng.randint(10, 30)  # the exception was filed that day…
            failing_from = filed - rng.randint(2, 5)  # …a few days after the failure
            c = counts_of(summary)
            total = c[1] if c else 1
            fail = ("fail", f"{total - 1} of {total} pass, 1 fail")
            ok = ("pass", f"{total} of {total} pass")
            tl = [
                ok if day_of[i] < failing_from else fail if day_of[i] < filed else cur
                for i in range(n)
            ]
        elif status == "pass":
            if rng.random() < 0.25:
                length = rng.randint(1, 6)  # days
                start = -rng.randint(length + 2, args.days - 1)
                fail = ("fail", fail_summary(summary, rng))
                tl = [fail if start <= day_of[i] < start + length else cur for i in range(n)]
            if rng.random() < 0.15:
                i = rng.randrange(0, n - args.runs_per_day * 2)
                tl[i] = ("error", TIMEOUT_SUMMARY)
        timelines[control_id] = tl

    run_rows, result_rows = [], []
    for i, started in enumerate(times):
        run_id = uuid7(started, rng)
        finished = started + dt.timedelta(seconds=rng.randrange(0, 4), microseconds=micro(rng))
        run_rows.append(
            (run_id, "schedule", "completed", fmt_ts(started), fmt_ts(finished), len(real), len(real),
             None)
        )
        for control_id, _status, _summary, sha in real:
            status, summary = timelines[control_id][i]
            result_rows.append(
                (run_id, control_id, status, summary, fmt_ts(started), sha, "[]", "[]", ZERO_COUNTS, "[]")
            )

    db.insert(run_rows, result_rows)
    changed = sum(1 for tl in timelines.values() if len(set(s for s, _ in tl)) > 1)
    print(
        f"seeded {len(run_rows)} runs ({fmt_ts(times[0])[:10]} .. {fmt_ts(times[-1])[:16]}Z) and "
        f"{len(result_rows)} results for {len(real)} controls; {changed} controls have a "
        f"varying history (seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
