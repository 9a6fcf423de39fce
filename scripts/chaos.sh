#!/usr/bin/env bash
# A seeded fault campaign against featurepipe's publish promise: a version with _SUCCESS
# holds exactly the files its manifest lists, and every re-run converges.
#
#   scripts/chaos.sh [--rounds N] [--seed S] [--bin PATH] [--keep]
#
# Each round publishes one execution date, on local disk or on a loopback S3 server (the
# repository's examples/s3_server, s3s-fs), under one of these scenarios, chosen by the
# seed:
#   faults      S3 only: through scripts/chaos/fault_proxy.py (503s, resets, lost replies,
#               truncated and stalled replies, delays on 30% of connections)
#   kill9       kill -9 at a random moment of the run
#   zombie      run A is stopped (SIGSTOP) at a random moment, outlives its 1 s lease,
#               run B publishes, then A resumes (SIGCONT) and finishes what it was doing
#   concurrent  four runs of the same date at once
#   force       a run and a --force rewrite of the same date at once
# Then the date is run again without faults until it succeeds (the convergence check).
# At the end scripts/chaos/check_versions.py checks every version on both backends and
# the counts are printed. Exit 1 if any version's files do not match its _SUCCESS, or a
# date did not converge.
#
# Needs: the featurepipe binary (--bin, default target/debug/featurepipe, built if
# missing), cargo (to build the S3 server example once), python3.
set -euo pipefail
export LC_ALL=C

usage() {
    sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "chaos.sh: $*" >&2
    exit 1
}

