//! GitHub's request budget, pinned against a request-counting fake of a synthetic
//! organisation (N repositories, M members) whose answers are shaped like GitHub's: the REST
//! listings (paged by `Link`, with `ETag`s and `304 Not Modified`), the per-repository REST
//! calls, and the GraphQL query Trellis batches 100 repositories into.
//!
//! The plan, for one organisation whose credentials are an owner's and an admin's of every
//! repository (M members, N repositories, all selected, R rulesets in force):
//!
//! ```text
//! requests ≤ 1 (org) + ⌈M/100⌉ (members) + 4 (owners, 2FA disabled, outside collaborators
//!            and those without 2FA: ≤ 100 each) + ⌈N/100⌉ (repository pages)
//!            + ⌈N/100⌉ (GraphQL) + R (rulesets' bypass lists)
//! ```
//!
//! and a run whose REST answers are all unchanged since the last stored run asks only the
//! ⌈N/100⌉ GraphQL queries in full: every GET is a `304`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use trellis::catalog::{self, Control};
use trellis::config::Loaded;
use trellis::model::{Status, Trigger};
use trellis::probes::ProbeContext;
use trellis::runner::{self, NoSink, RunReport};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::aws::{at, findings, outcome, repo};
use crate::github_wiremock::{GITHUB_CONTROLS as CONTROLS, NOW, assert_org_throttled};

/// Rulesets in force in the synthetic organisation (one organisation ruleset).
const RULESETS: usize = 1;

/// The planned requests of one run (see the module's documentation).
fn planned(repos: usize, members: usize) -> usize {
    1 + members.div_ceil(100) + 4 + 2 * repos.div_ceil(100) + RULESETS
}

/// What the fake counted.
#[derive(Debug, Default, Clone)]
struct Stats {
    requests: usize,
    /// REST requests (GraphQL has a limit of its own).
    core: usize,
    not_modified: usize,
    by_route: BTreeMap<String, usize>,
    /// Requests that arrived while the primary limit was used up.
    while_exhausted: usize,
}

/// A primary limit the fake says is used up after its first REST answer, until `reset`.
#[derive(Debug, Clone, Copy)]
struct Exhaust {
    reset: i64,
}

struct Inner {
    base: OnceLock<String>,
    repos: usize,
    members: usize,
    graphql: bool,
    /// A repository GraphQL refuses (`FORBIDDEN`).
    forbidden: Option<String>,
    exhaust: Option<Exhaust>,
    /// GraphQL's points used up by the first query, for an hour.
    points_used_up: bool,
    stats: Mutex<Stats>,
}

/// The synthetic organisation `acme`.
#[derive(Clone)]
struct Fake(Arc<Inner>);

fn name(i: usize) -> String {
    format!("repo-{i:04}")
}

/// Repository `i`: classic protection (i % 3 == 0), the organisation ruleset (i % 3 == 1) or
/// nothing; Dependabot alerts off when i % 7 == 0, one open alert when i % 5 == 0.
fn classic(i: usize) -> bool {
    i.is_multiple_of(3)
}
fn ruleset(i: usize) -> bool {
    i % 3 == 1
}
fn alerts_on(i: usize) -> bool {
    !i.is_multiple_of(7)
}
/// When repository `i`'s alert was opened: every tenth is older than the high window.
fn created(i: usize) -> &'static str {
    if i.is_multiple_of(10) {
        "2026-10-01T09:00:00Z"
    } else {
        "2026-11-20T09:00:00Z"
    }
}
fn has_alert(i: usize) -> bool {
    alerts_on(i) && i.is_multiple_of(5)
}

impl Fake {
    fn new(repos: usize, members: usize, graphql: bool) -> Fake {
        Fake(Arc::new(Inner {
            base: OnceLock::new(),
            repos,
            members,
            graphql,
            forbidden: None,
            exhaust: None,
            points_used_up: false,
            stats: Mutex::default(),
        }))
    }

