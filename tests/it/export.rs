//! Auditor export bundles, end to end: reproducible bytes, an offline check that names the
//! first modified, removed or added file, OSCAL valid against NIST's schema, populations with
//! the documented columns, and the CLI around it; and `trellis verify` on a live database.

use crate::common::app;

use std::io::{Cursor, Read, Write};

use app::{TestApp, plant, repo, spawn_app};
use chrono::{Duration, NaiveDate};
use trellis::export::{BundleProblem, COLUMNS, ExportRequest, export, verify_bundle};
use trellis::model::Status;

fn request() -> ExportRequest {
    ExportRequest {
        from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        controls: Vec::new(),
        framework: None,
        default_freshness: Duration::days(1),
    }
}

/// The bundle `export()` writes into memory.
pub(crate) async fn bundle(app: &TestApp, request: &ExportRequest) -> Vec<u8> {
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();
    let (out, _) = export(
        &app.store,
        &app.catalog,
        &signer,
        request,
        Cursor::new(Vec::new()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    out.into_inner()
}

/// The bundle's entries, in order.
fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut out = Vec::new();
            f.read_to_end(&mut out).unwrap();
            (f.name().to_string(), out)
        })
        .collect()
}

/// A zip of these entries (what someone rewriting a bundle would make).
fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

