//! `aws.accounts`: each configured account and the environment it holds.
//!
//! Segregation of environments is a property of the accounts themselves, read on them:
//!
//! - the environment each account declares in the Trellis configuration
//!   (`sources.aws.accounts[].environment`), or, when it declares none, the `Environment` tag
//!   of the account in AWS Organizations (read when the credentials may: from the management
//!   account or a delegated administrator; elsewhere Organizations refuses, and the tag is
//!   simply not used);
//! - the account's id (`sts:GetCallerIdentity`): two configured accounts that turn out to be
//!   the same AWS account hold both their environments;
//! - the `Environment` (or `env`) tags of its EC2 instances in every region read: an instance
//!   tagged `staging` in the production account is staging in production.
//!
//! `other_environments` lists every environment found in the account besides its own. A
//! region whose instances cannot be listed makes the account `error`: the absence of other
//! environments is never concluded from a listing that failed.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_config::Region;
use serde::Serialize;
use serde_json::{Value, json};

use super::fetch;
use super::{Account, AccountSelection, Op, RegionSelection, classify, object};
use crate::config::Environment;
use crate::probes::{
    Attribute, Collected, EvidenceKind, Probe, ProbeContext, ProbeError, Resource,
};

/// The Organizations calls this module makes.
pub(crate) const OPERATIONS: &[Op] = &[LIST_TAGS_FOR_RESOURCE];

const LIST_TAGS_FOR_RESOURCE: Op = Op {
    name: "ListTagsForResource",
    permission: "organizations:ListTagsForResource",
};

/// Tag keys naming an environment, compared without case.
const ENVIRONMENT_TAGS: &[&str] = &["environment", "env"];

/// The environment a tag value names: the four Trellis knows under their usual spellings, and
/// any other value as written (lower case), so `qa` in production is still reported.
pub(crate) fn environment_of(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    let known = match v.as_str() {
        "" => return None,
        "prod" | "production" | "prd" | "live" => Environment::Production,
        "stage" | "staging" | "stg" | "preprod" | "pre-production" => Environment::Staging,
        "dev" | "development" | "develop" | "sandbox" => Environment::Development,
        "shared" | "shared-services" | "shared_services" | "tooling" => Environment::Shared,
        _ => return Some(v),
    };
    Some(known.as_str().to_string())
}

/// The environment named by a resource's tags, if any.
fn tagged_environment(tags: &super::fetch::Tags) -> Option<String> {
    tags.iter()
        .find(|(k, _)| ENVIRONMENT_TAGS.iter().any(|t| k.eq_ignore_ascii_case(t)))
        .and_then(|(_, v)| environment_of(v))
}

impl Account {
    pub fn organizations(&self) -> aws_sdk_organizations::Client {
        let conf = aws_sdk_organizations::config::Builder::from(&self.sdk)
            .interceptor(super::CountCalls)
            .region(Region::new(self.home_region.clone()))
            .build();
        aws_sdk_organizations::Client::from_conf(conf)
    }
}

/// The account's `Environment` tag in AWS Organizations: `Ok(None)` when it has none or when
/// Organizations cannot be read with these credentials (not the management account, no
/// organisation): the tag is optional evidence, and the note says why it was not used.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OrganizationTag {
    pub environment: Option<String>,
    pub note: Option<String>,
}

async fn organization_tag(
    ctx: &ProbeContext,
    account: &Arc<Account>,
    account_id: &str,
) -> Result<Arc<OrganizationTag>, ProbeError> {
    let key = format!("aws:{}:organizations:account-tags", account.name);
    let account_id = account_id.to_string();
    ctx.cache
        .get_or_fetch(&key, async move {
            let client = account.organizations();
            let permits = account.permits(&account.home_region);
            let _permit = permits.acquire().await;
            let mut pages = client
                .list_tags_for_resource()
                .resource_id(&account_id)
                .into_paginator()
                .send();
            let mut environment = None;
            while let Some(page) = pages.next().await {
                let page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        use aws_sdk_organizations::error::ProvideErrorMetadata;
                        let code = e.code().unwrap_or("").to_string();
                        let refused = matches!(
                            code.as_str(),
                            "AccessDeniedException"
                                | "AccessDenied"
                                | "AWSOrganizationsNotInUseException"
                                | "TargetNotFoundException"
                        );
                        if refused {
                            return Ok(OrganizationTag {
                                environment: None,
                                note: Some(format!(
                                    "the Organizations tag was not read ({code}): only the management account or a delegated administrator may read it"
                                )),
                            });
                        }
                        return Err(classify(LIST_TAGS_FOR_RESOURCE, &account.name, e));
                    }
                };
                for t in page.tags() {
                    if ENVIRONMENT_TAGS.iter().any(|k| t.key().eq_ignore_ascii_case(k)) {
                        environment = environment_of(t.value());
                    }
                }
            }
            Ok(OrganizationTag {
                environment,
                note: None,
            })
        })
        .await
}

