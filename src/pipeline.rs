//! What a pipeline checks and computes. Today this is the seed's built-in default,
//! `daily_user_events`; pipeline files (issue 4) will fill the same struct.

/// The name of the built-in default pipeline.
pub const DEFAULT_PIPELINE: &str = "daily_user_events";

/// The rules and features of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    /// Columns summed into `row_sum`, in the order they are added (the seed's order).
    pub row_sum_columns: Vec<String>,
    /// Fewer data rows than this is invalid (the seed: `rows == 0` is invalid).
    pub min_rows: u64,
    /// A null rate above this is invalid (the seed: `null_rate > 0.5`).
    pub max_null_rate: f64,
}

impl PipelineSpec {
    /// The seed's semantics (DESIGN.md section 2).
    pub fn seed() -> Self {
        PipelineSpec {
            row_sum_columns: [
                "user_id",
                "is_premium",
                "event_value",
                "amount",
                "session_length_sec",
            ]
            .map(String::from)
            .to_vec(),
            min_rows: 1,
            max_null_rate: 0.5,
        }
    }
}
