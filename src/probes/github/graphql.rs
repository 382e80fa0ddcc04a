//! Per-repository settings read 100 repositories a query through GitHub's GraphQL API:
//! default-branch protection (`Ref.branchProtectionRule`), the rules in force on the default
//! branch (`Ref.rules`, from repository and organisation rulesets), whether Dependabot alerts
//! are on (`hasVulnerabilityAlertsEnabled`) and the open alerts (`vulnerabilityAlerts`).
//!
//! What GraphQL answers is turned into the REST records of [`super::fetch`], so the probes
//! and their verdicts are the same whichever way the data came. GraphQL is trusted only where
//! it says all that REST would: for a repository whose settings these credentials do not
//! administer (`viewerCanAdminister: false`), for a connection longer than one page, or for
//! a field GraphQL refused, the REST calls are made as before. An error on a repository
//! itself (`FORBIDDEN`, `NOT_FOUND`) makes that repository an `error` resource. Where GraphQL is off
//! (`sources.github.graphql: false`) or refused as a whole (404, 403, or a schema without
//! these fields, as on an older Enterprise Server), everything is read over REST.
//!
//! One query is one request, and a few points of GraphQL's own limit
//! (`rateLimit { cost remaining resetAt }`, asked in every query and obeyed: when the points
//! left are fewer than a query costs, the next query waits for the reset — or, past the run's
//! window, is an error naming the limit).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::fetch::{
    self, Advisory, Alert, Check, Dependency, Flag, Package, Protection, Reviews, Rule,
    StatusChecks, Version, Vulnerability,
};
use super::{Github, client};
use crate::probes::{ProbeContext, ProbeError, RawJson};

/// Repositories per query (GitHub's page size; the node limit is far off).
pub const BATCH: usize = 100;

/// Items asked of each nested connection (rules, open alerts); more means REST for that one.
const PAGE: usize = 100;

/// What GraphQL said of one repository, as far as it can be trusted (`None`: ask REST).
#[derive(Debug, Default)]
pub(crate) struct RepoState {
    pub default_branch: Option<String>,
    /// Classic protection of the default branch, with its raw evidence.
    pub protection: Option<(Option<Protection>, RawJson)>,
    /// Rules in force on the default branch, with the raw nodes.
    pub rules: Option<(Vec<Rule>, Vec<RawJson>)>,
    pub alerts_enabled: Option<bool>,
    /// Open Dependabot alerts: `Err` when they are disabled (as REST answers).
    pub open_alerts: Option<Result<fetch::Alerts, ProbeError>>,
}

/// Every selected repository of an organisation, by `full_name` (lowercase): its state, or
/// the error GraphQL gave for it.
pub(crate) type States = HashMap<String, Result<Arc<RepoState>, ProbeError>>;

/// The GraphQL state of `full_name`: `Ok(None)` when REST must be asked (GraphQL off or
/// refused, or the repository not selected), `Err` when GraphQL refused this repository.
pub(crate) async fn state(
    ctx: &ProbeContext,
    org: &str,
    full_name: &str,
) -> Result<Option<Arc<RepoState>>, ProbeError> {
    let enabled = ctx.sources.github.as_ref().is_some_and(|g| g.graphql);
    if !enabled {
        return Ok(None);
    }
    let states = states(ctx, org).await?;
    match states
        .as_ref()
        .as_ref()
        .and_then(|s| s.get(&full_name.to_ascii_lowercase()))
    {
        Some(Ok(state)) => Ok(Some(Arc::clone(state))),
        Some(Err(e)) => Err(e.clone()),
        None => Ok(None),
    }
}

/// The states of every selected repository of `org`, once per run; `None` when GraphQL is
/// refused.
async fn states(ctx: &ProbeContext, org: &str) -> Result<Arc<Option<States>>, ProbeError> {
    ctx.cache
        .get_or_fetch(
            &format!("github:{org}:graphql"),
            Box::pin(async {
                let gh = client(ctx, org).await?;
                let repos = fetch::selected_repos(ctx, org).await?;
                let names: Vec<&str> = repos.iter().map(|r| r.name.as_str()).collect();
                let mut chunks = names.chunks(BATCH);
                let mut all = States::new();
                // The first query alone: if GraphQL is refused, it is the only one sent.
                if let Some(first) = chunks.next() {
                    match batch(&gh, org, first).await? {
                        Some(states) => all.extend(states),
                        None => return Ok(None),
                    }
                }
                let rest: Vec<&[&str]> = chunks.collect();
                let batches =
                    futures::future::join_all(rest.iter().map(|chunk| batch(&gh, org, chunk)))
                        .await;
                for (chunk, batch) in rest.iter().zip(batches) {
                    match batch {
                        Ok(Some(states)) => all.extend(states),
                        // Refused after all: these repositories are read over REST.
                        Ok(None) => {}
                        // A rate limit past the window: an error for these repositories alone.
                        Err(e) => {
                            all.extend(chunk.iter().map(|n| {
                                (format!("{org}/{n}").to_ascii_lowercase(), Err(e.clone()))
                            }))
                        }
                    }
                }
                Ok(Some(all))
            }),
        )
        .await
}

