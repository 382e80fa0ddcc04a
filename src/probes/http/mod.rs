//! `sources.http`: the company's public TLS endpoints (`http.tls`) and published pages
//! (`http.pages`), read as a client on the internet reads them.
//!
//! Trellis connects only to the hosts the configuration names: endpoints and pages are
//! requested as written, redirects are never followed by the HTTP client (pages follow them
//! by hand, and only to configured hosts), and no proxy from the environment is used. Every
//! connection and request is bounded by `sources.http.timeout`, and at most
//! `sources.http.concurrency` endpoints or pages are read at once (one semaphore per run).
//!
//! - `mod.rs`: the run's [`Http`] (trust anchors, semaphore, configured hosts), the
//!   certificate verifier that records its verdict instead of aborting, and the HTTP client.
//! - `hello.rs`: a hand-built TLS 1.0 / 1.1 ClientHello, to learn whether an endpoint still
//!   accepts those versions (rustls cannot speak them).
//! - `tls.rs`: `http.tls`. `pages.rs`: `http.pages`.

mod hello;
pub mod pages;
pub mod tls;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::sync::Semaphore;

use super::{ProbeContext, ProbeError};
use crate::config::HttpSource;

/// What every `http.*` probe of one run shares (built once per run, through the fetch cache).
pub(crate) struct Http {
    pub source: HttpSource,
    pub timeout: Duration,
    /// System roots plus `ca_file`.
    pub roots: Arc<RootCertStore>,
    pub provider: Arc<CryptoProvider>,
    /// Endpoints or pages being read at once.
    pub permits: Arc<Semaphore>,
    /// The host names (lower case) of every configured endpoint and page: the only hosts a
    /// redirect may lead to.
    pub hosts: BTreeSet<String>,
}

/// The run's [`Http`], or `NotConfigured("http")`.
pub(crate) async fn http(ctx: &ProbeContext) -> Result<Arc<Http>, ProbeError> {
    let Some(source) = ctx.sources.http.clone() else {
        return Err(ProbeError::NotConfigured("http"));
    };
    let ca_file = source.ca_file.as_ref().map(|p| ctx.resolve_path(p));
    ctx.cache
        .get_or_fetch("http:client", async move {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = Arc::new(roots(ca_file.as_deref()).await?);
            let hosts = source
                .endpoints
                .iter()
                .chain(source.pages.values())
                .filter_map(|u| u.0.host_str().map(str::to_ascii_lowercase))
                .collect();
            Ok(Http {
                timeout: source.timeout.to_std(),
                permits: Arc::new(Semaphore::new(source.concurrency.get())),
                source,
                roots,
                provider,
                hosts,
            })
        })
        .await
}

/// The system's trust anchors plus those in `ca_file` (PEM). A `ca_file` that cannot be read
/// or holds no certificate is an error: the configuration asked for it.
async fn roots(ca_file: Option<&std::path::Path>) -> Result<RootCertStore, ProbeError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "cannot read a system trust anchor");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| ProbeError::Io(format!("cannot read ca_file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|e| {
                ProbeError::BadBody(format!("ca_file {}: invalid PEM: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                ProbeError::BadBody(format!(
                    "ca_file {}: unusable certificate: {e}",
                    path.display()
                ))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(ProbeError::BadBody(format!(
                "ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
    }
    Ok(roots)
}

impl Http {
    /// A verifier against the run's roots, judging certificates as of `now` (the run's
    /// clock).
    pub fn verifier(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Arc<Recording>, ProbeError> {
        let inner =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| {
                    ProbeError::Io(format!("cannot build the certificate verifier: {e}"))
                })?;
        let secs = u64::try_from(now.timestamp()).unwrap_or(0);
        Ok(Arc::new(Recording {
            inner,
            now: UnixTime::since_unix_epoch(Duration::from_secs(secs)),
            verdict: Mutex::new(None),
        }))
    }

    /// A rustls client configuration offering `versions`, whose certificate verdict is
    /// recorded in `verifier` rather than enforced.
    pub fn tls_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        verifier: Arc<Recording>,
    ) -> Result<rustls::ClientConfig, ProbeError> {
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| ProbeError::Io(format!("cannot configure TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// An HTTP client that follows no redirect and uses no proxy. With `verifier`, the
    /// certificate is recorded there and not enforced; without, it must verify against the
    /// run's roots.
    pub fn client(&self, verifier: Option<Arc<Recording>>) -> Result<reqwest::Client, ProbeError> {
        let config = match verifier {
            Some(v) => self.tls_config(rustls::DEFAULT_VERSIONS, v)?,
            None => {
                let mut c = rustls::ClientConfig::builder_with_provider(self.provider.clone())
                    .with_protocol_versions(rustls::DEFAULT_VERSIONS)
                    .map_err(|e| ProbeError::Io(format!("cannot configure TLS: {e}")))?
                    .with_root_certificates(self.roots.clone())
                    .with_no_client_auth();
                c.alpn_protocols = vec![b"http/1.1".to_vec()];
                c
            }
        };
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("trellis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProbeError::Io(format!("cannot build the HTTP client: {e}")))
    }
}

/// A certificate verifier that records the standard verdict (chain to the roots, validity
/// dates, name) and lets the handshake go on, so a certificate that fails can still be
/// inspected. Handshake signatures are still verified.
#[derive(Debug)]
pub(crate) struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    now: UnixTime,
    verdict: Mutex<Option<Result<(), rustls::Error>>>,
}

impl Recording {
    /// The verdict on the last certificate presented, if one was.
    pub fn verdict(&self) -> Option<Result<(), rustls::Error>> {
        self.verdict
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                self.now,
            )
            .map(|_| ());
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(verdict);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a certificate failed verification, in a few words (`expired`, `unknown issuer`…).
pub(crate) fn certificate_error(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".into(),
            C::UnknownIssuer => "unknown issuer (not signed by a trusted root)".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "not valid for the endpoint's name".into()
            }
            C::Revoked => "revoked".into(),
            C::BadSignature => "bad signature".into(),
            C::BadEncoding => "malformed certificate".into(),
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}

/// The server name to present (SNI) and verify for `host`.
pub(crate) fn server_name(host: &url::Host<&str>) -> Result<ServerName<'static>, String> {
    match host {
        url::Host::Domain(d) => {
            ServerName::try_from(d.to_string()).map_err(|e| format!("invalid host name `{d}`: {e}"))
        }
        url::Host::Ipv4(ip) => Ok(ServerName::IpAddress(std::net::IpAddr::V4(*ip).into())),
        url::Host::Ipv6(ip) => Ok(ServerName::IpAddress(std::net::IpAddr::V6(*ip).into())),
    }
}

/// A connection or request failure in words, naming the innermost cause (`connection
/// refused`, `dns error: …`, `timed out`).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
