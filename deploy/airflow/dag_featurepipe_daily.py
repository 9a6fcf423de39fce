"""featurepipe from Airflow (2.6+ or 3; CI runs it on the version pinned in .ci/airflow).

Two DAGs in one file, so that deploying is copying this one file into the dags folder:

* ``featurepipe_daily_user_events`` -- scheduled, one ``featurepipe run`` per day.
* ``featurepipe_backfill_user_events`` -- manual only, one ``featurepipe backfill`` over a
  date range given as trigger params (start, end, reprocess, parallel).

One generic DAG: which pipeline runs is data, not code. Each setting is a DAG param (set
per trigger, e.g. ``airflow dags trigger -c '{"raw": "..."}'``) that falls back to an Airflow
Variable, read when the task runs (never at parse time). Each Variable can also come from
the worker's environment as ``AIRFLOW_VAR_<NAME>`` (Airflow's own env-var Variables), which
is how CI points the DAG at local folders:

    param          Variable                        featurepipe
    pipeline_file  featurepipe_pipeline_file       --config (DP_CONFIG): name, rules, features
    raw            featurepipe_raw_path            --raw; ``{ds_nodash}`` is featurepipe's
                                                   template, not Jinja
    prefix         featurepipe_feature_path        --features: versions are written under it
    -              featurepipe_bin                 the binary (default ``featurepipe`` on PATH)
    -              featurepipe_pipeline_name       --pipeline (default: the file's, else
                                                   daily_user_events)
    -              featurepipe_timezone            --timezone (default: the file's, else Asia/Seoul)
    -              featurepipe_log_format          ``text`` (default) or ``json``
    -              featurepipe_metrics_pushgateway --metrics-pushgateway (empty: none)
    -              featurepipe_metrics_textfile    --metrics-textfile (empty: none)

Observability (docs/observability.md): the run pushes its Prometheus metrics when a
Pushgateway or textfile Variable is set, and sends OpenLineage events when the worker has
``OPENLINEAGE_URL``; with Airflow's OpenLineage provider installed, the task's own run is
passed as the parent (``OPENLINEAGE_PARENT_ID`` from its ``lineage_parent_id`` macro).

The produced prefix is the task's outlet Asset (``FEATUREPIPE_ASSET_URI`` in the
environment of the process that parses the DAG, default below): schedule a downstream DAG
with ``schedule=[FEATURES]`` and it runs after each successful featurepipe run.

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
log lines, which BashOperator merges into the same stream); ``FeaturepipeOperator`` parses
it, so the task's XCom ``return_value`` is the result as an object (``status``, ``rows``,
``feature_version``, ...). ``on_failure_callback`` is an example alert hook.
"""

from __future__ import annotations

import json
import logging
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
try:
    from airflow.sdk import Asset
except ImportError:  # Airflow 2.4-2.x: Datasets, the same idea under their old name
    from airflow.datasets import Dataset as Asset
try:  # Airflow's OpenLineage provider, when installed: the task's run as the parent run
    from airflow.providers.openlineage.plugins.macros import lineage_parent_id
except ImportError:
    lineage_parent_id = None

log = logging.getLogger(__name__)

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


def _param_or_var(param: str, name: str, default: str) -> str:
    """Jinja: the DAG param `param` when the run sets it, else Variable `name`, else `default`."""
    return "{{ params.%s or var.value.get(%r, %r) }}" % (param, name, default)


# The produced prefix, as the Asset downstream DAGs are scheduled on. An Asset's URI is
# fixed when the DAG is parsed, so it comes from the parsing process's environment: keep it
# equal to the prefix the runs write (Variable featurepipe_feature_path or param prefix).
FEATURES = Asset(
    os.environ.get("FEATUREPIPE_ASSET_URI", "s3://features/features/daily_user_events")
)