    /// The fake with `change` made to its settings (before it starts).
    fn set(self, change: impl FnOnce(&mut Inner)) -> Fake {
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|_| panic!("shared"));
        change(&mut inner);
        Fake(Arc::new(inner))
    }

    async fn start(self) -> (MockServer, Fake) {
        let server = MockServer::start().await;
        assert!(self.0.base.set(server.uri()).is_ok(), "started twice");
        Mock::given(wiremock::matchers::any())
            .respond_with(self.clone())
            .mount(&server)
            .await;
        (server, self)
    }

    fn stats(&self) -> Stats {
        self.0.stats.lock().unwrap().clone()
    }

    fn reset_stats(&self) {
        *self.0.stats.lock().unwrap() = Stats::default();
    }

    fn base(&self) -> &str {
        self.0.base.get().map(String::as_str).unwrap_or_default()
    }

    fn user(&self, i: usize) -> Value {
        let login = format!("user-{i:04}");
        json!({
            "login": login, "id": 1000 + i, "node_id": format!("MDQ6VXNlcj{i}"),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", 1000 + i),
            "url": format!("https://api.github.com/users/{login}"),
            "html_url": format!("https://github.com/{login}"),
            "type": "User", "site_admin": false
        })
    }

    fn repo(&self, i: usize) -> Value {
        let n = name(i);
        let on = |b: bool| json!({"status": if b { "enabled" } else { "disabled" }});
        json!({
            "id": 5000 + i, "node_id": format!("R_kgDO{i:06}"), "name": n,
            "full_name": format!("acme/{n}"), "private": true, "visibility": "private",
            "owner": {"login": "acme", "id": 9919, "type": "Organization", "site_admin": false},
            "html_url": format!("https://github.com/acme/{n}"),
            "url": format!("https://api.github.com/repos/acme/{n}"),
            "fork": false, "archived": false, "disabled": false, "default_branch": "main",
            "created_at": "2024-01-01T00:00:00Z", "pushed_at": "2026-11-20T00:00:00Z",
            "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true},
            "security_and_analysis": {
                "advanced_security": on(true),
                "secret_scanning": on(i.is_multiple_of(2)),
                "secret_scanning_push_protection": on(i.is_multiple_of(4)),
                "dependabot_security_updates": on(alerts_on(i)),
            }
        })
    }

    fn alert_rest(&self, i: usize) -> Value {
        json!({
            "number": 1, "state": "open",
            "dependency": {"package": {"ecosystem": "npm", "name": "lodash"}, "manifest_path": "package-lock.json", "scope": "runtime"},
            "security_advisory": {"ghsa_id": "GHSA-35jh-r3h4-6jhm", "cve_id": "CVE-2021-23337", "summary": "Command injection in lodash", "severity": "high"},
            "security_vulnerability": {"package": {"ecosystem": "npm", "name": "lodash"}, "severity": "high", "vulnerable_version_range": "< 4.17.21", "first_patched_version": {"identifier": "4.17.21"}},
            "url": format!("https://api.github.com/repos/acme/{}/dependabot/alerts/1", name(i)),
            "html_url": format!("https://github.com/acme/{}/security/dependabot/1", name(i)),
            "created_at": created(i),
            "updated_at": "2026-11-20T09:00:00Z"
        })
    }

    fn alert_graphql(&self, i: usize) -> Value {
        json!({
            "number": 1, "state": "OPEN",
            "createdAt": created(i),
            "vulnerableManifestPath": "package-lock.json",
            "securityVulnerability": {"severity": "HIGH", "package": {"ecosystem": "NPM", "name": "lodash"}, "firstPatchedVersion": {"identifier": "4.17.21"}},
            "securityAdvisory": {"ghsaId": "GHSA-35jh-r3h4-6jhm", "severity": "HIGH", "summary": "Command injection in lodash",
                "identifiers": [{"type": "GHSA", "value": "GHSA-35jh-r3h4-6jhm"}, {"type": "CVE", "value": "CVE-2021-23337"}]}
        })
    }

    fn rules_rest(&self, i: usize) -> Value {
        if !ruleset(i) {
            return json!([]);
        }
        json!([
            {"type": "pull_request", "ruleset_source_type": "Organization", "ruleset_source": "acme", "ruleset_id": 21,
             "parameters": {"required_approving_review_count": 1, "dismiss_stale_reviews_on_push": true, "require_code_owner_review": false,
                            "require_last_push_approval": false, "required_review_thread_resolution": false}},
            {"type": "required_status_checks", "ruleset_source_type": "Organization", "ruleset_source": "acme", "ruleset_id": 21,
             "parameters": {"strict_required_status_checks_policy": false, "required_status_checks": [{"context": "ci/test"}]}},
            {"type": "non_fast_forward", "ruleset_source_type": "Organization", "ruleset_source": "acme", "ruleset_id": 21}
        ])
    }

    fn repo_graphql(&self, i: usize) -> Value {
        let source = json!({"__typename": "Organization", "login": "acme"});
        let set = json!({"databaseId": 21, "name": "protect-default-branches", "source": source});
        let rules = if ruleset(i) {
            json!([
                {"type": "PULL_REQUEST", "parameters": {"requiredApprovingReviewCount": 1, "dismissStaleReviewsOnPush": true, "requireCodeOwnerReview": false}, "repositoryRuleset": set},
                {"type": "REQUIRED_STATUS_CHECKS", "parameters": {"requiredStatusChecks": [{"context": "ci/test"}]}, "repositoryRuleset": set},
                {"type": "NON_FAST_FORWARD", "parameters": null, "repositoryRuleset": set}
            ])
        } else {
            json!([])
        };
        let protection = if classic(i) {
            json!({"pattern": "main", "requiresApprovingReviews": true, "requiredApprovingReviewCount": 1,
                   "dismissesStaleReviews": false, "requiresCodeOwnerReviews": false, "isAdminEnforced": true,
                   "requiresStatusChecks": true, "requiredStatusCheckContexts": ["ci/build"],
                   "allowsForcePushes": false, "allowsDeletions": false})
        } else {
            Value::Null
        };
        let alerts: Vec<Value> = if has_alert(i) {
            vec![self.alert_graphql(i)]
        } else {
            vec![]
        };
        json!({
            "nameWithOwner": format!("acme/{}", name(i)),
            "viewerCanAdminister": true,
            "hasVulnerabilityAlertsEnabled": alerts_on(i),
            "defaultBranchRef": {"name": "main", "branchProtectionRule": protection,
                                 "rules": {"pageInfo": {"hasNextPage": false}, "nodes": rules}},
            "vulnerabilityAlerts": {"pageInfo": {"hasNextPage": false}, "nodes": alerts}
        })
    }

    /// A page of `items` (1-based `page`), linked as GitHub links pages.
    fn page(&self, route: &str, items: Vec<Value>, page: usize) -> (Value, Option<String>) {
        let pages = items.len().div_ceil(100).max(1);
        let chunk: Vec<Value> = items.into_iter().skip((page - 1) * 100).take(100).collect();
        let link = (page < pages).then(|| {
            let next = format!("{}{route}per_page=100&page={}", self.base(), page + 1);
            let last = format!("{}{route}per_page=100&page={pages}", self.base());
            format!("<{next}>; rel=\"next\", <{last}>; rel=\"last\"")
        });
        (Value::Array(chunk), link)
    }

    fn graphql(&self, body: &[u8]) -> ResponseTemplate {
        if !self.0.graphql {
            return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}));
        }
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"message": "Problems parsing JSON"}));
        };
        let vars = &request["variables"];
        let mut data = serde_json::Map::new();
        let mut errors = Vec::new();
        let mut k = 0;
        while let Some(n) = vars[format!("n{k}")].as_str() {
            let alias = format!("r{k}");
            k += 1;
            let index = n
                .strip_prefix("repo-")
                .and_then(|i| i.parse::<usize>().ok());
            match index {
                Some(_) if self.0.forbidden.as_deref() == Some(n) => {
                    data.insert(alias.clone(), Value::Null);
                    errors.push(json!({"type": "FORBIDDEN", "path": [alias], "locations": [{"line": 2, "column": 3}],
                                       "message": "Resource not accessible by integration"}));
                }
                Some(i) if i < self.0.repos => {
                    data.insert(alias, self.repo_graphql(i));
                }
                _ => {
                    data.insert(alias.clone(), Value::Null);
                    errors.push(json!({"type": "NOT_FOUND", "path": [alias],
                                       "message": format!("Could not resolve to a Repository with the name 'acme/{n}'.")}));
                }
            }
        }
        let (remaining, reset) = if self.0.points_used_up {
            (0, Utc::now() + chrono::Duration::hours(1))
        } else {
            (4990, Utc::now() + chrono::Duration::minutes(30))
        };
        data.insert(
            "rateLimit".into(),
            json!({"cost": 2, "remaining": remaining, "resetAt": reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
        );
        let mut answer = json!({"data": data});
        if !errors.is_empty() {
            answer["errors"] = Value::Array(errors);
        }
        ResponseTemplate::new(200)
            .set_body_json(answer)
            .insert_header("x-ratelimit-resource", "graphql")
            .insert_header("x-ratelimit-limit", "5000")
            .insert_header("x-ratelimit-remaining", "4990")
    }

    /// The REST answer for `path` and `query` (status, body, link).
    fn rest(&self, path: &str, query: &BTreeMap<String, String>) -> (u16, Value, Option<String>) {
        let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let users = |n: usize| (0..n).map(|i| self.user(i)).collect::<Vec<_>>();
        match path {
            "/orgs/acme" => (
                200,
                json!({"login": "acme", "id": 9919, "type": "Organization", "two_factor_requirement_enabled": true, "public_repos": 0, "total_private_repos": self.0.repos}),
                None,
            ),
            "/orgs/acme/members" => {
                let (items, route) = match (query.get("role"), query.get("filter")) {
                    (Some(_), _) => (users(3), "/orgs/acme/members?role=admin&"),
                    (_, Some(_)) => (vec![], "/orgs/acme/members?filter=2fa_disabled&"),
                    _ => (users(self.0.members), "/organizations/9919/members?"),
                };
                let (body, link) = self.page(route, items, page);
                (200, body, link)
            }
            "/organizations/9919/members" => {
                let (body, link) =
                    self.page("/organizations/9919/members?", users(self.0.members), page);
                (200, body, link)
            }
            "/orgs/acme/outside_collaborators" => (200, json!([]), None),
            "/orgs/acme/repos" | "/organizations/9919/repos" => {
                let repos = (0..self.0.repos).map(|i| self.repo(i)).collect();
                let (body, link) = self.page("/organizations/9919/repos?type=all&", repos, page);
                (200, body, link)
            }
            "/orgs/acme/rulesets/21" => (
                200,
                json!({"id": 21, "name": "protect-default-branches", "target": "branch", "source_type": "Organization", "source": "acme", "enforcement": "active", "bypass_actors": []}),
                None,
            ),
            _ => self.repo_rest(path),
        }
    }

    fn repo_rest(&self, path: &str) -> (u16, Value, Option<String>) {
        let not_found = (404, json!({"message": "Not Found"}), None);
        let Some(rest) = path.strip_prefix("/repos/acme/repo-") else {
            return not_found;
        };
        let Some((i, what)) = rest.split_once('/') else {
            return not_found;
        };
        let Some(i) = i.parse::<usize>().ok().filter(|i| *i < self.0.repos) else {
            return not_found;
        };
        match what {
            "branches/main/protection" if classic(i) => (
                200,
                json!({
                    "url": format!("https://api.github.com/repos/acme/{}/branches/main/protection", name(i)),
                    "required_status_checks": {"strict": false, "contexts": ["ci/build"], "checks": [{"context": "ci/build", "app_id": null}]},
                    "enforce_admins": {"enabled": true},
                    "required_pull_request_reviews": {"dismiss_stale_reviews": false, "require_code_owner_reviews": false, "required_approving_review_count": 1},
                    "allow_force_pushes": {"enabled": false}, "allow_deletions": {"enabled": false}
                }),
                None,
            ),
            "branches/main/protection" => (
                404,
                json!({"message": "Branch not protected", "documentation_url": "https://docs.github.com/rest/branches/branch-protection#get-branch-protection", "status": "404"}),
                None,
            ),
            "rules/branches/main" => (200, self.rules_rest(i), None),
            "vulnerability-alerts" if alerts_on(i) => (204, Value::Null, None),
            "vulnerability-alerts" => not_found,
            "dependabot/alerts" if alerts_on(i) => {
                let alerts: Vec<Value> = if has_alert(i) {
                    vec![self.alert_rest(i)]
                } else {
                    vec![]
                };
                (200, Value::Array(alerts), None)
            }
            "dependabot/alerts" => (
                403,
                json!({"message": "Dependabot alerts are disabled for this repository.", "documentation_url": "https://docs.github.com/rest/dependabot/alerts"}),
                None,
            ),
            _ => not_found,
        }
    }
}

