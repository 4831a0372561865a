//! The Rack env's CGI part, built from a parsed request head (Puma's
//! `client_env.rb` and the C parser's job in one place).
//!
//! Keys are frozen, interned strings created once per process, so a request
//! allocates only its values. The Ruby side adds the entries that are Ruby
//! objects (`rack.input`, `rack.hijack`, `rack.after_reply` …).

use std::borrow::Cow;
use std::collections::HashMap;

use magnus::rb_sys::FromRawValue;
use magnus::value::Lazy;
use magnus::value::ReprValue;
use magnus::{Error, IntoValue, RHash, RString, Ruby, Value};

use crate::http::parser::{BodyFraming, RequestHead, Version};

macro_rules! keys {
    ($($name:ident = $text:literal;)*) => {
        $(static $name: Lazy<RString> = Lazy::new(|ruby| ruby.str_new($text).to_interned_str());)*
    };
}

keys! {
    REQUEST_METHOD = "REQUEST_METHOD";
    REQUEST_URI = "REQUEST_URI";
    REQUEST_PATH = "REQUEST_PATH";
    PATH_INFO = "PATH_INFO";
    QUERY_STRING = "QUERY_STRING";
    SERVER_PROTOCOL = "SERVER_PROTOCOL";
    HTTP_VERSION = "HTTP_VERSION";
    SERVER_NAME = "SERVER_NAME";
    SERVER_PORT = "SERVER_PORT";
    REMOTE_ADDR = "REMOTE_ADDR";
    URL_SCHEME = "rack.url_scheme";
    CONTENT_TYPE = "CONTENT_TYPE";
    CONTENT_LENGTH = "CONTENT_LENGTH";
    HTTP_1_0 = "HTTP/1.0";
    HTTP_1_1 = "HTTP/1.1";
    HTTP = "http";
    HTTPS = "https";
    GET = "GET";
    POST = "POST";
    HEAD = "HEAD";
    LOCALHOST = "localhost";
    PORT_80 = "80";
    PORT_443 = "443";
    HTTPS_KEY = "HTTPS";
    ON = "on";
    PEERCERT = "puma.peercert";
    EMPTY = "";
}

/// How many entries [`Entries`] gathers before one `rb_hash_bulk_insert`.
const BATCH: usize = 24;

/// Header entries on their way into the env: gathered on this thread's
/// stack, where the GC sees them (it scans the machine stack), and inserted
/// in batches. One bulk insert grows the table once and costs one
/// `rb_protect`, where an `aset` per entry cost one each. Only for keys the
/// env lacks: a bulk insert makes room for all its entries first, which
/// would grow the table for keys the template already has a slot for.
struct Entries {
    env: RHash,
    pairs: [Value; 2 * BATCH],
    len: usize,
}

impl Entries {
    fn new(ruby: &Ruby, env: RHash) -> Self {
        Entries {
            env,
            pairs: [ruby.qnil().as_value(); 2 * BATCH],
            len: 0,
        }
    }

    fn add(&mut self, key: RString, value: impl IntoValue) -> Result<(), Error> {
        if self.len == self.pairs.len() {
            self.flush()?;
        }
        // `key` is a frozen String, which the hash keeps as it is (as
        // `aset` would).
        let ruby = Ruby::get_with(self.env);
        self.pairs[self.len] = key.as_value();
        self.pairs[self.len + 1] = value.into_value_with(&ruby);
        self.len += 2;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.len > 0 {
            self.env.bulk_insert(&self.pairs[..self.len])?;
            self.len = 0;
        }
        Ok(())
    }
}

/// A frozen interned String (UTF-8) of `key`: found in Ruby's table of
/// interned strings without allocating one first. For env keys, and for
/// values that repeat across requests (the client's address, the port).
fn interned(ruby: &Ruby, key: &[u8]) -> RString {
    // SAFETY: called with the GVL (a `&Ruby` exists only on a Ruby thread
    // that holds it); Ruby copies the bytes when it has to create the
    // string, and the pointer and length describe `key` for the call. The
    // result is a String (checked anyway, not assumed).
    let value = unsafe {
        Value::from_raw(rb_sys::rb_enc_interned_str(
            key.as_ptr() as *const std::os::raw::c_char,
            key.len() as std::os::raw::c_long,
            rb_sys::rb_utf8_encoding(),
        ))
    };
    RString::from_value(value).unwrap_or_else(|| ruby.str_from_slice(key).to_interned_str())
}

