//! `build_features`: computes the feature table, and the content of `schema.json` and
//! `metadata.json`.
//!
//! Its side of the one pass over the raw object is [`side`]: the feature rows (row
//! grain) or groups (entity grain) on the scanner thread (`pass::features`), then
//! `feature.csv`, each column's profile and the file's digest on the feature thread
//! (`pass::feature_writer`), streamed into a staged upload this stage opens. Once the
//! pass and validation are over, [`finish`] builds the documents of the version.

use std::collections::BTreeMap;

use crate::config::describe;
use crate::config::spec::Features;
use crate::config::RunSettings;
use crate::error::{Error, Result};
use crate::log::{keys, DpLine, Step};
use crate::pass::parquet_writer::ParquetLayout;
use crate::pass::profile::ColumnProfile;
use crate::pass::sources::Compression;
use crate::pass::{FeatureSide, FeaturesBuilt, Part};
use crate::run::context::RunContext;
use crate::values::execution_date::now_iso;
use crate::versions::documents::Drift;
use crate::versions::documents::{
    digest, to_pretty_json, FileDigest, GroupBySchema, Metadata, ParquetSchema, PassTimings,
    Producer, Schema, SourceFile, SourceInfo, TimeBucketSchema, ToolInfo,
};
use crate::versions::layout;

use super::validate_data::millis;

/// The documents of a version, ready to publish, and the staged `feature.csv` they
/// describe.
pub struct Built {
    /// Output column names, in CSV order.
    pub columns: Vec<String>,
    /// `row` or `entity`.
    pub grain: &'static str,
    pub feature: FeaturesBuilt,
    pub schema_json: Vec<u8>,
    /// Completed by `store_features` with the timings known at write time.
    pub metadata: Metadata,
}

impl Built {
    pub fn log_fields(&self, line: DpLine) -> DpLine {
        line.with(keys::FEATURE_ROWS, self.metadata.rows_feature)
            .with(keys::COLUMNS, self.columns.join(","))
            .with(keys::GRAIN, self.grain)
    }
}

/// build_features' side of the pass, and the layout of `feature.parquet` when it is
/// written. Outside a dry run it also opens the staged upload of each output file
/// (invisible until `store_features` commits it) and hands it to the run context, their
/// one owner.
pub async fn side(ctx: &mut RunContext) -> Result<(FeatureSide, Option<ParquetLayout>)> {
    let formats = ctx.settings.output.value;
    let parquet = match formats.parquet {
        true => Some(parquet_layout(&ctx.settings)?),
        false => None,
    };
    if !ctx.settings.dry_run {
        for (wanted, name) in [
            (formats.csv, layout::FEATURE_CSV),
            (formats.parquet, layout::FEATURE_PARQUET),
        ] {
            if wanted {
                let upload = ctx.out_store.start_upload(&ctx.version_key(name)).await?;
                ctx.staged.add(name, upload);
            }
        }
    }
    let spec = &ctx.settings.spec;
    let side = FeatureSide::new(&spec.features, &spec.source, ctx.settings.timezone);
    Ok((side, parquet))
}

/// The columns of `feature.parquet`: the feature schema's, entity-grain group keys keeping
/// their empty key, and the execution date as event time when no column is a timestamp.
pub fn parquet_layout(settings: &RunSettings) -> Result<ParquetLayout> {
    let features = &settings.spec.features;
    let group_keys = match features {
        Features::Entities(e) => e.group_by.clone(),
        Features::Rows(_) => Vec::new(),
    };
    let event_time = settings.execution_date.datetime().timestamp_micros();
    ParquetLayout::new(&features.columns(), &group_keys, event_time)
        .map_err(|m| Error::Usage(format!("{}: {m}", settings.output.origin)))
}

/// The fields a `build_features` line adds: what was built and where its time went.
pub fn line_fields(ctx: &RunContext, line: DpLine) -> DpLine {
    let line = match &ctx.built {
        Some(b) => b.log_fields(line),
        None => line,
    };
    match &ctx.validated {
        Some(v) => line
            .with(keys::PASS_MS, millis(Some(v.timing.wall)))
            .with(keys::WRITE_CPU_MS, millis(v.timing.write_cpu)),
        None => line,
    }
}

/// Timings of finished steps as a JSON object, in run order.
pub fn timings_json(timings: &[(Step, u64)]) -> serde_json::Map<String, serde_json::Value> {
    timings
        .iter()
        .map(|(step, ms)| (step.as_str().to_string(), (*ms).into()))
        .collect()
}

/// The column profiles as a JSON object, in CSV column order.
fn profile_json(
    profile: &[(String, ColumnProfile)],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    profile
        .iter()
        .map(|(name, p)| {
            serde_json::to_value(p)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Internal(format!("cannot serialise the profile: {e}")))
        })
        .collect()
}

