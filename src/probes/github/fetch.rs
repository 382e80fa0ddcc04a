//! Every GitHub call Trellis makes, each cached for the run, with the lean records the probes
//! read (GitHub's JSON keeps many more fields; the raw answers are kept as evidence).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Endpoint, client, graphql, refused};
use crate::probes::{ProbeContext, ProbeError, RawJson};

pub const ORG: Endpoint = Endpoint {
    route: "GET /orgs/{org}",
    permission: "an organisation owner's token (classic: `read:org`) or an App with the organisation permission Administration (read), to see the 2FA requirement",
};
pub const MEMBERS: Endpoint = Endpoint {
    route: "GET /orgs/{org}/members",
    permission: "classic token `read:org`, or the organisation permission Members (read)",
};
pub const MEMBERS_2FA_DISABLED: Endpoint = Endpoint {
    route: "GET /orgs/{org}/members?filter=2fa_disabled",
    permission: "an organisation owner's credentials (classic: `read:org` held by an owner; App: organisation permission Members (read))",
};
pub const OUTSIDE_COLLABORATORS: Endpoint = Endpoint {
    route: "GET /orgs/{org}/outside_collaborators",
    permission: "an organisation owner's credentials (classic: `read:org` held by an owner; App: organisation permission Members (read))",
};
pub const REPOS: Endpoint = Endpoint {
    route: "GET /orgs/{org}/repos",
    permission: "classic token `repo` (for private repositories), or the repository permission Metadata (read)",
};
pub const PROTECTION: Endpoint = Endpoint {
    route: "GET /repos/{owner}/{repo}/branches/{branch}/protection",
    permission: "admin access to the repository: classic token `repo`, or the repository permission Administration (read)",
};
pub const RULES: Endpoint = Endpoint {
    route: "GET /repos/{owner}/{repo}/rules/branches/{branch}",
    permission: "read access to the repository: classic token `repo`, or the repository permission Metadata (read)",
};
pub const REPO_RULESET: Endpoint = Endpoint {
    route: "GET /repos/{owner}/{repo}/rulesets/{id}",
    permission: "the repository permission Administration (read), to see who may bypass a ruleset",
};
pub const ORG_RULESET: Endpoint = Endpoint {
    route: "GET /orgs/{org}/rulesets/{id}",
    permission: "the organisation permission Administration (read), to see who may bypass a ruleset",
};
pub const VULNERABILITY_ALERTS: Endpoint = Endpoint {
    route: "GET /repos/{owner}/{repo}/vulnerability-alerts",
    permission: "admin access to the repository: classic token `repo`, or the repository permission Administration (read)",
};
pub const DEPENDABOT_ALERTS: Endpoint = Endpoint {
    route: "GET /repos/{owner}/{repo}/dependabot/alerts",
    permission: "classic token `security_events` (or `repo`), or the repository permission Dependabot alerts (read)",
};

/// Every endpoint Trellis calls (docs/github.md lists what each needs).
pub const ENDPOINTS: &[Endpoint] = &[
    ORG,
    MEMBERS,
    MEMBERS_2FA_DISABLED,
    OUTSIDE_COLLABORATORS,
    REPOS,
    PROTECTION,
    RULES,
    REPO_RULESET,
    ORG_RULESET,
    VULNERABILITY_ALERTS,
    DEPENDABOT_ALERTS,
];

