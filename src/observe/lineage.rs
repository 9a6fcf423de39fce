//! OpenLineage run events: `START` when a run has opened its storage, then one of
//! `COMPLETE` (success, or skipped), `FAIL` or `ABORT` (stopped by SIGINT / SIGTERM).
//!
//! Transports: HTTP (`OPENLINEAGE_URL`, `POST <url>/<OPENLINEAGE_ENDPOINT>`, default
//! `api/v1/lineage`, `Authorization: Bearer $OPENLINEAGE_API_KEY` when set) and a file
//! (`--lineage-file`, one JSON event per line, appended). Each event is bounded by
//! `--observe-timeout`; a failure is a warning and never changes the exit code.
//!
//! The job is `<OPENLINEAGE_NAMESPACE, default featurepipe>` / `<pipeline>`; the run id is
//! a UUID v7 made from the run's start time and its featurepipe run id. A parent run comes
//! from `OPENLINEAGE_PARENT_ID` (`namespace/name/run_id`, what Airflow's
//! `lineage_parent_id` macro renders). The raw object is the input dataset (S3:
//! namespace `s3://bucket`, name the key; local: namespace `file`, name the path), with
//! its version (ETag), schema (header), size and row count, and the rules as data
//! quality assertions (the rules check the raw data; the spec defines that facet for
//! inputs). The version folder is the output dataset, with its schema, per-column
//! metrics (null counts from the profile) and output statistics.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use super::{http, OutputFacts, RawFacts, RunFacts};

/// The default job namespace.
pub const DEFAULT_NAMESPACE: &str = "featurepipe";
/// The default path of the HTTP endpoint, after `OPENLINEAGE_URL`.
pub const DEFAULT_ENDPOINT: &str = "api/v1/lineage";

const SPEC: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const FACETS: &str = "https://openlineage.io/spec/facets";

/// Where and how to send the events.
#[derive(Debug, Clone, Default)]
pub struct LineageConfig {
    pub url: Option<String>,
    pub endpoint: String,
    pub api_key: Option<String>,
    pub file: Option<PathBuf>,
    pub namespace: String,
    /// `OPENLINEAGE_PARENT_ID` as given (checked when an event is built).
    pub parent_id: Option<String>,
}

impl LineageConfig {
    pub fn any(&self) -> bool {
        self.url.is_some() || self.file.is_some()
    }
}

/// A run whose `START` went out (or is going out, in the background).
pub struct LineageRun {
    pub run_uuid: String,
    started: Option<JoinHandle<()>>,
}

/// `OPENLINEAGE_PARENT_ID`: `namespace/name/run_id` (the name may contain `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub namespace: String,
    pub name: String,
    pub run_id: String,
}

impl Parent {
    pub fn parse(text: &str) -> Result<Parent, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "OPENLINEAGE_PARENT_ID {text:?} is not namespace/name/run_id with a UUID run id"
            )
        };
        let (namespace, rest) = text.split_once('/').ok_or_else(bad)?;
        let (name, run_id) = rest.rsplit_once('/').ok_or_else(bad)?;
        if namespace.is_empty() || name.is_empty() || !is_uuid(run_id) {
            return Err(bad());
        }
        Ok(Parent {
            namespace: namespace.into(),
            name: name.into(),
            run_id: run_id.to_ascii_lowercase(),
        })
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A UUID v7 (RFC 9562): `started_at` in milliseconds, then 74 bits from the SHA-256 of
/// the featurepipe run id (unique per run, and the same for both events of a run).
pub fn run_uuid(run_id: &str, started_at: DateTime<Utc>) -> String {
    let ms = u64::try_from(started_at.timestamp_millis()).unwrap_or(0);
    let hash = Sha256::digest(run_id.as_bytes());
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&hash[..10]);
    b[6] = 0x70 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What a run looks like when it starts.
pub struct RunStart<'a> {
    pub pipeline: &'a str,
    pub run_id: &'a str,
    pub started_at: DateTime<Utc>,
    pub execution_date: Option<&'a str>,
    pub raw_uri: Option<&'a str>,
    pub version_uri: Option<&'a str>,
}

