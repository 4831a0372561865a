//! The chunked-body decoder: never panics, consumes only what belongs to
//! the body, and decodes the same body whatever the read boundaries.
#![no_main]

use std::convert::Infallible;

use libfuzzer_sys::fuzz_target;
use rustpuma::http::chunked::{ChunkedDecoder, ChunkedError, DecodeError};

#[path = "split.rs"]
mod split;

/// (body, bytes consumed, done) or the error, feeding `reads` in order.
fn decode(reads: &[&[u8]]) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut consumed = 0;
    for read in reads {
        let mut sink = |data: &[u8]| -> Result<(), Infallible> {
            body.extend_from_slice(data);
            Ok(())
        };
        let (n, done) = decoder.decode(read, &mut sink).map_err(|e| match e {
            DecodeError::Chunk(e) => e,
            DecodeError::Sink(never) => match never {},
        })?;
        assert!(n <= read.len());
        consumed += n;
        assert_eq!(decoder.total(), body.len() as u64);
        if done {
            assert!(decoder.is_done());
            return Ok((body, consumed, true));
        }
        assert_eq!(n, read.len(), "an unfinished decoder consumes everything");
    }
    Ok((body, consumed, false))
}

fuzz_target!(|input: &[u8]| {
    let Some((reads, data)) = split::reads(input) else {
        return;
    };
    let whole = decode(&[data]);
    if let Ok((body, consumed, _)) = &whole {
        assert!(body.len() <= *consumed);
    }
    assert_eq!(decode(&reads), whole, "split reads disagree with one read");
});
