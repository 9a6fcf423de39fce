#!/usr/bin/env bash
# Benchmark featurepipe against the plain I/O floor on this machine, in one run.
#
#   scripts/bench.sh [--reps N] [--big] [--sizes 100MB,1GB,10GB] [--cases s3,local,floor,cat,gz]
#                    [--seed S] [--results FILE]
#                    [--endpoint-url URL [--bucket B] [--server-pid PID] [--server-label TEXT]]
#   scripts/bench.sh --cases entity [--reps N] [--sizes ...] [--results FILE]
#   scripts/bench.sh --cases capped [--reps N] [--sizes ...] [--rate BYTES_PER_S]
#                    [--ranges C] [--range-size BYTES] [--results FILE]
#   scripts/bench.sh --cases formats [--reps N] [--sizes ...] [--results FILE]
#   scripts/bench.sh --cases parts [--reps N] [--sizes ...] [--results FILE]
#
# Inputs: generated raw event CSVs of 100 MB and 1 GB (--big adds 10 GB), in bench/data/
# (generated once, deterministic: examples/gen_events; bench/data/raw_1GB.csv may be a
# symlink to one generated in another checkout). An in-process S3 server
# (examples/s3_server: s3s-fs over loopback HTTP, SigV4 auth) serves bench/data/s3/; the raw
# files are uploaded to bucket `bench` once (examples/io_floor put).
# --endpoint-url uses an S3 server that is already running instead (MinIO, moto, your own):
# credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, bucket B (default bench,
# created if missing), the server's CPU counted when --server-pid names its process.
# --results: where the report goes (default bench/results.md; bench/results-CASE.md for the
# cases entity, capped, formats and parts). --sizes: only these input sizes (default
# 100MB,1GB, and 10GB with --big).
#
# Cases, run alternately (rep 1: a b c d, rep 2: a b c d, ...) so drift hits them all alike:
#   s3     (a) featurepipe run, raw and features on S3 (the local S3 server)
#   local  (b) featurepipe run, raw and features on local disk
#   floor  (c) io_floor floor: GET the raw object + multipart PUT of as many bytes as the
#              feature.csv that (b) wrote (the least any S3 -> S3 run must do)
#   cat    (d) cat raw.csv > /dev/null (the least any local run must do)
#   gz     (e) featurepipe run on raw.csv.gz (gzip -1 of the same CSV), local -> local
#
# Four cases run on their own (not mixed with the others), with the built-in S3 server only:
#   entity  the entity grain (fixtures/pipelines/daily_user_features.toml: per user_id and
#           Asia/Seoul day, count, sum, mean, max, count_distinct, null_count, first, last)
#           by featurepipe, DuckDB and polars (scripts/bench_peers.py), local -> local then
#           S3 -> S3, alternated; then checks that the peers' outputs have featurepipe's row
#           count and (user_id, event_date) keys. Report: bench/results-entity.md.
#   capped  S3 -> S3 through examples/throttle_proxy, which caps every TCP connection at
#           --rate bytes/s each way (default 20MB = 20 MB/s; real S3 gives ~85-100 MB/s per
#           connection): featurepipe (row grain default pipeline), polars doing the same
#           row_sum job, the parallel floor (--ranges C concurrent byte-range GETs of
#           --range-size bytes, default 8 x 8 MiB, and a PUT of feature.csv's size with C
#           parts in flight) and the single-stream floor (one GET, PUT with 3 parts in flight
#           as featurepipe does). Report: bench/results-capped.md.
#   formats local -> local, the row grain (default pipeline) and the entity grain
#           (daily_user_features.toml), each with --output-formats csv, parquet and
#           csv,parquet; reports the CPU of csv,parquet over csv alone (target at 1 GB: at
#           most 1.25) and each thread's CPU from metadata.json `pass`; checks that the
#           feature.csv (feature.parquet) of a run writing both is the one (the file) a run
#           writing only it writes. Report: bench/results-formats.md.
#   parts   the raw file as one file vs split into 100 part files of about equal size (each
#           with the header; bench/data/parts/SIZE/part-00000.csv ...), read as
#           --raw 'DIR/part-*.csv'; plain, and gzip -1 parts vs the single file gzip -1'ed;
#           local -> local and S3 -> S3 (target: parts within 10% of one file, wall and
#           CPU); checks that every case's feature.csv has the sha256 of the single local
#           file's, and fails if not. Report: bench/results-parts.md.
# The cases of formats and parts rotate by one each repetition (rep 1: a b c, rep 2: b c a,
# ...), and their reports add paired ratios: the median over the repetitions of the ratio
# of two cases' runs in the same repetition, which cancels the load drift between reps.
# DuckDB and polars (pinned in scripts/bench_peers.requirements.txt) are installed from PyPI
# into bench/.venv on first use (entity and capped only).
# Each run is measured with GNU time -v (CPU, max RSS) and a high-resolution wall clock.
# Report: medians per case, MB/s = raw bytes / wall, ratios (a)/(c) and (b)/(d), written to
# the --results file and printed. Per-run numbers: bench/out/runs.tsv (runs-CASE.tsv for the
# cases that run on their own), logs: bench/out/logs/.
# The page cache is warm (every input is read once before measuring).
set -euo pipefail
export LC_ALL=C

usage() {
    # The comment block at the top of this file.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

die() {
    echo "bench.sh: $*" >&2
    exit 1
}

REPS=3
BIG=0
BUCKET=bench
EXTERNAL_EP=""
EXTERNAL_PID=""
SERVER_LABEL=""
RESULTS=""
SEED=1
CASES="s3,local,floor,cat,gz"
SIZES=""
RATE=20MB
RANGES=8
RANGE_SIZE=$((8 << 20))
ORIG_ARGS="$*"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) [[ $# -ge 2 ]] || die "--reps needs a number"; REPS="$2"; shift 2 ;;
        --reps=*) REPS="${1#*=}"; shift ;;
        --big) BIG=1; shift ;;
        --cases) [[ $# -ge 2 ]] || die "--cases needs a list"; CASES="$2"; shift 2 ;;
        --cases=*) CASES="${1#*=}"; shift ;;
        --seed) [[ $# -ge 2 ]] || die "--seed needs a number"; SEED="$2"; shift 2 ;;
        --seed=*) SEED="${1#*=}"; shift ;;
        --endpoint-url) [[ $# -ge 2 ]] || die "--endpoint-url needs a URL"; EXTERNAL_EP="$2"; shift 2 ;;
        --endpoint-url=*) EXTERNAL_EP="${1#*=}"; shift ;;
        --bucket) [[ $# -ge 2 ]] || die "--bucket needs a name"; BUCKET="$2"; shift 2 ;;
        --bucket=*) BUCKET="${1#*=}"; shift ;;
        --server-pid) [[ $# -ge 2 ]] || die "--server-pid needs a process id"; EXTERNAL_PID="$2"; shift 2 ;;
        --server-pid=*) EXTERNAL_PID="${1#*=}"; shift ;;
        --server-label) [[ $# -ge 2 ]] || die "--server-label needs a text"; SERVER_LABEL="$2"; shift 2 ;;
        --server-label=*) SERVER_LABEL="${1#*=}"; shift ;;
        --results) [[ $# -ge 2 ]] || die "--results needs a file"; RESULTS="$2"; shift 2 ;;
        --results=*) RESULTS="${1#*=}"; shift ;;
        --sizes) [[ $# -ge 2 ]] || die "--sizes needs a list"; SIZES="$2"; shift 2 ;;
        --sizes=*) SIZES="${1#*=}"; shift ;;
        --rate) [[ $# -ge 2 ]] || die "--rate needs bytes per second"; RATE="$2"; shift 2 ;;
        --rate=*) RATE="${1#*=}"; shift ;;
        --ranges) [[ $# -ge 2 ]] || die "--ranges needs a number"; RANGES="$2"; shift 2 ;;
        --ranges=*) RANGES="${1#*=}"; shift ;;
        --range-size) [[ $# -ge 2 ]] || die "--range-size needs bytes"; RANGE_SIZE="$2"; shift 2 ;;
        --range-size=*) RANGE_SIZE="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer, got '$REPS'"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be an unsigned integer, got '$SEED'"
[[ -z "$EXTERNAL_PID" || -d "/proc/$EXTERNAL_PID" ]] || die "--server-pid $EXTERNAL_PID: no such process"
[[ -z "$EXTERNAL_PID$SERVER_LABEL" || -n "$EXTERNAL_EP" ]] || die "--server-pid and --server-label go with --endpoint-url"
[[ "$RANGES" =~ ^[1-9][0-9]*$ ]] || die "--ranges must be a positive integer, got '$RANGES'"
[[ "$RANGE_SIZE" =~ ^[1-9][0-9]*$ ]] || die "--range-size must be a positive byte count, got '$RANGE_SIZE'"
[[ "$RATE" =~ ^[1-9][0-9]*([KMG]B?|[KMG]iB|B)?$ ]] || die "--rate must be bytes per second like 20MB or 20000000, got '$RATE'"
IFS=',' read -r -a CASE_LIST <<<"$CASES"
MODE=classic
for c in "${CASE_LIST[@]}"; do
    case "$c" in
        s3|local|floor|cat|gz) ;;
        entity|capped|formats|parts) MODE="$c" ;;
        *) die "unknown case '$c' (expected s3, local, floor, cat, gz, entity, capped, formats or parts)" ;;
    esac
done
if [[ "$MODE" != classic ]]; then
    [[ "${#CASE_LIST[@]}" == 1 ]] || die "--cases $MODE runs on its own (got --cases $CASES)"
    [[ -z "$EXTERNAL_EP" ]] || die "--cases $MODE uses the built-in S3 server (no --endpoint-url)"