/// `/repos/acme/repo-0001/rules/branches/main` → `/repos/{repo}/rules/branches/main`.
fn route_of(method: &str, path: &str) -> String {
    let path = match path.strip_prefix("/repos/acme/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, tail)) => format!("/repos/{{repo}}/{tail}"),
            None => "/repos/{repo}".to_string(),
        },
        None => path.to_string(),
    };
    format!("{method} {path}")
}

impl Respond for Fake {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let method = request.method.as_str().to_string();
        let path = request.url.path().to_string();
        let route = route_of(&method, &path);
        let mut stats = self.0.stats.lock().unwrap();
        stats.requests += 1;
        *stats.by_route.entry(route).or_default() += 1;
        if method == "POST" && path == "/graphql" {
            drop(stats);
            return self.graphql(&request.body);
        }
        // The primary limit: used up after the first answer, until its reset.
        stats.core += 1;
        let now = Utc::now().timestamp();
        let mut remaining = 4000;
        if let Some(x) = self.0.exhaust {
            let answered = stats.core;
            if answered > 1 && now < x.reset {
                stats.while_exhausted += 1;
                return ResponseTemplate::new(403)
                    .set_body_json(json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}))
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", x.reset.to_string().as_str());
            }
            if answered == 1 {
                remaining = 0;
            }
        }
        let reset = self.0.exhaust.map_or(now + 3600, |x| x.reset);
        let query: BTreeMap<String, String> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let (status, body, link) = self.rest(&path, &query);
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let etag = format!(
            "\"{}\"",
            hex::encode(&Sha256::digest(text.as_bytes())[..16])
        );
        let headers = [
            ("x-ratelimit-limit", "5000".to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
            ("x-ratelimit-resource", "core".to_string()),
            ("x-github-api-version-selected", "2022-11-28".to_string()),
        ];
        let conditional = request
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok());
        let mut answer = if status == 200 && conditional == Some(etag.as_str()) {
            stats.not_modified += 1;
            ResponseTemplate::new(304)
        } else if status == 204 {
            ResponseTemplate::new(204)
        } else {
            ResponseTemplate::new(status).set_body_raw(text, "application/json; charset=utf-8")
        };
        if status == 200 {
            answer = answer.insert_header("etag", etag.as_str());
        }
        if let Some(link) = link {
            answer = answer.insert_header("link", link.as_str());
        }
        for (k, v) in headers {
            answer = answer.insert_header(k, v.as_str());
        }
        answer
    }
}

