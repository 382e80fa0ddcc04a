//! IAM probes, one population per account:
//!
//! - `aws.iam.credentials` — the credential report, one resource per user (and the root
//!   account's row when AWS includes it): console access, MFA, access keys and their use;
//! - `aws.iam.users` — users with their groups and the policies that reach them;
//! - `aws.iam.policies` — inline and customer-managed policies, `*` on `*` detected;
//! - `aws.iam.password_policy` — the account password policy (no policy is `present: false`,
//!   a finding, not an error);
//! - `aws.iam.account` — the account summary (root MFA, root access keys).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::fetch::{self, PolicyRef};
use super::{Account, AccountSelection, object, scope_error, ts};
use crate::probes::{
    Attribute, Collected, IdAndAttributes, Probe, ProbeContext, ProbeError, RawJson, Resource, raw,
    scope_error_raw, scoped_raw,
};

/// The AWS-managed policy that grants everything, in any partition (`aws`, `aws-us-gov`,
/// `aws-cn`): `arn:<partition>:iam::aws:policy/AdministratorAccess`.
fn is_administrator_access(arn: &str) -> bool {
    arn.starts_with("arn:") && arn.ends_with(":iam::aws:policy/AdministratorAccess")
}

/// Collects one population per selected account with `per_account`; an account that fails is
/// one `error` resource, the others are still evaluated.
pub(crate) async fn per_account<F, Fut>(
    ctx: &ProbeContext,
    probe: &str,
    selection: &AccountSelection,
    per_account: F,
) -> Result<Collected, ProbeError>
where
    F: Fn(Arc<Account>) -> Fut,
    Fut: Future<Output = Result<(Vec<Resource>, RawJson), ProbeError>>,
{
    let accounts = super::accounts(ctx, &selection.accounts).await?;
    let results = futures::future::join_all(accounts.into_iter().map(|a| async {
        match a {
            Ok(account) => (account.name.clone(), per_account(account).await),
            Err((name, e)) => (name, Err(e)),
        }
    }))
    .await;
    let mut resources = Vec::new();
    let mut raw = std::collections::BTreeMap::new();
    for (name, result) in results {
        match result {
            Ok((rs, evidence)) => {
                resources.extend(rs);
                raw.insert(name, evidence);
            }
            Err(e) => {
                resources.push(scope_error(probe, &name, &e));
                raw.insert(name, scope_error_raw(&e));
            }
        }
    }
    Ok(Collected {
        resources,
        raw: scoped_raw("aws", probe, "accounts", &raw)?,
    })
}

// ----------------------------------------------------------------------------------------

/// `aws.iam.credentials`.
pub struct Credentials;

/// Reads the columns of one credential-report row strictly: a value that is neither what AWS
/// documents for "none" nor a valid value is a problem, which makes the row an `error`
/// (never silently "no date", which could pass an "unused for 45 days" check).
struct Row<'a> {
    row: &'a std::collections::BTreeMap<String, String>,
    problems: Vec<String>,
}

impl Row<'_> {
    /// A timestamp column: RFC 3339, or `N/A` / `no_information` / `not_supported` for none.
    fn time(&mut self, column: &str) -> Option<DateTime<Utc>> {
        let v = self.row.get(column).map(String::as_str).unwrap_or("N/A");
        if matches!(v, "N/A" | "no_information" | "not_supported" | "") {
            return None;
        }
        match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Some(t.to_utc()),
            Err(_) => {
                self.problems
                    .push(format!("column {column}: unreadable time `{v}`"));
                None
            }
        }
    }

    /// A boolean column: `true` / `false` (`not_supported` where AWS allows it).
    fn flag(&mut self, column: &str) -> bool {
        match self.row.get(column).map(String::as_str) {
            Some("true") => true,
            Some("false" | "not_supported") => false,
            other => {
                self.problems.push(format!(
                    "column {column}: expected true or false, found `{}`",
                    other.unwrap_or("(missing)")
                ));
                false
            }
        }
    }
}

fn days(now: DateTime<Utc>, t: DateTime<Utc>) -> i64 {
    (now - t).num_days()
}

