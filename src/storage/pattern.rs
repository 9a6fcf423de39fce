//! Raw locations that name many objects: a glob such as
//! `s3://bucket/raw/2025-11-19/part-*.csv.gz`, or a folder ending in `/`. Firehose, Spark
//! and Kafka Connect write a day's drop as many part files; the run reads them as one input.
//!
//! The glob is matched here, in a few lines, rather than with a glob crate: only `*` (any
//! run of characters except `/`) and `?` (one character except `/`) are wildcards. Braces
//! are not, as `{ds}` already means a template, and character classes are rarely needed
//! for part names; a dependency for them would buy little.
//!
//! Names that start with `_` or `.`, in the part's name or in a folder between the listed
//! folder and it, are never parts: writers use them for completion markers (`_SUCCESS`),
//! checksums (`.part-0.crc`) and temporary folders (`_temporary/`), which Hadoop-style
//! readers skip too.

use super::uri::{StorageUri, UriError};

/// Whether a location names many objects: it has a `*` or `?`, or ends with `/`.
pub fn names_many(location: &str) -> bool {
    location.ends_with('/') || location.contains(['*', '?'])
}

/// A many-object location: the folder to list and the pattern its keys must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPattern {
    /// The folder listed: the location up to the last `/` before the first wildcard.
    pub folder: StorageUri,
    /// The glob below `folder`, e.g. `part-*.csv.gz`; empty for a folder ending in `/`
    /// (every object below it, at any depth).
    pub glob: String,
}

impl ObjectPattern {
    /// Splits a location that [`names_many`] into folder and glob.
    pub fn parse(location: &str) -> Result<Self, UriError> {
        let wildcard = location.find(['*', '?']).unwrap_or(location.len());
        let cut = location[..wildcard].rfind('/').map_or(0, |i| i + 1);
        let (folder, glob) = location.split_at(cut);
        let folder = match folder {
            // A bare `part-*.csv`: the working folder.
            "" => StorageUri::Local(".".into()),
            f => StorageUri::parse(f)?,
        };
        Ok(ObjectPattern {
            folder,
            glob: glob.to_string(),
        })
    }

    /// Whether `key` (relative to [`ObjectPattern::folder`]) is one of the parts.
    pub fn matches(&self, key: &str) -> bool {
        if key.is_empty() || key.ends_with('/') || key.split('/').any(is_hidden) {
            return false;
        }
        self.glob.is_empty() || glob_matches(self.glob.as_bytes(), key.as_bytes())
    }
}

/// Markers, checksums and temporary folders (see the module documentation).
fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

/// `*` matches any run of bytes without `/`, `?` one character without `/`, anything else
/// itself. Iterative with one backtrack point per `*`, so it is linear-ish and never
/// explodes on many stars.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and where in the text it started matching.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(b'?') if text[t] != b'/' => {
                // One character: skip a whole UTF-8 sequence.
                t += utf8_len(text[t]).min(text.len() - t);
                p += 1;
            }
            Some(&c) if c != b'?' && c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` take one more byte, unless that byte is a `/`.
                Some((sp, st)) if text[st] != b'/' => {
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                _ => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(location: &str) -> ObjectPattern {
        ObjectPattern::parse(location).unwrap()
    }

    #[test]
    fn locations_with_wildcards_or_a_final_slash_name_many_objects() {
        assert!(names_many("s3://b/raw/2025-11-19/part-*.csv.gz"));
        assert!(names_many("raw/2025-11-19/"));
        assert!(names_many("raw/part-?.csv"));
        assert!(!names_many("raw/2025-11-19/events.csv"));
    }

    #[test]
    fn the_folder_ends_before_the_first_wildcard() {
        let p = pattern("s3://bucket/raw/2025-11-19/part-*.csv.gz");
        assert_eq!(
            p.folder,
            StorageUri::S3 {
                bucket: "bucket".into(),
                key: "raw/2025-11-19/".into()
            }
        );
        assert_eq!(p.glob, "part-*.csv.gz");
        let p = pattern("raw/*/part-*.csv");
        assert_eq!(p.folder, StorageUri::Local("raw/".into()));
        assert_eq!(p.glob, "*/part-*.csv");
        let p = pattern("s3://bucket/raw/2025-11-19/");
        assert_eq!(p.glob, "");
        assert_eq!(pattern("part-*.csv").folder, StorageUri::Local(".".into()));
    }

    #[test]
    fn stars_stay_within_a_folder_and_hidden_names_are_never_parts() {
        let p = pattern("s3://bucket/raw/part-*.csv.gz");
        assert!(p.matches("part-00000.csv.gz"));
        assert!(p.matches("part-.csv.gz"));
        assert!(!p.matches("part-00000.csv"));
        assert!(!p.matches("sub/part-00000.csv.gz"), "* does not cross /");
        assert!(!p.matches("xpart-1.csv.gz"));
        let p = pattern("raw/*/part-?.csv");
        assert!(p.matches("a/part-1.csv"));
        assert!(p.matches("a/part-é.csv"), "? is one character");
        assert!(!p.matches("a/part-12.csv"));
        assert!(!p.matches("a/b/part-1.csv"));
        let all = pattern("raw/2025-11-19/");
        assert!(all.matches("part-0.csv"));
        assert!(all.matches("hour=01/part-0.csv"));
        for hidden in ["_SUCCESS", ".part-0.csv.crc", "_temporary/0/part-0.csv", ""] {
            assert!(!all.matches(hidden), "{hidden:?}");
        }
        assert!(!pattern("raw/*").matches("_SUCCESS"));
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let p = pattern(&format!("raw/{}b", "*a".repeat(30)));
        let text = "a".repeat(5000);
        assert!(!p.matches(&text));
        assert!(glob_matches(b"*.csv", b"a.b.csv"));
        assert!(glob_matches(b"a**b", b"ab"));
        assert!(!glob_matches(b"a*", b"a/b"));
    }
}
