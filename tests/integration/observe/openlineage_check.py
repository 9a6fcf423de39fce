"""Validates OpenLineage events against the openlineage-python client's models.

    python openlineage_check.py EVENTS.jsonl

Each line is built into the client's attrs classes (openlineage.client.event_v2 and
openlineage.client.generated.*): an unknown or missing field fails the build, each value
is checked against the field's type hint, each facet's _schemaURL must be the one its
class declares, runId must be a UUID, and the model serialized back (Serde.to_dict)
must equal the event read. Prints one JSON line per valid event; exits 1 on the first
invalid one, naming the field.
"""

from __future__ import annotations

import json
import sys
import types
import typing
import uuid

import attr
from openlineage.client import event_v2
from openlineage.client.generated import (
    data_quality_assertions_dataset,
    data_quality_metrics_dataset,
    dataset_version_dataset,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.serde import Serde

RUN_FACETS = {
    "parent": parent_run.ParentRunFacet,
    "nominalTime": nominal_time_run.NominalTimeRunFacet,
    "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
    "errorMessage": error_message_run.ErrorMessageRunFacet,
}
JOB_FACETS = {"jobType": job_type_job.JobTypeJobFacet}
DATASET_FACETS = {
    "schema": schema_dataset.SchemaDatasetFacet,
    "version": dataset_version_dataset.DatasetVersionDatasetFacet,
    "dataQualityMetrics": data_quality_metrics_dataset.DataQualityMetricsDatasetFacet,
}
INPUT_FACETS = {
    "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet,
    "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet,
}
OUTPUT_FACETS = {
    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
}


class Invalid(Exception):
    pass


def check_type(path: str, value, hint) -> object:
    """`value` built as `hint` says (attrs classes recursively), or Invalid."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return check_type(path, value, option)
            except Invalid as e:
                errors.append(str(e))
        raise Invalid("; ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(f"{path}: want a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [check_type(f"{path}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"{path}: want an object, got {value!r}")
        _, item = typing.get_args(hint)
        return {k: check_type(f"{path}.{k}", v, item) for k, v in value.items()}
    if hint is typing.Any:
        return value
    if attr.has(hint):
        return build(path, hint, value)
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(hint, type):
        ok = isinstance(value, hint)
    else:
        raise Invalid(f"{path}: cannot check type {hint!r}")
    if not ok:
        raise Invalid(f"{path}: want {getattr(hint, '__name__', hint)}, got {value!r}")
    return value


def build(path: str, cls, data) -> object:
    if not isinstance(data, dict):
        raise Invalid(f"{path}: want an object for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attr.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise Invalid(f"{path}.{key}: {cls.__name__} has no such field")
        if not fields[key].init:
            # Set by the model itself (a facet's _schemaURL); the round trip compares it.
            continue
        kwargs[fields[key].alias] = check_type(f"{path}.{key}", value, hints[key])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise Invalid(f"{path}: {cls.__name__}: {e}") from e


def facets(path: str, data, known: dict) -> dict:
    out = {}
    for key, value in (data or {}).items():
        if key not in known:
            raise Invalid(f"{path}.{key}: not a facet this check knows")
        facet = build(f"{path}.{key}", known[key], value)
        want = known[key]._get_schema()
        if value.get("_schemaURL") != want:
            raise Invalid(f"{path}.{key}._schemaURL is {value.get('_schemaURL')!r}, the model says {want!r}")
        out[key] = facet
    return out


def dataset(path: str, cls, data, extra_key: str, extra_known: dict):
    data = dict(data)
    extra = data.pop(extra_key, None)
    built = build(path, cls, {k: v for k, v in data.items() if k != "facets"})
    built.facets = facets(f"{path}.facets", data.get("facets"), DATASET_FACETS)
    setattr(built, extra_key, facets(f"{path}.{extra_key}", extra, extra_known))
    return built


def event(data: dict) -> event_v2.RunEvent:
    for key in ("eventType", "eventTime", "producer", "schemaURL", "run", "job"):
        if key not in data:
            raise Invalid(f"{key} is missing")
    run = data["run"]
    uuid.UUID(run["runId"])
    built_run = event_v2.Run(runId=run["runId"], facets=facets("run.facets", run.get("facets"), RUN_FACETS))
    job = data["job"]
    built_job = build("job", event_v2.Job, {k: v for k, v in job.items() if k != "facets"})
    built_job.facets = facets("job.facets", job.get("facets"), JOB_FACETS)
    unknown = set(data) - {"eventType", "eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs"}
    if unknown:
        raise Invalid(f"RunEvent has no field {sorted(unknown)}")
    return event_v2.RunEvent(
        eventType=event_v2.RunState(data["eventType"]),
        eventTime=data["eventTime"],
        producer=data["producer"],
        run=built_run,
        job=built_job,
        inputs=[
            dataset(f"inputs[{i}]", event_v2.InputDataset, d, "inputFacets", INPUT_FACETS)
            for i, d in enumerate(data.get("inputs", []))
        ],
        outputs=[
            dataset(f"outputs[{i}]", event_v2.OutputDataset, d, "outputFacets", OUTPUT_FACETS)
            for i, d in enumerate(data.get("outputs", []))
        ],
    )


def without_empty(value):
    """No nulls, no empty objects or lists (the models default what is absent to them)."""
    value = Serde.remove_nulls_and_enums(value)
    if isinstance(value, dict):
        value = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in value.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [without_empty(v) for v in value]
    return value


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    for n, line in enumerate(lines, 1):
        data = json.loads(line)
        try:
            model = event(data)
        except (Invalid, ValueError, KeyError) as e:
            print(f"event {n} is not a valid OpenLineage RunEvent: {e}", file=sys.stderr)
            return 1
        again = without_empty(Serde.to_dict(model))
        if again != without_empty(data):
            print(
                f"event {n} does not survive the client's model unchanged:\n"
                f"read:  {json.dumps(without_empty(data), sort_keys=True)}\n"
                f"model: {json.dumps(again, sort_keys=True)}",
                file=sys.stderr,
            )
            return 1
        print(json.dumps({"eventType": data["eventType"], "runId": data["run"]["runId"], "job": data["job"]["name"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
