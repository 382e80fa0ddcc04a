#!/usr/bin/env python3
"""Add rows `trellis verify` must read to a Trellis SQLite database, for measuring its memory.

Usage: verify_load.py DB.sqlite [--evidence 40] [--users 80000] [--results 3] [--findings 220000]

Adds, to the newest completed run: EVIDENCE evidence rows, each an IAM-like listing of USERS
users (~7.4 MB of JSON at 80,000; its SHA-256 recorded, so it verifies), and copies of
RESULTS of its results, each with FINDINGS findings. Every row is stored unsealed
(`row_hash` empty), as rows from outside Trellis are: the next connection (any `trellis`
command) chains them, so `trellis verify` then walks them as stored rows. The run's manifest
does not list them, so verify names the run (result and evidence rows added after it was
signed: two problems, on top of those of the database); what it reads is what is measured. Use a copy: this is for
benchmarks only. Measured in BENCHMARKS.md (`verify` in pages) with:

    bench/verify_load.py copy.db && TRELLIS__DATABASE_URL=sqlite://copy.db trellis user list
    /usr/bin/time -v trellis verify
"""
import argparse
import hashlib
import json
import sqlite3

p = argparse.ArgumentParser()
p.add_argument("db")
p.add_argument("--evidence", type=int, default=40)
p.add_argument("--users", type=int, default=80000)
p.add_argument("--results", type=int, default=3)
p.add_argument("--findings", type=int, default=220000)
a = p.parse_args()

db = sqlite3.connect(a.db)
(run_id,) = db.execute(
    "SELECT id FROM runs WHERE state = 'completed' ORDER BY started_at DESC LIMIT 1"
).fetchone()
for i in range(a.evidence):
    content = json.dumps({"users": [
        {"name": f"user-{i}-{k:07d}", "arn": f"arn:aws:iam::123456789012:user/u{k:07d}", "mfa": k % 3 == 0}
        for k in range(a.users)
    ]})
    db.execute(
        "INSERT INTO evidence (run_id, probe, params, collected_at, sha256, content, error, "
        "row_hash, chain_hash) VALUES (?, 'aws.iam.users', '{}', '2026-12-04T12:00:00+00:00', ?, ?, "
        "NULL, '', '')",
        (run_id, hashlib.sha256(content.encode()).hexdigest(), content),
    )
cols = ("run_id, control_id, status, summary, evaluated_at, definition_sha256, checks, "
        "evidence_ids, finding_counts, exceptions")
for row in db.execute(
    f"SELECT {cols} FROM control_results WHERE run_id = ? LIMIT ?", (run_id, a.results)
).fetchall():
    rid = db.execute(
        f"INSERT INTO control_results ({cols}, row_hash, chain_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '')",
        row,
    ).lastrowid
    db.executemany(
        "INSERT INTO findings (control_result_id, run_id, control_id, check_index, resource, "
        "status, message, actual) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ((rid, row[0], row[1], 0, f"arn:aws:iam::123456789012:user/u{k:07d}",
          "fail" if k % 7 == 0 else "pass",
          f"user u{k:07d} has console access without MFA" if k % 7 == 0 else f"user u{k:07d} has MFA",
          json.dumps({"mfa": k % 7 != 0, "console": True, "last_used": "2026-11-30T10:00:00Z"}))
         for k in range(a.findings)),
    )
db.commit()
(n_ev, size), (n_f,) = (
    db.execute("SELECT COUNT(*), SUM(LENGTH(content)) FROM evidence").fetchone(),
    db.execute("SELECT COUNT(*) FROM findings").fetchone(),
)
print(f"evidence rows: {n_ev} ({size:,} bytes of content); findings: {n_f:,}")
