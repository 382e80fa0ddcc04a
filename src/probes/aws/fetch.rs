//! Every AWS listing Trellis makes, each cached for the run by account, region and operation,
//! so that one run requests each page once however many checks read it.
//!
//! The functions return plain, serializable records (the evidence kept in the store), not SDK
//! types. Paginated listings use the SDK's paginators with an explicit page size.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use aws_sdk_iam::types::EntityType;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Account, Op, Scope, classify, time};

use crate::probes::{ProbeContext, ProbeError};

/// Every AWS operation Trellis calls. `docs/aws-iam-policy.json` grants exactly these (tested).
pub const OPERATIONS: &[Op] = &[
    GET_CALLER_IDENTITY,
    DESCRIBE_REGIONS,
    GENERATE_CREDENTIAL_REPORT,
    GET_CREDENTIAL_REPORT,
    GET_AUTHORIZATION_DETAILS,
    GET_PASSWORD_POLICY,
    GET_ACCOUNT_SUMMARY,
    DESCRIBE_SECURITY_GROUPS,
    DESCRIBE_NETWORK_INTERFACES,
    GET_EBS_ENCRYPTION_BY_DEFAULT,
    DESCRIBE_VOLUMES,
    DESCRIBE_SNAPSHOTS,
    DESCRIBE_VPCS,
    DESCRIBE_FLOW_LOGS,
    DESCRIBE_INSTANCES,
];

/// Runs `fetch` once per run for `key`, sharing the result.
pub(crate) async fn cached<T, F>(
    ctx: &ProbeContext,
    key: String,
    fetch: F,
) -> Result<Arc<T>, ProbeError>
where
    T: Send + Sync + 'static,
    F: Future<Output = Result<T, ProbeError>>,
{
    // Boxed: the SDK's futures are large, and a probe awaiting several listings nested in
    // each other would otherwise hold them all on the stack.
    ctx.cache.get_or_fetch(&key, Box::pin(fetch)).await
}

/// `Key=Value` tags, sorted by key (the last value of a repeated key wins). Serialized as a
/// JSON object. A resource has a handful: as a `BTreeMap` each one held a ~0.5 KB tree node,
/// most of what 10,000 IAM users' tags took in the fetch cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tags(Box<[(Box<str>, Box<str>)]>);

impl Tags {
    /// The value of tag `key` (case-sensitive, as AWS's keys are).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_ref())
    }

    /// (key, value) pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
}

