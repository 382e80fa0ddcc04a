#!/usr/bin/env bash
# Benchmark: the live trust page (`trellis serve`, served from its in-memory render cache)
# against nginx serving the static export (`trellis render --out`) of the same data, in the
# same run, with wrk. A benchmark, not a test: it measures and reports, and fails only when
# it cannot measure fairly (missing tools, a server that does not start, or the two servers
# not serving byte-identical pages).
#
# Usage (from anywhere; it works on the checkout it lives in):
#   bench/trust_page.sh
#
# Knobs (environment variables, defaults in brackets):
#   ROUNDS [3]        measured rounds per server and pass, interleaved live/nginx/live/nginx…
#   DURATION [15]     seconds per round
#   WARMUP [5]        seconds of warm-up per server before each pass
#   THREADS [2]       wrk threads
#   CONNECTIONS [64]  wrk connections
#   SKIP_BUILD [0]    1: do not run cargo, use the release binary already built
#   ANALYTICS [on]    off: the live server does not count visits (trust_page.analytics)
#   USER_AGENT [a browser's]  sent by wrk to both servers: with counting on, every request is
#                     a person's page view (its visitor hash computed), not a bot's
#   CARGO_TARGET_DIR  honoured (the binary is found where cargo says its target dir is)
#
# What it does:
#   1. installs wrk, nginx, curl, gzip and python3 with apt-get when missing;
#   2. builds the release binary (`cargo build --release --locked`);
#   3. in a fresh temp dir: `trellis check` creates the SQLite schema and one real run of the
#      73 example controls, and bench/seed_history.py adds 90 days × 4 scheduled runs of
#      history before it (deterministic, fixed seed);
#   4. starts `trellis serve` on a free loopback port, waits for /healthz and for its
#      startup run (controls that never succeeded are run at startup) to finish, then
#      `trellis render --out` of the same database, and `gzip -9` of index.html for nginx's
#      gzip_static;
#   5. starts nginx (private config, daemon off, pid/logs/temp files in the temp dir) on
#      another free port, and checks that `/` is byte-identical from both (identity, and
#      gzip once decompressed);
#   6. runs wrk against `/` of both, identity then gzip (`Accept-Encoding: gzip`): warm-up,
#      then ROUNDS interleaved rounds; reports the median per server and the ratio live/nginx,
#      the servers' CPU time per request, and warns about rounds during which other processes
#      kept the machine busy (a compile, say);
#   7. checks the live page did not change during the run (a cron run would change it).
# TRELLIS_* variables of the caller are ignored: it always uses the bundled example config.
# Raw wrk outputs, logs, headers and a summary are kept in the temp dir (printed at the end);
# every process it started is stopped on exit.
#
# Caveat: wrk and both servers share this machine's cores (2 on the reference machine), so
# the load generator competes with the server under test; the numbers are comparable within
# a run, not absolute capacities.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-5}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
SKIP_BUILD=${SKIP_BUILD:-0}
ANALYTICS=${ANALYTICS:-on}
USER_AGENT=${USER_AGENT:-Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0}

# The repository root is this script's parent directory; the binary runs from there so the
# bundled config.example.yaml (and its relative paths: controls/, examples/) is found.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- 1. tools -------------------------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v curl >/dev/null || need_apt+=(curl)
command -v gzip >/dev/null || need_apt+=(gzip)
command -v python3 >/dev/null || need_apt+=(python3)
command -v cmp >/dev/null || need_apt+=(diffutils)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]} (apt-get)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v cargo >/dev/null || [ "$SKIP_BUILD" = 1 ] || die "cargo not found (install Rust)"

# --- 2. build -------------------------------------------------------------------------------
# Where cargo puts the binary: cargo itself says (CARGO_TARGET_DIR, .cargo/config.toml…).
TARGET_DIR=""
if command -v cargo >/dev/null; then
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' \
        2>/dev/null) || TARGET_DIR=""
fi
if [ -z "$TARGET_DIR" ]; then
    TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
    case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac
