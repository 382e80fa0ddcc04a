//! `http.tls`: each endpoint in `sources.http.endpoints`, as a TLS client sees it.
//!
//! Per endpoint (one at a time per permit of the run's semaphore, each connection and request
//! bounded by `sources.http.timeout`, the result cached for the run):
//! 1. a modern handshake (rustls, TLS 1.2 and 1.3 offered): negotiated version and cipher
//!    suite, and the certificate chain — judged against the system roots plus `ca_file` as of
//!    the run's clock by a verifier that records its verdict instead of aborting, so a
//!    certificate that fails is still read (name, expiry, issuer);
//! 2. TLS 1.2 alone when 1.3 was negotiated (1.3 alone is not needed: a server that picked
//!    1.2 while 1.3 was offered does not speak 1.3);
//! 3. TLS 1.0 and 1.1, each *offered* in a hand-built ClientHello (see `hello.rs`);
//! 4. `GET` on the endpoint over HTTPS for its `Strict-Transport-Security` header;
//! 5. `GET http://HOST:plain_http_port/` (no redirect followed) for the redirect to https.
//!
//! A name that does not resolve, a connection refused or a handshake that times out is the
//! resource's `error`. A refused old protocol is the expected answer, not an error; an old
//! protocol offered without any answer in time is unknown (a check reading it is `error`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use super::hello::{self, Answer};
use super::{Http, certificate_error, describe, http, server_name};
use crate::probes::{
    Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError, Resource, object, ts,
};

/// Parameters of `http.tls`: none (every configured endpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsParams {}

pub struct Tls;

impl Probe for Tls {
    const NAME: &'static str = "http.tls";
    const SOURCE: &'static str = "http";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "each endpoint in sources.http.endpoints: the TLS versions it accepts (TLS 1.0 and 1.1 offered, not just negotiated), certificate chain, hostname and expiry, the http:// redirect and HSTS.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("url", String, "the endpoint's URL"),
        attr!(
            "accepts_tls10",
            Bool,
            "a ClientHello offering only TLS 1.0 is answered with a TLS 1.0 ServerHello"
        ),
        attr!(
            "accepts_tls11",
            Bool,
            "a ClientHello offering only TLS 1.1 is answered with a TLS 1.1 ServerHello"
        ),
        attr!("accepts_tls12", Bool, "a TLS 1.2 handshake succeeds"),
        attr!("accepts_tls13", Bool, "a TLS 1.3 handshake succeeds"),
        attr!(
            "negotiated_version",
            String,
            "the version a modern client negotiates (`TLSv1.3`), null if no TLS 1.2+ handshake succeeds"
        ),
        attr!(
            "cipher_suite",
            String,
            "the negotiated cipher suite (`TLS13_AES_256_GCM_SHA384`)"
        ),
        attr!(
            "certificate_valid",
            Bool,
            "the chain verifies against the system roots plus ca_file, for the endpoint's name, at the run's time"
        ),
        attr!(
            "certificate_error",
            String,
            "why the certificate does not verify (`expired`, `unknown issuer…`), null if it does"
        ),
        attr!(
            "hostname_matches",
            Bool,
            "the leaf certificate names the endpoint's host"
        ),
        attr!(
            "days_to_expiry",
            Int,
            "whole days from the run until the leaf certificate expires (negative once expired)"
        ),
        attr!("not_after", Timestamp, "when the leaf certificate expires"),
        attr!(
            "issuer",
            String,
            "the leaf certificate's issuer (distinguished name)"
        ),
        attr!(
            "subject",
            String,
            "the leaf certificate's subject (distinguished name)"
        ),
        attr!(
            "hsts_max_age",
            Int,
            "Strict-Transport-Security max-age in seconds, null if absent"
        ),
        attr!(
            "hsts_include_subdomains",
            Bool,
            "Strict-Transport-Security has includeSubDomains, null if absent"
        ),
        attr!(
            "http_redirects_to_https",
            Bool,
            "plain http:// (on plain_http_port) answers 301, 302, 307 or 308 with a Location starting https://"
        ),
        attr!(
            "http_status",
            Int,
            "the status plain http:// answered, null if nothing answered"
        ),
        attr!(
            "http_location",
            String,
            "the Location plain http:// answered, null if none"
        ),
    ];
    const EXAMPLE: &'static str = "probe: http.tls\nassert: \"!accepts_tls10 && !accepts_tls11 && certificate_valid && hostname_matches\"\n";

    type Params = TlsParams;

    async fn collect(ctx: &ProbeContext, _: &TlsParams) -> Result<Collected, ProbeError> {
        let http = http(ctx).await?;
        let now = ctx.now;
        let checks = http.source.endpoints.iter().map(|url| {
            let http = http.clone();
            let url = url.0.clone();
            async move {
                ctx.cache
                    .get_or_fetch(&format!("http:tls:{url}"), async move {
                        let _permit = http.permits.acquire().await;
                        Ok(check_endpoint(&http, &url, now).await)
                    })
                    .await
            }
        });
        let endpoints = futures::future::join_all(checks)
            .await
            .into_iter()
            .collect::<Result<Vec<Arc<Endpoint>>, ProbeError>>()?;
        let resources = endpoints.iter().map(|e| e.resource()).collect();
        let raw = crate::probes::raw(&endpoints.iter().map(|e| e.as_ref()).collect::<Vec<_>>())?;
        Ok(Collected { resources, raw })
    }
}