fi
if [[ -z "$RESULTS" ]]; then
    case "$MODE" in
        classic) RESULTS=bench/results.md ;;
        *) RESULTS="bench/results-$MODE.md" ;;
    esac
fi
has_case() {
    local c
    for c in "${CASE_LIST[@]}"; do [[ "$c" == "$1" ]] && return 0; done
    return 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DATA=bench/data
OUT=bench/out
LOGS="$OUT/logs"
RUNS="$OUT/runs.tsv"
[[ "$MODE" == classic ]] || RUNS="$OUT/runs-$MODE.tsv"
S3_ROOT="$DATA/s3"
EXEC_DATE=2025-11-19
ACCESS_KEY=AKIATESTFEATUREPIPE
SECRET_KEY=test-secret-key-do-not-log-7f3a9c

SIZE_NAMES=(100MB 1GB)
SIZE_BYTES=(100000000 1000000000)
if [[ "$BIG" == 1 ]]; then
    SIZE_NAMES+=(10GB)
    SIZE_BYTES+=(10000000000)
fi
if [[ -n "$SIZES" ]]; then
    IFS=',' read -r -a want_sizes <<<"$SIZES"
    kept_names=()
    kept_bytes=()
    for w in "${want_sizes[@]}"; do
        found=0
        for i in "${!SIZE_NAMES[@]}"; do
            if [[ "${SIZE_NAMES[$i]}" == "$w" ]]; then
                kept_names+=("$w")
                kept_bytes+=("${SIZE_BYTES[$i]}")
                found=1
            fi
        done
        [[ "$found" == 1 ]] || die "--sizes: unknown size '$w' (expected ${SIZE_NAMES[*]}; 10GB needs --big)"
    done
    SIZE_NAMES=("${kept_names[@]}")
    SIZE_BYTES=("${kept_bytes[@]}")
fi

# --- tools -------------------------------------------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
    if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
        echo "bench.sh: installing GNU time (apt package 'time')" >&2
        apt-get update -qq && apt-get install -y -qq time >/dev/null
    else
        die "GNU time is missing: install it (Debian/Ubuntu: sudo apt-get install time)"
    fi
fi
# (Captured, not piped into `grep -q`: under pipefail its early exit can fail the check.)
time_probe="$(/usr/bin/time -v true 2>&1)" || true
[[ "$time_probe" == *"Maximum resident set size"* ]] || die "/usr/bin/time is not GNU time"

BUILD_TARGETS=(--example s3_server --example gen_events --example io_floor)
if has_case s3 || has_case local || [[ "$MODE" != classic ]]; then
    BUILD_TARGETS=(--bin featurepipe "${BUILD_TARGETS[@]}")
fi
if [[ "$MODE" == capped ]]; then
    BUILD_TARGETS+=(--example throttle_proxy)
fi
echo "bench.sh: cargo build --release ${BUILD_TARGETS[*]}" >&2
cargo build --release "${BUILD_TARGETS[@]}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
FP="$TARGET_DIR/release/featurepipe"
S3_SERVER="$TARGET_DIR/release/examples/s3_server"
GEN="$TARGET_DIR/release/examples/gen_events"
IO_FLOOR="$TARGET_DIR/release/examples/io_floor"
PROXY="$TARGET_DIR/release/examples/throttle_proxy"

# --- Python peers (entity, capped) ---------------------------------------------------------
VENV=bench/.venv
PEERS_REQ=scripts/bench_peers.requirements.txt
PY="$VENV/bin/python"
PEERS=scripts/bench_peers.py
PEER_VERSIONS=""
if [[ "$MODE" == entity || "$MODE" == capped ]]; then
    # Recreated when the pinned versions change.
    if [[ ! -x "$PY" ]] || ! cmp -s "$PEERS_REQ" "$VENV/requirements.installed"; then
        echo "bench.sh: installing $(grep -v '^#' "$PEERS_REQ" | xargs) into $VENV" >&2
        rm -rf "$VENV"
        python3 -m venv "$VENV" || die "cannot create a venv (Debian/Ubuntu: apt-get install python3-venv)"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$PEERS_REQ" ||
            die "pip install -r $PEERS_REQ failed"
        cp "$PEERS_REQ" "$VENV/requirements.installed"
    fi
    PEER_VERSIONS="$("$PY" "$PEERS" versions)" || die "the peers' Python packages do not import"
fi

mkdir -p "$DATA" "$OUT" "$LOGS" "$S3_ROOT/$BUCKET"

# --- inputs ------------------------------------------------------------------------------
free_bytes() { df -P -B1 "$1" | awk 'NR == 2 { print $4 }'; }
for i in "${!SIZE_NAMES[@]}"; do
    name="${SIZE_NAMES[$i]}"
    bytes="${SIZE_BYTES[$i]}"
    f="$DATA/raw_$name.csv"
    if [[ ! -f "$f" ]]; then
        # The raw file, its copy in the S3 root and the outputs: about 2.5x the input.
        need=$((bytes * 5 / 2))
        [[ "$(free_bytes "$DATA")" -ge "$need" ]] || die "not enough free disk in $DATA for $name (need ~$((need / 1000000000)) GB)"
        echo "bench.sh: generating $f" >&2
        "$GEN" --bytes "$bytes" --seed "$SEED" --out "$f"
    fi
    # The compressed case reads the same CSV, gzip'ed once (fast level, as data drops often are).
    if { has_case gz || [[ "$MODE" == parts ]]; } && [[ ! -f "$f.gz" || "$f" -nt "$f.gz" ]]; then
        echo "bench.sh: compressing $f" >&2
        gzip -1 -c "$f" >"$f.gz.tmp" && mv "$f.gz.tmp" "$f.gz"
    fi
done

# The many-files day (parts): the raw file split at line boundaries into PARTS_N files of
# about equal size, each starting with the header, as a writer of part files leaves them;
# and each part gzip -1'ed. A folder gets _SUCCESS once complete, and is remade when the
# raw file is newer than it.
PARTS_N=100
parts_dir() { echo "$DATA/parts/$1"; }
parts_gz_dir() { echo "$DATA/parts-gz/$1"; }
make_parts() {
    local name="$1" f="$DATA/raw_$1.csv" dir gzdir header want got p
    dir="$(parts_dir "$name")"
    gzdir="$(parts_gz_dir "$name")"
    if [[ ! -f "$dir/_SUCCESS" || "$f" -nt "$dir/_SUCCESS" ]]; then
        echo "bench.sh: splitting $f into $PARTS_N parts in $dir" >&2
        rm -rf "$dir" "$gzdir"
        mkdir -p "$dir"
        header="$(head -n 1 "$f")"
        # shellcheck disable=SC2016 # $FILE, $FIRST and $HEADER are expanded by split's shell
        HEADER="$header" FIRST="$dir/part-00000.csv" split -n "l/$PARTS_N" -d -a 5 \
            --additional-suffix=.csv --filter='{ [ "$FILE" = "$FIRST" ] || printf "%s\n" "$HEADER"; cat; } >"$FILE"' \
            "$f" "$dir/part-"
        # The parts hold the raw bytes plus one header line for each part but the first.
        want=$(($(stat -L -c %s "$f") + (PARTS_N - 1) * (${#header} + 1)))
        got="$(cat "$dir"/part-*.csv | wc -c)"
        [[ "$(find "$dir" -name 'part-*.csv' | wc -l)" == "$PARTS_N" && "$got" == "$want" ]] ||
            die "splitting $f: expected $PARTS_N parts of $want bytes in all, got $got bytes in $dir"
        touch "$dir/_SUCCESS"
    fi
    if [[ ! -f "$gzdir/_SUCCESS" || "$dir/_SUCCESS" -nt "$gzdir/_SUCCESS" ]]; then
        echo "bench.sh: compressing the parts of $f into $gzdir" >&2
        rm -rf "$gzdir"
        mkdir -p "$gzdir"
        for p in "$dir"/part-*.csv; do
            gzip -1 -c "$p" >"$gzdir/${p##*/}.gz"
        done
        touch "$gzdir/_SUCCESS"
    fi
}
if [[ "$MODE" == parts ]]; then
    for name in "${SIZE_NAMES[@]}"; do make_parts "$name"; done
fi

# --- S3 server ---------------------------------------------------------------------------
SERVER_PID=""
PROXY_PID=""
cleanup() {
    local pid
    for pid in "$PROXY_PID" "$SERVER_PID"; do
        if [[ -n "$pid" ]]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The process whose CPU counts as the server's (none known: reported as "-").
CPU_PID=""
# formats runs local -> local only: no S3 server.
NEED_S3=1
[[ "$MODE" != formats ]] || NEED_S3=0
EP=""
if [[ "$NEED_S3" == 0 ]]; then
    SERVER_DESC="not used (local -> local only)"
elif [[ -z "$EXTERNAL_EP" ]]; then
    "$S3_SERVER" --root "$S3_ROOT" --port 0 --bucket "$BUCKET" >"$LOGS/s3_server.out" 2>"$LOGS/s3_server.err" &
    SERVER_PID=$!
    CPU_PID=$SERVER_PID
    EP=""
    for _ in $(seq 300); do
        EP="$(sed -n 's/^endpoint=//p' "$LOGS/s3_server.out")"
        [[ -n "$EP" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOGS/s3_server.err" >&2; die "the S3 server exited before it was ready"; }
        sleep 0.1
    done
    [[ -n "$EP" ]] || die "the S3 server did not report its endpoint within 30 s (see $LOGS/s3_server.err)"
    echo "bench.sh: S3 server at $EP (root $S3_ROOT, pid $SERVER_PID)" >&2
    SERVER_DESC="s3s-fs 0.14.1 (examples/s3_server) on 127.0.0.1, same machine, SigV4 auth"
    # Only these settings reach the AWS SDK: no profile, no ambient endpoint, no IMDS lookups.
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN
    export AWS_ACCESS_KEY_ID="$ACCESS_KEY"
    export AWS_SECRET_ACCESS_KEY="$SECRET_KEY"
    export AWS_REGION=us-east-1
else
    EP="$EXTERNAL_EP"
    CPU_PID="$EXTERNAL_PID"
    [[ -n "${AWS_ACCESS_KEY_ID:-}" && -n "${AWS_SECRET_ACCESS_KEY:-}" ]] ||
        die "--endpoint-url: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for that server"
    echo "bench.sh: using the S3 server at $EP, bucket $BUCKET" >&2
    SERVER_DESC="${SERVER_LABEL:-external} at $EP (--endpoint-url)"
fi
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_DEFAULT_REGION
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_EC2_METADATA_DISABLED=true

# upload FILE KEY: puts FILE at s3://$BUCKET/KEY, unless an object of its size is there (on
# the built-in server: and newer than FILE).
upload() {
    local f="$1" key="$2" obj="$S3_ROOT/$BUCKET/$2"
    if [[ -z "$EXTERNAL_EP" ]]; then
        if [[ -f "$obj" && "$(stat -L -c %s "$obj")" == "$(stat -L -c %s "$f")" && "$obj" -nt "$f" ]]; then
            return 0
        fi
    elif [[ "$("$IO_FLOOR" size --bucket "$BUCKET" --key "$key" --endpoint-url "$EP")" == "$(stat -L -c %s "$f")" ]]; then
        return 0
    fi
    echo "bench.sh: uploading $f to s3://$BUCKET/$key" >&2
    "$IO_FLOOR" put --bucket "$BUCKET" --key "$key" --file "$f" --endpoint-url "$EP" >&2
    if [[ -z "$EXTERNAL_EP" ]]; then
        cmp -s "$f" "$obj" || die "uploaded object $obj differs from $f"
    fi
}

if [[ "$NEED_S3" == 1 ]]; then
    for name in "${SIZE_NAMES[@]}"; do
        upload "$DATA/raw_$name.csv" "raw/raw_$name.csv"
        if [[ "$MODE" == parts ]]; then
            upload "$DATA/raw_$name.csv.gz" "raw/raw_$name.csv.gz"
            for p in "$(parts_dir "$name")"/part-*.csv "$(parts_gz_dir "$name")"/part-*.csv.gz; do
                upload "$p" "${p#"$DATA"/}"
            done
        fi
    done
fi

# Warm the page cache so no case pays for the first read.
for name in "${SIZE_NAMES[@]}"; do
    cat "$DATA/raw_$name.csv" >/dev/null
    if [[ "$NEED_S3" == 1 && -z "$EXTERNAL_EP" ]]; then cat "$S3_ROOT/$BUCKET/raw/raw_$name.csv" >/dev/null; fi
    if has_case gz; then cat "$DATA/raw_$name.csv.gz" >/dev/null; fi
    if [[ "$MODE" == parts ]]; then
        cat "$DATA/raw_$name.csv.gz" "$(parts_dir "$name")"/part-* "$(parts_gz_dir "$name")"/part-* \
            "$S3_ROOT/$BUCKET/raw/raw_$name.csv.gz" "$S3_ROOT/$BUCKET"/parts*/"$name"/part-* >/dev/null
    fi
done

# --- the throttling proxy (capped) ---------------------------------------------------------
PROXY_EP=""
PROXY_RATE=""
if [[ "$MODE" == capped ]]; then
    rm -f "$LOGS/proxy.conns"
    "$PROXY" --upstream "${EP#http://}" --rate "$RATE" --log "$LOGS/proxy.conns" \
        >"$LOGS/proxy.out" 2>"$LOGS/proxy.err" &
    PROXY_PID=$!
    for _ in $(seq 300); do
        PROXY_EP="$(sed -n 's/^endpoint=//p' "$LOGS/proxy.out")"
        [[ -n "$PROXY_EP" ]] && break
        kill -0 "$PROXY_PID" 2>/dev/null || { cat "$LOGS/proxy.err" >&2; die "the proxy exited before it was ready"; }
        sleep 0.1
    done
    [[ -n "$PROXY_EP" ]] || die "the proxy did not report its endpoint within 30 s (see $LOGS/proxy.err)"
    PROXY_RATE="$(sed -n 's/.*, \([0-9]*\) bytes\/s per connection.*/\1/p' "$LOGS/proxy.err")"
    echo "bench.sh: throttling proxy at $PROXY_EP -> $EP, $PROXY_RATE bytes/s per connection (pid $PROXY_PID)" >&2
fi

# --- measuring ---------------------------------------------------------------------------
CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() {
    if [[ -n "$1" ]]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi
}

# measure SIZE CASE REP STDOUT CMD...: appends one line to $RUNS. A failing command ends the
# script, unless SOFT_FAIL=1: then measure returns 1 and appends nothing.
SOFT_FAIL=0
measure() {
    local name="$1" cs="$2" rep="$3" stdout="$4"
    shift 4
    local tf="$LOGS/$name.$cs.$rep.time" err="$LOGS/$name.$cs.$rep.stderr"
    [[ "$stdout" == log ]] && stdout="$LOGS/$name.$cs.$rep.stdout"
    local s0 s1 p0 p1 t0 t1
    s0="$(cpu_ticks "$CPU_PID")"
    p0="$(cpu_ticks "$PROXY_PID")"
    t0="$EPOCHREALTIME"
    if ! /usr/bin/time -v -o "$tf" "$@" >"$stdout" 2>"$err"; then
        echo "bench.sh: FAILED ($name, $cs, rep $rep): $*" >&2
        tail -n 20 "$err" >&2
        [[ "$SOFT_FAIL" == 1 ]] && return 1
        die "case $cs failed; full log: $err"
    fi
    t1="$EPOCHREALTIME"
    s1="$(cpu_ticks "$CPU_PID")"
    p1="$(cpu_ticks "$PROXY_PID")"
    awk -v name="$name" -v cs="$cs" -v rep="$rep" -v t0="$t0" -v t1="$t1" \
        -v sc="$((s1 - s0))" -v pc="$((p1 - p0))" -v tck="$CLK_TCK" '
        /User time \(seconds\)/ { user = $NF }
        /System time \(seconds\)/ { sys = $NF }
        /Maximum resident set size/ { rss = $NF }
        END { printf "%s\t%s\t%s\t%.4f\t%.2f\t%d\t%.2f\t%.2f\t%.6f\t%.6f\n", name, cs, rep, t1 - t0, user + sys, rss, sc / tck, pc / tck, t0, t1 }
    ' "$tf" >>"$RUNS"
    tail -n 1 "$RUNS" | awk -F'\t' '{ printf "bench.sh: %-6s %-13s rep %s: wall %.3f s, cpu %.2f s, max rss %.1f MiB, server cpu %.2f s\n", $1, $2, $3, $4, $5, $6 / 1024, $7 }' >&2
}

# The newest feature.csv under the given folders (empty when there is none).
newest_feature_csv() {
    find "$@" -name feature.csv -type f -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-
}

# Size of the feature.csv a featurepipe run wrote for input NAME (local output first).
# (An external server's copy is asked for with a HEAD.)
feature_bytes() {
    local name="$1" f n
    f="$(newest_feature_csv "$OUT/$name" "$S3_ROOT/$BUCKET/features/$name")" || true
    if [[ -n "$f" ]]; then
        stat -L -c %s "$f"
    elif [[ -n "$EXTERNAL_EP" ]]; then
        n="$("$IO_FLOOR" size --bucket "$BUCKET" --key "features/$name/v_${EXEC_DATE//-/}T000000/feature.csv" --endpoint-url "$EP")" &&
            [[ "$n" =~ ^[0-9]+$ ]] && echo "$n"
    else
        return 1
    fi
}

# The median of the numbers on stdin, one a line (fails when there are none).
median_of() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# median SIZE CASE COLUMN (1-based column of $RUNS)
median() {
    awk -F'\t' -v s="$1" -v c="$2" -v col="$3" 'NR > 1 && $1 == s && $2 == c { print $col }' "$RUNS" | median_of
}
# paired SIZE A B COLUMN: the median over the repetitions of A's value / B's value in the
# same repetition, two decimals ("-" without a pair). Runs of one repetition are seconds
# to minutes apart; on a shared machine they compare better than medians of different
# hours do.
paired() {
    awk -F'\t' -v s="$1" -v a="$2" -v b="$3" -v col="$4" '
        NR > 1 && $1 == s && $2 == a { va[$3] = $col }
        NR > 1 && $1 == s && $2 == b { vb[$3] = $col }
        END { for (r in va) if ((r in vb) && vb[r] > 0) print va[r] / vb[r] }' "$RUNS" |
        median_of | awk '{ printf "%.2f\n", $1 }' || echo "-"
}
minmax() {
    awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $1 == s && $2 == c {
        if (n == 0 || $4 < lo) lo = $4; if (n == 0 || $4 > hi) hi = $4; n++ }
        END { printf "%.3f-%.3f", lo, hi }' "$RUNS"
}
# Number of runs of SIZE CASE in $RUNS.
runs_of() {
    awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $1 == s && $2 == c { n++ } END { print n + 0 }' "$RUNS"
}

machine_table() {
    local server_desc="$1"
    local cpu_model mem_total git_rev
    cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    mem_total="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo 'no commit yet')"
    if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null | head -n 1)" ]]; then git_rev="$git_rev (working tree modified)"; fi
    echo "| machine | |"
    echo "|---|---|"
    echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M:%S') |"
    echo "| git rev | $git_rev |"
    echo "| featurepipe | $FP_VERSION |"
    echo "| CPU | $cpu_model |"
    echo "| nproc | $(nproc) |"
    echo "| memory | $mem_total |"
    echo "| kernel | $(uname -sr) |"
    echo "| rustc | $(rustc -V 2>/dev/null || echo unknown) |"
    echo "| S3 server | $server_desc |"
    if [[ -n "$PEER_VERSIONS" ]]; then echo "| peers | $PEER_VERSIONS |"; fi
    if [[ "$MODE" != classic ]]; then
        echo "| load average (1, 5, 15 min) at start / end | $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) |"
    fi
}

FP_VERSION="n/a"
if has_case s3 || has_case local || [[ "$MODE" != classic ]]; then
    FP_VERSION="$("$FP" --version 2>/dev/null | head -n 1 || echo unknown)"
fi
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
HEADER_RUNS=$'size\tcase\trep\twall_s\tcpu_s\tmax_rss_kb\tserver_cpu_s\tproxy_cpu_s\tt0\tt1'
printf '%s\n' "$HEADER_RUNS" >"$RUNS"

# --- the classic cases -------------------------------------------------------------------
run_classic() {
    declare -g -A PUT_BYTES_NOTE=()
    local rep i name raw cs put_bytes
    for rep in $(seq "$REPS"); do
        for i in "${!SIZE_NAMES[@]}"; do
            name="${SIZE_NAMES[$i]}"
            raw="$DATA/raw_$name.csv"
            for cs in "${CASE_LIST[@]}"; do
                case "$cs" in
                    s3)
                        measure "$name" s3 "$rep" log "$FP" run \
                            --raw "s3://$BUCKET/raw/raw_$name.csv" --features "s3://$BUCKET/features/$name" \
                            --endpoint-url "$EP" --execution-date "$EXEC_DATE" --force
                        ;;
                    local)
                        measure "$name" local "$rep" log "$FP" run \
                            --raw "$raw" --features "$OUT/$name" --execution-date "$EXEC_DATE" --force
                        ;;
                    floor)
                        if put_bytes="$(feature_bytes "$name")"; then
                            PUT_BYTES_NOTE[$name]="$put_bytes bytes (size of feature.csv)"
                        else
                            # No featurepipe output yet: about 15% of the raw size (row_sum + newline).
                            put_bytes=$(($(stat -L -c %s "$raw") * 15 / 100))
                            PUT_BYTES_NOTE[$name]="$put_bytes bytes (ESTIMATED as 15% of raw: no feature.csv found)"
                        fi
                        measure "$name" floor "$rep" log "$IO_FLOOR" floor \
                            --bucket "$BUCKET" --key "raw/raw_$name.csv" --put-bytes "$put_bytes" \
                            --out-key "floor/$name" --endpoint-url "$EP"
                        ;;
                    cat)
                        measure "$name" cat "$rep" /dev/null cat "$raw"
                        ;;
                    gz)
                        measure "$name" gz "$rep" log "$FP" run \
                            --raw "$raw.gz" --features "$OUT/${name}_gz" --execution-date "$EXEC_DATE" --force
                        ;;
                esac
            done
        done
    done
}

case_desc() {
    case "$1" in
        s3) echo "(a) featurepipe run, S3 -> S3" ;;
        local) echo "(b) featurepipe run, local -> local" ;;
        floor) echo "(c) floor: S3 GET raw + PUT feature-sized" ;;
        cat) echo "(d) floor: cat raw > /dev/null" ;;
        gz) echo "(e) featurepipe run, local .csv.gz -> local (MB/s of CSV)" ;;
    esac
}

