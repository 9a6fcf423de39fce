//! What the pass reads: one raw object, or the parts of a many-file drop (a glob or a
//! folder, `storage::pattern`) read one after another as one input.
//!
//! The parts' bytes are not simply concatenated: each part is a CSV file of its own, with
//! its own header and perhaps its own compression. So the reader marks where each part
//! starts ([`Piece::Part`]); the decompression thread restarts its decoder there, and the
//! scanner thread starts a fresh scanner, checks the part's header against the first one
//! and skips it, and names the part and its own line in errors. Parts are opened one at a
//! time, when the one before has been read: memory and connections stay flat however many
//! parts there are.

use std::sync::Arc;

use bytes::Bytes;

use crate::storage::{ChunkSource, ObjectMeta, ObjectStore, StorageResult};

/// How the raw object is compressed, decided by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// `.gz` -> gzip, `.zst` -> zstd (case-insensitive), anything else plain.
    pub fn from_name(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".gz") {
            Compression::Gzip
        } else if lower.ends_with(".zst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The name recorded in `metadata.json` (`None` for plain input).
    pub fn label(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }
}

/// One object of a many-file raw input.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Its key in the raw store (relative to the listed folder): how errors name it.
    pub key: String,
    pub meta: ObjectMeta,
}

impl Part {
    /// How the part is compressed, from its name (each part decides for itself).
    pub fn compression(&self) -> Compression {
        Compression::from_name(&self.key)
    }
}

/// What the reader hands on: bytes, or the start of the next part.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Chunk(Bytes),
    /// Part `i` (of [`RawSource::parts`]) starts here; its bytes follow.
    Part(usize),
}

/// The raw input of one pass.
pub enum RawSource {
    /// One object, compressed as its name says.
    One {
        source: Box<dyn ChunkSource>,
        compression: Compression,
    },
    /// The parts of a many-file input, in key order, opened one at a time.
    Parts(PartsReader),
}

impl RawSource {
    /// A many-file input over `parts` (sorted by key) in `store`.
    pub fn parts(store: Arc<dyn ObjectStore>, parts: Vec<Part>) -> Self {
        RawSource::Parts(PartsReader {
            store,
            parts: parts.into(),
            next: 0,
            current: None,
        })
    }

    /// The parts, for the threads that must know where each starts (none for one object).
    pub fn part_list(&self) -> Arc<[Part]> {
        match self {
            RawSource::One { .. } => Arc::from(Vec::new()),
            RawSource::Parts(p) => p.parts.clone(),
        }
    }

    /// How the bytes read first are compressed (a single object's compression; parts say
    /// their own at each [`Piece::Part`]).
    pub fn first_compression(&self) -> Compression {
        match self {
            RawSource::One { compression, .. } => *compression,
            RawSource::Parts(_) => Compression::None,
        }
    }

    /// Whether any byte read needs decompressing.
    pub fn compressed(&self) -> bool {
        match self {
            RawSource::One { compression, .. } => *compression != Compression::None,
            RawSource::Parts(p) => p
                .parts
                .iter()
                .any(|part| part.compression() != Compression::None),
        }
    }

    /// The next piece, `None` at the end.
    pub async fn next_piece(&mut self) -> StorageResult<Option<Piece>> {
        match self {
            RawSource::One { source, .. } => Ok(source.next_chunk().await?.map(Piece::Chunk)),
            RawSource::Parts(p) => p.next_piece().await,
        }
    }
}

/// Reads the parts one after another, each opened when the one before has ended.
pub struct PartsReader {
    store: Arc<dyn ObjectStore>,
    parts: Arc<[Part]>,
    next: usize,
    current: Option<Box<dyn ChunkSource>>,
}

impl PartsReader {
    async fn next_piece(&mut self) -> StorageResult<Option<Piece>> {
        if let Some(source) = self.current.as_mut() {
            if let Some(chunk) = source.next_chunk().await? {
                return Ok(Some(Piece::Chunk(chunk)));
            }
            self.current = None;
        }
        // An empty part holds nothing, not even a header (and is no valid .gz): skipped.
        while self
            .parts
            .get(self.next)
            .is_some_and(|p| p.meta.size_bytes == 0)
        {
            self.next += 1;
        }
        let Some(part) = self.parts.get(self.next) else {
            return Ok(None);
        };
        let i = self.next;
        // Pinned to the object the listing saw (its ETag or file identity), as a single
        // raw object is to its HEAD: a part replaced since fails the run, never splices.
        self.current = Some(self.store.get_unchanged(&part.key, &part.meta).await?);
        self.next += 1;
        Ok(Some(Piece::Part(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;

    #[tokio::test]
    async fn parts_are_read_in_order_each_announced_before_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().to_path_buf()));
        let mut parts = Vec::new();
        for (name, body) in [("a.csv", "h\n1\n"), ("b.csv", ""), ("c.csv.gz", "x")] {
            std::fs::write(dir.path().join(name), body).unwrap();
            parts.push(Part {
                key: name.to_string(),
                meta: store.head(name).await.unwrap().unwrap(),
            });
        }
        let mut source = RawSource::parts(store, parts);
        assert!(source.compressed(), "c.csv.gz is gzip");
        assert_eq!(source.part_list().len(), 3);
        let mut seen = Vec::new();
        while let Some(piece) = source.next_piece().await.unwrap() {
            seen.push(match piece {
                Piece::Part(i) => format!("part {i}"),
                Piece::Chunk(b) => String::from_utf8(b.to_vec()).unwrap(),
            });
        }
        // The empty b.csv is skipped.
        assert_eq!(seen, ["part 0", "h\n1\n", "part 2", "x"]);
    }
}
