"""featurepipe nightly run from Airflow (2.6+ or 3): an EXAMPLE DAG; adapt buckets, schedule, image.

One BashOperator runs the whole pipeline (extract -> validate -> build -> store -> summarize)
as one featurepipe process. Everything Airflow needs is in its exit code:

    0   success, or the version was already complete (re-runs and clears are no-ops)
    99  raw file missing and --skip-if-missing given -> the task is marked SKIPPED
    2   usage/config error      -> fix the DAG/env; retrying cannot help
    3   data invalid / malformed CSV (nothing was published) -> fix the data, then clear
    4   raw input not found (only without --skip-if-missing)
    5   storage/network failure after featurepipe's own S3 retries -> a retry may help
    1   internal error (a bug)

Airflow retries every non-zero exit alike. Retries only make sense for exit 5: a retry of
exit 3 reads the same bad data and fails again, a retry of exit 4 only helps if the file
was merely late (prefer --skip-if-missing, or a sensor in front of this task). So do not
raise `retries` to paper over 3/4: look at the [DP] summarize_run line instead.

Stdout is one JSON result line; BashOperator pushes it to XCom as `return_value`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

with DAG(
    dag_id="featurepipe_daily_user_events",
    description="raw user events CSV -> versioned feature set (featurepipe)",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 11, 1, tz="UTC"),
    catchup=False,  # backfill past dates with `airflow dags backfill` or by hand
    max_active_runs=1,
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=10),
    },
    tags=["featurepipe", "data-pipeline"],
) as dag:
    featurepipe_run = BashOperator(
        task_id="featurepipe_run",
        # {{ ts }} is the logical date with its offset, e.g. 2025-11-19T00:00:00+00:00;
        # featurepipe converts it to DP_TIMEZONE: version v_20251119T090000 in Asia/Seoul.
        # ('{{ ds }}' instead would mean midnight of that calendar day in DP_TIMEZONE,
        # v_20251119T000000: pick one form and keep it, the version id depends on it.)
        bash_command="featurepipe run --execution-date '{{ ts }}' --skip-if-missing",
        env={
            # {ds_nodash} (single braces) is featurepipe's own template, rendered from the
            # execution date in DP_TIMEZONE; it is not Jinja.
            "DP_RAW_PATH": "s3://raw/daily/user_events_{ds_nodash}.csv",
            "DP_FEATURE_PATH": "s3://features/features/daily_user_events",
            "DP_PIPELINE_NAME": "daily_user_events",
            "DP_TIMEZONE": "Asia/Seoul",
            "DP_LOG_FORMAT": "text",
            "AWS_REGION": "ap-northeast-2",
            # MinIO instead of AWS:
            # "AWS_ENDPOINT_URL": "http://minio.minio.svc:9000",
        },
        append_env=True,  # keep PATH and the worker's AWS credentials chain
        skip_on_exit_code=99,
        execution_timeout=timedelta(hours=1),
    )
