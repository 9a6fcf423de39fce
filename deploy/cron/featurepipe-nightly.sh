#!/usr/bin/env bash
# featurepipe nightly run for cron: one dated log file, no overlap, alerts on real failures.
#
#   featurepipe-nightly.sh [YYYY-MM-DD]
#
# The date is the day whose data to process (default: yesterday in $DP_TIMEZONE, like
# Airflow's {{ ds }} for the run that starts after that day ends). It becomes
# `--execution-date YYYY-MM-DD`: midnight in the pipeline zone, version v_YYYYMMDDT000000.
#
# Settings (set them in the crontab, or in an env file named by FEATUREPIPE_ENV_FILE):
#   DP_RAW_PATH, DP_FEATURE_PATH, DP_TIMEZONE, DP_PIPELINE_NAME, AWS_*  featurepipe's own
#   FEATUREPIPE_BIN          binary (default: featurepipe on PATH)
#   FEATUREPIPE_LOG_DIR      log folder (default /var/log/featurepipe)
#   FEATUREPIPE_LOCK_DIR     lock folder (default /tmp)
#   FEATUREPIPE_RETRIES      re-runs after exit 5 / 75 / 130 / 143 (default 2)
#   FEATUREPIPE_RETRY_DELAY  seconds between them (default 600)
#   FEATUREPIPE_ALERT_CMD    optional command run with the alert sentence as its argument
#                            (e.g. a script that posts to Slack); the sentence also goes to
#                            stderr, which cron mails to MAILTO
#
# Exit codes: featurepipe's (0 done or already done, 99 raw file not there: both quiet),
# or 75 when another run still holds the lock (featurepipe's own code for "busy").
# Everything else prints one alert line.
set -uo pipefail

if [[ -n "${FEATUREPIPE_ENV_FILE:-}" ]]; then
    # shellcheck source=/dev/null
    source "$FEATUREPIPE_ENV_FILE" || { echo "featurepipe-nightly: cannot read $FEATUREPIPE_ENV_FILE" >&2; exit 2; }
fi

bin="${FEATUREPIPE_BIN:-featurepipe}"
pipeline="${DP_PIPELINE_NAME:-daily_user_events}"
zone="${DP_TIMEZONE:-Asia/Seoul}"
log_dir="${FEATUREPIPE_LOG_DIR:-/var/log/featurepipe}"
lock_dir="${FEATUREPIPE_LOCK_DIR:-/tmp}"
retries="${FEATUREPIPE_RETRIES:-2}"
retry_delay="${FEATUREPIPE_RETRY_DELAY:-600}"

alert() {
    echo "featurepipe-nightly: $*" >&2
    if [[ -n "${FEATUREPIPE_ALERT_CMD:-}" ]]; then
        # Word-split on purpose: FEATUREPIPE_ALERT_CMD may carry its own arguments.
        # shellcheck disable=SC2086
        $FEATUREPIPE_ALERT_CMD "$*" || echo "featurepipe-nightly: FEATUREPIPE_ALERT_CMD failed" >&2
    fi
}

# The data day, computed in the pipeline zone (not the machine's).
day="${1:-$(TZ="$zone" date -d yesterday +%F)}"
if [[ ! "$day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
    alert "the date must be YYYY-MM-DD, not '$day'"
    exit 2
fi

mkdir -p "$log_dir" || { alert "cannot create log folder $log_dir"; exit 2; }
log="$log_dir/${pipeline}_${day//-/}.log"

# One run per pipeline at a time: a run still going when the next one starts (a slow
# upload, a hung mount) makes the new one stop at once instead of racing it.
lock="$lock_dir/featurepipe-$pipeline.lock"
exec 9>>"$lock" || { alert "cannot open lock file $lock"; exit 2; }
if ! flock -n 9; then
    alert "$pipeline $day not started: another run still holds $lock (see $log_dir)"
    exit 75
fi

stamp() { TZ="$zone" date '+%Y-%m-%dT%H:%M:%S%z'; }

attempt=0
while :; do
    attempt=$((attempt + 1))
    echo "=== $(stamp) featurepipe-nightly: $pipeline $day attempt $attempt (pid $$)" >>"$log"
    # stdout (the JSON result line) and stderr (the [DP] lines) both go to the day's log.
    "$bin" run --execution-date "$day" --skip-if-missing --log-format text >>"$log" 2>&1
    rc=$?
    echo "=== $(stamp) featurepipe-nightly: exit $rc" >>"$log"
    case $rc in
        5 | 75 | 130 | 143)
            # Storage/network failure, busy (another run holds the version's lease) or
            # interrupted: nothing half-published, a re-run later is safe.
            if ((attempt <= retries)); then
                echo "=== retrying in ${retry_delay}s" >>"$log"
                sleep "$retry_delay"
                continue
            fi
            ;;
    esac
    break
done

case $rc in
    0) ;;  # done, or the version was already complete
    99) ;; # raw file not there (--skip-if-missing): nothing to do today
    1) alert "$pipeline $day: internal error (exit 1), please report it with $log" ;;
    2) alert "$pipeline $day: usage/configuration error (exit 2), fix the settings; see $log" ;;
    3) alert "$pipeline $day: raw data invalid (exit 3), nothing published; fix the data and re-run; see $log" ;;
    4) alert "$pipeline $day: raw input not found (exit 4); see $log" ;;
    5) alert "$pipeline $day: storage/network failure (exit 5) after $attempt attempts; re-run when fixed; see $log" ;;
    75) alert "$pipeline $day: still busy (exit 75) after $attempt attempts: another run holds the version's lease; see $log" ;;
    127) alert "$pipeline $day: $bin not found (exit 127): set FEATUREPIPE_BIN or PATH" ;;
    *) alert "$pipeline $day: featurepipe exited $rc after $attempt attempt(s); see $log" ;;
esac
exit "$rc"
