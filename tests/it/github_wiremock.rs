//! The GitHub probes against wiremock, with answers shaped like GitHub's (tests/fixtures/github,
//! from the examples of GitHub's OpenAPI description): planted violations, multi-page
//! listings, rate limits, 404 versus 403, a failing repository among good ones, Enterprise
//! Server's `/api/v3` prefix, and App authentication.

use crate::common::aws as common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{assert_resources, at, findings, outcome, run};
use trellis::config::Loaded;
use trellis::model::Status;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub(crate) const NOW: &str = "2026-11-22T12:00:00Z";
const TOKEN: &str = "ghp_trellisTestToken0000000000000000000";

/// The GitHub controls (and the parts of shared ones that read GitHub).
pub(crate) const GITHUB_CONTROLS: &[&str] = &[
    "approval-for-system-changes",
    "software-change-testing",
    "vulnerability-scanning",
    "complex-passwords",
    "baseline-configurations",
];

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::repo().join("tests/fixtures/github").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json(status: u16, file: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_raw(fixture(file), "application/json; charset=utf-8")
        .insert_header("x-ratelimit-limit", "5000")
        .insert_header("x-ratelimit-remaining", "4990")
        .insert_header("x-github-api-version-selected", "2022-11-28")
}

/// Mounts the `acme` organisation below `prefix` (`""` for GitHub.com, `/api/v3` for
/// Enterprise Server), at low priority so that a test can shadow any answer.
async fn acme(server: &MockServer, prefix: &str) {
    // Members come in two pages, linked as GitHub links them (by organisation id).
    let page2 = format!(
        "{}{prefix}/organizations/9919/members?per_page=100&page=2",
        server.uri()
    );
    let first_page = json(200, "members_1.json").insert_header(
        "link",
        format!("<{page2}>; rel=\"next\", <{page2}>; rel=\"last\"").as_str(),
    );
    // (path, query: name and value, or None for "absent", answer)
    type Route = (
        String,
        Vec<(&'static str, Option<&'static str>)>,
        ResponseTemplate,
    );
    let mut routes: Vec<Route> = vec![
        ("/orgs/acme".into(), vec![], json(200, "org.json")),
        (
            "/orgs/acme/members".into(),
            vec![("filter", None), ("role", None)],
            first_page,
        ),
        (
            "/organizations/9919/members".into(),
            vec![("page", Some("2"))],
            json(200, "members_2.json"),
        ),
        (
            "/orgs/acme/members".into(),
            vec![("role", Some("admin"))],
            json(200, "members_admin.json"),
        ),
        (
            "/orgs/acme/members".into(),
            vec![("filter", Some("2fa_disabled"))],
            json(200, "members_2fa_disabled.json"),
        ),
        (
            "/orgs/acme/outside_collaborators".into(),
            vec![("filter", None)],
            json(200, "outside_collaborators.json"),
        ),
        (
            "/orgs/acme/outside_collaborators".into(),
            vec![("filter", Some("2fa_disabled"))],
            json(200, "outside_collaborators_2fa_disabled.json"),
        ),
        ("/orgs/acme/repos".into(), vec![], json(200, "repos.json")),
        (
            "/orgs/acme/rulesets/21".into(),
            vec![],
            json(200, "org_ruleset_21.json"),
        ),
    ];
    // Default-branch protection: classic on api; none on web (a ruleset instead) and payments;
    // infra's cannot be read by these credentials. Dependabot is off on payments.
    for (repo, protection, rules, alerts_on, alerts) in [
        (
            "api",
            json(200, "protection_api.json"),
            "rules_empty.json",
            204,
            json(200, "dependabot_alerts_api.json"),
        ),
        (
            "web",
            json(404, "error_branch_not_protected.json"),
            "rules_web.json",
            204,
            json(200, "dependabot_alerts_empty.json"),
        ),
        (
            "payments",
            json(404, "error_branch_not_protected.json"),
            "rules_empty.json",
            404,
            json(403, "error_dependabot_disabled.json"),
        ),
        (
            "infra",
            json(403, "error_not_accessible.json"),
            "rules_empty.json",
            204,
            json(200, "dependabot_alerts_empty.json"),
        ),
    ] {
        let r = |p: &str| format!("/repos/acme/{repo}/{p}");
        routes.push((r("branches/main/protection"), vec![], protection));
        routes.push((r("rules/branches/main"), vec![], json(200, rules)));
        routes.push((
            r("vulnerability-alerts"),
            vec![],
            ResponseTemplate::new(alerts_on),
        ));
        routes.push((
            r("dependabot/alerts"),
            vec![("state", Some("open"))],
            alerts,
        ));
    }
    for (p, query, answer) in routes {
        let mut mock = Mock::given(method("GET")).and(path(format!("{prefix}{p}")));
        for (name, value) in query {
            mock = match value {
                Some(v) => mock.and(query_param(name, v)),
                None => mock.and(query_param_is_missing(name)),
            };
        }
        mock.respond_with(answer)
            .with_priority(10)
            .mount(server)
            .await;
    }
}

