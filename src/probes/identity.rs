//! `identity.accounts`: every account Trellis can see — IAM users of every configured AWS
//! account, members and outside collaborators of every configured GitHub organisation —
//! joined to the HR roster and to the register of declared service accounts.
//!
//! Joining, per account:
//! 1. a declared service account (`service_accounts.yaml`: same system, same name) is a
//!    service account: it has an accountable owner and is nobody's personal account;
//! 2. else the explicit roster column: `aws_username` for IAM users, `github_login` for GitHub
//!    logins (case-insensitive);
//! 3. else, for IAM users, the work email: a user named by an email, or tagged `email`.
//!    (GitHub does not show members' emails; add `github_login` to the roster.)
//!
//! An account that matches nobody and is not declared is an orphan. Terminated people are
//! matched too (the roster is read with every row), so their remaining accounts show up.
//! Several roster rows with the same email are one person (a rehire): the current row wins,
//! else the one who left last. An account matching several *different* people is ambiguous:
//! whether its person left is unknown (checks reading it are errors) until the roster is fixed.
//! A declared service account's owner is looked up in the roster too: an owner who left, or
//! who is not in the roster, leaves the account without anyone accountable.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Value, json};

use super::registers::NoParams;
use super::{Attribute, Attributes, Collected, Probe, ProbeContext, ProbeError, Resource, object};
use crate::registers::ServiceAccount;

pub struct Accounts;

/// One account seen in one system, before joining.
struct Seen {
    system: String,
    kind: &'static str,
    account: String,
    /// Emails the system associates with the account (IAM user name or `email` tag).
    emails: Vec<String>,
}

/// What the join found for a person: borrowed from the roster (an estate's accounts each
/// hold their matches while the join runs).
#[derive(Clone, Copy)]
struct PersonRef<'a> {
    id: &'a str,
    name: &'a str,
    email: &'a str,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
}

impl<'a> PersonRef<'a> {
    fn of(p: &'a super::hr::Person) -> Self {
        PersonRef {
            id: p.field("employee_id").unwrap_or(""),
            name: p.field("name").unwrap_or(""),
            email: p.field("email").unwrap_or(""),
            start: p.date("start_date"),
            end: p.date("end_date"),
        }
    }

    fn left_by(&self, today: NaiveDate) -> Option<NaiveDate> {
        self.end.filter(|end| *end <= today)
    }
}

/// Roster rows sharing an email are one person employed more than once: keep the current
/// row (the latest start among current ones), else the one who left last.
fn one_row_per_person(rows: Vec<PersonRef<'_>>, today: NaiveDate) -> Vec<PersonRef<'_>> {
    if rows.len() < 2 {
        return rows;
    }
    let mut by_email: BTreeMap<String, PersonRef> = BTreeMap::new();
    for row in rows {
        let key = if row.email.is_empty() {
            format!("id:{}", row.id)
        } else {
            row.email.to_ascii_lowercase()
        };
        let rank = |p: &PersonRef| (p.left_by(today).is_none(), p.end.is_none(), p.end, p.start);
        match by_email.get(&key) {
            Some(kept) if rank(kept) >= rank(&row) => {}
            _ => {
                by_email.insert(key, row);
            }
        }
    }
    by_email.into_values().collect()
}

/// The roster's rows by each column an account is joined on (case-insensitively), in roster
/// order: the join looks each account up instead of scanning the roster for it.
struct RosterIndex<'a> {
    people: &'a [super::hr::Person],
    by: [HashMap<String, Vec<usize>>; 3],
}

const JOIN_COLUMNS: [&str; 3] = ["aws_username", "github_login", "email"];

impl<'a> RosterIndex<'a> {
    fn new(people: &'a [super::hr::Person]) -> Self {
        let mut by: [HashMap<String, Vec<usize>>; 3] = Default::default();
        for (row, person) in people.iter().enumerate() {
            for (column, index) in JOIN_COLUMNS.iter().zip(by.iter_mut()) {
                if let Some(value) = person.field(column) {
                    index
                        .entry(value.to_ascii_lowercase())
                        .or_default()
                        .push(row);
                }
            }
        }
        RosterIndex { people, by }
    }