async fn app_with_two_runs() -> TestApp {
    let app = spawn_app().await;
    // A second, later result of one control: a fix.
    plant(
        &app,
        "background-checks",
        Status::Pass,
        app.now + Duration::hours(1),
    )
    .await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_are_reproducible_and_verify_offline() {
    let app = app_with_two_runs().await;
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();
    let first = bundle(&app, &request()).await;
    let second = bundle(&app, &request()).await;
    if first != second {
        let (a, b) = (entries(&first), entries(&second));
        let names = |e: &[(String, Vec<u8>)]| e.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let (na, nb) = (names(&a), names(&b));
        let only = |x: &[String], y: &[String]| {
            x.iter()
                .filter(|n| !y.contains(n))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert!(
            na == nb,
            "two exports of the same data hold different files: only in the first {:?}, only in the second {:?}",
            only(&na, &nb),
            only(&nb, &na)
        );
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(
                x == y,
                "two exports of the same data differ in {name}:\n{}\n---\n{}",
                String::from_utf8_lossy(x),
                String::from_utf8_lossy(y)
            );
        }
        panic!("two exports of the same data differ in their zip framing");
    }

    let files = entries(&first);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "entries are in path order");
    for expected in [
        "manifest.json",
        "manifest.sig",
        "oscal/assessment-results.json",
        "summary.html",
        "controls/background-checks/population.csv",
        "controls/background-checks/population.json",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("attestations/") && n.ends_with(".sig"))
    );
    assert!(names.iter().any(|n| n.starts_with("evidence/")));
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("controls/background-checks/definitions/"))
    );
    // Fixed timestamps: the day after the period.
    let mut zip = zip::ZipArchive::new(Cursor::new(first.clone())).unwrap();
    for i in 0..zip.len() {
        let f = zip.by_index(i).unwrap();
        let t = f.last_modified().unwrap();
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour()),
            (2026, 12, 1, 0),
            "{}",
            f.name()
        );
    }

    let ok = verify_bundle(Cursor::new(first.clone()), Some(&signer.public_key()), &[]).unwrap();
    assert_eq!(ok.key_id, signer.key_id());
    assert!(ok.attestations >= 1);
    // Another key: refused, naming both.
    let other = trellis::integrity::Signer::from_seed([1; 32]).public_key();
    assert!(matches!(
        verify_bundle(Cursor::new(first.clone()), Some(&other), &[]),
        Err(BundleProblem::WrongKey { .. })
    ));

    // A flipped byte in one file is named.
    let target = "controls/background-checks/population.csv";
    let mut tampered = files.clone();
    let (_, bytes) = tampered.iter_mut().find(|(n, _)| n == target).unwrap();
    let pos = bytes.len() / 2;
    bytes[pos] ^= 0x01;
    match verify_bundle(
        Cursor::new(rezip(&tampered)),
        Some(&signer.public_key()),
        &[],
    ) {
        Err(BundleProblem::Modified { path, .. }) => assert_eq!(path, target),
        other => panic!("{other:?}"),
    }
    // A removed file is named.
    let evidence = names
        .iter()
        .find(|n| n.starts_with("evidence/"))
        .unwrap()
        .to_string();
    let removed: Vec<_> = files
        .iter()
        .filter(|(n, _)| *n != evidence)
        .cloned()
        .collect();
    assert_eq!(
        verify_bundle(
            Cursor::new(rezip(&removed)),
            Some(&signer.public_key()),
            &[]
        )
        .unwrap_err(),
        BundleProblem::Missing(evidence.clone())
    );
    // An added file is named.
    let mut added = files.clone();
    added.push(("evidence/extra.json".into(), b"{}".to_vec()));
    assert_eq!(
        verify_bundle(Cursor::new(rezip(&added)), Some(&signer.public_key()), &[]).unwrap_err(),
        BundleProblem::Unlisted("evidence/extra.json".into())
    );
    // A rewritten manifest (to hide an edit) breaks the signature.
    let mut forged = files.clone();
    let (_, manifest) = forged
        .iter_mut()
        .find(|(n, _)| n == "manifest.json")
        .unwrap();
    let text =
        String::from_utf8(manifest.clone())
            .unwrap()
            .replacen("\"size\": ", "\"size\":  ", 1);
    *manifest = text.into_bytes();
    assert!(matches!(
        verify_bundle(Cursor::new(rezip(&forged)), Some(&signer.public_key()), &[]),
        Err(BundleProblem::BadSignature { .. })
    ));
    // A run attestation re-signed by someone else is refused.
    let mut attest = files.clone();
    let (_, sig) = attest
        .iter_mut()
        .find(|(n, _)| n.ends_with(".sig") && n.starts_with("attestations/"))
        .unwrap();
    *sig = trellis::integrity::Signer::from_seed([2; 32])
        .sign(b"x")
        .into_bytes();
    assert!(verify_bundle(Cursor::new(rezip(&attest)), Some(&signer.public_key()), &[]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oscal_is_valid_against_nist_schema() {
    let app = app_with_two_runs().await;
    let files = entries(&bundle(&app, &request()).await);
    let oscal: serde_json::Value = serde_json::from_slice(
        &files
            .iter()
            .find(|(n, _)| n == "oscal/assessment-results.json")
            .unwrap()
            .1,
    )
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("tests/fixtures/oscal/oscal_assessment-results_schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&oscal)
        .take(10)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let result = &oscal["assessment-results"]["results"][0];
    assert_eq!(result["start"], "2026-11-01T00:00:00Z");
    let findings = result["findings"].as_array().unwrap();
    // Background checks failed at the first run and passed at the second: not satisfied.
    let cc14 = findings
        .iter()
        .find(|f| f["target"]["target-id"] == "soc2_2017_CC1.4")
        .expect("a finding for CC1.4");
    assert_eq!(cc14["target"]["status"]["state"], "not-satisfied");
    assert!(
        cc14["description"]
            .as_str()
            .unwrap()
            .contains("Background Checks")
    );
    assert!(!result["observations"].as_array().unwrap().is_empty());
    // And the schema is not a rubber stamp: a broken document fails it.
    let mut broken = oscal.clone();
    broken["assessment-results"]["results"][0]["findings"][0]["target"]["status"]["state"] =
        "maybe".into();
    assert!(!validator.is_valid(&broken));
}

/// OSCAL's *satisfied* means fresh and passing through the whole period; otherwise the
/// finding says why and when. One control (background checks: freshness 2 days, SOC 2
/// CC1.4), a period of 31 days per case with 31 empty days between (so one case's
/// evaluations are stale by the next one's start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oscal_says_why_an_objective_is_not_satisfied() {
    struct Case {
        name: &'static str,
        /// (day of the month, hour, status); day 0 is the last day of the month before.
        plants: Vec<(i64, i64, Status)>,
        state: &'static str,
        reason: &'static str,
        /// The reason token, and a part of the remarks.
        token: Option<&'static str>,
        remarks: &'static str,
    }
    use Status::*;
    let daily = |from: i64, to: i64| (from..=to).map(|d| (d, 0, Pass)).collect::<Vec<_>>();
    let cases = [
        Case {
            name: "a healthy month",
            plants: daily(1, 31),
            state: "satisfied",
            reason: "pass",
            token: None,
            remarks: "evaluated, fresh and passing, throughout the period",
        },
        Case {
            name: "the only evaluation on the first day",
            plants: vec![(1, 0, Pass)],
            state: "not-satisfied",
            reason: "other",
            token: Some("gap"),
            remarks: "gap: not evaluated from {1T00} to {end} (",
        },
        Case {
            name: "a late start",
            plants: daily(4, 31),
            state: "not-satisfied",
            reason: "other",
            token: Some("late-start"),
            remarks: "late start: nothing fresh (within 2d) at the period's start; first evaluated at {4T00}",
        },
        Case {
            name: "a failure",
            plants: daily(1, 31)
                .into_iter()
                .map(|(d, h, s)| (d, h, if d == 10 { Fail } else { s }))
                .collect(),
            state: "not-satisfied",
            reason: "fail",
            token: Some("failure"),
            remarks: "failure: evaluated fail at {10T00}",
        },
        Case {
            name: "a failure stored after later passes (a run as of an earlier time)",
            plants: daily(1, 31)
                .into_iter()
                .chain(std::iter::once((10, 12, Fail)))
                .collect(),
            state: "not-satisfied",
            reason: "fail",
            token: Some("failure"),
            remarks: "failure: evaluated fail at {10T12}",
        },
        Case {
            name: "a gap",
            plants: daily(1, 11).into_iter().chain(daily(16, 31)).collect(),
            state: "not-satisfied",
            reason: "other",
            token: Some("gap"),
            remarks: "gap: not evaluated from {11T00} to {16T00} (5d, longer than its freshness of 2d)",
        },
        Case {
            name: "no data",
            plants: vec![],
            state: "not-satisfied",
            reason: "other",
            token: Some("no-data"),
            remarks: "no data: not evaluated in the period",
        },
        Case {
            name: "a pass before the period, still fresh at its start, counts",
            plants: std::iter::once((0, 12, Pass))
                .chain((1..=31).map(|d| (d, 10, Pass)))
                .collect(),
            state: "satisfied",
            reason: "pass",
            token: None,
            remarks: "throughout the period",
        },
    ];
    let app = spawn_app().await;
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("tests/fixtures/oscal/oscal_assessment-results_schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    for (i, case) in cases.iter().enumerate() {
        // 31 days each, 31 days apart, from 2027-01-01.
        let from = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() + Duration::days(62 * i as i64);
        let to = from + Duration::days(30);
        let start = from.and_hms_opt(0, 0, 0).unwrap().and_utc();
        for &(day, hour, status) in &case.plants {
            let at = start + Duration::days(day - 1) + Duration::hours(hour);
            app::plant(&app, "background-checks", status, at).await;
        }
        let req = ExportRequest {
            from,
            to,
            controls: vec!["background-checks".into()],
            ..request()
        };
        let (out, _) = export(
            &app.store,
            &app.catalog,
            &signer,
            &req,
            Cursor::new(Vec::new()),
        )
        .await
        .unwrap();
        let files = entries(&out.into_inner());
        let oscal: serde_json::Value = serde_json::from_slice(
            &files
                .iter()
                .find(|(n, _)| n == "oscal/assessment-results.json")
                .unwrap()
                .1,
        )
        .unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&oscal)
            .take(5)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {}", case.name, errors.join("\n"));
        let finding = oscal["assessment-results"]["results"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["target"]["target-id"] == "soc2_2017_CC1.4")
            .unwrap_or_else(|| panic!("{}: no finding for CC1.4", case.name))
            .clone();
        let status = &finding["target"]["status"];
        assert_eq!(status["state"], case.state, "{}: {finding:#}", case.name);
        assert_eq!(status["reason"], case.reason, "{}: {finding:#}", case.name);
        let tokens: Vec<&str> = finding["target"]["props"]
            .as_array()
            .map(|props| {
                props
                    .iter()
                    .filter(|p| p["name"] == "not-satisfied-reason")
                    .filter_map(|p| p["value"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            tokens,
            case.token.into_iter().collect::<Vec<_>>(),
            "{}",
            case.name
        );
        // `{dThh}` is that day and hour of the case's period; `{end}` the period's end.
        let mut expected = case.remarks.to_string();
        for day in 1..=31 {
            for hour in [0, 12] {
                let t = start + Duration::days(day - 1) + Duration::hours(hour);
                expected = expected.replace(
                    &format!("{{{day}T{hour:02}}}"),
                    &t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                );
            }
        }
        expected = expected.replace(
            "{end}",
            &(start + Duration::days(31))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        );
        let remarks = status["remarks"].as_str().unwrap_or_default();
        assert!(
            remarks.contains(&expected),
            "{}: {expected:?} not in {remarks:?}",
            case.name
        );
        if case.state == "not-satisfied" {
            assert!(
                remarks.starts_with("background-checks: not satisfied, "),
                "{remarks}"
            );
            assert!(
                finding["description"].as_str().unwrap().contains(&expected),
                "{}: the description says it too",
                case.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn populations_have_the_documented_columns() {
    let app = app_with_two_runs().await;
    let req = ExportRequest {
        controls: vec!["background-checks".into()],
        ..request()
    };
    let files = entries(&bundle(&app, &req).await);
    let csv_bytes = &files
        .iter()
        .find(|(n, _)| n == "controls/background-checks/population.csv")
        .unwrap()
        .1;
    let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(headers, COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let json: serde_json::Value = serde_json::from_slice(
        &files
            .iter()
            .find(|(n, _)| n == "controls/background-checks/population.json")
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), rows.len());
    // hr:E1021 failed at the first run; the planted second result has no findings (a row).
    let e1021: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[5] == "hr:E1021").collect();
    assert_eq!(e1021.len(), 1);
    assert_eq!(&e1021[0][6], "fail");
    assert!(rows.len() > 30);
    // Only the requested control is in the bundle.
    assert!(
        files
            .iter()
            .all(|(n, _)| !n.starts_with("controls/")
                || n.starts_with("controls/background-checks/"))
    );
    // A framework selects its controls.
    let cis = ExportRequest {
        framework: Some("cis-aws".into()),
        ..request()
    };
    let files = entries(&bundle(&app, &cis).await);
    let manifest: serde_json::Value =
        serde_json::from_slice(&files.iter().find(|(n, _)| n == "manifest.json").unwrap().1)
            .unwrap();
    let controls = manifest["controls"].as_array().unwrap();
    assert!(!controls.is_empty() && controls.len() < 73);
    assert!(!controls.iter().any(|c| c == "background-checks"));
}

/// `trellis ARGS` on the app's database and key, as `auditor-ann`: exit code and output.
pub(crate) fn cli(app: &TestApp, args: &[&str]) -> (Option<i32>, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
        .current_dir(repo())
        .env("TRELLIS__DATABASE_URL", &app.loaded.config.database_url)
        .env(
            "TRELLIS__SIGNING__KEY_FILE",
            app.dir.path().join("signing.key"),
        )
        .env("TRELLIS_USER", "auditor-ann")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exports_verifies_and_audits() {
    let app = app_with_two_runs().await;
    let out = app.dir.path().join("bundle.zip");
    let trellis = |args: &[&str]| cli(&app, args);
    let (code, text) = trellis(&[
        "export",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--framework",
        "soc2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();
    let key = signer.public_key().to_text();
    let (code, text) = trellis(&["verify-bundle", out.to_str().unwrap(), "--key", &key]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&signer.key_id()), "{text}");
    // One flipped byte, anywhere in a stored file: exit 1 naming it.
    let files = entries(&std::fs::read(&out).unwrap());
    let mut tampered = files.clone();
    let (name, bytes) = tampered
        .iter_mut()
        .find(|(n, _)| n == "summary.html")
        .unwrap();
    bytes[10] ^= 0x20;
    let name = name.clone();
    let bad = app.dir.path().join("bad.zip");
    std::fs::write(&bad, rezip(&tampered)).unwrap();
    let (code, text) = trellis(&["verify-bundle", bad.to_str().unwrap(), "--key", &key]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains(&format!("FAILED: {name} was modified")),
        "{text}"
    );
    // Bad arguments are usage errors.
    let (code, text) = trellis(&[
        "export",
        "--from",
        "2026-12-01",
        "--to",
        "2026-11-01",
        "--out",
        "/tmp/x.zip",
    ]);
    assert_eq!(code, Some(2));
    assert!(text.contains("is after --to"), "{text}");
    let (code, _) = trellis(&[
        "export",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--control",
        "no-such",
        "--out",
        "/tmp/x.zip",
    ]);
    assert_eq!(code, Some(2));
    // The export is in the audit log, as who ran it.
    let audit = app.store.audit_log(Some("export"), 10, 0).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "auditor-ann");
    assert_eq!(audit[0].target, "bundle:2026-11-01..2026-11-30");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trellis_verify_names_a_tampered_row() {
    let app = app_with_two_runs().await;
    let trellis = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
            .current_dir(repo())
            .env("TRELLIS__DATABASE_URL", &app.loaded.config.database_url)
            .env(
                "TRELLIS__SIGNING__KEY_FILE",
                app.dir.path().join("signing.key"),
            )
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (code, text) = trellis(&["verify"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ok: the chains are intact"), "{text}");
    let result = app
        .store
        .latest_result("background-checks")
        .await
        .unwrap()
        .unwrap();
    let n = trellis::store::testing::execute_sql(
        &app.store,
        &format!(
            "UPDATE control_results SET summary = 'all good' WHERE id = {}",
            result.id
        ),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let (code, text) = trellis(&["verify"]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains(&format!(
            "TAMPERED: control_results {}: the row was edited",
            result.id
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_gone_from_the_store_is_listed_as_missing_not_left_out_silently() {
    let app = app_with_two_runs().await;
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();
    let complete = bundle(&app, &request()).await;
    let evidence_files = |bytes: &[u8]| -> Vec<String> {
        entries(bytes)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("evidence/"))
            .collect()
    };
    let manifest_of = |bytes: &[u8]| -> trellis::export::BundleManifest {
        let (_, m) = entries(bytes)
            .into_iter()
            .find(|(n, _)| n == "manifest.json")
            .unwrap();
        serde_json::from_slice(&m).unwrap()
    };
    assert!(manifest_of(&complete).missing_evidence.is_empty());
    let summary_of = |bytes: &[u8]| -> String {
        let (_, s) = entries(bytes)
            .into_iter()
            .find(|(n, _)| n == "summary.html")
            .unwrap();
        String::from_utf8(s).unwrap()
    };
    assert!(!summary_of(&complete).contains("Evidence missing"));
    // The auditor's summary says what each control claims and what kinds of evidence back it.
    let page = summary_of(&complete);
    assert!(page.contains("<th scope=\"col\">Claim and evidence</th>"));
    assert!(
        page.contains("<td>system claim; evidence: document, system</td>"),
        "no system claim with its kinds"
    );
    assert!(page.contains("<td>procedure claim; evidence: record</td>"));
    let before = evidence_files(&complete);
    let gone = &before[before.len() / 2];
    let id: i64 = gone
        .trim_start_matches("evidence/")
        .trim_end_matches(".json")
        .parse()
        .unwrap();

    // Someone deletes a piece of evidence straight from the database.
    let n = trellis::store::testing::execute_sql(
        &app.store,
        &format!("DELETE FROM evidence WHERE id = {id}"),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);

    let (out, summary) = export(
        &app.store,
        &app.catalog,
        &signer,
        &request(),
        Cursor::new(Vec::new()),
    )
    .await
    .unwrap();
    let partial = out.into_inner();
    assert_eq!(summary.missing_evidence, 1);
    let after = evidence_files(&partial);
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.contains(gone));
    // The gap is stated where the auditor looks: the signed manifest and the summary.
    assert_eq!(manifest_of(&partial).missing_evidence, vec![id]);
    let page = summary_of(&partial);
    assert!(
        page.contains(&format!("Evidence missing from the store: 1 (ids {id})")),
        "{page}"
    );
    // The bundle is intact as made, and says what it lacks.
    let ok = verify_bundle(Cursor::new(partial), Some(&signer.public_key()), &[]).unwrap();
    assert_eq!(ok.missing_evidence, 1);
}
