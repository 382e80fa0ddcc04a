//! Notifications (issue 20): the security team hears about changes without opening the
//! dashboard.
//!
//! Data flow, one way like the rest of Trellis:
//! 1. **Events are written with their cause.** The transaction that stores a control's result
//!    ([`crate::store::Store::record_result`]) compares the result's failures, by fingerprint
//!    (control, check, resource: [`crate::model::fingerprint`]), with what was failing before
//!    ([`transitions`]) and writes the events (`failing`, `erroring`, `fixed`, `reopened`) to
//!    the outbox (`register_overdue` instead of `failing` for checks reading a register).
//!    Closing a run as interrupted writes `run_interrupted` the same way. Sweeps on every
//!    instance find the rest (`stale`, `exception_expiring`, `exception_expired`,
//!    `policy_review_due`, and the visitors' public changes);
//!    each event has a unique key, so an event found by two instances is written once.
//! 2. **Rules route them** ([`channels_for`]): each event becomes one delivery per channel
//!    that a matching rule names, in one transaction.
//! 3. **A sender delivers** ([`sender`]): a channel's pending deliveries become one message
//!    (a digest when several arrive within `digest_window`), claimed under a lease so that
//!    two instances never send the same one; failures are retried with backoff and, after
//!    `max_attempts`, marked failed and shown on the dashboard.
//!
//! An event is sent once per transition, not once per run: a control failing for a week is
//! one `failing` message, then one `fixed`.

pub mod channels;
pub mod config;
pub mod mail;
pub mod message;
pub mod sender;
pub mod visitors;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::Control;
use crate::model::{ControlOutcome, Status};
use config::RuleConfig;

/// What happened. Rules name these (`events: [failing, fixed]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Resources (or whole checks) of a control newly fail.
    Failing,
    /// Checks of a control could not be evaluated (their probe could not collect), or
    /// resources newly err.
    Erroring,
    /// What failed or erred passes now (or is gone), in checks that were evaluated.
    Fixed,
    /// What had been fixed fails again (within [`REOPEN_WINDOW_DAYS`] of its fix).
    Reopened,
    /// A control's newest successful result is older than its freshness.
    Stale,
    /// An exception expires within `notifications.exception_warning`.
    ExceptionExpiring,
    /// An exception has expired: what it waived counts again.
    ExceptionExpired,
    /// A run stopped before it evaluated everything (its instances died, it was cancelled
    /// with failures, or a unit failed too often).
    RunInterrupted,
    /// `trellis verify` found stored records that do not verify.
    VerifyFailed,
    /// A policy document's review falls due within `review_warning`, or is overdue (read
    /// from the newest `documents.policies` evidence).
    PolicyReviewDue,
    /// Register entries newly fail a control's check (a vendor not reassessed in time, a
    /// risk not reviewed, an access review missing…): reported as this instead of `failing`
    /// for checks reading a register.
    RegisterOverdue,
    /// `trellis notify test`.
    Test,
    /// To a visitor: confirm your subscription (double opt-in).
    SubscriptionConfirm,
    /// To subscribers: a public control's status on the trust page changed.
    PublicStatus,
    /// To subscribers: a subprocessor was added (or will start), changed or removed.
    Subprocessor,
    /// To subscribers: an incident marked `public: true`.
    IncidentNotice,
    /// To a requester: their approved document request's download link.
    DocumentLink,
}

impl EventKind {
    pub const ALL: [EventKind; 17] = [
        EventKind::Failing,
        EventKind::Erroring,
        EventKind::Fixed,
        EventKind::Reopened,
        EventKind::Stale,
        EventKind::ExceptionExpiring,
        EventKind::ExceptionExpired,
        EventKind::RunInterrupted,
        EventKind::VerifyFailed,
        EventKind::PolicyReviewDue,
        EventKind::RegisterOverdue,
        EventKind::Test,
        EventKind::SubscriptionConfirm,
        EventKind::PublicStatus,
        EventKind::Subprocessor,
        EventKind::IncidentNotice,
        EventKind::DocumentLink,
    ];

    /// Sent to visitors of the trust page (subscribers, requesters), never by rules.
    pub fn is_for_visitors(self) -> bool {
        matches!(
            self,
            EventKind::SubscriptionConfirm
                | EventKind::PublicStatus
                | EventKind::Subprocessor
                | EventKind::IncidentNotice
                | EventKind::DocumentLink
        )
    }

