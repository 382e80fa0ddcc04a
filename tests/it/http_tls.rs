//! `http.tls` and the encryption-in-transit control against TLS servers the test starts on
//! loopback, each on an address of its own (127.0.0.N) with its own plain http:// answer on
//! the shared `plain_http_port`, and certificates made here: valid under the test CA given as
//! `ca_file`, expired, for another name, self-signed, near expiry; one server without HSTS,
//! one whose http:// does not redirect, one (openssl) that still accepts TLS 1.0, one that
//! refuses connections and one that never answers.

use std::path::Path;

use chrono::Utc;
use serde_json::{Value, json};
use trellis::config::Loaded;
use trellis::model::{Finding, Status};

use crate::common::aws::{repo, run};
use crate::common::http::{
    Leaf, OpensslServer, Pki, Response, free_port, handler, have_openssl, http_server,
    https_server, silent_server,
};

const CONTROL: &str = "encryption-in-transit";
const HSTS: &str = "max-age=31536000; includeSubDomains";

fn config(dir: &Path, ca_file: &Path, endpoints: &[String], plain_port: u16) -> Loaded {
    let mut text = format!(
        "controls_dir: {}\nsources:\n  http:\n    ca_file: {}\n    timeout: 2s\n    plain_http_port: {plain_port}\n    endpoints:\n",
        repo().join("controls").display(),
        ca_file.display(),
    );
    for e in endpoints {
        text.push_str(&format!("      - {e}\n"));
    }
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, &text).unwrap();
    trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// An HTTPS endpoint on `ip` presenting `leaf` (with HSTS when `hsts`), and its plain
/// http:// on `plain_port` redirecting to it when `redirect`. Returns its URL.
async fn endpoint(ip: &str, leaf: &Leaf, hsts: bool, plain_port: u16, redirect: bool) -> String {
    // The plain port is taken first: the HTTPS server's free port, picked by the system on
    // the same address, could otherwise be the one `plain_port` was free as.
    let target = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let redirect_to = target.clone();
    http_server(
        ip,
        plain_port,
        handler(move |_| match redirect_to.get().filter(|_| redirect) {
            Some(to) => Response::redirect(301, to),
            None => Response::ok("plain"),
        }),
    )
    .await;
    let addr = https_server(
        ip,
        leaf,
        handler(move |_| {
            let r = Response::ok("<title>app</title>");
            if hsts {
                r.header("Strict-Transport-Security", HSTS)
            } else {
                r
            }
        }),
    )
    .await;
    let url = format!("https://{addr}/");
    target
        .set(url.clone())
        .expect("the redirect target is set once");
    url
}

fn finding<'a>(findings: &'a [Finding], url: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.resource == url)
        .unwrap_or_else(|| panic!("no finding for {url}: {findings:#?}"))
}

