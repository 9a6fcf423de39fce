#!/usr/bin/env python3
"""The peers scripts/bench.sh measures featurepipe against (DuckDB and polars), and the check
that their outputs agree with featurepipe's.

    bench_peers.py entity-duckdb --raw SRC --out DST [--endpoint-url URL]
    bench_peers.py entity-polars --raw SRC --out DST [--endpoint-url URL]
    bench_peers.py rowsum-polars --raw SRC --out DST [--endpoint-url URL]
    bench_peers.py check-entity  --ref FEATURE_CSV --other NAME=CSV [--other NAME=CSV ...]
    bench_peers.py versions

SRC / DST: a local path or s3://bucket/key (then --endpoint-url, the S3 server, is required;
credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, region AWS_REGION or us-east-1,
path-style addressing, plain HTTP).

entity-*: the aggregation of fixtures/pipelines/daily_user_features.toml (see src/group_by.rs):
per (user_id, day of event_time in Asia/Seoul): count, sum / mean of amount, max of
event_value, distinct event_type count, null count of amount, event_type of the earliest
and device of the latest row by event_time; null user_id -> "", no timestamp -> bucket "";
sorted by key; written as CSV with a header.

rowsum-polars: the row grain default pipeline's job: row_sum = sum of user_id, is_premium,
event_value, amount, session_length_sec per row (empty cells count 0), one column.

check-entity: compares each other output with the reference (featurepipe's feature.csv): row
count and the set of (user_id, event_date) keys must be equal (exit 1 otherwise); then, as
information, counts per column the rows whose values differ (floats compared with a relative
tolerance of 1e-9). Prints one line per output.
"""

import argparse
import os
import sys
import urllib.parse

TZ = "Asia/Seoul"
RAW_COLUMNS = [
    "event_id",
    "user_id",
    "event_time",
    "event_type",
    "is_premium",
    "event_value",
    "amount",
    "session_length_sec",
    "country",
    "device",
]
ENTITY_COLUMNS = [
    "user_id",
    "event_date",
    "events",
    "amount_sum",
    "amount_mean",
    "event_value_max",
    "event_types",
    "missing_amounts",
    "first_event_type",
    "last_device",
]
FLOAT_COLUMNS = ["amount_sum", "amount_mean", "event_value_max"]


def s3_settings(endpoint_url):
    if not endpoint_url:
        sys.exit("bench_peers.py: s3:// paths need --endpoint-url")
    try:
        key = os.environ["AWS_ACCESS_KEY_ID"]
        secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    except KeyError as e:
        sys.exit(f"bench_peers.py: {e.args[0]} is not set")
    region = os.environ.get("AWS_REGION") or "us-east-1"
    return key, secret, region


# --- DuckDB --------------------------------------------------------------------------------


