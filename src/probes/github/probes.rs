//! The GitHub probes:
//!
//! - `github.org` — one resource per organisation: the 2FA requirement, counts of members,
//!   owners and outside collaborators, and of those without 2FA;
//! - `github.members` — one per member and outside collaborator: role, 2FA disabled or not;
//! - `github.branch_protection` — one per selected repository: its default branch's protection,
//!   classic and rulesets combined (reviews, enforcement on admins, status checks, force pushes
//!   and deletions);
//! - `github.repo_security` — one per selected repository: secret scanning, push protection,
//!   Dependabot alerts and security updates;
//! - `github.dependabot_alerts` — one per open Dependabot alert, with its age.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::fetch::{self, Enabled, Repo};
use super::unreadable;
use crate::probes::{
    Attribute, Collected, Probe, ProbeContext, ProbeError, RawJson, Resource, object, raw,
    scope_error_raw, scoped_raw, ts,
};

/// Which organisations a check reads. Empty means every configured organisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgSelection {
    /// Names of `sources.github.orgs` to read; all when empty.
    #[serde(default)]
    pub orgs: Vec<String>,
}

/// Runs `per_org` for each selected organisation; one that fails is one `error` resource.
async fn per_org<F, Fut>(
    ctx: &ProbeContext,
    probe: &str,
    selection: &OrgSelection,
    per_org: F,
) -> Result<Collected, ProbeError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(Vec<Resource>, RawJson), ProbeError>>,
{
    let orgs = super::orgs(ctx, &selection.orgs)?;
    let results = futures::future::join_all(
        orgs.iter()
            .map(|o| async { (o.clone(), per_org(o.clone()).await) }),
    )
    .await;
    let mut resources = Vec::new();
    let mut raw = BTreeMap::new();
    for (org, result) in results {
        match result {
            Ok((rs, evidence)) => {
                resources.extend(rs);
                raw.insert(org, evidence);
            }
            Err(e) => {
                // `github.org` has one resource per organisation; for the others an
                // organisation holds any number of them.
                resources.push(unreadable(probe, &org, &e, probe != Org::NAME));
                raw.insert(org, scope_error_raw(&e));
            }
        }
    }
    Ok(Collected {
        resources,
        raw: scoped_raw("github", probe, "orgs", &raw)?,
    })
}

/// Runs `per_repo` for each selected repository of each selected organisation. A repository
/// whose data could not be read is one `error` resource naming it; the others are evaluated.
async fn per_repo<F, Fut>(
    ctx: &ProbeContext,
    probe: &str,
    selection: &OrgSelection,
    per_repo: F,
) -> Result<Collected, ProbeError>
where
    F: Fn(String, Repo) -> Fut + Sync,
    Fut: Future<Output = Result<(Vec<Resource>, RawJson), ProbeError>>,
{
    let per_repo = &per_repo;
    per_org(ctx, probe, selection, |org| async move {
        let repos = fetch::selected_repos(ctx, &org).await?;
        let results = futures::future::join_all(repos.into_iter().map(|repo| {
            let org = org.clone();
            async move {
                let name = repo.full_name.clone();
                (name, per_repo(org, repo).await)
            }
        }))
        .await;
        let mut resources = Vec::new();
        let mut raw = BTreeMap::new();
        for (repo, result) in results {
            match result {
                Ok((rs, evidence)) => {
                    resources.extend(rs);
                    raw.insert(repo, evidence);
                }
                Err(e) => {
                    // One resource per repository, but for its Dependabot alerts.
                    let scope = probe == DependabotAlerts::NAME;
                    resources.push(unreadable(probe, &repo, &e, scope));
                    raw.insert(repo, scope_error_raw(&e));
                }
            }
        }
        Ok((resources, crate::probes::raw(&raw)?))
    })
    .await
}

/// The raw evidence of `github.org` and `github.members`: the listings as GitHub answered
/// them (keys in alphabetical order, as the `json!` maps first used here had them).
#[derive(Serialize)]
struct PeopleEvidence<'a> {
    members: &'a [RawJson],
    members_2fa_disabled: &'a [RawJson],
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<&'a RawJson>,
    outside_collaborators: &'a [RawJson],
    outside_collaborators_2fa_disabled: &'a [RawJson],
    owners: &'a [RawJson],
}

