#!/usr/bin/env python3
"""Scale benchmark: a synthetic estate, built here, checked by `trellis check`.

Usage:
  bench/scale.py [--factors 1,2,4] [--users 2500] [--groups 1250] [--repos 500] [--members 250]
                 [--trellis target/release/trellis] [--keep] [--skip-github]
                 [--serve N [--serve-with TRELLIS]...]

The sizes given are the *base*; each factor multiplies them, so the default factors 1, 2, 4 end
at the issue's estate (10,000 IAM users — a third with console passwords, a fifth with access
keys —, 5,000 security groups with one rule each, 2,000 repositories with mixed protection and
1,000 organisation members) and the slope of time against size can be read off.

For each factor, in a fresh temp directory, it:
1. starts a moto server (`.venv/bin/moto_server`, installed by `scripts/test`) and creates the
   IAM users, login profiles, access keys and security groups with boto3 (threads; ~1 min for
   the full estate);
2. starts `bench/github_standin.py` (a GitHub stand-in serving GitHub's published response
   shapes, with ETags and per-route request counts), unless `--skip-github`;
3. writes an HR roster with one person per IAM user (joined by `aws_username`, members by
   `github_login`, a few leavers) and a config using the bundled controls, policies and
   registers, SQLite in the temp dir;
4. runs, each under GNU time (`/usr/bin/time -v`, for the peak resident set):
   - `check --no-store --format json` (output streamed to a file; findings counted from it),
   - `check` (stored, the first run: nothing cached),
   - `check` again (stored, steady state: GitHub answers unchanged listings with 304),
   - `verify` (the chains and signatures of the stored runs);
5. prints wall time, peak RSS, AWS and GitHub requests (GitHub: total, 304s, and the requests
   that count against the primary rate limit) and findings by status, per run.

With `--serve N` it runs `trellis serve` instead, N times on fresh databases (each binary of
`--serve-with`, interleaved), until the startup run (every control, through the run queue) is
closed, and prints its wall time, peak RSS (VmHWM), units, AWS and GitHub requests.

Nothing here reaches the internet: moto and the stand-in listen on loopback, and the AWS SDK
gets dummy credentials. Python standard library plus boto3 (moto's own dependency, in .venv).
"""

import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PY = os.path.join(REPO, ".venv", "bin", "python")
MOTO = os.path.join(REPO, ".venv", "bin", "moto_server")
STANDIN = os.path.join(REPO, "bench", "github_standin.py")
ORG = "acme"  # the stand-in's organisation
TOKEN_ENV = "TRELLIS_BENCH_GITHUB_TOKEN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.time() > deadline:
                raise SystemExit(f"error: {url} did not come up in {seconds:.0f}s")
            time.sleep(0.2)


def moto_requests(log_path: str) -> int:
    """Requests moto served so far: one werkzeug access-log line each."""
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if '" 200 ' in line or re.search(r'" [2-5]\d\d ', line))


def github_stats(port: int):
    if port is None:
        return None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as r:
        return json.load(r)


def seed_aws(url: str, users: int, groups: int) -> None:
    """IAM users (a third with a console password, a fifth with an access key) and security
    groups with one ingress rule each, written through moto's API with boto3."""
    try:
        import boto3  # noqa: PLC0415 (only the seeding needs it)
    except ImportError:
        raise SystemExit("error: boto3 missing: run this with .venv/bin/python (scripts/test installs it)")
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    iam = session.client("iam", endpoint_url=url)
    ec2 = session.client("ec2", endpoint_url=url)
    iam.update_account_password_policy(MinimumPasswordLength=14, RequireSymbols=True)
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]

    def user(i: int) -> None:
        name = f"user{i:05d}"
        iam.create_user(UserName=name, Tags=[{"Key": "team", "Value": f"team{i % 40}"}])
        if i % 3 == 0:
            iam.create_login_profile(UserName=name, Password="Correct-Horse-Battery-9")
        if i % 5 == 0:
            iam.create_access_key(UserName=name)

    def group(i: int) -> None:
        gid = ec2.create_security_group(
            GroupName=f"sg-bench-{i:05d}", Description="bench", VpcId=vpc
        )["GroupId"]
        # Mostly internal ranges; every 50th opens SSH to the world (a finding).
        cidr = "0.0.0.0/0" if i % 50 == 0 else f"10.{i % 250}.0.0/16"
        port = 22 if i % 50 == 0 else 443
        ec2.authorize_security_group_ingress(
            GroupId=gid,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
            ],
        )

    started = time.time()
    # moto's security groups are not safe to create concurrently (it iterates a dict that
    # another request grows): they are made one at a time, beside the users in parallel.
    def groups_in_order() -> None:
        for i in range(groups):
            group(i)

    with cf.ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(groups_in_order)] + [pool.submit(user, i) for i in range(users)]
        for f in futures:
            f.result()
    print(f"  seeded moto: {users} users, {groups} security groups in {time.time() - started:.0f}s", flush=True)


