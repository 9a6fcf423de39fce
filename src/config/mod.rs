//! From what the user typed to a checked run: flags and `DP_*` variables (given by the
//! command line layer), the pipeline file (`pipeline_file`), built-in defaults, each value
//! with its [`Origin`]; and the checked pipeline spec the pass executes (`spec`).

pub mod describe;
pub mod origin;
pub mod pipeline_file;
pub mod settings;
pub mod spec;

pub use origin::{Origin, Setting};
pub use settings::{
    pipeline_name_hint, resolve, resolve_pipeline, Flags, PipelineSettings, Rerun, RunSettings,
    When,
};