report_classic() {
    local i name raw_bytes cs wall cpu rss srv ac bd
    echo "# featurepipe benchmark"
    echo
    echo "Generated by \`scripts/bench.sh --reps $REPS$([[ $BIG == 1 ]] && echo ' --big')$([[ -n $SIZES ]] && echo " --sizes $SIZES")$([[ $CASES != s3,local,floor,cat,gz ]] && echo " --cases $CASES")$([[ -n $EXTERNAL_EP ]] && echo " --endpoint-url $EXTERNAL_EP")\`."
    echo
    machine_table "$SERVER_DESC"
    echo
    echo "Medians of $REPS runs per case, cases alternated within each repetition; warm page cache."
    echo "MB/s = raw input bytes / 10^6 / wall seconds. CPU = user + sys of the measured process;"
    echo "server CPU = CPU the S3 server process used meanwhile. Wall range = min-max over the runs."
    echo
    echo "| input | case | wall s | wall range s | MB/s | CPU s | max RSS MiB | server CPU s |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for i in "${!SIZE_NAMES[@]}"; do
        name="${SIZE_NAMES[$i]}"
        raw_bytes="$(stat -L -c %s "$DATA/raw_$name.csv")"
        for cs in "${CASE_LIST[@]}"; do
            wall="$(median "$name" "$cs" 4)"
            cpu="$(median "$name" "$cs" 5)"
            rss="$(median "$name" "$cs" 6)"
            srv="$(median "$name" "$cs" 7)"
            if [[ -n "$CPU_PID" && ( "$cs" == s3 || "$cs" == floor ) ]]; then srv="$(printf '%.2f' "$srv")"; else srv="-"; fi
            awk -v n="$name" -v d="$(case_desc "$cs")" -v w="$wall" -v r="$(minmax "$name" "$cs")" \
                -v b="$raw_bytes" -v c="$cpu" -v m="$rss" -v s="$srv" \
                'BEGIN { printf "| %s | %s | %.3f | %s | %.0f | %.2f | %.1f | %s |\n", n, d, w, r, b / 1e6 / w, c, m / 1024, s }'
        done
    done
    echo
    echo "| input | (a)/(c) wall: S3 run vs S3 floor | (b)/(d) wall: local run vs cat | floor PUT size |"
    echo "|---|---:|---:|---|"
    for name in "${SIZE_NAMES[@]}"; do
        ac="-"
        bd="-"
        if has_case s3 && has_case floor; then
            ac="$(awk -v a="$(median "$name" s3 4)" -v c="$(median "$name" floor 4)" 'BEGIN { printf "%.2fx", a / c }')"
        fi
        if has_case local && has_case cat; then
            bd="$(awk -v b="$(median "$name" local 4)" -v d="$(median "$name" cat 4)" 'BEGIN { printf "%.2fx", b / d }')"
        fi
        echo "| $name | $ac | $bd | ${PUT_BYTES_NOTE[$name]:--} |"
    done
}

