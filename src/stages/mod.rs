//! The five stages, one module each, named as they appear in `step=` (DESIGN.md section 1).
//!
//! Each stage is `async fn run(ctx: &mut RunContext) -> Result<()>`: it reads what earlier
//! stages stored in the context and stores its own typed result. `crate::run` calls them
//! in order, times them and logs their `[DP]` lines.

pub mod build_features;
pub mod extract_raw_data;
pub mod store_features;
pub mod summarize_run;
pub mod validate_data;

/// File names inside a version directory and beside it (DESIGN.md section 4).
pub mod layout {
    pub const FEATURE_CSV: &str = "feature.csv";
    pub const SCHEMA_JSON: &str = "schema.json";
    pub const METADATA_JSON: &str = "metadata.json";
    /// Written last: its presence makes a version complete.
    pub const SUCCESS: &str = "_SUCCESS";
    /// Beside the versions: points at the newest complete one.
    pub const LATEST: &str = "_latest";
}
