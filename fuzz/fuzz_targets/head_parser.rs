//! The request-head parser: never panics, respects its limits, and gives the
//! same answer whether the head arrives at once or resumed read by read
//! (with linear work).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustpuma::http::parser::{parse_head, HeadScanner, Parsed, MAX_HEADERS, MAX_HEADER_BYTES};

#[path = "split.rs"]
mod split;

fuzz_target!(|input: &[u8]| {
    let Some((reads, data)) = split::reads(input) else {
        return;
    };
    let whole = parse_head(data);
    if let Ok(Parsed::Complete(head)) = &whole {
        assert!(head.head_len <= data.len() && head.head_len <= MAX_HEADER_BYTES);
        assert!(head.headers.len() <= MAX_HEADERS);
        assert!(data[..head.head_len].ends_with(b"\r\n\r\n"));
    }

    let mut scanner = HeadScanner::new();
    let mut end = 0;
    let mut answer = Ok(Parsed::Partial);
    for read in reads {
        end += read.len();
        answer = scanner.parse(&data[..end]);
        if answer != Ok(Parsed::Partial) {
            break;
        }
    }
    assert_eq!(answer, whole, "split reads disagree with one read");
    // Each byte looked at once, plus a CR looked at again per read.
    assert!(
        scanner.work() <= 2 * end + 2,
        "work {} for {end} bytes",
        scanner.work()
    );
});
