#![allow(dead_code)] // each test module uses part of it
//! Shared by the `http.*` tests: certificates made with rcgen (a test CA and leaves valid,
//! expired, for another name, self-signed, near expiry), small HTTPS and plain HTTP servers on
//! loopback addresses of their own (127.0.0.N, so each endpoint has its own plain http:// port
//! answer), and an `openssl s_server` that still accepts TLS 1.0.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use chrono::{Datelike, Utc};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the test servers see it.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: String,
    pub path: String,
}

/// A response the test servers write.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn ok(body: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into(),
        }
    }

    pub fn status(status: u16) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("status {status}"),
        }
    }

    pub fn redirect(status: u16, location: &str) -> Response {
        Response {
            status,
            headers: vec![("Location".into(), location.into())],
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

pub fn handler(f: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Handler {
    Arc::new(f)
}

/// A test CA and the leaves it signs.
pub struct Pki {
    pub ca: Certificate,
    pub ca_key: KeyPair,
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert: Certificate,
    pub key: KeyPair,
}

impl Leaf {
    /// Writes `NAME.crt` and `NAME.key` (PEM) into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, self.cert.pem()).unwrap();
        std::fs::write(&key, self.key.serialize_pem()).unwrap();
        (cert, key)
    }
}

/// Sets `params` valid from `from` to `until` days from today (midnight UTC).
pub fn validity(params: &mut CertificateParams, from: i64, until: i64) {
    let ymd = |days: i64| {
        let d = Utc::now().date_naive() + chrono::Duration::days(days);
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = ymd(from);
    params.not_after = ymd(until);
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Trellis Test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, -30, 3650);
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    /// Writes the CA certificate (PEM) to `path`: the `ca_file`.
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.ca.pem()).unwrap();
    }

    /// A leaf for `ip` (or `dns`, when given instead), valid from `from` to `until` days from
    /// today, signed by the CA or, when `self_signed`, by itself.
    pub fn leaf(
        &self,
        ip: &str,
        dns: Option<&str>,
        from: i64,
        until: i64,
        self_signed: bool,
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = match dns {
            Some(d) => vec![SanType::DnsName(d.try_into().unwrap())],
            None => vec![SanType::IpAddress(ip.parse::<IpAddr>().unwrap())],
        };
        params
            .distinguished_name
            .push(DnType::CommonName, dns.unwrap_or(ip));
        validity(&mut params, from, until);
        let cert = if self_signed {
            params.self_signed(&key).unwrap()
        } else {
            params.signed_by(&key, &self.ca, &self.ca_key).unwrap()
        };
        Leaf { cert, key }
    }
}

/// A free port on `ip`.
pub async fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTPS server on `ip` (any free port) presenting `leaf`, answering with `handler`.
pub async fn https_server(ip: &str, leaf: &Leaf, handler: Handler) -> SocketAddr {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        leaf.key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve(tls, handler).await;
                }
            });
        }
    });
    addr
}

/// A plain HTTP server on `ip:port` answering with `handler`.
pub async fn http_server(ip: &str, port: u16, handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(serve(stream, handler));
        }
    });
    addr
}

/// A server on `ip` that accepts connections and never says anything.
pub async fn silent_server(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held: Vec<TcpStream> = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, handler: Handler) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 65536 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let host = lines
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let response = handler(&Request { host, path });
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&response.body);
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Whether the `openssl` command is available.
pub fn have_openssl() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An `openssl s_server` that accepts TLS 1.0 to 1.3 (weak ciphers allowed), killed on drop.
pub struct OpensslServer {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OpensslServer {
    pub async fn start(ip: &str, cert: &Path, key: &Path) -> OpensslServer {
        let port = free_port(ip).await;
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-accept"])
            .arg(format!("{ip}:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args([
                "-min_protocol",
                "TLSv1",
                "-cipher",
                "ALL:@SECLEVEL=0",
                "-www",
                "-quiet",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        // Killed and waited for on drop, even if it never listens.
        let server = OpensslServer { child, addr };
        // Wait until it listens.
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("openssl s_server did not start on {addr}");
    }
}
