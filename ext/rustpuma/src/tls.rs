//! TLS for `ssl://` binds, with rustls, inside the reactor: the handshake
//! and record layer run on the non-blocking socket like plain reads, so a
//! slow handshake costs no thread and Ruby only ever sees plaintext.
//!
//! Puma's `ssl_bind` options map onto rustls as follows: `cert`/`key` (PEM
//! files) or `cert_pem`/`key_pem` (PEM text); `verify_mode` `none`, `peer`
//! (a client certificate is asked for and checked against `ca` when sent)
//! or `force_peer` (required). Protocol versions are rustls's safe defaults
//! (TLS 1.2 and 1.3), so `no_tlsv1`/`no_tlsv1_1` are always satisfied.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use base64::Engine;
use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

/// How much response plaintext rustls may hold before `write` pushes back.
const BUFFER_LIMIT: usize = 256 * 1024;

/// `ssl_bind` settings, as Ruby passes them.
#[derive(Debug, Default, Clone)]
pub(crate) struct TlsOptions {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub cert_pem: Option<String>,
    pub key_pem: Option<String>,
    pub ca: Option<String>,
    pub verify_mode: Option<String>,
}

/// Builds the server configuration once per listener; errors name the file
/// or setting so a bad path fails the boot with a clear message.
pub(crate) fn server_config(options: &TlsOptions) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = match (&options.cert_pem, &options.cert) {
        (Some(pem), _) => CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cert_pem: {e}"))?,
        (None, Some(path)) => CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<_, _>>())
            .map_err(|e| format!("cert {path}: {e}"))?,
        (None, None) => return Err("ssl bind needs cert (or cert_pem)".into()),
    };
    // Errors name the file, as Puma's do: the setting alone does not say
    // which of several binds is wrong.
    let cert_name = match (&options.cert_pem, &options.cert) {
        (None, Some(path)) => format!("cert {path}"),
        _ => "cert_pem".to_string(),
    };
    if certs.is_empty() {
        return Err(format!("no PEM certificate found in {cert_name}"));
    }
    let key: PrivateKeyDer<'static> = match (&options.key_pem, &options.key) {
        (Some(pem), _) => {
            PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("key_pem: {e}"))?
        }
        (None, Some(path)) => {
            PrivateKeyDer::from_pem_file(path).map_err(|e| format!("key {path}: {e}"))?
        }
        (None, None) => return Err("ssl bind needs key (or key_pem)".into()),
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mode = options.verify_mode.as_deref().unwrap_or("none");
    let builder = match mode {
        "none" => builder.with_no_client_auth(),
        "peer" | "force_peer" => {
            let ca = options
                .ca
                .as_ref()
                .ok_or_else(|| format!("verify_mode {mode} needs ca"))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("ca {ca}: {e}"))? {
                roots
                    .add(cert.map_err(|e| format!("ca {ca}: {e}"))?)
                    .map_err(|e| format!("ca {ca}: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == "peer" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder
                .with_client_cert_verifier(verifier.build().map_err(|e| format!("ca {ca}: {e}"))?)
        }
        other => {
            return Err(format!(
                "unknown verify_mode {other:?} (none, peer or force_peer)"
            ))
        }
    };
    let key_name = match (&options.key_pem, &options.key) {
        (None, Some(path)) => format!("key {path}"),
        _ => "key_pem".to_string(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{cert_name} with {key_name}: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS connection over a non-blocking TCP socket.
pub(crate) struct TlsStream {
    pub tcp: TcpStream,
    conn: ServerConnection,
}

impl TlsStream {
    pub(crate) fn new(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(TlsStream { tcp, conn })
    }

    /// Plaintext from the client. Drives the handshake as a side effect;
    /// `WouldBlock` when the socket has nothing more.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.conn.read_tls(&mut self.tcp)? == 0 {
                return Ok(0);
            }
            if let Err(e) = self.conn.process_new_packets() {
                // Send the alert, then give up on the connection.
                let _ = self.flush();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Handshake replies (and key updates) go out as soon as possible.
            match self.flush() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Accepts plaintext (as much as rustls buffers) and sends what the
    /// socket takes. Callers finish with [`TlsStream::flush`].
    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.conn.writer().write_vectored(bufs)?;
        match self.flush() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Writes buffered TLS records; `WouldBlock` if some remain.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.tcp)?;
        }
        Ok(())
    }

    /// The client's certificate as PEM (`puma.peercert`), after a mutual
    /// TLS handshake.
    pub(crate) fn peer_cert_pem(&self) -> Option<String> {
        let der = self.conn.peer_certificates()?.first()?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        Some(pem)
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        // A polite close_notify, best effort: the socket closes right after.
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}