/// Adds the request's CGI variables and `HTTP_*` headers to `env`. `tls` is
/// `Some(client certificate)` on an `ssl://` connection.
pub(crate) fn fill(
    ruby: &Ruby,
    env: RHash,
    head: &RequestHead,
    remote_addr: &str,
    body_len: u64,
    tls: Option<Option<String>>,
) -> Result<(), Error> {
    let method = match head.method.as_str() {
        "GET" => ruby.get_inner(&GET),
        "POST" => ruby.get_inner(&POST),
        "HEAD" => ruby.get_inner(&HEAD),
        other => ruby.str_new(other),
    };
    env.aset(ruby.get_inner(&REQUEST_METHOD), method)?;
    // Like Puma, the fragment (never sent by browsers) is not part of REQUEST_URI.
    let uri = head.target.split('#').next().unwrap_or_default();
    env.aset(ruby.get_inner(&REQUEST_URI), ruby.str_new(uri))?;
    // One String for both, as Puma (`PATH_INFO = REQUEST_PATH.to_s`).
    let path = ruby.str_new(&head.path);
    env.aset(ruby.get_inner(&REQUEST_PATH), path)?;
    env.aset(ruby.get_inner(&PATH_INFO), path)?;
    // No query: Puma's frozen "" too.
    let query = if head.query.is_empty() {
        ruby.get_inner(&EMPTY)
    } else {
        ruby.str_new(&head.query)
    };
    env.aset(ruby.get_inner(&QUERY_STRING), query)?;
    let protocol = match head.version {
        Version::Http10 => ruby.get_inner(&HTTP_1_0),
        Version::Http11 => ruby.get_inner(&HTTP_1_1),
    };
    env.aset(ruby.get_inner(&SERVER_PROTOCOL), protocol)?;
    env.aset(ruby.get_inner(&HTTP_VERSION), protocol)?;
    // Frozen and interned: one String per address, not one per request.
    env.aset(
        ruby.get_inner(&REMOTE_ADDR),
        interned(ruby, remote_addr.as_bytes()),
    )?;

    let mut host = None;
    let mut https = tls.is_some();
    if let Some(peer_cert) = tls {
        env.aset(ruby.get_inner(&HTTPS_KEY), ruby.get_inner(&ON))?;
        if let Some(pem) = peer_cert {
            env.aset(ruby.get_inner(&PEERCERT), ruby.str_new(&pem))?;
        }
    }
    // The CGI entries above replace the env template's empty slots
    // (`Handler::SLOTS`); headers are new keys, inserted in bulk. Kept on
    // the stack (see `Entries`): never boxed or moved to the heap.
    let mut entries = Entries::new(ruby, env);
    for (key, value) in merged_headers(head) {
        match key.as_str() {
            "HTTP_HOST" => host = Some(value.clone()),
            "HTTP_X_FORWARDED_PROTO" => {
                https |= value
                    .get(..5)
                    .is_some_and(|v| v.eq_ignore_ascii_case(b"https"))
            }
            "HTTP_X_FORWARDED_SCHEME" => https |= value.eq_ignore_ascii_case(b"https"),
            "HTTP_X_FORWARDED_SSL" => https |= value.eq_ignore_ascii_case(b"on"),
            _ => {}
        }
        let key = match key.as_str() {
            "CONTENT_TYPE" => ruby.get_inner(&CONTENT_TYPE),
            "CONTENT_LENGTH" => ruby.get_inner(&CONTENT_LENGTH),
            _ => interned(ruby, key.as_bytes()),
        };
        entries.add(key, ruby.str_from_slice(&value))?;
    }
    entries.flush()?;
    if head.framing == BodyFraming::Chunked {
        // The app sees a body of known length, as in Puma.
        env.aset(
            ruby.get_inner(&CONTENT_LENGTH),
            ruby.str_new(&body_len.to_string()),
        )?;
    }

    env.aset(
        ruby.get_inner(&URL_SCHEME),
        ruby.get_inner(if https { &HTTPS } else { &HTTP }),
    )?;
    let default_port = if https { &PORT_443 } else { &PORT_80 };
    match host.as_deref().map(split_host) {
        Some((name, Some(port))) => {
            env.aset(ruby.get_inner(&SERVER_NAME), ruby.str_from_slice(name))?;
            // Frozen, as the default ports are.
            env.aset(ruby.get_inner(&SERVER_PORT), interned(ruby, port))?;
        }
        Some((name, None)) => {
            env.aset(ruby.get_inner(&SERVER_NAME), ruby.str_from_slice(name))?;
            env.aset(ruby.get_inner(&SERVER_PORT), ruby.get_inner(default_port))?;
        }
        None => {
            env.aset(ruby.get_inner(&SERVER_NAME), ruby.get_inner(&LOCALHOST))?;
            env.aset(ruby.get_inner(&SERVER_PORT), ruby.get_inner(default_port))?;
        }
    }
    Ok(())
}