fn config(dir: &std::path::Path, api: &str, extra: &str) -> Loaded {
    let token = dir.join("github-token");
    std::fs::write(&token, "ghp_trellisBudgetTest000000000000000000\n").unwrap();
    let text = format!(
        "controls_dir: {controls}\nsources:\n  github:\n    api_url: {api}\n    orgs: [acme]\n    token_file: {token}\n    max_attempts: 2\n    initial_backoff: 1ms\n    call_timeout: 30s\n{extra}",
        controls = repo().join("controls").display(),
        token = token.display(),
    );
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, &text).unwrap();
    trellis::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn controls<'a>(catalog: &'a trellis::catalog::Catalog, ids: &[&str]) -> Vec<&'a Control> {
    ids.iter()
        .map(|id| catalog.get(id).unwrap_or_else(|| panic!("no control {id}")))
        .collect()
}

async fn run(loaded: &Loaded, ids: &[&str]) -> RunReport {
    let now = at(NOW);
    let catalog = catalog::from_config(loaded, now.date_naive()).unwrap_or_else(|d| panic!("{d}"));
    let ctx = ProbeContext::for_run(loaded, now);
    runner::execute(&ctx, &controls(&catalog, ids), 8, &NoSink, &|_, _| {})
        .await
        .expect("run")
}