# Environment for featurepipe (BashOperator renders `env` with Jinja at run time). An empty
# value means "not set" to featurepipe's optional settings.
FEATUREPIPE_ENV = {
    "FEATUREPIPE_BIN": _var("featurepipe_bin", "featurepipe"),
    "DP_CONFIG": _param_or_var("pipeline_file", "featurepipe_pipeline_file", ""),
    "DP_RAW_PATH": _param_or_var(
        "raw", "featurepipe_raw_path", "s3://raw/daily/user_events_{ds_nodash}.csv"
    ),
    "DP_FEATURE_PATH": _param_or_var(
        "prefix", "featurepipe_feature_path", "s3://features/features/daily_user_events"
    ),
    "DP_PIPELINE_NAME": _var("featurepipe_pipeline_name", ""),
    "DP_TIMEZONE": _var("featurepipe_timezone", ""),
    # text: the [DP] logfmt lines, readable in the Airflow UI and what the Loki queries of
    # deploy/grafana/featurepipe.json expect. json only if your log shipper parses one JSON
    # object per line.
    "DP_LOG_FORMAT": _var("featurepipe_log_format", "text"),
    "DP_METRICS_PUSHGATEWAY": _var("featurepipe_metrics_pushgateway", ""),
    "DP_METRICS_TEXTFILE": _var("featurepipe_metrics_textfile", ""),
}
USER_MACROS = {}
if lineage_parent_id is not None:
    FEATUREPIPE_ENV["OPENLINEAGE_PARENT_ID"] = "{{ lineage_parent_id(task_instance) }}"
    USER_MACROS["lineage_parent_id"] = lineage_parent_id

# The settings a run can override (airflow dags trigger -c / the trigger form); empty:
# the Variable.
PARAMS = {
    "pipeline_file": Param("", type="string", description="pipeline file (TOML); empty: Variable featurepipe_pipeline_file"),
    "raw": Param("", type="string", description="raw CSV URI; empty: Variable featurepipe_raw_path"),
    "prefix": Param("", type="string", description="feature prefix; empty: Variable featurepipe_feature_path"),
}


def on_featurepipe_failure(context):
    """An example failure hook: one line naming the task, the date and the exit code, where
    an alert (Slack, PagerDuty, e-mail) would be sent. Prometheus already alerts on the
    metrics (deploy/prometheus/alerts.yml); this is for teams that alert from Airflow."""
    ti = context.get("task_instance")
    exc = context.get("exception")
    log.error(
        "featurepipe failed: dag=%s task=%s logical_date=%s try=%s: %s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        context.get("ds", "?"),
        getattr(ti, "try_number", "?"),
        exc,
    )

# featurepipe reads an empty DP_* variable as a flag given without a value (a usage
# error): the optional settings left empty above are unset before it starts.
_OPTIONAL = (
    "DP_CONFIG DP_PIPELINE_NAME DP_TIMEZONE DP_METRICS_PUSHGATEWAY DP_METRICS_TEXTFILE "
    "OPENLINEAGE_PARENT_ID"
)
_UNSET_EMPTY = 'for v in %s; do [ -n "${!v:-}" ] || unset "$v"; done; ' % _OPTIONAL

# featurepipe's stdout (the JSON result line) goes to a file in the task's temporary working
# directory (BashOperator creates and removes it) and is printed last, so it is the last line
# of the merged output and BashOperator pushes it to XCom. The exit code is featurepipe's.
_RESULT_LAST = '>result.json; rc=$?; cat result.json; exit "$rc"'


class FeaturepipeOperator(BashOperator):
    """BashOperator that fails without retry on the exit codes in NO_RETRY_EXIT_CODES, and
    returns featurepipe's JSON result as an object (the XCom return_value)."""

    def execute(self, context):
        try:
            last_line = super().execute(context)
            try:
                return json.loads(last_line) if last_line else last_line
            except ValueError:
                return last_line
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
    params=PARAMS,
    user_defined_macros=USER_MACROS,
    default_args={
        "owner": "data-platform",
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
        "on_failure_callback": on_featurepipe_failure,
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
            _UNSET_EMPTY
            # --output json: the XCom is the JSON result, whatever DP_RUN_OUTPUT a worker sets.
            + "\"$FEATUREPIPE_BIN\" run --execution-date '{{ ds }}' --skip-if-missing --output json "
            + _RESULT_LAST
        ),
        env=FEATUREPIPE_ENV,
        append_env=True,  # keep PATH and the worker's AWS credentials chain
        skip_on_exit_code=99,  # --skip-if-missing: raw file not there -> task skipped
        execution_timeout=timedelta(hours=1),  # on timeout featurepipe gets SIGTERM (143)
        outlets=[FEATURES],  # an asset event on each success: downstream DAGs run
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
    user_defined_macros=USER_MACROS,
    params={
        **PARAMS,
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
        "on_failure_callback": on_featurepipe_failure,
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
            _UNSET_EMPTY
            + '"$FEATUREPIPE_BIN" backfill --start "$BF_START" --end "$BF_END"'
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
        outlets=[FEATURES],
    )
