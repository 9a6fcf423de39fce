"""Checks of a published featurepipe version with pyarrow and Feast (called by .ci/feast).

  feast_check.py files VERSION_URI ENDPOINT GRAIN
      feature.parquet read back by pyarrow equals feature.csv cell by cell, every column
      with the Arrow type its schema.json type promises; _SUCCESS, schema.json and
      metadata.json list feature.parquet with its real size and sha256.
  feast_check.py online REPO VERSION_URI ENDPOINT
      after `feast materialize`: online features of every entity of feature.csv (in one
      call) equal its row with the latest event time.

VERSION_URI is s3://bucket/prefix/v_.../ on the S3 server at ENDPOINT (credentials from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Exits 1 naming the first difference.
"""

import csv
import datetime as dt
import hashlib
import io
import json
import math
import sys

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def fail(message):
    print(f"feast_check.py: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def s3(endpoint):
    scheme, _, host = endpoint.partition("://")
    return pafs.S3FileSystem(endpoint_override=host, scheme=scheme, region="us-east-1")


def read(fs, uri):
    with fs.open_input_stream(uri.removeprefix("s3://")) as f:
        return f.read()


def csv_rows(body):
    """feature.csv as a header and rows of cell texts."""
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    return rows[0], rows[1:]


# The Arrow type of each schema.json column type.
ARROW = {
    "float": pa.float64(),
    "integer": pa.int64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def same(kind, cell, value, key_column):
    """Whether a Parquet value is the feature.csv cell `cell` of type `kind`."""
    if value is None:
        return cell == ""
    if kind == "float":
        # feature.csv writes Python's repr(float); NaN is never equal to itself.
        return cell == repr(value) or (cell == "nan" and math.isnan(value))
    if kind == "integer":
        return cell == str(value)
    if kind == "boolean":
        return cell == ("true" if value else "false")
    if kind == "timestamp":
        return cell != "" and dt.datetime.fromisoformat(cell) == value
    if kind == "string":
        # An empty text is null, except the empty group key, which is a value.
        return cell == value and (value != "" or key_column)
    fail(f"unknown column type {kind}")


def check_files(version, endpoint, grain):
    fs = s3(endpoint)
    manifest = json.loads(read(fs, version + "_SUCCESS"))
    schema = json.loads(read(fs, version + "schema.json"))
    metadata = json.loads(read(fs, version + "metadata.json"))
    parquet_bytes = read(fs, version + "feature.parquet")
    listed = manifest["files"].get("feature.parquet")
    actual = {
        "size_bytes": len(parquet_bytes),
        "sha256": hashlib.sha256(parquet_bytes).hexdigest(),
    }
    if listed != actual:
        fail(f"_SUCCESS lists feature.parquet as {listed}, the file is {actual}")
    if metadata["outputs"].get("feature.parquet") != actual:
        fail(f"metadata.json outputs feature.parquet is {metadata['outputs'].get('feature.parquet')}")
    if schema.get("parquet", {}).get("file") != "feature.parquet":
        fail(f"schema.json does not describe feature.parquet: {schema.get('parquet')}")
    if schema["grain"] != grain:
        fail(f"schema.json grain is {schema['grain']}, expected {grain}")

    header, rows = csv_rows(read(fs, version + "feature.csv"))
    table = pq.read_table(io.BytesIO(parquet_bytes))
    types = schema["columns"]
    if list(types) != header:
        fail(f"schema.json columns {list(types)} are not feature.csv's {header}")
    extra = [n for n in table.column_names if n not in types]
    timestamp_field = schema["parquet"]["timestamp_field"]
    if extra not in ([], ["event_timestamp"]) or (extra and timestamp_field != "event_timestamp"):
        fail(f"feature.parquet has columns beyond feature.csv's: {extra}")
    if table.num_rows != len(rows):
        fail(f"feature.parquet has {table.num_rows} rows, feature.csv {len(rows)}")
    keys = set(schema.get("group_by", {}).get("columns", []))
    for i, name in enumerate(header):
        kind = types[name]
        column = table.column(name)
        if column.type != ARROW[kind]:
            fail(f"column {name}: Arrow type {column.type}, expected {ARROW[kind]} ({kind})")
        for r, value in enumerate(column.to_pylist()):
            if not same(kind, rows[r][i], value, name in keys):
                fail(f"row {r + 1} column {name}: Parquet {value!r}, CSV {rows[r][i]!r}")
    if table.column(timestamp_field).type != ARROW["timestamp"]:
        fail(f"the timestamp field {timestamp_field} is {table.column(timestamp_field).type}")
    checked = sorted({types[n] for n in header})
    print(
        f"{grain} grain: {table.num_rows} rows x {len(header)} columns equal to feature.csv "
        f"({', '.join(checked)}); event time {timestamp_field}; "
        f"{len(parquet_bytes)} bytes, {pq.ParquetFile(io.BytesIO(parquet_bytes)).metadata.num_row_groups} row group(s), "
        f"listed in _SUCCESS, schema.json, metadata.json"
    )


def check_online(repo, version, endpoint):
    from feast import FeatureStore

    fs = s3(endpoint)
    schema = json.loads(read(fs, version + "schema.json"))
    header, rows = csv_rows(read(fs, version + "feature.csv"))
    time = schema["parquet"]["timestamp_field"]
    key, at = header.index("user_id"), header.index(time)
    features = [n for n in header if n not in ("user_id", time)]
    # What the online store must hold per entity: its row with the latest event time. A
    # row without one (its timestamp was unreadable: the empty bucket) is never
    # materialized, so an entity with only such rows has no online features.
    latest = {}
    for row in rows:
        user = row[key]
        latest.setdefault(user, None)
        if row[at] and (latest[user] is None or row[at] > latest[user][at]):
            latest[user] = row
    users = sorted(latest)
    store = FeatureStore(repo_path=repo)
    online = store.get_online_features(
        features=[f"daily_user_features:{n}" for n in features],
        entity_rows=[{"user_id": u} for u in users],
    ).to_dict()
    for r, user in enumerate(users):
        row = latest[user]
        for name in features:
            got = online[name][r]
            cell = "" if row is None else row[header.index(name)]
            if not same(schema["columns"][name], cell, got, False):
                fail(f"user {user!r}, {name}: online {got!r}, feature.csv {cell!r}")
    without = sum(1 for u in users if latest[u] is None)
    print(
        f"online store: {len(users)} entities (the empty key among them: {'' in users}; "
        f"{without} with no event time, so nothing online) x {len(features)} features "
        f"equal to feature.csv"
    )


def main(argv):
    if len(argv) == 5 and argv[1] == "files":
        check_files(argv[2], argv[3], argv[4])
    elif len(argv) == 5 and argv[1] == "online":
        check_online(argv[2], argv[3], argv[4])
    else:
        fail(f"usage: {__doc__}")


if __name__ == "__main__":
    try:
        main(sys.argv)
    finally:
        # Arrow's S3 client threads must stop before the interpreter exits, or its C++
        # runtime may abort at exit ("terminate called without an active exception")
        # after every check has passed.
        import gc

        gc.collect()
        pafs.finalize_s3()
