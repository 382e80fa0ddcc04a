//! The public web side, end to end: a catalog loaded from control files, results planted
//! through the store API (SQLite in a temporary directory), requests through the actix service
//! exactly as `startup.rs` wires it.
//!
//! For a preview of the page, `trellis render --out DIR` writes the whole site.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::new_evidence;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{App, test, web as aweb};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use trellis::config::TrustPageConfig;
use trellis::model::{CheckOutcome, ControlOutcome, Evidence, Finding, Status, Trigger};
use trellis::store::Store;
use trellis::web::{self, WebState};

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

/// Strings planted in findings, summaries, evidence and internal control fields. None may
/// ever appear on the public side.
const MARKERS: &[&str] = &[
    "zz-secret-person-4821",
    "arn:aws:iam::123456789012:user/zz-marker",
    "leak-marker@example.com",
    "zz-summary-marker-77",
    "zz-check-summary-marker",
    "zz-check-error-marker",
    "zz-evidence-marker-93",
    "zz-owner-marker",
    "zz-remediation-marker",
    "zz-check-description-marker",
    "hr.people",
];

const PRIVATE_TITLE: &str = "Zz Private Control Title";
const PRIVATE_DESCRIPTION: &str = "zz private description marker";
const XSS_TITLE: &str = "<script>alert(1)</script> Audit logging";
const XSS_DESCRIPTION: &str =
    "Logs are kept <b>safely</b> & \"reviewed\" <script>alert(1)</script>";
const CONTACT: &str = "security@example.test";

/// One control file of the fixture.
struct Spec {
    id: &'static str,
    category: &'static str,
    title: &'static str,
    description: &'static str,
    public: bool,
    freshness: Option<&'static str>,
}

fn spec(id: &'static str, category: &'static str, title: &'static str) -> Spec {
    Spec {
        id,
        category,
        title,
        description: "We verify this automatically.",
        public: true,
        freshness: None,
    }
}

/// YAML single-quoted scalar.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn write_controls(dir: &Path, specs: &[Spec]) {
    for s in specs {
        let folder = dir.join(s.category.to_lowercase().replace(' ', "-"));
        std::fs::create_dir_all(&folder).unwrap();
        let freshness = s
            .freshness
            .map(|f| format!("freshness: {f}\n"))
            .unwrap_or_default();
        let yaml = format!(
            "id: {id}\ntitle: {title}\ncategory: {category}\ndescription: {description}\n\
             claim: procedure\npublic: {public}\nowner: zz-owner-marker\nseverity: high\n\
             remediation: zz-remediation-marker\n{freshness}\
             checks:\n  - probe: hr.people\n    assert: background_check_date != null\n    \
             description: zz-check-description-marker\n",
            id = s.id,
            title = quoted(s.title),
            category = quoted(s.category),
            description = quoted(s.description),
            public = s.public,
        );
        std::fs::write(folder.join(format!("{}.yaml", s.id)), yaml).unwrap();
    }
}