/// Sends `START` in the background (the run does not wait for it).
pub fn start(config: &LineageConfig, run: &RunStart<'_>, timeout: Duration) -> LineageRun {
    let run_uuid = run_uuid(run.run_id, run.started_at);
    if !config.any() {
        return LineageRun {
            run_uuid,
            started: None,
        };
    }
    if let Some(Err(e)) = config.parent_id.as_deref().map(Parent::parse) {
        tracing::warn!("{e}: the lineage events name no parent run");
    }
    let inputs: Vec<Value> = run
        .raw_uri
        .map(|uri| dataset(uri, Map::new(), None))
        .into_iter()
        .collect();
    let outputs: Vec<Value> = run
        .version_uri
        .map(|uri| dataset(uri, Map::new(), None))
        .into_iter()
        .collect();
    let event = event(
        config,
        "START",
        run.started_at,
        &run_uuid,
        run.pipeline,
        run_facets(config, run.execution_date, None),
        inputs,
        outputs,
    );
    let config = config.clone();
    let started = tokio::spawn(async move { send(&config, &event, timeout).await });
    LineageRun {
        run_uuid,
        started: Some(started),
    }
}

/// Sends the run's last event, after its `START` went out.
pub async fn end(config: &LineageConfig, started: LineageRun, facts: &RunFacts, timeout: Duration) {
    if !config.any() {
        return;
    }
    if let Some(handle) = started.started {
        let _ = handle.await;
    }
    let event = end_event(config, &started.run_uuid, facts);
    send(config, &event, timeout).await;
}

/// `START` and the end event of a run that failed before it could start (configuration).
pub async fn start_and_end(config: &LineageConfig, facts: &RunFacts, timeout: Duration) {
    let run = RunStart {
        pipeline: &facts.pipeline,
        run_id: &facts.run_id,
        started_at: facts.started_at,
        execution_date: facts.execution_date.as_deref(),
        raw_uri: None,
        version_uri: None,
    };
    let started = start(config, &run, timeout);
    end(config, started, facts, timeout).await;
}

/// `COMPLETE`, `FAIL` or `ABORT` with everything the run found.
pub fn end_event(config: &LineageConfig, run_uuid: &str, facts: &RunFacts) -> Value {
    let event_type = if facts.interrupted {
        "ABORT"
    } else if facts.status == "failed" {
        "FAIL"
    } else {
        "COMPLETE"
    };
    let error = facts.error.as_ref().map(|message| {
        let step = facts.failed_step.unwrap_or("?");
        let kind = facts.error_kind.unwrap_or("?");
        json!({
            "_producer": producer(),
            "_schemaURL": format!("{FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"),
            "message": format!("{step}: {kind}: {message} (exit {})", facts.exit_code),
            "programmingLanguage": "rust",
        })
    });
    let inputs: Vec<Value> = facts
        .raw
        .as_ref()
        .map(|raw| input(raw, facts))
        .into_iter()
        .collect();
    let outputs: Vec<Value> = facts
        .output
        .version_uri
        .as_deref()
        .map(|uri| output(uri, &facts.output))
        .into_iter()
        .collect();
    event(
        config,
        event_type,
        facts.finished_at,
        run_uuid,
        &facts.pipeline,
        run_facets(config, facts.execution_date.as_deref(), error),
        inputs,
        outputs,
    )
}

#[allow(clippy::too_many_arguments)]
fn event(
    config: &LineageConfig,
    event_type: &str,
    at: DateTime<Utc>,
    run_uuid: &str,
    pipeline: &str,
    run_facets: Map<String, Value>,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
) -> Value {
    json!({
        "eventType": event_type,
        "eventTime": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "producer": producer(),
        "schemaURL": SPEC,
        "run": { "runId": run_uuid, "facets": run_facets },
        "job": {
            "namespace": config.namespace,
            "name": pipeline,
            "facets": {
                "jobType": {
                    "_producer": producer(),
                    "_schemaURL": format!("{FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"),
                    "processingType": "BATCH",
                    "integration": "FEATUREPIPE",
                    "jobType": "JOB",
                }
            },
        },
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// `urn:featurepipe:<version>`: who produced the events.
fn producer() -> String {
    format!("urn:featurepipe:{}", env!("CARGO_PKG_VERSION"))
}

fn facet(schema: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("_producer".into(), producer().into());
    m.insert("_schemaURL".into(), format!("{FACETS}/{schema}").into());
    m
}

fn run_facets(
    config: &LineageConfig,
    execution_date: Option<&str>,
    error: Option<Value>,
) -> Map<String, Value> {
    let mut facets = Map::new();
    let mut engine = facet("1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet");
    engine.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    engine.insert("name".into(), "featurepipe".into());
    facets.insert("processing_engine".into(), engine.into());
    let nominal = execution_date
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| {
            d.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        });
    if let Some(nominal) = nominal {
        let mut f = facet("1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet");
        f.insert("nominalStartTime".into(), nominal.into());
        facets.insert("nominalTime".into(), f.into());
    }
    if let Some(parent) = config
        .parent_id
        .as_deref()
        .and_then(|p| Parent::parse(p).ok())
    {
        let mut f = facet("1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet");
        f.insert("run".into(), json!({ "runId": parent.run_id }));
        f.insert(
            "job".into(),
            json!({ "namespace": parent.namespace, "name": parent.name }),
        );
        facets.insert("parent".into(), f.into());
    }
    if let Some(error) = error {
        facets.insert("errorMessage".into(), error);
    }
    facets
}

/// An OpenLineage dataset's namespace and name for a featurepipe URI.
pub fn naming(uri: &str) -> (String, String) {
    let uri = uri.trim_end_matches('/');
    match uri.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            (format!("s3://{bucket}"), key.to_string())
        }
        None => {
            let path = uri.strip_prefix("file://").unwrap_or(uri);
            ("file".to_string(), path.to_string())
        }
    }
}