#[tokio::test]
async fn endpoints_get_the_right_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca(&ca_file);
    let plain = free_port("127.0.0.11").await;

    let good = endpoint(
        "127.0.0.11",
        &pki.leaf("127.0.0.11", None, -1, 365, false),
        true,
        plain,
        true,
    )
    .await;
    let expired = endpoint(
        "127.0.0.12",
        &pki.leaf("127.0.0.12", None, -400, -10, false),
        true,
        plain,
        true,
    )
    .await;
    let wrong_host = endpoint(
        "127.0.0.13",
        &pki.leaf("127.0.0.13", Some("other.example"), -1, 365, false),
        true,
        plain,
        true,
    )
    .await;
    let self_signed = endpoint(
        "127.0.0.14",
        &pki.leaf("127.0.0.14", None, -1, 365, true),
        true,
        plain,
        true,
    )
    .await;
    let near_expiry = endpoint(
        "127.0.0.15",
        &pki.leaf("127.0.0.15", None, -300, 5, false),
        true,
        plain,
        true,
    )
    .await;
    let no_hsts = endpoint(
        "127.0.0.16",
        &pki.leaf("127.0.0.16", None, -1, 365, false),
        false,
        plain,
        true,
    )
    .await;
    let no_redirect = endpoint(
        "127.0.0.17",
        &pki.leaf("127.0.0.17", None, -1, 365, false),
        true,
        plain,
        false,
    )
    .await;
    // Nothing listens there.
    let refused = format!("https://127.0.0.19:{}/", free_port("127.0.0.19").await);
    // Accepts the connection, never answers the handshake.
    let silent = format!("https://{}/", silent_server("127.0.0.20").await);
    // Still accepts TLS 1.0 (openssl, weak ciphers allowed).
    let openssl = if have_openssl() {
        let (cert, key) = pki
            .leaf("127.0.0.18", None, -1, 365, false)
            .write(dir.path(), "legacy");
        let server = OpensslServer::start("127.0.0.18", &cert, &key).await;
        let target = format!("https://{}/", server.addr);
        let t = target.clone();
        http_server(
            "127.0.0.18",
            plain,
            handler(move |_| Response::redirect(301, &t)),
        )
        .await;
        Some((server, target))
    } else {
        eprintln!("openssl not found: the TLS 1.0 server is not tested");
        None
    };

    let mut endpoints = vec![
        good.clone(),
        expired.clone(),
        wrong_host.clone(),
        self_signed.clone(),
        near_expiry.clone(),
        no_hsts.clone(),
        no_redirect.clone(),
        refused.clone(),
        silent.clone(),
    ];
    if let Some((_, url)) = &openssl {
        endpoints.push(url.clone());
    }
    let loaded = config(dir.path(), &ca_file, &endpoints, plain);
    let report = run(&loaded, &[CONTROL], Utc::now()).await;
    let outcome = report
        .outcomes
        .iter()
        .find(|o| o.control_id == CONTROL)
        .unwrap();
    let findings: Vec<Finding> = outcome
        .findings
        .iter()
        .filter(|f| f.check == 0)
        .cloned()
        .collect();
    assert_eq!(findings.len(), endpoints.len(), "{findings:#?}");

    let f = finding(&findings, &good);
    assert_eq!(f.status, Status::Pass, "{f:#?}");
    let a = f.actual.to_value();
    assert_eq!(a["accepts_tls10"], json!(false), "{f:#?}");
    assert_eq!(a["accepts_tls11"], json!(false), "{f:#?}");
    assert_eq!(a["certificate_valid"], json!(true), "{f:#?}");
    assert_eq!(a["hostname_matches"], json!(true), "{f:#?}");
    assert_eq!(a["http_redirects_to_https"], json!(true), "{f:#?}");
    assert_eq!(a["hsts_max_age"], json!(31536000), "{f:#?}");

    let f = finding(&findings, &expired);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["certificate_valid"],
        json!(false),
        "{f:#?}"
    );
    assert!(
        f.actual.to_value()["days_to_expiry"].as_i64().unwrap() < 0,
        "{f:#?}"
    );

    let f = finding(&findings, &wrong_host);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["certificate_valid"],
        json!(false),
        "{f:#?}"
    );
    assert_eq!(
        f.actual.to_value()["hostname_matches"],
        json!(false),
        "{f:#?}"
    );

    let f = finding(&findings, &self_signed);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["certificate_valid"],
        json!(false),
        "{f:#?}"
    );
    assert_eq!(
        f.actual.to_value()["hostname_matches"],
        json!(true),
        "{f:#?}"
    );

    let f = finding(&findings, &near_expiry);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["certificate_valid"],
        json!(true),
        "{f:#?}"
    );
    let days = f.actual.to_value()["days_to_expiry"].as_i64().unwrap();
    assert!((4..=5).contains(&days), "{f:#?}");

    let f = finding(&findings, &no_hsts);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(f.actual.to_value()["hsts_max_age"], Value::Null, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["certificate_valid"],
        json!(true),
        "{f:#?}"
    );

    let f = finding(&findings, &no_redirect);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert_eq!(
        f.actual.to_value()["http_redirects_to_https"],
        json!(false),
        "{f:#?}"
    );

    // Faults are errors naming the cause, never pass or fail.
    let f = finding(&findings, &refused);
    assert_eq!(f.status, Status::Error, "{f:#?}");
    assert!(f.message.contains("refused"), "{f:#?}");
    let f = finding(&findings, &silent);
    assert_eq!(f.status, Status::Error, "{f:#?}");
    assert!(f.message.contains("timed out"), "{f:#?}");

    if let Some((_server, url)) = &openssl {
        let f = finding(&findings, url);
        assert_eq!(f.status, Status::Fail, "{f:#?}");
        assert_eq!(f.actual.to_value()["accepts_tls10"], json!(true), "{f:#?}");
        assert_eq!(
            f.actual.to_value()["certificate_valid"],
            json!(true),
            "{f:#?}"
        );
    }
}

