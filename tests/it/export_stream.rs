//! Evidence bundles over HTTP (`/dashboard/export`, `GET /api/v1/export`): streamed as they
//! are made, byte for byte the bundle `trellis export` writes for the same period; audited
//! before any byte goes out, and not made at all when the audit line cannot be written
//! (SQLite and PostgreSQL, dashboard, API and CLI); a failure midway is an aborted download
//! whose bytes are no zip.

use crate::common::{app, staff};

use std::io::Cursor;

use app::{TestApp, client, plant, spawn_app_with};
use chrono::{Duration, NaiveDate};
use reqwest::StatusCode;
use trellis::auth::Role;
use trellis::export::{ExportRequest, verify_bundle};
use trellis::model::Status;
use trellis::store::testing;

const PERIOD: &str = "from=2026-11-01&to=2026-11-30&framework=soc2";

/// The example app (SQLite, or the PostgreSQL database `pg_url`) with a second, later run,
/// an auditor `aud` and their API token.
async fn app_with_auditor(pg_url: Option<&str>) -> (TestApp, String) {
    let env: Vec<(&str, &str)> = pg_url
        .map(|u| vec![("TRELLIS__DATABASE_URL", u)])
        .unwrap_or_default();
    let app = spawn_app_with(&env, app::example_now()).await;
    plant(
        &app,
        "background-checks",
        Status::Pass,
        app.now + Duration::hours(1),
    )
    .await;
    let id = staff::add_user(&app, "aud", Role::Auditor).await;
    let token = staff::api_token(&app, id).await;
    (app, token)
}

