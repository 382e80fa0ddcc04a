#!/usr/bin/env bash
# Benchmark: the dashboards with a year of history. A benchmark, not a test: it measures and
# reports, and fails only when it cannot measure (a server that does not start, a page that
# is not a 200).
#
# Usage (from anywhere; it works on the checkout it lives in):
#   bench/history.sh
#
# Knobs (environment variables, defaults in brackets):
#   BACKENDS ["sqlite postgres"]  which stores to measure, in turn
#   DAYS [365], RUNS_PER_DAY [24] the history seeded before the real run (365 × 24: 8,808
#                                 runs, ~644,000 results of the 73 example controls)
#   REQUESTS [200]                sequential requests measured per page (after WARMUP [10])
#   CONTROL [security-awareness-training]  the control whose page is measured
#   PG_SERVER [postgres://postgres@127.0.0.1:5432/postgres]  a PostgreSQL server where the
#                                 script may create (and drops at exit) the database
#                                 trellis_bench_history; needs psql on PATH
#   TRELLIS_BIN                   measure this binary instead of building one (say, a build of
#                                 an older commit, for "before" numbers)
#   CARGO_FLAGS [""]              extra flags for the build, e.g. --no-default-features (the
#                                 pages measured do not depend on the AWS probes)
#   CARGO_TARGET_DIR              honoured
#
# What it does, per backend, in a fresh temp dir (kept; printed at the end):
#   1. `trellis check` creates the schema and one real run of the 73 example controls;
#   2. bench/seed_history.py adds DAYS × RUNS_PER_DAY scheduled runs of history before it
#      (deterministic, fixed seed; into PostgreSQL with psql and COPY);
#   3. `trellis user add` makes a viewer; being the first connection after the seeding, it
#      also seals the seeded rows (hash chains) and brings the history roll-up up to date:
#      its time is reported, separately;
#   4. `trellis serve` on a free loopback port; waits for /healthz and for its startup run
#      (the controls that never succeeded) to finish;
#   5. signs in (password form, session cookie) and, over one keep-alive connection, requests
#      the overview (/dashboard), the control page (/dashboard/controls/CONTROL) and the runs
#      page (/dashboard/runs): WARMUP then REQUESTS sequential requests each, timing each from
#      sending the request to reading the whole body; prints p50, p95, max and mean.
# TRELLIS_* variables of the caller are ignored: it always uses the bundled example config.
# Every process it started is stopped, and the PostgreSQL database dropped, on exit.
set -euo pipefail

BACKENDS=${BACKENDS:-"sqlite postgres"}
DAYS=${DAYS:-365}
RUNS_PER_DAY=${RUNS_PER_DAY:-24}
REQUESTS=${REQUESTS:-200}
WARMUP=${WARMUP:-10}
CONTROL=${CONTROL:-security-awareness-training}
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=trellis_bench_history
CARGO_FLAGS=${CARGO_FLAGS:-}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 not found"
command -v curl >/dev/null || die "curl not found"
case " $BACKENDS " in *" postgres "*) command -v psql >/dev/null || die "psql not found" ;; esac

# --- build ----------------------------------------------------------------------------------
if [ -n "${TRELLIS_BIN:-}" ]; then
    BIN=$TRELLIS_BIN
else
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    log "building the release binary (cargo build --release --locked $CARGO_FLAGS)"
    # shellcheck disable=SC2086  # flags, one word each
    cargo build --release --locked $CARGO_FLAGS
    BIN="$TARGET_DIR/release/trellis"