# Runs a peer's case softly: a failure is noted in SKIP[CASE] (the last lines of its stderr)
# and the case is not run again.
declare -A SKIP=()
measure_peer() {
    local name="$1" cs="$2" rep="$3"
    SOFT_FAIL=1
    if ! measure "$@"; then
        SKIP[$cs]="failed ($name, rep $rep): $(grep -v '^[[:space:]]*$' "$LOGS/$name.$cs.$rep.stderr" |
            tail -n 3 | tr '\n|' '  ' | cut -c1-600)"
        echo "bench.sh: $cs will not be run again" >&2
    fi
    SOFT_FAIL=0
}

# --- entity: featurepipe vs DuckDB and polars ---------------------------------------------
ENTITY_PIPELINE=fixtures/pipelines/daily_user_features.toml
ENTITY_CASES=(fp-local duckdb-local polars-local fp-s3 duckdb-s3 polars-s3)
entity_output() {
    local name="$1" cs="$2"
    case "$cs" in
        fp-local) newest_feature_csv "$OUT/entity/$name/fp" ;;
        fp-s3) newest_feature_csv "$S3_ROOT/$BUCKET/entity/$name/fp" ;;
        *-local) echo "$OUT/entity/$name/${cs%-local}.csv" ;;
        *-s3) echo "$S3_ROOT/$BUCKET/entity/$name/${cs%-s3}.csv" ;;
    esac
}

run_entity() {
    local rep name raw cs dst
    # Every output the check reads comes from this run.
    rm -rf "$OUT/entity" "${S3_ROOT:?}/$BUCKET/entity"
    for rep in $(seq "$REPS"); do
        for name in "${SIZE_NAMES[@]}"; do
            raw="$DATA/raw_$name.csv"
            mkdir -p "$OUT/entity/$name"
            for cs in "${ENTITY_CASES[@]}"; do
                [[ -z "${SKIP[$cs]:-}" ]] || continue
                case "$cs" in
                    fp-local)
                        measure "$name" "$cs" "$rep" log "$FP" run --config "$ENTITY_PIPELINE" \
                            --raw "$raw" --features "$OUT/entity/$name/fp" \
                            --execution-date "$EXEC_DATE" --force
                        ;;
                    fp-s3)
                        measure "$name" "$cs" "$rep" log "$FP" run --config "$ENTITY_PIPELINE" \
                            --raw "s3://$BUCKET/raw/raw_$name.csv" --features "s3://$BUCKET/entity/$name/fp" \
                            --endpoint-url "$EP" --execution-date "$EXEC_DATE" --force
                        ;;
                    *-local)
                        measure_peer "$name" "$cs" "$rep" log "$PY" "$PEERS" "entity-${cs%-local}" \
                            --raw "$raw" --out "$(entity_output "$name" "$cs")"
                        ;;
                    *-s3)
                        dst="s3://$BUCKET/entity/$name/${cs%-s3}.csv"
                        measure_peer "$name" "$cs" "$rep" log "$PY" "$PEERS" "entity-${cs%-s3}" \
                            --raw "s3://$BUCKET/raw/raw_$name.csv" --out "$dst" --endpoint-url "$EP"
                        ;;
                esac
            done
        done
    done
}

