//! A request body as the reactor collects it: in memory while small, in an
//! unlinked temporary file once it grows past [`MAX_MEMORY_BODY`] (Puma's
//! threshold), so a 1 GB upload costs disk, not RSS.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use crate::fds::Owned;

/// Bodies up to this size stay in memory (Puma's `MAX_BODY`).
pub(crate) const MAX_MEMORY_BODY: usize = 112 * 1024;

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
        /// Bytes written to `file`.
        len: u64,
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
                    file.write_all(v)?;
                    file.write_all(data)?;
                    let len = (v.len() + data.len()) as u64;
                    *self = Body::File { file, len };
                } else {
                    v.extend_from_slice(data);
                }
            }
            Body::File { file, len } => {
                file.write_all(data)?;
                *len += data.len() as u64;
            }
        }
        Ok(())
    }

    /// Makes a file body readable from the start, for `rack.input`.
    pub(crate) fn rewind(&mut self) -> io::Result<()> {
        if let Body::File { file, .. } = self {
            file.seek(SeekFrom::Start(0))?;
        }
        Ok(())
    }
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

    #[test]
    fn declared_large_body_goes_straight_to_a_file() {
        let body = Body::with_expected_len(Some(200 * 1024)).unwrap();
        assert!(matches!(body, Body::File { .. }));
    }
}