ROUNDS=24
SEED=1
BIN=""
KEEP=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a number"; ROUNDS="$2"; shift 2 ;;
        --seed) [[ $# -ge 2 ]] || die "--seed needs a number"; SEED="$2"; shift 2 ;;
        --bin) [[ $# -ge 2 ]] || die "--bin needs a path"; BIN="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$ROUNDS'"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be an unsigned integer, got '$SEED'"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
if [[ -z "$BIN" ]]; then
    BIN="$repo/target/debug/featurepipe"
    [[ -x "$BIN" ]] || cargo build --quiet --locked
fi
[[ -x "$BIN" ]] || die "no featurepipe binary at $BIN"
cargo build --quiet --locked --example s3_server
SERVER_BIN="$repo/target/debug/examples/s3_server"
command -v python3 >/dev/null || die "python3 is needed"

work="$(mktemp -d -t featurepipe-chaos-XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [[ "$KEEP" == 1 ]]; then
        echo "chaos.sh: kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# One raw input, ~12 MB: big enough that a kill or a stop lands inside the pass or the
# publish as often as before it.
mkdir -p "$work/local/raw" "$work/s3/lake/raw"
python3 - "$work/local/raw/a.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("user_id,amount\n")
    f.writelines(f"{i},{i}.25\n" for i in range(1_000_000))
PY
cp "$work/local/raw/a.csv" "$work/s3/lake/raw/a.csv"

export AWS_ACCESS_KEY_ID=AKIATESTFEATUREPIPE
export AWS_SECRET_ACCESS_KEY=test-secret-key-do-not-log-7f3a9c
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

# Starts a server in the background and sets the variable named $1 to the endpoint it
# prints first (`endpoint=...`).
start() {
    local var="$1" out="$2"
    shift 2
    "$@" >"$out" 2>"$out.err" &
    pids+=("$!")
    disown "$!"
    for _ in $(seq 100); do
        if grep -q '^endpoint=' "$out" 2>/dev/null; then
            printf -v "$var" '%s' "$(sed -n 's/^endpoint=//p' "$out" | head -n 1)"
            return 0
        fi
        sleep 0.1
    done
    die "$* did not start: $(cat "$out.err")"
}
s3="" proxy=""
start s3 "$work/server.out" "$SERVER_BIN" --root "$work/s3" --port 0 --bucket lake
start proxy "$work/proxy.out" python3 "$repo/scripts/chaos/fault_proxy.py" \
    --upstream "${s3#http://}" --seed "$SEED" --rate 0.3

RANDOM=$SEED
declare -A codes=()
runs=0
not_converged=0
log="$work/runs.log"

# featurepipe run for one date on one backend; extra flags after the date.
fp() {
    local backend="$1" date="$2" endpoint="$3"
    shift 3
    local common=(--execution-date "$date" --lease-ttl "${LEASE_TTL:-1}" --s3-max-attempts 3
        --s3-initial-backoff 0.05 --s3-attempt-timeout 5 --s3-read-timeout 3)
    if [[ "$backend" == local ]]; then
        "$BIN" run --raw "$work/local/raw/a.csv" --features "$work/local/out" "${common[@]}" "$@"
    else
        "$BIN" run --endpoint-url "$endpoint" --raw s3://lake/raw/a.csv \
            --features s3://lake/out "${common[@]}" "$@"
    fi
}

record() {
    runs=$((runs + 1))
    codes[$1]=$((${codes[$1]:-0} + 1))
}

# Runs in the background; the pid is in $!.
fp_bg() {
    fp "$@" >>"$log" 2>&1 &
}

wait_code() {
    local code=0
    # (bash reports a job killed by a signal on stderr: not news here)
    wait "$1" 2>/dev/null || code=$?
    record "$code"
}

scenarios=(faults kill9 zombie concurrent force)
for round in $(seq "$ROUNDS"); do
    date="$(date -u -d "2025-01-01 + $round days" +%F)"
    backend=$([[ $((RANDOM % 2)) == 0 ]] && echo local || echo s3)
    scenario="${scenarios[$((RANDOM % ${#scenarios[@]}))]}"
    [[ "$scenario" == faults ]] && backend=s3
    printf 'round %3d  %s  %-5s  %-10s' "$round" "$date" "$backend" "$scenario"
    case "$scenario" in
        faults)
            code=0
            fp s3 "$date" "$proxy" >>"$log" 2>&1 || code=$?
            record "$code"
            ;;
        kill9)
            fp_bg "$backend" "$date" "$s3"
            pid=$!
            sleep "$((RANDOM % 2)).$((RANDOM % 10))$((RANDOM % 10))"
            kill -9 "$pid" 2>/dev/null || true
            wait_code "$pid"
            ;;
        zombie)
            fp_bg "$backend" "$date" "$s3"
            a=$!
            sleep "$((RANDOM % 2)).$((RANDOM % 10))$((RANDOM % 10))"
            kill -STOP "$a" 2>/dev/null || true
            sleep 1.5
            code=0
            fp "$backend" "$date" "$s3" >>"$log" 2>&1 || code=$?
            record "$code"
            kill -CONT "$a" 2>/dev/null || true
            wait_code "$a"
            ;;
        concurrent)
            bg=()
            for _ in 1 2 3 4; do
                fp_bg "$backend" "$date" "$s3"
                bg+=("$!")
            done
            for p in "${bg[@]}"; do wait_code "$p"; done
            ;;
        force)
            fp "$backend" "$date" "$s3" >>"$log" 2>&1 || true
            fp_bg "$backend" "$date" "$s3" --force
            f=$!
            fp_bg "$backend" "$date" "$s3" --force
            g=$!
            wait_code "$f"
            wait_code "$g"
            ;;
    esac
    # Converge: the date again, without faults, until it is complete (a lease long enough
    # not to lapse on a busy machine; what the round left expires within a second).
    converged=no
    for _ in 1 2 3 4 5 6; do
        code=0
        LEASE_TTL=10 fp "$backend" "$date" "$s3" >>"$log" 2>&1 || code=$?
        if [[ "$code" == 0 ]]; then
            converged=yes
            break
        fi
        sleep 1.2
    done
    [[ "$converged" == yes ]] || not_converged=$((not_converged + 1))
    echo "  converged=$converged"
done

# The proxy prints how many faults of each kind it injected when it stops.
kill -INT "${pids[1]}" 2>/dev/null || true
sleep 0.3
echo
echo "runs: $runs (plus one convergence run per round); exit codes:"
for c in $(printf '%s\n' "${!codes[@]}" | sort -n); do
    printf '  exit %-3s %d\n' "$c" "${codes[$c]}"
done
grep -h '^faults=' "$work/proxy.out.err" 2>/dev/null | sed 's/^/  proxy /' || true
echo "dates that did not converge: $not_converged of $ROUNDS"
verdict=0
python3 "$repo/scripts/chaos/check_versions.py" "$work/local/out" "$work/s3/lake/out" || verdict=1
[[ "$not_converged" == 0 ]] || verdict=1
if [[ "$verdict" == 0 ]]; then
    echo "chaos.sh: every version with _SUCCESS matches its files; every date converged"
else
    echo "chaos.sh: FAILED (see above; runs logged in $work/runs.log with --keep)" >&2
fi
exit "$verdict"