/// The fields read of each repository.
const FRAGMENT: &str = r#"fragment repo on Repository {
  nameWithOwner
  viewerCanAdminister
  hasVulnerabilityAlertsEnabled
  defaultBranchRef {
    name
    branchProtectionRule {
      pattern
      requiresApprovingReviews
      requiredApprovingReviewCount
      dismissesStaleReviews
      requiresCodeOwnerReviews
      isAdminEnforced
      requiresStatusChecks
      requiredStatusCheckContexts
      allowsForcePushes
      allowsDeletions
    }
    rules(first: PAGE) {
      pageInfo { hasNextPage }
      nodes {
        type
        parameters {
          ... on PullRequestParameters {
            requiredApprovingReviewCount
            dismissStaleReviewsOnPush
            requireCodeOwnerReview
          }
          ... on RequiredStatusChecksParameters {
            requiredStatusChecks { context }
          }
        }
        repositoryRuleset {
          databaseId
          name
          source {
            __typename
            ... on Organization { login }
            ... on Repository { nameWithOwner }
          }
        }
      }
    }
  }
  vulnerabilityAlerts(first: PAGE, states: [OPEN]) {
    pageInfo { hasNextPage }
    nodes {
      number
      state
      createdAt
      vulnerableManifestPath
      securityVulnerability {
        severity
        package { ecosystem name }
        firstPatchedVersion { identifier }
      }
      securityAdvisory {
        ghsaId
        severity
        summary
        identifiers { type value }
      }
    }
  }
}"#;

/// The query for `names` of `org` (aliases `r0`…, names as variables `$n0`…).
pub fn query(names: &[&str]) -> Value {
    let params: Vec<String> = (0..names.len())
        .map(|i| format!(", $n{i}: String!"))
        .collect();
    let fields: Vec<String> = (0..names.len())
        .map(|i| format!("  r{i}: repository(owner: $owner, name: $n{i}) {{ ...repo }}\n"))
        .collect();
    let text = format!(
        "query($owner: String!{}) {{\n  rateLimit {{ cost remaining resetAt }}\n{}}}\n{}",
        params.concat(),
        fields.concat(),
        FRAGMENT.replace("PAGE", &PAGE.to_string())
    );
    let mut variables = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        variables.insert(format!("n{i}"), json!(name));
    }
    json!({"query": text, "variables": variables})
}

/// One query: `None` when GraphQL is refused (REST for everything).
async fn batch(gh: &Github, org: &str, names: &[&str]) -> Result<Option<States>, ProbeError> {
    let mut body = query(names);
    body["variables"]["owner"] = json!(org);
    let path = gh.graphql_path();
    let answer = match gh.post_graphql(&body).await {
        Ok(a) => a,
        // Rate limits past the window are errors naming the limit, for each repository.
        Err(e @ ProbeError::Throttled(_)) => return Err(e),
        Err(e) => {
            tracing::warn!(org, error = %e, "github graphql failed: reading these repositories over REST");
            return Ok(Some(HashMap::new()));
        }
    };
    if answer.status != 200 {
        tracing::warn!(
            org,
            status = answer.status,
            message = %answer.message(),
            "github graphql refused: reading repositories over REST"
        );
        return Ok(None);
    }
    let value: Value = serde_json::from_str(&answer.body)
        .map_err(|e| ProbeError::BadBody(format!("POST {path}: the answer is not JSON: {e}")))?;
    let data = &value["data"];
    if !data.is_object() {
        // A schema without these fields (an older Enterprise Server), or a malformed query.
        tracing::warn!(org, errors = %value["errors"], "github graphql answered no data: reading repositories over REST");
        return Ok(None);
    }
    obey_rate_limit(gh, &data["rateLimit"]);
    let errors = value["errors"].as_array().cloned().unwrap_or_default();
    let mut out = States::new();
    for (i, name) in names.iter().enumerate() {
        let alias = format!("r{i}");
        let full_name = format!("{org}/{name}").to_ascii_lowercase();
        let mine: Vec<&Value> = errors
            .iter()
            .filter(|e| e["path"][0].as_str() == Some(alias.as_str()))
            .collect();
        // An error on the repository itself makes it an error; one on a field of it (which
        // GraphQL then answers null) sends what that field says to REST.
        let whole: Vec<&Value> = mine
            .iter()
            .filter(|e| e["path"][1].is_null())
            .copied()
            .collect();
        let refused: BTreeSet<&str> = mine.iter().filter_map(|e| e["path"][1].as_str()).collect();
        let repo = &data[alias.as_str()];
        let state = if !whole.is_empty() {
            Err(repo_error(&path, &full_name, &whole))
        } else if repo.is_null() {
            Err(ProbeError::Io(format!(
                "POST {path}: GitHub did not show repository {full_name}"
            )))
        } else {
            Ok(Arc::new(repo_state(&path, repo, &refused)))
        };
        out.insert(full_name, state);
    }
    Ok(Some(out))
}