/// Stores one outcome of `control_id` in its own run, with findings full of markers.
async fn plant(store: &Store, control_id: &str, status: Status, evaluated_at: DateTime<Utc>) {
    let run = store
        .begin_run(Trigger::Manual, 1, evaluated_at)
        .await
        .unwrap();
    let evidence = Evidence {
        probe: "hr.people".into(),
        params: "{}".into(),
        collected_at: evaluated_at,
        content: json!([{
            "employee_id": "zz-secret-person-4821",
            "email": "leak-marker@example.com",
            "note": "zz-evidence-marker-93",
        }]),
        sha256: "0".repeat(64),
        error: None,
    };
    let evidence_ids = store
        .record_evidence(&run, new_evidence(&[evidence]))
        .await
        .unwrap();
    let outcome = ControlOutcome {
        control_id: control_id.into(),
        status,
        summary: "1 of 2 people: zz-summary-marker-77".into(),
        evaluated_at,
        definition_sha256: "0".repeat(64),
        checks: vec![CheckOutcome {
            probe: "hr.people".into(),
            status,
            summary: "zz-check-summary-marker".into(),
            error: (status == Status::Error).then(|| "zz-check-error-marker".to_string()),
            evidence: Some(0),
            basis: None,
        }],
        findings: vec![
            Finding {
                check: 0,
                resource: "hr:zz-secret-person-4821".into(),
                status,
                message: "Dana Reyes <leak-marker@example.com> has no background check".into(),
                actual: json!({
                    "background_check_date": null,
                    "aws_user": "arn:aws:iam::123456789012:user/zz-marker",
                })
                .into(),
            },
            Finding {
                check: 0,
                resource: "arn:aws:iam::123456789012:user/zz-marker".into(),
                status: Status::Pass,
                message: "zz-secret-person-4821 is fine".into(),
                actual: json!({"email": "leak-marker@example.com"}).into(),
            },
        ],
        exceptions: vec![trellis::model::ExceptionUse {
            id: "EXC-zz-exception-marker".into(),
            ticket: "zz-ticket-marker".into(),
            owner: "leak-marker@example.com".into(),
            expires_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            status: "applied".into(),
            resources: vec!["hr:zz-secret-person-4821".into()],
        }],
    };
    store
        .record_result(&run, &outcome, &evidence_ids)
        .await
        .unwrap();
    store
        .finish_run(
            &run,
            evaluated_at,
            None,
            &trellis::integrity::Signer::from_seed([5; 32]),
        )
        .await
        .unwrap();
}

struct Fixture {
    dir: tempfile::TempDir,
    state: WebState,
    now: DateTime<Utc>,
}

impl Fixture {
    fn db_path(&self) -> PathBuf {
        self.dir.path().join("trellis.db")
    }
}

/// Categories: `People Security` (configured first), then `Access Security` and
/// `Data Protection` alphabetically; `Internal Only` holds only the private control.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let controls = dir.path().join("controls");
    let mut encryption = spec(
        "encryption-at-rest",
        "Data Protection",
        "Encryption at rest",
    );
    encryption.freshness = Some("7d");
    let mut xss = spec("audit-logging", "Data Protection", XSS_TITLE);
    xss.description = XSS_DESCRIPTION;
    let mut private = spec("zz-private-control", "Internal Only", PRIVATE_TITLE);
    private.public = false;
    private.description = PRIVATE_DESCRIPTION;
    write_controls(
        &controls,
        &[
            spec(
                "background-checks",
                "People Security",
                "Background checks for all staff",
            ),
            spec(
                "security-training",
                "People Security",
                "Security awareness training",
            ),
            spec(
                "nda-signed",
                "People Security",
                "Confidentiality agreements signed",
            ),
            spec(
                "access-reviews",
                "Access Security",
                "Quarterly access reviews",
            ),
            spec(
                "mfa-enforced",
                "Access Security",
                "Multi-factor authentication enforced",
            ),
            encryption,
            xss,
            private,
        ],
    );
    let catalog = trellis::catalog::load(&controls).unwrap_or_else(|d| panic!("{d}"));

    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("trellis.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    let now = Utc::now();
    // Fresh pass → passing.
    plant(
        &store,
        "background-checks",
        Status::Pass,
        now - Duration::hours(1),
    )
    .await;
    // Fresh fail → needs attention.
    plant(
        &store,
        "security-training",
        Status::Fail,
        now - Duration::hours(2),
    )
    .await;
    // Pass older than the default freshness (1 day) → stale.
    plant(&store, "nda-signed", Status::Pass, now - Duration::days(3)).await;
    // An old pass, then a fresh error: the newest result counts → not verified.
    plant(
        &store,
        "access-reviews",
        Status::Pass,
        now - Duration::days(2),
    )
    .await;
    plant(
        &store,
        "access-reviews",
        Status::Error,
        now - Duration::hours(3),
    )
    .await;
    // `mfa-enforced` has no result → not verified.
    // Pass 3 days ago, with the control's own 7-day freshness → passing.
    plant(
        &store,
        "encryption-at-rest",
        Status::Pass,
        now - Duration::days(3),
    )
    .await;
    plant(
        &store,
        "audit-logging",
        Status::Pass,
        now - Duration::hours(4),
    )
    .await;
    // The private control has the newest result of all: not even its time may show.
    plant(
        &store,
        "zz-private-control",
        Status::Fail,
        now - Duration::minutes(1),
    )
    .await;

    let trust = TrustPageConfig {
        company: "Acme Widgets".into(),
        contact_email: Some(CONTACT.into()),
        intro: Some("We monitor our security controls continuously.".into()),
        category_order: vec!["People Security".into(), "Nonexistent".into()],
        sections: vec![trellis::config::TrustSection {
            title: "Designed for Security".into(),
            body: "We **encrypt** everything.<script>alert('zz-script-marker')</script>".into(),
        }],
        ..TrustPageConfig::default()
    };
    let registers = trellis::registers::Registers {
        vendors: vec![trellis::registers::Vendor {
            starts_on: None,
            name: "Mailgun".into(),
            purpose: "Email delivery".into(),
            data_shared: vec![],
            location: "United States".into(),
            subprocessor: true,
            risk_tier: trellis::registers::Level::Medium,
            soc2_report_reviewed_on: None,
            assessed_on: None,
            owner: Some("zz-vendor-owner-marker".into()),
            website: None,
        }],
        ..Default::default()
    };
    let narrative = Arc::new(web::Narrative::build(&trust, Some(&registers)));
    let inputs = web::SiteInputs {
        catalog: Arc::new(catalog),
        trust,
        narrative,
        default_freshness: Duration::days(1),
        default_schedule: "0 * * * *".parse().unwrap(),
        templates: Arc::new(web::templates().unwrap()),
        brand: Arc::default(),
    };
    let state = WebState::new(
        store,
        inputs,
        None,
        Arc::new(trellis::scheduler::FixedClock(now)),
        &[],
    );
    Fixture { dir, state, now }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}"))
            .to_str()
            .unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// GETs every path through the app as `startup.rs` builds it.