/// A config whose only source is GitHub at `api_url`, with `auth` (YAML lines under
/// `sources.github`, indented four spaces) and `extra` settings.
fn github_config(dir: &Path, api_url: &str, auth: &str, extra: &str) -> Loaded {
    let text = format!(
        "controls_dir: {controls}\nsources:\n  github:\n    api_url: {api_url}\n    orgs: [acme]\n    repos:\n      exclude: [\"sandbox-*\"]\n    max_attempts: 3\n    initial_backoff: 1ms\n    call_timeout: 5s\n{auth}{extra}",
        controls = common::repo().join("controls").display(),
    );
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, &text).unwrap();
    trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn token_auth(dir: &Path) -> String {
    let file = dir.join("github-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    format!("    token_file: {}\n", file.display())
}

fn route(r: &Request) -> String {
    let mut s = r.url.path().to_string();
    if let Some(q) = r.url.query() {
        s.push('?');
        s.push_str(q);
    }
    s
}

async fn counts(server: &MockServer) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in server.received_requests().await.unwrap_or_default() {
        *out.entry(route(&r)).or_default() += 1;
    }
    out
}

/// Answers Trellis's batched GraphQL query with each repository's object from
/// `graphql_repositories.json` under its alias (`r0`…, names in the variables `n0`…).
struct GraphqlAcme;

impl wiremock::Respond for GraphqlAcme {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let repos: serde_json::Value =
            serde_json::from_str(&fixture("graphql_repositories.json")).unwrap();
        let query: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(query["variables"]["owner"], "acme");
        assert!(query["query"].as_str().unwrap().contains("...repo"));
        let mut data = serde_json::Map::new();
        data.insert(
            "rateLimit".into(),
            serde_json::json!({"cost": 1, "remaining": 4999, "resetAt": "2026-11-22T13:00:00Z"}),
        );
        let mut k = 0;
        while let Some(name) = query["variables"][format!("n{k}")].as_str() {
            data.insert(format!("r{k}"), repos[name].clone());
            k += 1;
        }
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"data": data}))
            .insert_header("x-ratelimit-resource", "graphql")
            .insert_header("x-ratelimit-remaining", "4999")
    }
}