    /// The rows whose `column` equals any of `values` (ignoring ASCII case), in roster order.
    fn rows<'v>(
        &self,
        column: &str,
        values: impl IntoIterator<Item = &'v str>,
    ) -> Vec<PersonRef<'a>> {
        let Some(at) = JOIN_COLUMNS.iter().position(|c| *c == column) else {
            return Vec::new();
        };
        let mut rows: Vec<usize> = values
            .into_iter()
            .filter_map(|v| self.by[at].get(&v.to_ascii_lowercase()))
            .flatten()
            .copied()
            .collect();
        rows.sort_unstable();
        rows.dedup();
        rows.into_iter()
            .map(|r| PersonRef::of(&self.people[r]))
            .collect()
    }
}

/// An account as its raw evidence records it.
#[derive(Serialize)]
struct RawAccount<'a> {
    account: &'a str,
    people: Vec<&'a str>,
    system: &'a str,
}

/// The raw evidence: `{"accounts": [...], "source": "identity"}`.
#[derive(Serialize)]
struct RawAccounts<'a> {
    accounts: Vec<RawAccount<'a>>,
    source: &'static str,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether a declared service account entry covers `system`/`account`.
fn declared<'a>(register: &'a [ServiceAccount], seen: &Seen) -> Option<&'a ServiceAccount> {
    register
        .iter()
        .find(|s| (s.system == seen.system || s.system == seen.kind) && eq(&s.name, &seen.account))
}

impl Probe for Accounts {
    const NAME: &'static str = "identity.accounts";
    const SOURCE: &'static str = "hr";
    const ALSO_READS: &'static [&'static str] = &["aws", "github", "registers"];
    const KIND: super::EvidenceKind = super::EvidenceKind::System;
    const SUMMARY: &'static str = "Every account Trellis can see (AWS IAM users of each account, GitHub members and outside collaborators of each organisation), joined to the HR roster and the declared service accounts.";
    const ATTRIBUTES: &'static [Attribute] = &[
        attr!("system", String, "`aws:<account>` or `github:<org>`"),
        attr!("kind", String, "`aws` or `github`"),
        attr!("account", String, "IAM user name or GitHub login"),
        attr!(
            "person",
            String,
            "employee id of the person it belongs to, null if none"
        ),
        attr!("person_name", String, "that person's name, null if none"),
        attr!(
            "matched_by",
            String,
            "`aws_username`, `github_login` or `email`; null if unmatched"
        ),
        attr!(
            "people",
            List,
            "employee ids of every person the account matched (more than one is ambiguous)"
        ),
        attr!(
            "person_terminated",
            Bool,
            "the person has left (end_date on or before today)"
        ),
        attr!(
            "end_date",
            Date,
            "the person's last day, null if employed or unmatched"
        ),
        attr!(
            "days_since_termination",
            Int,
            "days since the person's last day, null if employed or unmatched"
        ),
        attr!("service_account", Bool, "declared in service_accounts.yaml"),
        attr!(
            "service_account_owner",
            String,
            "the declared service account's accountable owner, null otherwise"
        ),
        attr!(
            "service_account_owner_in_roster",
            Bool,
            "the owner's email is in the HR roster; null if not a service account"
        ),
        attr!(
            "service_account_owner_terminated",
            Bool,
            "the owner has left (end_date on or before today); null if not a service account"
        ),
        attr!(
            "orphan",
            Bool,
            "matches no person and is not a declared service account"
        ),
        attr!(
            "person_accounts_in_system",
            Int,
            "personal accounts the same person has in this system (0 when unmatched)"
        ),
    ];
    const EXAMPLE: &'static str = r#"probe: identity.accounts