/// What was learnt about one endpoint (the raw evidence).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Endpoint {
    url: String,
    /// The endpoint could not be reached (name, connection, timeout): the resource's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    accepts_tls10: Option<bool>,
    tls10_answer: Option<String>,
    accepts_tls11: Option<bool>,
    tls11_answer: Option<String>,
    accepts_tls12: Option<bool>,
    accepts_tls13: Option<bool>,
    negotiated_version: Option<String>,
    cipher_suite: Option<String>,
    /// Why the modern handshake failed, if it did.
    tls_error: Option<String>,
    certificate_valid: Option<bool>,
    certificate_error: Option<String>,
    hostname_matches: Option<bool>,
    not_after: Option<DateTime<Utc>>,
    days_to_expiry: Option<i64>,
    issuer: Option<String>,
    subject: Option<String>,
    https_status: Option<u16>,
    hsts: Option<String>,
    hsts_max_age: Option<i64>,
    hsts_include_subdomains: Option<bool>,
    http_redirects_to_https: Option<bool>,
    http_status: Option<u16>,
    http_location: Option<String>,
    http_error: Option<String>,
    /// Attributes that could not be read, with why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    unknown: BTreeMap<String, String>,
}

impl Endpoint {
    fn resource(&self) -> Resource {
        let attributes = object(serde_json::json!({
            "url": self.url,
            "accepts_tls10": self.accepts_tls10,
            "accepts_tls11": self.accepts_tls11,
            "accepts_tls12": self.accepts_tls12,
            "accepts_tls13": self.accepts_tls13,
            "negotiated_version": self.negotiated_version,
            "cipher_suite": self.cipher_suite,
            "certificate_valid": self.certificate_valid,
            "certificate_error": self.certificate_error,
            "hostname_matches": self.hostname_matches,
            "days_to_expiry": self.days_to_expiry,
            "not_after": ts(self.not_after),
            "issuer": self.issuer,
            "subject": self.subject,
            "hsts_max_age": self.hsts_max_age,
            "hsts_include_subdomains": self.hsts_include_subdomains,
            "http_redirects_to_https": self.http_redirects_to_https,
            "http_status": self.http_status,
            "http_location": self.http_location,
        }));
        Resource {
            id: self.url.clone(),
            name: self.url.clone(),
            attributes,
            error: self.error.clone(),
            unknown: self.unknown.clone(),
            scope: false,
        }
    }