fi
BIN="$TARGET_DIR/release/trellis"
if [ "$SKIP_BUILD" != 1 ]; then
    log "building the release binary (cargo build --release --locked; the first build is slow)"
    cargo build --release --locked
fi
[ -x "$BIN" ] || die "no release binary at $BIN"

# --- 3. temp dir, database, history ---------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench.XXXXXX")
mkdir -p "$WORK/raw" "$WORK/nginx/tmp" "$WORK/site"
# mktemp makes it private (0700); nginx's workers (an unprivileged user when started as root)
# must be able to read the export.
chmod 0755 "$WORK"
SERVE_PID=""
NGINX_PID=""
cleanup() {
    local rc=$?
    # Stop what this script started, by pid; the temp dir (results) is kept.
    for pid in $SERVE_PID $NGINX_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $SERVE_PID $NGINX_PID; do
        wait "$pid" 2>/dev/null || true
    done
    [ $rc -eq 0 ] || log "failed (exit $rc); logs and partial results in $WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port (the kernel picks one; a tiny race with other processes is accepted).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
LIVE_PORT=$(free_port)
NGINX_PORT=$(free_port)
while [ "$NGINX_PORT" = "$LIVE_PORT" ]; do NGINX_PORT=$(free_port); done

# Only this script's settings: no TRELLIS_* variable from the caller's environment (a
# config file, overrides, a log level that would log every request).
while read -r var; do unset "$var"; done < <(compgen -e | grep '^TRELLIS_' || true)
# The bundled example configuration; its relative paths (controls/, examples/) resolve
# against the repository root.
export TRELLIS_CONFIG="$REPO/config.example.yaml"
DB="$WORK/trellis.db"
export TRELLIS__DATABASE_URL="sqlite://$DB?mode=rwc"
export TRELLIS__SERVER__BIND="127.0.0.1:$LIVE_PORT"
# The documents' link-signing key is created at first use: keep it out of the checkout.
export TRELLIS__TRUST_PAGE__DOCUMENTS__LINK_KEY_FILE="$WORK/link-signing.key"
if [ "$ANALYTICS" = off ]; then export TRELLIS__TRUST_PAGE__ANALYTICS__ENABLED=false; fi

log "work dir: $WORK"
log "trellis check (creates the schema and one real run)"
set +e
"$BIN" check >"$WORK/check.out" 2>&1
rc=$?
set -e
# 0: all pass, 1: some controls fail (expected with the example data); anything else is broken.
[ $rc -le 1 ] || { tail -20 "$WORK/check.out" >&2; die "trellis check exited $rc"; }
tail -1 "$WORK/check.out" | sed 's/^/  /' >&2
python3 "$REPO/bench/seed_history.py" "$DB" >&2

# --- 4. the live server ---------------------------------------------------------------------
log "starting trellis serve on 127.0.0.1:$LIVE_PORT"
"$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
LIVE="http://127.0.0.1:$LIVE_PORT"
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$LIVE/healthz" 2>/dev/null && break
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; die "trellis serve exited"; }
    sleep 0.1
done
curl -fsS -o /dev/null "$LIVE/healthz" || die "trellis serve did not become healthy (see $WORK/serve.log)"

# At startup the scheduler runs the controls that have never succeeded (here: those whose
# sources, AWS and GitHub, are not configured). Wait until no run is in progress and the
# run count is steady, so the live page and the export are made from the same data.
db_runs() {
    python3 - "$DB" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
total, running = db.execute(
    "SELECT COUNT(*), COALESCE(SUM(state = 'running'), 0) FROM runs").fetchone()
print(total, running)
EOF
}
prev=""
steady=0
for _ in $(seq 1 120); do
    read -r total running < <(db_runs)
    if [ "$running" = 0 ] && [ "$total" = "$prev" ]; then
        steady=$((steady + 1))
        [ $steady -ge 3 ] && break
    else
        steady=0
    fi
    prev=$total
    sleep 0.5
done
[ "$running" = 0 ] || die "a run is still in progress after 60 s"
log "store settled: $total runs"

log "trellis render --out $WORK/site"
"$BIN" render --out "$WORK/site" >"$WORK/render.out" 2>"$WORK/render.err" \
    || { cat "$WORK/render.err" >&2; die "trellis render failed"; }
