#!/usr/bin/env python3
"""Seed a Trellis SQLite database with a realistic history, for benchmarks.

Usage: seed_history.py DB [--days 90] [--runs-per-day 4] [--seed 20261201]

DB must already hold the schema and at least one real run, as written by `trellis check`
(the benchmark script does that first). The newest run is taken as "now": for every control
it stored a result for, this adds one scheduled run every 24/runs-per-day hours for the
`--days` UTC days before it (plus two days more, so the page's window starts in a known
state), all strictly before the real run, so the real run stays the newest result and the page's
current statuses do not change.

Rows are written exactly as the application writes them (see src/store/mod.rs):
- timestamps are RFC 3339 text in UTC with microseconds and `+00:00`
  (`2026-12-01T22:02:52.358503+00:00`), which sorts chronologically as text;
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

Only the Python standard library is used (sqlite3).
"""

import argparse
import datetime as dt
import random
import re
import sqlite3
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
    """RFC 3339 UTC with 6 fractional digits and +00:00, as the app stores timestamps.

    (chrono writes 3, 6 or 9 digits depending on the value: callers pick microseconds that
    are not a multiple of 1000, so 6 digits is exactly what the app would write.)"""
    assert t.microsecond % 1000 != 0, t
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


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
    """Random microseconds that chrono would print with exactly 6 digits."""
    while True:
        us = rng.randrange(1, 1_000_000)
        if us % 1000:
            return us


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", help="SQLite database file written by `trellis check`")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--runs-per-day", type=int, default=4)
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()
    if args.runs_per_day < 1 or 24 % args.runs_per_day:
        ap.error("--runs-per-day must divide 24")
    rng = random.Random(args.seed)

    db = sqlite3.connect(args.db)
    db.execute("PRAGMA foreign_keys = ON")
    newest = db.execute(
        "SELECT id, started_at FROM runs ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    if newest is None:
        print("error: no run in the database: run `trellis check` first", file=sys.stderr)
        return 2
    real_run, real_started = newest[0], parse_ts(newest[1])
    (already,) = db.execute("SELECT COUNT(*) FROM runs").fetchone()
    if already > 1:
        print(f"error: {args.db} already has {already} runs: seed a fresh database", file=sys.stderr)
        return 2
    real = db.execute(
        "SELECT control_id, status, summary, definition_sha256 FROM control_results "
        "WHERE run_id = ? ORDER BY control_id",
        (real_run,),
    ).fetchall()
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
            (run_id, "schedule", "completed", fmt_ts(started), fmt_ts(finished), len(real), len(real))
        )
        for control_id, _status, _summary, sha in real:
            status, summary = timelines[control_id][i]
            result_rows.append(
                (run_id, control_id, status, summary, fmt_ts(started), sha, "[]", "[]", ZERO_COUNTS, "[]")
            )

    with db:
        db.executemany(
            "INSERT INTO runs (id, trigger, state, started_at, finished_at, controls_total, "
            "controls_done, error) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            run_rows,
        )
        db.executemany(
            "INSERT INTO control_results (run_id, control_id, status, summary, evaluated_at, "
            "definition_sha256, checks, evidence_ids, finding_counts, exceptions) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            result_rows,
        )
    db.close()
    changed = sum(1 for tl in timelines.values() if len(set(s for s, _ in tl)) > 1)
    print(
        f"seeded {len(run_rows)} runs ({fmt_ts(times[0])[:10]} .. {fmt_ts(times[-1])[:16]}Z) and "
        f"{len(result_rows)} results for {len(real)} controls; {changed} controls have a "
        f"varying history (seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
