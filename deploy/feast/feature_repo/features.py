"""Feast definitions for daily_user_features, one featurepipe version as a file source.

FEATUREPIPE_PARQUET names the version's feature.parquet: a local path, or
s3://bucket/prefix/v_YYYYMMDDTHHMMSS/feature.parquet. For MinIO or another S3-compatible
server, FEATUREPIPE_S3_ENDPOINT is its endpoint (http://localhost:9000); credentials come
from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY as for featurepipe.
"""

import os
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

daily_user_features_source = FileSource(
    name="daily_user_features",
    path=os.environ.get("FEATUREPIPE_PARQUET", "data/feature.parquet"),
    # schema.json "parquet": "timestamp_field": the day bucket, a TIMESTAMP(MICROS, UTC).
    timestamp_field="event_date",
    s3_endpoint_override=os.environ.get("FEATUREPIPE_S3_ENDPOINT") or None,
)

# The group key of the pipeline (group_by = ["user_id"]), a string in feature.parquet.
user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)

daily_user_features = FeatureView(
    name="daily_user_features",
    entities=[user],
    # A day's features stay valid for a day after their bucket starts.
    ttl=timedelta(days=2),
    schema=[
        Field(name="user_id", dtype=String),
        Field(name="events", dtype=Int64),
        Field(name="amount_sum", dtype=Float64),
        Field(name="amount_mean", dtype=Float64),
        Field(name="event_value_max", dtype=Float64),
        Field(name="event_types", dtype=Int64),
        Field(name="missing_amounts", dtype=Int64),
        Field(name="first_event_type", dtype=String),
        Field(name="last_device", dtype=String),
    ],
    source=daily_user_features_source,
    online=True,
)
