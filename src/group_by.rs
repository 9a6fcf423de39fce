//! TEMPORARY stub: replaced by the group branch's module at merge.
use crate::csv_scan::Record;
use crate::pipeline::{EntitySpec, SourceFormat};
pub enum AggValue<'a> {
    Null,
    Float(f64),
    Int(i64),
    Text(&'a [u8]),
}
pub struct GroupBy;
impl GroupBy {
    pub fn bind(_h: &Record<'_>, _s: &EntitySpec, _tz: chrono_tz::Tz, _n: &SourceFormat) -> Self {
        GroupBy
    }
    pub fn observe(&mut self, _r: &Record<'_>) {}
    pub fn groups(&self) -> usize {
        0
    }
    pub fn finish(self, _row: impl FnMut(&[&[u8]], &[AggValue<'_>])) {}
}