/// One resource for one credential-report row.
fn credential_row(
    account: &str,
    row: &std::collections::BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Resource {
    let mut r = Row {
        row,
        problems: Vec::new(),
    };
    let user = row.get("user").cloned().unwrap_or_default();
    let arn = row.get("arn").cloned().unwrap_or_default();
    let is_root = user == "<root_account>";
    let created = r.time("user_creation_time");
    if created.is_none() && !is_root {
        r.problems
            .push("column user_creation_time: missing".to_string());
    }
    // Root always has a password (the report says `not_supported`).
    let console = r.flag("password_enabled") || is_root;
    let password_used = r.time("password_last_used");
    let password_changed = r.time("password_last_changed");
    // Never used: unused since it was set (or since the user was created).
    let password_unused_days = if console {
        password_used
            .or(password_changed)
            .or(created)
            .map(|t| days(now, t))
    } else {
        None
    };
    let mfa = r.flag("mfa_active");
    let mut slots = Vec::with_capacity(6);
    let mut active = 0;
    let mut oldest_active: Option<i64> = None;
    let mut key_unused: Option<i64> = None;
    for n in [1, 2] {
        let is_active = r.flag(&format!("access_key_{n}_active"));
        let rotated = r.time(&format!("access_key_{n}_last_rotated"));
        let used = r.time(&format!("access_key_{n}_last_used_date"));
        if is_active {
            active += 1;
            let age = rotated.or(created).map(|t| days(now, t));
            oldest_active = oldest_active.max(age);
            let unused = used.or(rotated).or(created).map(|t| days(now, t));
            key_unused = key_unused.max(unused);
        }
        slots.push((format!("access_key_{n}_active"), Value::Bool(is_active)));
        slots.push((format!("access_key_{n}_last_rotated"), ts(rotated)));
        slots.push((format!("access_key_{n}_last_used"), ts(used)));
    }
    let error = (!r.problems.is_empty())
        .then(|| format!("credential report row of {user}: {}", r.problems.join("; ")));
    let name = if is_root {
        format!("root user of AWS account {account} ({arn})")
    } else {
        format!("IAM user {user} in {account} ({arn})")
    };
    let mut attributes = object(json!({
        "account": account,
        "user": user,
        "arn": arn,
        "is_root": is_root,
        "created_at": ts(created),
        "console_access": console,
        "password_last_used": ts(password_used),
        "password_last_changed": ts(password_changed),
        "password_unused_days": password_unused_days,
        "mfa_active": mfa,
        "active_access_keys": active,
        "oldest_active_key_days": oldest_active,
        "access_key_unused_days": key_unused,
    }));
    // Each key slot as the report's own columns (flat: one attribute each, the dates typed).
    attributes.extend(slots);
    Resource {
        id: arn.clone(),
        name,
        attributes,
        error,
        unknown: Default::default(),
        scope: false,
    }
}

impl Probe for Credentials {
    const NAME: &'static str = "aws.iam.credentials";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "IAM credential report: one resource per IAM user (and the root account's row when AWS includes it), per account. Generated once per run and shared by every check.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("user", String, "IAM user name (`<root_account>` for root)"),
        attr!("arn", String, "the user's ARN"),
        attr!("is_root", Bool, "the row of the account's root user"),
        attr!("created_at", Timestamp, "when the user was created"),
        attr!(
            "console_access",
            Bool,
            "has a console password (always true for root)"
        ),
        attr!(
            "password_last_used",
            Timestamp,
            "last console sign-in, null if never"
        ),
        attr!(
            "password_last_changed",
            Timestamp,
            "last password change, null if none"
        ),
        attr!(
            "password_unused_days",
            Int,
            "days since the password was last used (or set, if never used); null without console access"
        ),
        attr!("mfa_active", Bool, "an MFA device is enabled"),
        attr!(
            "active_access_keys",
            Int,
            "number of active access keys (0-2)"
        ),
        attr!(
            "oldest_active_key_days",
            Int,
            "age in days of the oldest active access key since its last rotation; null if none"
        ),
        attr!(
            "access_key_unused_days",
            Int,
            "days since the least recently used active key was used (or rotated, if never used); null if none"
        ),
        attr!(
            "access_key_1_active",
            Bool,
            "the first key slot holds an active key"
        ),
        attr!(
            "access_key_1_last_rotated",
            Timestamp,
            "when the first slot's key was created or last rotated; null if never"
        ),
        attr!(
            "access_key_1_last_used",
            Timestamp,
            "when the first slot's key was last used; null if never"
        ),
        attr!(
            "access_key_2_active",
            Bool,
            "the second key slot holds an active key"
        ),
        attr!(
            "access_key_2_last_rotated",
            Timestamp,
            "when the second slot's key was created or last rotated; null if never"
        ),
        attr!(
            "access_key_2_last_used",
            Timestamp,
            "when the second slot's key was last used; null if never"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.iam.credentials
where: console_access && !is_root
assert: mfa_active
"#;

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        let now = ctx.now;
        per_account(ctx, Self::NAME, params, |account| async move {
            let report = fetch::credential_report(ctx, &account).await?;
            let resources = report
                .rows()
                .map(|row| row.map(|row| credential_row(&account.name, &row, now)))
                .collect::<Result<Vec<Resource>, ProbeError>>()?;
            Ok((resources, raw(report.as_ref())?))
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------

/// Whether a policy document grants full administrative access: some `Allow` statement covers
/// every action (`*`, `*:*`, or everything but a `NotAction` list) on every resource (`*`,
/// an all-wildcard ARN such as `arn:*` or `arn:aws:*:*:*:*`, or everything but a
/// `NotResource` list). Conditions are not taken into account: a conditional grant of
/// everything is still reported.
pub(crate) fn allows_everything(document: &Value) -> bool {
    let statements: Vec<&Value> = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let any = |v: Option<&Value>, all: &dyn Fn(&str) -> bool| match v {
        Some(Value::String(s)) => all(s),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(all),
        _ => false,
    };
    let every_action = |a: &str| a == "*" || a == "*:*";
    let every_resource = |r: &str| {
        r == "*"
            || r.strip_prefix("arn:").is_some_and(|rest| {
                // `arn:*`, or any partition with every other part a wildcard
                // (`arn:aws:*:*:*:*`).
                let parts: Vec<&str> = rest.split(':').collect();
                match parts.as_slice() {
                    [only] => *only == "*",
                    [_partition, others @ ..] => others.iter().all(|p| *p == "*" || p.is_empty()),
                    [] => false,
                }
            })
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && (any(s.get("Action"), &every_action) || s.get("NotAction").is_some())
            && (any(s.get("Resource"), &every_resource) || s.get("NotResource").is_some())
    })
}

/// Whether an attached or inline policy grants full administrative access: the AWS-managed
/// AdministratorAccess, or a document allowing `*` on `*` (customer-managed policies' documents
/// are looked up in `managed`).
fn grants_admin(policy: &PolicyRef, managed: &[fetch::ManagedPolicy]) -> bool {
    if policy.arn.as_deref().is_some_and(is_administrator_access) {
        return true;
    }
    let document = policy.document.as_ref().or_else(|| {
        managed
            .iter()
            .find(|m| Some(m.arn.as_str()) == policy.arn.as_deref())
            .and_then(|m| m.document.as_ref())
    });
    document.is_some_and(allows_everything)
}

/// `aws.iam.users`.
pub struct Users;

impl Probe for Users {
    const NAME: &'static str = "aws.iam.users";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "IAM users with their groups and the policies that reach them (attached, inline, through groups), per account; full administrators detected.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("user", String, "IAM user name"),
        attr!("arn", String, "the user's ARN"),
        attr!("path", String, "the user's IAM path"),
        attr!("created_at", Timestamp, "when the user was created"),
        attr!("groups", List, "names of the user's groups"),
        attr!(
            "attached_policies",
            List,
            "managed policies attached to the user directly"
        ),
        attr!(
            "inline_policies",
            List,
            "inline policies embedded in the user"
        ),
        attr!(
            "direct_policies",
            Int,
            "policies attached to or embedded in the user directly (not through groups)"
        ),
        attr!(
            "admin_attached_directly",
            Bool,
            "AdministratorAccess, or a policy allowing `*` on `*`, attached to or embedded in the user"
        ),
        attr!(
            "full_admin_inline",
            Bool,
            "an inline policy of the user allows `*` on `*`"
        ),
        attr!(
            "admin_via_groups",
            Bool,
            "a group of the user grants AdministratorAccess or `*` on `*`"
        ),
        attr!(
            "admin_policies",
            List,
            "the policies that make the user a full administrator, each `name (how)`"
        ),
        attr!("tags", Map, "the user's tags"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.iam.users
with: {accounts: [production]}
assert: "!admin_attached_directly && direct_policies == 0"
"#;

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        per_account(ctx, Self::NAME, params, |account| async move {
            let details = fetch::authorization_details(ctx, &account).await?;
            let mut resources = Vec::new();
            for u in &details.users {
                let mut admin = Vec::new();
                for p in &u.attached {
                    if grants_admin(p, &details.policies) {
                        admin.push(format!("{} (attached)", p.name));
                    }
                }
                let mut inline_admin = false;
                for p in &u.inline {
                    if grants_admin(p, &details.policies) {
                        inline_admin = true;
                        admin.push(format!("{} (inline)", p.name));
                    }
                }
                let direct_admin = !admin.is_empty();
                let mut via_groups = false;
                for g in details.groups.iter().filter(|g| u.groups.contains(&g.name)) {
                    for p in g.attached.iter().chain(&g.inline) {
                        if grants_admin(p, &details.policies) {
                            via_groups = true;
                            admin.push(format!("{} (group {})", p.name, g.name));
                        }
                    }
                }
                let names =
                    |ps: &[PolicyRef]| ps.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
                resources.push(Resource {
                    id: u.arn.clone(),
                    name: format!("IAM user {} in {} ({})", u.name, account.name, u.arn),
                    attributes: object(json!({
                        "account": account.name,
                        "user": u.name,
                        "arn": u.arn,
                        "path": u.path,
                        "created_at": ts(u.created_at),
                        "groups": u.groups,
                        "attached_policies": names(&u.attached),
                        "inline_policies": names(&u.inline),
                        "direct_policies": u.attached.len() + u.inline.len(),
                        "admin_attached_directly": direct_admin,
                        "full_admin_inline": inline_admin,
                        "admin_via_groups": via_groups,
                        "admin_policies": admin,
                        "tags": u.tags,
                    })),
                    error: None,
                    unknown: Default::default(),
                    scope: false,
                });
            }
            Ok((resources, raw(details.as_ref())?))
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------

/// `aws.iam.policies`.
pub struct Policies;

impl Probe for Policies {
    const NAME: &'static str = "aws.iam.policies";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "IAM policies with documents, per account: every inline policy (of users, groups and roles) and every customer-managed policy; `*` on `*` detected.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("policy", String, "policy name"),
        attr!("kind", String, "`inline` or `managed` (customer-managed)"),
        attr!(
            "arn",
            String,
            "managed policy ARN; null for inline policies"
        ),
        attr!(
            "principal",
            String,
            "ARN of the user, group or role an inline policy is embedded in; null for managed"
        ),
        attr!(
            "principal_type",
            String,
            "`user`, `group` or `role` (inline); null for managed"
        ),
        attr!(
            "attachment_count",
            Int,
            "identities the policy is attached to (1 for inline policies)"
        ),
        attr!(
            "full_admin",
            Bool,
            "a statement allows `*` actions on `*` resources"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.iam.policies
where: attachment_count > 0
assert: "!full_admin"
"#;

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        per_account(ctx, Self::NAME, params, |account| async move {
            let details = fetch::authorization_details(ctx, &account).await?;
            let mut resources = Vec::new();
            let principals = details
                .users
                .iter()
                .map(|u| ("user", u.arn.as_str(), u.inline.as_slice()))
                .chain(
                    details
                        .groups
                        .iter()
                        .map(|g| ("group", g.arn.as_str(), g.inline.as_slice())),
                )
                .chain(
                    details
                        .roles
                        .iter()
                        .map(|r| ("role", r.arn.as_str(), r.inline.as_slice())),
                );
            for (kind, principal, inline) in principals {
                for p in inline {
                    let full = p.document.as_ref().is_some_and(allows_everything);
                    resources.push(Resource {
                        id: format!("{principal}#inline/{}", p.name),
                        name: format!("inline policy {} of {kind} {principal}", p.name),
                        attributes: object(json!({
                            "account": account.name,
                            "policy": p.name,
                            "kind": "inline",
                            "arn": null,
                            "principal": principal,
                            "principal_type": kind,
                            "attachment_count": 1,
                            "full_admin": full,
                        })),
                        error: None,
                        unknown: Default::default(),
                        scope: false,
                    });
                }
            }
            for m in &details.policies {
                let full = m.document.as_ref().is_some_and(allows_everything);
                resources.push(Resource {
                    id: m.arn.clone(),
                    name: format!("managed policy {} ({})", m.name, m.arn),
                    attributes: object(json!({
                        "account": account.name,
                        "policy": m.name,
                        "kind": "managed",
                        "arn": m.arn,
                        "principal": null,
                        "principal_type": null,
                        "attachment_count": m.attachment_count,
                        "full_admin": full,
                    })),
                    error: None,
                    unknown: Default::default(),
                    scope: false,
                });
            }
            let evidence = raw(&resources
                .iter()
                .map(IdAndAttributes::of)
                .collect::<Vec<_>>())?;
            Ok((resources, evidence))
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------

/// `aws.iam.password_policy`.
pub struct PasswordPolicy;

impl Probe for PasswordPolicy {
    const NAME: &'static str = "aws.iam.password_policy";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "The IAM account password policy, one resource per account (an account without one is `present: false`).";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("present", Bool, "the account has a password policy"),
        attr!(
            "minimum_length",
            Int,
            "minimum password length; null without a policy"
        ),
        attr!(
            "reuse_prevention",
            Int,
            "previous passwords that cannot be reused; null if reuse is allowed"
        ),
        attr!("require_symbols", Bool, "requires a symbol"),
        attr!("require_numbers", Bool, "requires a number"),
        attr!("require_uppercase", Bool, "requires an uppercase letter"),
        attr!("require_lowercase", Bool, "requires a lowercase letter"),
        attr!(
            "max_age_days",
            Int,
            "password expiry in days; null if passwords never expire"
        ),
        attr!(
            "allow_users_to_change",
            Bool,
            "users may change their own password"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.iam.password_policy
assert: present && minimum_length >= 14 && reuse_prevention != null && reuse_prevention >= 1
"#;

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        per_account(ctx, Self::NAME, params, |account| async move {
            let policy = fetch::password_policy(ctx, &account).await?;
            let attributes = match policy.as_ref() {
                Some(p) => json!({
                    "account": account.name,
                    "present": true,
                    "minimum_length": p.minimum_length,
                    "reuse_prevention": p.reuse_prevention,
                    "require_symbols": p.require_symbols,
                    "require_numbers": p.require_numbers,
                    "require_uppercase": p.require_uppercase,
                    "require_lowercase": p.require_lowercase,
                    "max_age_days": p.max_age_days,
                    "allow_users_to_change": p.allow_users_to_change,
                }),
                None => json!({
                    "account": account.name,
                    "present": false,
                    "minimum_length": null,
                    "reuse_prevention": null,
                    "require_symbols": false,
                    "require_numbers": false,
                    "require_uppercase": false,
                    "require_lowercase": false,
                    "max_age_days": null,
                    "allow_users_to_change": false,
                }),
            };
            let resource = Resource {
                id: format!("aws:{}:iam:password-policy", account.name),
                name: format!("password policy of AWS account {}", account.name),
                attributes: object(attributes),
                error: None,
                unknown: Default::default(),
                scope: false,
            };
            Ok((vec![resource], raw(policy.as_ref())?))
        })
        .await
    }
}

// ----------------------------------------------------------------------------------------

/// `aws.iam.account`.
pub struct AccountSummary;

impl Probe for AccountSummary {
    const NAME: &'static str = "aws.iam.account";
    const SOURCE: &'static str = "aws";
    const KIND: crate::probes::EvidenceKind = crate::probes::EvidenceKind::System;
    const SUMMARY: &'static str = "The IAM account summary, one resource per account: root MFA and root access keys, and identity counts.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("account", String, "account name from sources.aws.accounts"),
        attr!("root_mfa_enabled", Bool, "the root user has MFA enabled"),
        attr!(
            "root_access_keys_present",
            Bool,
            "the root user has access keys"
        ),
        attr!("users", Int, "IAM users"),
        attr!("groups", Int, "IAM groups"),
        attr!("roles", Int, "IAM roles"),
        attr!("mfa_devices_in_use", Int, "MFA devices assigned to users"),
    ];
    const EXAMPLE: &'static str = r#"probe: aws.iam.account
assert: root_mfa_enabled && !root_access_keys_present
"#;

    type Params = AccountSelection;

    async fn collect(
        ctx: &ProbeContext,
        params: &AccountSelection,
    ) -> Result<Collected, ProbeError> {
        per_account(ctx, Self::NAME, params, |account| async move {
            let summary = fetch::account_summary(ctx, &account).await?;
            let get = |k: &str| summary.get(k).copied();
            let resource = Resource {
                id: format!("aws:{}:iam:account", account.name),
                name: format!("AWS account {}", account.name),
                attributes: object(json!({
                    "account": account.name,
                    "root_mfa_enabled": get("AccountMFAEnabled").map(|v| v == 1),
                    "root_access_keys_present": get("AccountAccessKeysPresent").map(|v| v != 0),
                    "users": get("Users"),
                    "groups": get("Groups"),
                    "roles": get("Roles"),
                    "mfa_devices_in_use": get("MFADevicesInUse"),
                })),
                error: None,
                unknown: Default::default(),
                scope: false,
            };
            Ok((vec![resource], raw(summary.as_ref())?))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_on_star_is_detected_in_every_shape() {
        let check = |doc: Value, expect: bool| assert_eq!(allows_everything(&doc), expect, "{doc}");
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
            true,
        );
        check(
            json!({"Statement": {"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}}),
            true,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": ["s3:*", "*"], "Resource": "*"}]}),
            true,
        );
        check(
            json!({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}),
            false,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
            false,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"}]}),
            false,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": "*:*", "Resource": "arn:*"}]}),
            true,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:*:*:*:*"}]}),
            true,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}),
            true,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::audit/*"}]}),
            true,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b/*"}]}),
            false,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::*"}]}),
            false,
        );
        check(
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws"}]}),
            false,
        );
        check(json!({}), false);
    }

    #[test]
    fn administrator_access_in_every_partition() {
        for arn in [
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "arn:aws-us-gov:iam::aws:policy/AdministratorAccess",
            "arn:aws-cn:iam::aws:policy/AdministratorAccess",
        ] {
            assert!(is_administrator_access(arn), "{arn}");
        }
        for arn in [
            "arn:aws:iam::aws:policy/AdministratorAccess-Amplify",
            "arn:aws:iam::123456789012:policy/AdministratorAccess",
            "AdministratorAccess",
        ] {
            assert!(!is_administrator_access(arn), "{arn}");
        }
    }

    fn row(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn credential_rows_derive_key_ages_and_unused_days() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .to_utc();
        let r = credential_row(
            "prod",
            &row(&[
                ("user", "ci-bot"),
                ("arn", "arn:aws:iam::1:user/ci-bot"),
                ("user_creation_time", "2025-01-01T00:00:00+00:00"),
                ("password_enabled", "false"),
                ("password_last_used", "N/A"),
                ("mfa_active", "false"),
                ("access_key_1_active", "true"),
                ("access_key_1_last_rotated", "2026-01-01T00:00:00+00:00"),
                ("access_key_1_last_used_date", "2026-11-20T00:00:00+00:00"),
                ("access_key_2_active", "true"),
                ("access_key_2_last_rotated", "2026-10-23T00:00:00+00:00"),
                ("access_key_2_last_used_date", "N/A"),
            ]),
            now,
        );
        let a = &r.attributes;
        assert_eq!(a["active_access_keys"], 2);
        assert_eq!(a["oldest_active_key_days"], 325);
        // Key 2 was never used: unused since its rotation 30 days ago.
        assert_eq!(a["access_key_unused_days"], 30);
        assert_eq!(a["password_unused_days"], Value::Null);
        // Each slot as the report's columns, the dates as timestamps.
        assert_eq!(a["access_key_1_active"], true);
        assert_eq!(a["access_key_1_last_used"], "2026-11-20T00:00:00Z");
        assert_eq!(a["access_key_2_last_rotated"], "2026-10-23T00:00:00Z");
        assert_eq!(a["access_key_2_last_used"], Value::Null);
        assert_eq!(a["console_access"], false);
        let root = credential_row(
            "prod",
            &row(&[
                ("user", "<root_account>"),
                ("arn", "arn:aws:iam::1:root"),
                ("password_enabled", "not_supported"),
                ("password_last_used", "2026-11-01T00:00:00+00:00"),
                ("mfa_active", "true"),
                ("access_key_1_active", "false"),
                ("access_key_2_active", "false"),
            ]),
            now,
        );
        assert_eq!(root.attributes["is_root"], true);
        assert_eq!(root.attributes["console_access"], true);
        assert_eq!(root.attributes["password_unused_days"], 21);
        assert_eq!(root.attributes["oldest_active_key_days"], Value::Null);
        assert_eq!(root.error, None);
        // A value AWS does not document is an error for the row, never "no date".
        let odd = credential_row(
            "prod",
            &row(&[
                ("user", "eve"),
                ("arn", "arn:aws:iam::1:user/eve"),
                ("user_creation_time", "2025-01-01T00:00:00+00:00"),
                ("password_enabled", "true"),
                ("password_last_used", "last tuesday"),
                ("mfa_active", "yes"),
                ("access_key_1_active", "false"),
                ("access_key_2_active", "false"),
            ]),
            now,
        );
        assert_eq!(
            odd.error.as_deref(),
            Some(
                "credential report row of eve: column password_last_used: unreadable time `last tuesday`; \
                 column mfa_active: expected true or false, found `yes`"
            )
        );
    }
}
