//! Compressed raw inputs (`.csv.gz`, `.csv.zst`), decompressed as a stream.
//!
//! Decompression runs on its own thread between the reader and the CSV scanner, so it
//! overlaps with both and never holds more than a chunk of either side in memory.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::sources::{Compression, Part, Piece};
use crate::error::{Error, Result};
use crate::storage::{StorageError, StorageResult};

/// Size of the decompressed chunks handed to the scanner.
const OUT_CHUNK: usize = 1 << 20;

/// Reads compressed pieces from `rx` and sends decompressed chunks to `tx` (blocking:
/// run it on a blocking thread). The bytes before any [`Piece::Part`] are compressed as
/// `first` says; each part's as its name says, with a fresh decoder, the part marker
/// passed on before its bytes. Storage errors pass through untouched; a corrupt or
/// truncated stream is invalid data (exit 3), naming the part.
pub fn decompress(
    first: Compression,
    parts: Arc<[Part]>,
    rx: mpsc::Receiver<StorageResult<Piece>>,
    tx: mpsc::Sender<StorageResult<Piece>>,
) -> Result<()> {
    let mut input = ChannelReader {
        rx,
        current: Bytes::new(),
        storage_error: None,
        next_part: None,
    };
    let mut kind = first;
    let mut part: Option<&Part> = None;
    loop {
        let result = match kind {
            Compression::None => pump(&mut input, &tx),
            Compression::Gzip => pump(&mut flate2::read::MultiGzDecoder::new(&mut input), &tx),
            Compression::Zstd => match zstd::stream::read::Decoder::new(&mut input) {
                Ok(mut decoder) => pump(&mut decoder, &tx),
                Err(e) => Err(e),
            },
        };
        // A storage failure surfaces inside the decoder as an I/O error; report the
        // original.
        if let Some(e) = input.storage_error.take() {
            let _ = tx.blocking_send(Err(e));
            return Ok(());
        }
        match result {
            Ok(true) => {}
            // The scanner stopped (malformed CSV); it reports why.
            Ok(false) => return Ok(()),
            Err(e) => {
                let what = match part {
                    Some(p) => p.key.as_str(),
                    None => "the raw input",
                };
                return Err(Error::Undecodable(format!(
                    "{what} is not valid {} data: {e}",
                    kind.label().unwrap_or("plain")
                )));
            }
        }
        let Some(next) = input.next_part.take() else {
            return Ok(());
        };
        let Some(next_part) = parts.get(next) else {
            return Err(Error::Internal(format!("no part {next} to decompress")));
        };
        if tx.blocking_send(Ok(Piece::Part(next))).is_err() {
            return Ok(());
        }
        part = Some(next_part);
        kind = next_part.compression();
    }
}

/// Copies decoded bytes to the channel in [`OUT_CHUNK`] pieces until the reader's end
/// (the input's, or the current part's). `false` when the scanner stopped listening.
fn pump(reader: &mut impl Read, tx: &mpsc::Sender<StorageResult<Piece>>) -> std::io::Result<bool> {
    loop {
        let mut buf = vec![0u8; OUT_CHUNK];
        let mut filled = 0;
        while filled < OUT_CHUNK {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(true);
        }
        buf.truncate(filled);
        if tx
            .blocking_send(Ok(Piece::Chunk(Bytes::from(buf))))
            .is_err()
        {
            return Ok(false);
        }
    }
}

/// `std::io::Read` over the reader task's pieces: a part marker reads as the end of the
/// current stream (and is kept for the caller).
struct ChannelReader {
    rx: mpsc::Receiver<StorageResult<Piece>>,
    current: Bytes,
    storage_error: Option<StorageError>,
    /// The part that starts after the stream just ended.
    next_part: Option<usize>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.next_part.is_some() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(Piece::Chunk(chunk))) => self.current = chunk,
                Some(Ok(Piece::Part(i))) => self.next_part = Some(i),
                Some(Err(e)) => {
                    self.storage_error = Some(e);
                    return Err(std::io::Error::other("storage read failed"));
                }
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_decide_the_codec() {
        assert_eq!(Compression::from_name("a/b.csv.gz"), Compression::Gzip);
        assert_eq!(Compression::from_name("B.CSV.ZST"), Compression::Zstd);
        assert_eq!(Compression::from_name("b.csv"), Compression::None);
        assert_eq!(Compression::from_name("gz.csv"), Compression::None);
    }
}