sed 's/^/  /' "$WORK/render.err" >&2
# Pre-compressed page for nginx's gzip_static (-n: no name/timestamp in the header, as the
# live server's own gzip has none).
gzip -9 -k -n -f "$WORK/site/index.html"

# --- 5. nginx -------------------------------------------------------------------------------
MIME_TYPES=/etc/nginx/mime.types
[ -f "$MIME_TYPES" ] || die "$MIME_TYPES not found (nginx-common)"
cat >"$WORK/nginx/nginx.conf" <<EOF
# Private nginx for the benchmark: foreground, all state in the temp dir.
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    include $MIME_TYPES;
    default_type application/octet-stream;
    charset utf-8;                # text/html; charset=utf-8, as the live server says
    access_log off;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path $WORK/nginx/tmp/client;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/site;
        index index.html;
        gzip_static on;           # serves index.html.gz to clients that accept gzip
        gzip_vary on;             # Vary: Accept-Encoding, as the live server says
    }
}
EOF
log "starting nginx on 127.0.0.1:$NGINX_PORT"
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
NGX="http://127.0.0.1:$NGINX_PORT"
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$NGX/" 2>/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx/error.log" >&2; die "nginx exited"; }
    sleep 0.1
done
curl -fsS -o /dev/null "$NGX/" || die "nginx does not serve / (see $WORK/nginx/error.log)"

# Same content is a precondition: `/` must be byte-identical from both servers.
fetch() { # URL OUT [curl args…]: body to OUT, headers to OUT.headers
    local url=$1 out=$2
    shift 2
    curl -fsS -D "$out.headers" -o "$out" "$@" "$url"
}
check_identical() { # TAG
    local tag=$1
    [ "$tag" = before ] || log "checking the page did not change during the run"
    fetch "$LIVE/" "$WORK/live-$tag.html"
    fetch "$NGX/" "$WORK/nginx-$tag.html"
    cmp -s "$WORK/live-$tag.html" "$WORK/nginx-$tag.html" || {
        cmp "$WORK/live-$tag.html" "$WORK/nginx-$tag.html" >&2 || true
        [ "$tag" = before ] || die "the live page changed during the run (a scheduled run of" \
            "trellis serve stored new results?): the numbers compare different pages; run again"
        die "/ differs between the live server and nginx: not the same content"
    }
    cmp -s "$WORK/live-$tag.html" "$WORK/site/index.html" || die "/ differs from the export ($tag)"
    # The gzip bodies: each must decompress to the same page.
    fetch "$LIVE/" "$WORK/live-$tag.html.gz" -H 'Accept-Encoding: gzip'
    fetch "$NGX/" "$WORK/nginx-$tag.html.gz" -H 'Accept-Encoding: gzip'
    for s in live nginx; do
        grep -qi '^content-encoding: gzip' "$WORK/$s-$tag.html.gz.headers" \
            || die "$s did not serve gzip to Accept-Encoding: gzip"
        gzip -dc <"$WORK/$s-$tag.html.gz" | cmp -s - "$WORK/site/index.html" \
            || die "$s's gzip body does not decompress to the page ($tag)"
    done
}
check_identical before
SIZE_IDENTITY=$(wc -c <"$WORK/site/index.html")
SIZE_GZ_LIVE=$(wc -c <"$WORK/live-before.html.gz")
SIZE_GZ_NGINX=$(wc -c <"$WORK/nginx-before.html.gz")
log "/ is byte-identical: $SIZE_IDENTITY bytes; gzip: live $SIZE_GZ_LIVE, nginx $SIZE_GZ_NGINX bytes"

