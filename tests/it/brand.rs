//! The trust page as the company's own (issue 21): the brand served by Trellis itself, link
//! previews and indexing, footer links, and answers marked by the live status of the controls
//! they cite.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::Value;
use trellis::model::Status;

use crate::common::app::{
    ManualClock, TestApp, example_now, get, plant, repo, spawn_app, spawn_app_with,
    spawn_app_with_clock,
};

/// A real 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x60, 0x60, 0xf8,
    0x0f, 0x00, 0x01, 0x04, 0x01, 0x00, 0x5f, 0xe5, 0xc3, 0x4b, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn page(app: &TestApp, path: &str) -> String {
    let resp = get(app, path).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.text().await.unwrap()
}

/// The value of `attr` of the first tag containing `marker`.
fn attr(html: &str, marker: &str, attr: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the page"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let key = format!("{attr}=\"");
    let from = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} in {tag}"))
        + key.len();
    tag[from..from + tag[from..].find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brand_is_served_from_trellis_under_hashed_paths_with_the_csp_unchanged() {
    let app = spawn_app().await;
    let html = page(&app, "/").await;
    let logo = attr(&html, "class=\"brand-bar__logo\"", "src");
    let dark = attr(&html, "media=\"(prefers-color-scheme: dark)\"", "srcset");
    let favicon = attr(&html, "rel=\"icon\"", "href");
    let brand_css = attr(&html, "href=\"assets/brand/brand-", "href");
    assert_eq!(attr(&html, "class=\"brand-bar__logo\"", "alt"), "Sprout");
    for (path, file, content_type) in [
        (&logo, Some("examples/brand/logo.svg"), "image/svg+xml"),
        (&dark, Some("examples/brand/logo-dark.svg"), "image/svg+xml"),
        (
            &favicon,
            Some("examples/brand/favicon.svg"),
            "image/svg+xml",
        ),
        (&brand_css, None, "text/css; charset=utf-8"),
    ] {
        // Relative (the static export works under any path), content-hashed, ours.
        assert!(path.starts_with("assets/brand/"), "{path}");
        let resp = get(&app, &format!("/{path}")).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let headers = resp.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(
            headers["cache-control"], "public, max-age=31536000, immutable",
            "{path}"
        );
        // The site's policy; an SVG opened directly is sandboxed too.
        let csp = if content_type == "image/svg+xml" {
            trellis::web::SVG_CONTENT_SECURITY_POLICY
        } else {
            trellis::web::CONTENT_SECURITY_POLICY
        };
        assert_eq!(headers["content-security-policy"], csp, "{path}");
        let etag = headers["etag"].to_str().unwrap().to_string();
        let again = crate::common::app::client()
            .get(format!("{}/{path}", app.address))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        let body = resp.bytes().await.unwrap();
        if let Some(file) = file {
            assert_eq!(
                body.as_ref(),
                std::fs::read(repo().join(file)).unwrap(),
                "{path}"
            );
        } else {
            let css = String::from_utf8(body.to_vec()).unwrap();
            assert!(css.contains("--accent: #5b3cc4;"), "{css}");
            assert!(css.contains("--accent: #b9a6ff;"), "{css}");
        }
    }
    // Nothing else under the brand's folder, and no external asset anywhere.
    assert_eq!(
        get(&app, "/assets/brand/logo-000000000000.svg")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    for external in [
        "src=\"http",
        "href=\"//",
        "srcset=\"http",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "{external} in the page");
    }
    // The page's own CSP is the one every response has had.
    let resp = get(&app, "/").await;
    assert_eq!(
        resp.headers()["content-security-policy"],
        "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    // Link previews and search: title, description, canonical; no image from an SVG logo.
    for meta in [
        "<link rel=\"canonical\" href=\"https://trust.sprout.example/\">",
        "<meta property=\"og:url\" content=\"https://trust.sprout.example/\">",
        "<meta property=\"og:title\" content=\"Sprout Trust Center\">",
        "<meta property=\"og:type\" content=\"website\">",
        "<meta name=\"twitter:card\" content=\"summary\">",
        "<meta property=\"og:description\" content=\"Live status of the security controls Sprout monitors continuously, with what backs each one.\">",
    ] {
        assert!(html.contains(meta), "{meta} missing");
    }
    assert!(!html.contains("og:image"), "an SVG is no preview image");
    assert!(!html.contains("noindex"));
    // Footer links from the configuration, on the page and the forms.
    for html in [&html, &page(&app, "/request-access").await] {
        for link in [
            "<a href=\"https://status.sprout.example\">Status page</a>",
            "<a href=\"https://sprout.example/privacy\">Privacy policy</a>",
            "<a href=\"mailto:security@sprout.example\">Contact</a>",
        ] {
            assert!(html.contains(link), "{link} missing");
        }
    }
    // The forms carry the brand too (absolute links: they are served at other paths).
    let form = page(&app, "/request-access").await;
    assert!(form.contains(&format!("src=\"/{logo}\"")), "{form}");
    assert!(form.contains(&format!("href=\"/{brand_css}\"")));
    // robots.txt lets the page be indexed, not the forms or the dashboards.
    let robots = page(&app, "/robots.txt").await;
    assert!(
        robots.contains("User-agent: *\nDisallow: /dashboard\n"),
        "{robots}"
    );
    assert!(!robots.contains("Disallow: /\n"), "{robots}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_kept_out_of_search_says_noindex_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.png");
    std::fs::write(&logo, PNG).unwrap();
    let logo = logo.display().to_string();
    let app = spawn_app_with(
        &[
            ("TRELLIS__TRUST_PAGE__INDEXING", "false"),
            ("TRELLIS__TRUST_PAGE__BRAND__LOGO", &logo),
        ],
        example_now(),
    )
    .await;
    let robots = page(&app, "/robots.txt").await;
    assert!(robots.ends_with("User-agent: *\nDisallow: /\n"), "{robots}");
    for path in ["/", "/request-access", "/subscribe"] {
        let resp = get(&app, path).await;
        if resp.status() == StatusCode::NOT_FOUND {
            continue; // subscriptions are not offered by the example
        }
        assert_eq!(
            resp.headers()["x-robots-tag"],
            "noindex, nofollow",
            "{path}"
        );
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("<meta name=\"robots\" content=\"noindex, nofollow\">"),
            "{path}"
        );
    }
    assert_eq!(
        get(&app, "/api/v1/trust").await.headers()["x-robots-tag"],
        "noindex, nofollow"
    );
    // A PNG logo is the link preview image, by its absolute address.
    let html = page(&app, "/").await;
    let src = attr(&html, "class=\"brand-bar__logo\"", "src");
    assert!(src.ends_with(".png"), "{src}");
    assert_eq!(attr(&html, "class=\"brand-bar__logo\"", "width"), "1");
    let image = format!("https://trust.sprout.example/{src}");
    assert!(html.contains(&format!("<meta property=\"og:image\" content=\"{image}\">")));
    assert!(html.contains(&format!(
        "<meta name=\"twitter:image\" content=\"{image}\">"
    )));
    assert_eq!(
        get(&app, &format!("/{src}"))
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        PNG
    );
}

fn answer<'a>(json: &'a Value, question: &str) -> &'a Value {
    json["faq"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["questions"].as_array().unwrap())
        .find(|q| q["question"] == question)
        .unwrap_or_else(|| panic!("no question {question}"))
}