    fn unknown(&mut self, attributes: &[&str], why: &str) {
        for a in attributes {
            self.unknown.insert((*a).to_string(), why.to_string());
        }
    }
}

const CERTIFICATE_ATTRIBUTES: &[&str] = &[
    "certificate_valid",
    "certificate_error",
    "hostname_matches",
    "days_to_expiry",
    "not_after",
    "issuer",
    "subject",
];

/// Reads one endpoint. Never fails: what could not be read is the resource's error, or
/// unknown attributes.
pub(crate) async fn check_endpoint(http: &Http, url: &url::Url, now: DateTime<Utc>) -> Endpoint {
    let mut out = Endpoint {
        url: url.to_string(),
        ..Default::default()
    };
    let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
        out.error = Some("the URL has no host".into());
        return out;
    };
    let name = match server_name(&host) {
        Ok(n) => n,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let timeout = http.timeout;
    let addrs = match resolve(&host, port, timeout).await {
        Ok(a) => a,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };

    // 1. The modern handshake.
    let verifier = match http.verifier(now) {
        Ok(v) => v,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let modern = match handshake(
        http,
        &addrs,
        &name,
        rustls::DEFAULT_VERSIONS,
        verifier.clone(),
    )
    .await
    {
        Ok(h) => h,
        Err(Fault(e)) => {
            out.error = Some(e);
            return out;
        }
    };
    match modern {
        Ok(session) => {
            out.negotiated_version = Some(session.version.clone());
            out.cipher_suite = Some(session.suite.clone());
            out.accepts_tls13 = Some(session.version == "TLSv1.3");
            if session.version == "TLSv1.2" {
                out.accepts_tls12 = Some(true);
            }
            inspect(&mut out, &session, verifier.verdict(), &name, now);
        }
        Err(e) => {
            let why = format!("no TLS 1.2 or 1.3 handshake: {e}");
            out.accepts_tls12 = Some(false);
            out.accepts_tls13 = Some(false);
            out.unknown(CERTIFICATE_ATTRIBUTES, &why);
            out.unknown(&["hsts_max_age", "hsts_include_subdomains"], &why);
            out.tls_error = Some(e);
        }
    }

    // 2. TLS 1.2 alone, when 1.3 was chosen.
    if out.accepts_tls12.is_none() {
        let verifier = match http.verifier(now) {
            Ok(v) => v,
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        };
        match handshake(http, &addrs, &name, &[&rustls::version::TLS12], verifier).await {
            Ok(Ok(_)) => out.accepts_tls12 = Some(true),
            Ok(Err(_)) => out.accepts_tls12 = Some(false),
            Err(Fault(e)) => out.unknown(&["accepts_tls12"], &e),
        }
    }

    // 3. TLS 1.0 and 1.1, offered.
    let sni = match &host {
        url::Host::Domain(d) => Some(*d),
        _ => None,
    };
    for (version, attr) in [
        (hello::TLS10, "accepts_tls10"),
        (hello::TLS11, "accepts_tls11"),
    ] {
        let answer = match connect(&addrs, timeout).await {
            Ok(mut stream) => {
                let mut random = [0u8; 32];
                if http.provider.secure_random.fill(&mut random).is_err() {
                    Err("no random bytes for the ClientHello".to_string())
                } else {
                    hello::offer(&mut stream, version, sni, random, timeout).await
                }
            }
            Err(e) => Err(e),
        };
        let (accepts, said) = match answer {
            Ok(Answer::Accepted) => (
                Some(true),
                Some(format!("{} ServerHello", hello::name(version))),
            ),
            Ok(Answer::Refused(how)) => (Some(false), Some(how)),
            Err(e) => {
                out.unknown(&[attr], &e);
                (None, None)
            }
        };
        if version == hello::TLS10 {
            (out.accepts_tls10, out.tls10_answer) = (accepts, said);
        } else {
            (out.accepts_tls11, out.tls11_answer) = (accepts, said);
        }
    }

    // 4. HSTS, from the HTTPS answer (the certificate's verdict is above, not enforced here).
    if out.tls_error.is_none() {
        let client = http.verifier(now).and_then(|v| http.client(Some(v)));
        let answer = match client {
            Ok(c) => {
                crate::metrics::api_request("http");
                c.get(url.clone()).send().await.map_err(|e| describe(&e))
            }
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok(response) => {
                out.https_status = Some(response.status().as_u16());
                if let Some(value) = response
                    .headers()
                    .get(reqwest::header::STRICT_TRANSPORT_SECURITY)
                {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    let (max_age, subdomains) = parse_hsts(&value);
                    out.hsts_max_age = max_age;
                    out.hsts_include_subdomains = Some(subdomains);
                    out.hsts = Some(value);
                }
            }
            Err(e) => out.unknown(
                &["hsts_max_age", "hsts_include_subdomains"],
                &format!("GET {url} failed: {e}"),
            ),
        }
    }

    // 5. Plain http://, not followed.
    plain_http(http, url, &mut out).await;
    out
}

/// A refused connection, a name that does not resolve or a timeout: the endpoint could not be
/// asked at all.
struct Fault(String);

struct Session {
    version: String,
    suite: String,
    certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// Resolves `host` (bounded by `timeout`).
async fn resolve(
    host: &url::Host<&str>,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, String> {
    match host {
        url::Host::Ipv4(ip) => Ok(vec![SocketAddr::new((*ip).into(), port)]),
        url::Host::Ipv6(ip) => Ok(vec![SocketAddr::new((*ip).into(), port)]),
        url::Host::Domain(d) => {
            match tokio::time::timeout(timeout, tokio::net::lookup_host((*d, port))).await {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.is_empty() {
                        Err(format!("cannot resolve {d}: no address"))
                    } else {
                        Ok(addrs)
                    }
                }
                Ok(Err(e)) => Err(format!("cannot resolve {d}: {e}")),
                Err(_) => Err(format!("cannot resolve {d}: timed out after {timeout:?}")),
            }
        }
    }
}

/// A TCP connection to the first of `addrs` that accepts one.
async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
            Err(_) => last = format!("cannot connect to {addr}: timed out after {timeout:?}"),
        }
    }
    Err(last)
}