async fn get_all(state: &WebState, paths: &[&str]) -> Vec<Resp> {
    let app = test::init_service(app(state.clone())).await;
    let mut out = Vec::new();
    for path in paths {
        let resp = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = test::read_body(resp).await;
        out.push(Resp {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        });
    }
    out
}

/// The app exactly as `startup.rs` wires it.
fn app(
    state: WebState,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(web::security_headers(
            &trellis::config::ServerConfig::default(),
        ))
        .app_data(aweb::Data::new(state))
        .configure(web::configure)
}

async fn get(state: &WebState, path: &str) -> Resp {
    get_all(state, &[path]).await.remove(0)
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `<li class="control">` element of the page holding `title` (as escaped in HTML).
fn control_html<'a>(page: &'a str, title: &str) -> &'a str {
    page.split("<li class=\"control\"")
        .skip(1)
        .map(|chunk| chunk.split("</li>").next().unwrap())
        .find(|chunk| chunk.contains(title))
        .unwrap_or_else(|| panic!("no control titled {title} on the page"))
}

fn json_control<'a>(api: &'a Value, id: &str) -> &'a Value {
    api["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["controls"].as_array().unwrap())
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id} in {api}"))
}

/// The `href` of the page's stylesheet link, as written in the HTML.
fn stylesheet_href(page: &str) -> &str {
    page.split("<link rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("stylesheet link")
}

const PUBLIC_TITLES: &[&str] = &[
    "Background checks for all staff",
    "Security awareness training",
    "Confidentiality agreements signed",
    "Quarterly access reviews",
    "Multi-factor authentication enforced",
    "Encryption at rest",
];

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn public_side_lists_public_controls_and_leaks_nothing() {
    let f = fixture().await;
    let [page, api, health] =
        <[Resp; 3]>::try_from(get_all(&f.state, &["/", "/api/v1/trust", "/healthz"]).await)
            .ok()
            .unwrap();
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(api.status, StatusCode::OK);
    for title in PUBLIC_TITLES {
        assert!(page.body.contains(title), "page lacks {title}");
        assert!(api.body.contains(title), "api lacks {title}");
    }
    for resp in [&page, &api, &health] {
        for marker in MARKERS
            .iter()
            .chain([&PRIVATE_TITLE, &PRIVATE_DESCRIPTION, &"Internal Only"])
        {
            assert!(
                !resp.body.contains(marker),
                "leaked {marker}:\n{}",
                resp.body
            );
        }
        assert!(!resp.body.contains("zz-private-control"));
    }
    // The JSON has exactly the public controls, and no field beyond the documented ones.
    let api_resp = api;
    let api = api_resp.json();
    let ids: Vec<&str> = api["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["controls"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 7, "{ids:?}");
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&api),
        [
            "categories",
            "company",
            "contact_email",
            "documents",
            "failing_display",
            "frameworks",
            "history_days",
            "intro",
            "sections",
            "signing_key",
            "subprocessors",
            "summary",
            "url",
            "vulnerability_disclosure"
        ]
    );
    // Narrative sections are sanitised; subprocessors show name, purpose and location only.
    assert_eq!(
        api["subprocessors"],
        serde_json::json!([{"name": "Mailgun", "purpose": "Email delivery", "location": "United States"}])
    );
    let section = &api["sections"][0];
    assert_eq!(section["title"], "Designed for Security");
    assert!(
        section["html"]
            .as_str()
            .unwrap()
            .contains("<strong>encrypt</strong>")
    );
    for resp in [&page, &api_resp] {
        assert!(!resp.body.contains("zz-script-marker"), "script survived");
        assert!(
            !resp.body.contains("zz-vendor-owner-marker"),
            "vendor owner leaked"
        );
    }
    assert_eq!(
        keys(&api["summary"]),
        [
            "basis",
            "counts",
            "last_checked",
            "passing",
            "total",
            "valid_until"
        ]
    );
    for c in api["categories"].as_array().unwrap() {
        assert_eq!(keys(c), ["controls", "counts", "name"]);
        for control in c["controls"].as_array().unwrap() {
            let mut control_keys: Vec<&str> = control
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            control_keys.sort();
            assert_eq!(
                control_keys,
                [
                    "basis",
                    "days_monitored",
                    "days_passing",
                    "description",
                    "history",
                    "id",
                    "last_checked",
                    "since",
                    "status",
                    "title"
                ]
            );
            for run in control["history"].as_array().unwrap() {
                assert_eq!(keys(run), ["from", "status", "to"]);
            }
            // What backs the status: kinds of systems, cadence and dates — no resource.
            assert_eq!(
                keys(&control["basis"]),
                [
                    "approved_on",
                    "checked",
                    "claim",
                    "kind",
                    "last_entry",
                    "reviewed",
                    "statements",
                    "systems"
                ]
            );
        }
    }
}