def write_roster(path: str, users: int, members: int) -> None:
    header = (
        "employee_id,name,email,github_login,aws_username,department,title,manager_email,"
        "start_date,end_date,background_check_date,nda_signed_date,security_training_date,"
        "policy_ack_date,last_review_date\n"
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(header)
        for i in range(users):
            login = f"member{i:05d}" if i < members else ""
            # One in 200 left last month (their accounts still exist: Removal of Access fails).
            end = "2026-11-01" if i % 200 == 7 else ""
            f.write(
                f"E{i:05d},Person {i},p{i}@sprout.example,{login},user{i:05d},Engineering,"
                f"Engineer,,2024-01-15,{end},2024-01-10,2024-01-15,2026-06-01,2026-06-01,2026-09-01\n"
            )


def write_config(tmp: str, moto_url: str, gh_port, roster: str) -> str:
    github = ""
    if gh_port is not None:
        github = (
            f"  github:\n    api_url: http://127.0.0.1:{gh_port}\n    orgs: [{ORG}]\n"
            f"    token_env: {TOKEN_ENV}\n"
        )
    cfg = f"""database_url: "sqlite://{tmp}/trellis.db?mode=rwc"
controls_dir: {REPO}/controls
exceptions_dir: {REPO}/examples/exceptions
signing:
  key_file: {tmp}/signing.key
limits:
  probe_timeout: 60s
  concurrency: 4
sources:
  hr:
    path: {roster}
    columns: {{}}
  policies:
    path: {REPO}/examples/policies
  registers:
    path: {REPO}/examples/registers
    systems: [google-workspace]
  aws:
    accounts:
      - name: bench
        environment: production
        regions: [us-east-1]
        endpoint_url: {moto_url}
{github}"""
    path = os.path.join(tmp, "trellis.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(cfg)
    return path


def timed(cmd, env, stdout_path: str):
    """Runs cmd under GNU time; returns (exit code, wall seconds, peak RSS MiB)."""
    time_out = stdout_path + ".time"
    with open(stdout_path, "wb") as out, open(stdout_path + ".err", "wb") as err:
        started = time.time()
        rc = subprocess.call(["/usr/bin/time", "-v", "-o", time_out] + cmd, stdout=out, stderr=err, env=env)
        wall = time.time() - started
    rss_kb = 0
    with open(time_out, encoding="utf-8") as f:
        for line in f:
            if "Maximum resident set size" in line:
                rss_kb = int(line.rsplit(":", 1)[1])
    return rc, wall, rss_kb / 1024


def findings_of(json_path: str):
    """(controls by status, findings by status) from `check --format json` output."""
    controls, findings = {}, {}
    with open(json_path, encoding="utf-8") as f:
        report = json.load(f)
    for c in report.get("controls", []):
        controls[c["status"]] = controls.get(c["status"], 0) + 1
        for fd in c.get("findings", []):
            findings[fd["status"]] = findings.get(fd["status"], 0) + 1
    return controls, findings


def stored_findings(db: str):
    import sqlite3  # noqa: PLC0415

    con = sqlite3.connect(db)
    try:
        run = con.execute("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
        rows = con.execute(
            "SELECT f.status, COUNT(*) FROM findings f JOIN control_results r ON r.id = f.control_result_id "
            "WHERE r.run_id = ? GROUP BY f.status",
            (run,),
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def one_factor(args, factor: float, trellis: str):
    users, groups = int(args.users * factor), int(args.groups * factor)
    repos, members = int(args.repos * factor), int(args.members * factor)
    tmp = tempfile.mkdtemp(prefix=f"trellis-scale-{factor:g}x-")
    print(f"\n== {factor:g}x: {users} users, {groups} security groups, {repos} repositories, "
          f"{members} members ({tmp})", flush=True)
    procs = []
    try:
        moto_port = free_port()
        moto_log = os.path.join(tmp, "moto.log")
        env_moto = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true", MOTO_EC2_LOAD_DEFAULT_AMIS="false")
        procs.append(subprocess.Popen(
            [MOTO, "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=subprocess.DEVNULL, stderr=open(moto_log, "wb"), env=env_moto,
        ))
        moto_url = f"http://127.0.0.1:{moto_port}"
        wait_http(moto_url + "/moto-api/data.json")
        seed_aws(moto_url, users, groups)

        gh_port = None
        if not args.skip_github:
            if not os.path.exists(STANDIN):
                raise SystemExit(f"error: {STANDIN} missing (or pass --skip-github)")
            gh_port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, STANDIN, "--repos", str(repos), "--members", str(members),
                 "--port", str(gh_port)],
                stdout=open(os.path.join(tmp, "github.log"), "wb"), stderr=subprocess.STDOUT,
            ))
            wait_http(f"http://127.0.0.1:{gh_port}/_stats")

        roster = os.path.join(tmp, "roster.csv")
        write_roster(roster, users, members)
        config = write_config(tmp, moto_url, gh_port, roster)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_EC2_METADATA_DISABLED="true", RUST_LOG="warn")
        env[TOKEN_ENV] = "ghp_benchbenchbenchbenchbenchbench0000"
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)

        if args.hold:
            print(f"  holding: config {config}; stop with `kill {os.getpid()}`", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return None

        if args.serve:
            return serve_runs(args, tmp, config, env, moto_log, gh_port)

        rows = []
        runs = [
            ("check --no-store --format json", ["check", "--no-store", "--format", "json"]),
            ("check (stored, first)", ["check"]),
            ("check (stored, again)", ["check"]),
        ]
        for label, sub in runs:
            aws_before = moto_requests(moto_log)
            gh_before = github_stats(gh_port)
            out = os.path.join(tmp, re.sub(r"\W+", "_", label) + ".out")
            rc, wall, rss = timed([trellis, "--config", config] + sub, env, out)
            if rc not in (0, 1):
                with open(out + ".err", encoding="utf-8", errors="replace") as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"error: `{label}` exited {rc}:\n{tail}")
            aws = moto_requests(moto_log) - aws_before
            gh = None
            if gh_port is not None:
                after = github_stats(gh_port)
                gh = {
                    "requests": after["requests"] - gh_before["requests"],
                    "not_modified": after["not_modified"] - gh_before["not_modified"],
                }
                gh["counted"] = gh["requests"] - gh["not_modified"]
            if "--no-store" in sub:
                controls, findings = findings_of(out)
            else:
                controls, findings = None, stored_findings(os.path.join(tmp, "trellis.db"))
            rows.append((label, wall, rss, aws, gh, controls, findings))
            print(f"  {label:<32} {wall:7.1f} s  {rss:7.1f} MiB  aws {aws:5d}  github "
                  + (f"{gh['requests']:5d} ({gh['not_modified']} x 304, {gh['counted']} counted)" if gh else "-")
                  + f"  findings {sum(findings.values())} {findings}", flush=True)
            if controls:
                print(f"  {'':<32} controls {controls}", flush=True)
            errors = errored_controls(out) if "--no-store" in sub else []
            for e in errors:
                print(f"  {'':<32} error: {e}", flush=True)
        rc, wall, rss = timed([trellis, "--config", config, "verify"], env, os.path.join(tmp, "verify.out"))
        print(f"  {'verify':<32} {wall:7.1f} s  {rss:7.1f} MiB  exit {rc}", flush=True)
        if rc != 0:
            raise SystemExit("error: `trellis verify` failed after the stored runs")
        return {"factor": factor, "users": users, "groups": groups, "repos": repos,
                "members": members, "runs": rows}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def serve_runs(args, tmp: str, config: str, env, moto_log: str, gh_port):
    """`trellis serve` on a fresh database, until the startup run (every control) is closed:
    wall time, peak RSS (VmHWM), AWS and GitHub requests. `--serve N` times for each binary of
    `--serve-with` (default `--trellis`), interleaved."""
    import sqlite3  # noqa: PLC0415

    binaries = [os.path.abspath(b) for b in (args.serve_with or [args.trellis])]
    with open(config, encoding="utf-8") as f:
        text = f.read()
    rows = []
    for i in range(args.serve):
        for b, binary in enumerate(binaries):
            db = os.path.join(tmp, f"serve-{i}-{b}.db")
            cfg = os.path.join(tmp, f"serve-{i}-{b}.yaml")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write(re.sub(r'database_url: "[^"]*"', f'database_url: "sqlite://{db}?mode=rwc"', text)
                        + "server:\n  bind: 127.0.0.1:0\n")
            aws_before = moto_requests(moto_log)
            gh_before = github_stats(gh_port)
            started = time.time()
            log = open(os.path.join(tmp, f"serve-{i}-{b}.log"), "wb")
            proc = subprocess.Popen([binary, "--config", cfg, "serve"], stdout=log, stderr=log, env=env)
            peak, closed, units = 0, None, None
            try:
                while closed is None:
                    if proc.poll() is not None:
                        raise SystemExit(f"error: serve exited {proc.returncode} (see {log.name})")
                    with open(f"/proc/{proc.pid}/status", encoding="utf-8") as st:
                        for line in st:
                            if line.startswith("VmHWM:"):
                                peak = int(line.split()[1])
                    if os.path.exists(db):
                        con = sqlite3.connect(db, timeout=10)
                        try:
                            row = con.execute(
                                "SELECT id, state, controls_done FROM runs WHERE state != 'running' "
                                "ORDER BY started_at LIMIT 1").fetchone()
                            if row:
                                closed = row
                                units = con.execute(
                                    "SELECT COUNT(*) FROM run_units WHERE run_id = ?", (row[0],)
                                ).fetchone()[0]
                        except sqlite3.OperationalError:
                            pass  # not migrated yet
                        finally:
                            con.close()
                    time.sleep(0.05)
                wall = time.time() - started
                with open(f"/proc/{proc.pid}/status", encoding="utf-8") as st:
                    for line in st:
                        if line.startswith("VmHWM:"):
                            peak = int(line.split()[1])
            finally:
                proc.terminate()
                proc.wait(timeout=60)
                log.close()
            aws = moto_requests(moto_log) - aws_before
            gh = "-"
            if gh_port is not None:
                after = github_stats(gh_port)
                req = after["requests"] - gh_before["requests"]
                nm = after["not_modified"] - gh_before["not_modified"]
                gh = f"{req} ({nm} x 304, {req - nm} counted)"
            rows.append((binary, wall, peak / 1024))
            print(f"  serve #{i} {binary}: startup run {closed[1]} ({closed[2]} controls, {units} units) "
                  f"in {wall:6.1f} s, peak {peak / 1024:6.1f} MiB, aws {aws}, github {gh}", flush=True)
    return {"factor": 0, "runs": rows}