/// A rustls handshake offering `versions`. Outer Err: the endpoint could not be asked (a
/// fault); inner Err: it refused the handshake (an answer).
async fn handshake(
    http: &Http,
    addrs: &[SocketAddr],
    name: &rustls::pki_types::ServerName<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    verifier: Arc<super::Recording>,
) -> Result<Result<Session, String>, Fault> {
    let config = http
        .tls_config(versions, verifier)
        .map_err(|e| Fault(e.to_string()))?;
    let stream = connect(addrs, http.timeout).await.map_err(Fault)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(http.timeout, connector.connect(name.clone(), stream)).await {
        Err(_) => Err(Fault(format!(
            "TLS handshake timed out after {:?}",
            http.timeout
        ))),
        Ok(Err(e)) => Ok(Err(describe(&e))),
        Ok(Ok(tls)) => {
            let (_, conn) = tls.get_ref();
            let version = match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
                Some(v) => format!("{v:?}"),
                None => "unknown".to_string(),
            };
            let suite = conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default();
            let certificates = conn
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            Ok(Ok(Session {
                version,
                suite,
                certificates,
            }))
        }
    }
}

/// The certificate attributes, from the recorded verdict and the leaf.
fn inspect(
    out: &mut Endpoint,
    session: &Session,
    verdict: Option<Result<(), rustls::Error>>,
    name: &rustls::pki_types::ServerName<'static>,
    now: DateTime<Utc>,
) {
    match verdict {
        Some(Ok(())) => {
            out.certificate_valid = Some(true);
        }
        Some(Err(e)) => {
            out.certificate_valid = Some(false);
            out.certificate_error = Some(certificate_error(&e));
        }
        None => out.unknown(
            &["certificate_valid", "certificate_error"],
            "no certificate was verified",
        ),
    }
    let Some(leaf) = session.certificates.first() else {
        out.unknown(
            &[
                "hostname_matches",
                "days_to_expiry",
                "not_after",
                "issuer",
                "subject",
            ],
            "the endpoint presented no certificate",
        );
        return;
    };
    out.hostname_matches = Some(
        rustls::server::ParsedCertificate::try_from(leaf)
            .and_then(|parsed| rustls::client::verify_server_name(&parsed, name))
            .is_ok(),
    );
    match x509_parser::parse_x509_certificate(leaf.as_ref()) {
        Ok((_, cert)) => {
            let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0);
            out.not_after = not_after;
            out.days_to_expiry = not_after.map(|t| (t - now).num_seconds().div_euclid(86_400));
            out.issuer = Some(cert.issuer().to_string());
            out.subject = Some(cert.subject().to_string());
        }
        Err(e) => out.unknown(
            &["days_to_expiry", "not_after", "issuer", "subject"],
            &format!("the leaf certificate cannot be read: {e}"),
        ),
    }
}