where: size(people) > 0
assert: "!person_terminated || days_since_termination <= 1"
"#;

    type Params = NoParams;

    async fn collect(ctx: &ProbeContext, _: &NoParams) -> Result<Collected, ProbeError> {
        let people = super::hr::roster(ctx).await?;
        let declared_accounts: Vec<ServiceAccount> = if ctx.sources.registers.is_some() {
            super::registers::register(ctx, "service_accounts")
                .await?
                .service_accounts
                .clone()
        } else {
            Vec::new()
        };
        let (seen, mut resources) = accounts_in_systems(ctx).await?;
        let today = ctx.now.date_naive();
        let roster = RosterIndex::new(&people);

        // Join each account.
        let mut joined: Vec<(Seen, Vec<PersonRef>, &'static str, Option<&ServiceAccount>)> =
            Vec::with_capacity(seen.len());
        for s in seen {
            let service = declared(&declared_accounts, &s);
            let column = if s.kind == "aws" {
                "aws_username"
            } else {
                "github_login"
            };
            let mut matched_by = column;
            let mut matches = roster.rows(column, [s.account.as_str()]);
            if matches.is_empty() && !s.emails.is_empty() {
                matched_by = "email";
                matches = roster.rows("email", s.emails.iter().map(String::as_str));
            }
            if service.is_some() {
                matches.clear();
            }
            joined.push((s, one_row_per_person(matches, today), matched_by, service));
        }
        // Personal accounts per (system, person).
        let mut per_person: HashMap<(&str, &str), usize> = HashMap::new();
        for (s, matches, _, _) in &joined {
            if let [one] = matches.as_slice() {
                *per_person.entry((s.system.as_str(), one.id)).or_default() += 1;
            }
        }
        let owner = |email: &str| -> Option<PersonRef> {
            one_row_per_person(roster.rows("email", [email]), today)
                .into_iter()
                .next()
        };
        resources.reserve_exact(joined.len());
        let mut raw = Vec::with_capacity(joined.len());
        for (s, matches, matched_by, service) in &joined {
            let person = matches.first().filter(|_| matches.len() == 1);
            let terminated = person.and_then(|p| p.left_by(today));
            let owner = service.map(|svc| owner(&svc.owner));
            let mut unknown = BTreeMap::new();
            if matches.len() > 1 {
                let why = format!(
                    "the account matches several people in the roster ({}): give it one owner (the {matched_by} column)",
                    matches.iter().map(|p| p.id).collect::<Vec<_>>().join(", ")
                );
                for a in ["person_terminated", "end_date", "days_since_termination"] {
                    unknown.insert(a.to_string(), why.clone());
                }
            }
            let who = match (person, service) {
                (_, Some(svc)) => format!("service account of {}", svc.owner),
                (Some(p), None) => format!("{} <{}> ({})", p.name, p.email, p.id),
                (None, None) if matches.len() > 1 => "matches several people".to_string(),
                (None, None) => "no owner found".to_string(),
            };
            raw.push(RawAccount {
                account: &s.account,
                people: matches.iter().map(|p| p.id).collect(),
                system: &s.system,
            });
            let text = |v: Option<&str>| v.map_or(Value::Null, |v| Value::String(v.to_string()));
            let flag = |v: Option<bool>| v.map_or(Value::Null, Value::Bool);
            let mut people: Vec<&str> = matches.iter().map(|p| p.id).collect();
            people.sort_unstable();
            people.dedup();
            resources.push(Resource {
                id: format!("identity:{}/{}", s.system, s.account),
                name: format!("{} account {} ({who})", s.system, s.account),
                attributes: Attributes::from_iter([
                    ("system", text(Some(&s.system))),
                    ("kind", text(Some(s.kind))),
                    ("account", text(Some(&s.account))),
                    ("person", text(person.map(|p| p.id))),
                    ("person_name", text(person.map(|p| p.name))),
                    (
                        "matched_by",
                        text((!matches.is_empty()).then_some(*matched_by)),
                    ),
                    (
                        "people",
                        Value::Array(
                            people
                                .into_iter()
                                .map(|id| Value::String(id.to_string()))
                                .collect(),
                        ),
                    ),
                    ("person_terminated", Value::Bool(terminated.is_some())),
                    (
                        "end_date",
                        person
                            .and_then(|p| p.end)
                            .map_or(Value::Null, |d| Value::String(d.to_string())),
                    ),
                    (
                        "days_since_termination",
                        terminated.map_or(Value::Null, |end| Value::from((today - end).num_days())),
                    ),
                    ("service_account", Value::Bool(service.is_some())),
                    (
                        "service_account_owner",
                        text(service.map(|s| s.owner.as_str())),
                    ),
                    (
                        "service_account_owner_in_roster",
                        flag(owner.as_ref().map(Option::is_some)),
                    ),
                    (
                        "service_account_owner_terminated",
                        flag(
                            owner
                                .as_ref()
                                .map(|o| o.as_ref().and_then(|p| p.left_by(today)).is_some()),
                        ),
                    ),
                    (
                        "orphan",
                        Value::Bool(matches.is_empty() && service.is_none()),
                    ),
                    (
                        "person_accounts_in_system",
                        Value::from(
                            person
                                .and_then(|p| per_person.get(&(s.system.as_str(), p.id)).copied())
                                .unwrap_or(0),
                        ),
                    ),
                ]),
                error: None,
                unknown,
                scope: false,
            });
        }
        let raw = super::raw(&RawAccounts {
            accounts: raw,
            source: "identity",
        })?;
        Ok(Collected { resources, raw })
    }
}

