#![allow(dead_code)] // each test binary uses part of it
//! Shared by the AWS tests: a config pointing every AWS API at a test endpoint with static
//! credentials, and a run of the shipped AWS controls against it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use trellis::catalog::{self, Catalog, Control};
use trellis::config::Loaded;
use trellis::model::{ControlOutcome, Finding, Status};
use trellis::probes::ProbeContext;
use trellis::runner::{self, NoSink, RunReport};

/// The shipped controls that read AWS evidence.
pub const AWS_CONTROLS: &[&str] = &[
    "complex-passwords",
    "administrative-access-is-restricted",
    "access-to-product-is-restricted",
    "least-privilege-in-use",
    "unique-access-ids",
    "restricted-port-configurations",
    "encryption-at-rest",
    "network-traffic-monitoring",
    "baseline-configurations",
    "asset-inventory",
    "automated-backup-process",
];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn catalog() -> Catalog {
    catalog::load(&repo().join("controls")).unwrap_or_else(|d| panic!("{d}"))
}

/// Writes static test credentials and a config whose only source is AWS, every API at
/// `endpoint`. `extra` is appended to `sources.aws` (indented two spaces, e.g. timeouts).
pub fn loaded(dir: &Path, endpoint: &str, regions: &[&str], extra: &str) -> Loaded {
    let creds = dir.join("aws-credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = AKIATESTTESTTESTTEST\naws_secret_access_key = testing-secret\n",
    )
    .unwrap();
    let text = format!(
        "controls_dir: {controls}\nsources:\n  aws:\n{extra}    accounts:\n      - name: acme\n        regions: [{regions}]\n        endpoint_url: {endpoint}\n        credentials_file: {creds}\n",
        controls = repo().join("controls").display(),
        regions = regions.join(", "),
        creds = creds.display(),
    );
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, &text).unwrap();
    trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Runs `ids` (all AWS controls when empty) as one run whose clock reads `now`, with the
/// configuration's catalog (and exceptions).
pub async fn run(loaded: &Loaded, ids: &[&str], now: DateTime<Utc>) -> RunReport {
    let catalog = catalog::from_config(loaded, now.date_naive()).unwrap_or_else(|d| panic!("{d}"));
    let ids = if ids.is_empty() { AWS_CONTROLS } else { ids };
    let controls: Vec<&Control> = ids
        .iter()
        .map(|id| catalog.get(id).unwrap_or_else(|| panic!("no control {id}")))
        .collect();
    let ctx = ProbeContext::for_run(loaded, now);
    runner::execute(&ctx, &controls, 8, &NoSink, &|_, _| {})
        .await
        .expect("run")
}

pub fn outcome<'a>(report: &'a RunReport, id: &str) -> &'a ControlOutcome {
    report
        .outcomes
        .iter()
        .find(|o| o.control_id == id)
        .unwrap_or_else(|| panic!("no outcome for {id}"))
}

/// The findings of `id` with `status`.
pub fn findings<'a>(report: &'a RunReport, id: &str, status: Status) -> Vec<&'a Finding> {
    outcome(report, id)
        .findings
        .iter()
        .filter(|f| f.status == status)
        .collect()
}

/// Asserts the resources of `id` with `status` are exactly `expected` (by substring of the
/// resource id, in any order).
#[track_caller]
pub fn assert_resources(report: &RunReport, id: &str, status: Status, expected: &[&str]) {
    let got: Vec<&str> = findings(report, id, status)
        .iter()
        .map(|f| f.resource.as_str())
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "{id}: {status} resources {got:#?}, expected {expected:?}"
    );
    for want in expected {
        assert!(
            got.iter().any(|g| g.contains(want)),
            "{id}: no {status} finding for {want} in {got:#?}"
        );
    }
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}