fi
[ -x "$BIN" ] || die "no binary at $BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench-history.XXXXXX")
SERVE_PID=""
PG_CREATED=0
stop_server() {
    if [ -n "$SERVE_PID" ]; then
        kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
        SERVE_PID=""
    fi
}
drop_pg() {
    if [ "$PG_CREATED" = 1 ]; then
        psql -X -q "$PG_SERVER" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null || true
        PG_CREATED=0
    fi
}
cleanup() {
    local rc=$?
    stop_server
    drop_pg
    [ $rc -eq 0 ] || log "failed (exit $rc); logs in $WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

while read -r var; do unset "$var"; done < <(compgen -e | grep '^TRELLIS_' || true)
export TRELLIS_CONFIG="$REPO/config.example.yaml"

{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(lscpu | awk -F: '/^Model name/ {gsub(/^ +/,"",$2); print $2}')" \
        "(family $(lscpu | awk -F: '/^CPU family/ {gsub(/ /,"",$2); print $2}')," \
        "model $(lscpu | awk -F: '/^Model:/ {gsub(/ /,"",$2); print $2}')), $(nproc) vCPU" \
        "($(lscpu | awk -F: '/^Hypervisor vendor/ {gsub(/^ +/,"",$2); print $2 " guest, "}')$(lscpu | awk -F: '/^Thread\(s\) per core/ {gsub(/ /,"",$2); print $2}') thread(s) per core)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
    echo "binary: $BIN"
    echo "trellis: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "history: $DAYS days x $RUNS_PER_DAY runs/day; $REQUESTS requests per page after $WARMUP"
} >"$WORK/machine.txt"
sed 's/^/  /' "$WORK/machine.txt" >&2

measure_backend() { # BACKEND
    local backend=$1 dir="$WORK/$1" db_arg port t0 t1
    mkdir -p "$dir"
    if [ "$backend" = sqlite ]; then
        db_arg="$dir/trellis.db"
        export TRELLIS__DATABASE_URL="sqlite://$db_arg?mode=rwc"
    else
        psql -X -q "$PG_SERVER" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null
        psql -X -q "$PG_SERVER" -c "CREATE DATABASE $PG_DB" >/dev/null
        PG_CREATED=1
        db_arg=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_SERVER" "$PG_DB")
        export TRELLIS__DATABASE_URL="$db_arg"
    fi
    port=$(free_port)
    export TRELLIS__SERVER__BIND="127.0.0.1:$port"
    export TRELLIS__TRUST_PAGE__DOCUMENTS__LINK_KEY_FILE="$dir/link-signing.key"
    export TRELLIS__SIGNING__KEY_FILE="$dir/signing.key"

    log "$backend: trellis check (creates the schema and one real run)"
    set +e
    "$BIN" check >"$dir/check.out" 2>&1
    local rc=$?
    set -e
    [ $rc -le 1 ] || { tail -20 "$dir/check.out" >&2; die "trellis check exited $rc"; }
    log "$backend: seeding $DAYS days x $RUNS_PER_DAY runs"
    t0=$(date +%s.%N)
    python3 "$REPO/bench/seed_history.py" "$db_arg" --days "$DAYS" --runs-per-day "$RUNS_PER_DAY" \
        | tee "$dir/seed.out" >&2
    t1=$(date +%s.%N)
    echo "seed_seconds: $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')" >"$dir/timings.txt"

    log "$backend: trellis user add (first connection: seals the seeded rows, rolls them up)"
    t0=$(date +%s.%N)
    printf 'correct horse battery staple\n' | "$BIN" user add bench --role viewer >"$dir/user.out" 2>&1 \
        || { cat "$dir/user.out" >&2; die "trellis user add failed"; }
    t1=$(date +%s.%N)
    echo "first_connection_seconds: $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')" \
        >>"$dir/timings.txt"
    sed 's/^/  /' "$dir/timings.txt" >&2

    log "$backend: starting trellis serve on 127.0.0.1:$port"
    "$BIN" serve >"$dir/serve.log" 2>&1 &
    SERVE_PID=$!
    local base="http://127.0.0.1:$port"
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break
        kill -0 "$SERVE_PID" 2>/dev/null || { tail -20 "$dir/serve.log" >&2; die "trellis serve exited"; }
        sleep 0.2
    done
    curl -fsS -o /dev/null "$base/healthz" || die "trellis serve did not become healthy"

    python3 - "$base" "$CONTROL" "$REQUESTS" "$WARMUP" "$backend" "$dir" <<'EOF' | tee "$dir/summary.md"
import http.client, re, statistics, sys, time, urllib.parse
base, control, requests, warmup, backend, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
host = urllib.parse.urlsplit(base).netloc
conn = http.client.HTTPConnection(host, timeout=120)

def get(path, cookie=None):
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    r = conn.getresponse()
    return r.status, r.read()

# Sign in (no second factor for this viewer): the session cookie.
form = urllib.parse.urlencode({"username": "bench", "password": "correct horse battery staple", "next": "/dashboard"})
conn.request("POST", "/dashboard/login", body=form, headers={
    "Content-Type": "application/x-www-form-urlencoded", "Origin": base})
r = conn.getresponse()
r.read()
cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("trellis_session=")]
if r.status != 303 or not cookies:
    sys.exit(f"sign-in failed: {r.status}")
cookie = cookies[0].split(";")[0]

# The startup run (controls that never succeeded) changes the pages: wait until it is done.
deadline = time.time() + 300
while True:
    status, body = get("/dashboard/runs", cookie)
    if status != 200:
        sys.exit(f"/dashboard/runs: {status}")
    if b"A run is in progress" not in body:
        break
    if time.time() > deadline:
        sys.exit("a run is still in progress after 5 minutes")
    time.sleep(1)

pages = [("overview", "/dashboard"), ("control page", f"/dashboard/controls/{control}"), ("runs page", "/dashboard/runs")]
rows = []
for name, path in pages:
    for _ in range(warmup):
        status, body = get(path, cookie)
        if status != 200:
            sys.exit(f"{path}: {status}")
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        status, body = get(path, cookie)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            sys.exit(f"{path}: {status}")
    times.sort()
    q = statistics.quantiles(times, n=100, method="inclusive")
    rows.append((name, path, len(body), q[49], q[94], times[-1], statistics.fmean(times)))
    with open(f"{out}/{name.replace(' ', '_')}.ms", "w") as f:
        f.write("\n".join(f"{t:.3f}" for t in times) + "\n")
print(f"| backend | page | bytes | p50 | p95 | max | mean |")
print(f"|---|---|---:|---:|---:|---:|---:|")
for name, path, size, p50, p95, mx, mean in rows:
    print(f"| {backend} | {name} (`{path}`) | {size:,} | {p50:.1f} ms | {p95:.1f} ms | {mx:.1f} ms | {mean:.1f} ms |")
EOF
    stop_server
    [ "$backend" = postgres ] && drop_pg
    return 0
}

for backend in $BACKENDS; do
    case "$backend" in
        sqlite | postgres) measure_backend "$backend" ;;
        *) die "unknown backend $backend (sqlite or postgres)" ;;
    esac
done
log "done; raw timings, logs and summaries in $WORK"
for backend in $BACKENDS; do
    echo "$backend: $(tr '\n' ' ' <"$WORK/$backend/timings.txt")"
    cat "$WORK/$backend/summary.md"
done
