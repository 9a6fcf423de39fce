//! The one integration-test binary (each extra binary would link aws-sdk-s3 again).
//! Every test drives the real `featurepipe` binary or the real storage backends; S3 tests
//! start their own S3 server (s3s-fs) on 127.0.0.1.

mod support;

mod backfill;
mod cli;
mod compressed;
mod concurrency;
mod conformance;
mod data_values;
mod downloads;
mod entity_grain;
mod exit_codes;
mod faults;
mod features;
mod gc;
mod infer;
mod integrity;
mod logs;
mod many_files;
mod observe;
mod parquet;
mod pipeline_files;
mod publish;
mod ranged_reads;
mod rules;
mod runs;
mod schema_change;
mod signals;
mod unattended;
mod version_commands;
mod versions;