impl<K: Into<Box<str>>, V: Into<Box<str>>> FromIterator<(K, V)> for Tags {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Tags {
        let mut pairs: Vec<(Box<str>, Box<str>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        crate::probes::attributes::sort_last_wins(&mut pairs);
        Tags(pairs.into_boxed_slice())
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// `Key=Value` tags (a pair without a key is dropped; one without a value is empty).
pub(crate) fn tags<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Tags {
    pairs
        .into_iter()
        .filter_map(|(k, v)| k.map(|k| (k, v.unwrap_or(""))))
        .collect()
}

// ----------------------------------------------------------------------------------------
// Identity

const GET_CALLER_IDENTITY: Op = Op {
    name: "GetCallerIdentity",
    permission: "sts:GetCallerIdentity",
};

/// The 12-digit id of the account the credentials reach, once per account per run.
pub(crate) async fn account_id(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<String>, ProbeError> {
    let key = format!("aws:{}:account-id", account.name);
    cached(ctx, key, async {
        let conf = aws_sdk_sts::config::Builder::from(&account.sdk)
            .interceptor(super::CountCalls)
            .region(aws_config::Region::new(account.home_region.clone()))
            .build();
        let client = aws_sdk_sts::Client::from_conf(conf);
        let out = client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify(GET_CALLER_IDENTITY, &account.name, e))?;
        out.account().map(str::to_string).ok_or_else(|| {
            ProbeError::BadBody(format!(
                "GetCallerIdentity in {}: the answer names no account",
                account.name
            ))
        })
    })
    .await
}

// ----------------------------------------------------------------------------------------
// Regions

const DESCRIBE_REGIONS: Op = Op {
    name: "DescribeRegions",
    permission: "ec2:DescribeRegions",
};

/// The regions enabled in the account (opted-in or not requiring opt-in), sorted.
pub(crate) async fn enabled_regions(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<Vec<String>>, ProbeError> {
    let key = format!("aws:{}:regions", account.name);
    cached(ctx, key, async {
        let client = account.ec2(&account.home_region);
        let label = format!("{}/{}", account.name, account.home_region);
        let permits = account.permits(&account.home_region);
        let _permit = permits.acquire().await;
        let out = client
            .describe_regions()
            .all_regions(false)
            .send()
            .await
            .map_err(|e| classify(DESCRIBE_REGIONS, &label, e))?;
        let mut regions: Vec<String> = out
            .regions()
            .iter()
            .filter(|r| r.opt_in_status().is_none_or(|s| s != "not-opted-in"))
            .filter_map(|r| r.region_name().map(str::to_string))
            .collect();
        regions.sort();
        Ok(regions)
    })
    .await
}

// ----------------------------------------------------------------------------------------
// IAM

/// The IAM credential report: the CSV as AWS produced it (what is kept as evidence), checked
/// when read; its rows are parsed again as they are used ([`CredentialReport::rows`]).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CredentialReport {
    pub generated_at: Option<DateTime<Utc>>,
    /// The report as AWS produced it. Kept as text: as evidence it is the original, and as one
    /// string it costs its length, where 10,000 rows held as maps cost ~25 MiB for as long as
    /// the run's fetch cache lives.
    pub csv: String,
    /// The account, for errors.
    #[serde(skip)]
    label: String,
}

impl CredentialReport {
    /// Column name → value, one map per row (the root account's row is `<root_account>`),
    /// parsed one at a time.
    pub fn rows(&self) -> impl Iterator<Item = Result<BTreeMap<String, String>, ProbeError>> + '_ {
        let bad = |msg: String| {
            ProbeError::BadBody(format!("credential report of {}: {msg}", self.label))
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(self.csv.as_bytes());
        let headers = reader.headers().cloned();
        let mut records = reader.into_records().enumerate();
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let headers = match &headers {
                Ok(h) => h,
                Err(e) => {
                    failed = true;
                    return Some(Err(bad(format!("unreadable header: {e}"))));
                }
            };
            let (i, record) = records.next()?;
            Some(match record {
                Ok(record) => Ok(headers
                    .iter()
                    .zip(record.iter())
                    .map(|(h, v)| (h.to_string(), v.to_string()))
                    .collect()),
                Err(e) => {
                    failed = true;
                    Err(bad(format!("row {}: {e}", i + 2)))
                }
            })
        })
    }
}

const GENERATE_CREDENTIAL_REPORT: Op = Op {
    name: "GenerateCredentialReport",
    permission: "iam:GenerateCredentialReport",
};
const GET_CREDENTIAL_REPORT: Op = Op {
    name: "GetCredentialReport",
    permission: "iam:GetCredentialReport",
};

/// Generates (if needed) and reads the credential report, once per account per run.
pub(crate) async fn credential_report(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<CredentialReport>, ProbeError> {
    let key = format!("aws:{}:iam:credential-report", account.name);
    cached(ctx, key, async {
        let client = account.iam();
        let label = account.name.as_str();
        let permits = account.permits("iam");
        let _permit = permits.acquire().await;
        let deadline = tokio::time::Instant::now() + account.credential_report_wait;
        let mut wait = Duration::from_millis(250);
        // Generate until AWS says the report is complete, then read it. A report younger than
        // four hours is simply returned as complete.
        loop {
            let state = client
                .generate_credential_report()
                .send()
                .await
                .map_err(|e| classify(GENERATE_CREDENTIAL_REPORT, label, e))?;
            let done = state
                .state()
                .is_some_and(|s| s.as_str().eq_ignore_ascii_case("COMPLETE"));
            if done {
                break;
            }
            // moto and a fresh report answer STARTED; the report is usually ready at once.
            match client.get_credential_report().send().await {
                Ok(report) => return parse_report(label, &report),
                Err(e) => {
                    let code = e.as_service_error().and_then(|s| {
                        aws_sdk_iam::error::ProvideErrorMetadata::code(s).map(str::to_string)
                    });
                    let pending = matches!(
                        code.as_deref(),
                        Some("ReportInProgress" | "ReportNotPresent" | "ReportExpired")
                    );
                    if !pending {
                        return Err(classify(GET_CREDENTIAL_REPORT, label, e));
                    }
                }
            }
            if tokio::time::Instant::now() + wait > deadline {
                return Err(ProbeError::Unavailable(format!(
                    "GenerateCredentialReport in {label}: IAM had not finished the credential report after {}s (sources.aws.credential_report_wait)",
                    account.credential_report_wait.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        let report = client
            .get_credential_report()
            .send()
            .await
            .map_err(|e| classify(GET_CREDENTIAL_REPORT, label, e))?;
        parse_report(label, &report)
    })
    .await
}

fn parse_report(
    label: &str,
    report: &aws_sdk_iam::operation::get_credential_report::GetCredentialReportOutput,
) -> Result<CredentialReport, ProbeError> {
    let bad = |msg: String| ProbeError::BadBody(format!("credential report of {label}: {msg}"));
    let content = report
        .content()
        .ok_or_else(|| bad("the report has no content".into()))?;
    let text =
        std::str::from_utf8(content.as_ref()).map_err(|e| bad(format!("not UTF-8 text: {e}")))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| bad(format!("unreadable header: {e}")))?
        .clone();
    for required in ["user", "arn", "password_enabled", "mfa_active"] {
        if !headers.iter().any(|h| h == required) {
            return Err(bad(format!("missing column `{required}`")));
        }
    }
    // Every row is read once here, so a malformed report is an error before any resource.
    let mut record = csv::StringRecord::new();
    let mut row = 1;
    loop {
        row += 1;
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(bad(format!("row {row}: {e}"))),
        }
    }
    Ok(CredentialReport {
        generated_at: report.generated_time().and_then(time),
        csv: text.to_string(),
        label: label.to_string(),
    })
}

/// An IAM policy document statement, reduced to what admin detection needs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PolicyRef {
    pub name: String,
    /// `managed` or `inline`.
    pub kind: &'static str,
    pub arn: Option<String>,
    /// The document (inline policies and customer-managed policies; null for AWS-managed
    /// policies, whose documents are not listed).
    pub document: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct IamUser {
    pub name: String,
    pub arn: String,
    pub path: String,
    pub created_at: Option<DateTime<Utc>>,
    pub groups: Vec<String>,
    pub attached: Vec<PolicyRef>,
    pub inline: Vec<PolicyRef>,
    pub tags: Tags,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct IamPrincipal {
    pub name: String,
    pub arn: String,
    pub attached: Vec<PolicyRef>,
    pub inline: Vec<PolicyRef>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ManagedPolicy {
    pub name: String,
    pub arn: String,
    pub attachment_count: i64,
    /// The default version's document.
    pub document: Option<serde_json::Value>,
}

/// Users, groups, roles and customer-managed policies with their documents, from
/// `GetAccountAuthorizationDetails` (one paginated listing per account per run).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuthorizationDetails {
    pub users: Vec<IamUser>,
    pub groups: Vec<IamPrincipal>,
    pub roles: Vec<IamPrincipal>,
    pub policies: Vec<ManagedPolicy>,
}

const GET_AUTHORIZATION_DETAILS: Op = Op {
    name: "GetAccountAuthorizationDetails",
    permission: "iam:GetAccountAuthorizationDetails",
};

/// Policy documents arrive URL-encoded JSON.
fn decode_document(
    label: &str,
    raw: Option<&str>,
) -> Result<Option<serde_json::Value>, ProbeError> {
    let Some(raw) = raw else { return Ok(None) };
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|e| ProbeError::BadBody(format!("{label}: policy document is not UTF-8: {e}")))?;
    serde_json::from_str(&decoded)
        .map(Some)
        .map_err(|e| ProbeError::BadBody(format!("{label}: policy document is not JSON: {e}")))
}

pub(crate) async fn authorization_details(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<AuthorizationDetails>, ProbeError> {
    let key = format!("aws:{}:iam:authorization-details", account.name);
    cached(ctx, key, async {
        let client = account.iam();
        let label = account.name.as_str();
        let permits = account.permits("iam");
        let mut pages = client
            .get_account_authorization_details()
            .filter(EntityType::User)
            .filter(EntityType::Group)
            .filter(EntityType::Role)
            .filter(EntityType::LocalManagedPolicy)
            .into_paginator()
            .page_size(1000)
            .send();
        let mut out = AuthorizationDetails {
            users: Vec::new(),
            groups: Vec::new(),
            roles: Vec::new(),
            policies: Vec::new(),
        };
        let attached = |list: &[aws_sdk_iam::types::AttachedPolicy]| -> Vec<PolicyRef> {
            list.iter()
                .map(|p| PolicyRef {
                    name: p.policy_name().unwrap_or("").to_string(),
                    kind: "managed",
                    arn: p.policy_arn().map(str::to_string),
                    document: None,
                })
                .collect()
        };
        let inline =
            |list: &[aws_sdk_iam::types::PolicyDetail]| -> Result<Vec<PolicyRef>, ProbeError> {
                list.iter()
                    .map(|p| {
                        let name = p.policy_name().unwrap_or("").to_string();
                        Ok(PolicyRef {
                            document: decode_document(
                                &format!("{label}: inline policy {name}"),
                                p.policy_document(),
                            )?,
                            name,
                            kind: "inline",
                            arn: None,
                        })
                    })
                    .collect()
            };
        loop {
            let next = {
                let _permit = permits.acquire().await;
                pages.next().await
            };
            let Some(page) = next else { break };
            let page = page.map_err(|e| classify(GET_AUTHORIZATION_DETAILS, label, e))?;
            for u in page.user_detail_list() {
                out.users.push(IamUser {
                    name: u.user_name().unwrap_or("").to_string(),
                    arn: u.arn().unwrap_or("").to_string(),
                    path: u.path().unwrap_or("/").to_string(),
                    created_at: u.create_date().and_then(time),
                    groups: u.group_list().to_vec(),
                    attached: attached(u.attached_managed_policies()),
                    inline: inline(u.user_policy_list())?,
                    tags: tags(u.tags().iter().map(|t| (Some(t.key()), Some(t.value())))),
                });
            }
            for g in page.group_detail_list() {
                out.groups.push(IamPrincipal {
                    name: g.group_name().unwrap_or("").to_string(),
                    arn: g.arn().unwrap_or("").to_string(),
                    attached: attached(g.attached_managed_policies()),
                    inline: inline(g.group_policy_list())?,
                });
            }
            for r in page.role_detail_list() {
                out.roles.push(IamPrincipal {
                    name: r.role_name().unwrap_or("").to_string(),
                    arn: r.arn().unwrap_or("").to_string(),
                    attached: attached(r.attached_managed_policies()),
                    inline: inline(r.role_policy_list())?,
                });
            }
            for p in page.policies() {
                let arn = p.arn().unwrap_or("").to_string();
                // The name is the ARN's last segment when the listing leaves it out.
                let name = p
                    .policy_name()
                    .map(str::to_string)
                    .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or("").to_string());
                let default = p
                    .policy_version_list()
                    .iter()
                    .find(|v| v.is_default_version());
                out.policies.push(ManagedPolicy {
                    document: decode_document(
                        &format!("{label}: policy {name}"),
                        default.and_then(|v| v.document()),
                    )?,
                    name,
                    arn,
                    attachment_count: i64::from(p.attachment_count().unwrap_or(0)),
                });
            }
        }
        Ok(out)
    })
    .await
}

/// The account password policy; `None` when the account has none (which is a finding, not an
/// error).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PasswordPolicy {
    pub minimum_length: Option<i64>,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub allow_users_to_change: bool,
    pub max_age_days: Option<i64>,
    pub reuse_prevention: Option<i64>,
    pub hard_expiry: bool,
}

const GET_PASSWORD_POLICY: Op = Op {
    name: "GetAccountPasswordPolicy",
    permission: "iam:GetAccountPasswordPolicy",
};

pub(crate) async fn password_policy(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<Option<PasswordPolicy>>, ProbeError> {
    let key = format!("aws:{}:iam:password-policy", account.name);
    cached(ctx, key, async {
        let permits = account.permits("iam");
        let _permit = permits.acquire().await;
        let result = account.iam().get_account_password_policy().send().await;
        let out = match result {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify(GET_PASSWORD_POLICY, &account.name, e)),
        };
        let Some(p) = out.password_policy() else {
            return Err(ProbeError::BadBody(format!(
                "GetAccountPasswordPolicy in {}: the answer holds no password policy",
                account.name
            )));
        };
        Ok(Some(PasswordPolicy {
            minimum_length: p.minimum_password_length().map(i64::from),
            require_symbols: p.require_symbols(),
            require_numbers: p.require_numbers(),
            require_uppercase: p.require_uppercase_characters(),
            require_lowercase: p.require_lowercase_characters(),
            allow_users_to_change: p.allow_users_to_change_password(),
            max_age_days: p.max_password_age().map(i64::from),
            reuse_prevention: p.password_reuse_prevention().map(i64::from),
            hard_expiry: p.hard_expiry().unwrap_or(false),
        }))
    })
    .await
}

const GET_ACCOUNT_SUMMARY: Op = Op {
    name: "GetAccountSummary",
    permission: "iam:GetAccountSummary",
};

/// `GetAccountSummary`: usage counters and the root account's MFA and access-key flags.
pub(crate) async fn account_summary(
    ctx: &ProbeContext,
    account: &Arc<Account>,
) -> Result<Arc<BTreeMap<String, i64>>, ProbeError> {
    let key = format!("aws:{}:iam:account-summary", account.name);
    cached(ctx, key, async {
        let permits = account.permits("iam");
        let _permit = permits.acquire().await;
        let out = account
            .iam()
            .get_account_summary()
            .send()
            .await
            .map_err(|e| classify(GET_ACCOUNT_SUMMARY, &account.name, e))?;
        let map = out.summary_map().ok_or_else(|| {
            ProbeError::BadBody(format!(
                "GetAccountSummary in {}: the answer holds no summary",
                account.name
            ))
        })?;
        Ok(map
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), i64::from(*v)))
            .collect())
    })
    .await
}

// ----------------------------------------------------------------------------------------
// EC2 (per region)

/// Runs one paginated listing under the scope's concurrency limit, page by page (shared by
/// every per-region service module).
macro_rules! paginate {
    ($scope:expr, $op:expr, $pages:expr, |$page:ident| $body:block) => {{
        let permits = $scope.account.permits(&$scope.region);
        let label = $scope.label();
        let mut pages = $pages;
        loop {
            let next = {
                let _permit = permits.acquire().await;
                pages.next().await
            };
            let Some($page) = next else { break };
            let $page = $page.map_err(|e| $crate::probes::aws::classify($op, &label, e))?;
            $body
        }
    }};
}
pub(crate) use paginate;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct IngressRule {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `all` or a protocol number.
    pub protocol: String,
    pub from_port: i64,
    pub to_port: i64,
    /// The source: a CIDR, a security group id or a prefix list id.
    pub source: String,
    /// `ipv4`, `ipv6`, `security_group` or `prefix_list`.
    pub source_kind: &'static str,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: Option<String>,
    pub owner_id: Option<String>,
    pub ingress: Vec<IngressRule>,
    pub egress_rules: i64,
    pub tags: Tags,
}

const DESCRIBE_SECURITY_GROUPS: Op = Op {
    name: "DescribeSecurityGroups",
    permission: "ec2:DescribeSecurityGroups",
};

fn rules(perms: &[aws_sdk_ec2::types::IpPermission]) -> Vec<IngressRule> {
    let mut out = Vec::new();
    for p in perms {
        let raw_protocol = p.ip_protocol().unwrap_or("-1");
        let protocol = match raw_protocol {
            "-1" => "all".to_string(),
            "6" => "tcp".to_string(),
            "17" => "udp".to_string(),
            "1" => "icmp".to_string(),
            "58" => "icmpv6".to_string(),
            other => other.to_ascii_lowercase(),
        };
        // Protocol `all` covers every port; tcp/udp without ports too. For ICMP the two
        // fields are type and code (-1 for any), kept as they are; other protocols have none.
        let (from, to) = match (protocol.as_str(), p.from_port(), p.to_port()) {
            ("all", _, _) => (0, 65535),
            ("tcp" | "udp", Some(f), Some(t)) if f >= 0 && t >= 0 => (i64::from(f), i64::from(t)),
            ("tcp" | "udp", _, _) => (0, 65535),
            (_, f, t) => (i64::from(f.unwrap_or(-1)), i64::from(t.unwrap_or(-1))),
        };
        let rule = |source: String, kind: &'static str, description: Option<&str>| IngressRule {
            protocol: protocol.clone(),
            from_port: from,
            to_port: to,
            source,
            source_kind: kind,
            description: description.map(str::to_string),
        };
        for r in p.ip_ranges() {
            out.push(rule(
                r.cidr_ip().unwrap_or("").to_string(),
                "ipv4",
                r.description(),
            ));
        }
        for r in p.ipv6_ranges() {
            out.push(rule(
                r.cidr_ipv6().unwrap_or("").to_string(),
                "ipv6",
                r.description(),
            ));
        }
        for g in p.user_id_group_pairs() {
            out.push(rule(
                g.group_id().unwrap_or("").to_string(),
                "security_group",
                g.description(),
            ));
        }
        for l in p.prefix_list_ids() {
            out.push(rule(
                l.prefix_list_id().unwrap_or("").to_string(),
                "prefix_list",
                l.description(),
            ));
        }
    }
    out
}