# --- 6. wrk ---------------------------------------------------------------------------------
{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
        "(family $(grep -m1 '^cpu family' /proc/cpuinfo | awk '{print $NF}')," \
        "model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | awk '{print $NF}');" \
        "$(grep -qw hypervisor /proc/cpuinfo && echo 'virtual machine' || echo 'bare metal')," \
        "$(lscpu 2>/dev/null | awk -F: '/^Thread\(s\) per core/ {gsub(/ /,"",$2); print $2}') thread(s) per core)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
    echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
    echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    echo "trellis: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' (modified)')"
    echo "rustc: $(rustc --version 2>/dev/null || echo unknown)"
    echo "wrk_args: -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency; $ROUNDS rounds per server and pass, ${WARMUP}s warm-up"
    echo "analytics: $ANALYTICS; user agent: $USER_AGENT"
    echo "page_bytes: identity $SIZE_IDENTITY, gzip live $SIZE_GZ_LIVE, gzip nginx $SIZE_GZ_NGINX"
    echo "note: wrk, trellis and nginx share the same $(nproc) cores"
} >"$WORK/machine.txt"
sed 's/^/  /' "$WORK/machine.txt" >&2

# CPU time (user+system, clock ticks) used so far by a server: trellis is one process (all
# its threads); nginx is its master plus its workers (the master's children).
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # PID…
    local total=0 pid f
    for pid in "$@"; do
        f=$(cut -d')' -f2- "/proc/$pid/stat" 2>/dev/null) || continue
        # after "pid (comm)": state is field 1, utime field 12, stime field 13
        total=$((total + $(echo "$f" | awk '{print $12 + $13}')))
    done
    echo "$total"
}
server_pids() { # SERVER
    if [ "$1" = live ]; then
        echo "$SERVE_PID"
    else
        # shellcheck disable=SC2046  # the children's pids, one word each
        echo "$NGINX_PID" $(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null)
    fi
}

