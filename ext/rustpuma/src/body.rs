//! A request body as the reactor collects it: in memory while small, in an
//! unlinked temporary file once it grows past [`MAX_MEMORY_BODY`] (Puma's
//! threshold), so a 1 GB upload costs disk, not RSS.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use crate::fds::Owned;

/// Bodies up to this size stay in memory (Puma's `MAX_BODY`).
pub(crate) const MAX_MEMORY_BODY: usize = 112 * 1024;

/// Appends to a spilled body gather here before one write(2): a client
/// sending tiny chunks must not cost the reactor a syscall per chunk.
const FILE_WRITE_BUFFER: usize = 64 * 1024;

/// Where a request body's bytes are kept.
#[derive(Debug)]
pub enum Body {
    /// A small body, whole.
    Memory(Vec<u8>),
    /// A body past [`MAX_MEMORY_BODY`] or announced as larger: an unlinked
    /// temporary file holding `len` bytes.
    File {
        /// The unlinked temporary file (in the registry of the core's
        /// descriptors, [`crate::fds`]).
        file: Owned<File>,
        /// Bytes appended: those in `file` plus those in `pending`.
        len: u64,
        /// Appended bytes not yet written to `file`; [`Body::rewind`]
        /// writes them, so the file is whole before anyone reads it.
        pending: Vec<u8>,
    },
}

impl Body {
    /// A sink for a body whose size is known up front (`Content-Length`), or
    /// `None` for chunked bodies, which start in memory and may spill.
    pub(crate) fn with_expected_len(len: Option<u64>) -> io::Result<Body> {
        match len {
            Some(n) if n > MAX_MEMORY_BODY as u64 => Ok(Body::File {
                file: Owned::new(tempfile::tempfile()?),
                len: 0,
                pending: Vec::new(),
            }),
            Some(n) => Ok(Body::Memory(Vec::with_capacity(n as usize))),
            None => Ok(Body::Memory(Vec::new())),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Body::Memory(v) => v.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    pub(crate) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Body::Memory(v) => {
                if v.len() + data.len() > MAX_MEMORY_BODY {
                    let mut file = Owned::new(tempfile::tempfile()?);
                    let mut pending = std::mem::take(v);
                    let len = (pending.len() + data.len()) as u64;
                    append_buffered(&mut *file, &mut pending, data)?;
                    *self = Body::File { file, len, pending };
                } else {
                    v.extend_from_slice(data);
                }
            }
            Body::File { file, len, pending } => {
                append_buffered(&mut **file, pending, data)?;
                *len += data.len() as u64;
            }
        }
        Ok(())
    }

    /// Makes a file body whole and readable from the start, for
    /// `rack.input`: every path to the file's bytes comes after this.
    pub(crate) fn rewind(&mut self) -> io::Result<()> {
        if let Body::File { file, pending, .. } = self {
            file.write_all(pending)?;
            *pending = Vec::new();
            file.seek(SeekFrom::Start(0))?;
        }
        Ok(())
    }
}

/// Adds `data` to `pending`, writing `pending` to `sink` in one go once it
/// holds [`FILE_WRITE_BUFFER`] bytes.
fn append_buffered<W: Write>(sink: &mut W, pending: &mut Vec<u8>, data: &[u8]) -> io::Result<()> {
    pending.extend_from_slice(data);
    if pending.len() >= FILE_WRITE_BUFFER {
        sink.write_all(pending)?;
        pending.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn small_bodies_stay_in_memory() {
        let mut body = Body::with_expected_len(None).unwrap();
        body.append(b"hello").unwrap();
        assert!(matches!(&body, Body::Memory(v) if v == b"hello"));
    }

    #[test]
    fn growing_body_spills_to_a_file_with_all_bytes() {
        let mut body = Body::with_expected_len(None).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        body.append(&chunk).unwrap();
        body.append(&chunk).unwrap();
        assert_eq!(body.len(), 128 * 1024);
        body.rewind().unwrap();
        match body {
            Body::File { mut file, .. } => {
                let mut all = Vec::new();
                file.read_to_end(&mut all).unwrap();
                assert_eq!(all.len(), 128 * 1024);
            }
            Body::Memory(_) => panic!("expected a file body"),
        }
    }

    /// A sink that counts the writes reaching it.
    #[derive(Default)]
    struct CountingSink {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl Write for CountingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_byte_appends_are_written_in_few_large_writes() {
        let mut sink = CountingSink::default();
        let mut pending = Vec::new();
        for i in 0..100_000u32 {
            append_buffered(&mut sink, &mut pending, &[i as u8]).unwrap();
        }
        assert!(sink.writes <= 4, "{} writes for 100000 bytes", sink.writes);
        sink.bytes.extend_from_slice(&pending);
        let expected: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        assert_eq!(sink.bytes, expected);
    }

    #[test]
    fn one_byte_appends_across_the_spill_read_back_exactly() {
        let mut body = Body::with_expected_len(None).unwrap();
        let total = MAX_MEMORY_BODY + 100_000;
        for i in 0..total {
            body.append(&[(i % 251) as u8]).unwrap();
        }
        assert!(matches!(&body, Body::File { .. }));
        assert_eq!(body.len(), total as u64);
        body.rewind().unwrap();
        assert_eq!(body.len(), total as u64);
        let Body::File { mut file, .. } = body else {
            panic!("expected a file body")
        };
        let mut all = Vec::new();
        file.read_to_end(&mut all).unwrap();
        let expected: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        assert!(all == expected, "{} bytes read back", all.len());
    }

    #[test]
    fn declared_large_body_buffers_appends_until_rewind() {
        let mut body = Body::with_expected_len(Some(200 * 1024)).unwrap();
        body.append(b"abc").unwrap();
        assert_eq!(body.len(), 3);
        body.rewind().unwrap();
        let Body::File { mut file, .. } = body else {
            panic!("expected a file body")
        };
        let mut all = Vec::new();
        file.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abc");
    }

    #[test]
    fn declared_large_body_goes_straight_to_a_file() {
        let body = Body::with_expected_len(Some(200 * 1024)).unwrap();
        assert!(matches!(body, Body::File { .. }));
    }
}