/// An env key and its value: borrowed from the head unless repeated
/// headers were joined.
pub(crate) type EnvHeader<'a> = (String, Cow<'a, [u8]>);

/// Env keys of underscored names that must stay as they are: renamed, they
/// would pose as the framing headers the server has already acted on.
const UNMASKABLE: [&str; 2] = ["HTTP_TRANSFER,ENCODING", "HTTP_CONTENT,LENGTH"];

/// Heads with more header lines than this index their keys in a hash map;
/// below, a scan of the few keys so far is cheaper than hashing.
const SCAN_LIMIT: usize = 16;

/// The request's headers as env keys and values, as Puma builds them:
/// repeated headers joined with ", "; `Content-Type`/`Content-Length` as
/// `CONTENT_TYPE`/`CONTENT_LENGTH`; `Transfer-Encoding` and `Content-Length`
/// hidden once a chunked body is decoded (the server sets `CONTENT_LENGTH`).
///
/// A `_` in a header name is kept apart from `-`, so an underscored name can
/// never pose as a dashed one: `X_Forwarded_For` becomes
/// `HTTP_X_FORWARDED_FOR` only when no `X-Forwarded-For` was sent (it is
/// dropped otherwise), `Content_Type` becomes `HTTP_CONTENT_TYPE` (never
/// `CONTENT_TYPE`), and `Transfer_Encoding` / `Content_Length` stay
/// `HTTP_TRANSFER,ENCODING` / `HTTP_CONTENT,LENGTH`, so an app that rebuilds
/// headers from the env cannot be made to forward framing the server ignored.
///
/// Linear in the number of headers (a hash map beyond [`SCAN_LIMIT`]).
pub(crate) fn merged_headers(head: &RequestHead) -> Vec<EnvHeader<'_>> {
    merge_counting(head).0
}