# CPU time the whole machine spent busy so far (clock ticks; /proc/stat: user nice system
# idle iowait irq softirq steal; idle and iowait are not busy).
machine_busy() {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

run_wrk() { # SERVER PASS ROUND DURATION [wrk args…]
    local server=$1 pass=$2 round=$3 dur=$4 url pids before after busy0 busy1 t0 t1 base
    shift 4
    [ "$server" = live ] && url="$LIVE/" || url="$NGX/"
    base="$WORK/raw/$pass-$server-$round"
    pids=$(server_pids "$server")
    t0=$(date +%s.%N)
    busy0=$(machine_busy)
    # shellcheck disable=SC2086
    before=$(cpu_ticks $pids)
    # wrk's own CPU time (user, system seconds) from bash's `time`.
    local TIMEFORMAT='%3U %3S'
    { time wrk -t"$THREADS" -c"$CONNECTIONS" -d"${dur}s" --latency "$@" "$url" \
        >"$base.txt" 2>&1; } 2>"$base.wrkcpu"
    # shellcheck disable=SC2086
    after=$(cpu_ticks $pids)
    busy1=$(machine_busy)
    t1=$(date +%s.%N)
    # CPU accounting of the round: server ticks, tick rate, machine busy ticks, wall seconds,
    # wrk user and system seconds. The rest of the machine's busy time was spent by other
    # processes (and interrupts): the summary warns when it is large enough to disturb.
    echo "$(( after - before )) $CLK_TCK $(( busy1 - busy0 ))" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
        "$(cat "$base.wrkcpu")" >"$base.cpu"
    rm -f "$base.wrkcpu"
    log "  $pass $server round $round: $(awk '/Requests\/sec/ {print $2 " req/s"}' "$base.txt")"
}
for pass in identity gzip; do
    args=(-H "User-Agent: $USER_AGENT")
    [ "$pass" = gzip ] && args+=(-H 'Accept-Encoding: gzip')
    log "pass $pass: warm-up ${WARMUP}s each"
    run_wrk live "$pass" warmup "$WARMUP" "${args[@]+"${args[@]}"}"
    run_wrk nginx "$pass" warmup "$WARMUP" "${args[@]+"${args[@]}"}"
    log "pass $pass: $ROUNDS rounds × ${DURATION}s per server, interleaved"
    for round in $(seq 1 "$ROUNDS"); do
        run_wrk live "$pass" "$round" "$DURATION" "${args[@]+"${args[@]}"}"
        run_wrk nginx "$pass" "$round" "$DURATION" "${args[@]+"${args[@]}"}"
    done
done

# --- 7. the page did not change during the run ----------------------------------------------
check_identical after
curl -fsS -D "$WORK/live.headers" -o /dev/null "$LIVE/"
curl -fsS -D "$WORK/nginx.headers" -o /dev/null "$NGX/"

# --- summary --------------------------------------------------------------------------------
python3 - "$WORK" "$ROUNDS" <<'EOF' | tee "$WORK/summary.md"
import re, statistics, sys, pathlib
work, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
def secs(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[m.group(2)]
def parse(path):
    text = path.read_text()
    r = {}
    r["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?)B", text)
    r["mbps"] = float(m.group(1)) * UNITS[m.group(2)] / 1024**2
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", text, re.M)
        r["p" + p] = secs(m.group(1)) * 1000 if m else None
    r["requests"] = int(re.search(r"(\d+) requests in", text).group(1))
    ticks, hz, busy, wall, wrk_user, wrk_sys = (work / "raw" / (path.stem + ".cpu")).read_text().split()
    hz = int(hz)
    r["cpu_us"] = int(ticks) / hz / r["requests"] * 1e6
    # Busy time of everything else on the machine, in cores (1.0 = one core all the time).
    other = int(busy) / hz - int(ticks) / hz - float(wrk_user) - float(wrk_sys)
    r["other"] = max(other, 0.0) / float(wall)
    r["wrk"] = (float(wrk_user) + float(wrk_sys)) / float(wall)
    errs = re.search(r"Socket errors: (.*)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["errors"] = (errs.group(1) if errs else "") + (f" non-2xx {non2xx.group(1)}" if non2xx else "")
    return r
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
print(open(work / "machine.txt").read().rstrip())
print()
print("| pass | server | req/s (median) | req/s per round | MB/s | p50 ms | p99 ms | server CPU µs/req | live/nginx |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|")
problems = []
others, wrks = [], []
OTHER_LIMIT = 0.15  # cores busy outside wrk and the server under test
for p in ("identity", "gzip"):
    rows = {}
    for s in ("live", "nginx"):
        rs = [parse(work / "raw" / f"{p}-{s}-{i}.txt") for i in range(1, rounds + 1)]
        for i, r in enumerate(rs, 1):
            if r["errors"]:
                problems.append(f"{p} {s} round {i}: {r['errors']}")
            if r["other"] > OTHER_LIMIT:
                problems.append(
                    f"{p} {s} round {i}: other processes kept {r['other']:.2f} cores busy "
                    f"({r['rps']:.0f} req/s): disturbed")
        others.extend(r["other"] for r in rs)
        wrks.extend(r["wrk"] for r in rs)
        rows[s] = {k: med([r[k] for r in rs]) for k in ("rps", "mbps", "p50", "p99", "cpu_us")}
        rows[s]["each"] = " / ".join(f"{r['rps']:.0f}" for r in rs)
    ratio = rows["live"]["rps"] / rows["nginx"]["rps"]
    for s in ("live", "nginx"):
        r = rows[s]
        f = lambda v, fmt: fmt.format(v) if v is not None else "–"
        print(f"| {p} | {s} | {r['rps']:.0f} | {r['each']} | {r['mbps']:.1f} | "
              f"{f(r['p50'], '{:.2f}')} | {f(r['p99'], '{:.2f}')} | {r['cpu_us']:.1f} | "
              f"{f'{ratio:.2f}' if s == 'live' else ''} |")
print()
print(f"wrk itself used {min(wrks):.2f}-{max(wrks):.2f} cores; everything else on the machine "
      f"{min(others):.2f}-{max(others):.2f} cores (median {statistics.median(others):.2f}).")
for p in problems:
    print(f"warning: {p}")
if any("disturbed" in p for p in problems):
    print("warning: disturbed rounds ran alongside other work; the median tolerates one per "
          "server and pass, otherwise run again on an idle machine")
print("req/s and the other columns: median of the rounds; server CPU: user+system time of the")
print("server's processes during a round divided by the requests wrk completed in it.")
print(f"raw wrk outputs: {work}/raw/")
EOF
log "done; results in $WORK"