async fn stored_run(store: &trellis::store::Store, loaded: &Loaded) -> RunReport {
    let now = at(NOW);
    let catalog = catalog::from_config(loaded, now.date_naive()).unwrap_or_else(|d| panic!("{d}"));
    let ctx = ProbeContext::for_run(loaded, now);
    let signer = trellis::integrity::Signer::from_seed([7; 32]);
    let outcomes = runner::Outcomes::following(&|_, _| {});
    let totals = runner::run_and_store(
        store,
        &ctx,
        &controls(&catalog, CONTROLS),
        8,
        Trigger::Manual,
        &signer,
        &outcomes,
    )
    .await
    .expect("run");
    RunReport {
        started_at: totals.started_at,
        finished_at: totals.finished_at,
        outcomes: outcomes.into_outcomes(),
        evidence: Vec::new(),
        collections: totals.collections,
    }
}

/// Every finding of the GitHub controls as (control, resource, status), sorted.
fn verdicts(report: &RunReport) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = report
        .outcomes
        .iter()
        .flat_map(|o| {
            o.findings
                .iter()
                .filter(|f| f.resource.starts_with("github:"))
                .map(|f| {
                    (
                        o.control_id.clone(),
                        f.resource.clone(),
                        format!("{:?}", f.status),
                    )
                })
        })
        .collect();
    out.sort();
    out
}

