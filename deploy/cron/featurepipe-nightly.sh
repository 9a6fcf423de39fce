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
#   DP_RAW_PATH, DP_FEATURE_PATH (or DP_CONFIG, a pipeline file naming both), DP_TIMEZONE,
#   DP_PIPELINE_NAME, DP_LOG_FORMAT, AWS_*  featurepipe's own (featurepipe has no default
#                            raw path or prefix: without them every run exits 2 and alerts)
#   FEATUREPIPE_BIN          binary (default: featurepipe on PATH)
#   FEATUREPIPE_LOG_DIR      log folder (default /var/log/featurepipe)
#   FEATUREPIPE_LOCK_DIR     lock folder (default /tmp)
#   FEATUREPIPE_RETRIES      re-runs after exit 5 / 75 / 130 / 143 (default 2)
#   FEATUREPIPE_RETRY_DELAY  seconds between them (default 600)
#   FEATUREPIPE_MAX_AGE      after a run that succeeded or was skipped, alert when the newest
#                            complete version's execution date is older than this
#                            (`featurepipe status --max-age`; default 52h: a daily version is
#                            a day old when published, so this alerts after one missed
#                            night; empty: no check)
#   FEATUREPIPE_ALERT_CMD    optional command run for each alert (e.g. a script that posts
#                            to Slack): the alert sentence is its argument, and the JSON
#                            result of the run (or of `featurepipe status`) is its stdin
#                            (empty if there is none); the sentence also goes to stderr,
#                            which cron mails to MAILTO
#
# Logs follow DP_LOG_FORMAT (text, or json: then every line of the day's log and every
# alert line on stderr is one JSON object).
#
# Exit codes: featurepipe's (0 done or already done, 99 raw file not there: both quiet),
# 6 when the feature set is older than FEATUREPIPE_MAX_AGE (alert), or 75 when another run
# still holds the lock (featurepipe's own code for "busy"). Everything else alerts.
set -uo pipefail

if [[ -n "${FEATUREPIPE_ENV_FILE:-}" ]]; then
    # shellcheck source=/dev/null
    source "$FEATUREPIPE_ENV_FILE" || { echo "featurepipe-nightly: cannot read $FEATUREPIPE_ENV_FILE" >&2; exit 2; }
fi

bin="${FEATUREPIPE_BIN:-featurepipe}"
log_format="${DP_LOG_FORMAT:-text}"
max_age="${FEATUREPIPE_MAX_AGE-52h}"
pipeline="${DP_PIPELINE_NAME:-daily_user_events}"
zone="${DP_TIMEZONE:-Asia/Seoul}"
log_dir="${FEATUREPIPE_LOG_DIR:-/var/log/featurepipe}"
lock_dir="${FEATUREPIPE_LOCK_DIR:-/tmp}"
retries="${FEATUREPIPE_RETRIES:-2}"
retry_delay="${FEATUREPIPE_RETRY_DELAY:-600}"

# One line in the chosen log format: text, or a JSON object (the message JSON-escaped).
line() {
    local level="$1" message="$2"
    if [[ "$log_format" == json ]]; then
        message="${message//\\/\\\\}"
        message="${message//\"/\\\"}"
        message="${message//$'\t'/\\t}"
        message="${message//$'\n'/\\n}"
        printf '{"ts":"%s","level":"%s","message":"%s"}\n' "$(stamp)" "$level" "$message"
    else
        printf '%s\n' "$message"
    fi
}

stamp() { TZ="$zone" date '+%Y-%m-%dT%H:%M:%S%z'; }

