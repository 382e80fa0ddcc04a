//! The public trust site end to end, as `trellis serve` serves it and `trellis render` exports
//! it: the same bytes both ways and across renders, revalidation and compression, the 90-day
//! history and the Atom feed following stored results, security.txt, the failing display, and
//! no resource-level detail anywhere public.

use crate::common::app;

use std::io::Read as _;
use std::path::Path;

use app::{
    TestApp, client, example_now, get, plant, repo, roster_identifiers, spawn_app, spawn_app_with,
};
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use trellis::model::Status;

/// The files of the site, with the routes that serve each.
const FILES: &[(&str, &str)] = &[
    ("index.html", "/"),
    ("assets/trust.css", "/assets/trust.css"),
    ("api/v1/trust.json", "/api/v1/trust.json"),
    ("feed.atom", "/feed.atom"),
    (".well-known/security.txt", "/.well-known/security.txt"),
    ("robots.txt", "/robots.txt"),
];

async fn text(app: &TestApp, path: &str) -> String {
    let resp = get(app, path).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.text().await.unwrap()
}

async fn json(app: &TestApp) -> Value {
    serde_json::from_str(&text(app, "/api/v1/trust").await).unwrap()
}

/// The site rendered by the library at `now`, as `trellis render` does.
async fn render(app: &TestApp, now: DateTime<Utc>) -> trellis::web::site::Site {
    let inputs = trellis::startup::site_inputs(&app.loaded, app.catalog.clone()).unwrap();
    inputs
        .sources()
        .load_and_render(&app.store, now)
        .await
        .unwrap()
}

fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_export_is_the_live_site_byte_for_byte() {
    let app = spawn_app().await;
    let first = render(&app, app.now).await;
    let second = render(&app, app.now).await;
    assert_eq!(
        first.files, second.files,
        "two renders of the same data differ"
    );
    let paths: Vec<&str> = first.files.iter().map(|f| f.path.as_ref()).collect();
    let (fixed, brand) = paths.split_at(FILES.len());
    assert_eq!(
        fixed,
        FILES.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        "the export's files"
    );
    // The brand's files (logo, dark logo, favicon, accent stylesheet), under hashed names.
    assert_eq!(brand.len(), 4, "{brand:?}");
    assert!(
        brand.iter().all(|p| p.starts_with("assets/brand/")),
        "{brand:?}"
    );
    for file in &first.files {
        let route = FILES
            .iter()
            .find(|(f, _)| *f == file.path)
            .map_or_else(|| format!("/{}", file.path), |(_, r)| r.to_string());
        let route = route.as_str();
        let resp = get(&app, route).await;
        assert_eq!(resp.status(), StatusCode::OK, "{route}");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            file.content_type,
            "{route}"
        );
        let body = resp.bytes().await.unwrap();
        assert!(
            body.as_ref() == file.body.as_slice(),
            "{route} differs from the export"
        );
    }
    // The aliases serve the same files.
    assert_eq!(text(&app, "/index.html").await, text(&app, "/").await);
    assert_eq!(
        text(&app, "/api/v1/trust").await,
        text(&app, "/api/v1/trust.json").await
    );

    // `trellis render` writes the same files, twice the same.
    let dirs = [app.dir.path().join("out1"), app.dir.path().join("out2")];
    for dir in &dirs {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
            .current_dir(repo())
            .env("TRELLIS__DATABASE_URL", &app.loaded.config.database_url)
            .env(
                "TRELLIS__TRUST_PAGE__DOCUMENTS__LINK_KEY_FILE",
                app.dir.path().join("link.key"),
            )
            .env(
                "TRELLIS__SIGNING__KEY_FILE",
                app.dir.path().join("signing.key"),
            )
            .args(["render", "--as-of", app::EXAMPLE_NOW, "--out"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tree = read_tree(&dirs[0]);
    assert_eq!(
        tree,
        read_tree(&dirs[1]),
        "two `trellis render` runs differ"
    );
    let expected: Vec<(String, Vec<u8>)> = {
        let mut v: Vec<_> = first
            .files
            .iter()
            .map(|f| (f.path.to_string(), f.body.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        tree, expected,
        "`trellis render` differs from the live site"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_revalidate_and_compress() {
    let app = spawn_app().await;
    let c = client();
    let url = format!("{}/", app.address);
    let first = c.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(first.headers()["cache-control"], "no-cache");
    assert_eq!(first.headers()["vary"], "Accept-Encoding");
    let identity = first.bytes().await.unwrap();

    let again = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    let weak = c
        .get(&url)
        .header("if-none-match", format!("\"x\", W/{etag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), StatusCode::NOT_MODIFIED, "weak comparison");
    let since = c
        .get(&url)
        .header("if-modified-since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(since.status(), StatusCode::NOT_MODIFIED);
    let other = c
        .get(&url)
        .header("if-none-match", "\"something-else\"")
        .header("if-modified-since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK, "If-None-Match wins");

    let gz = c
        .get(&url)
        .header("accept-encoding", "br;q=1, gzip;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz_etag = gz.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(gz_etag, etag, "each representation has its own ETag");
    let compressed = gz.bytes().await.unwrap();
    assert!(
        compressed.len() * 4 < identity.len(),
        "{} vs {}",
        compressed.len(),
        identity.len()
    );
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_ref())
        .read_to_end(&mut inflated)
        .unwrap();
    assert!(inflated == identity.as_ref());
    let refused = c
        .get(&url)
        .header("accept-encoding", "gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get("content-encoding").is_none());

    let head = c.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);

    // A new result changes the page (and its ETag) at once.
    plant(&app, "change-management-policy", Status::Fail, app.now).await;
    let changed = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
}

fn control<'a>(api: &'a Value, id: &str) -> &'a Value {
    api["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["controls"].as_array().unwrap())
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_feed_follow_the_stored_results() {
    // The app's clock: three days after the example's day, so the startup run (at the app's
    // `now`) comes after the history planted below.
    let now = example_now() + Duration::days(3);
    let app = spawn_app_with(&[], now).await;
    let day = |d: i64, h: i64| {
        (now.date_naive() - Duration::days(d))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            + Duration::hours(h)
    };
    // Code of Conduct (passing now): passing 5 and 4 days ago, failing from 06:00 3 days ago,
    // an error 2 days ago, then the startup run today. Privacy Policy: passing 10 days ago
    // only, so it went stale until today's run.
    for (d, status) in [(5, Status::Pass), (4, Status::Pass), (3, Status::Fail)] {
        plant(&app, "code-of-conduct", status, day(d, 6)).await;
    }
    plant(&app, "code-of-conduct", Status::Error, day(2, 6)).await;
    plant(&app, "privacy-policy", Status::Pass, day(10, 6)).await;

    let api = json(&app).await;
    let conduct = control(&api, "code-of-conduct");
    assert_eq!(conduct["status"], "passing");
    let history = conduct["history"].as_array().unwrap();
    let runs: Vec<(String, String, Value)> = history
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap().to_string(),
                r["to"].as_str().unwrap().to_string(),
                r["status"].clone(),
            )
        })
        .collect();
    let date = |d: i64| (now.date_naive() - Duration::days(d)).to_string();
    assert_eq!(
        runs,
        vec![
            (date(89), date(6), Value::Null),
            (date(5), date(4), "passing".into()),
            (date(3), date(3), "needs_attention".into()),
            // The failure of 3 days ago holds until the error of 2 days ago replaces it.
            (date(2), date(2), "needs_attention".into()),
            // The error is "not verified" until today's pass.
            (date(1), date(0), "not_verified".into()),
        ]
        .into_iter()
        .fold(Vec::<(String, String, Value)>::new(), |mut acc, run| {
            // Adjacent days of one status are one run.
            match acc.last_mut() {
                Some(last) if last.2 == run.2 => last.1 = run.1,
                _ => acc.push(run),
            }
            acc
        }),
        "{history:#?}"
    );
    assert_eq!(conduct["days_monitored"], 6);
    assert_eq!(conduct["days_passing"], 2);
    let privacy = control(&api, "privacy-policy");
    let statuses: Vec<&Value> = privacy["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert!(statuses.contains(&&Value::from("stale")), "{privacy:#?}");

    // The page draws the same runs.
    let page = text(&app, "/").await;
    let li = page
        .split("<li class=\"control\" id=\"control-code-of-conduct\">")
        .nth(1)
        .unwrap()
        .split("</li>")
        .next()
        .unwrap();
    assert!(
        li.contains(&format!(
            "<title>{} – {}: Passing</title>",
            date(5),
            date(4)
        )),
        "{li}"
    );
    assert!(li.contains("class=\"day day--needs_attention\""));
    assert!(li.contains("Passing 2 of the last 90 days"));
    assert!(li.contains("aria-label=\"Last 90 days, one cell per day: passing 2 days"));

    // The feed: each change of public status, newest first, as Atom.
    let feed_text = text(&app, "/feed.atom").await;
    let feed: atom_syndication::Feed = feed_text.parse().unwrap();
    assert_eq!(feed.title().as_str(), "Sprout trust page: status changes");
    assert!(feed.id().starts_with("urn:uuid:"));
    let conduct_entries: Vec<(String, String)> = feed
        .entries()
        .iter()
        .filter(|e| e.title().as_str().starts_with("Code of Conduct:"))
        .map(|e| (e.title().to_string(), e.updated().to_rfc3339()))
        .collect();
    let at = |t: DateTime<Utc>| t.fixed_offset().to_rfc3339();
    assert_eq!(
        conduct_entries,
        vec![
            ("Code of Conduct: Passing".to_string(), at(now)),
            ("Code of Conduct: Not verified".to_string(), at(day(2, 6))),
            (
                "Code of Conduct: Needs attention".to_string(),
                at(day(3, 6))
            ),
            ("Code of Conduct: Passing".to_string(), at(day(5, 6))),
        ]
    );
    let stale = feed
        .entries()
        .iter()
        .find(|e| e.title().as_str() == "Privacy Policy: Stale")
        .expect("going stale is a change");
    assert!(
        stale
            .links()
            .iter()
            .any(|l| l.href() == "https://trust.sprout.example/#control-privacy-policy")
    );
    let newest = feed.entries().iter().map(|e| *e.updated()).max().unwrap();
    assert_eq!(*feed.updated(), newest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_is_published() {
    let app = spawn_app().await;
    let (signer, _) = trellis::startup::signing(&app.loaded).unwrap();
    let api = json(&app).await;
    assert_eq!(
        api["signing_key"]["public_key"],
        signer.public_key().to_text()
    );
    assert_eq!(api["signing_key"]["fingerprint"], signer.key_id());
    // (Handlebars escapes `=` and `/` in text, which browsers decode.)
    let page = text(&app, "/")
        .await
        .replace("&#x3D;", "=")
        .replace("&#x2F;", "/");
    assert!(page.contains(&signer.key_id()));
    assert!(page.contains(&signer.public_key().to_text()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_txt_follows_rfc_9116() {
    let app = spawn_app().await;
    let resp = get(&app, "/.well-known/security.txt").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    let body = resp.text().await.unwrap();
    let field = |name: &str| -> Vec<String> {
        body.lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(field("Contact"), ["mailto:security@sprout.example"]);
    assert_eq!(field("Preferred-Languages"), ["en"]);
    assert_eq!(
        field("Policy"),
        ["https://trust.sprout.example/#vulnerability-disclosure"]
    );
    assert_eq!(
        field("Canonical"),
        ["https://trust.sprout.example/.well-known/security.txt"]
    );
    let expires: DateTime<Utc> = field("Expires")[0].parse().unwrap();
    // 180 days after the day of the newest check; in the future, less than a year out.
    assert_eq!(
        expires,
        (app.now.date_naive() + Duration::days(180))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    );
    assert!(expires > app.now && expires - app.now < Duration::days(365));
    for line in body.lines() {
        assert!(
            line.starts_with('#') || line.contains(": "),
            "not a field: {line}"
        );
    }
    // The policy it points to is on the page.
    assert!(
        text(&app, "/")
            .await
            .contains("id=\"vulnerability-disclosure\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neutral_page_shows_failures_as_in_remediation() {
    let app = spawn_app_with(
        &[("TRELLIS__TRUST_PAGE__FAILING_DISPLAY", "neutral")],
        example_now(),
    )
    .await;
    let api = json(&app).await;
    let body = api.to_string();
    assert!(!body.contains("\"status\":\"needs_attention\""), "{body}");
    assert_eq!(api["summary"]["counts"]["needs_attention"], 0);
    assert_eq!(
        control(&api, "background-checks")["status"],
        "in_remediation"
    );
    assert_eq!(control(&api, "background-checks")["since"], Value::Null);
    assert!(api["summary"]["counts"]["in_remediation"].as_u64().unwrap() > 0);
    let page = text(&app, "/").await;
    assert!(page.contains("badge badge--in_remediation\">In remediation</span>"));
    assert!(!page.contains("Needs attention"));
    assert!(!page.contains("control__since"));
    let feed = text(&app, "/feed.atom").await;
    assert!(!feed.contains("Needs attention"));
    assert!(feed.contains("In remediation"));
    // In detail mode, the same control says since when.
    let detail = spawn_app().await;
    let api = json(&detail).await;
    assert_eq!(
        control(&api, "background-checks")["status"],
        "needs_attention"
    );
    assert_eq!(
        control(&api, "background-checks")["since"],
        api["summary"]["last_checked"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_public_response_has_the_security_headers() {
    let app = spawn_app_with(&[("TRELLIS__SERVER__HSTS_MAX_AGE", "365d")], example_now()).await;
    for path in [
        "/",
        "/api/v1/trust",
        "/feed.atom",
        "/.well-known/security.txt",
        "/assets/trust.css",
        "/healthz",
        "/request-access",
        "/no-such-page",
    ] {
        let resp = get(&app, path).await;
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("script-src"), "no script is allowed: {path}");
        assert_eq!(
            h["strict-transport-security"], "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
    let page = text(&app, "/").await;
    assert!(!page.contains("<script"));
    assert!(!page.contains(" style="));
    // Nothing external: every src/href is relative, an anchor, mailto, or our own address.
    for attr in page
        .split(" href=\"")
        .skip(1)
        .chain(page.split(" src=\"").skip(1))
    {
        let url = attr.split('"').next().unwrap();
        // The configured footer links go elsewhere by design (links, not assets).
        let footer = app
            .loaded
            .config
            .trust_page
            .footer_links
            .iter()
            .any(|l| l.url == url);
        assert!(
            !url.contains("://") || url.starts_with("https://trust.sprout.example") || footer,
            "external reference {url}"
        );
    }
}

/// Every identifier of a resource Trellis has findings about, and of every person.
async fn private_identifiers(app: &TestApp) -> Vec<String> {
    let mut out = Vec::new();
    for control in app.catalog.controls() {
        for f in app.store.latest_findings(&control.id).await.unwrap() {
            // `hr:E1021` → `E1021`; `policies/x.md`; `aws:…` — the part after the source.
            let id = f
                .resource
                .split_once(':')
                .map_or(f.resource.as_str(), |(_, r)| r);
            out.push(id.to_string());
        }
    }
    out.extend(roster_identifiers());
    out.sort();
    out.dedup();
    // Words that are also public (a policy's file name is a public document's title, the
    // company's own domain) are not resource-level detail.
    out.retain(|id| id.len() >= 4 && !id.ends_with(".md"));
    assert!(out.len() > 60, "{out:?}");
    eprintln!("private identifiers: {out:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_public_leaks_resource_detail() {
    let app = spawn_app().await;
    let private = private_identifiers(&app).await;
    let mut public: Vec<(String, String)> = Vec::new();
    // Everything but the stylesheet, which is fixed text.
    for (_, route) in FILES.iter().filter(|(f, _)| !f.ends_with(".css")) {
        public.push((route.to_string(), text(&app, route).await));
    }
    // The static export, too.
    for file in render(&app, app.now)
        .await
        .files
        .into_iter()
        .filter(|f| !f.path.ends_with(".css"))
    {
        public.push((
            format!("export {}", file.path),
            String::from_utf8(file.body).unwrap(),
        ));
    }
    for (name, body) in &public {
        for id in &private {
            assert!(!body.contains(id.as_str()), "{name} leaks `{id}`");
        }
        for internal in [
            "hr.people",
            "aws.iam",
            "identity.accounts",
            "EXC-2026",
            "SEC-4",
        ] {
            assert!(!body.contains(internal), "{name} leaks `{internal}`");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_stored_by_another_process_show_within_the_refresh_interval() {
    results_stored_by_another_process_show(None).await;
}

/// The same with the application on PostgreSQL: another instance's result reaches this
/// instance's page through the same data-version poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_stored_by_another_instance_on_postgres_show_within_the_refresh_interval() {
    if let Some(db) = crate::common::app::postgres_env("another_instance").await {
        results_stored_by_another_process_show(Some(db)).await;
    }
}

async fn results_stored_by_another_process_show(db: Option<(&'static str, String)>) {
    let mut env = vec![("TRELLIS__SERVER__REFRESH_INTERVAL", "200ms")];
    if let Some((key, url)) = &db {
        env.push((key, url.as_str()));
    }
    let app = spawn_app_with(&env, example_now()).await;
    let before = json(&app).await;
    assert_eq!(control(&before, "code-of-conduct")["status"], "passing");
    // Another process (say `trellis check`) stores a failure through its own connection.
    let other = trellis::store::Store::connect(&app.loaded.config.database_url)
        .await
        .unwrap();
    let run = other
        .begin_run(trellis::model::Trigger::Cli, 1, app.now)
        .await
        .unwrap();
    let outcome = trellis::model::ControlOutcome {
        control_id: "code-of-conduct".into(),
        status: Status::Fail,
        summary: String::new(),
        evaluated_at: app.now,
        definition_sha256: "0".repeat(64),
        checks: vec![],
        findings: vec![],
        exceptions: vec![],
    };
    other.record_result(&run, &outcome, &[]).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = json(&app).await;
        if control(&now, "code-of-conduct")["status"] == "needs_attention" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page never showed the other process's result"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Every public control says what backs its status, in the page, the JSON and so the static
/// export: a control with no check on the systems themselves is never presented as monitored,
/// the summary counts monitored controls apart, and a system claim that no probe reads yet
/// (TLS endpoints) is not verified rather than green on its policy's wording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_says_what_backs_its_status() {
    use trellis::probes::EvidenceKind;
    let app = spawn_app().await;
    let view = json(&app).await;
    let html = text(&app, "/").await;
    let mut counted: std::collections::BTreeMap<String, usize> = Default::default();
    let mut seen = 0;
    for category in view["categories"].as_array().unwrap() {
        for c in category["controls"].as_array().unwrap() {
            seen += 1;
            let id = c["id"].as_str().unwrap();
            let control = app.catalog.get(id).unwrap();
            let kinds: Vec<EvidenceKind> =
                control.checks.iter().map(|ch| ch.probe.kind()).collect();
            let basis = &c["basis"];
            let kind = basis["kind"].as_str().unwrap();
            *counted.entry(kind.to_string()).or_default() += 1;
            assert_eq!(basis["claim"], control.claim.as_str(), "{id}");
            let statements: Vec<&str> = basis["statements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert!(!statements.is_empty(), "{id}");
            let monitored = statements.iter().any(|s| s.starts_with("Monitored"));
            if kinds.contains(&EvidenceKind::System) {
                assert_eq!(kind, "monitored", "{id}");
                assert!(
                    statements[0].starts_with("Monitored automatically ("),
                    "{id}"
                );
                assert!(statements[0].contains(", checked "), "{id}: {statements:?}");
            } else {
                assert_ne!(kind, "monitored", "{id} has no system check");
                assert!(!monitored, "{id}: {statements:?}");
            }
            if kinds.iter().all(|k| *k == EvidenceKind::Document) {
                assert_eq!(kind, "documented", "{id}");
            }
            for s in &statements {
                assert!(html.contains(s), "{id}: the page lacks {s:?}");
            }
        }
    }
    assert_eq!(seen, 73);
    for kind in ["monitored", "recorded", "documented"] {
        assert_eq!(
            view["summary"]["basis"][kind]["controls"].as_u64().unwrap() as usize,
            counted[kind],
            "{kind}"
        );
    }
    let control = |id: &str| -> &Value {
        view["categories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["controls"].as_array().unwrap())
            .find(|c| c["id"] == id)
            .unwrap()
    };
    // Encryption in transit claims a fact about endpoints, load balancers and S3 buckets;
    // none is read here.
    let eit = control("encryption-in-transit");
    assert_eq!(eit["status"], "not_verified");
    assert_eq!(
        eit["basis"]["systems"],
        serde_json::json!(["public endpoints", "AWS"])
    );
    let statements = eit["basis"]["statements"].to_string();
    assert!(
        statements.contains("Documented: policy approved ")
            && statements.contains("reviewed yearly"),
        "{statements}"
    );
    // Records say when the last entry was made; documents when they were approved.
    let training = control("security-awareness-training")["basis"]["statements"][0]
        .as_str()
        .unwrap();
    assert!(
        training.starts_with("Recorded by the team (HR roster): last entry "),
        "{training}"
    );
    let isp = control("information-security-policy")["basis"]["statements"][0]
        .as_str()
        .unwrap();
    assert!(isp.starts_with("Documented: policy approved "), "{isp}");
    // The page says until when it holds.
    let until = view["summary"]["valid_until"].as_str().unwrap();
    assert!(
        html.contains(&format!(
            "This page is valid until <time datetime=\"{until}\">"
        )),
        "no validity line for {until}"
    );
    assert!(html.contains("after that, treat every status as stale"));
}
