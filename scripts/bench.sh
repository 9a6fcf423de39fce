#!/usr/bin/env bash
# Benchmark featurepipe against the plain I/O floor on this machine, in one run.
#
#   scripts/bench.sh [--reps N] [--big] [--cases s3,local,floor,cat,gz] [--seed S]
#                    [--endpoint-url URL [--bucket B] [--server-pid PID] [--server-label TEXT]]
#                    [--results FILE]
#
# Inputs: generated raw event CSVs of 100 MB and 1 GB (--big adds 10 GB), in bench/data/
# (generated once, deterministic: examples/gen_events). An in-process S3 server
# (examples/s3_server: s3s-fs over loopback HTTP, SigV4 auth) serves bench/data/s3/; the raw
# files are uploaded to bucket `bench` once (examples/io_floor put).
# --endpoint-url uses an S3 server that is already running instead (MinIO, moto, your own):
# credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, bucket B (default bench,
# created if missing), the server's CPU counted when --server-pid names its process.
# --results: where the report goes (default bench/results.md).
#
# Cases, run alternately (rep 1: a b c d, rep 2: a b c d, ...) so drift hits them all alike:
#   s3     (a) featurepipe run, raw and features on S3 (the local S3 server)
#   local  (b) featurepipe run, raw and features on local disk
#   floor  (c) io_floor floor: GET the raw object + multipart PUT of as many bytes as the
#              feature.csv that (b) wrote (the least any S3 -> S3 run must do)
#   cat    (d) cat raw.csv > /dev/null (the least any local run must do)
#   gz     (e) featurepipe run on raw.csv.gz (gzip -1 of the same CSV), local -> local
# Each run is measured with GNU time -v (CPU, max RSS) and a high-resolution wall clock.
# Report: medians per case, MB/s = raw bytes / wall, ratios (a)/(c) and (b)/(d), written to
# the --results file (bench/results.md) and printed. Per-run numbers: bench/out/runs.tsv,
# logs: bench/out/logs/.
# The page cache is warm (every input is read once before measuring).
set -euo pipefail
export LC_ALL=C

usage() {
    sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
RESULTS=bench/results.md
SEED=1
CASES="s3,local,floor,cat,gz"
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
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer, got '$REPS'"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be an unsigned integer, got '$SEED'"
[[ -z "$EXTERNAL_PID" || -d "/proc/$EXTERNAL_PID" ]] || die "--server-pid $EXTERNAL_PID: no such process"
[[ -z "$EXTERNAL_PID$SERVER_LABEL" || -n "$EXTERNAL_EP" ]] || die "--server-pid and --server-label go with --endpoint-url"
IFS=',' read -r -a CASE_LIST <<<"$CASES"
for c in "${CASE_LIST[@]}"; do
    case "$c" in s3|local|floor|cat|gz) ;; *) die "unknown case '$c' (expected s3, local, floor, cat, gz)" ;; esac
done
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
if has_case s3 || has_case local; then
    BUILD_TARGETS=(--bin featurepipe "${BUILD_TARGETS[@]}")
fi
echo "bench.sh: cargo build --release ${BUILD_TARGETS[*]}" >&2
cargo build --release "${BUILD_TARGETS[@]}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
FP="$TARGET_DIR/release/featurepipe"
S3_SERVER="$TARGET_DIR/release/examples/s3_server"
GEN="$TARGET_DIR/release/examples/gen_events"
IO_FLOOR="$TARGET_DIR/release/examples/io_floor"

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
    if has_case gz && [[ ! -f "$f.gz" || "$f" -nt "$f.gz" ]]; then
        echo "bench.sh: compressing $f" >&2
        gzip -1 -c "$f" >"$f.gz.tmp" && mv "$f.gz.tmp" "$f.gz"
    fi
done

# --- S3 server ---------------------------------------------------------------------------
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The process whose CPU counts as the server's (none known: reported as "-").
CPU_PID=""
if [[ -z "$EXTERNAL_EP" ]]; then
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

for name in "${SIZE_NAMES[@]}"; do
    f="$DATA/raw_$name.csv"
    key="raw/raw_$name.csv"
    if [[ -z "$EXTERNAL_EP" ]]; then
        obj="$S3_ROOT/$BUCKET/$key"
        if [[ -f "$obj" && "$(stat -c %s "$obj")" == "$(stat -c %s "$f")" && "$obj" -nt "$f" ]]; then
            continue
        fi
    elif [[ "$("$IO_FLOOR" size --bucket "$BUCKET" --key "$key" --endpoint-url "$EP")" == "$(stat -c %s "$f")" ]]; then
        continue
    fi
    echo "bench.sh: uploading $f to s3://$BUCKET/$key" >&2
    "$IO_FLOOR" put --bucket "$BUCKET" --key "$key" --file "$f" --endpoint-url "$EP" >&2
    if [[ -z "$EXTERNAL_EP" ]]; then
        cmp -s "$f" "$obj" || die "uploaded object $obj differs from $f"
    fi
done

# Warm the page cache so no case pays for the first read.
for name in "${SIZE_NAMES[@]}"; do
    cat "$DATA/raw_$name.csv" >/dev/null
    if [[ -z "$EXTERNAL_EP" ]]; then cat "$S3_ROOT/$BUCKET/raw/raw_$name.csv" >/dev/null; fi
    if has_case gz; then cat "$DATA/raw_$name.csv.gz" >/dev/null; fi
done

