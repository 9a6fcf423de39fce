//! How one version's columns differ from another's: added, removed, retyped, reordered.
//! One comparison for the `schema_change` rule (this run against the previous complete
//! version), the `drift` section of `metadata.json`, and `versions diff`.

use serde::Serialize;

/// What changed between two column lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColumnChanges {
    /// Columns only in the newer list, in its order.
    pub added: Vec<String>,
    /// Columns only in the older list, in its order.
    pub removed: Vec<String>,
    /// Columns in both whose type changed (only for typed lists).
    pub retyped: Vec<Retyped>,
    /// The columns in both appear in another order.
    pub reordered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retyped {
    pub column: String,
    pub from: String,
    pub to: String,
}

impl ColumnChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.retyped.is_empty()
            && !self.reordered
    }

    /// Only additions: every older column is still there, with its type, in its order.
    pub fn is_additive(&self) -> bool {
        self.removed.is_empty() && self.retyped.is_empty() && !self.reordered
    }
}

/// Compares column lists; a `None` type is "untyped" (a raw header) and never retyped.
pub fn compare(
    before: &[(String, Option<String>)],
    after: &[(String, Option<String>)],
) -> ColumnChanges {
    let find = |list: &[(String, Option<String>)], name: &str| {
        list.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
    };
    let added = after
        .iter()
        .filter(|(name, _)| find(before, name).is_none())
        .map(|(name, _)| name.clone())
        .collect();
    let removed = before
        .iter()
        .filter(|(name, _)| find(after, name).is_none())
        .map(|(name, _)| name.clone())
        .collect();
    let retyped = before
        .iter()
        .filter_map(|(name, from)| match (from, find(after, name).flatten()) {
            (Some(from), Some(to)) if *from != to => Some(Retyped {
                column: name.clone(),
                from: from.clone(),
                to,
            }),
            _ => None,
        })
        .collect();
    let common = |list: &[(String, Option<String>)], other: &[(String, Option<String>)]| {
        list.iter()
            .filter(|(name, _)| find(other, name).is_some())
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>()
    };
    ColumnChanges {
        added,
        removed,
        retyped,
        reordered: common(before, after) != common(after, before),
    }
}

/// [`compare`] for untyped names (a raw header).
pub fn compare_names(before: &[String], after: &[String]) -> ColumnChanges {
    let untyped = |names: &[String]| names.iter().map(|n| (n.clone(), None)).collect::<Vec<_>>();
    compare(&untyped(before), &untyped(after))
}

/// [`compare`] for typed columns (an output schema).
pub fn compare_typed(before: &[(String, String)], after: &[(String, String)]) -> ColumnChanges {
    let typed = |cols: &[(String, String)]| {
        cols.iter()
            .map(|(n, t)| (n.clone(), Some(t.clone())))
            .collect::<Vec<_>>()
    };
    compare(&typed(before), &typed(after))
}

/// This version's raw header and output schema against an earlier version's (`None`
/// where the earlier version's documents do not say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaChanges {
    pub previous_version: String,
    /// The raw CSV header (names only).
    pub header: Option<ColumnChanges>,
    /// The output columns and their types (`schema.json`).
    pub columns: Option<ColumnChanges>,
}

impl SchemaChanges {
    /// Whether the known parts changed beyond what `allow_additive` permits.
    pub fn allowed(&self, allow_additive: bool) -> bool {
        [&self.header, &self.columns]
            .into_iter()
            .flatten()
            .all(|c| {
                if allow_additive {
                    c.is_additive()
                } else {
                    c.is_empty()
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn additions_removals_retypes_and_reorders_are_told_apart() {
        let before = cols(&[
            ("id", "string"),
            ("amount", "integer"),
            ("country", "string"),
        ]);
        let same = compare_typed(&before, &before);
        assert!(same.is_empty() && same.is_additive());

        let added = compare_typed(
            &before,
            &cols(&[
                ("id", "string"),
                ("new", "float"),
                ("amount", "integer"),
                ("country", "string"),
            ]),
        );
        assert_eq!(added.added, ["new"]);
        assert!(!added.is_empty() && added.is_additive() && !added.reordered);

        let retyped = compare_typed(
            &before,
            &cols(&[("id", "string"), ("amount", "float"), ("country", "string")]),
        );
        assert_eq!(
            retyped.retyped,
            [Retyped {
                column: "amount".into(),
                from: "integer".into(),
                to: "float".into()
            }]
        );
        assert!(!retyped.is_additive());

        let removed = compare_typed(&before, &cols(&[("id", "string"), ("country", "string")]));
        assert_eq!(removed.removed, ["amount"]);
        assert!(!removed.is_additive());

        let reordered = compare_typed(
            &before,
            &cols(&[
                ("amount", "integer"),
                ("id", "string"),
                ("country", "string"),
            ]),
        );
        assert!(reordered.reordered && !reordered.is_additive());
    }

    #[test]
    fn untyped_headers_never_count_as_retyped() {
        let a = vec!["x".to_string(), "y".to_string()];
        let b = vec!["x".to_string(), "y".to_string(), "z".to_string()];
        let c = compare_names(&a, &b);
        assert_eq!(c.added, ["z"]);
        assert!(c.retyped.is_empty() && c.is_additive());
    }

    #[test]
    fn only_known_parts_decide_what_is_allowed() {
        let grown = compare_names(&["a".into()], &["a".into(), "b".into()]);
        let changes = SchemaChanges {
            previous_version: "v_1".into(),
            header: Some(grown),
            columns: None,
        };
        assert!(changes.allowed(true));
        assert!(!changes.allowed(false));
        let unknown = SchemaChanges {
            previous_version: "v_1".into(),
            header: None,
            columns: None,
        };
        assert!(unknown.allowed(false));
    }
}