/// Runs `fetch` once per run for `key`. The future is boxed: GitHub calls nest deeply, and
/// keeping each fetch on the heap keeps the probes' futures small.
async fn cached<T, F>(ctx: &ProbeContext, key: String, fetch: F) -> Result<Arc<T>, ProbeError>
where
    T: Send + Sync + 'static,
    F: Future<Output = Result<T, ProbeError>> + Send,
{
    ctx.cache.get_or_fetch(&key, Box::pin(fetch)).await
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Org {
    pub login: String,
    /// Only shown to organisation owners.
    pub two_factor_requirement_enabled: Option<bool>,
}

pub(crate) async fn org(ctx: &ProbeContext, org: &str) -> Result<Arc<(Org, RawJson)>, ProbeError> {
    cached(ctx, format!("github:{org}:org"), async {
        let gh = client(ctx, org).await?;
        gh.json::<Org>(ORG, &gh.route(&format!("/orgs/{org}")))
            .await
    })
    .await
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct User {
    pub login: String,
    #[serde(default)]
    pub site_admin: bool,
}

/// A listing of users, with the raw pages.
pub(crate) type Users = (Vec<User>, Vec<RawJson>);

/// `GET /orgs/{org}/members` with optional `filter` and `role`.
pub(crate) async fn members(
    ctx: &ProbeContext,
    org: &str,
    filter_2fa_disabled: bool,
    role_admin: bool,
) -> Result<Arc<Users>, ProbeError> {
    let mut query = Vec::new();
    if filter_2fa_disabled {
        query.push("filter=2fa_disabled");
    }
    if role_admin {
        query.push("role=admin");
    }
    let route = if query.is_empty() {
        format!("/orgs/{org}/members")
    } else {
        format!("/orgs/{org}/members?{}", query.join("&"))
    };
    let endpoint = if filter_2fa_disabled {
        MEMBERS_2FA_DISABLED
    } else {
        MEMBERS
    };
    cached(ctx, format!("github:{org}:{route}"), async {
        let gh = client(ctx, org).await?;
        gh.list::<User>(endpoint, &route).await
    })
    .await
}

/// `GET /orgs/{org}/outside_collaborators`, optionally only those without 2FA.
pub(crate) async fn outside_collaborators(
    ctx: &ProbeContext,
    org: &str,
    filter_2fa_disabled: bool,
) -> Result<Arc<Users>, ProbeError> {
    let route = if filter_2fa_disabled {
        format!("/orgs/{org}/outside_collaborators?filter=2fa_disabled")
    } else {
        format!("/orgs/{org}/outside_collaborators")
    };
    cached(ctx, format!("github:{org}:{route}"), async {
        let gh = client(ctx, org).await?;
        gh.list::<User>(OUTSIDE_COLLABORATORS, &route).await
    })
    .await
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Repo {
    pub name: String,
    pub full_name: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub fork: bool,
    #[serde(default)]
    pub private: bool,
    pub visibility: Option<String>,
    pub default_branch: Option<String>,
    /// Only shown to those with admin access.
    pub security_and_analysis: Option<SecurityAndAnalysis>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SecurityAndAnalysis {
    pub advanced_security: Option<Enabled>,
    pub secret_scanning: Option<Enabled>,
    pub secret_scanning_push_protection: Option<Enabled>,
    pub dependabot_security_updates: Option<Enabled>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Enabled {
    pub status: String,
}

impl Enabled {
    pub fn on(e: &Option<Enabled>) -> Option<bool> {
        e.as_ref().map(|e| e.status == "enabled")
    }
}

/// Every repository of `org` (`type=all`), with the raw listing.
pub(crate) async fn repos(
    ctx: &ProbeContext,
    org: &str,
) -> Result<Arc<(Vec<Repo>, Vec<RawJson>)>, ProbeError> {
    cached(ctx, format!("github:{org}:repos"), async {
        let gh = client(ctx, org).await?;
        gh.list::<Repo>(REPOS, &format!("/orgs/{org}/repos?type=all"))
            .await
    })
    .await
}

/// The raw JSON of one repository from the organisation's listing (evidence).
pub(crate) async fn raw_repo(ctx: &ProbeContext, org: &str, full_name: &str) -> RawJson {
    match repos(ctx, org).await {
        // The listing's items and their texts come page by page, in step.
        Ok(all) => all
            .0
            .iter()
            .position(|r| r.full_name == full_name)
            .and_then(|i| all.1.get(i))
            .cloned()
            .unwrap_or_else(RawJson::null),
        Err(_) => RawJson::null(),
    }
}

/// The repositories the configuration selects: include/exclude globs (on `name` and
/// `org/name`; `*` stops at `/`; case-insensitive, as GitHub names are), archived
/// repositories and forks left out unless asked for.
pub(crate) async fn selected_repos(ctx: &ProbeContext, org: &str) -> Result<Vec<Repo>, ProbeError> {
    let all = repos(ctx, org).await?;
    let selection = ctx
        .sources
        .github
        .as_ref()
        .map(|g| g.repos.clone())
        .unwrap_or_default();
    let set = |patterns: &[String]| -> Result<globset::GlobSet, ProbeError> {
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns {
            b.add(crate::config::repo_glob(p).map_err(|e| {
                ProbeError::Io(format!("sources.github.repos: invalid pattern `{p}`: {e}"))
            })?);
        }
        b.build()
            .map_err(|e| ProbeError::Io(format!("sources.github.repos: {e}")))
    };
    let include = set(&selection.include)?;
    let exclude = set(&selection.exclude)?;
    let matches = |s: &globset::GlobSet, r: &Repo| s.is_match(&r.name) || s.is_match(&r.full_name);
    Ok(all
        .0
        .iter()
        .filter(|r| selection.include_archived || !r.archived)
        .filter(|r| selection.include_forks || !r.fork)
        .filter(|r| selection.include.is_empty() || matches(&include, r))
        .filter(|r| !matches(&exclude, r))
        .cloned()
        .collect())
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Protection {
    pub required_status_checks: Option<StatusChecks>,
    pub enforce_admins: Option<Flag>,
    pub required_pull_request_reviews: Option<Reviews>,
    pub allow_force_pushes: Option<Flag>,
    pub allow_deletions: Option<Flag>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StatusChecks {
    #[serde(default)]
    pub contexts: Vec<String>,
    #[serde(default)]
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Check {
    pub context: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Flag {
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Reviews {
    #[serde(default)]
    pub required_approving_review_count: u64,
    #[serde(default)]
    pub dismiss_stale_reviews: bool,
    #[serde(default)]
    pub require_code_owner_reviews: bool,
}

/// Classic branch protection of `repo`'s `branch`: `None` when GitHub says the branch is not
/// protected. Any other refusal (403: not an admin; 404: no such branch or no access) is an
/// error naming what is needed.
pub(crate) async fn protection(
    ctx: &ProbeContext,
    org: &str,
    repo: &str,
    branch: &str,
) -> Result<Arc<(Option<Protection>, RawJson)>, ProbeError> {
    cached(ctx, format!("github:{repo}:protection:{branch}"), async {
        if let Some(state) = graphql::state(ctx, org, repo).await?
            && state.default_branch.as_deref() == Some(branch)
            && let Some(p) = &state.protection
        {
            return Ok(p.clone());
        }
        let gh = client(ctx, org).await?;
        let path = gh.route(&format!(
            "/repos/{repo}/branches/{}/protection",
            encode(branch)
        ));
        let answer = gh.get(PROTECTION, &path).await?;
        match answer.status {
            200 => {
                let p = super::parse::<Protection>(PROTECTION, &path, &answer.body)?;
                Ok((Some(p), super::raw_text(PROTECTION, &path, answer.body)?))
            }
            404 if answer.message() == "Branch not protected" => Ok((
                None,
                serde_json::json!({"message": answer.message()}).into(),
            )),
            _ => Err(refused(PROTECTION, &path, &answer)),
        }
    })
    .await
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Rule {
    #[serde(rename = "type")]
    pub kind: String,
    pub ruleset_source_type: Option<String>,
    pub ruleset_source: Option<String>,
    pub ruleset_id: Option<u64>,
    #[serde(default)]
    pub parameters: Value,
}

/// The rules in force on `repo`'s `branch`, from every active ruleset (repository and
/// organisation).
pub(crate) async fn rules(
    ctx: &ProbeContext,
    org: &str,
    repo: &str,
    branch: &str,
) -> Result<Arc<(Vec<Rule>, Vec<RawJson>)>, ProbeError> {
    cached(ctx, format!("github:{repo}:rules:{branch}"), async {
        if let Some(state) = graphql::state(ctx, org, repo).await?
            && state.default_branch.as_deref() == Some(branch)
            && let Some(rules) = &state.rules
        {
            return Ok(rules.clone());
        }
        let gh = client(ctx, org).await?;
        gh.list::<Rule>(
            RULES,
            &format!("/repos/{repo}/rules/branches/{}", encode(branch)),
        )
        .await
    })
    .await
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Ruleset {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub enforcement: String,
    /// Absent when the credentials may not see who can bypass.
    pub bypass_actors: Option<Vec<BypassActor>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BypassActor {
    pub actor_type: Option<String>,
    pub bypass_mode: Option<String>,
}

/// One ruleset (who may bypass it), from the repository or the organisation that defines it.
pub(crate) async fn ruleset(
    ctx: &ProbeContext,
    org: &str,
    repo: &str,
    rule: &Rule,
) -> Result<Arc<(Ruleset, RawJson)>, ProbeError> {
    let id = rule.ruleset_id.unwrap_or(0);
    let (endpoint, route) = match rule.ruleset_source_type.as_deref() {
        Some("Organization") => (ORG_RULESET, format!("/orgs/{org}/rulesets/{id}")),
        _ => (REPO_RULESET, format!("/repos/{repo}/rulesets/{id}")),
    };
    cached(ctx, format!("github:{route}"), async {
        let gh = client(ctx, org).await?;
        gh.json::<Ruleset>(endpoint, &gh.route(&route)).await
    })
    .await
}

/// Whether Dependabot alerts are enabled (204) or not (404) for `repo`.
pub(crate) async fn vulnerability_alerts(
    ctx: &ProbeContext,
    org: &str,
    repo: &str,
) -> Result<Arc<bool>, ProbeError> {
    cached(ctx, format!("github:{repo}:vulnerability-alerts"), async {
        if let Some(on) = graphql::state(ctx, org, repo)
            .await?
            .and_then(|s| s.alerts_enabled)
        {
            return Ok(on);
        }
        let gh = client(ctx, org).await?;
        let path = gh.route(&format!("/repos/{repo}/vulnerability-alerts"));
        let answer = gh.get(VULNERABILITY_ALERTS, &path).await?;
        match answer.status {
            204 => Ok(true),
            // 404 also answers those who may not see: the alerts listing says which it is.
            404 => match open_alerts(ctx, org, repo).await {
                Ok(_) => Ok(true),
                Err(e) if e.to_string().contains(DEPENDABOT_DISABLED) => Ok(false),
                Err(e) => Err(e),
            },
            _ => Err(refused(VULNERABILITY_ALERTS, &path, &answer)),
        }
    })
    .await
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Alert {
    pub number: u64,
    pub state: String,
    pub dependency: Dependency,
    pub security_advisory: Advisory,
    pub security_vulnerability: Option<Vulnerability>,
    pub created_at: DateTime<Utc>,
    pub html_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Dependency {
    pub package: Package,
    pub manifest_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Package {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Advisory {
    pub ghsa_id: String,
    pub cve_id: Option<String>,
    pub severity: String,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Vulnerability {
    pub severity: Option<String>,
    pub first_patched_version: Option<Version>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Version {
    pub identifier: String,
}

/// GitHub's message when a repository's Dependabot alerts are off.
pub const DEPENDABOT_DISABLED: &str = "Dependabot alerts are disabled for this repository";

/// Dependabot alerts, with the raw records.
pub(crate) type Alerts = (Vec<Alert>, Vec<RawJson>);

/// The open Dependabot alerts of `repo`.
pub(crate) async fn open_alerts(
    ctx: &ProbeContext,
    org: &str,
    repo: &str,
) -> Result<Arc<Alerts>, ProbeError> {
    cached(ctx, format!("github:{repo}:dependabot-alerts"), async {
        if let Some(state) = graphql::state(ctx, org, repo).await?
            && let Some(alerts) = &state.open_alerts
        {
            return alerts.clone();
        }
        let gh = client(ctx, org).await?;
        gh.list::<Alert>(
            DEPENDABOT_ALERTS,
            &format!("/repos/{repo}/dependabot/alerts?state=open"),
        )
        .await
    })
    .await
}

/// A branch name in a URL path (`/` and other reserved characters escaped).
fn encode(branch: &str) -> String {
    percent_encoding::utf8_percent_encode(branch, percent_encoding::NON_ALPHANUMERIC).to_string()
}