def duckdb_connect(endpoint_url, needs_s3):
    import duckdb
    import duckdb_extension_httpfs

    con = duckdb.connect()
    if needs_s3:
        # The httpfs extension from its PyPI package (no download at run time).
        ext = os.path.join(
            os.path.dirname(duckdb_extension_httpfs.__file__),
            "extensions",
            "v" + duckdb.__version__,
            "httpfs.duckdb_extension",
        )
        con.execute(f"LOAD '{ext}'")
        key, secret, region = s3_settings(endpoint_url)
        ep = urllib.parse.urlsplit(endpoint_url)
        con.execute(
            "CREATE SECRET bench (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
            "URL_STYLE 'path', USE_SSL ?)",
            [key, secret, region, ep.netloc, ep.scheme == "https"],
        )
    return con


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def entity_duckdb(args):
    needs_s3 = args.raw.startswith("s3://") or args.out.startswith("s3://")
    con = duckdb_connect(args.endpoint_url, needs_s3)
    columns = {c: "VARCHAR" for c in RAW_COLUMNS}
    columns.update(event_time="TIMESTAMPTZ", event_value="DOUBLE", amount="DOUBLE")
    cols_sql = "{" + ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in columns.items()) + "}"
    # The day bucket: the local day in the zone, named by its start with the zone's offset
    # then (featurepipe's timestamp::bucket_start, e.g. 2025-11-19T00:00:00+09:00).
    tz = sql_str(TZ)
    con.execute(
        f"""
        CREATE MACRO local_day(ts) AS date_trunc('day', timezone({tz}, ts));
        CREATE MACRO offset_s(d) AS CAST(epoch(d) - epoch(timezone({tz}, d)) AS BIGINT);
        CREATE MACRO day_bucket(ts) AS CASE WHEN ts IS NULL THEN '' ELSE
            strftime(local_day(ts), '%Y-%m-%dT%H:%M:%S')
            || CASE WHEN offset_s(local_day(ts)) < 0 THEN '-' ELSE '+' END
            || lpad(CAST(abs(offset_s(local_day(ts))) // 3600 AS VARCHAR), 2, '0') || ':'
            || lpad(CAST(abs(offset_s(local_day(ts))) % 3600 // 60 AS VARCHAR), 2, '0')
            END;
        """
    )
    con.execute(
        f"""
        COPY (
            SELECT
                coalesce(user_id, '') AS user_id,
                day_bucket(event_time) AS event_date,
                count(*) AS events,
                sum(amount) AS amount_sum,
                avg(amount) AS amount_mean,
                max(event_value) AS event_value_max,
                count(DISTINCT event_type) AS event_types,
                count(*) - count(amount) AS missing_amounts,
                arg_min_null(event_type, event_time) AS first_event_type,
                arg_max_null(device, event_time) AS last_device
            FROM read_csv({sql_str(args.raw)}, header = true, auto_detect = false,
                          delim = ',', quote = '"', escape = '"', columns = {cols_sql})
            GROUP BY ALL
            ORDER BY user_id, event_date
        ) TO {sql_str(args.out)} (FORMAT csv, HEADER true)
        """
    )


# --- polars --------------------------------------------------------------------------------


def polars_storage(path, endpoint_url):
    if not path.startswith("s3://"):
        return None
    key, secret, region = s3_settings(endpoint_url)
    return {
        "aws_access_key_id": key,
        "aws_secret_access_key": secret,
        "aws_region": region,
        "aws_endpoint_url": endpoint_url,
        "aws_allow_http": "true" if endpoint_url.startswith("http://") else "false",
        "aws_virtual_hosted_style_request": "false",
    }


def polars_scan(pl, raw, endpoint_url, schema):
    return pl.scan_csv(
        raw,
        has_header=True,
        schema=schema,
        quote_char='"',
        storage_options=polars_storage(raw, endpoint_url),
    )


def polars_sink(lf, out, endpoint_url):
    lf.sink_csv(out, storage_options=polars_storage(out, endpoint_url))


def entity_polars(args):
    import polars as pl

    schema = {c: pl.String for c in RAW_COLUMNS}
    schema.update(
        event_time=pl.Datetime("us", "UTC"), event_value=pl.Float64, amount=pl.Float64
    )
    lf = polars_scan(pl, args.raw, args.endpoint_url, schema)
    ts = pl.col("event_time")
    amount = pl.col("amount")
    bucket = (
        ts.dt.convert_time_zone(TZ).dt.truncate("1d").dt.strftime("%Y-%m-%dT%H:%M:%S%:z")
    )
    # first: the earliest timestamp, the first such row in input order (arg_min returns
    # the first index of the minimum); last: the latest, the last such row in input order
    # (arg_max of the reversed group). Rows without a timestamp never win (arg_* skip
    # nulls); a group with none gets null.
    first = pl.col("event_type").get(ts.arg_min())
    last = pl.col("device").reverse().get(ts.reverse().arg_max())
    has_time = ts.count() > 0
    out = (
        lf.with_columns(
            pl.col("user_id").fill_null(""), bucket.fill_null("").alias("event_date")
        )
        .group_by("user_id", "event_date")
        .agg(
            pl.len().alias("events"),
            pl.when(amount.count() > 0).then(amount.sum()).alias("amount_sum"),
            amount.mean().alias("amount_mean"),
            pl.col("event_value").max().alias("event_value_max"),
            pl.col("event_type").drop_nulls().n_unique().alias("event_types"),
            amount.null_count().alias("missing_amounts"),
            pl.when(has_time).then(first).alias("first_event_type"),
            pl.when(has_time).then(last).alias("last_device"),
        )
        .sort("user_id", "event_date")
    )
    polars_sink(out, args.out, args.endpoint_url)