def errored_controls(json_path: str):
    with open(json_path, encoding="utf-8") as f:
        report = json.load(f)
    return [f"{c['id']}: {c['summary']}" for c in report.get("controls", [])
            if c["status"] == "error" and "not configured" not in c["summary"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--factors", default="1,2,4")
    ap.add_argument("--users", type=int, default=2500)
    ap.add_argument("--groups", type=int, default=1250)
    ap.add_argument("--repos", type=int, default=500)
    ap.add_argument("--members", type=int, default=250)
    ap.add_argument("--trellis", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "trellis"))
    ap.add_argument("--keep", action="store_true", help="keep each factor's temp dir")
    ap.add_argument("--skip-github", action="store_true")
    ap.add_argument("--serve", type=int, default=0, metavar="N",
                    help="instead of the check runs, run `serve` N times on fresh databases until its startup run closes")
    ap.add_argument("--serve-with", action="append", metavar="TRELLIS",
                    help="with --serve: a binary to measure (repeatable; interleaved); default --trellis")
    ap.add_argument("--hold", action="store_true",
                    help="build the (first factor's) estate, print its config and wait: for profiling by hand")
    args = ap.parse_args()
    if not os.path.exists(MOTO):
        raise SystemExit(f"error: {MOTO} missing: run scripts/test once (it installs moto into .venv)")
    if not os.path.exists(args.trellis):
        raise SystemExit(f"error: {args.trellis} missing: cargo build --release (or --trellis PATH)")
    factors = [float(x) for x in args.factors.split(",")]
    results = [one_factor(args, f, os.path.abspath(args.trellis)) for f in factors]
    if args.hold or args.serve:
        return 0

    print("\n== slope (stored first run; time and memory against the base size)")
    base = results[0]
    for r in results:
        label, wall, rss = r["runs"][1][:3]
        print(f"  {r['factor']:>4g}x  {wall:7.1f} s ({wall / base['runs'][1][1]:4.2f} of 1x)  "
              f"{rss:7.1f} MiB ({rss / base['runs'][1][2]:4.2f} of 1x)")
    if len(results) > 1:
        a, b = results[0], results[-1]
        slope = (b["runs"][1][1] - a["runs"][1][1]) / (b["factor"] - a["factor"])
        print(f"  {slope:.1f} s per base size ({a['users']} users, {a['repos']} repositories) added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