    /// The subscription topic a visitor event belongs to (`None`: sent to one person).
    pub fn topic(self) -> Option<config::Topic> {
        match self {
            EventKind::PublicStatus => Some(config::Topic::Status),
            EventKind::Subprocessor => Some(config::Topic::Subprocessors),
            EventKind::IncidentNotice => Some(config::Topic::Incidents),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Failing => "failing",
            EventKind::Erroring => "erroring",
            EventKind::Fixed => "fixed",
            EventKind::Reopened => "reopened",
            EventKind::Stale => "stale",
            EventKind::ExceptionExpiring => "exception_expiring",
            EventKind::ExceptionExpired => "exception_expired",
            EventKind::RunInterrupted => "run_interrupted",
            EventKind::VerifyFailed => "verify_failed",
            EventKind::PolicyReviewDue => "policy_review_due",
            EventKind::RegisterOverdue => "register_overdue",
            EventKind::Test => "test",
            EventKind::SubscriptionConfirm => "subscription_confirm",
            EventKind::PublicStatus => "public_status",
            EventKind::Subprocessor => "subprocessor",
            EventKind::IncidentNotice => "incident_notice",
            EventKind::DocumentLink => "document_link",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Fingerprints kept in an event at most (its count is always exact).
pub const MAX_FINGERPRINTS: usize = 50;

/// A fixed fingerprint is remembered this long, to tell `reopened` from `failing`.
pub const REOPEN_WINDOW_DAYS: i64 = 90;

/// One event, as kept in the outbox (JSON). Carries no resource names: messages say how many
/// resources changed and link to the dashboard, which shows which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    /// The control's status in the result that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Resources (or whole checks) that changed.
    #[serde(default)]
    pub count: usize,
    /// Resources (or whole checks) failing or erring after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_total: Option<usize>,
    /// The changed fingerprints (at most [`MAX_FINGERPRINTS`]), for receivers that track
    /// findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// One line saying what happened beyond the kind (the result's summary, a run's error,
    /// an exception's id and date).
    #[serde(default)]
    pub detail: String,
    /// When it happened (the result's evaluation time, the sweep's time).
    pub at: DateTime<Utc>,
    /// For visitor events: what the message says (public wording only) and whom it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<VisitorNotice>,
}

impl Event {
    /// An event of `kind` at `at`, about nothing in particular yet (set what applies with
    /// `Event { control_id: …, ..Event::new(kind, at) }`).
    pub fn new(kind: EventKind, at: DateTime<Utc>) -> Event {
        Event {
            kind,
            control_id: None,
            status: None,
            count: 0,
            open_total: None,
            fingerprints: Vec::new(),
            run_id: None,
            detail: String::new(),
            at,
            visitor: None,
        }
    }
}

impl VisitorNotice {
    /// A public notice: `headline` and `body`, for every subscriber of its topic.
    pub fn public(headline: String, body: String) -> VisitorNotice {
        VisitorNotice {
            headline,
            body,
            target: None,
            expires: None,
        }
    }
}

impl Event {
    /// A visitor event of `kind` at `at` saying `notice`.
    pub fn for_visitors(kind: EventKind, at: DateTime<Utc>, notice: VisitorNotice) -> Event {
        Event {
            visitor: Some(notice),
            ..Event::new(kind, at)
        }
    }
}

/// What a visitor event says, and for a personal message whom it is for. Public wording only:
/// what the trust page itself shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorNotice {
    /// One line (a digest's line, a single message's subject).
    pub headline: String,
    /// The paragraph under it.
    #[serde(default)]
    pub body: String,
    /// A subscriber's id (confirmation) or a document request's id (its link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Until when a link in it works (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// An event to add to the outbox under a unique key (a second add with the same key is a
/// no-op: how sweeps on several instances write an event once).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub key: String,
    pub event: Event,
}

/// A fingerprint's state as the outbox last recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingState {
    Fail,
    Error,
    /// Failed or erred before, passes (or is gone) since `since`.
    Fixed,
}

impl FindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::Fail => "fail",
            FindingState::Error => "error",
            FindingState::Fixed => "fixed",
        }
    }

    pub fn parse(text: &str) -> Option<FindingState> {
        match text {
            "fail" => Some(FindingState::Fail),
            "error" => Some(FindingState::Error),
            "fixed" => Some(FindingState::Fixed),
            _ => None,
        }
    }
}

/// A fingerprint the outbox knows for a control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub fingerprint: String,
    pub check: usize,
    pub state: FindingState,
}

/// What one result changes: fingerprint states to write (upsert), to forget, and the events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transitions {
    pub set: Vec<(String, usize, FindingState)>,
    pub forget: Vec<String>,
    pub events: Vec<Event>,
}