pub(crate) async fn security_groups(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<SecurityGroup>>, ProbeError> {
    let key = format!(
        "aws:{}:{}:ec2:security-groups",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.ec2(&scope.region);
        paginate!(
            scope,
            DESCRIBE_SECURITY_GROUPS,
            client
                .describe_security_groups()
                .into_paginator()
                .page_size(1000)
                .send(),
            |page| {
                for g in page.security_groups() {
                    out.push(SecurityGroup {
                        id: g.group_id().unwrap_or("").to_string(),
                        name: g.group_name().unwrap_or("").to_string(),
                        vpc_id: g.vpc_id().map(str::to_string),
                        owner_id: g.owner_id().map(str::to_string),
                        ingress: rules(g.ip_permissions()),
                        egress_rules: rules(g.ip_permissions_egress()).len() as i64,
                        tags: tags(g.tags().iter().map(|t| (t.key(), t.value()))),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

const DESCRIBE_NETWORK_INTERFACES: Op = Op {
    name: "DescribeNetworkInterfaces",
    permission: "ec2:DescribeNetworkInterfaces",
};

/// How many network interfaces use each security group (a group in use is "attached").
pub(crate) async fn security_group_usage(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<HashMap<String, i64>>, ProbeError> {
    let key = format!(
        "aws:{}:{}:ec2:network-interfaces",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let mut out: HashMap<String, i64> = HashMap::new();
        let client = scope.account.ec2(&scope.region);
        paginate!(
            scope,
            DESCRIBE_NETWORK_INTERFACES,
            client
                .describe_network_interfaces()
                .into_paginator()
                .page_size(1000)
                .send(),
            |page| {
                for eni in page.network_interfaces() {
                    for g in eni.groups() {
                        if let Some(id) = g.group_id() {
                            *out.entry(id.to_string()).or_default() += 1;
                        }
                    }
                }
            }
        );
        Ok(out)
    })
    .await
}

const GET_EBS_ENCRYPTION_BY_DEFAULT: Op = Op {
    name: "GetEbsEncryptionByDefault",
    permission: "ec2:GetEbsEncryptionByDefault",
};

pub(crate) async fn ebs_encryption_by_default(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<bool>, ProbeError> {
    let key = format!(
        "aws:{}:{}:ec2:ebs-encryption-by-default",
        scope.account.name, scope.region
    );
    cached(ctx, key, async {
        let permits = scope.account.permits(&scope.region);
        let _permit = permits.acquire().await;
        let out = scope
            .account
            .ec2(&scope.region)
            .get_ebs_encryption_by_default()
            .send()
            .await
            .map_err(|e| classify(GET_EBS_ENCRYPTION_BY_DEFAULT, &scope.label(), e))?;
        out.ebs_encryption_by_default().ok_or_else(|| {
            ProbeError::BadBody(format!(
                "GetEbsEncryptionByDefault in {}: the answer does not say",
                scope.label()
            ))
        })
    })
    .await
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Volume {
    pub id: String,
    /// `None` when AWS did not say (evaluated as unknown, never as unencrypted).
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub state: String,
    pub size_gib: i64,
    pub volume_type: Option<String>,
    pub instance_ids: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub tags: Tags,
}

const DESCRIBE_VOLUMES: Op = Op {
    name: "DescribeVolumes",
    permission: "ec2:DescribeVolumes",
};

pub(crate) async fn volumes(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<Volume>>, ProbeError> {
    let key = format!("aws:{}:{}:ec2:volumes", scope.account.name, scope.region);
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.ec2(&scope.region);
        paginate!(
            scope,
            DESCRIBE_VOLUMES,
            client
                .describe_volumes()
                .into_paginator()
                .page_size(500)
                .send(),
            |page| {
                for v in page.volumes() {
                    out.push(Volume {
                        id: v.volume_id().unwrap_or("").to_string(),
                        encrypted: v.encrypted(),
                        kms_key_id: v.kms_key_id().map(str::to_string),
                        state: v
                            .state()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        size_gib: i64::from(v.size().unwrap_or(0)),
                        volume_type: v.volume_type().map(|t| t.as_str().to_string()),
                        instance_ids: v
                            .attachments()
                            .iter()
                            .filter_map(|a| a.instance_id().map(str::to_string))
                            .collect(),
                        created_at: v.create_time().and_then(time),
                        tags: tags(v.tags().iter().map(|t| (t.key(), t.value()))),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Snapshot {
    pub id: String,
    pub volume_id: Option<String>,
    pub state: String,
    pub started_at: Option<DateTime<Utc>>,
    pub encrypted: bool,
    pub size_gib: i64,
    pub public: bool,
}

const DESCRIBE_SNAPSHOTS: Op = Op {
    name: "DescribeSnapshots",
    permission: "ec2:DescribeSnapshots",
};

/// The account's own snapshots, each marked public when AWS lists it as restorable by `all`.
pub(crate) async fn snapshots(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<Snapshot>>, ProbeError> {
    let key = format!("aws:{}:{}:ec2:snapshots", scope.account.name, scope.region);
    cached(ctx, key, async {
        let client = scope.account.ec2(&scope.region);
        let mut public = std::collections::HashSet::new();
        paginate!(
            scope,
            DESCRIBE_SNAPSHOTS,
            client
                .describe_snapshots()
                .owner_ids("self")
                .restorable_by_user_ids("all")
                .into_paginator()
                .page_size(1000)
                .send(),
            |page| {
                for s in page.snapshots() {
                    if let Some(id) = s.snapshot_id() {
                        public.insert(id.to_string());
                    }
                }
            }
        );
        let mut out = Vec::new();
        paginate!(
            scope,
            DESCRIBE_SNAPSHOTS,
            client
                .describe_snapshots()
                .owner_ids("self")
                .into_paginator()
                .page_size(1000)
                .send(),
            |page| {
                for s in page.snapshots() {
                    let id = s.snapshot_id().unwrap_or("").to_string();
                    out.push(Snapshot {
                        public: public.contains(&id),
                        id,
                        volume_id: s.volume_id().map(str::to_string),
                        state: s
                            .state()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        started_at: s.start_time().and_then(time),
                        encrypted: s.encrypted().unwrap_or(false),
                        size_gib: i64::from(s.volume_size().unwrap_or(0)),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Vpc {
    pub id: String,
    pub is_default: bool,
    pub cidr: Option<String>,
    pub owner_id: Option<String>,
    pub tags: Tags,
}

const DESCRIBE_VPCS: Op = Op {
    name: "DescribeVpcs",
    permission: "ec2:DescribeVpcs",
};

pub(crate) async fn vpcs(ctx: &ProbeContext, scope: &Scope) -> Result<Arc<Vec<Vpc>>, ProbeError> {
    let key = format!("aws:{}:{}:ec2:vpcs", scope.account.name, scope.region);
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.ec2(&scope.region);
        paginate!(
            scope,
            DESCRIBE_VPCS,
            client
                .describe_vpcs()
                .into_paginator()
                .page_size(1000)
                .send(),
            |page| {
                for v in page.vpcs() {
                    out.push(Vpc {
                        id: v.vpc_id().unwrap_or("").to_string(),
                        is_default: v.is_default().unwrap_or(false),
                        cidr: v.cidr_block().map(str::to_string),
                        owner_id: v.owner_id().map(str::to_string),
                        tags: tags(v.tags().iter().map(|t| (t.key(), t.value()))),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct FlowLog {
    pub id: String,
    pub resource_id: String,
    pub status: String,
    pub delivery_status: Option<String>,
    pub traffic_type: Option<String>,
}

const DESCRIBE_FLOW_LOGS: Op = Op {
    name: "DescribeFlowLogs",
    permission: "ec2:DescribeFlowLogs",
};

pub(crate) async fn flow_logs(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<FlowLog>>, ProbeError> {
    let key = format!("aws:{}:{}:ec2:flow-logs", scope.account.name, scope.region);
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.ec2(&scope.region);
        paginate!(
            scope,
            DESCRIBE_FLOW_LOGS,
            client
                .describe_flow_logs()
                .into_paginator()
                .page_size(1000)
                .send(),
            |page| {
                for f in page.flow_logs() {
                    out.push(FlowLog {
                        id: f.flow_log_id().unwrap_or("").to_string(),
                        resource_id: f.resource_id().unwrap_or("").to_string(),
                        status: f.flow_log_status().unwrap_or("").to_string(),
                        delivery_status: f.deliver_logs_status().map(str::to_string),
                        traffic_type: f.traffic_type().map(|t| t.as_str().to_string()),
                    });
                }
            }
        );
        Ok(out)
    })
    .await
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Instance {
    pub id: String,
    pub owner_id: Option<String>,
    pub state: String,
    pub instance_type: Option<String>,
    pub launch_time: Option<DateTime<Utc>>,
    /// `required` (IMDSv2 only) or `optional`.
    pub http_tokens: Option<String>,
    /// `enabled` or `disabled`.
    pub http_endpoint: Option<String>,
    pub vpc_id: Option<String>,
    pub security_groups: Vec<String>,
    pub public_ip: Option<String>,
    pub tags: Tags,
}

const DESCRIBE_INSTANCES: Op = Op {
    name: "DescribeInstances",
    permission: "ec2:DescribeInstances",
};

/// Instances that exist (terminated ones are left out).
pub(crate) async fn instances(
    ctx: &ProbeContext,
    scope: &Scope,
) -> Result<Arc<Vec<Instance>>, ProbeError> {
    let key = format!("aws:{}:{}:ec2:instances", scope.account.name, scope.region);
    cached(ctx, key, async {
        let mut out = Vec::new();
        let client = scope.account.ec2(&scope.region);
        let states = Filter::builder()
            .name("instance-state-name")
            .values("pending")
            .values("running")
            .values("shutting-down")
            .values("stopping")
            .values("stopped")
            .build();
        paginate!(
            scope,
            DESCRIBE_INSTANCES,
            client
                .describe_instances()
                .filters(states.clone())
                .into_paginator()
                .page_size(1000)
                .send(),
            |page| {
                for r in page.reservations() {
                    for i in r.instances() {
                        let meta = i.metadata_options();
                        out.push(Instance {
                            id: i.instance_id().unwrap_or("").to_string(),
                            owner_id: r.owner_id().map(str::to_string),
                            state: i
                                .state()
                                .and_then(|s| s.name())
                                .map(|n| n.as_str().to_string())
                                .unwrap_or_default(),
                            instance_type: i.instance_type().map(|t| t.as_str().to_string()),
                            launch_time: i.launch_time().and_then(time),
                            http_tokens: meta
                                .and_then(|m| m.http_tokens())
                                .map(|t| t.as_str().to_string()),
                            http_endpoint: meta
                                .and_then(|m| m.http_endpoint())
                                .map(|t| t.as_str().to_string()),
                            vpc_id: i.vpc_id().map(str::to_string),
                            security_groups: i
                                .security_groups()
                                .iter()
                                .filter_map(|g| g.group_id().map(str::to_string))
                                .collect(),
                            public_ip: i.public_ip_address().map(str::to_string),
                            tags: tags(i.tags().iter().map(|t| (t.key(), t.value()))),
                        });
                    }
                }
            }
        );
        Ok(out)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags read, serialize and compare like the map they replace: sorted by key, the last
    /// value of a repeated key winning, a pair without a key dropped.
    #[test]
    fn tags_behave_like_a_map() {
        let t = tags([
            (Some("team"), Some("a")),
            (Some("Name"), Some("web")),
            (None, Some("dropped")),
            (Some("team"), Some("b")),
            (Some("empty"), None),
        ]);
        assert_eq!(t.get("team"), Some("b"));
        assert_eq!(t.get("Name"), Some("web"));
        assert_eq!(t.get("name"), None);
        assert_eq!(
            serde_json::to_string(&t).ok().as_deref(),
            Some(r#"{"Name":"web","empty":"","team":"b"}"#)
        );
        let map: BTreeMap<&str, &str> = t.iter().collect();
        assert_eq!(
            serde_json::to_value(&t).ok(),
            serde_json::to_value(&map).ok()
        );
        assert_eq!(tags([]), Tags::default());
    }
}
