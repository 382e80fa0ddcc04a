//! Outgoing HTTPS for Trellis's own requests (single sign-on, notifications): rustls with the
//! system's roots, no redirects followed, bounded time, Trellis's user agent.

use std::sync::Arc;
use std::time::Duration;

/// A client builder with those settings, `timeout` for connecting and for the whole request;
/// callers add what is theirs and build.
pub fn https_client(timeout: Duration) -> Result<reqwest::ClientBuilder, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("trellis/", env!("CARGO_PKG_VERSION"))))
}