fn dataset(
    uri: &str,
    facets: Map<String, Value>,
    extra: Option<(&str, Map<String, Value>)>,
) -> Value {
    let (namespace, name) = naming(uri);
    let mut d = json!({ "namespace": namespace, "name": name, "facets": facets });
    if let (Some((key, more)), Some(obj)) = (extra, d.as_object_mut()) {
        obj.insert(key.into(), more.into());
    }
    d
}

fn input(raw: &RawFacts, facts: &RunFacts) -> Value {
    let mut facets = Map::new();
    if let Some(version) = raw.etag.as_ref().or(raw.last_modified.as_ref()) {
        let mut f =
            facet("1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet");
        f.insert("datasetVersion".into(), version.clone().into());
        facets.insert("version".into(), f.into());
    }
    if let Some(columns) = &raw.columns {
        let mut f = facet("1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet");
        let fields: Vec<Value> = columns
            .iter()
            .map(|c| json!({ "name": c, "type": "string" }))
            .collect();
        f.insert("fields".into(), fields.into());
        facets.insert("schema".into(), f.into());
    }
    let mut input_facets = Map::new();
    if raw.size_bytes.is_some() || facts.rows.is_some() {
        let mut f = facet(
            "1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet",
        );
        if let Some(rows) = facts.rows {
            f.insert("rowCount".into(), rows.into());
        }
        if let Some(size) = raw.size_bytes {
            f.insert("size".into(), size.into());
        }
        f.insert("fileCount".into(), 1.into());
        input_facets.insert("inputStatistics".into(), f.into());
    }
    if let Some(rules) = &facts.rules {
        let mut f = facet(
            "1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
        );
        let assertions: Vec<Value> = rules
            .iter()
            .map(|r| {
                let mut a = json!({
                    "assertion": r.name,
                    "success": r.passed,
                    "severity": r.severity.as_str(),
                    "expected": r.threshold.to_string(),
                    "actual": r.observed.to_string(),
                });
                if let (Some(column), Some(obj)) = (&r.column, a.as_object_mut()) {
                    obj.insert("column".into(), column.clone().into());
                }
                a
            })
            .collect();
        f.insert("assertions".into(), assertions.into());
        input_facets.insert("dataQualityAssertions".into(), f.into());
    }
    dataset(&raw.uri, facets, Some(("inputFacets", input_facets)))
}

fn output(uri: &str, out: &OutputFacts) -> Value {
    let mut facets = Map::new();
    if let Some(columns) = &out.columns {
        let mut f = facet("1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet");
        let fields: Vec<Value> = columns
            .iter()
            .map(|(name, ty)| json!({ "name": name, "type": ty }))
            .collect();
        f.insert("fields".into(), fields.into());
        facets.insert("schema".into(), f.into());
    }
    if let Some(version) = &out.feature_version {
        let mut f =
            facet("1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet");
        f.insert("datasetVersion".into(), version.clone().into());
        facets.insert("version".into(), f.into());
    }
    if !out.column_nulls.is_empty() || out.feature_rows.is_some() {
        let mut f = facet(
            "1-0-1/DataQualityMetricsDatasetFacet.json#/$defs/DataQualityMetricsDatasetFacet",
        );
        let metrics: Map<String, Value> = out
            .column_nulls
            .iter()
            .map(|(name, nulls, count)| {
                (name.clone(), json!({ "nullCount": nulls, "count": count }))
            })
            .collect();
        f.insert("columnMetrics".into(), metrics.into());
        if let Some(rows) = out.feature_rows {
            f.insert("rowCount".into(), rows.into());
        }
        if let Some(bytes) = out.feature_bytes {
            f.insert("bytes".into(), bytes.into());
        }
        facets.insert("dataQualityMetrics".into(), f.into());
    }
    let mut output_facets = Map::new();
    if out.published {
        let mut f = facet(
            "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
        );
        if let Some(rows) = out.feature_rows {
            f.insert("rowCount".into(), rows.into());
        }
        f.insert("size".into(), out.written_bytes.into());
        f.insert("fileCount".into(), out.files.into());
        output_facets.insert("outputStatistics".into(), f.into());
    }
    dataset(uri, facets, Some(("outputFacets", output_facets)))
}