/// The article of the answer anchored `anchor` in the page.
fn article<'a>(html: &'a str, anchor: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{anchor}\""))
        .unwrap_or_else(|| panic!("no #{anchor}"));
    let start = html[..start].rfind("<article").unwrap();
    &html[start..start + html[start..].find("</article>").unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_marked_by_the_live_status_of_the_controls_it_cites() {
    const QUESTION: &str = "Is customer data encrypted in transit and at rest?";
    let clock = ManualClock::new(example_now());
    let app = spawn_app_with_clock(&[], clock.clone()).await;
    // After the startup run (at the app's start), results of the test's own.
    clock.advance(Duration::hours(3));
    let t = |hours: i64| app.now + Duration::hours(hours);
    plant(&app, "encryption-in-transit", Status::Pass, t(1)).await;
    plant(&app, "encryption-at-rest", Status::Pass, t(1)).await;
    let json: Value = get(&app, "/api/v1/trust").await.json().await.unwrap();
    let a = answer(&json, QUESTION);
    let anchor = a["anchor"].as_str().unwrap().to_string();
    assert_eq!(
        anchor,
        "faq-is-customer-data-encrypted-in-transit-and-at-rest"
    );
    assert_eq!(a["status"], "confirmed", "{a:#}");
    assert_eq!(a["badge"], "passing");
    assert_eq!(
        a["marking"],
        "Confirmed: the 2 controls behind this answer are passing."
    );
    let cited: Vec<(&str, &str, &str)> = a["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["basis"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cited,
        [
            ("encryption-in-transit", "passing", "monitored"),
            ("encryption-at-rest", "passing", "monitored")
        ]
    );
    assert!(
        a["answer"]
            .as_str()
            .unwrap()
            .contains("<strong>TLS 1.2 or later</strong>")
    );
    let html = page(&app, "/").await;
    let item = article(&html, &anchor);
    assert!(
        item.contains("<span class=\"badge badge--passing\">Confirmed</span>"),
        "{item}"
    );
    assert!(
        item.contains("<a href=\"#control-encryption-in-transit\">"),
        "{item}"
    );

    // One cited control fails: the answer is no longer confirmed, in the page and the JSON.
    plant(&app, "encryption-in-transit", Status::Fail, t(2)).await;
    let json: Value = get(&app, "/api/v1/trust").await.json().await.unwrap();
    let a = answer(&json, QUESTION);
    assert_eq!(a["status"], "not_confirmed", "{a:#}");
    assert_eq!(a["badge"], "needs_attention");
    assert_eq!(
        a["marking"],
        "Not confirmed right now: Encryption-in-Transit needs attention."
    );
    let html = page(&app, "/").await;
    let item = article(&html, &anchor);
    assert!(item.contains("faq__item--not_confirmed"), "{item}");
    assert!(
        item.contains("<span class=\"badge badge--needs_attention\">Not confirmed</span>"),
        "{item}"
    );
    assert!(!item.contains("Confirmed:"), "{item}");

    // Passing again, then no check for longer than the controls' freshness: stale evidence
    // confirms nothing either.
    plant(&app, "encryption-in-transit", Status::Pass, t(3)).await;
    let json: Value = get(&app, "/api/v1/trust").await.json().await.unwrap();
    assert_eq!(answer(&json, QUESTION)["status"], "confirmed");
    clock.advance(Duration::days(10));
    let json: Value = get(&app, "/api/v1/trust").await.json().await.unwrap();
    let a = answer(&json, QUESTION);
    assert_eq!(a["status"], "not_confirmed", "{a:#}");
    // Stale, unless the scheduler, seeing the days pass, already ran them again (and, with no
    // cloud credentials, could not verify them).
    let marking = a["marking"].as_str().unwrap();
    assert!(
        marking
            == "Not confirmed right now: Encryption-in-Transit is stale, Encryption-at-Rest is stale."
            || marking.contains("is not verified"),
        "{marking}"
    );

    // An answer citing nothing says it is a statement.
    let a = answer(&json, "How will we hear about a security incident?");
    assert_eq!(a["status"], "statement");
    assert_eq!(a["badge"], Value::Null);
    // The contents list links the answers.
    assert!(html.contains("<li><a href=\"#faq\">Questions and answers</a></li>"));
}

fn trellis_validate(config: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["validate", "--config"])
        .arg(config)
        .current_dir(repo())
        .env_remove("TRELLIS_CONFIG")
        .output()
        .unwrap();
    // Problems on stdout, warnings and the tally on stderr.
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The example configuration with `old` replaced by `new`, written into `dir`.
fn example_with(dir: &std::path::Path, old: &str, new: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("config.example.yaml")).unwrap();
    assert!(text.contains(old), "the example has no {old}");
    let text = text
        .replace(old, new)
        .replace("examples/", &format!("{}/examples/", repo().display()))
        .replace(
            "controls_dir: controls",
            &format!("controls_dir: {}/controls", repo().display()),
        );
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Line and column of `needle` in the example (1-based).
fn position(path: &std::path::Path, needle: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle}"));
    format!(
        "{}:{}:{}",
        path.display(),
        i + 1,
        line.find(needle).unwrap() + 1
    )
}