impl<'a> PeopleEvidence<'a> {
    /// From the listings of members, owners, members without 2FA, outside collaborators and
    /// those without 2FA, in that order.
    fn of(org: Option<&'a RawJson>, [m, o, m2, c, c2]: [&'a fetch::Users; 5]) -> Self {
        PeopleEvidence {
            members: &m.1,
            members_2fa_disabled: &m2.1,
            org,
            outside_collaborators: &c.1,
            outside_collaborators_2fa_disabled: &c2.1,
            owners: &o.1,
        }
    }
}

/// Whole days, rounded up: a 15-day window is not stretched by 23 hours.
fn days_rounded_up(d: chrono::Duration) -> i64 {
    let secs = d.num_seconds();
    secs.div_euclid(86_400) + i64::from(secs.rem_euclid(86_400) > 0)
}

// ----------------------------------------------------------------------------------------

/// `github.org`.
pub struct Org;

impl Probe for Org {
    const NAME: &'static str = "github.org";
    const SOURCE: &'static str = "github";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "GitHub organisations, one resource per organisation: the two-factor requirement, members, owners and outside collaborators, and how many lack 2FA.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("org", String, "organisation login"),
        attr!(
            "two_factor_required",
            Bool,
            "the organisation requires two-factor authentication"
        ),
        attr!("members", Int, "members"),
        attr!("owners", Int, "organisation owners"),
        attr!("outside_collaborators", Int, "outside collaborators"),
        attr!("members_without_2fa", Int, "members with 2FA disabled"),
        attr!(
            "collaborators_without_2fa",
            Int,
            "outside collaborators with 2FA disabled"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: github.org
assert: two_factor_required && members_without_2fa == 0
"#;

    type Params = OrgSelection;

    async fn collect(ctx: &ProbeContext, params: &OrgSelection) -> Result<Collected, ProbeError> {
        per_org(ctx, Self::NAME, params, |org| async move {
            let details = fetch::org(ctx, &org).await?;
            let members = fetch::members(ctx, &org, false, false).await?;
            let owners = fetch::members(ctx, &org, false, true).await?;
            let no_2fa = fetch::members(ctx, &org, true, false).await?;
            let outside = fetch::outside_collaborators(ctx, &org, false).await?;
            let outside_no_2fa = fetch::outside_collaborators(ctx, &org, true).await?;
            let required = details.0.two_factor_requirement_enabled.ok_or_else(|| {
                ProbeError::Auth(format!(
                    "GET /orgs/{org}: GitHub did not show whether 2FA is required: the credentials need {}",
                    fetch::ORG.permission
                ))
            })?;
            let resource = Resource {
                id: format!("github:{org}"),
                name: format!("GitHub organisation {org}"),
                attributes: object(json!({
                    "org": org,
                    "two_factor_required": required,
                    "members": members.0.len(),
                    "owners": owners.0.len(),
                    "outside_collaborators": outside.0.len(),
                    "members_without_2fa": no_2fa.0.len(),
                    "collaborators_without_2fa": outside_no_2fa.0.len(),
                })),
                error: None,
                unknown: Default::default(),
                scope: false,
            };
            let people = [&members, &owners, &no_2fa, &outside, &outside_no_2fa];
            let evidence = raw(&PeopleEvidence::of(Some(&details.1), people.map(|p| p.as_ref())))?;
            Ok((vec![resource], evidence))
        })
        .await
    }
}

/// `github.members`.
pub struct Members;

impl Probe for Members {
    const NAME: &'static str = "github.members";
    const SOURCE: &'static str = "github";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "GitHub organisation members and outside collaborators, one resource per account: role and whether 2FA is disabled (owner credentials needed).";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("org", String, "organisation login"),
        attr!("login", String, "the account's login"),
        attr!("kind", String, "`member` or `outside_collaborator`"),
        attr!("role", String, "`owner`, `member` or `collaborator`"),
        attr!("two_factor_disabled", Bool, "the account has 2FA disabled"),
        attr!(
            "site_admin",
            Bool,
            "a GitHub (or Enterprise Server) site administrator"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: github.members
assert: "!two_factor_disabled"
"#;

    type Params = OrgSelection;

    async fn collect(ctx: &ProbeContext, params: &OrgSelection) -> Result<Collected, ProbeError> {
        per_org(ctx, Self::NAME, params, |org| async move {
            // GitHub answers `filter=2fa_disabled` for owners only; an organisation whose 2FA
            // requirement is hidden from these credentials means they are not an owner's,
            // and an empty "2FA disabled" list would prove nothing.
            let details = fetch::org(ctx, &org).await?;
            if details.0.two_factor_requirement_enabled.is_none() {
                return Err(ProbeError::Auth(format!(
                    "GET /orgs/{org}: these credentials are not an organisation owner's, so GitHub would not say who has 2FA disabled: they need {}",
                    fetch::MEMBERS_2FA_DISABLED.permission
                )));
            }
            let members = fetch::members(ctx, &org, false, false).await?;
            let owners = fetch::members(ctx, &org, false, true).await?;
            let no_2fa = fetch::members(ctx, &org, true, false).await?;
            let outside = fetch::outside_collaborators(ctx, &org, false).await?;
            let outside_no_2fa = fetch::outside_collaborators(ctx, &org, true).await?;
            let logins = |users: &fetch::Users| -> BTreeSet<String> {
                users
                    .0
                    .iter()
                    .map(|u| u.login.to_ascii_lowercase())
                    .collect()
            };
            let owner_logins = logins(&owners);
            let disabled: BTreeSet<String> = logins(&no_2fa)
                .union(&logins(&outside_no_2fa))
                .cloned()
                .collect();
            let mut resources = Vec::new();
            let people = members
                .0
                .iter()
                .map(|u| (u, "member"))
                .chain(outside.0.iter().map(|u| (u, "outside_collaborator")));
            for (user, kind) in people {
                let key = user.login.to_ascii_lowercase();
                let role = match kind {
                    "member" if owner_logins.contains(&key) => "owner",
                    "member" => "member",
                    _ => "collaborator",
                };
                let what = if kind == "member" {
                    format!("{role} of {org}")
                } else {
                    format!("outside collaborator of {org}")
                };
                resources.push(Resource {
                    id: format!("github:{org}/@{}", user.login),
                    name: format!("GitHub account {} ({what})", user.login),
                    attributes: object(json!({
                        "org": org,
                        "login": user.login,
                        "kind": kind,
                        "role": role,
                        "two_factor_disabled": disabled.contains(&key),
                        "site_admin": user.site_admin,
                    })),
                    error: None,
                    unknown: Default::default(),
                    scope: false,
                });
            }
            let people = [&members, &owners, &no_2fa, &outside, &outside_no_2fa];
            let evidence = raw(&PeopleEvidence::of(None, people.map(|p| p.as_ref())))?;
            Ok((resources, evidence))
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------

/// What the default branch's protection amounts to, classic protection and rulesets combined.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Effective {
    pub protected: bool,
    pub rulesets: BTreeSet<String>,
    pub required_approving_reviews: u64,
    pub dismiss_stale_reviews: bool,
    pub require_code_owner_reviews: bool,
    /// `None` when a ruleset's bypass list could not be read and nothing else settles it.
    pub reviews_enforced_for_admins: Option<bool>,
    pub required_status_checks: BTreeSet<String>,
    pub force_pushes_blocked: bool,
    pub deletions_blocked: bool,
}

/// A ruleset as far as enforcement goes: its name, and whether nobody may always bypass it
/// (`None`: the bypass list is not visible to these credentials).
pub(crate) struct RulesetInfo {
    pub name: String,
    pub no_bypass: Option<bool>,
}

/// Combines classic protection and the rules in force (pure: tested on its own).
pub(crate) fn effective(
    protection: Option<&fetch::Protection>,
    rules: &[fetch::Rule],
    rulesets: &BTreeMap<u64, RulesetInfo>,
) -> Effective {
    let mut e = Effective::default();
    let mut enforced: Vec<Option<bool>> = Vec::new();
    if let Some(p) = protection {
        e.protected = true;
        if let Some(r) = &p.required_pull_request_reviews {
            e.required_approving_reviews = r.required_approving_review_count;
            e.dismiss_stale_reviews = r.dismiss_stale_reviews;
            e.require_code_owner_reviews = r.require_code_owner_reviews;
            if r.required_approving_review_count >= 1 {
                enforced.push(Some(p.enforce_admins.as_ref().is_some_and(|f| f.enabled)));
            }
        }
        if let Some(c) = &p.required_status_checks {
            e.required_status_checks.extend(c.contexts.iter().cloned());
            e.required_status_checks
                .extend(c.checks.iter().map(|c| c.context.clone()));
        }
        e.force_pushes_blocked = !p.allow_force_pushes.as_ref().is_some_and(|f| f.enabled);
        e.deletions_blocked = !p.allow_deletions.as_ref().is_some_and(|f| f.enabled);
    }
    for rule in rules {
        let info = rule.ruleset_id.and_then(|id| rulesets.get(&id));
        if let Some(info) = info {
            e.rulesets.insert(info.name.clone());
        }
        let params = &rule.parameters;
        match rule.kind.as_str() {
            "pull_request" => {
                let count = params["required_approving_review_count"]
                    .as_u64()
                    .unwrap_or(0);
                e.required_approving_reviews = e.required_approving_reviews.max(count);
                e.dismiss_stale_reviews |= params["dismiss_stale_reviews_on_push"]
                    .as_bool()
                    .unwrap_or(false);
                e.require_code_owner_reviews |= params["require_code_owner_review"]
                    .as_bool()
                    .unwrap_or(false);
                if count >= 1 {
                    enforced.push(info.and_then(|i| i.no_bypass));
                }
            }
            "required_status_checks" => {
                if let Some(checks) = params["required_status_checks"].as_array() {
                    e.required_status_checks.extend(
                        checks
                            .iter()
                            .filter_map(|c| c["context"].as_str().map(str::to_string)),
                    );
                }
            }
            "non_fast_forward" => e.force_pushes_blocked = true,
            "deletion" => e.deletions_blocked = true,
            _ => {}
        }
    }
    e.reviews_enforced_for_admins = if enforced.contains(&Some(true)) {
        Some(true)
    } else if enforced.contains(&None) {
        None
    } else {
        Some(false)
    };
    e
}

fn repo_attributes(org: &str, repo: &Repo) -> crate::probes::Attributes {
    object(json!({
        "org": org,
        "repo": repo.full_name,
        "visibility": repo.visibility.clone().unwrap_or_else(|| if repo.private { "private".into() } else { "public".into() }),
        "archived": repo.archived,
        "fork": repo.fork,
    }))
}

/// `github.branch_protection`.
pub struct BranchProtection;

impl Probe for BranchProtection {
    const NAME: &'static str = "github.branch_protection";
    const SOURCE: &'static str = "github";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "The default branch of each selected repository, one resource per repository: classic branch protection and the rulesets in force, combined.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("org", String, "organisation login"),
        attr!("repo", String, "`org/name`"),
        attr!("visibility", String, "`public`, `private` or `internal`"),
        attr!("archived", Bool, "the repository is archived"),
        attr!("fork", Bool, "the repository is a fork"),
        attr!("default_branch", String, "the default branch"),
        attr!("protected", Bool, "classic branch protection is set"),
        attr!(
            "rulesets",
            List,
            "names of the rulesets with rules on the branch"
        ),
        attr!(
            "required_approving_reviews",
            Int,
            "approving reviews required before merging (classic or rulesets, the strictest)"
        ),
        attr!(
            "dismiss_stale_reviews",
            Bool,
            "new commits dismiss approvals"
        ),
        attr!(
            "require_code_owner_reviews",
            Bool,
            "code owners must approve"
        ),
        attr!(
            "reviews_enforced_for_admins",
            Bool,
            "required reviews also bind administrators (classic `enforce_admins`, or a ruleset nobody may always bypass); null if the bypass list cannot be read"
        ),
        attr!(
            "required_status_checks",
            List,
            "status checks that must pass before merging"
        ),
        attr!(
            "status_checks_required",
            Bool,
            "at least one status check is required"
        ),
        attr!("force_pushes_blocked", Bool, "force pushes are blocked"),
        attr!("deletions_blocked", Bool, "deleting the branch is blocked"),
    ];
    const EXAMPLE: &'static str = r#"probe: github.branch_protection
where: visibility != "public"
assert: required_approving_reviews >= 1 && reviews_enforced_for_admins
"#;

    type Params = OrgSelection;

    async fn collect(ctx: &ProbeContext, params: &OrgSelection) -> Result<Collected, ProbeError> {
        per_repo(ctx, Self::NAME, params, |org, repo| async move {
            let branch = repo.default_branch.clone().ok_or_else(|| {
                ProbeError::BadBody(format!(
                    "{}: GitHub reports no default branch",
                    repo.full_name
                ))
            })?;
            let protection = fetch::protection(ctx, &org, &repo.full_name, &branch).await?;
            let rules = fetch::rules(ctx, &org, &repo.full_name, &branch).await?;
            let mut rulesets = BTreeMap::new();
            let mut ruleset_evidence = Vec::new();
            let mut bypass_unknown = Vec::new();
            for rule in rules.0.iter() {
                let Some(id) = rule.ruleset_id else { continue };
                if rulesets.contains_key(&id) {
                    continue;
                }
                let info = match fetch::ruleset(ctx, &org, &repo.full_name, rule).await {
                    Ok(r) => {
                        ruleset_evidence.push(r.1.clone());
                        RulesetInfo {
                            name: r.0.name.clone(),
                            // Any bypass actor — `always`, or `pull_request`, which lets them
                            // merge a pull request without the required approvals — means
                            // the rules do not bind everyone.
                            no_bypass: r.0.bypass_actors.as_ref().map(Vec::is_empty),
                        }
                    }
                    // Who may bypass is unknown; the rest of the rule still counts.
                    Err(e) => {
                        ruleset_evidence
                            .push(RawJson::from(json!({"id": id, "error": e.to_string()})));
                        bypass_unknown.push(e.to_string());
                        RulesetInfo {
                            name: format!("ruleset {id}"),
                            no_bypass: None,
                        }
                    }
                };
                rulesets.insert(id, info);
            }
            let e = effective(protection.0.as_ref(), &rules.0, &rulesets);
            let mut a = repo_attributes(&org, &repo);
            a.extend(object(json!({
                "default_branch": branch,
                "protected": e.protected,
                "rulesets": e.rulesets,
                "required_approving_reviews": e.required_approving_reviews,
                "dismiss_stale_reviews": e.dismiss_stale_reviews,
                "require_code_owner_reviews": e.require_code_owner_reviews,
                "reviews_enforced_for_admins": e.reviews_enforced_for_admins,
                "required_status_checks": e.required_status_checks,
                "status_checks_required": !e.required_status_checks.is_empty(),
                "force_pushes_blocked": e.force_pushes_blocked,
                "deletions_blocked": e.deletions_blocked,
            })));
            let mut unknown = BTreeMap::new();
            if e.reviews_enforced_for_admins.is_none() {
                unknown.insert(
                    "reviews_enforced_for_admins".to_string(),
                    format!(
                        "who may bypass a ruleset could not be read: {}",
                        bypass_unknown.join("; ")
                    ),
                );
            }
            let resource = Resource {
                id: format!("github:{}", repo.full_name),
                name: format!("repository {} (branch {branch})", repo.full_name),
                attributes: a,
                error: None,
                unknown,
                scope: false,
            };
            #[derive(Serialize)]
            struct Evidence<'a> {
                protection: &'a RawJson,
                rules: &'a [RawJson],
                rulesets: &'a [RawJson],
            }
            let evidence = raw(&Evidence {
                protection: &protection.1,
                rules: &rules.1,
                rulesets: &ruleset_evidence,
            })?;
            Ok((vec![resource], evidence))
        })
        .await
    }
}

/// `github.repo_security`.
pub struct RepoSecurity;

impl Probe for RepoSecurity {
    const NAME: &'static str = "github.repo_security";
    const SOURCE: &'static str = "github";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "Security features of each selected repository, one resource per repository: secret scanning, push protection, Dependabot alerts and security updates.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("org", String, "organisation login"),
        attr!("repo", String, "`org/name`"),
        attr!("visibility", String, "`public`, `private` or `internal`"),
        attr!("archived", Bool, "the repository is archived"),
        attr!("fork", Bool, "the repository is a fork"),
        attr!(
            "secret_scanning",
            Bool,
            "secret scanning is on (null if not visible to these credentials)"
        ),
        attr!(
            "push_protection",
            Bool,
            "secret scanning push protection is on (null if not visible)"
        ),
        attr!(
            "advanced_security",
            Bool,
            "GitHub Advanced Security is on (null if not visible or not applicable)"
        ),
        attr!(
            "dependabot_alerts",
            Bool,
            "Dependabot alerts are enabled (unknown if these credentials may not see)"
        ),
        attr!(
            "dependabot_security_updates",
            Bool,
            "Dependabot security updates are on (null if not visible)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: github.repo_security
assert: secret_scanning && push_protection && dependabot_alerts
"#;

    type Params = OrgSelection;

    async fn collect(ctx: &ProbeContext, params: &OrgSelection) -> Result<Collected, ProbeError> {
        per_repo(ctx, Self::NAME, params, |org, repo| async move {
            let mut unknown = BTreeMap::new();
            let alerts = match fetch::vulnerability_alerts(ctx, &org, &repo.full_name).await {
                Ok(on) => Some(*on),
                Err(e) => {
                    unknown.insert("dependabot_alerts".to_string(), e.to_string());
                    None
                }
            };
            let sa = repo.security_and_analysis.as_ref();
            if sa.is_none() {
                let why = format!(
                    "GitHub shows `security_and_analysis` only to those with admin access: the credentials need {}",
                    fetch::VULNERABILITY_ALERTS.permission
                );
                for a in ["secret_scanning", "push_protection", "advanced_security", "dependabot_security_updates"] {
                    unknown.insert(a.to_string(), why.clone());
                }
            }
            let mut a = repo_attributes(&org, &repo);
            a.extend(object(json!({
                "secret_scanning": sa.and_then(|s| Enabled::on(&s.secret_scanning)),
                "push_protection": sa.and_then(|s| Enabled::on(&s.secret_scanning_push_protection)),
                "advanced_security": sa.and_then(|s| Enabled::on(&s.advanced_security)),
                "dependabot_alerts": alerts,
                "dependabot_security_updates": sa.and_then(|s| Enabled::on(&s.dependabot_security_updates)),
            })));
            let resource = Resource {
                id: format!("github:{}", repo.full_name),
                name: format!("repository {}", repo.full_name),
                attributes: a,
                error: None,
                unknown,
                scope: false,
            };
            let raw_repo = fetch::raw_repo(ctx, &org, &repo.full_name).await;
            #[derive(Serialize)]
            struct Evidence {
                repository: RawJson,
                vulnerability_alerts: Option<bool>,
            }
            let evidence = raw(&Evidence {
                repository: raw_repo,
                vulnerability_alerts: alerts,
            })?;
            Ok((vec![resource], evidence))
        })
        .await
    }
}

/// `github.dependabot_alerts`.
pub struct DependabotAlerts;

impl Probe for DependabotAlerts {
    const NAME: &'static str = "github.dependabot_alerts";
    const SOURCE: &'static str = "github";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "Open Dependabot alerts of each selected repository, one resource per alert, with severity and age. A repository whose alerts cannot be read (or are disabled) is an error.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("org", String, "organisation login"),
        attr!("repo", String, "`org/name`"),
        attr!("number", Int, "the alert's number in the repository"),
        attr!("severity", String, "`critical`, `high`, `medium` or `low`"),
        attr!("package", String, "the vulnerable package"),
        attr!("ecosystem", String, "`npm`, `pip`, `cargo`…"),
        attr!("manifest", String, "the manifest declaring the dependency"),
        attr!("ghsa_id", String, "the GitHub advisory id"),
        attr!("cve_id", String, "the CVE id, null if none"),
        attr!(
            "patched_version",
            String,
            "the first fixed version, null if none yet"
        ),
        attr!("created_at", Timestamp, "when the alert was opened"),
        attr!(
            "age_days",
            Int,
            "days the alert has been open, rounded up (15 days and an hour is 16)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: github.dependabot_alerts
assert: "!(severity == 'critical' && age_days > 15) && !(severity == 'high' && age_days > 30)"
"#;

    type Params = OrgSelection;

    async fn collect(ctx: &ProbeContext, params: &OrgSelection) -> Result<Collected, ProbeError> {
        let now = ctx.now;
        per_repo(ctx, Self::NAME, params, |org, repo| async move {
            let alerts = fetch::open_alerts(ctx, &org, &repo.full_name).await?;
            let resources = alerts
                .0
                .iter()
                .filter(|a| a.state == "open")
                .map(|alert| {
                    let severity = alert
                        .security_vulnerability
                        .as_ref()
                        .and_then(|v| v.severity.clone())
                        .unwrap_or_else(|| alert.security_advisory.severity.clone());
                    Resource {
                        id: format!("github:{}#dependabot/{}", repo.full_name, alert.number),
                        name: format!(
                            "Dependabot alert {} in {} ({severity}, {} {})",
                            alert.number,
                            repo.full_name,
                            alert.dependency.package.name,
                            alert.security_advisory.ghsa_id
                        ),
                        attributes: object(json!({
                            "org": org,
                            "repo": repo.full_name,
                            "number": alert.number,
                            "severity": severity,
                            "package": alert.dependency.package.name,
                            "ecosystem": alert.dependency.package.ecosystem,
                            "manifest": alert.dependency.manifest_path,
                            "ghsa_id": alert.security_advisory.ghsa_id,
                            "cve_id": alert.security_advisory.cve_id,
                            "patched_version": alert.security_vulnerability.as_ref().and_then(|v| v.first_patched_version.as_ref()).map(|v| v.identifier.clone()),
                            "created_at": ts(Some(alert.created_at)),
                            "age_days": days_rounded_up(now - alert.created_at),
                        })),
                        error: None,
                        unknown: Default::default(),
                        scope: false,
                    }
                })
                .collect();
            Ok((resources, raw(&alerts.1)?))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fetch::{Flag, Protection, Reviews, Rule, StatusChecks};
    use serde_json::Value;

    fn rule(kind: &str, ruleset: u64, parameters: Value) -> Rule {
        Rule {
            kind: kind.into(),
            ruleset_source_type: Some("Organization".into()),
            ruleset_source: Some("acme".into()),
            ruleset_id: Some(ruleset),
            parameters,
        }
    }

    fn sets(entries: &[(u64, Option<bool>)]) -> BTreeMap<u64, RulesetInfo> {
        entries
            .iter()
            .map(|(id, no_bypass)| {
                (
                    *id,
                    RulesetInfo {
                        name: format!("rs{id}"),
                        no_bypass: *no_bypass,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn classic_protection_and_rulesets_combine() {
        // Nothing at all: unprotected, nothing required, nothing blocked.
        let e = effective(None, &[], &BTreeMap::new());
        assert!(!e.protected && e.required_approving_reviews == 0);
        assert_eq!(e.reviews_enforced_for_admins, Some(false));
        assert!(!e.force_pushes_blocked && !e.deletions_blocked);

        // Classic: two reviews, admins exempt; a check; force pushes allowed.
        let classic = Protection {
            required_pull_request_reviews: Some(Reviews {
                required_approving_review_count: 2,
                dismiss_stale_reviews: true,
                require_code_owner_reviews: false,
            }),
            enforce_admins: Some(Flag { enabled: false }),
            required_status_checks: Some(StatusChecks {
                contexts: vec!["ci/build".into()],
                checks: vec![],
            }),
            allow_force_pushes: Some(Flag { enabled: true }),
            allow_deletions: Some(Flag { enabled: false }),
        };
        let e = effective(Some(&classic), &[], &BTreeMap::new());
        assert_eq!(e.required_approving_reviews, 2);
        assert_eq!(e.reviews_enforced_for_admins, Some(false));
        assert!(!e.force_pushes_blocked && e.deletions_blocked);
        assert_eq!(
            e.required_status_checks,
            BTreeSet::from(["ci/build".to_string()])
        );

        // A ruleset nobody bypasses binds admins; its blocks and checks add up.
        let rules = [
            rule(
                "pull_request",
                21,
                json!({"required_approving_review_count": 1, "require_code_owner_review": true}),
            ),
            rule(
                "required_status_checks",
                21,
                json!({"required_status_checks": [{"context": "test"}]}),
            ),
            rule("non_fast_forward", 21, json!(null)),
        ];
        let e = effective(Some(&classic), &rules, &sets(&[(21, Some(true))]));
        assert_eq!(e.required_approving_reviews, 2);
        assert!(e.require_code_owner_reviews);
        assert_eq!(e.reviews_enforced_for_admins, Some(true));
        assert!(e.force_pushes_blocked);
        assert_eq!(e.required_status_checks.len(), 2);
        assert_eq!(e.rulesets, BTreeSet::from(["rs21".to_string()]));

        // A bypassable ruleset does not (whatever the mode: a `pull_request` bypass merges
        // without approvals); an unreadable bypass list is unknown.
        assert_eq!(
            effective(None, &rules, &sets(&[(21, Some(false))])).reviews_enforced_for_admins,
            Some(false)
        );
        assert_eq!(
            effective(None, &rules, &sets(&[(21, None)])).reviews_enforced_for_admins,
            None
        );
    }
}