# --- measuring ---------------------------------------------------------------------------
CLK_TCK="$(getconf CLK_TCK)"
server_cpu_ticks() {
    if [[ -n "$CPU_PID" ]]; then awk '{ print $14 + $15 }' "/proc/$CPU_PID/stat"; else echo 0; fi
}

# measure SIZE CASE REP STDOUT CMD...: appends one line to $RUNS.
measure() {
    local name="$1" cs="$2" rep="$3" stdout="$4"
    shift 4
    local tf="$LOGS/$name.$cs.$rep.time" err="$LOGS/$name.$cs.$rep.stderr"
    [[ "$stdout" == log ]] && stdout="$LOGS/$name.$cs.$rep.stdout"
    local s0 s1 t0 t1
    s0="$(server_cpu_ticks)"
    t0="$EPOCHREALTIME"
    if ! /usr/bin/time -v -o "$tf" "$@" >"$stdout" 2>"$err"; then
        echo "bench.sh: FAILED ($name, $cs, rep $rep): $*" >&2
        tail -n 20 "$err" >&2
        die "case $cs failed; full log: $err"
    fi
    t1="$EPOCHREALTIME"
    s1="$(server_cpu_ticks)"
    awk -v name="$name" -v cs="$cs" -v rep="$rep" -v t0="$t0" -v t1="$t1" \
        -v sc="$((s1 - s0))" -v tck="$CLK_TCK" '
        /User time \(seconds\)/ { user = $NF }
        /System time \(seconds\)/ { sys = $NF }
        /Maximum resident set size/ { rss = $NF }
        END { printf "%s\t%s\t%s\t%.4f\t%.2f\t%d\t%.2f\n", name, cs, rep, t1 - t0, user + sys, rss, sc / tck }
    ' "$tf" >>"$RUNS"
    tail -n 1 "$RUNS" | awk -F'\t' '{ printf "bench.sh: %-6s %-6s rep %s: wall %.3f s, cpu %.2f s, max rss %.1f MiB, server cpu %.2f s\n", $1, $2, $3, $4, $5, $6 / 1024, $7 }' >&2
}

# Size of the feature.csv a featurepipe run wrote for input NAME (local output first).
# (An external server's copy is asked for with a HEAD.)
feature_bytes() {
    local name="$1" f n
    f="$(find "$OUT/$name" "$S3_ROOT/$BUCKET/features/$name" -name feature.csv -type f -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | head -n 1 | cut -d' ' -f2-)" || true
    if [[ -n "$f" ]]; then
        stat -c %s "$f"
    elif [[ -n "$EXTERNAL_EP" ]]; then
        n="$("$IO_FLOOR" size --bucket "$BUCKET" --key "features/$name/v_${EXEC_DATE//-/}T000000/feature.csv" --endpoint-url "$EP")" &&
            [[ "$n" =~ ^[0-9]+$ ]] && echo "$n"
    else
        return 1
    fi
}

printf 'size\tcase\trep\twall_s\tcpu_s\tmax_rss_kb\tserver_cpu_s\n' >"$RUNS"
declare -A PUT_BYTES_NOTE=()
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
                        put_bytes=$(($(stat -c %s "$raw") * 15 / 100))
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

# --- report ------------------------------------------------------------------------------
# median SIZE CASE COLUMN (1-based column of $RUNS)
median() {
    awk -F'\t' -v s="$1" -v c="$2" -v col="$3" 'NR > 1 && $1 == s && $2 == c { print $col }' "$RUNS" |
        sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
minmax() {
    awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $1 == s && $2 == c {
        if (n == 0 || $4 < lo) lo = $4; if (n == 0 || $4 > hi) hi = $4; n++ }
        END { printf "%.3f-%.3f", lo, hi }' "$RUNS"
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

cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
mem_total="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo 'no commit yet')"
if [[ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]]; then git_rev="$git_rev (working tree modified)"; fi
fp_version="n/a"
if has_case s3 || has_case local; then fp_version="$("$FP" --version 2>/dev/null | head -n 1 || echo unknown)"; fi

{
    echo "# featurepipe benchmark"
    echo
    echo "Generated by \`scripts/bench.sh --reps $REPS$([[ $BIG == 1 ]] && echo ' --big')$([[ $CASES != s3,local,floor,cat,gz ]] && echo " --cases $CASES")$([[ -n $EXTERNAL_EP ]] && echo " --endpoint-url $EXTERNAL_EP")\`."
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M:%S') |"
    echo "| git rev | $git_rev |"
    echo "| featurepipe | $fp_version |"
    echo "| CPU | $cpu_model |"
    echo "| nproc | $(nproc) |"
    echo "| memory | $mem_total |"
    echo "| kernel | $(uname -sr) |"
    echo "| rustc | $(rustc -V 2>/dev/null || echo unknown) |"
    echo "| S3 server | $SERVER_DESC |"
    echo
    echo "Medians of $REPS runs per case, cases alternated within each repetition; warm page cache."
    echo "MB/s = raw input bytes / 10^6 / wall seconds. CPU = user + sys of the measured process;"
    echo "server CPU = CPU the S3 server process used meanwhile. Wall range = min-max over the runs."
    echo
    echo "| input | case | wall s | wall range s | MB/s | CPU s | max RSS MiB | server CPU s |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for i in "${!SIZE_NAMES[@]}"; do
        name="${SIZE_NAMES[$i]}"
        raw_bytes="$(stat -c %s "$DATA/raw_$name.csv")"
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
} >"$RESULTS"

echo >&2
cat "$RESULTS"
echo >&2
echo "bench.sh: wrote $RESULTS (per-run numbers: $RUNS)" >&2