/// After the pass and validation: `schema.json` and `metadata.json` for the feature
/// file the pass wrote.
pub fn finish(ctx: &mut RunContext, feature: FeaturesBuilt) -> Result<()> {
    let (Some(extracted), Some(validated)) = (&ctx.extracted, &ctx.validated) else {
        return Err(Error::Internal(
            "build_features finished before validate_data".into(),
        ));
    };
    let settings = &ctx.settings;
    let tz = settings.timezone;
    let created_at = now_iso(tz);
    let feature_version = settings.version_id();

    let features = &settings.spec.features;
    let schema = Schema {
        feature_version: feature_version.clone(),
        columns: feature
            .columns
            .iter()
            .map(|(name, ty)| (name.clone(), ty.as_str().into()))
            .collect(),
        created_at: created_at.clone(),
        pipeline_name: settings.pipeline.clone(),
        grain: features.grain(),
        key_columns: features.key_columns(),
        group_by: match features {
            Features::Rows(_) => None,
            Features::Entities(e) => Some(GroupBySchema {
                columns: e.group_by.clone(),
                time_bucket: e.time_bucket.as_ref().map(|b| TimeBucketSchema {
                    column: b.column.clone(),
                    every: b.every.as_str(),
                    name: b.name.clone(),
                }),
            }),
        },
        parquet: None,
    };
    let schema = Schema {
        parquet: match &feature.parquet {
            Some(_) => {
                let layout = parquet_layout(settings)?;
                Some(ParquetSchema {
                    file: layout::FEATURE_PARQUET,
                    columns: layout
                        .describe()
                        .into_iter()
                        .map(|(name, ty)| (name, ty.into()))
                        .collect(),
                    timestamp_field: layout.timestamp_field().to_string(),
                })
            }
            None => None,
        },
        ..schema
    };
    let schema_json = to_pretty_json(&schema)?;

    let mut outputs = BTreeMap::new();
    for (name, file) in [
        (layout::FEATURE_CSV, &feature.csv),
        (layout::FEATURE_PARQUET, &feature.parquet),
    ] {
        if let Some(file) = file {
            outputs.insert(
                name,
                FileDigest {
                    size_bytes: file.size_bytes,
                    sha256: file.sha256.clone(),
                },
            );
        }
    }
    outputs.insert(layout::SCHEMA_JSON, digest(&schema_json));

    let stats = &validated.stats;
    let metadata = Metadata {
        source_raw_path: ctx.raw_uri(),
        rows_raw: stats.rows,
        rows_feature: feature.rows,
        raw_null_rate: stats.null_rate(),
        raw_valid: validated.valid(),
        created_at,
        pipeline_name: settings.pipeline.clone(),
        feature_version,
        execution_date: settings.execution_date.to_rfc3339(),
        run_id: ctx.run_id.clone(),
        raw_null_count: stats.null_count,
        raw_total_cells: stats.total_cells,
        raw_blank_lines: validated.scan.blank_lines,
        raw_short_rows: stats.short_rows,
        raw_long_rows: stats.long_rows,
        raw_had_bom: validated.scan.had_bom,
        raw_columns: stats.header.clone().unwrap_or_default(),
        source: SourceInfo {
            size_bytes: extracted.meta.size_bytes,
            etag: extracted.meta.etag.clone(),
            last_modified: extracted.meta.last_modified.clone(),
            compression: match &extracted.parts {
                Some(parts) => parts_compression(parts),
                None => Compression::from_name(&ctx.raw_key).label(),
            },
            csv_bytes: validated.scan.bytes,
            files: extracted.parts.as_ref().map(|parts| {
                parts
                    .iter()
                    .map(|p| SourceFile {
                        path: ctx.raw_store.uri(&p.key),
                        size_bytes: p.meta.size_bytes,
                        etag: p.meta.etag.clone(),
                        last_modified: p.meta.last_modified.clone(),
                    })
                    .collect()
            }),
        },
        outputs,
        validation: validated.rules.clone(),
        feature_groups: feature.groups,
        profile: profile_json(&feature.profile)?,
        drift: drift(validated, &feature),
        timings_ms: serde_json::Map::new(),
        pass: PassTimings {
            wall_ms: millis(Some(validated.timing.wall)).unwrap_or_default(),
            scan_cpu_ms: millis(validated.timing.scan_cpu),
            write_cpu_ms: millis(validated.timing.write_cpu),
        },
        producer: Producer {
            pipeline_file: settings
                .pipeline_file
                .as_ref()
                .map(|p| p.display().to_string()),
            pipeline_file_sha256: settings.pipeline_file_sha256.clone(),
            spec_sha256: describe::spec_sha256(&settings.spec),
            spec: describe::spec(&settings.spec),
        },
        tool: ToolInfo::current(),
    };
    ctx.built = Some(Built {
        columns: feature
            .columns
            .iter()
            .map(|(name, _)| name.clone())
            .collect(),
        grain: features.grain(),
        feature,
        schema_json,
        metadata,
    });
    Ok(())
}

/// The parts' compression: theirs when they agree, `mixed` when they do not.
fn parts_compression(parts: &[Part]) -> Option<&'static str> {
    let mut labels = parts.iter().map(|p| p.compression().label());
    let first = labels.next().flatten();
    match labels.all(|l| l == first) {
        true => first,
        false => Some("mixed"),
    }
}

/// Row count, null rate, numeric column means and the schema against the previous
/// complete version.
fn drift(validated: &super::validate_data::Validated, feature: &FeaturesBuilt) -> Drift {
    let means: Vec<(String, f64)> = feature
        .profile
        .iter()
        .filter_map(|(column, p)| Some((column.clone(), p.mean()?)))
        .collect();
    let columns: Vec<(String, String)> = feature
        .columns
        .iter()
        .map(|(name, ty)| (name.clone(), ty.as_str().to_string()))
        .collect();
    Drift::new(
        &validated.history,
        validated.stats.rows,
        validated.stats.null_rate(),
        &means,
        validated.stats.header.as_deref().unwrap_or_default(),
        &columns,
    )
}