/// Compares a control's new result with the fingerprints known for it.
///
/// - A failure (a finding that fails or errs, or a check that does as a whole) not known as
///   failing: `failing` (`reopened` if it had been fixed; `erroring` when it errs).
/// - A known failure now passing (or not applicable): `fixed`. One the result no longer
///   lists: `fixed` only if its check saw its whole population (neither the check nor any of
///   its resources erred); otherwise nothing is known about it and it stays as it was (an
///   outage, even a partial one, is never a fix). Waived now: forgotten without an event (accepted, not
///   fixed); it is new again if it fails after its exception.
/// - A known failure of a check the control no longer has (its file was edited): forgotten.
///
/// One event per kind, counting the fingerprints it covers.
pub fn transitions(run_id: &str, outcome: &ControlOutcome, known: &[Known]) -> Transitions {
    // What fails or errs now, by fingerprint.
    let mut now: BTreeMap<String, (usize, FindingState)> = BTreeMap::new();
    let mut waived: BTreeSet<String> = BTreeSet::new();
    for f in &outcome.findings {
        let state = match f.status {
            Status::Fail => FindingState::Fail,
            Status::Error => FindingState::Error,
            Status::Waived => {
                waived.insert(f.fingerprint(&outcome.control_id));
                continue;
            }
            Status::Pass | Status::NotApplicable => continue,
        };
        now.insert(f.fingerprint(&outcome.control_id), (f.check, state));
    }
    for (k, check) in outcome.checks.iter().enumerate() {
        let state = match check.status {
            Status::Fail => FindingState::Fail,
            Status::Error => FindingState::Error,
            _ => continue,
        };
        if !now.values().any(|(c, _)| *c == k) {
            now.insert(
                crate::model::fingerprint(&outcome.control_id, k, ""),
                (k, state),
            );
        }
    }
    // Checks that did not see their whole population: erred as a whole, or with a resource
    // that erred (an account or region that could not be read may hold any resource). What
    // they no longer list is unknown, not fixed.
    let partial_checks: BTreeSet<usize> = outcome
        .checks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.status == Status::Error)
        .map(|(k, _)| k)
        .chain(
            outcome
                .findings
                .iter()
                .filter(|f| f.status == Status::Error)
                .map(|f| f.check),
        )
        .collect();
    // Seen now and not failing: fixed whatever else the check could not read.
    let seen_passing: BTreeSet<String> = outcome
        .findings
        .iter()
        .filter(|f| matches!(f.status, Status::Pass | Status::NotApplicable))
        .map(|f| f.fingerprint(&outcome.control_id))
        .collect();
    let reads_register = |check: usize| {
        outcome
            .checks
            .get(check)
            .is_some_and(|c| c.probe.starts_with("registers."))
    };
    let known_by: HashMap<&str, &Known> =
        known.iter().map(|k| (k.fingerprint.as_str(), k)).collect();

    let mut out = Transitions::default();
    let mut changed: BTreeMap<EventKind, Vec<String>> = BTreeMap::new();
    for (fp, &(check, state)) in &now {
        let before = known_by.get(fp.as_str()).map(|k| k.state);
        let kind = match (before, state) {
            (Some(b), s) if b == s => continue,
            (_, FindingState::Error) => EventKind::Erroring,
            (Some(FindingState::Fixed), _) => EventKind::Reopened,
            _ if reads_register(check) => EventKind::RegisterOverdue,
            _ => EventKind::Failing,
        };
        changed.entry(kind).or_default().push(fp.clone());
        out.set.push((fp.clone(), check, state));
    }
    let mut open_total = now.len();
    for k in known {
        if now.contains_key(&k.fingerprint) || k.state == FindingState::Fixed {
            continue;
        }
        // A check the control no longer has, or waived now: forgotten.
        if k.check >= outcome.checks.len() || waived.contains(&k.fingerprint) {
            out.forget.push(k.fingerprint.clone());
        } else if partial_checks.contains(&k.check) && !seen_passing.contains(&k.fingerprint) {
            // Unknown now: still open as far as anyone knows.
            open_total += 1;
        } else {
            changed
                .entry(EventKind::Fixed)
                .or_default()
                .push(k.fingerprint.clone());
            out.set
                .push((k.fingerprint.clone(), k.check, FindingState::Fixed));
        }
    }
    for (kind, mut fingerprints) in changed {
        let count = fingerprints.len();
        fingerprints.truncate(MAX_FINGERPRINTS);
        out.events.push(Event {
            kind,
            control_id: Some(outcome.control_id.clone()),
            status: Some(outcome.status),
            count,
            open_total: Some(open_total),
            fingerprints,
            run_id: Some(run_id.to_string()),
            detail: outcome.summary.clone(),
            at: outcome.evaluated_at,
            visitor: None,
        });
    }
    out
}

/// The channels an event goes to: those named by every rule whose events include its kind and
/// whose filters all match its control. A filter on controls (severity, category, owner,
/// framework, id) never matches an event about no control (a run, `verify`), nor one about a
/// control no longer in the catalog.
pub fn channels_for(
    event: &Event,
    control: Option<&Control>,
    rules: &[RuleConfig],
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in rules {
        if !rule.events.contains(&event.kind) {
            continue;
        }
        let filtered = !(rule.severity.is_empty()
            && rule.controls.is_empty()
            && rule.categories.is_empty()
            && rule.owners.is_empty()
            && rule.frameworks.is_empty());
        let matches = match control {
            None => !filtered,
            Some(c) => {
                (rule.severity.is_empty() || rule.severity.contains(&c.severity))
                    && (rule.controls.is_empty() || rule.controls.contains(&c.id))
                    && (rule.categories.is_empty() || rule.categories.contains(&c.category))
                    && (rule.owners.is_empty() || rule.owners.contains(&c.owner))
                    && (rule.frameworks.is_empty()
                        || c.frameworks
                            .iter()
                            .any(|f| rule.frameworks.contains(&f.framework)))
            }
        };
        if matches {
            out.extend(rule.channels.iter().cloned());
        }
    }
    out
}

#[cfg(test)]
mod tests;