/// [`merged_headers`], and how many keys its lookups compared (so a test
/// can tell linear work from quadratic; the answer alone cannot).
fn merge_counting(head: &RequestHead) -> (Vec<EnvHeader<'_>>, usize) {
    let chunked = head.framing == BodyFraming::Chunked;
    let n = head.headers.len();
    let mut out: Vec<EnvHeader<'_>> = Vec::with_capacity(n);
    let mut index: HashMap<String, usize> = HashMap::new();
    let compared = std::cell::Cell::new(0usize);
    let find = |out: &[EnvHeader<'_>], index: &HashMap<String, usize>, key: &str| {
        if n > SCAN_LIMIT {
            compared.set(compared.get() + 1);
            index.get(key).copied()
        } else {
            let found = out.iter().position(|(k, _)| k == key);
            compared.set(compared.get() + found.map_or(out.len(), |i| i + 1));
            found
        }
    };
    let mut underscored = false;
    for header in &head.headers {
        let key = env_key(&header.name);
        if chunked && (key == "HTTP_TRANSFER_ENCODING" || key == "CONTENT_LENGTH") {
            continue;
        }
        match find(&out, &index, &key) {
            Some(i) => {
                let joined = out[i].1.to_mut();
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(&header.value);
            }
            None => {
                underscored |= key.contains(',');
                if n > SCAN_LIMIT {
                    index.insert(key.clone(), out.len());
                }
                out.push((key, Cow::Borrowed(&header.value)));
            }
        }
    }
    if !underscored {
        return (out, compared.get());
    }
    // Underscored names take their dashed key unless a dashed header holds
    // it; when several map to one key, the last one wins (as in Puma).
    let mut keep = vec![true; out.len()];
    let mut renamed: HashMap<String, usize> = HashMap::new();
    for (i, (key, _)) in out.iter().enumerate() {
        if !key.contains(',') || UNMASKABLE.contains(&key.as_str()) {
            continue;
        }
        let dashed = key.replace(',', "_");
        if find(&out, &index, &dashed).is_some() {
            keep[i] = false;
        } else if let Some(previous) = renamed.insert(dashed, i) {
            keep[previous] = false;
        }
    }
    for (dashed, i) in renamed {
        out[i].0 = dashed;
    }
    let mut keep = keep.into_iter();
    out.retain(|_| keep.next().unwrap_or(true));
    let compared = compared.get();
    (out, compared)
}

/// `HTTP_` + the name upper-cased with `-` as `_` and `_` as `,` (Puma's
/// spelling, which keeps the two apart), or the two CGI names.
fn env_key(name: &str) -> String {
    if name.eq_ignore_ascii_case("content-type") {
        return "CONTENT_TYPE".to_owned();
    }
    if name.eq_ignore_ascii_case("content-length") {
        return "CONTENT_LENGTH".to_owned();
    }
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    key.extend(name.chars().map(|c| match c {
        '-' => '_',
        '_' => ',',
        c => c.to_ascii_uppercase(),
    }));
    key
}