# Compares every output with featurepipe's local one; fills CHECK_LINES, CHECK_FAILED.
CHECK_FAILED=0
declare -A CHECK_LINES=()
check_entity() {
    local name cs ref out others log
    for name in "${SIZE_NAMES[@]}"; do
        ref="$(entity_output "$name" fp-local)"
        [[ -f "$ref" ]] || die "no featurepipe output for $name"
        others=()
        for cs in "${ENTITY_CASES[@]:1}"; do
            [[ -z "${SKIP[$cs]:-}" ]] || continue
            out="$(entity_output "$name" "$cs")"
            [[ -f "$out" ]] || die "$cs wrote no output for $name (expected $out)"
            others+=(--other "$cs=$out")
        done
        log="$LOGS/check-entity.$name.txt"
        echo "bench.sh: checking the $name outputs against $ref" >&2
        if ! "$PY" "$PEERS" check-entity --ref "$ref" "${others[@]}" >"$log" 2>&1; then
            CHECK_FAILED=1
        fi
        cat "$log" >&2
        CHECK_LINES[$name]="$(cat "$log")"
    done
}

entity_desc() {
    case "$1" in
        fp-*) echo "featurepipe" ;;
        duckdb-*) echo "DuckDB" ;;
        polars-*) echo "polars" ;;
    esac
}

# ratio A B: A / B with two decimals, "-" when either is missing or B is 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

report_entity() {
    local name raw_bytes cs storage wall cpu rss srv fpc per_gb
    echo "# featurepipe benchmark: entity grain vs DuckDB and polars"
    echo
    echo "Generated by \`scripts/bench.sh $ORIG_ARGS\`."
    echo
    machine_table "$SERVER_DESC"
    echo
    echo "The job: \`$ENTITY_PIPELINE\` (group by user_id and the Asia/Seoul day of"
    echo "event_time; count, sum, mean, max, count_distinct, null_count, first, last), as featurepipe runs it"
    echo "and as DuckDB and polars do it in \`scripts/bench_peers.py\` (read CSV, group, sort by key,"
    echo "write CSV). Local: raw file to local file. S3: raw object to object, on the loopback S3"
    echo "server (DuckDB through its httpfs extension, path-style; polars through \`scan_csv\` /"
    echo "\`sink_csv\` with \`storage_options\`)."
    echo
    echo "Medians of $REPS runs per case; the cases alternate within each repetition"
    echo "(${ENTITY_CASES[*]});"
    echo "warm page cache. Each run is a fresh process measured with GNU \`time -v\`: CPU = user + sys (all threads; for the peers, the Python interpreter's start and"
    echo "imports included), max RSS = peak resident memory. Server CPU = what the S3 server used"
    echo "meanwhile (not in CPU). CPU s/GB = CPU / raw input GB (10^9 bytes)."
    echo
    echo "| input | storage | tool | runs | wall s | wall range s | CPU s | CPU s/GB | max RSS MiB | server CPU s |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
    for name in "${SIZE_NAMES[@]}"; do
        raw_bytes="$(stat -L -c %s "$DATA/raw_$name.csv")"
        for cs in "${ENTITY_CASES[@]}"; do
            storage="${cs#*-}"
            if [[ "$(runs_of "$name" "$cs")" == 0 ]]; then
                echo "| $name | $storage | $(entity_desc "$cs") | 0 | - | - | - | - | - | - |"
                continue
            fi
            wall="$(median "$name" "$cs" 4)"
            cpu="$(median "$name" "$cs" 5)"
            rss="$(median "$name" "$cs" 6)"
            srv="-"
            [[ "$storage" == s3 ]] && srv="$(printf '%.2f' "$(median "$name" "$cs" 7)")"
            awk -v n="$name" -v st="$storage" -v d="$(entity_desc "$cs")" -v k="$(runs_of "$name" "$cs")" \
                -v w="$wall" -v r="$(minmax "$name" "$cs")" -v b="$raw_bytes" -v c="$cpu" -v m="$rss" -v s="$srv" \
                'BEGIN { printf "| %s | %s | %s | %d | %.3f | %s | %.2f | %.2f | %.1f | %s |\n", n, st, d, k, w, r, c, c / (b / 1e9), m / 1024, s }'
        done
    done
    echo
    echo "Ratios of the medians (peer / featurepipe for CPU and wall: above 1 means featurepipe"
    echo "used less; featurepipe / peer for RSS: below 1 means featurepipe used less):"
    echo
    echo "| input | storage | CPU DuckDB/fp | CPU polars/fp | wall DuckDB/fp | wall polars/fp | RSS fp/DuckDB | RSS fp/polars |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for name in "${SIZE_NAMES[@]}"; do
        for storage in local s3; do
            get() { [[ "$(runs_of "$name" "$1-$storage")" == 0 ]] || median "$name" "$1-$storage" "$2"; }
            echo "| $name | $storage | $(ratio "$(get duckdb 5)" "$(get fp 5)") | $(ratio "$(get polars 5)" "$(get fp 5)") |" \
                "$(ratio "$(get duckdb 4)" "$(get fp 4)") | $(ratio "$(get polars 4)" "$(get fp 4)") |" \
                "$(ratio "$(get fp 6)" "$(get duckdb 6)") | $(ratio "$(get fp 6)" "$(get polars 6)") |"
        done
    done
    echo
    echo "The entity-grain targets (featurepipe <= 3 CPU-s per GB; >= 4x less CPU than DuckDB and than"
    echo "polars; RSS <= 1/3 of DuckDB's), against these medians:"
    echo
    echo "| input | storage | fp CPU s/GB <= 3 | DuckDB/fp CPU >= 4 | polars/fp CPU >= 4 | fp/DuckDB RSS <= 0.33 |"
    echo "|---|---|---|---|---|---|"
    for name in "${SIZE_NAMES[@]}"; do
        raw_bytes="$(stat -L -c %s "$DATA/raw_$name.csv")"
        for storage in local s3; do
            get() { [[ "$(runs_of "$name" "$1-$storage")" == 0 ]] || median "$name" "$1-$storage" "$2"; }
            fpc="$(get fp 5)"
            per_gb="$(awk -v c="$fpc" -v b="$raw_bytes" 'BEGIN { printf "%.2f", c / (b / 1e9) }')"
            met() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { if (v == "-") print "-"; else if ((op == "le" && v <= t) || (op == "ge" && v >= t)) print v " met"; else print v " not met" }'; }
            echo "| $name | $storage | $(met "$per_gb" 3 le) | $(met "$(ratio "$(get duckdb 5)" "$fpc")" 4 ge) |" \
                "$(met "$(ratio "$(get polars 5)" "$fpc")" 4 ge) | $(met "$(ratio "$(get fp 6)" "$(get duckdb 6)")" 0.33 le) |"
        done
    done
    echo
    echo "## Do the outputs agree?"
    echo
    echo "Each output compared with featurepipe's local-run feature.csv (\`bench_peers.py check-entity\`):"
    echo "row count and the set of (user_id, event_date) keys must be equal (OK / MISMATCH); then,"
    echo "for information, the number of rows per column whose value differs (floats within a"
    echo "relative 1e-9 count as equal; \"text\" counts cells whose text differs)."
    echo
    for name in "${SIZE_NAMES[@]}"; do
        echo "$name:"
        echo
        echo '```text'
        echo "${CHECK_LINES[$name]:-not checked}"
        echo '```'
        echo
    done
    if [[ "${#SKIP[@]}" -gt 0 ]]; then
        echo "## Cases that could not run"
        echo
        for cs in "${!SKIP[@]}"; do
            echo "- $cs: ${SKIP[$cs]}"
        done
        echo
    fi
    cat <<'NOTES'
## Semantic differences the peers do not match exactly

- `first` / `last` on tied timestamps: featurepipe takes, among the rows with the earliest
  (latest) `event_time` of a group, the first (last) in input order. The polars query asks
  for the same (`get(arg_min)`, and `arg_max` over the reversed group), which holds as
  long as polars keeps input order within a group (the check above shows whether it did).
  DuckDB's `arg_min_null` / `arg_max_null` keep whichever tied row reaches the aggregate
  first, which with its parallel scan is not input order: the `first_event_type` /
  `last_device` counts in the check above are such ties (timestamps here have whole
  seconds).
- Floats: all three print the shortest text that reads back as the same double, but the
  sums are added in different orders (featurepipe in input order like Python's `sum`,
  DuckDB per thread then combined, polars with its own summation), so the last digits of
  `amount_sum` / `amount_mean` can differ ("text" counts above); the value counts above
  include only differences beyond 1e-9 relative.
- Cells that are not numbers or timestamps: featurepipe skips a non-numeric `amount` /
  `event_value` cell (not summed, not counted as null) and puts a row whose `event_time` is
  not a timestamp into the empty bucket. The peers read those columns as typed (DOUBLE,
  TIMESTAMPTZ / Datetime UTC) and would stop with an error on such a cell. The generated
  input has none (every non-empty cell parses); timestamps all end in `Z`.
- The null key: featurepipe writes an empty cell for a null `user_id` and for the empty
  bucket; the peers write a quoted empty string `""`. Both read back as the same key.
- The work besides the aggregation: featurepipe also runs the pipeline's rules
  (`required_columns`, `not_null`), profiles the output columns, hashes the feature file
  (SHA-256) and writes `schema.json`, `metadata.json`, a run record and a lease. The peers
  only read, aggregate, sort and write the CSV; their CPU and RSS include starting Python
  and importing the package.
NOTES
}

