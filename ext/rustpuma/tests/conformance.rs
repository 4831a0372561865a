//! Runs the shared protocol table `spec/http_cases.json` against the wire-format
//! modules: a miniature reactor parses the head, frames the body, and maps
//! the outcome to the status the server would answer with. The Ruby
//! integration tests run the same table against the real server.
//!
//! Each case is also replayed with the bytes arriving in two reads split at
//! every position, and one byte per read, since real clients deliver
//! requests in arbitrary pieces.

use rustpuma::http::chunked::{ChunkedDecoder, DecodeError};
use rustpuma::http::parser::{parse_head, BodyFraming, Parsed, RequestHead};
use serde_json::Value;
use std::convert::Infallible;

/// Cases up to this size are also replayed split at every byte.
const SPLIT_REPLAY_MAX: usize = 4096;

#[derive(Debug, PartialEq)]
struct Outcome {
    /// `None` when the server would still be waiting for bytes.
    status: Option<u16>,
    detail: String,
    head: Option<RequestHead>,
    body: Vec<u8>,
    rest: Vec<u8>,
}

impl Outcome {
    fn rejected(status: u16, detail: String) -> Self {
        Outcome {
            status: Some(status),
            detail,
            head: None,
            body: Vec::new(),
            rest: Vec::new(),
        }
    }

    fn waiting(what: &str) -> Self {
        Outcome {
            status: None,
            detail: format!("incomplete {what}"),
            head: None,
            body: Vec::new(),
            rest: Vec::new(),
        }
    }
}

/// Processes the first request of a connection whose bytes arrive as `reads`.
fn serve(reads: &[&[u8]]) -> Outcome {
    let mut reads = reads.iter();
    let mut buf = Vec::new();
    let head = loop {
        match parse_head(&buf) {
            Ok(Parsed::Complete(head)) => break head,
            Ok(Parsed::Partial) => match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None => return Outcome::waiting("head"),
            },
            Err(e) => return Outcome::rejected(e.status(), e.reason()),
        }
    };
    let mut pending = buf.split_off(head.head_len);

    let mut body = Vec::new();
    match head.framing {
        BodyFraming::Empty => {}
        BodyFraming::Length(len) => {
            let len = usize::try_from(len).expect("test bodies fit in memory");
            while pending.len() < len {
                match reads.next() {
                    Some(read) => pending.extend_from_slice(read),
                    None => return Outcome::waiting("body"),
                }
            }
            body = pending[..len].to_vec();
            pending.drain(..len);
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut input = std::mem::take(&mut pending);
            loop {
                let mut sink = |data: &[u8]| -> Result<(), Infallible> {
                    body.extend_from_slice(data);
                    Ok(())
                };
                match decoder.decode(&input, &mut sink) {
                    Ok((consumed, true)) => {
                        pending = input[consumed..].to_vec();
                        break;
                    }
                    Ok((consumed, false)) => {
                        assert_eq!(
                            consumed,
                            input.len(),
                            "an unfinished decoder consumes everything"
                        );
                        match reads.next() {
                            Some(read) => input = read.to_vec(),
                            None => return Outcome::waiting("chunked body"),
                        }
                    }
                    Err(DecodeError::Chunk(e)) => {
                        return Outcome::rejected(e.status(), e.to_string())
                    }
                    Err(DecodeError::Sink(never)) => match never {},
                }
            }
            assert_eq!(decoder.total(), body.len() as u64);
        }
    }
    for read in reads {
        pending.extend_from_slice(read);
    }
    Outcome {
        status: Some(200),
        detail: String::new(),
        head: Some(head),
        body,
        rest: pending,
    }
}

/// Every character of the table's strings stands for one byte.
fn bytes_of(field: &str, text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .unwrap_or_else(|_| panic!("{field}: code point {c:?} above 255"))
        })
        .collect()
}

fn request_bytes(case: &Value) -> Vec<u8> {
    let mut request = case["request"]
        .as_str()
        .expect("request is a string")
        .to_owned();
    if let Some(repeat) = case.get("repeat") {
        let marker = repeat["marker"].as_str().expect("repeat.marker");
        let unit = repeat["char"].as_str().expect("repeat.char");
        let count = repeat["count"].as_u64().expect("repeat.count") as usize;
        assert!(
            request.contains(marker),
            "repeat marker missing from request"
        );
        request = request.replace(marker, &unit.repeat(count));
    }
    bytes_of("request", &request)
}

/// Compares the outcome with the case's expectations; returns the mismatches.
fn check(case: &Value, outcome: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let expected_status = case["status"].as_u64().expect("status is a number") as u16;
    if outcome.status != Some(expected_status) {
        problems.push(format!(
            "status: expected {expected_status}, got {:?} ({})",
            outcome.status, outcome.detail
        ));
        return problems;
    }
    let Some(head) = &outcome.head else {
        return problems;
    };
    for (field, actual) in [
        ("method", &head.method),
        ("target", &head.target),
        ("path", &head.path),
        ("query", &head.query),
    ] {
        if let Some(expected) = case.get(field) {
            let expected = expected.as_str().expect("string field");
            if expected != actual {
                problems.push(format!("{field}: expected {expected:?}, got {actual:?}"));
            }
        }
    }
    if let Some(expected) = case.get("keep_alive") {
        let expected = expected.as_bool().expect("keep_alive is a bool");
        if expected != head.keep_alive {
            problems.push(format!(
                "keep_alive: expected {expected}, got {}",
                head.keep_alive
            ));
        }
    }
    // "rest" defaults to empty: a stray unconsumed byte is always a bug.
    for (field, actual) in [("body", &outcome.body), ("rest", &outcome.rest)] {
        let expected = match case.get(field) {
            Some(v) => bytes_of(field, v.as_str().expect("string field")),
            None if field == "rest" => Vec::new(),
            None => continue,
        };
        if &expected != actual {
            problems.push(format!(
                "{field}: expected {:?}, got {:?}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(actual)
            ));
        }
    }
    problems
}

/// Same outcome whatever the read boundaries.
fn check_split_replays(request: &[u8], whole: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    for i in 0..=request.len() {
        let (a, b) = request.split_at(i);
        let split = serve(&[a, b]);
        if &split != whole {
            problems.push(format!(
                "split at byte {i}: {:?} ({})",
                split.status, split.detail
            ));
            break;
        }
    }
    let single_bytes: Vec<&[u8]> = request.chunks(1).collect();
    let trickled = serve(&single_bytes);
    if &trickled != whole {
        problems.push(format!(
            "byte by byte: {:?} ({})",
            trickled.status, trickled.detail
        ));
    }
    problems
}

#[test]
fn http_cases_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec/http_cases.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let cases: Vec<Value> =
        serde_json::from_str(&text).expect("spec/http_cases.json is valid JSON");

    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases.iter().filter(|c| c.get("_comment").is_none()) {
        let name = case["name"].as_str().expect("name is a string");
        let request = request_bytes(case);
        let outcome = serve(&[&request]);
        let mut problems = check(case, &outcome);
        if problems.is_empty() && request.len() <= SPLIT_REPLAY_MAX {
            problems = check_split_replays(&request, &outcome);
        }
        for problem in &problems {
            eprintln!("FAILED {name}: {problem}");
        }
        if !problems.is_empty() {
            failures.push(name.to_owned());
        }
        ran += 1;
    }
    eprintln!("{ran} conformance cases run, {} failed", failures.len());
    assert!(ran >= 40, "expected at least 40 cases, found {ran}");
    assert!(failures.is_empty(), "failing cases: {failures:#?}");
}