# alert SENTENCE [JSON_FILE]: the sentence on stderr (cron mails it), and to
# FEATUREPIPE_ALERT_CMD with the JSON document of JSON_FILE on its stdin.
alert() {
    local sentence="featurepipe-nightly: $1" json="${2:-}"
    line ERROR "$sentence" >&2
    if [[ -n "${FEATUREPIPE_ALERT_CMD:-}" ]]; then
        local input=/dev/null
        [[ -n "$json" && -s "$json" ]] && input="$json"
        # Word-split on purpose: FEATUREPIPE_ALERT_CMD may carry its own arguments.
        # shellcheck disable=SC2086
        $FEATUREPIPE_ALERT_CMD "$sentence" <"$input" ||
            line ERROR "featurepipe-nightly: FEATUREPIPE_ALERT_CMD failed" >&2
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

# featurepipe's stdout (one JSON document) goes here, then into the day's log.
result="$(mktemp "${TMPDIR:-/tmp}/featurepipe-result.XXXXXX")" || { alert "cannot create a temporary file"; exit 2; }
status_result="$(mktemp "${TMPDIR:-/tmp}/featurepipe-status.XXXXXX")" || { alert "cannot create a temporary file"; exit 2; }
trap 'rm -f "$result" "$status_result"' EXIT

attempt=0
while :; do
    attempt=$((attempt + 1))
    line INFO "=== $(stamp) featurepipe-nightly: $pipeline $day attempt $attempt (pid $$)" >>"$log"
    # stderr (the [DP] lines, in DP_LOG_FORMAT) goes to the day's log; stdout (the JSON
    # result) too, once the run is over, and to FEATUREPIPE_ALERT_CMD on failure.
    # --output json: the alert reads the JSON result, whatever DP_RUN_OUTPUT says.
    "$bin" run --execution-date "$day" --skip-if-missing --output json >"$result" 2>>"$log"
    rc=$?
    cat "$result" >>"$log"
    line INFO "=== $(stamp) featurepipe-nightly: exit $rc" >>"$log"
    case $rc in
        5 | 75 | 130 | 143)
            # Storage/network failure, busy (another run holds the version's lease) or
            # interrupted: nothing half-published, a re-run later is safe.
            if ((attempt <= retries)); then
                line INFO "=== retrying in ${retry_delay}s" >>"$log"
                sleep "$retry_delay"
                continue
            fi
            ;;
    esac
    break
done

case $rc in
    0) ;;  # done, or the version was already complete
    99) ;; # raw file not there (--skip-if-missing): nothing to do today (freshness below)
    1) alert "$pipeline $day: internal error (exit 1), please report it with $log" "$result" ;;
    2) alert "$pipeline $day: usage/configuration error (exit 2), fix the settings; see $log" "$result" ;;
    3) alert "$pipeline $day: raw data invalid (exit 3), nothing published; every failed rule and sample values are in the JSON result; fix the data and re-run; see $log" "$result" ;;
    4) alert "$pipeline $day: raw input not found (exit 4); see $log" "$result" ;;
    5) alert "$pipeline $day: storage/network failure (exit 5) after $attempt attempts; re-run when fixed; see $log" "$result" ;;
    75) alert "$pipeline $day: still busy (exit 75) after $attempt attempts: another run holds the version's lease; see $log" "$result" ;;
    127) alert "$pipeline $day: $bin not found (exit 127): set FEATUREPIPE_BIN or PATH" ;;
    *) alert "$pipeline $day: featurepipe exited $rc after $attempt attempt(s); see $log" "$result" ;;
esac

# Freshness: a run that succeeded or skipped says nothing about last week. A drop that
# stopped arriving shows up here as a feature set older than FEATUREPIPE_MAX_AGE.
if [[ -n "$max_age" && ( $rc == 0 || $rc == 99 ) ]]; then
    line INFO "=== $(stamp) featurepipe-nightly: featurepipe status --max-age $max_age" >>"$log"
    "$bin" status --max-age "$max_age" --output json >"$status_result" 2>>"$log"
    src=$?
    cat "$status_result" >>"$log"
    case $src in
        0) ;;
        6)
            alert "$pipeline $day: feature set stale (exit 6): no complete version with an execution date in the last $max_age; the last run exited $rc; see $log" "$status_result"
            rc=6
            ;;
        *)
            alert "$pipeline $day: freshness check failed (featurepipe status exit $src); see $log" "$status_result"
            rc=$src
            ;;
    esac
fi
exit "$rc"