# --- capped: S3 through a per-connection throughput cap -----------------------------------
CAPPED_CASES=(fp polars floor-par floor-single)
declare -A CAPPED_PUT_NOTE=()
run_capped() {
    local rep name raw cs put_bytes fp_out src
    rm -rf "${S3_ROOT:?}/$BUCKET/capped"
    for rep in $(seq "$REPS"); do
        for name in "${SIZE_NAMES[@]}"; do
            raw="$DATA/raw_$name.csv"
            src="s3://$BUCKET/raw/raw_$name.csv"
            for cs in "${CAPPED_CASES[@]}"; do
                [[ -z "${SKIP[$cs]:-}" ]] || continue
                case "$cs" in
                    fp)
                        measure "$name" "$cs" "$rep" log "$FP" run --raw "$src" \
                            --features "s3://$BUCKET/capped/$name/fp" --endpoint-url "$PROXY_EP" \
                            --execution-date "$EXEC_DATE" --force
                        ;;
                    polars)
                        measure_peer "$name" "$cs" "$rep" log "$PY" "$PEERS" rowsum-polars --raw "$src" \
                            --out "s3://$BUCKET/capped/$name/polars.csv" --endpoint-url "$PROXY_EP"
                        ;;
                    floor-*)
                        fp_out="$(newest_feature_csv "$S3_ROOT/$BUCKET/capped/$name/fp")"
                        if [[ -n "$fp_out" ]]; then
                            put_bytes="$(stat -L -c %s "$fp_out")"
                            CAPPED_PUT_NOTE[$name]="$put_bytes bytes (size of feature.csv)"
                        else
                            put_bytes=$(($(stat -L -c %s "$raw") * 15 / 100))
                            CAPPED_PUT_NOTE[$name]="$put_bytes bytes (ESTIMATED as 15% of raw: no feature.csv found)"
                        fi
                        if [[ "$cs" == floor-par ]]; then
                            measure "$name" "$cs" "$rep" log "$IO_FLOOR" floor --bucket "$BUCKET" \
                                --key "raw/raw_$name.csv" --put-bytes "$put_bytes" \
                                --out-key "capped/$name/floor-par" --endpoint-url "$PROXY_EP" \
                                --ranges "$RANGES" --range-size "$RANGE_SIZE" --put-concurrency "$RANGES"
                        else
                            measure "$name" "$cs" "$rep" log "$IO_FLOOR" floor --bucket "$BUCKET" \
                                --key "raw/raw_$name.csv" --put-bytes "$put_bytes" \
                                --out-key "capped/$name/floor-single" --endpoint-url "$PROXY_EP" \
                                --put-concurrency 3
                        fi
                        ;;
                esac
            done
        done
    done
}

# conn_stats T0 T1: connections the proxy accepted between T0 and T1 (Unix seconds), the
# most of them open at once, and the most bytes any one carried server -> client.
conn_stats() {
    [[ -f "$LOGS/proxy.conns" ]] || { echo "0 0 0"; return; }
    awk -v t0="$1" -v t1="$2" '
        {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            if (v["open"] < t0 || v["open"] > t1) next
            n++; ev[n * 2 - 1] = v["open"] " 1"; ev[n * 2] = v["close"] " -1"
            if (v["down"] + 0 > down) down = v["down"] + 0
        }
        END {
            m = 2 * n
            # insertion sort of the open (+1) and close (-1) events by time; closes first on ties
            for (i = 2; i <= m; i++) {
                x = ev[i]; split(x, a, " "); j = i - 1
                while (j >= 1) { split(ev[j], b, " "); if (b[1] + 0 < a[1] + 0 || (b[1] == a[1] && b[2] <= a[2])) break; ev[j + 1] = ev[j]; j-- }
                ev[j + 1] = x
            }
            for (i = 1; i <= m; i++) { split(ev[i], a, " "); cur += a[2]; if (cur > peak) peak = cur }
            printf "%d %d %d\n", n, peak, down
        }' "$LOGS/proxy.conns"
}

capped_desc() {
    case "$1" in
        fp) echo "featurepipe run S3 -> S3 (row grain)" ;;
        polars) echo "polars, same row_sum job S3 -> S3" ;;
        floor-par) echo "parallel floor: $RANGES x $((RANGE_SIZE >> 20)) MiB range GETs + PUT, $RANGES parts in flight" ;;
        floor-single) echo "single-stream floor: one GET + PUT, 3 parts in flight" ;;
    esac
}

report_capped() {
    local name raw_bytes cs wall cpu rss srv prx conns peak down t0 t1 fp_out pl_out
    # Connection counts per run, from the proxy's log (written as connections close).
    local stats_file="$OUT/conns-capped.tsv"
    printf 'size\tcase\trep\tconns\tpeak\tmax_down\n' >"$stats_file"
    while IFS=$'\t' read -r name cs rep _ _ _ _ _ t0 t1; do
        [[ "$name" == size ]] && continue
        read -r conns peak down < <(conn_stats "$t0" "$t1")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$cs" "$rep" "$conns" "$peak" "$down" >>"$stats_file"
    done <"$RUNS"
    cmedian() {
        awk -F'\t' -v s="$1" -v c="$2" -v col="$3" 'NR > 1 && $1 == s && $2 == c { print $col }' "$stats_file" |
            sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
    }
    echo "# featurepipe benchmark: S3 behind a per-connection throughput cap"
    echo
    echo "Generated by \`scripts/bench.sh $ORIG_ARGS\`."
    echo
    machine_table "$SERVER_DESC"
    echo "| cap | examples/throttle_proxy on 127.0.0.1: $PROXY_RATE bytes/s per TCP connection, each way |"
    echo
    echo "A scale model of S3, which serves one connection at about 85-100 MB/s and more only over"
    echo "more connections: every case talks to the S3 server through the proxy (--endpoint-url),"
    echo "which paces each connection it carries. Medians of $REPS runs per case; the cases alternate"
    echo "within each repetition (${CAPPED_CASES[*]}); warm page cache. CPU = user + sys of the"
    echo "measured process; server / proxy CPU = what those processes used meanwhile. MB/s = raw"
    echo "input bytes / 10^6 / wall s. Connections: accepted by the proxy during the run (median);"
    echo "peak = most open at once; biggest GET = most bytes one connection carried to the client."
    echo
    echo "| input | case | wall s | wall range s | MB/s | CPU s | max RSS MiB | server CPU s | proxy CPU s | connections | peak open | biggest GET MB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for name in "${SIZE_NAMES[@]}"; do
        raw_bytes="$(stat -L -c %s "$DATA/raw_$name.csv")"
        for cs in "${CAPPED_CASES[@]}"; do
            if [[ "$(runs_of "$name" "$cs")" == 0 ]]; then
                echo "| $name | $(capped_desc "$cs") | - | - | - | - | - | - | - | - | - | - |"
                continue
            fi
            wall="$(median "$name" "$cs" 4)"
            cpu="$(median "$name" "$cs" 5)"
            rss="$(median "$name" "$cs" 6)"
            srv="$(median "$name" "$cs" 7)"
            prx="$(median "$name" "$cs" 8)"
            awk -v n="$name" -v d="$(capped_desc "$cs")" -v w="$wall" -v r="$(minmax "$name" "$cs")" \
                -v b="$raw_bytes" -v c="$cpu" -v m="$rss" -v s="$srv" -v p="$prx" \
                -v k="$(cmedian "$name" "$cs" 4)" -v pk="$(cmedian "$name" "$cs" 5)" -v dn="$(cmedian "$name" "$cs" 6)" \
                'BEGIN { printf "| %s | %s | %.3f | %s | %.0f | %.2f | %.1f | %.2f | %.2f | %s | %s | %.1f |\n", n, d, w, r, b / 1e6 / w, c, m / 1024, s, p, k, pk, dn / 1e6 }'
        done
    done
    echo
    echo "| input | wall fp / single-stream floor | wall fp / parallel floor | wall polars / parallel floor | wall single / parallel floor | floor PUT size |"
    echo "|---|---:|---:|---:|---:|---|"
    for name in "${SIZE_NAMES[@]}"; do
        get() { [[ "$(runs_of "$name" "$1")" == 0 ]] || median "$name" "$1" 4; }
        echo "| $name | $(ratio "$(get fp)" "$(get floor-single)") | $(ratio "$(get fp)" "$(get floor-par)") |" \
            "$(ratio "$(get polars)" "$(get floor-par)") | $(ratio "$(get floor-single)" "$(get floor-par)") | ${CAPPED_PUT_NOTE[$name]:--} |"
    done
    echo
    echo "Output check: the last run's featurepipe feature.csv and polars CSV, row by row (values"
    echo "equal within 1e-9 relative; featurepipe ends lines with CRLF as Python's csv module does,"
    echo "polars with LF):"
    echo
    for name in "${SIZE_NAMES[@]}"; do
        fp_out="$(newest_feature_csv "$S3_ROOT/$BUCKET/capped/$name/fp")"
        pl_out="$S3_ROOT/$BUCKET/capped/$name/polars.csv"
        if [[ -z "$fp_out" || ! -f "$pl_out" ]]; then
            echo "- $name: not checked (an output is missing)"
            continue
        fi
        paste -d, <(tr -d '\r' <"$fp_out") "$pl_out" | awk -F, -v n="$name" '
            NR == 1 { next }
            { rows++; d = $1 - $2; if (d < 0) d = -d; m = ($1 < 0 ? -$1 : $1); if (m < 1) m = 1
              if ($2 == "" || d > 1e-9 * m) bad++ }
            END { printf "- %s: %d rows compared line by line, %d differ%s\n",
                  n, rows, bad, (bad == 0 ? "" : " (MISMATCH)") }'
        [[ "$(wc -l <"$fp_out")" == "$(wc -l <"$pl_out")" ]] || echo "  (MISMATCH: the line counts differ: $(wc -l <"$fp_out") vs $(wc -l <"$pl_out"))"
    done
    echo
    if [[ "${#SKIP[@]}" -gt 0 ]]; then
        echo "## Cases that could not run"
        echo
        for cs in "${!SKIP[@]}"; do
            echo "- $cs: ${SKIP[$cs]}"
        done
        echo
    fi
}