/// Every account of every configured system, plus an `error` resource for each system that
/// could not be listed. Neither AWS nor GitHub configured: not configured.
async fn accounts_in_systems(ctx: &ProbeContext) -> Result<(Vec<Seen>, Vec<Resource>), ProbeError> {
    let mut seen = Vec::new();
    let mut errors = Vec::new();
    let aws = ctx
        .sources
        .aws
        .as_ref()
        .is_some_and(|a| !a.accounts.is_empty());
    let github = ctx
        .sources
        .github
        .as_ref()
        .is_some_and(|g| !g.orgs.is_empty());
    if !aws && !github {
        return Err(ProbeError::NotConfigured("aws or github"));
    }
    if aws {
        aws_accounts(ctx, &mut seen, &mut errors).await?;
    }
    if github {
        for org in super::github::orgs(ctx, &[])? {
            let system = format!("github:{org}");
            let members = super::github::fetch::members(ctx, &org, false, false).await;
            let outside = super::github::fetch::outside_collaborators(ctx, &org, false).await;
            match (members, outside) {
                (Ok(m), Ok(o)) => {
                    for u in m.0.iter().chain(o.0.iter()) {
                        seen.push(Seen {
                            system: system.clone(),
                            kind: "github",
                            account: u.login.clone(),
                            emails: Vec::new(),
                        });
                    }
                }
                (Err(e), _) | (_, Err(e)) => errors.push(unreadable(&system, "github", &e)),
            }
        }
    }
    Ok((seen, errors))
}

/// The IAM users of every configured AWS account (an `error` resource per account that could
/// not be read).
#[cfg(feature = "aws")]
async fn aws_accounts(
    ctx: &ProbeContext,
    seen: &mut Vec<Seen>,
    errors: &mut Vec<Resource>,
) -> Result<(), ProbeError> {
    for account in super::aws::accounts(ctx, &[]).await? {
        let (name, result) = match account {
            Ok(a) => (
                a.name.clone(),
                super::aws::fetch::authorization_details(ctx, &a).await,
            ),
            Err((name, e)) => (name, Err(e)),
        };
        let system = format!("aws:{name}");
        match result {
            Ok(details) => {
                for u in &details.users {
                    let mut emails: Vec<String> = u
                        .tags
                        .iter()
                        .filter(|(k, _)| {
                            matches!(k.to_ascii_lowercase().as_str(), "email" | "mail")
                        })
                        .map(|(_, v)| v.to_string())
                        .collect();
                    if u.name.contains('@') {
                        emails.push(u.name.clone());
                    }
                    seen.push(Seen {
                        system: system.clone(),
                        kind: "aws",
                        account: u.name.clone(),
                        emails,
                    });
                }
            }
            Err(e) => errors.push(unreadable(&system, "aws", &e)),
        }
    }
    Ok(())
}

/// A build without the `aws` feature cannot list AWS accounts: each configured account is an
/// `error` resource, so nothing is concluded from accounts that were never read.
#[cfg(not(feature = "aws"))]
async fn aws_accounts(
    ctx: &ProbeContext,
    _seen: &mut Vec<Seen>,
    errors: &mut Vec<Resource>,
) -> Result<(), ProbeError> {
    for account in ctx.sources.aws.iter().flat_map(|a| &a.accounts) {
        let system = format!("aws:{}", account.name);
        errors.push(unreadable(
            &system,
            "aws",
            &ProbeError::NotAvailable("aws.iam.users"),
        ));
    }
    Ok(())
}

/// The accounts of a system that could not be listed: an error, still saying which system
/// (so a check scoped to the other system is not affected), and a scope (it may hold any
/// number of accounts).
fn unreadable(system: &str, kind: &str, e: &ProbeError) -> Resource {
    Resource {
        id: format!("identity:{system}"),
        name: format!("accounts of {system}"),
        attributes: object(json!({"system": system, "kind": kind})),
        error: Some(e.to_string()),
        unknown: Default::default(),
        scope: true,
    }
}