#[actix_web::test]
async fn trust_view_is_a_pure_function_of_its_inputs() {
    let f = fixture().await;
    let now = f.now;
    let inputs = f.state.site.inputs();
    let history: Vec<trellis::model::ControlHistory> = vec![
        (
            "background-checks".into(),
            vec![
                (now - Duration::hours(5), Status::Pass),
                (now - Duration::hours(1), Status::Fail),
            ],
        ),
        (
            "nda-signed".into(),
            vec![
                (now - Duration::hours(30), Status::Pass),
                (now - Duration::hours(5), Status::Pass),
            ],
        ),
        // Unknown and private controls are ignored.
        (
            "no-such-control".into(),
            vec![(now - Duration::hours(1), Status::Pass)],
        ),
        (
            "zz-private-control".into(),
            vec![(now - Duration::minutes(1), Status::Pass)],
        ),
    ];
    let view_with = |freshness: Duration| {
        web::trust_view(&web::TrustInputs {
            catalog: &inputs.catalog,
            trust: &inputs.trust,
            narrative: &inputs.narrative,
            history: &history,
            basis: &Default::default(),
            default_freshness: freshness,
            default_schedule: &"0 * * * *".parse().unwrap(),
            now,
        })
    };
    let view = view_with(Duration::days(1));
    assert_eq!(view, view_with(Duration::days(1)));
    assert_eq!(
        serde_json::to_vec(&view).unwrap(),
        serde_json::to_vec(&view_with(Duration::days(1))).unwrap()
    );
    let control = |v: &web::TrustView, id: &str| {
        v.categories
            .iter()
            .flat_map(|c| &c.controls)
            .find(|c| c.id == id)
            .cloned()
    };
    let bc = control(&view, "background-checks").unwrap();
    assert_eq!(bc.status, web::Badge::NeedsAttention);
    assert_eq!(bc.since, Some(now - Duration::hours(1)), "failing since");
    assert_eq!(
        control(&view, "nda-signed").unwrap().status,
        web::Badge::Passing
    );
    assert!(control(&view, "zz-private-control").is_none());
    assert_eq!(view.summary.total, 7);
    assert_eq!(view.summary.passing, 1);
    assert_eq!(view.summary.last_checked, Some(now - Duration::hours(1)));
    // The nda pass of 5 hours ago goes stale first (1 day later), then the failure.
    assert_eq!(
        view.summary.valid_until,
        Some(now - Duration::hours(5) + Duration::days(1) + Duration::seconds(1))
    );
    // A shorter default freshness turns the 5-hour-old pass stale; nothing else changes.
    let strict = view_with(Duration::hours(4));
    let nda = control(&strict, "nda-signed").unwrap();
    assert_eq!(nda.status, web::Badge::Stale);
    assert_eq!(strict.summary.passing, 0);
    // The history covers 90 days, today last.
    assert_eq!(view.history_days, 90);
    let total: i64 = bc.history.iter().map(|r| r.days()).sum();
    assert_eq!(total, 90);
    assert_eq!(bc.history.last().unwrap().to, now.date_naive());
    // Every public control maps to no framework in this fixture.
    assert!(view.frameworks.is_empty());
}

