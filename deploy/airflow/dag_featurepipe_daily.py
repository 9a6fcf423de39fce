"""featurepipe from Airflow (2.6+ or 3; CI runs it on the version pinned in .ci/airflow).

Two DAGs in one file, so that deploying is copying this one file into the dags folder:

* ``featurepipe_daily_user_events`` -- scheduled, one ``featurepipe run`` per day.
* ``featurepipe_backfill_user_events`` -- manual only, one ``featurepipe backfill`` over a
  date range given as trigger params (start, end, reprocess, parallel).

Settings are Airflow Variables, read when the task runs (never at parse time). Each one can
also come from the worker's environment as ``AIRFLOW_VAR_<NAME>`` (Airflow's own env-var
Variables), which is how CI points the DAG at local folders:

    featurepipe_bin           featurepipe binary (default: ``featurepipe`` on the worker's PATH)
    featurepipe_raw_path      raw CSV URI; ``{ds_nodash}`` is featurepipe's template, not Jinja
    featurepipe_feature_path  feature prefix (versions are written under it)
    featurepipe_timezone      pipeline time zone (default Asia/Seoul)
    featurepipe_log_format    ``text`` (default) or ``json``

The worker's own environment is kept (``append_env=True``): PATH and the AWS SDK chain
(``AWS_PROFILE``, ``AWS_REGION``, keys, IRSA, ``AWS_ENDPOINT_URL`` for MinIO) reach featurepipe.

Exit codes -> task state
------------------------
    0        success, or the version was already complete   -> success (clear = no-op)
    99       raw file not there (--skip-if-missing)          -> skipped
    1, 2, 3  bug / usage-config error / invalid data         -> failed at once, NO retry
    126, 127 binary not executable / not found               -> failed at once, NO retry
    4        raw input not found (without --skip-if-missing) -> retried (the drop may be late)
    5        storage or network failure after S3 retries     -> retried
    75       busy: another live run holds the version's lease -> retried (then: skipped-complete)
    130, 143 interrupted (SIGINT / SIGTERM, e.g. a timeout)  -> retried; nothing half-published
    other    (e.g. 137 = killed by the OOM killer)           -> retried

BashOperator itself retries every non-zero exit alike; a retry of exit 3 reads the same bad
data and fails again 10 minutes later, hiding the real state. ``FeaturepipeOperator`` below
is BashOperator plus one thing: on an exit code that a retry cannot fix it raises
``AirflowFailException``, which fails the task immediately whatever ``retries`` says.

Stdout of featurepipe is one JSON result line. The command prints it last (after the [DP]
log lines, which BashOperator merges into the same stream), so it becomes the task's XCom
``return_value``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum

# Each import from where Airflow 3 has it, else where Airflow 2 had it.
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:
    from airflow.operators.bash import BashOperator
try:
    from airflow.sdk import DAG, Param
except ImportError:
    from airflow import DAG
    from airflow.models.param import Param
try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:
    from airflow.exceptions import AirflowFailException

# Exit codes that a retry cannot fix (see the table above).
NO_RETRY_EXIT_CODES = {
    1: "internal error in featurepipe (a bug): report it with this log",
    2: "usage or configuration error: fix the DAG's Variables or the command",
    3: "raw data invalid or malformed, nothing was published: fix the data, then clear the task",
    126: "the featurepipe binary is not executable: check Variable featurepipe_bin",
    127: "the featurepipe binary was not found: check Variable featurepipe_bin and PATH",
}

# Retry settings are DAG structure (parsed, not templated), so they come from the
# environment of the process that parses the DAG. CI shortens the delay; keep the default.
RETRIES = int(os.environ.get("FEATUREPIPE_RETRIES", "2"))
RETRY_DELAY = timedelta(seconds=int(os.environ.get("FEATUREPIPE_RETRY_DELAY_SECONDS", "600")))


def _var(name: str, default: str) -> str:
    """Jinja that reads Airflow Variable `name` when the task runs, else `default`."""
    return "{{ var.value.get(%r, %r) }}" % (name, default)


# Environment for featurepipe (BashOperator renders `env` with Jinja at run time).
FEATUREPIPE_ENV = {
    "FEATUREPIPE_BIN": _var("featurepipe_bin", "featurepipe"),
    "DP_RAW_PATH": _var("featurepipe_raw_path", "s3://raw/daily/user_events_{ds_nodash}.csv"),
    "DP_FEATURE_PATH": _var(
        "featurepipe_feature_path", "s3://features/features/daily_user_events"
    ),
    "DP_PIPELINE_NAME": "daily_user_events",
    "DP_TIMEZONE": _var("featurepipe_timezone", "Asia/Seoul"),
    # text: the [DP] logfmt lines, readable in the Airflow UI and what the Loki queries in
    # the README expect. json only if your log shipper parses one JSON object per line.
    "DP_LOG_FORMAT": _var("featurepipe_log_format", "text"),
}

# featurepipe's stdout (the JSON result line) goes to a file in the task's temporary working
# directory (BashOperator creates and removes it) and is printed last, so it is the last line
# of the merged output and BashOperator pushes it to XCom. The exit code is featurepipe's.
_RESULT_LAST = '>result.json; rc=$?; cat result.json; exit "$rc"'


class FeaturepipeOperator(BashOperator):
    """BashOperator that fails without retry on the exit codes in NO_RETRY_EXIT_CODES."""

    def execute(self, context):
        try:
            return super().execute(context)
        except Exception as exc:
            proc = getattr(self.subprocess_hook, "sub_process", None)
            code = getattr(proc, "returncode", None)
            if code in NO_RETRY_EXIT_CODES:
                raise AirflowFailException(
                    f"featurepipe exited {code}: {NO_RETRY_EXIT_CODES[code]} (not retried)"
                ) from exc
            raise  # 4, 5, 75, 130, 143, ...: BashOperator's failure, retried per `retries`


with DAG(
    dag_id="featurepipe_daily_user_events",
    description="raw user events CSV -> versioned feature set (featurepipe run)",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 11, 1, tz="UTC"),
    catchup=False,  # past dates: the backfill DAG below, or `airflow backfill create`
    max_active_runs=1,
    default_args={
        "owner": "data-platform",
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
    },
    tags=["featurepipe", "data-pipeline"],
) as daily_dag:
    # Execution date: '{{ ds }}', NOT '{{ ts }}'.
    # {{ ds }} is the logical date's calendar day, e.g. 2025-11-19 for the run that covers
    # Nov 19 (it starts at 2025-11-20T00:00Z). featurepipe reads a bare date as midnight in
    # the pipeline zone (docs/contract.md, "Time and versions"), so the version is v_20251119T000000 and
    # {ds_nodash} in the raw path is 20251119: the same day that Airflow's grid shows,
    # whatever the schedule's time of day or the DAG's time zone.
    # {{ ts }} (2025-11-19T00:00:00+00:00) would be converted to Seoul time instead:
    # v_20251119T090000, and a schedule at 15:00 UTC or later would even name the version
    # (and render {ds_nodash}) after the NEXT day. The version id is the idempotency key,
    # so changing this later re-computes every date under new names: keep {{ ds }}.
    featurepipe_run = FeaturepipeOperator(
        task_id="featurepipe_run",
        bash_command=(
            "\"$FEATUREPIPE_BIN\" run --execution-date '{{ ds }}' --skip-if-missing "
            + _RESULT_LAST
        ),
        env=FEATUREPIPE_ENV,
        append_env=True,  # keep PATH and the worker's AWS credentials chain
        skip_on_exit_code=99,  # --skip-if-missing: raw file not there -> task skipped
        execution_timeout=timedelta(hours=1),  # on timeout featurepipe gets SIGTERM (143)
    )


# Backfill: one task that runs `featurepipe backfill` over [start, end] (inclusive).
# Why a DAG and not only `airflow backfill create` (Airflow 3; `airflow dags backfill` in 2):
# featurepipe already knows which dates are complete (--reprocess none|failed|all), runs
# them in bounded parallel and reports one table; a week is one task and one log instead of
# seven DAG runs. `airflow backfill create --dag-id featurepipe_daily_user_events
# --from-date 2025-11-01 --to-date 2025-11-18` works too (one daily run per date, the same
# version ids, complete dates skipped), when you want each date as its own run in the grid.
# The params are passed as environment variables, never pasted into the shell command.
with DAG(
    dag_id="featurepipe_backfill_user_events",
    description="re-run a date range (featurepipe backfill); trigger by hand with params",
    schedule=None,
    start_date=pendulum.datetime(2025, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "start": Param("2025-11-01", type="string", format="date", description="first date"),
        "end": Param("2025-11-07", type="string", format="date", description="last date"),
        "reprocess": Param(
            "none",
            enum=["none", "failed", "all"],
            description="none: skip complete dates; failed: also redo failed/incomplete; "
            "all: rewrite every date",
        ),
        # featurepipe allows up to 32; each run streams in ~40 MiB, size it to the worker.
        "parallel": Param(1, type="integer", minimum=1, maximum=8),
    },
    default_args={
        "owner": "data-platform",
        "retries": 1,  # a retry with --reprocess none only re-runs dates not yet complete
        "retry_delay": RETRY_DELAY,
    },
    tags=["featurepipe", "data-pipeline", "backfill"],
) as backfill_dag:
    featurepipe_backfill = FeaturepipeOperator(
        task_id="featurepipe_backfill",
        # Exit code: 0 when every date succeeded or was skipped, else the most severe code of
        # the dates, 1 > 5 > 75 > 2 > 3 > 4: a bug or only bad data/config (1, 2, 3) fails the
        # task without retry; 5 or 75 anywhere is retried, and the retry (reprocess none)
        # skips the dates that completed and re-runs the rest.
        bash_command=(
            '"$FEATUREPIPE_BIN" backfill --start "$BF_START" --end "$BF_END"'
            ' --reprocess "$BF_REPROCESS" --parallel "$BF_PARALLEL"'
            " --skip-if-missing"
        ),
        env={
            **FEATUREPIPE_ENV,
            "BF_START": "{{ params.start }}",
            "BF_END": "{{ params.end }}",
            "BF_REPROCESS": "{{ params.reprocess }}",
            "BF_PARALLEL": "{{ params.parallel }}",
        },
        append_env=True,
        skip_on_exit_code=99,
        do_xcom_push=False,  # the per-date table is in the task log
        execution_timeout=timedelta(hours=12),
    )