/// Budget at a size: the first stored run within the plan, the second answered by 304s.
async fn budget(repos: usize, members: usize) -> (Stats, Stats) {
    let (server, fake) = Fake::new(repos, members, true).start().await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = config(dir.path(), &server.uri(), "");
    let store = trellis::store::Store::connect("sqlite::memory:")
        .await
        .unwrap();
    let (counted, _) = trellis::metrics::api_counts("github");
    let first = stored_run(&store, &loaded).await;
    let cold = fake.stats();
    // `/metrics` counts every request sent (other tests of this process count theirs too).
    let (now_counted, _) = trellis::metrics::api_counts("github");
    assert!(now_counted - counted >= cold.requests as u64);
    assert!(
        cold.requests <= planned(repos, members),
        "{repos} repositories: {} requests, planned {}: {:?}",
        cold.requests,
        planned(repos, members),
        cold.by_route
    );
    assert_eq!(cold.by_route["POST /graphql"], repos.div_ceil(100));
    // Every repository was evaluated: a resource per repository, none in error.
    let approvals = outcome(&first, "approval-for-system-changes");
    assert_eq!(approvals.findings.len(), repos, "{}", approvals.summary);
    assert!(findings(&first, "approval-for-system-changes", Status::Error).is_empty());

    fake.reset_stats();
    let second = stored_run(&store, &loaded).await;
    let warm = fake.stats();
    let gets = cold.requests - repos.div_ceil(100);
    assert_eq!(warm.not_modified, gets, "{:?}", warm.by_route);
    assert_eq!(warm.requests - warm.not_modified, repos.div_ceil(100));
    assert!(warm.requests - warm.not_modified <= planned(repos, members));
    // Unchanged data, unchanged verdicts.
    assert_eq!(verdicts(&first), verdicts(&second));
    (cold, warm)
}

#[tokio::test]
async fn two_hundred_and_fifty_repositories_within_the_plan_then_304s() {
    budget(250, 1000).await;
}

#[tokio::test]
async fn two_thousand_repositories_within_the_plan_then_304s() {
    let (cold, warm) = budget(2000, 1000).await;
    assert!(cold.requests <= 500 && warm.requests - warm.not_modified <= 500);
}