/// The planted scenario, with the API at `prefix` below the mock server; per-repository
/// settings through GraphQL (`graphql`: answered at `/graphql`, `/api/graphql` on Enterprise
/// Server), or over REST (GraphQL unanswered: 404).
async fn planted(prefix: &str, graphql: bool) {
    let server = MockServer::start().await;
    if graphql {
        let at = if prefix.is_empty() {
            "/graphql"
        } else {
            "/api/graphql"
        };
        Mock::given(method("POST"))
            .and(path(at))
            .respond_with(GraphqlAcme)
            .mount(&server)
            .await;
    }
    acme(&server, prefix).await;
    let dir = tempfile::tempdir().unwrap();
    let api = format!("{}{prefix}", server.uri());
    let loaded = github_config(dir.path(), &api, &token_auth(dir.path()), "");
    let report = run(&loaded, GITHUB_CONTROLS, at(NOW)).await;
    use Status::{Error, Fail, NotApplicable, Pass};

    // api: two reviews, admins included; web: one review from an organisation ruleset nobody
    // may bypass; payments: nothing; infra: protection unreadable (403) — an error for infra
    // alone, naming the permission.
    assert_resources(
        &report,
        "approval-for-system-changes",
        Pass,
        &["acme/api", "acme/web"],
    );
    assert_resources(
        &report,
        "approval-for-system-changes",
        Fail,
        &["acme/payments"],
    );
    assert_resources(
        &report,
        "approval-for-system-changes",
        Error,
        &["acme/infra"],
    );
    assert_eq!(outcome(&report, "approval-for-system-changes").status, Fail);
    let infra = &findings(&report, "approval-for-system-changes", Error)[0];
    assert!(
        infra.message.contains(&format!("GET {prefix}/repos/acme/infra/branches/main/protection: HTTP 403 (Resource not accessible by integration): the credentials need admin access to the repository")),
        "{}",
        infra.message
    );
    let web = findings(&report, "approval-for-system-changes", Pass)
        .into_iter()
        .find(|f| f.resource.ends_with("acme/web"))
        .unwrap();
    assert_eq!(web.actual.to_value()["required_approving_reviews"], 1);
    assert_eq!(web.actual.to_value()["reviews_enforced_for_admins"], true);
    // Archived, forked and excluded repositories are not read.
    for skipped in ["legacy", "lib-fork", "sandbox-tmp"] {
        assert!(
            !outcome(&report, "approval-for-system-changes")
                .findings
                .iter()
                .any(|f| f.resource.contains(skipped)),
            "{skipped}"
        );
    }

    // Only api requires a status check.
    assert_resources(&report, "software-change-testing", Pass, &["acme/api"]);
    assert_resources(
        &report,
        "software-change-testing",
        Fail,
        &["acme/web", "acme/payments"],
    );

    // The organisation does not require 2FA; dave-old (page 2 of the members) and the outside
    // collaborator have it off.
    let c = outcome(&report, "complex-passwords");
    assert_eq!(c.status, Fail);
    assert_eq!(c.checks[2].status, Fail, "2FA requirement");
    assert_eq!(c.checks[3].status, Fail, "members without 2FA");
    assert_resources(
        &report,
        "complex-passwords",
        Fail,
        &["github:acme", "acme/@dave-old", "acme/@ext-contractor"],
    );
    let dave = findings(&report, "complex-passwords", Fail)
        .into_iter()
        .find(|f| f.resource.ends_with("@dave-old"))
        .unwrap();
    assert_eq!(
        dave.message,
        "GitHub account dave-old (member of acme) fails `!two_factor_disabled`"
    );
    assert!(
        findings(&report, "complex-passwords", Pass)
            .iter()
            .any(|f| f
                .message
                .starts_with("GitHub account alice-dev (owner of acme)")),
    );

    // Dependabot: payments has alerts off (and its alerts cannot be listed); api's critical
    // lodash alert is 21 days old (window 15); the 12-day high and the medium alert are fine.
    assert_resources(
        &report,
        "vulnerability-scanning",
        Fail,
        &["acme/payments", "acme/api#dependabot/7"],
    );
    assert_resources(
        &report,
        "vulnerability-scanning",
        Pass,
        &[
            "acme/api",
            "acme/web",
            "acme/infra",
            "acme/api#dependabot/8",
            "acme/api#dependabot/9",
        ],
    );
    let disabled = &findings(&report, "vulnerability-scanning", Error)[0];
    assert!(
        disabled
            .message
            .contains("Dependabot alerts are disabled for this repository"),
        "{}",
        disabled.message
    );
    let lodash = findings(&report, "vulnerability-scanning", Fail)
        .into_iter()
        .find(|f| f.resource.ends_with("#dependabot/7"))
        .unwrap();
    assert!(
        lodash
            .message
            .starts_with("Dependabot alert 7 in acme/api (critical, lodash GHSA-35jh-r3h4-6jhm)"),
        "{}",
        lodash.message
    );
    // 21 days and 3 hours, rounded up.
    assert_eq!(lodash.actual.to_value()["age_days"], 22);

    // Secret scanning with push protection: only api and infra have both.
    let baseline_fail: Vec<&str> = findings(&report, "baseline-configurations", Fail)
        .iter()
        .map(|f| f.resource.as_str())
        .collect();
    assert_eq!(baseline_fail, ["github:acme/web", "github:acme/payments"]);
    // The AWS part of baseline-configurations is not configured: not verified.
    assert_eq!(
        outcome(&report, "baseline-configurations").checks[0].status,
        Error
    );
    assert!(findings(&report, "complex-passwords", NotApplicable).is_empty());

    // Each page was asked for once in the run, with the token and the API version.
    for (route, n) in counts(&server).await {
        assert_eq!(n, 1, "{route} requested {n} times");
    }
    for r in server.received_requests().await.unwrap() {
        let header = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(
            header("authorization"),
            Some(format!("Bearer {TOKEN}")),
            "{}",
            route(&r)
        );
        assert_eq!(
            header("x-github-api-version").as_deref(),
            Some("2022-11-28")
        );
    }
    let asked = counts(&server).await;
    assert!(asked.contains_key(&format!(
        "{prefix}/organizations/9919/members?per_page=100&page=2"
    )));
    // Through GraphQL, REST reads only what GraphQL does not show: infra, whose settings
    // these credentials do not administer.
    let protection_asked: Vec<&String> = asked
        .keys()
        .filter(|r| r.ends_with("/branches/main/protection"))
        .collect();
    if graphql {
        assert_eq!(
            protection_asked,
            [&format!(
                "{prefix}/repos/acme/infra/branches/main/protection"
            )]
        );
        assert!(!asked.keys().any(|r| r.contains("/rules/branches/")));
    } else {
        assert_eq!(protection_asked.len(), 4);
    }
}