/// The probe's own resources: the added attributes, and what the certificate error says.
#[tokio::test]
async fn the_probe_reports_versions_certificates_and_redirects() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ca_file = dir.path().join("ca.pem");
    pki.write_ca(&ca_file);
    let plain = free_port("127.0.0.21").await;
    let good = endpoint(
        "127.0.0.21",
        &pki.leaf("127.0.0.21", None, -1, 365, false),
        true,
        plain,
        true,
    )
    .await;
    let expired = endpoint(
        "127.0.0.22",
        &pki.leaf("127.0.0.22", None, -400, -10, false),
        false,
        plain,
        false,
    )
    .await;
    let wrong = endpoint(
        "127.0.0.23",
        &pki.leaf("127.0.0.23", Some("other.example"), -1, 365, false),
        true,
        plain,
        true,
    )
    .await;
    let stranger = endpoint(
        "127.0.0.24",
        &pki.leaf("127.0.0.24", None, -1, 365, true),
        true,
        plain,
        true,
    )
    .await;
    // No plain http server on 127.0.0.25: nothing serves http://, which does not redirect.
    let closed = https_server(
        "127.0.0.25",
        &pki.leaf("127.0.0.25", None, -1, 365, false),
        handler(|_| Response::ok("x")),
    )
    .await;
    let closed = format!("https://{closed}/");
    let loaded = config(
        dir.path(),
        &ca_file,
        &[
            good.clone(),
            expired.clone(),
            wrong.clone(),
            stranger.clone(),
            closed.clone(),
        ],
        plain,
    );
    let ctx = trellis::probes::ProbeContext::for_run(&loaded, Utc::now());
    let planned = trellis::probes::find("http.tls")
        .unwrap()
        .plan(&Value::Null)
        .unwrap();
    let collected = planned.collect(&ctx).await.unwrap();
    let get = |url: &str| {
        collected
            .resources
            .iter()
            .find(|r| r.id == url)
            .unwrap_or_else(|| panic!("no {url}"))
            .attributes
            .clone()
    };
    let a = get(&good);
    assert_eq!(a["url"], json!(good));
    assert_eq!(a["accepts_tls12"], json!(true));
    assert_eq!(a["accepts_tls13"], json!(true));
    assert_eq!(a["negotiated_version"], json!("TLSv1.3"));
    assert!(
        a["cipher_suite"].as_str().unwrap().starts_with("TLS13_"),
        "{a:#?}"
    );
    assert_eq!(a["certificate_error"], Value::Null);
    assert_eq!(a["hsts_include_subdomains"], json!(true));
    assert_eq!(a["http_status"], json!(301));
    assert_eq!(a["http_location"], json!(good));
    assert!(
        a["issuer"].as_str().unwrap().contains("Trellis Test CA"),
        "{a:#?}"
    );
    assert!(
        a["subject"].as_str().unwrap().contains("127.0.0.21"),
        "{a:#?}"
    );
    assert!(a["not_after"].as_str().is_some(), "{a:#?}");

    let a = get(&expired);
    assert_eq!(a["certificate_error"], json!("expired"), "{a:#?}");
    assert_eq!(a["hsts_max_age"], Value::Null);
    assert_eq!(a["hsts_include_subdomains"], Value::Null);
    assert_eq!(a["http_status"], json!(200));
    assert_eq!(a["http_redirects_to_https"], json!(false));
    let a = get(&wrong);
    assert_eq!(
        a["certificate_error"],
        json!("not valid for the endpoint's name"),
        "{a:#?}"
    );
    let a = get(&stranger);
    assert!(
        a["certificate_error"]
            .as_str()
            .unwrap()
            .starts_with("unknown issuer"),
        "{a:#?}"
    );
    let a = get(&closed);
    assert_eq!(a["http_redirects_to_https"], json!(false), "{a:#?}");
    assert_eq!(a["http_status"], Value::Null, "{a:#?}");

    // Without the CA, the good endpoint's chain is no longer trusted.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    let other = Pki::new();
    let other_ca = bare.join("other-ca.pem");
    other.write_ca(&other_ca);
    let loaded = config(&bare, &other_ca, std::slice::from_ref(&good), plain);
    let ctx = trellis::probes::ProbeContext::for_run(&loaded, Utc::now());
    let collected = planned.collect(&ctx).await.unwrap();
    assert_eq!(
        collected.resources[0].attributes["certificate_valid"],
        json!(false)
    );
}

/// Unconfigured: the check is an error saying so (not verified), never a pass.
#[tokio::test]
async fn unconfigured_is_not_configured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trellis.yaml");
    std::fs::write(
        &path,
        format!("controls_dir: {}\n", repo().join("controls").display()),
    )
    .unwrap();
    let loaded = trellis::config::load(Some(&path)).unwrap();
    let report = run(&loaded, &[CONTROL], Utc::now()).await;
    let outcome = report
        .outcomes
        .iter()
        .find(|o| o.control_id == CONTROL)
        .unwrap();
    assert_eq!(outcome.checks[0].status, Status::Error);
    assert_eq!(
        outcome.checks[0].error.as_deref(),
        Some("source `http` is not configured")
    );
}
