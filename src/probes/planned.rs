//! Planned probes: system probes that controls already name, but that this version of Trellis
//! cannot run yet.
//!
//! A control that claims a property of systems (`claim: system`) must be checked on those
//! systems. Where no probe reads the system yet (TLS endpoints, load balancers, monitoring,
//! account environments, published pages), the control names the probe that will, and until
//! that probe ships its check is `error` ("not available in this version"), so the control
//! shows *not verified* — never green on the strength of a document's wording.
//!
//! Each entry below documents the parameters and attributes the real probe provides, so the
//! controls naming them compile and are checked like any other (unknown attributes are
//! refused). Replacing an entry with its real implementation changes no control file.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError};

/// Planned probes without parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Parameters of `http.pages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Only the page with this key in `sources.http.pages` (e.g. `privacy-policy`); every
    /// configured page when absent.
    #[serde(default)]
    pub page: Option<String>,
}

/// Declares a planned probe: its contract (name, source, attributes, parameters, example),
/// and a collection that always reports that the probe is not available yet.
macro_rules! planned {
    (
        $(#[$doc:meta])*
        $ty:ident, $name:literal, $source:literal, $params:ty,
        summary: $summary:literal,
        example: $example:literal,
        attributes: [$($attr:expr),* $(,)?]
    ) => {
        $(#[$doc])*
        pub struct $ty;

        impl Probe for $ty {
            const NAME: &'static str = $name;
            const SOURCE: &'static str = $source;
            const KIND: EvidenceKind = EvidenceKind::System;
            const SUMMARY: &'static str = concat!("Planned, not available in this version: ", $summary);
            const ATTRIBUTES: &'static [Attribute] = &[$($attr),*];
            const EXAMPLE: &'static str = $example;

            type Params = $params;

            async fn collect(_: &ProbeContext, _: &$params) -> Result<Collected, ProbeError> {
                Err(ProbeError::NotAvailable($name))
            }
        }
    };
}

planned! {
    /// `http.tls`: the company's public endpoints, as a TLS client sees them.
    Tls, "http.tls", "http", NoParams,
    summary: "each endpoint in sources.http.endpoints: the TLS versions it accepts (TLS 1.0 and 1.1 offered, not just negotiated), certificate chain, hostname and expiry, the http:// redirect and HSTS.",
    example: "probe: http.tls\nassert: \"!accepts_tls10 && !accepts_tls11 && certificate_valid && hostname_matches\"\n",
    attributes: [
        attr!("url", String, "the endpoint's URL"),
        attr!("accepts_tls10", Bool, "a TLS 1.0 handshake offered to it succeeds"),
        attr!("accepts_tls11", Bool, "a TLS 1.1 handshake offered to it succeeds"),
        attr!("negotiated_version", String, "the version a modern client negotiates (`TLSv1.3`)"),
        attr!("cipher_suite", String, "the negotiated cipher suite"),
        attr!("certificate_valid", Bool, "the chain verifies against the system roots plus ca_file"),
        attr!("hostname_matches", Bool, "the certificate names the endpoint's host"),
        attr!("days_to_expiry", Int, "whole days until the leaf certificate expires"),
        attr!("http_redirects_to_https", Bool, "plain http:// answers with a redirect to https://"),
        attr!("hsts_max_age", Int, "Strict-Transport-Security max-age in seconds, null if absent"),
    ]
}

planned! {
    /// `http.pages`: public documents that must be published.
    Pages, "http.pages", "http", PageParams,
    summary: "each page in sources.http.pages: final URL after redirects, status, HTTPS, content type, title, SHA-256 of the body and when it last changed.",
    example: "probe: http.pages\nwith: {page: privacy-policy}\nrequire_resources: true\nassert: status == 200 && https\n",
    attributes: [
        attr!("page", String, "the page's key in sources.http.pages"),
        attr!("url", String, "the configured URL"),
        attr!("final_url", String, "the URL after redirects"),
        attr!("status", Int, "the final HTTP status"),
        attr!("https", Bool, "the final URL is served over HTTPS"),
        attr!("content_type", String, "the Content-Type header"),
        attr!("title", String, "the HTML title, null if none"),
        attr!("sha256", String, "hex SHA-256 of the body"),
        attr!("changed_at", Timestamp, "when the body last changed, across runs"),
    ]
}