async fn api_get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn page_get(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// `trellis export` of [`PERIOD`] into `out`: exit code and output.
fn cli_export(app: &TestApp, out: &std::path::Path) -> (Option<i32>, String) {
    crate::export::cli(
        app,
        &[
            "export",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--framework",
            "soc2",
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

async fn exports_audited(app: &TestApp) -> usize {
    app.store
        .audit_log(Some("export"), 10, 0)
        .await
        .unwrap()
        .len()
}

/// A streamed download: a body without a declared length, sent in chunks.
fn assert_streamed(resp: &reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    assert!(resp.headers().get("content-length").is_none());
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("trellis-evidence-2026-11-01-2026-11-30.zip")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_api_stream_the_bundle_the_cli_writes() {
    let (app, token) = app_with_auditor(None).await;
    let out = app.dir.path().join("cli.zip");
    let (code, text) = cli_export(&app, &out);
    assert_eq!(code, Some(0), "{text}");
    let from_cli = std::fs::read(&out).unwrap();

    let resp = api_get(&app, &token, &format!("/api/v1/export?{PERIOD}")).await;
    assert_streamed(&resp);
    let from_api = resp.bytes().await.unwrap();

    let cookie = staff::session_cookie(&app, "aud").await;
    let resp = page_get(&app, &cookie, &format!("/dashboard/export?{PERIOD}")).await;
    assert_streamed(&resp);
    let from_dashboard = resp.bytes().await.unwrap();

    let request = ExportRequest {
        from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        controls: Vec::new(),
        framework: Some("soc2".into()),
        default_freshness: app.loaded.config.default_freshness.get(),
    };
    let in_memory = crate::export::bundle(&app, &request).await;
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();

    assert!(from_cli.len() > 10_000, "{}", from_cli.len());
    assert!(
        from_api[..] == from_cli[..],
        "the API's bundle is the CLI's"
    );
    assert!(
        from_dashboard[..] == from_cli[..],
        "the dashboard's is the CLI's"
    );
    assert!(
        in_memory == from_cli,
        "and export() into memory writes it too"
    );
    let verified = verify_bundle(
        Cursor::new(from_api.to_vec()),
        Some(&signer.public_key()),
        &[],
    )
    .unwrap();
    assert!(verified.files > 20);

    // Each export is audited, as who made it and from where.
    let audit = app.store.audit_log(Some("export"), 10, 0).await.unwrap();
    let lines: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|a| {
            (
                a.actor.as_str(),
                a.target.as_str(),
                a.detail["via"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("aud", "bundle:2026-11-01..2026-11-30", "dashboard"),
            ("aud", "bundle:2026-11-01..2026-11-30", "api"),
            ("auditor-ann", "bundle:2026-11-01..2026-11-30", "cli"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_bad_requests_before_exporting() {
    let (app, token) = app_with_auditor(None).await;
    for (query, says) in [
        ("", "period"),
        ("from=2026-11-01", "period"),
        ("from=2026-11-01&to=yesterday", "`to` must be a date"),
        ("from=2026-12-01&to=2026-11-01", "is after"),
        (
            "from=2026-11-01&to=2026-11-30&control=no-such",
            "unknown control",
        ),
        (
            "from=2026-11-01&to=2026-11-30&framework=no-such",
            "no control maps",
        ),
    ] {
        let resp = api_get(&app, &token, &format!("/api/v1/export?{query}")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    // Several controls, repeated.
    let resp = api_get(
        &app,
        &token,
        "/api/v1/export?from=2026-11-01&to=2026-11-30&control=background-checks&control=code-of-conduct",
    )
    .await;
    assert_streamed(&resp);
    let bytes = resp.bytes().await.unwrap();
    let zip = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).unwrap();
    let controls: std::collections::BTreeSet<&str> = zip
        .file_names()
        .filter_map(|n| n.strip_prefix("controls/")?.split('/').next())
        .collect();
    assert_eq!(
        controls.into_iter().collect::<Vec<_>>(),
        ["background-checks", "code-of-conduct"]
    );
    // Only the valid request was audited.
    assert_eq!(exports_audited(&app).await, 1);
    // A viewer may not export.
    let vic = staff::add_user(&app, "vic", Role::Viewer).await;
    let vic = staff::api_token(&app, vic).await;
    let resp = api_get(&app, &vic, &format!("/api/v1/export?{PERIOD}")).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

/// A trigger that refuses the audit log's `export` lines.
async fn refuse_export_audit(store: &trellis::store::Store, pg: bool) {
    let sql: &[&str] = if pg {
        &[
            "CREATE FUNCTION refuse_export_audit() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'the audit log refuses exports (test)'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_export_audit BEFORE INSERT ON audit_log FOR EACH ROW \
             WHEN (NEW.action = 'export') EXECUTE FUNCTION refuse_export_audit()",
        ]
    } else {
        &[
            "CREATE TRIGGER refuse_export_audit BEFORE INSERT ON audit_log \
           WHEN NEW.action = 'export' \
           BEGIN SELECT RAISE(ABORT, 'the audit log refuses exports (test)'); END",
        ]
    };
    for s in sql {
        testing::execute_sql(store, s).await.unwrap();
    }
}

async fn without_audit_no_export(pg_url: Option<&str>) {
    let (app, token) = app_with_auditor(pg_url).await;
    let cookie = staff::session_cookie(&app, "aud").await;
    refuse_export_audit(&app.store, pg_url.is_some()).await;

    let resp = api_get(&app, &token, &format!("/api/v1/export?{PERIOD}")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("audit log"),
        "{body}"
    );

    let resp = page_get(&app, &cookie, &format!("/dashboard/export?{PERIOD}")).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.text().await.unwrap().contains("audit log"));

    let out = app.dir.path().join("refused.zip");
    let (code, text) = cli_export(&app, &out);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("audit log"), "{text}");
    assert!(!out.exists(), "no bundle without its audit line");
    let leftovers: Vec<_> = std::fs::read_dir(app.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    assert_eq!(exports_audited(&app).await, 0);
    // Once the audit log takes it, the export is made.
    let drop = if pg_url.is_some() {
        "DROP TRIGGER refuse_export_audit ON audit_log"
    } else {
        "DROP TRIGGER refuse_export_audit"
    };
    testing::execute_sql(&app.store, drop).await.unwrap();
    let resp = api_get(&app, &token, &format!("/api/v1/export?{PERIOD}")).await;
    assert_streamed(&resp);
    assert!(resp.bytes().await.unwrap().len() > 10_000);
    assert_eq!(exports_audited(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_audit_line_no_export_is_made_sqlite() {
    without_audit_no_export(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_audit_line_no_export_is_made_postgres() {
    let Ok(server) = std::env::var("TRELLIS_TEST_POSTGRES_URL") else {
        eprintln!("TRELLIS_TEST_POSTGRES_URL is not set: the PostgreSQL variant did not run");
        return;
    };
    let name = format!("trellis_t_{}", uuid::Uuid::new_v4().simple());
    let url = testing::create_postgres_database(&server, &name)
        .await
        .unwrap();
    let run = tokio::spawn(async move { without_audit_no_export(Some(&url)).await });
    let result = run.await;
    if let Err(e) = testing::drop_postgres_database(&server, &name).await {
        eprintln!("warning: could not drop test database {name}: {e}");
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The export fails after it has sent part of the bundle (a piece of evidence the database
/// can no longer read): the response is cut off, not completed, and what came is no zip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_failing_midway_is_an_aborted_download() {
    let (app, token) = app_with_auditor(None).await;
    testing::execute_sql(
        &app.store,
        "UPDATE evidence SET content = '{not json' WHERE id = (SELECT MAX(id) FROM evidence)",
    )
    .await
    .unwrap();
    let resp = api_get(&app, &token, "/api/v1/export?from=2026-11-01&to=2026-11-30").await;
    assert_streamed(&resp);
    let mut resp = resp;
    let mut got = Vec::new();
    let failed = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(
        failed,
        "the download must fail, not end ({} bytes)",
        got.len()
    );
    assert!(
        !got.is_empty(),
        "part of the bundle was sent before the failure"
    );
    assert!(
        zip::ZipArchive::new(Cursor::new(got)).is_err(),
        "what was sent is no zip"
    );
}