# --- shared by formats and parts -----------------------------------------------------------
# run_reps FN CASE...: runs FN SIZE CASE REP for every repetition, input size and case. The
# cases' order rotates by one each repetition (rep 1: a b c, rep 2: b c a, rep 3: c a b),
# so that no case always runs first, or always right after the same other one.
run_reps() {
    local fn="$1" rep name k
    shift
    local cases=("$@")
    for rep in $(seq "$REPS"); do
        for name in "${SIZE_NAMES[@]}"; do
            for k in "${!cases[@]}"; do
                "$fn" "$name" "${cases[$(((k + rep - 1) % ${#cases[@]}))]}" "$rep"
            done
        done
    done
}

# stats_cells SIZE CASE: the case's runs, median wall, wall range, median CPU and median
# max RSS (MiB), as table cells.
stats_cells() {
    local k
    k="$(runs_of "$1" "$2")"
    if [[ "$k" == 0 ]]; then
        echo "0 | - | - | - | -"
        return
    fi
    awk -v k="$k" -v w="$(median "$1" "$2" 4)" -v r="$(minmax "$1" "$2")" \
        -v c="$(median "$1" "$2" 5)" -v m="$(median "$1" "$2" 6)" \
        'BEGIN { printf "%d | %.3f | %s | %.2f | %.1f", k, w, r, c, m / 1024 }'
}

# ratio_of_medians SIZE A B COLUMN: A's median / B's median ("-" without runs).
ratio_of_medians() {
    if [[ "$(runs_of "$1" "$2")" == 0 || "$(runs_of "$1" "$3")" == 0 ]]; then
        echo "-"
    else
        ratio "$(median "$1" "$2" "$4")" "$(median "$1" "$3" "$4")"
    fi
}

# verdict VALUE LIMIT...: "met" when every VALUE (a list, "-" for missing) is <= LIMIT.
verdict() {
    local limit="$1" v
    shift
    for v in "$@"; do
        [[ "$v" != "-" ]] || { echo "-"; return; }
        awk -v v="$v" -v t="$limit" 'BEGIN { exit !(v <= t) }' || { echo "**not met**"; return; }
    done
    echo "met"
}

# The version folder a run with --features PREFIX wrote.
version_dir() { echo "$1/v_${EXEC_DATE//-/}T000000"; }

# pass_times METADATA_JSON: its pass's "wall_ms scan_cpu_ms write_cpu_ms" ("-" for null).
pass_times() {
    awk '/"pass": *\{/ { p = 1; next }
         p && /\}/ { exit }
         p { line = $0; gsub(/[",:]/, " ", line); split(line, f, " "); v[f[1]] = f[2] }
         END { for (i = 1; i <= 3; i++) { k = (i == 1 ? "wall_ms" : i == 2 ? "scan_cpu_ms" : "write_cpu_ms")
                 printf "%s%s", (k in v && v[k] != "null" ? v[k] : "-"), (i < 3 ? "\t" : "\n") } }' "$1"
}

# --- formats: feature.csv, feature.parquet or both ------------------------------------------
FORMATS=(csv parquet csv+parquet)
FORMATS_CASES=()
for grain in row entity; do
    for fmt in "${FORMATS[@]}"; do FORMATS_CASES+=("$grain-$fmt"); done
done
PASS_TSV="$OUT/pass-formats.tsv"
formats_prefix() { echo "$OUT/formats/$1/$2"; }
# The --output-formats of a case: row-csv+parquet -> csv,parquet.
formats_flag() {
    local f="${1#*-}"
    echo "${f/+/,}"
}

run_formats_one() {
    local name="$1" cs="$2" rep="$3" prefix config=()
    prefix="$(formats_prefix "$name" "$cs")"
    [[ "$cs" != entity-* ]] || config=(--config "$ENTITY_PIPELINE")
    measure "$name" "$cs" "$rep" log "$FP" run "${config[@]}" --raw "$DATA/raw_$name.csv" \
        --features "$prefix" --output-formats "$(formats_flag "$cs")" --execution-date "$EXEC_DATE" --force
    printf '%s\t%s\t%s\t%s\n' "$name" "$cs" "$rep" "$(pass_times "$(version_dir "$prefix")/metadata.json")" >>"$PASS_TSV"
}

run_formats() {
    rm -rf "$OUT/formats"
    printf 'size\tcase\trep\tpass_wall_ms\tscan_cpu_ms\twrite_cpu_ms\n' >"$PASS_TSV"
    run_reps run_formats_one "${FORMATS_CASES[@]}"
}

# The file FILE of the last run of SIZE CASE.
formats_file() { echo "$(version_dir "$(formats_prefix "$1" "$2")")/$3"; }

# A run writing both files must write the very feature.csv of a csv-only run and the very
# feature.parquet of a parquet-only run. Fills CHECK_LINES, CHECK_FAILED.
check_formats() {
    local name grain both file alone a b line
    for name in "${SIZE_NAMES[@]}"; do
        CHECK_LINES[$name]=""
        for grain in row entity; do
            both="$grain-csv+parquet"
            for file in feature.csv feature.parquet; do
                alone="$grain-csv"
                [[ "$file" == feature.parquet ]] && alone="$grain-parquet"
                a="$(sha256sum <"$(formats_file "$name" "$alone" "$file")" | cut -c1-64)" || a=missing
                b="$(sha256sum <"$(formats_file "$name" "$both" "$file")" | cut -c1-64)" || b=missing
                if [[ "$a" == "$b" && "$a" != missing ]]; then
                    line="OK $grain $file: $alone and $both both wrote sha256 $a"
                else
                    line="MISMATCH $grain $file: $alone wrote $a, $both wrote $b"
                    CHECK_FAILED=1
                fi
                echo "bench.sh: $line" >&2
                CHECK_LINES[$name]+="$line"$'\n'
            done
        done
    done
}

# pass_median SIZE CASE COLUMN: median of a column of $PASS_TSV, milliseconds -> seconds.
pass_median() {
    awk -F'\t' -v s="$1" -v c="$2" -v col="$3" 'NR > 1 && $1 == s && $2 == c && $col != "-" { print $col / 1000 }' "$PASS_TSV" |
        median_of | awk '{ printf "%.2f\n", $1 }' || echo "-"
}

mb_of() { if [[ -f "$1" ]]; then awk -v b="$(stat -L -c %s "$1")" 'BEGIN { printf "%.1f", b / 1e6 }'; else echo "-"; fi; }

report_formats() {
    local name grain cs csv both pq r1 r2 met
    echo "# featurepipe benchmark: output formats (feature.csv, feature.parquet, both)"
    echo
    echo "Generated by \`scripts/bench.sh $ORIG_ARGS\`."
    echo
    machine_table "$SERVER_DESC"
    echo
    echo "Local -> local runs of the row grain (the default pipeline: \`row_sum\`) and of the entity"
    echo "grain (\`$ENTITY_PIPELINE\`), each with \`--output-formats csv\`,"
    echo "\`parquet\` and \`csv,parquet\`. Medians of $REPS runs per case; the cases"
    echo "(${FORMATS_CASES[*]}) run in an order that rotates by one each repetition;"
    echo "warm page cache. Each run is a fresh process measured with GNU \`time -v\`: CPU = user + sys"
    echo "of all its threads, max RSS = peak resident memory. Scanner / feature thread CPU = the"
    echo "pass's \`scan_cpu_ms\` / \`write_cpu_ms\` in metadata.json (the feature thread formats and"
    echo "hashes feature.csv, profiles the columns, and encodes, compresses and hashes feature.parquet)."
    echo "File sizes: the last run's."
    echo
    echo "| input | grain | --output-formats | runs | wall s | wall range s | CPU s | max RSS MiB | scanner CPU s | feature thread CPU s | feature.csv MB | feature.parquet MB |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for name in "${SIZE_NAMES[@]}"; do
        for cs in "${FORMATS_CASES[@]}"; do
            echo "| $name | ${cs%%-*} | $(formats_flag "$cs") | $(stats_cells "$name" "$cs") |" \
                "$(pass_median "$name" "$cs" 5) | $(pass_median "$name" "$cs" 6) |" \
                "$(mb_of "$(formats_file "$name" "$cs" feature.csv)") | $(mb_of "$(formats_file "$name" "$cs" feature.parquet)") |"
        done
    done
    echo
    echo "Ratios against \`csv\` alone: of the medians, and paired (the median over the repetitions"
    echo "of the ratio of the two runs of one repetition). Target: with Parquet on, at most 25% more"
    echo "CPU than CSV alone at 1 GB, judged on CPU csv,parquet / csv (both ratios)."
    echo
    echo "| input | grain | CPU csv,parquet / csv | paired | CPU parquet / csv | paired | wall csv,parquet / csv | paired | max RSS csv,parquet / csv | target CPU <= 1.25 at 1 GB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for name in "${SIZE_NAMES[@]}"; do
        for grain in row entity; do
            csv="$grain-csv"
            both="$grain-csv+parquet"
            pq="$grain-parquet"
            met="- (1 GB only)"
            r1="$(ratio_of_medians "$name" "$both" "$csv" 5)"
            r2="$(paired "$name" "$both" "$csv" 5)"
            [[ "$name" != 1GB ]] || met="$(verdict 1.25 "$r1" "$r2")"
            echo "| $name | $grain | $r1 | $r2 | $(ratio_of_medians "$name" "$pq" "$csv" 5) | $(paired "$name" "$pq" "$csv" 5) |" \
                "$(ratio_of_medians "$name" "$both" "$csv" 4) | $(paired "$name" "$both" "$csv" 4) |" \
                "$(ratio_of_medians "$name" "$both" "$csv" 6) | $met |"
        done
    done
    echo
    echo "## Do the files agree?"
    echo
    echo "The last run's files, by sha256: a run writing both formats must write the feature.csv of a"
    echo "csv-only run and the feature.parquet of a parquet-only run."
    echo
    for name in "${SIZE_NAMES[@]}"; do
        echo "$name:"
        echo
        echo '```text'
        printf '%s' "${CHECK_LINES[$name]:-not checked}"
        echo '```'
        echo
    done
}

# --- parts: one raw file vs 100 part files ------------------------------------------------
PARTS_CASES=(one-local parts-local one-gz-local parts-gz-local one-s3 parts-s3 one-gz-s3 parts-gz-s3)
SHA_TSV="$OUT/sha-parts.tsv"

# parts_raw SIZE CASE: the case's --raw.
parts_raw() {
    local name="$1" cs="$2"
    case "$cs" in
        one-local) echo "$DATA/raw_$name.csv" ;;
        one-gz-local) echo "$DATA/raw_$name.csv.gz" ;;
        parts-local) echo "$(parts_dir "$name")/part-*.csv" ;;
        parts-gz-local) echo "$(parts_gz_dir "$name")/part-*.csv.gz" ;;
        one-s3) echo "s3://$BUCKET/raw/raw_$name.csv" ;;
        one-gz-s3) echo "s3://$BUCKET/raw/raw_$name.csv.gz" ;;
        parts-s3) echo "s3://$BUCKET/parts/$name/part-*.csv" ;;
        parts-gz-s3) echo "s3://$BUCKET/parts-gz/$name/part-*.csv.gz" ;;
    esac
}
# parts_prefix SIZE CASE: its --features; parts_feature_csv: where its feature.csv is on
# this machine's disk (S3: in the built-in server's folder).
parts_prefix() {
    case "$2" in
        *-local) echo "$OUT/parts/$1/$2" ;;
        *-s3) echo "s3://$BUCKET/parts-out/$1/$2" ;;
    esac
}
parts_feature_csv() {
    case "$2" in
        *-local) echo "$(version_dir "$OUT/parts/$1/$2")/feature.csv" ;;
        *-s3) echo "$(version_dir "$S3_ROOT/$BUCKET/parts-out/$1/$2")/feature.csv" ;;
    esac
}

