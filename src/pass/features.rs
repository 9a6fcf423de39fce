//! build_features' side of the pass on the scanner thread: the output rows, computed
//! while each record is still in cache. Row grain projects each data row
//! ([`RowFeatures`]); entity grain folds it into its group ([`GroupBy`]) and emits the
//! groups sorted once the input ends. Rows go to the feature thread in batches
//! ([`RowBatch`]), which writes, profiles and hashes them (`feature_writer`).

use std::sync::mpsc::SyncSender;

use chrono_tz::Tz;

use super::batch::RowBatch;
use super::csv_scan::Record;
use super::group_by::{AggValue, GroupBy};
use super::row_features::RowFeatures;
use crate::config::spec::{ColumnType, Features, SourceFormat, MEMORY_BUDGET_KEY};
use crate::error::Error;
use crate::values::size::human_bytes;

/// What build_features asks of the pass: its feature set over the raw rows.
pub struct FeatureSide {
    features: Features,
    source: SourceFormat,
    tz: Tz,
    /// Bound at the header.
    bound: Option<Bound>,
    types: Vec<ColumnType>,
    batch: RowBatch,
    /// To the feature thread (wired by the pass).
    tx: Option<SyncSender<RowBatch>>,
    /// The feature thread is gone (it only stops early when the upload failed).
    closed: bool,
}

/// The feature set bound to the header's cell positions.
enum Bound {
    Rows(RowFeatures),
    Entities(Box<GroupBy>),
}

impl FeatureSide {
    pub fn new(features: &Features, source: &SourceFormat, tz: Tz) -> Self {
        let types: Vec<ColumnType> = features.columns().into_iter().map(|(_, t)| t).collect();
        FeatureSide {
            features: features.clone(),
            source: source.clone(),
            tz,
            bound: None,
            batch: RowBatch::new(&types),
            types,
            tx: None,
            closed: false,
        }
    }

    /// Output columns and their types, in CSV order.
    pub fn columns(&self) -> Vec<(String, ColumnType)> {
        self.features.columns()
    }

    pub(super) fn connect(&mut self, tx: SyncSender<RowBatch>) {
        self.tx = Some(tx);
    }

    /// Whether the feature thread stopped reading (the upload failed).
    pub(super) fn closed(&self) -> bool {
        self.closed
    }

    /// Entity grain: the error that stops the run once a new key would take the groups
    /// past the memory budget (exit 3, as data the pipeline cannot take: see the
    /// `group_by` module docs for why it stops rather than spilling to disk).
    pub(super) fn over_budget(&self) -> Option<Error> {
        let (Some(Bound::Entities(groups)), Features::Entities(spec)) =
            (&self.bound, &self.features)
        else {
            return None;
        };
        let over = groups.over_budget()?;
        let budget = &spec.memory_budget;
        let per_key = over.bytes / over.keys.max(1);
        Some(Error::MemoryBudget(format!(
            "entity grain needs more memory than its budget of {} ({budget_bytes} bytes, \
             {origin}): {keys} keys ({columns}) take {held} and the next needs {needed}; \
             raise the budget with --memory-budget, DP_MEMORY_BUDGET or \
             {MEMORY_BUDGET_KEY} in the pipeline file (about {per_key} bytes per key \
             here), or group by fewer keys",
            human_bytes(budget.bytes),
            budget_bytes = budget.bytes,
            origin = budget.origin,
            keys = over.keys,
            columns = spec.key_columns().join(", "),
            held = human_bytes(over.bytes),
            needed = human_bytes(over.needed),
        )))
    }

    /// The input ended: entity grain folds in its last records (which may reach the
    /// budget: check [`FeatureSide::over_budget`] after this).
    pub(super) fn end_of_input(&mut self) {
        if let Some(Bound::Entities(groups)) = self.bound.as_mut() {
            groups.flush();
        }
    }

    pub(super) fn header(&mut self, record: &Record<'_>) {
        self.bound = Some(match &self.features {
            Features::Rows(rows) => {
                Bound::Rows(RowFeatures::bind(record, rows, &self.source, self.tz))
            }
            Features::Entities(entity) => {
                let source = self.source.clone();
                Bound::Entities(Box::new(GroupBy::bind(
                    record,
                    entity,
                    self.tz,
                    move |cell| source.is_null(cell),
                )))
            }
        });
    }

    #[inline]
    pub(super) fn row(&mut self, record: &Record<'_>) {
        match self.bound.as_mut() {
            Some(Bound::Rows(rows)) => {
                rows.project(record, &mut self.batch);
                if self.batch.is_full() {
                    self.send_batch();
                }
            }
            Some(Bound::Entities(groups)) => groups.observe(record),
            None => {}
        }
    }

    /// Sends what is left (entity grain: every group, sorted by key). Returns the number
    /// of groups for entity grain.
    pub(super) fn finish(mut self) -> Option<u64> {
        let groups = match self.bound.take() {
            Some(Bound::Entities(mut groups)) => {
                groups.flush();
                let count = groups.groups() as u64;
                groups.finish(|keys, values| self.push_group(keys, values));
                Some(count)
            }
            _ => None,
        };
        self.send_batch();
        groups
    }

    fn send_batch(&mut self) {
        let next = RowBatch::new(&self.types);
        let full = std::mem::replace(&mut self.batch, next);
        if full.is_empty() {
            return;
        }
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(full).is_ok());
        self.closed |= !sent;
    }

    /// One entity-grain output row: the key cells, then the aggregates.
    fn push_group(&mut self, keys: &[&[u8]], values: &[AggValue<'_>]) {
        if self.closed {
            return;
        }
        for (i, key) in keys.iter().enumerate() {
            self.batch.push_text(i, key);
        }
        for (j, value) in values.iter().enumerate() {
            let i = keys.len() + j;
            match value {
                AggValue::Null => self.batch.push_float(i, None),
                AggValue::Float(v) => self.batch.push_float(i, Some(*v)),
                AggValue::Int(v) => self.batch.push_integer(i, Some(*v)),
                AggValue::Text(t) => self.batch.push_text(i, t),
            }
        }
        self.batch.end_row();
        if self.batch.is_full() {
            self.send_batch();
        }
    }
}