/// `aws.accounts`.
pub struct Accounts;

/// What one account was found to hold.
#[derive(Debug, Serialize)]
struct Reading {
    account_id: Option<String>,
    organization: Option<Arc<OrganizationTag>>,
    /// Tagged environment → instance ids (at most a few named per environment).
    tagged: std::collections::BTreeMap<String, Vec<String>>,
    regions: Vec<String>,
    problems: Vec<String>,
}

impl Probe for Accounts {
    const NAME: &'static str = "aws.accounts";
    const SOURCE: &'static str = "aws";
    const KIND: EvidenceKind = EvidenceKind::System;
    const SUMMARY: &'static str = "Each configured AWS account: its environment (declared in sources.aws.accounts, else its Organizations tag), its account id, and the other environments it holds (another configured account that is the same AWS account; EC2 instances tagged with another environment).";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!(
            "account_id",
            String,
            "the 12-digit AWS account id the credentials reach"
        ),
        attr!(
            "environment",
            String,
            "`production`, `staging`, `development` or `shared`: declared in the config, else the account's Organizations tag; null if neither"
        ),
        attr!(
            "environment_source",
            String,
            "`config`, `organizations` or null"
        ),
        attr!(
            "organization_environment",
            String,
            "the account's `Environment` tag in AWS Organizations, null if none or not readable"
        ),
        attr!(
            "shares_account_with",
            List,
            "other configured accounts that are the same AWS account"
        ),
        attr!(
            "other_environments",
            List,
            "environments found in the account besides its own (other configured names of the same account, a disagreeing Organizations tag, EC2 instances' Environment tags)"
        ),
        attr!(
            "other_environment_resources",
            List,
            "the instances tagged with another environment, as `region/instance-id (environment)`"
        ),
        attr!(
            "regions_read",
            List,
            "the regions whose instances were read"
        ),
    ];
    const EXAMPLE: &'static str = "probe: aws.accounts\nrequire_resources: true\nassert: environment != null && size(other_environments) == 0\n";

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        let source = ctx
            .sources
            .aws
            .as_ref()
            .ok_or(ProbeError::NotConfigured("aws"))?;
        // Every configured account's id is needed to see two names for one account, even when
        // the check reads only some of them.
        let all = super::accounts(ctx, &[]).await?;
        let mut readings = Vec::new();
        for account in &all {
            readings.push(match account {
                Ok(account) => Ok(read(ctx, account).await),
                Err((name, e)) => Err((name.clone(), e.clone())),
            });
        }
        let ids: Vec<(String, Option<String>)> = readings
            .iter()
            .map(|r| match r {
                Ok((a, reading)) => (a.name.clone(), reading.account_id.clone()),
                Err((name, _)) => (name.clone(), None),
            })
            .collect();
        let declared = |name: &str| {
            source
                .accounts
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.environment)
        };
        let mut resources = Vec::new();
        let mut raw = serde_json::Map::new();
        for reading in readings {
            let (account, reading) = match reading {
                Ok(r) => r,
                Err((name, e)) => {
                    if params.accounts.is_empty() || params.accounts.contains(&name) {
                        raw.insert(name.clone(), json!({"error": e.to_string()}));
                        resources.push(Resource {
                            id: format!("aws:{name}"),
                            name: format!("AWS account {name}"),
                            attributes: object(json!({"account": name})),
                            error: Some(e.to_string()),
                            unknown: Default::default(),
                            scope: false,
                        });
                    }
                    continue;
                }
            };
            if !params.accounts.is_empty() && !params.accounts.contains(&account.name) {
                continue;
            }
            let org_env = reading
                .organization
                .as_ref()
                .and_then(|o| o.environment.clone());
            let (environment, env_source) = match declared(&account.name) {
                Some(e) => (Some(e.as_str().to_string()), Some("config")),
                None => match &org_env {
                    Some(e) => (Some(e.clone()), Some("organizations")),
                    None => (None, None),
                },
            };
            let mut others = BTreeSet::new();
            let mut shares = Vec::new();
            for (other, id) in &ids {
                if other != &account.name && id.is_some() && id == &reading.account_id {
                    shares.push(other.clone());
                    match declared(other) {
                        Some(e) => others.insert(e.as_str().to_string()),
                        None => others.insert(format!("undeclared ({other})")),
                    };
                }
            }
            if let Some(org) = &org_env {
                others.insert(org.clone());
            }
            others.extend(reading.tagged.keys().cloned());
            if let Some(own) = &environment {
                others.remove(own);
            }
            let foreign: Vec<String> = reading
                .tagged
                .iter()
                .filter(|(env, _)| Some(*env) != environment.as_ref())
                .flat_map(|(env, ids)| ids.iter().map(move |id| format!("{id} ({env})")))
                .collect();
            let id_label = reading
                .account_id
                .as_deref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default();
            let attributes = object(json!({
                "account": account.name,
                "account_id": reading.account_id,
                "environment": environment,
                "environment_source": env_source,
                "organization_environment": org_env,
                "shares_account_with": shares,
                "other_environments": others.iter().collect::<Vec<_>>(),
                "other_environment_resources": foreign,
                "regions_read": reading.regions,
            }));
            raw.insert(
                account.name.clone(),
                serde_json::to_value(&reading).unwrap_or(Value::Null),
            );
            resources.push(Resource {
                id: format!("aws:{}", account.name),
                name: format!("AWS account {}{id_label}", account.name),
                attributes,
                error: (!reading.problems.is_empty()).then(|| reading.problems.join("; ")),
                unknown: Default::default(),
                scope: false,
            });
        }
        Ok(Collected {
            resources,
            raw: json!({"source": "aws", "probe": Self::NAME, "accounts": raw}).into(),
        })
    }
}