#[tokio::test]
async fn planted_violations_are_found_on_github_com() {
    planted("", false).await;
}

#[tokio::test]
async fn enterprise_server_answers_below_api_v3() {
    planted("/api/v3", false).await;
}

#[tokio::test]
async fn planted_violations_are_found_through_graphql() {
    planted("", true).await;
}

#[tokio::test]
async fn enterprise_server_graphql_answers_at_api_graphql() {
    planted("/api/v3", true).await;
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let server = MockServer::start().await;
    let reset = (chrono::Utc::now().timestamp() + 1).to_string();
    // Primary limit on the organisation, secondary on the first members page: once each.
    Mock::given(method("GET"))
        .and(path("/orgs/acme"))
        .respond_with(
            json(403, "error_rate_limit.json")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.as_str()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/members"))
        .respond_with(
            json(429, "error_secondary_rate_limit.json").insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    acme(&server, "").await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = github_config(dir.path(), &server.uri(), &token_auth(dir.path()), "");
    let report = run(&loaded, &["complex-passwords"], at(NOW)).await;
    let c = outcome(&report, "complex-passwords");
    assert_eq!(c.checks[2].status, Status::Fail, "{:?}", c.checks[2]);
    assert_eq!(c.checks[3].status, Status::Fail, "{:?}", c.checks[3]);
    let n = counts(&server).await;
    assert_eq!(n["/orgs/acme"], 2, "{n:?}");
}

#[tokio::test]
async fn a_rate_limit_beyond_the_budget_is_an_error() {
    let server = MockServer::start().await;
    let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
    Mock::given(method("GET"))
        .and(path("/orgs/acme"))
        .respond_with(
            json(403, "error_rate_limit.json")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.as_str()),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    acme(&server, "").await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = github_config(
        dir.path(),
        &server.uri(),
        &token_auth(dir.path()),
        "    rate_limit_wait: 5s\n",
    );
    let report = run(&loaded, &["complex-passwords"], at(NOW)).await;
    assert_org_throttled(
        &report,
        "throttled: GET /orgs/acme (GET /orgs/{org}): GitHub's primary rate limit needs a",
    );
    let c = outcome(&report, "complex-passwords");
    // The members check needs the organisation's answer too (to know the credentials are an
    // owner's): not verified either.
    assert_eq!(c.checks[3].status, Status::Error);
}

/// The organisation's 2FA check is `error` (never pass or fail), its message `says` what the
/// limit is and names the budget it exceeds.
pub(crate) fn assert_org_throttled(report: &trellis::runner::RunReport, says: &str) {
    let c = outcome(report, "complex-passwords");
    assert_eq!(c.checks[2].status, Status::Error, "{:?}", c.checks[2]);
    let e = findings(report, "complex-passwords", Status::Error)
        .into_iter()
        .find(|f| f.resource == "github:acme:github.org")
        .unwrap();
    for part in [says, "s left of sources.github.rate_limit_wait"] {
        assert!(e.message.contains(part), "{}", e.message);
    }
}

#[tokio::test]
async fn a_repository_answering_500_is_an_error_and_the_others_are_evaluated() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/api/branches/main/protection"))
        .respond_with(json(500, "error_server.json"))
        .with_priority(1)
        .mount(&server)
        .await;
    acme(&server, "").await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = github_config(dir.path(), &server.uri(), &token_auth(dir.path()), "");
    let report = run(&loaded, &["approval-for-system-changes"], at(NOW)).await;
    assert_resources(
        &report,
        "approval-for-system-changes",
        Status::Error,
        &["acme/api", "acme/infra"],
    );
    assert_resources(
        &report,
        "approval-for-system-changes",
        Status::Pass,
        &["acme/web"],
    );
    assert_resources(
        &report,
        "approval-for-system-changes",
        Status::Fail,
        &["acme/payments"],
    );
    let api = findings(&report, "approval-for-system-changes", Status::Error)
        .into_iter()
        .find(|f| f.resource.contains("acme/api"))
        .unwrap();
    assert!(
        api.message.contains("GET /repos/acme/api/branches/main/protection: GitHub answered HTTP 500 after 3 attempt(s)"),
        "{}",
        api.message
    );
    assert_eq!(
        counts(&server).await["/repos/acme/api/branches/main/protection"],
        3
    );
}

#[tokio::test]
async fn bad_or_missing_credentials_are_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(401, "error_bad_credentials.json"))
        .with_priority(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let bad = github_config(dir.path(), &server.uri(), &token_auth(dir.path()), "");
    let report = run(&bad, &["software-change-testing"], at(NOW)).await;
    let o = outcome(&report, "software-change-testing");
    assert_eq!(o.status, Status::Error, "{}", o.summary);
    let e = &findings(&report, "software-change-testing", Status::Error)[0];
    assert!(
        e.message
            .contains("GitHub rejected the credentials (HTTP 401: Bad credentials)"),
        "{}",
        e.message
    );

    // A token variable that is not set: an error naming it, and nothing is sent.
    let quiet = MockServer::start().await;
    let unset = github_config(
        dir.path(),
        &quiet.uri(),
        "    token_env: TRELLIS_TEST_SURELY_UNSET_GITHUB_TOKEN\n",
        "",
    );
    let report = run(&unset, &["software-change-testing"], at(NOW)).await;
    let o = outcome(&report, "software-change-testing");
    assert_eq!(o.status, Status::Error);
    let e = &findings(&report, "software-change-testing", Status::Error)[0];
    assert!(
        e.message.contains("environment variable `TRELLIS_TEST_SURELY_UNSET_GITHUB_TOKEN` (sources.github.token_env) is not set"),
        "{}",
        e.message
    );
    assert!(quiet.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_github_app_acts_as_its_installation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/installation"))
        .respond_with(json(200, "org_installation.json"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/app/installations/42/access_tokens"))
        .respond_with(json(201, "installation_token.json"))
        .mount(&server)
        .await;
    acme(&server, "").await;
    let dir = tempfile::tempdir().unwrap();
    let key = common::repo().join("tests/fixtures/github/app-key.pem");
    let auth = format!(
        "    app:\n      app_id: 12345\n      private_key_file: {}\n",
        key.display()
    );
    let loaded = github_config(dir.path(), &server.uri(), &auth, "");
    let report = run(&loaded, &["software-change-testing"], at(NOW)).await;
    assert_eq!(
        outcome(&report, "software-change-testing").status,
        Status::Fail
    );
    let requests = server.received_requests().await.unwrap();
    let auth_of = |r: &Request| {
        r.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    // The App signs a JWT to find its installation and mint a token ...
    for r in requests
        .iter()
        .filter(|r| r.url.path().contains("installation"))
    {
        let a = auth_of(r);
        assert!(a.starts_with("Bearer eyJ"), "{}: {a}", r.url.path());
        let claims = a["Bearer ".len()..].split('.').nth(1).unwrap();
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["iss"].to_string().trim_matches('"'), "12345");
    }
    // ... and everything else is asked with the installation token.
    let data: Vec<&Request> = requests
        .iter()
        .filter(|r| !r.url.path().contains("installation"))
        .collect();
    assert!(!data.is_empty());
    for r in data {
        assert_eq!(
            auth_of(r),
            "Bearer ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            "{}",
            r.url.path()
        );
    }
}

/// Shadows the healthy answer of `route` (below the API root) with `answer`.
async fn answer(server: &MockServer, route: &str, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(answer)
        .with_priority(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn without_owner_credentials_2fa_evidence_is_an_error_not_a_pass() {
    // A member's view of the organisation: the 2FA requirement is not shown.
    let server = MockServer::start().await;
    answer(&server, "/orgs/acme", json(200, "org_as_member.json")).await;
    acme(&server, "").await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = github_config(dir.path(), &server.uri(), &token_auth(dir.path()), "");
    let report = run(&loaded, &["complex-passwords"], at(NOW)).await;
    let c = outcome(&report, "complex-passwords");
    assert_eq!(c.checks[2].status, Status::Error, "{:?}", c.checks[2]);
    assert_eq!(c.checks[3].status, Status::Error, "{:?}", c.checks[3]);
    for f in findings(&report, "complex-passwords", Status::Error)
        .iter()
        .filter(|f| f.resource.starts_with("github:"))
    {
        assert!(
            f.message.contains("an organisation owner's"),
            "{}",
            f.message
        );
    }

    // GitHub refusing the owner-only filter outright (422): also an error naming it.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/orgs/acme/members"))
        .and(query_param("filter", "2fa_disabled"))
        .respond_with(json(422, "error_owner_filter.json"))
        .with_priority(1)
        .mount(&server)
        .await;
    acme(&server, "").await;
    let loaded = github_config(dir.path(), &server.uri(), &token_auth(dir.path()), "");
    let report = run(&loaded, &["complex-passwords"], at(NOW)).await;
    let c = outcome(&report, "complex-passwords");
    assert_eq!(c.checks[3].status, Status::Error, "{:?}", c.checks[3]);
    let e = findings(&report, "complex-passwords", Status::Error)
        .into_iter()
        .find(|f| f.resource == "github:acme:github.members")
        .unwrap();
    assert!(
        e.message.contains("HTTP 422 (Only owners can use this filter.): the credentials need an organisation owner's credentials"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_ruleset_admins_may_bypass_does_not_bind_them() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/orgs/acme/rulesets/21",
        json(200, "org_ruleset_21_admin_bypass.json"),
    )
    .await;
    acme(&server, "").await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = github_config(dir.path(), &server.uri(), &token_auth(dir.path()), "");
    let report = run(&loaded, &["approval-for-system-changes"], at(NOW)).await;
    let web = findings(&report, "approval-for-system-changes", Status::Fail)
        .into_iter()
        .find(|f| f.resource.ends_with("acme/web"))
        .unwrap();
    assert_eq!(web.actual.to_value()["required_approving_reviews"], 1);
    assert_eq!(web.actual.to_value()["reviews_enforced_for_admins"], false);

    // A bypass list these credentials may not read: unknown, so `error` saying why.
    let server = MockServer::start().await;
    answer(
        &server,
        "/orgs/acme/rulesets/21",
        json(403, "error_not_accessible.json"),
    )
    .await;
    acme(&server, "").await;
    let loaded = github_config(dir.path(), &server.uri(), &token_auth(dir.path()), "");
    let report = run(
        &loaded,
        &["approval-for-system-changes", "software-change-testing"],
        at(NOW),
    )
    .await;
    let web = findings(&report, "approval-for-system-changes", Status::Error)
        .into_iter()
        .find(|f| f.resource.ends_with("acme/web"))
        .unwrap();
    assert!(
        web.message.contains(
            "reviews_enforced_for_admins is unknown: who may bypass a ruleset could not be read"
        ),
        "{}",
        web.message
    );
    // The status-check check of the same repository does not need it.
    assert!(
        findings(&report, "software-change-testing", Status::Fail)
            .iter()
            .any(|f| f.resource.ends_with("acme/web"))
    );
}

#[tokio::test]
async fn security_settings_hidden_from_non_admins_are_errors_naming_why() {
    let server = MockServer::start().await;
    answer(
        &server,
        "/orgs/acme/repos",
        json(200, "repos_without_admin.json"),
    )
    .await;
    // 404 from vulnerability-alerts, yet alerts can be listed: they are enabled.
    answer(
        &server,
        "/repos/acme/web/vulnerability-alerts",
        ResponseTemplate::new(404),
    )
    .await;
    acme(&server, "").await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = github_config(dir.path(), &server.uri(), &token_auth(dir.path()), "");
    let report = run(
        &loaded,
        &["baseline-configurations", "vulnerability-scanning"],
        at(NOW),
    )
    .await;
    let errors = findings(&report, "baseline-configurations", Status::Error);
    let web = errors
        .iter()
        .find(|f| f.resource.ends_with("acme/web"))
        .unwrap();
    assert!(
        web.message.contains("secret_scanning is unknown: GitHub shows `security_and_analysis` only to those with admin access"),
        "{}",
        web.message
    );
    // Dependabot evidence does not depend on it: web's alerts are on, payments' off.
    assert_resources(
        &report,
        "vulnerability-scanning",
        Status::Fail,
        &["acme/payments", "acme/api#dependabot/7"],
    );
    assert!(
        findings(&report, "vulnerability-scanning", Status::Pass)
            .iter()
            .any(|f| f.resource == "github:acme/web")
    );
}