/// `max-age` (null if absent or malformed) and `includeSubDomains` of a
/// Strict-Transport-Security value.
pub(crate) fn parse_hsts(value: &str) -> (Option<i64>, bool) {
    let mut max_age = None;
    let mut subdomains = false;
    for directive in value.split(';') {
        let directive = directive.trim();
        let (key, val) = match directive.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if key.eq_ignore_ascii_case("max-age") {
            max_age = val.and_then(|v| v.parse::<i64>().ok());
        } else if key.eq_ignore_ascii_case("includesubdomains") {
            subdomains = true;
        }
    }
    (max_age, subdomains)
}

/// `GET http://HOST:plain_http_port/`: a redirect to https:// or not. Nothing listening is an
/// answer (no redirect); no answer in time is unknown.
async fn plain_http(http: &Http, url: &url::Url, out: &mut Endpoint) {
    let mut plain = url.clone();
    let ready = plain.set_scheme("http").is_ok()
        && plain.set_port(Some(http.source.plain_http_port)).is_ok();
    if !ready {
        out.unknown(&["http_redirects_to_https"], "cannot form the http:// URL");
        return;
    }
    plain.set_path("/");
    plain.set_query(None);
    plain.set_fragment(None);
    let client = match http.client(None) {
        Ok(c) => c,
        Err(e) => {
            out.unknown(&["http_redirects_to_https"], &e.to_string());
            return;
        }
    };
    crate::metrics::api_request("http");
    match client.get(plain.clone()).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
            out.http_redirects_to_https = Some(
                matches!(status, 301 | 302 | 307 | 308)
                    && location.as_deref().is_some_and(|l| {
                        l.get(..8)
                            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
                    }),
            );
            out.http_status = Some(status);
            out.http_location = location;
        }
        Err(e) if refused(&e) => {
            out.http_redirects_to_https = Some(false);
            out.http_error = Some(format!(
                "GET {plain}: connection refused (nothing serves plain http)"
            ));
        }
        Err(e) => {
            let why = format!("GET {plain} failed: {}", describe(&e));
            out.unknown(
                &["http_redirects_to_https", "http_status", "http_location"],
                &why,
            );
            out.http_error = Some(why);
        }
    }
}

/// Whether `e` is a refused TCP connection.
fn refused(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_values() {
        assert_eq!(
            parse_hsts("max-age=31536000; includeSubDomains"),
            (Some(31536000), true)
        );
        assert_eq!(parse_hsts("max-age=\"600\""), (Some(600), false));
        assert_eq!(
            parse_hsts("includesubdomains; MAX-AGE = 0 ; preload"),
            (Some(0), true)
        );
        assert_eq!(parse_hsts("max-age=soon"), (None, false));
    }
}