/// Reads one account: its id, its Organizations tag, and its instances' environment tags in
/// every region. Failures are collected as problems of the account, never as absences.
async fn read(ctx: &ProbeContext, account: &Arc<Account>) -> (Arc<Account>, Reading) {
    let mut reading = Reading {
        account_id: None,
        organization: None,
        tagged: Default::default(),
        regions: Vec::new(),
        problems: Vec::new(),
    };
    match fetch::account_id(ctx, account).await {
        Ok(id) => {
            reading.account_id = Some(id.as_ref().clone());
            match organization_tag(ctx, account, &id).await {
                Ok(tag) => reading.organization = Some(tag),
                Err(e) => reading.problems.push(e.to_string()),
            }
        }
        Err(e) => reading.problems.push(e.to_string()),
    }
    let selection = RegionSelection {
        accounts: vec![account.name.clone()],
        regions: Vec::new(),
    };
    match super::scopes(ctx, &selection).await {
        Ok(scopes) => {
            for scope in scopes {
                match scope {
                    Ok(scope) => match fetch::instances(ctx, &scope).await {
                        Ok(instances) => {
                            reading.regions.push(scope.region.clone());
                            for i in instances.iter() {
                                if let Some(env) = tagged_environment(&i.tags) {
                                    let ids = reading.tagged.entry(env).or_default();
                                    ids.push(format!("{}/{}", scope.region, i.id));
                                }
                            }
                        }
                        Err(e) => reading.problems.push(e.to_string()),
                    },
                    Err((label, e)) => reading.problems.push(format!("{label}: {e}")),
                }
            }
        }
        Err(e) => reading.problems.push(e.to_string()),
    }
    (account.clone(), reading)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_tags_are_read_under_their_usual_spellings() {
        for (value, expected) in [
            ("Production", Some("production")),
            ("prod", Some("production")),
            (" STAGING ", Some("staging")),
            ("dev", Some("development")),
            ("shared-services", Some("shared")),
            ("qa", Some("qa")),
            ("", None),
        ] {
            assert_eq!(environment_of(value).as_deref(), expected, "{value}");
        }
        let tags = [("Env".to_string(), "stage".to_string())]
            .into_iter()
            .collect();
        assert_eq!(tagged_environment(&tags).as_deref(), Some("staging"));
        let tags = [("Name".to_string(), "prod-web".to_string())]
            .into_iter()
            .collect();
        assert_eq!(tagged_environment(&tags), None);
    }
}