#[tokio::test]
async fn without_graphql_rest_reads_each_repository_with_the_same_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, fake) = Fake::new(120, 50, true).start().await;
    let batched = run(&config(dir.path(), &server.uri(), ""), CONTROLS).await;
    assert_eq!(fake.stats().by_route["POST /graphql"], 2);

    // Enterprise Server without GraphQL: refused (404), so REST for everything.
    let (server, fake) = Fake::new(120, 50, false).start().await;
    let refused = run(&config(dir.path(), &server.uri(), ""), CONTROLS).await;
    let stats = fake.stats();
    assert_eq!(stats.by_route["POST /graphql"], 1, "{:?}", stats.by_route);
    assert_eq!(
        stats.by_route["GET /repos/{repo}/branches/main/protection"],
        120
    );
    assert_eq!(verdicts(&batched), verdicts(&refused));
    assert!(!verdicts(&batched).is_empty());

    // Switched off: GraphQL is never asked.
    let (server, fake) = Fake::new(120, 50, true).start().await;
    let off = run(
        &config(dir.path(), &server.uri(), "    graphql: false\n"),
        CONTROLS,
    )
    .await;
    assert!(!fake.stats().by_route.contains_key("POST /graphql"));
    assert_eq!(verdicts(&batched), verdicts(&off));
}

#[tokio::test]
async fn a_repository_graphql_refuses_is_an_error_and_the_others_are_evaluated() {
    let (server, _fake) = Fake::new(30, 5, true)
        .set(|f| f.forbidden = Some("repo-0004".into()))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        &config(dir.path(), &server.uri(), ""),
        &["approval-for-system-changes"],
    )
    .await;
    let errors = findings(&report, "approval-for-system-changes", Status::Error);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].resource.contains("acme/repo-0004"));
    assert!(
        errors[0]
            .message
            .contains("FORBIDDEN (Resource not accessible by integration)"),
        "{}",
        errors[0].message
    );
    let o = outcome(&report, "approval-for-system-changes");
    assert_eq!(o.findings.len(), 30);
}

/// A fake whose primary limit is used up by its first answer until `reset_in` seconds from
/// now, one call in flight at a time, and a run of `ids` within a `window` to wait.
async fn used_up(reset_in: i64, window: &str, ids: &[&str]) -> (RunReport, Stats) {
    let reset = Utc::now().timestamp() + reset_in;
    let (server, fake) = Fake::new(10, 5, true)
        .set(|f| f.exhaust = Some(Exhaust { reset }))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("    concurrency: 1\n    rate_limit_wait: {window}\n");
    let (_, throttles) = trellis::metrics::api_counts("github");
    let report = run(&config(dir.path(), &server.uri(), &extra), ids).await;
    // `/metrics` counts the limit that made Trellis wait or give up.
    assert!(trellis::metrics::api_counts("github").1 > throttles);
    (report, fake.stats())
}

#[tokio::test]
async fn a_used_up_limit_resetting_within_the_window_is_waited_for() {
    let (report, stats) = used_up(
        2,
        "1m",
        &["complex-passwords", "approval-for-system-changes"],
    )
    .await;
    // Nothing was sent while the limit was used up, and everything was read after it.
    assert_eq!(stats.while_exhausted, 0, "{stats:?}");
    let c = outcome(&report, "complex-passwords");
    assert_eq!(c.checks[2].status, Status::Pass, "{:?}", c.checks[2]);
    assert!(findings(&report, "approval-for-system-changes", Status::Error).is_empty());
}

#[tokio::test]
async fn a_used_up_limit_resetting_past_the_window_is_an_error_naming_it() {
    let (report, stats) = used_up(3600, "5s", &["complex-passwords"]).await;
    assert_eq!(stats.while_exhausted, 0, "{stats:?}");
    assert_org_throttled(&report, "GitHub's primary rate limit is used up until");
}

#[tokio::test]
async fn graphql_points_used_up_past_the_window_are_errors_naming_that_limit() {
    let fake = Fake::new(250, 5, true).set(|f| f.points_used_up = true);
    let (server, fake) = fake.start().await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        &config(dir.path(), &server.uri(), "    rate_limit_wait: 5s\n"),
        &["approval-for-system-changes"],
    )
    .await;
    // The first query said no points are left: the others were not sent, and their
    // repositories are errors naming GraphQL's limit; the first 100 are evaluated.
    assert_eq!(fake.stats().by_route["POST /graphql"], 1);
    let errors = findings(&report, "approval-for-system-changes", Status::Error);
    assert_eq!(errors.len(), 150);
    assert!(
        errors[0]
            .message
            .contains("GitHub's GraphQL rate limit is used up until"),
        "{}",
        errors[0].message
    );
    assert_eq!(
        outcome(&report, "approval-for-system-changes")
            .findings
            .len(),
        250
    );
}