#[actix_web::test]
async fn badges_are_honest_end_to_end() {
    let f = fixture().await;
    let [page, api] = <[Resp; 2]>::try_from(get_all(&f.state, &["/", "/api/v1/trust"]).await)
        .ok()
        .unwrap();
    let api = api.json();
    let cases = [
        (
            "background-checks",
            "Background checks for all staff",
            "passing",
            "Passing",
        ),
        (
            "security-training",
            "Security awareness training",
            "needs_attention",
            "Needs attention",
        ),
        (
            "nda-signed",
            "Confidentiality agreements signed",
            "stale",
            "Stale",
        ),
        (
            "access-reviews",
            "Quarterly access reviews",
            "not_verified",
            "Not verified",
        ),
        (
            "mfa-enforced",
            "Multi-factor authentication enforced",
            "not_verified",
            "Not verified",
        ),
        (
            "encryption-at-rest",
            "Encryption at rest",
            "passing",
            "Passing",
        ),
    ];
    for (id, title, status, label) in cases {
        assert_eq!(json_control(&api, id)["status"], status, "{id}");
        let html = control_html(&page.body, title);
        assert!(
            html.contains(&format!(
                "<span class=\"badge badge--{status}\">{label}</span>"
            )),
            "{id}: expected badge {label}:\n{html}"
        );
    }
    // Never checked: no time, said in words.
    assert_eq!(
        json_control(&api, "mfa-enforced")["last_checked"],
        Value::Null
    );
    assert!(
        control_html(&page.body, "Multi-factor authentication enforced")
            .contains("Not checked yet")
    );
    // Last checked, in UTC ISO and in words.
    let checked = iso(f.now - Duration::hours(1));
    assert_eq!(
        json_control(&api, "background-checks")["last_checked"],
        checked.as_str()
    );
    let html = control_html(&page.body, "Background checks for all staff");
    let display = (f.now - Duration::hours(1))
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    assert!(
        html.contains(&format!("<time datetime=\"{checked}\">{display}</time>")),
        "{html}"
    );
    // The errored control shows when it was last attempted.
    assert_eq!(
        json_control(&api, "access-reviews")["last_checked"],
        iso(f.now - Duration::hours(3)).as_str()
    );

    // Summary: 3 of 7 passing; last checked is the newest *public* result.
    assert_eq!(api["company"], "Acme Widgets");
    assert_eq!(api["summary"]["passing"], 3);
    assert_eq!(api["summary"]["total"], 7);
    assert_eq!(
        api["summary"]["counts"],
        json!({"passing": 3, "needs_attention": 1, "in_remediation": 0, "not_verified": 2, "stale": 1, "total": 7})
    );
    assert_eq!(
        api["summary"]["last_checked"],
        iso(f.now - Duration::hours(1)).as_str()
    );
    assert!(page.body.contains("3 of 7 controls passing"));

    // Categories: configured order first, then alphabetical; per-category counts.
    let names: Vec<&str> = api["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["People Security", "Access Security", "Data Protection"]
    );
    assert_eq!(
        api["categories"][0]["counts"],
        json!({"passing": 1, "needs_attention": 1, "in_remediation": 0, "not_verified": 0, "stale": 1, "total": 3})
    );
    let sections: Vec<usize> = names
        .iter()
        .map(|n| {
            page.body
                .find(&format!(">{n}</h2>"))
                .unwrap_or_else(|| panic!("{n}"))
        })
        .collect();
    assert!(sections.windows(2).all(|w| w[0] < w[1]), "{sections:?}");
}