run_parts_one() {
    local name="$1" cs="$2" rep="$3" ep=() out sha
    [[ "$cs" != *-s3 ]] || ep=(--endpoint-url "$EP")
    out="$(parts_feature_csv "$name" "$cs")"
    measure "$name" "$cs" "$rep" log "$FP" run --raw "$(parts_raw "$name" "$cs")" \
        --features "$(parts_prefix "$name" "$cs")" "${ep[@]}" --execution-date "$EXEC_DATE" --force
    # Outside the measured run: the digest of what this run wrote (it exited 0 with --force:
    # the version holds its bytes).
    sha="$(sha256sum <"$out" | cut -c1-64)" || die "$cs wrote no feature.csv for $name (expected $out)"
    printf '%s\t%s\t%s\t%s\n' "$name" "$cs" "$rep" "$sha" >>"$SHA_TSV"
}

run_parts() {
    rm -rf "$OUT/parts" "${S3_ROOT:?}/$BUCKET/parts-out"
    printf 'size\tcase\trep\tfeature_csv_sha256\n' >"$SHA_TSV"
    run_reps run_parts_one "${PARTS_CASES[@]}"
}

# Every run's feature.csv must be byte-identical to the single local file's (first rep).
# Fills CHECK_LINES, CHECK_FAILED.
check_parts() {
    local name ref cs shas runs line
    for name in "${SIZE_NAMES[@]}"; do
        CHECK_LINES[$name]=""
        ref="$(awk -F'\t' -v s="$name" '$1 == s && $2 == "one-local" { print $4; exit }' "$SHA_TSV")"
        [[ -n "$ref" ]] || die "parts: no feature.csv digest of one-local for $name"
        for cs in "${PARTS_CASES[@]}"; do
            # Each distinct digest with the number of runs that wrote it.
            shas="$(awk -F'\t' -v s="$name" -v c="$cs" '$1 == s && $2 == c { print $4 }' "$SHA_TSV" | sort | uniq -c |
                awk '{ printf "%s%s (%d runs)", (NR > 1 ? ", " : ""), $2, $1 }')"
            runs="$(runs_of "$name" "$cs")"
            if [[ "$shas" == "$ref ($runs runs)" ]]; then
                line="OK $cs: all $runs runs wrote feature.csv with sha256 $ref"
            else
                line="MISMATCH $cs: feature.csv sha256 ${shas:-none}; expected $ref (one-local) from all $runs runs"
                CHECK_FAILED=1
            fi
            echo "bench.sh: $name $line" >&2
            CHECK_LINES[$name]+="$line"$'\n'
        done
    done
}

parts_storage() { echo "${1##*-}"; }
parts_compression() { if [[ "$1" == *-gz-* ]]; then echo "gzip -1"; else echo "none"; fi; }
parts_files() {
    if [[ "$1" == parts-* ]]; then
        if [[ "$1" == *-gz-* ]]; then echo "$PARTS_N x part-NNNNN.csv.gz"; else echo "$PARTS_N x part-NNNNN.csv"; fi
    elif [[ "$1" == *-gz-* ]]; then echo "1 x raw.csv.gz"; else echo "1 x raw.csv"; fi
}

report_parts() {
    local name cs srv one parts w1 w2 c1 c2 met
    echo "# featurepipe benchmark: one raw file vs $PARTS_N part files"
    echo
    echo "Generated by \`scripts/bench.sh $ORIG_ARGS\`."
    echo
    machine_table "$SERVER_DESC"
    echo
    echo "The row grain (default pipeline) on the same day as one file and as $PARTS_N part files:"
    echo "the raw CSV split at line boundaries into parts of about equal size, each starting with"
    echo "the header (\`bench/data/parts/SIZE/part-00000.csv\` ...), read with"
    echo "\`--raw 'DIR/part-*.csv'\`; compressed: every part \`gzip -1\`'ed against the single file"
    echo "\`gzip -1\`'ed. Local -> local, and S3 -> S3 on the built-in S3 server (the parts listed"
    echo "with ListObjectsV2, then one GET each, one after another). Medians of $REPS runs per"
    echo "case; the cases (${PARTS_CASES[*]}) run in an order that rotates by one each repetition;"
    echo "warm page cache. CPU = user + sys of the featurepipe process (all threads); server CPU ="
    echo "what the S3 server used meanwhile (not in CPU)."
    echo
    echo "| input | storage | compression | raw input | runs | wall s | wall range s | CPU s | max RSS MiB | server CPU s |"
    echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
    for name in "${SIZE_NAMES[@]}"; do
        for cs in "${PARTS_CASES[@]}"; do
            srv="-"
            if [[ "$cs" == *-s3 && "$(runs_of "$name" "$cs")" != 0 ]]; then srv="$(printf '%.2f' "$(median "$name" "$cs" 7)")"; fi
            echo "| $name | $(parts_storage "$cs") | $(parts_compression "$cs") | $(parts_files "$cs") | $(stats_cells "$name" "$cs") | $srv |"
        done
    done
    echo
    echo "Parts against one file: ratios of the medians, and paired (the median over the"
    echo "repetitions of the ratio of the two runs of one repetition). Target: the parts within 10%"
    echo "of the single file at 1 GB, wall and CPU, judged on both ratios."
    echo
    echo "| input | storage | compression | wall parts / one | paired | CPU parts / one | paired | max RSS parts / one | target <= 1.10 at 1 GB |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---|"
    for name in "${SIZE_NAMES[@]}"; do
        for cs in "${PARTS_CASES[@]}"; do
            [[ "$cs" == one-* ]] || continue
            one="$cs"
            parts="parts-${cs#one-}"
            w1="$(ratio_of_medians "$name" "$parts" "$one" 4)"
            w2="$(paired "$name" "$parts" "$one" 4)"
            c1="$(ratio_of_medians "$name" "$parts" "$one" 5)"
            c2="$(paired "$name" "$parts" "$one" 5)"
            met="- (1 GB only)"
            [[ "$name" != 1GB ]] || met="$(verdict 1.10 "$w1" "$w2" "$c1" "$c2")"
            echo "| $name | $(parts_storage "$cs") | $(parts_compression "$cs") | $w1 | $w2 | $c1 | $c2 |" \
                "$(ratio_of_medians "$name" "$parts" "$one" 6) | $met |"
        done
    done
    echo
    echo "## Are the outputs byte-identical?"
    echo
    echo "The sha256 of every run's feature.csv (taken right after the run, outside its"
    echo "measurement), against the first one-local run's; the script fails on any difference."
    echo
    for name in "${SIZE_NAMES[@]}"; do
        echo "$name:"
        echo
        echo '```text'
        printf '%s' "${CHECK_LINES[$name]:-not checked}"
        echo '```'
        echo
    done
}

# --- run and report ----------------------------------------------------------------------
case "$MODE" in
    classic) run_classic ;;
    entity) run_entity; check_entity ;;
    capped) run_capped ;;
    formats) run_formats; check_formats ;;
    parts) run_parts; check_parts ;;
esac
# (The proxy writes a connection's line when it closes: give the last ones a moment.)
[[ "$MODE" != capped ]] || sleep 1
"report_$MODE" >"$RESULTS"

echo >&2
cat "$RESULTS"
echo >&2
echo "bench.sh: wrote $RESULTS (per-run numbers: $RUNS)" >&2
if [[ "$CHECK_FAILED" == 1 ]]; then
    die "the $MODE outputs do not agree (see $RESULTS)"
fi
