//! What watchers see besides the `[DP]` step lines: progress (terminal bar or
//! `step=progress` lines).

mod lineage;
mod metrics;
mod progress;
mod week;