/// Splits a Host value into name and port, keeping IPv6 brackets.
pub(crate) fn split_host(host: &[u8]) -> (&[u8], Option<&[u8]>) {
    let colon = if host.first() == Some(&b'[') {
        host.iter()
            .position(|&b| b == b']')
            .and_then(|end| (host.get(end + 1) == Some(&b':')).then_some(end + 1))
    } else {
        host.iter().rposition(|&b| b == b':')
    };
    match colon {
        Some(i) => (&host[..i], Some(&host[i + 1..])),
        None => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parser::Header;

    fn head(headers: &[(&str, &str)], framing: BodyFraming) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            target: "/".into(),
            path: "/".into(),
            query: String::new(),
            version: Version::Http11,
            headers: headers
                .iter()
                .map(|(n, v)| Header {
                    name: n.to_string(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
            head_len: 0,
            framing,
            expect_continue: false,
            keep_alive: true,
        }
    }

    fn owned(h: &RequestHead) -> Vec<(String, Vec<u8>)> {
        merged_headers(h)
            .into_iter()
            .map(|(k, v)| (k, v.into_owned()))
            .collect()
    }

    #[test]
    fn host_splits_name_and_port_keeping_ipv6_brackets() {
        assert_eq!(
            split_host(b"example.com:8080"),
            (&b"example.com"[..], Some(&b"8080"[..]))
        );
        assert_eq!(split_host(b"example.com"), (&b"example.com"[..], None));
        assert_eq!(
            split_host(b"[::1]:9292"),
            (&b"[::1]"[..], Some(&b"9292"[..]))
        );
        assert_eq!(split_host(b"[::1]"), (&b"[::1]"[..], None));
    }

    #[test]
    fn repeated_headers_are_joined() {
        let h = head(&[("Accept", "a"), ("accept", "b")], BodyFraming::Empty);
        assert_eq!(
            owned(&h),
            vec![("HTTP_ACCEPT".to_string(), b"a, b".to_vec())]
        );
    }

    #[test]
    fn dashed_header_wins_over_underscored_one() {
        let h = head(
            &[("X_Forwarded_For", "evil"), ("X-Forwarded-For", "1.2.3.4")],
            BodyFraming::Empty,
        );
        assert_eq!(
            owned(&h),
            vec![("HTTP_X_FORWARDED_FOR".to_string(), b"1.2.3.4".to_vec())]
        );
        let h = head(
            &[("X-Forwarded-For", "1.2.3.4"), ("X_Forwarded_For", "evil")],
            BodyFraming::Empty,
        );
        assert_eq!(
            owned(&h),
            vec![("HTTP_X_FORWARDED_FOR".to_string(), b"1.2.3.4".to_vec())]
        );
    }

    #[test]
    fn chunked_requests_hide_transfer_encoding() {
        let h = head(
            &[("Transfer-Encoding", "chunked"), ("Host", "x")],
            BodyFraming::Chunked,
        );
        assert_eq!(owned(&h), vec![("HTTP_HOST".to_string(), b"x".to_vec())]);
    }

    fn keys(headers: &[(&str, &str)], framing: BodyFraming) -> Vec<(String, String)> {
        merged_headers(&head(headers, framing))
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.into_owned()).unwrap()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn underscored_names_never_become_framing_keys() {
        let got = keys(
            &[
                ("Transfer_Encoding", "chunked"),
                ("Content_Length", "11"),
                ("Content_Type", "text/evil"),
            ],
            BodyFraming::Empty,
        );
        assert_eq!(
            got,
            pairs(&[
                ("HTTP_TRANSFER,ENCODING", "chunked"),
                ("HTTP_CONTENT,LENGTH", "11"),
                ("HTTP_CONTENT_TYPE", "text/evil"),
            ])
        );
        let got = keys(
            &[
                ("Content-Type", "a/b"),
                ("Content_Type", "c/d"),
                ("Content-Length", "0"),
            ],
            BodyFraming::Length(0),
        );
        assert_eq!(
            got,
            pairs(&[
                ("CONTENT_TYPE", "a/b"),
                ("HTTP_CONTENT_TYPE", "c/d"),
                ("CONTENT_LENGTH", "0")
            ])
        );
    }

    #[test]
    fn chunked_requests_hide_the_dashed_content_length_too() {
        let got = keys(
            &[
                ("Content-Length", "5"),
                ("Transfer-Encoding", "chunked"),
                ("Content_Length", "9"),
            ],
            BodyFraming::Chunked,
        );
        assert_eq!(got, pairs(&[("HTTP_CONTENT,LENGTH", "9")]));
    }

    #[test]
    fn last_underscored_variant_wins_without_a_dashed_one() {
        let got = keys(&[("X_A-B", "1"), ("X-A_B", "2")], BodyFraming::Empty);
        assert_eq!(got, pairs(&[("HTTP_X_A_B", "2")]));
    }

    #[test]
    fn many_headers_merge_in_linear_work_with_the_same_answer() {
        // Past SCAN_LIMIT the hash map answers; it must agree with the scan.
        let names: Vec<String> = (0..3000).map(|i| format!("X-H{}", i % 1000)).collect();
        let mut list: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        list.push(("X_H7", "evil"));
        list.push(("X_Only", "u"));
        let got = keys(&list, BodyFraming::Empty);
        assert_eq!(got.len(), 1001);
        // One lookup per header, one more per underscored name; a scan of
        // the keys so far would compare ~n²/2 (here ~10⁶).
        let (_, compared) = merge_counting(&head(&list, BodyFraming::Empty));
        assert!(compared <= 2 * list.len(), "{compared} key comparisons");
        assert_eq!(got[7], ("HTTP_X_H7".to_string(), "v, v, v".to_string()));
        assert_eq!(got[1000], ("HTTP_X_ONLY".to_string(), "u".to_string()));
        let few = keys(&list[..12], BodyFraming::Empty);
        assert_eq!(
            few,
            got[..12]
                .iter()
                .map(|(k, _)| (k.clone(), "v".to_string()))
                .collect::<Vec<_>>()
        );
    }
}
