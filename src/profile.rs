//! TEMPORARY stub: replaced by the profile branch's module at merge.
use crate::pipeline::ColumnType;
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColumnProfile {
    pub count: u64,
    pub nulls: u64,
    pub mean: Option<f64>,
}
pub struct ColumnProfiler {
    count: u64,
    nulls: u64,
    sum: f64,
}
impl ColumnProfiler {
    pub fn new(_ty: ColumnType) -> Self {
        ColumnProfiler {
            count: 0,
            nulls: 0,
            sum: 0.0,
        }
    }
    pub fn null(&mut self) {
        self.count += 1;
        self.nulls += 1;
    }
    pub fn number(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
    }
    pub fn text(&mut self, _v: &[u8]) {
        self.count += 1;
    }
    pub fn finish(self) -> ColumnProfile {
        ColumnProfile {
            count: self.count,
            nulls: self.nulls,
            mean: None,
        }
    }
}