#[test]
fn validate_refuses_faint_accents_unknown_citations_and_unsafe_logos_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    // An orange too faint for text on the light page: the element, the ratio, the mode.
    let cfg = example_with(
        dir.path(),
        "accent_color: \"#5b3cc4\"",
        "accent_color: \"#c86400\"",
    );
    let (code, err) = trellis_validate(&cfg);
    assert_eq!(code, 2, "{err}");
    let at = position(&cfg, "\"#c86400\"");
    assert!(err.contains(&format!("{at}: trust_page.brand.accent_color: #c86400 is not readable enough: 3.67:1 for link text against the page background (#f5f6f8) in light mode, under the 4.5:1 WCAG AA needs")), "{err}");
    assert!(err.contains("for button label"), "{err}");
    assert!(
        !err.contains("focus ring"),
        "3.7:1 is enough for a focus ring: {err}"
    );
    // The light brand blue in dark mode: too dark for everything there.
    let cfg = example_with(
        dir.path(),
        "accent_color_dark: \"#b9a6ff\"",
        "accent_color_dark: \"#0b5cad\"",
    );
    let (code, err) = trellis_validate(&cfg);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&position(&cfg, "\"#0b5cad\"")), "{err}");
    assert!(
        err.contains("in dark mode")
            && err.contains("focus ring")
            && err.contains("choose a lighter colour"),
        "{err}"
    );

    // Citations of an unknown and of a private control.
    let cfg = example_with(
        dir.path(),
        "controls: [removal-of-access]",
        "controls: [removal-of-acess, removal-of-access]",
    );
    let (code, err) = trellis_validate(&cfg);
    assert_eq!(code, 2, "{err}");
    let at = position(&cfg, "removal-of-acess");
    assert!(err.contains(&format!("{at}: trust_page.faq[1].questions[0].controls[0]: no control has the id `removal-of-acess`")), "{err}");

    // A logo with script, and one referring to another site.
    for (svg, why) in [
        (
            "<svg xmlns=\"http://www.w3.org/2000/svg\">\n  <script>alert(1)</script>\n</svg>",
            "SVG refused at 2:3: holds <script>",
        ),
        (
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><foreignObject/></svg>",
            "holds <foreignobject>",
        ),
        (
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><image href=\"https://cdn.example/x.png\"/></svg>",
            "external reference `href=\"https://cdn.example/x.png\"`",
        ),
    ] {
        let logo = dir.path().join("logo.svg");
        std::fs::write(&logo, svg).unwrap();
        let cfg = example_with(
            dir.path(),
            "logo: examples/brand/logo.svg",
            &format!("logo: {}", logo.display()),
        );
        let (code, err) = trellis_validate(&cfg);
        assert_eq!(code, 2, "{err}");
        let at = position(&cfg, &logo.display().to_string());
        assert!(
            err.contains(&format!("{at}: trust_page.brand.logo: ")),
            "{err}"
        );
        assert!(err.contains(why), "{why}: {err}");
    }
    // And the shipped example is accepted.
    let cfg = example_with(dir.path(), "indexing: true", "indexing: true");
    let (code, err) = trellis_validate(&cfg);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn answers_may_cite_only_public_controls_and_serve_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = crate::common::app::example_config(dir.path(), &[]);
    // The cited controls, one of them made private.
    let controls = dir.path().join("controls");
    std::fs::create_dir(&controls).unwrap();
    for file in [
        "access-security/encryption-in-transit.yaml",
        "access-security/encryption-at-rest.yaml",
        "access-security/removal-of-access.yaml",
        "confidentiality/data-retention-and-disposal-policy.yaml",
        "confidentiality/retention-of-customer-data.yaml",
        "organizational-management/background-checks.yaml",
    ] {
        let text = std::fs::read_to_string(repo().join("controls").join(file)).unwrap();
        let text = if file.ends_with("removal-of-access.yaml") {
            assert!(text.contains("public: true"));
            text.replace("public: true", "public: false")
        } else {
            text
        };
        std::fs::write(controls.join(file.rsplit('/').next().unwrap()), text).unwrap();
    }
    let catalog = trellis::catalog::load(&controls).unwrap();
    let problems = trellis::web::faq_citation_problems(&loaded.config.trust_page, &catalog);
    assert_eq!(
        problems,
        [(
            "trust_page.faq[1].questions[0].controls[0]".to_string(),
            "control `removal-of-access` is not public: an answer may cite only controls shown on the page".to_string()
        )]
    );
    // `serve` (and `render`) refuse to start with it, naming the place.
    loaded.config.trust_page.faq[0].questions[0].controls = vec!["no-such-control".into()];
    let catalog = std::sync::Arc::new(
        trellis::catalog::from_config(&loaded, example_now().date_naive()).unwrap(),
    );
    let Err(err) = trellis::startup::site_inputs(&loaded, catalog) else {
        panic!("an unknown citation was accepted");
    };
    let err = err.to_string();
    assert!(
        err.contains(
            "trust_page.faq[0].questions[0].controls[0]: no control has the id `no-such-control`"
        ),
        "{err}"
    );
    assert!(
        err.starts_with(&format!("{}:", loaded.source.display())),
        "{err}"
    );
}