#[actix_web::test]
async fn page_has_the_expected_structure() {
    let f = fixture().await;
    let page = get(&f.state, "/").await;
    let body = &page.body;
    for needle in [
        "<html lang=\"en\">",
        "<h1>Acme Widgets</h1>",
        "We monitor our security controls continuously.",
        &format!("<a href=\"mailto:{CONTACT}\">{CONTACT}</a>"),
        "<main id=\"main\"",
        "<footer",
        "Generated by Trellis",
        "What the statuses mean",
        "<nav class=\"toc\" aria-label=\"Contents\">",
    ] {
        assert!(body.contains(needle), "page lacks {needle}");
    }
    // The legend explains every badge.
    for label in ["Passing", "Needs attention", "Not verified", "Stale"] {
        assert!(
            body.contains(&format!("\">{label}</span></dt>")),
            "legend lacks {label}"
        );
    }
    // Strict-CSP friendly: no scripts, no inline styles, nothing external.
    assert!(!body.contains("<script"), "{body}");
    assert!(!body.contains("style="));
    assert!(!body.contains("<style"));
    assert!(!body.contains("http://") && !body.contains("https://"));
    // The stylesheet link resolves.
    // (Handlebars escapes `=` in values as `&#x3D;`, which browsers decode.)
    let href = stylesheet_href(body).replace("&#x3D;", "=");
    assert!(href.starts_with("assets/trust.css?v="), "{href}");
    let css = get(&f.state, &format!("/{href}")).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains(".badge--passing"));
}

#[actix_web::test]
async fn control_text_is_escaped() {
    let f = fixture().await;
    let [page, api] = <[Resp; 2]>::try_from(get_all(&f.state, &["/", "/api/v1/trust"]).await)
        .ok()
        .unwrap();
    assert!(!page.body.contains("<script>"));
    assert!(!page.body.contains("<b>safely</b>"));
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt; Audit logging")
            || page
                .body
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; Audit logging"),
        "{}",
        control_html(&page.body, "Audit logging")
    );
    assert!(page.body.contains("&lt;b&gt;safely&lt;"));
    assert!(page.body.contains("&amp; &quot;reviewed&quot;"));
    let html = control_html(&page.body, "Audit logging");
    assert!(html.contains("badge--passing"), "{html}");
    // JSON carries the text verbatim (it is data, served as application/json with nosniff).
    let api = api.json();
    let control = json_control(&api, "audit-logging");
    assert_eq!(control["title"], XSS_TITLE);
    assert_eq!(control["description"], XSS_DESCRIPTION);
}

