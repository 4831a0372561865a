//! A connection's reading side (head, body framing, PROXY line,
//! pipelining, limits): never panics, and serves the same requests (or the
//! same rejection) whether the bytes arrive at once or split across reads.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use rustpuma::body::Body;
use rustpuma::reader::{Event, Limits, Reader, Rejection};

#[path = "split.rs"]
mod split;

#[derive(Debug, PartialEq)]
enum Seen {
    Request {
        method: String,
        target: String,
        headers: usize,
        keep_alive: bool,
        body: Vec<u8>,
    },
    Proxy(String),
    Rejected(Rejection),
}

fn bytes_of(body: Body) -> Vec<u8> {
    match body {
        Body::Memory(bytes) => bytes,
        Body::File { mut file, .. } => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .expect("spilled body is readable");
            bytes
        }
    }
}

fn serve(reads: &[&[u8]], limits: &Limits) -> Vec<Seen> {
    let mut reader = Reader::new();
    let mut seen = Vec::new();
    for read in reads {
        reader.push(read);
        loop {
            match reader.next_event(limits) {
                Ok(Event::NeedMore) => break,
                // Depends on timing by design (only when nothing follows the head).
                Ok(Event::SendContinue) => {}
                Ok(Event::ProxySource(ip)) => seen.push(Seen::Proxy(ip)),
                Ok(Event::Ready(head, body)) => seen.push(Seen::Request {
                    method: head.method,
                    target: head.target,
                    headers: head.headers.len(),
                    keep_alive: head.keep_alive,
                    body: bytes_of(body),
                }),
                Err(rejection) => {
                    seen.push(Seen::Rejected(rejection));
                    return seen;
                }
            }
        }
    }
    seen
}

fuzz_target!(|input: &[u8]| {
    let Some(&flags) = input.first() else { return };
    let Some((reads, data)) = split::reads(&input[1..]) else {
        return;
    };
    let limits = Limits {
        proxy_protocol: flags & 1 != 0,
        max_body: (flags & 2 != 0).then_some(u64::from(flags) * 64),
        ..Limits::default()
    };
    let whole = serve(&[data], &limits);
    assert_eq!(
        serve(&reads, &limits),
        whole,
        "split reads disagree with one read"
    );
});