def rowsum_polars(args):
    import polars as pl

    summed = ["user_id", "is_premium", "event_value", "amount", "session_length_sec"]
    schema = {c: pl.String for c in RAW_COLUMNS}
    schema.update({c: pl.Float64 for c in summed})
    lf = polars_scan(pl, args.raw, args.endpoint_url, schema)
    out = lf.select(pl.sum_horizontal(*summed).alias("row_sum"))
    polars_sink(out, args.out, args.endpoint_url)


# --- check ---------------------------------------------------------------------------------


def check_entity(args):
    import polars as pl

    def load(path):
        # Every cell as text; an empty cell (featurepipe's null and empty key) and a quoted
        # empty string (the peers' empty key) both read as "".
        df = pl.read_csv(path, infer_schema=False).with_columns(pl.all().fill_null(""))
        if df.columns != ENTITY_COLUMNS:
            sys.exit(f"check-entity: {path}: columns {df.columns}, expected {ENTITY_COLUMNS}")
        return df

    ref = load(args.ref)
    ref_keys = ref.select("user_id", "event_date")
    failed = False
    for spec in args.other:
        name, _, path = spec.partition("=")
        df = load(path)
        keys = df.select("user_id", "event_date")
        same_rows = df.height == ref.height
        missing = ref_keys.join(keys, on=["user_id", "event_date"], how="anti").height
        extra = keys.join(ref_keys, on=["user_id", "event_date"], how="anti").height
        dup = keys.height - keys.unique().height
        ok = same_rows and missing == 0 and extra == 0 and dup == 0
        failed |= not ok
        diffs = []
        if missing == 0 and extra == 0 and dup == 0:
            j = ref.join(df, on=["user_id", "event_date"], suffix="_o")
            for c in ENTITY_COLUMNS[2:]:
                a, b = pl.col(c), pl.col(c + "_o")
                if c in FLOAT_COLUMNS:
                    x, y = a.cast(pl.Float64, strict=False), b.cast(pl.Float64, strict=False)
                    same = (x.is_null() & y.is_null()) | (
                        (x - y).abs() <= 1e-9 * pl.max_horizontal(x.abs(), y.abs(), pl.lit(1.0))
                    )
                    text_same = a == b
                    n = j.filter(~same.fill_null(False)).height
                    t = j.filter(~text_same).height
                    diffs.append(f"{c}={n}" + (f" (text {t})" if t else ""))
                else:
                    n = j.filter(a != b).height
                    diffs.append(f"{c}={n}")
        print(
            f"check {name}: {'OK' if ok else 'MISMATCH'} rows={df.height} ref_rows={ref.height} "
            f"keys_missing={missing} keys_extra={extra} duplicate_keys={dup} "
            f"differing_values: {' '.join(diffs) if diffs else 'n/a'}"
        )
    return 1 if failed else 0


def versions(_args):
    import duckdb
    import polars

    print(f"duckdb {duckdb.__version__} (httpfs from PyPI), polars {polars.__version__}, "
          f"Python {sys.version.split()[0]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in [
        ("entity-duckdb", entity_duckdb),
        ("entity-polars", entity_polars),
        ("rowsum-polars", rowsum_polars),
    ]:
        s = sub.add_parser(name)
        s.add_argument("--raw", required=True)
        s.add_argument("--out", required=True)
        s.add_argument("--endpoint-url")
        s.set_defaults(fn=fn)
    s = sub.add_parser("check-entity")
    s.add_argument("--ref", required=True)
    s.add_argument("--other", action="append", default=[], metavar="NAME=CSV")
    s.set_defaults(fn=check_entity)
    s = sub.add_parser("versions")
    s.set_defaults(fn=versions)
    args = p.parse_args()
    sys.exit(args.fn(args) or 0)


if __name__ == "__main__":
    main()