#[actix_web::test]
async fn headers_and_content_types() {
    let f = fixture().await;
    let paths = [
        "/",
        "/api/v1/trust",
        "/healthz",
        "/assets/trust.css",
        "/nope",
    ];
    let resps = get_all(&f.state, &paths).await;
    for (path, r) in paths.iter().zip(&resps) {
        assert_eq!(r.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(r.header("referrer-policy"), "same-origin", "{path}");
        assert_eq!(
            r.header("content-security-policy"),
            "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'self'",
            "{path}"
        );
    }
    let [page, api, health, css, missing] = <[Resp; 5]>::try_from(resps).ok().unwrap();
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(api.header("content-type"), "application/json");
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.header("content-type"), "application/json");
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    assert!(css.header("cache-control").contains("max-age=31536000"));
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn methods_other_than_get_and_head_are_rejected() {
    let f = fixture().await;
    let app = test::init_service(app(f.state.clone())).await;
    let resp = test::call_service(&app, test::TestRequest::post().uri("/").to_request()).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().contains_key("content-security-policy"));
    // Monitors may use HEAD.
    let req = test::TestRequest::default()
        .method(actix_web::http::Method::HEAD)
        .uri("/healthz")
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("content-security-policy"));
}

/// Overwrites the database files in place, so the open connections find garbage.
fn corrupt_database(db: &Path) {
    use std::io::Write;
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(&vec![0xA5; meta.len().max(4096) as usize])
            .unwrap();
        file.sync_all().unwrap();
    }
}

#[actix_web::test]
async fn store_failure_is_a_503_without_detail() {
    let f = fixture().await;
    corrupt_database(&f.db_path());
    let paths = ["/", "/api/v1/trust", "/healthz", "/readyz"];
    let [page, api, health, ready] = <[Resp; 4]>::try_from(get_all(&f.state, &paths).await)
        .ok()
        .unwrap();
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.body
    );
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert!(
        page.body.contains("Status temporarily unavailable"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Acme Widgets"));
    assert_eq!(page.header("retry-after"), "60");
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.json(), json!({"error": "unavailable"}));
    // `/healthz` says the process is up, whatever the database; `/readyz` that it cannot
    // serve, with a short reason (it may say "database", never which or why).
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["status"], "unavailable");
    let reason = ready.json()["reason"].as_str().unwrap().to_string();
    assert!(
        [
            "database unreachable",
            "database schema could not be checked"
        ]
        .contains(&reason.as_str()),
        "{reason}"
    );
    for r in [&page, &api, &health, &ready] {
        assert!(r.headers.contains_key("content-security-policy"));
        let lower = r.body.to_lowercase();
        for detail in [
            "sqlite",
            "database",
            "corrupt",
            "malformed",
            "query",
            "trellis.db",
            "error:",
        ] {
            if std::ptr::eq(r, &ready) && detail == "database" {
                continue;
            }
            assert!(!lower.contains(detail), "leaked {detail}: {}", r.body);
        }
    }
}

#[actix_web::test]
async fn empty_store_shows_every_control_as_not_verified() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("empty.db").display()
    );
    let state = WebState::new(
        Store::connect(&url).await.unwrap(),
        f.state.site.inputs().clone(),
        None,
        Arc::new(trellis::scheduler::FixedClock(f.now)),
        &[],
    );
    let [page, api] = <[Resp; 2]>::try_from(get_all(&state, &["/", "/api/v1/trust"]).await)
        .ok()
        .unwrap();
    let api = api.json();
    assert_eq!(api["summary"]["passing"], 0);
    assert_eq!(api["summary"]["counts"]["not_verified"], 7);
    assert_eq!(api["summary"]["last_checked"], Value::Null);
    assert!(page.body.contains("0 of 7 controls passing"));
    assert!(page.body.contains("No control has been checked yet."));
    assert!(
        !page
            .body
            .contains("badge badge--passing\">Passing</span></div>")
    );
}