/// The error GraphQL gave for a repository, naming what is needed when it is a refusal.
fn repo_error(path: &str, full_name: &str, errors: &[&Value]) -> ProbeError {
    let text: Vec<String> = errors
        .iter()
        .map(|e| {
            format!(
                "{} ({})",
                e["type"].as_str().unwrap_or("ERROR"),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let text = text.join("; ");
    if errors.iter().any(|e| e["type"] == "FORBIDDEN") {
        ProbeError::Auth(format!(
            "POST {path} ({full_name}): {text}: the credentials need {}",
            fetch::PROTECTION.permission
        ))
    } else {
        ProbeError::Io(format!("POST {path} ({full_name}): {text}"))
    }
}

/// Honours GraphQL's own limit: when fewer points are left than the last query cost, later
/// queries wait for the reset (within the run's window).
fn obey_rate_limit(gh: &Github, limit: &Value) {
    let (Some(cost), Some(remaining)) = (limit["cost"].as_u64(), limit["remaining"].as_u64())
    else {
        return;
    };
    if remaining >= cost.max(1) {
        return;
    }
    if let Some(reset) = limit["resetAt"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        gh.exhausted_until("graphql", reset.to_utc());
    }
}

/// The state of one repository, from its GraphQL object.
/// `refused`: the fields GraphQL gave an error for (read over REST instead).
fn repo_state(path: &str, repo: &Value, refused: &BTreeSet<&str>) -> RepoState {
    let admin = repo["viewerCanAdminister"].as_bool() == Some(true);
    let alerts_refused = refused.contains("vulnerabilityAlerts")
        || refused.contains("hasVulnerabilityAlertsEnabled");
    let branch = if refused.contains("defaultBranchRef") {
        &Value::Null
    } else {
        &repo["defaultBranchRef"]
    };
    let mut state = RepoState {
        default_branch: branch["name"].as_str().map(str::to_string),
        ..RepoState::default()
    };
    if admin && branch.is_object() {
        let rule = &branch["branchProtectionRule"];
        state.protection = Some(if rule.is_object() {
            (Some(protection(rule)), RawJson::from(rule))
        } else {
            (None, json!({"message": "Branch not protected"}).into())
        });
    }
    let rules = &branch["rules"];
    if rules["pageInfo"]["hasNextPage"] == false
        && let Some(nodes) = rules["nodes"].as_array()
    {
        state.rules = Some((
            nodes.iter().map(rule).collect(),
            nodes.iter().map(RawJson::from).collect(),
        ));
    }
    if admin && !alerts_refused {
        let enabled = repo["hasVulnerabilityAlertsEnabled"].as_bool();
        state.alerts_enabled = enabled;
        let alerts = &repo["vulnerabilityAlerts"];
        state.open_alerts = match enabled {
            Some(false) => Some(Err(ProbeError::Io(format!(
                "POST {path} ({}): {} (hasVulnerabilityAlertsEnabled: false)",
                repo["nameWithOwner"].as_str().unwrap_or_default(),
                fetch::DEPENDABOT_DISABLED
            )))),
            Some(true) if alerts["pageInfo"]["hasNextPage"] == false => alerts["nodes"]
                .as_array()
                .and_then(|nodes| nodes.iter().map(alert).collect::<Option<Vec<Alert>>>())
                .map(|list| {
                    let texts = alerts["nodes"]
                        .as_array()
                        .map(|nodes| nodes.iter().map(RawJson::from).collect())
                        .unwrap_or_default();
                    Ok((list, texts))
                }),
            _ => None,
        };
    }
    state
}

fn flag(v: &Value) -> Option<Flag> {
    Some(Flag {
        enabled: v.as_bool()?,
    })
}

/// Classic protection as REST describes it, from a `BranchProtectionRule`.
pub(crate) fn protection(rule: &Value) -> Protection {
    let on = |field: &str| rule[field].as_bool() == Some(true);
    Protection {
        required_status_checks: on("requiresStatusChecks").then(|| StatusChecks {
            contexts: rule["requiredStatusCheckContexts"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            checks: Vec::<Check>::new(),
        }),
        enforce_admins: flag(&rule["isAdminEnforced"]),
        required_pull_request_reviews: on("requiresApprovingReviews").then(|| Reviews {
            required_approving_review_count: rule["requiredApprovingReviewCount"]
                .as_u64()
                .unwrap_or(0),
            dismiss_stale_reviews: on("dismissesStaleReviews"),
            require_code_owner_reviews: on("requiresCodeOwnerReviews"),
        }),
        allow_force_pushes: flag(&rule["allowsForcePushes"]),
        allow_deletions: flag(&rule["allowsDeletions"]),
    }
}

/// A rule in force as REST's `rules/branches` lists it, from a `RepositoryRule`.
pub(crate) fn rule(node: &Value) -> Rule {
    let p = &node["parameters"];
    let parameters = match node["type"].as_str() {
        Some("PULL_REQUEST") => json!({
            "required_approving_review_count": p["requiredApprovingReviewCount"],
            "dismiss_stale_reviews_on_push": p["dismissStaleReviewsOnPush"],
            "require_code_owner_review": p["requireCodeOwnerReview"],
        }),
        Some("REQUIRED_STATUS_CHECKS") => json!({
            "required_status_checks": p["requiredStatusChecks"]
                .as_array()
                .map(|checks| checks.iter().map(|c| json!({"context": c["context"]})).collect::<Vec<_>>())
                .unwrap_or_default(),
        }),
        _ => Value::Null,
    };
    let ruleset = &node["repositoryRuleset"];
    let source = &ruleset["source"];
    Rule {
        kind: node["type"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        ruleset_source_type: source["__typename"].as_str().map(str::to_string),
        ruleset_source: source["login"]
            .as_str()
            .or(source["nameWithOwner"].as_str())
            .map(str::to_string),
        ruleset_id: ruleset["databaseId"].as_u64(),
        parameters,
    }
}

/// GraphQL's severities in REST's words (`MODERATE` is `medium`).
fn severity(v: &Value) -> Option<String> {
    v.as_str().map(|s| match s {
        "MODERATE" => "medium".to_string(),
        s => s.to_ascii_lowercase(),
    })
}

/// An open Dependabot alert as REST lists it, from a `RepositoryVulnerabilityAlert`.
pub(crate) fn alert(node: &Value) -> Option<Alert> {
    let vulnerability = &node["securityVulnerability"];
    let advisory = &node["securityAdvisory"];
    let created_at: DateTime<Utc> = node["createdAt"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
        .to_utc();
    Some(Alert {
        number: node["number"].as_u64()?,
        state: node["state"].as_str()?.to_ascii_lowercase(),
        dependency: Dependency {
            package: Package {
                ecosystem: vulnerability["package"]["ecosystem"]
                    .as_str()?
                    .to_ascii_lowercase(),
                name: vulnerability["package"]["name"].as_str()?.to_string(),
            },
            manifest_path: node["vulnerableManifestPath"].as_str().map(str::to_string),
        },
        security_advisory: Advisory {
            ghsa_id: advisory["ghsaId"].as_str()?.to_string(),
            cve_id: advisory["identifiers"].as_array().and_then(|ids| {
                ids.iter()
                    .find(|i| i["type"] == "CVE")
                    .and_then(|i| i["value"].as_str().map(str::to_string))
            }),
            severity: severity(&advisory["severity"])?,
            summary: advisory["summary"].as_str().map(str::to_string),
        },
        security_vulnerability: Some(Vulnerability {
            severity: severity(&vulnerability["severity"]),
            first_patched_version: vulnerability["firstPatchedVersion"]["identifier"]
                .as_str()
                .map(|v| Version {
                    identifier: v.to_string(),
                }),
        }),
        created_at,
        html_url: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_each_repository_once_with_variables() {
        let q = query(&["api", "web"]);
        let text = q["query"].as_str().unwrap();
        assert!(text.starts_with("query($owner: String!, $n0: String!, $n1: String!)"));
        assert!(text.contains("r1: repository(owner: $owner, name: $n1) { ...repo }"));
        assert!(text.contains("rateLimit { cost remaining resetAt }"));
        assert!(text.contains("rules(first: 100)"));
        assert_eq!(q["variables"]["n1"], "web");
    }

    #[test]
    fn a_field_graphql_refused_is_left_to_rest() {
        let repo = json!({
            "nameWithOwner": "acme/api", "viewerCanAdminister": true,
            "hasVulnerabilityAlertsEnabled": true,
            // Nulled by a FORBIDDEN error on the field: not "unprotected".
            "defaultBranchRef": {"name": "main", "branchProtectionRule": null,
                                 "rules": {"pageInfo": {"hasNextPage": false}, "nodes": []}},
            "vulnerabilityAlerts": null
        });
        let all = repo_state("/graphql", &repo, &BTreeSet::new());
        assert!(all.protection.is_some() && all.rules.is_some());
        let refused = repo_state(
            "/graphql",
            &repo,
            &BTreeSet::from(["defaultBranchRef", "vulnerabilityAlerts"]),
        );
        assert!(refused.protection.is_none() && refused.rules.is_none());
        assert!(refused.alerts_enabled.is_none() && refused.open_alerts.is_none());
        // Not an admin: protection and Dependabot from REST, rules from GraphQL.
        let mut member = repo.clone();
        member["viewerCanAdminister"] = json!(false);
        let member = repo_state("/graphql", &member, &BTreeSet::new());
        assert!(member.protection.is_none() && member.alerts_enabled.is_none());
        assert!(member.rules.is_some());
    }

    #[test]
    fn graphql_records_read_as_rest_ones() {
        let p = protection(&json!({
            "requiresApprovingReviews": true, "requiredApprovingReviewCount": 2,
            "dismissesStaleReviews": true, "requiresCodeOwnerReviews": false,
            "isAdminEnforced": true, "requiresStatusChecks": true,
            "requiredStatusCheckContexts": ["ci/build"],
            "allowsForcePushes": false, "allowsDeletions": true
        }));
        let reviews = p.required_pull_request_reviews.unwrap();
        assert_eq!(reviews.required_approving_review_count, 2);
        assert!(reviews.dismiss_stale_reviews && !reviews.require_code_owner_reviews);
        assert_eq!(p.required_status_checks.unwrap().contexts, ["ci/build"]);
        assert!(p.enforce_admins.unwrap().enabled);
        assert!(p.allow_deletions.unwrap().enabled && !p.allow_force_pushes.unwrap().enabled);

        let r = rule(&json!({
            "type": "PULL_REQUEST",
            "parameters": {"requiredApprovingReviewCount": 1, "dismissStaleReviewsOnPush": false, "requireCodeOwnerReview": true},
            "repositoryRuleset": {"databaseId": 21, "name": "protect main", "source": {"__typename": "Organization", "login": "acme"}}
        }));
        assert_eq!(r.kind, "pull_request");
        assert_eq!(r.ruleset_source_type.as_deref(), Some("Organization"));
        assert_eq!(r.ruleset_id, Some(21));
        assert_eq!(r.parameters["required_approving_review_count"], 1);
        assert_eq!(r.parameters["require_code_owner_review"], true);

        let a = alert(&json!({
            "number": 7, "state": "OPEN", "createdAt": "2026-11-01T09:00:00Z",
            "vulnerableManifestPath": "package-lock.json",
            "securityVulnerability": {"severity": "MODERATE", "package": {"ecosystem": "NPM", "name": "lodash"}, "firstPatchedVersion": null},
            "securityAdvisory": {"ghsaId": "GHSA-x", "severity": "HIGH", "summary": "s", "identifiers": [{"type": "GHSA", "value": "GHSA-x"}, {"type": "CVE", "value": "CVE-2026-1"}]}
        }))
        .unwrap();
        assert_eq!(a.state, "open");
        assert_eq!(a.dependency.package.ecosystem, "npm");
        assert_eq!(a.security_advisory.cve_id.as_deref(), Some("CVE-2026-1"));
        assert_eq!(a.security_advisory.severity, "high");
        assert_eq!(
            a.security_vulnerability.unwrap().severity.as_deref(),
            Some("medium")
        );
    }
}