/// Sends one event on every configured transport; failures are warnings.
async fn send(config: &LineageConfig, event: &Value, timeout: Duration) {
    let kind = event["eventType"].as_str().unwrap_or("?").to_string();
    let line = event.to_string();
    let http = async {
        if let Some(url) = &config.url {
            let endpoint = format!(
                "{}/{}",
                url.trim_end_matches('/'),
                config.endpoint.trim_start_matches('/')
            );
            let bearer = config.api_key.as_ref().map(|k| format!("Bearer {k}"));
            let mut headers = vec![("content-type", "application/json")];
            if let Some(b) = &bearer {
                headers.push(("authorization", b.as_str()));
            }
            let body = Bytes::from(line.clone());
            match http::send(http::Method::POST, &endpoint, &headers, body, timeout).await {
                Ok(reply) if reply.ok() => {}
                Ok(reply) => tracing::warn!(
                    "OpenLineage {kind} event not accepted by {endpoint} ({}: {}); the run's result stands",
                    reply.status,
                    reply.body
                ),
                Err(e) => tracing::warn!(
                    "OpenLineage {kind} event not sent ({e}); the run's result stands"
                ),
            }
        }
    };
    let file = async {
        if let Some(path) = &config.file {
            let appended = tokio::time::timeout(timeout, append(path, &line)).await;
            let failed = match appended {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("took more than {} s", timeout.as_secs_f64())),
            };
            if let Some(e) = failed {
                tracing::warn!(
                    "OpenLineage {kind} event not written to {} ({e}); the run's result stands",
                    path.display()
                );
            }
        }
    };
    tokio::join!(http, file);
}

/// Appends one line in a single write (O_APPEND: whole lines even with parallel runs).
async fn append(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    file.write_all(format!("{line}\n").as_bytes()).await?;
    file.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_uuid_v7_stable_per_run() {
        let t = DateTime::parse_from_rfc3339("2025-11-19T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = run_uuid("20251119T000000Z-aaaa0000", t);
        assert!(is_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "7", "version 7: {a}");
        assert!("89ab".contains(&a[19..20]), "RFC variant: {a}");
        assert_eq!(a, run_uuid("20251119T000000Z-aaaa0000", t));
        assert_ne!(a, run_uuid("20251119T000000Z-bbbb0000", t));
        // The first 48 bits are the milliseconds: ids sort by start time.
        let ms = u64::from_str_radix(&format!("{}{}", &a[..8], &a[9..13]), 16).unwrap();
        assert_eq!(ms, t.timestamp_millis() as u64);
    }

    #[test]
    fn a_parent_id_is_namespace_name_and_uuid() {
        let p = Parent::parse("airflow/dag.task/01931b0c-6f3e-7c8a-9a1b-2c3d4e5f6a7b").unwrap();
        assert_eq!(p.namespace, "airflow");
        assert_eq!(p.name, "dag.task");
        let p = Parent::parse("ns/a/b/01931B0C-6F3E-7C8A-9A1B-2C3D4E5F6A7B").unwrap();
        assert_eq!(
            (p.name.as_str(), p.run_id.as_str()),
            ("a/b", "01931b0c-6f3e-7c8a-9a1b-2c3d4e5f6a7b")
        );
        assert!(Parent::parse("airflow/dag.task").is_err());
        assert!(Parent::parse("airflow/dag.task/not-a-uuid").is_err());
        assert!(Parent::parse("/x/01931b0c-6f3e-7c8a-9a1b-2c3d4e5f6a7b").is_err());
    }

    #[test]
    fn datasets_are_named_as_the_naming_spec_says() {
        assert_eq!(
            naming("s3://raw/daily/u_20251119.csv"),
            ("s3://raw".into(), "daily/u_20251119.csv".into())
        );
        assert_eq!(
            naming("s3://features/f/v_20251119T000000/"),
            ("s3://features".into(), "f/v_20251119T000000".into())
        );
        assert_eq!(
            naming("/data/raw.csv"),
            ("file".into(), "/data/raw.csv".into())
        );
    }
}
