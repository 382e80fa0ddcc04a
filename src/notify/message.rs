//! What a message says: a subject and one line per event (a digest when several), each with a
//! link to the dashboard; and the JSON body of a generic webhook. Pure: no I/O.
//!
//! Messages name the control, what changed and how many resources, never which resources
//! (the dashboard, behind sign-in, shows them) and never a secret.

use serde_json::{Value, json};

use super::{Event, EventKind};
use crate::catalog::Catalog;

/// What messages are rendered with.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    /// The dashboard's address (`https://trellis.example.com`), without `/dashboard`.
    pub dashboard: Option<&'a str>,
}

/// One line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub link: Option<String>,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub lines: Vec<Line>,
}

impl Message {
    /// Plain text: each line, its link on the next (email bodies, logs).
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(&line.text);
            out.push('\n');
            if let Some(link) = &line.link {
                out.push_str("  ");
                out.push_str(link);
                out.push('\n');
            }
            out.push('\n');
        }
        out.push_str("-- \nSent by Trellis. Rules in `notifications` decide what is sent where.\n");
        out
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The control's title (its id when it is no longer in the catalog).
fn title(event: &Event, ctx: Context<'_>) -> String {
    match &event.control_id {
        Some(id) => match ctx.catalog.get(id) {
            Some(c) => format!("{} ({id})", c.title),
            None => id.clone(),
        },
        None => String::new(),
    }
}

/// Where on the dashboard the event is looked into.
pub fn link(event: &Event, ctx: Context<'_>) -> Option<String> {
    let base = ctx.dashboard?;
    let path = match (&event.control_id, &event.run_id, event.kind) {
        (Some(id), _, _) => format!("/dashboard/controls/{}", encode(id)),
        (None, Some(run), EventKind::RunInterrupted) => format!("/dashboard/runs/{}", encode(run)),
        _ => "/dashboard".to_string(),
    };
    Some(format!("{base}{path}"))
}

/// A path segment with everything but RFC 3986's unreserved characters percent-encoded.
fn encode(segment: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

/// One sentence saying what happened.
pub fn describe(event: &Event, ctx: Context<'_>) -> String {
    let t = title(event, ctx);
    let n = event.count;
    let open = event.open_total.unwrap_or(0);
    let still = if open > 0 {
        format!(
            " ({} failing or erring in all)",
            plural(open, "finding", "findings")
        )
    } else {
        String::new()
    };
    match event.kind {
        EventKind::Failing => format!(
            "{t} is failing: {} newly failing{still}.",
            plural(n, "finding", "findings")
        ),
        EventKind::Erroring => format!(
            "{t} could not be checked: {} newly erring{still}. {}",
            plural(n, "finding", "findings"),
            event.detail
        ),
        EventKind::Reopened => format!(
            "{t} failed again: {} fixed before fail again{still}.",
            plural(n, "finding", "findings")
        ),
        EventKind::Fixed => {
            if open == 0 {
                format!(
                    "{t} is fixed: {} no longer failing, none left.",
                    plural(n, "finding", "findings")
                )
            } else {
                format!(
                    "{t}: {} fixed, {} still failing or erring.",
                    plural(n, "finding", "findings"),
                    open
                )
            }
        }
        EventKind::Stale => format!("{t} is stale: {}", event.detail),
        EventKind::ExceptionExpiring => format!("{t}: {}", event.detail),
        EventKind::ExceptionExpired => format!("{t}: {}", event.detail),
        EventKind::RunInterrupted => format!(
            "Run {} was interrupted ({} not evaluated): {}",
            event.run_id.as_deref().unwrap_or("?"),
            plural(n, "control", "controls"),
            event.detail
        ),
        EventKind::VerifyFailed => format!("trellis verify failed: {}", event.detail),
        EventKind::PolicyReviewDue => format!("Policy review: {}", event.detail),
        EventKind::RegisterOverdue => format!(
            "{t}: {} newly overdue in the registers{still}.",
            plural(n, "entry", "entries")
        ),
        EventKind::Test => event.detail.clone(),
        EventKind::SubscriptionConfirm
        | EventKind::PublicStatus
        | EventKind::Subprocessor
        | EventKind::IncidentNotice
        | EventKind::DocumentLink => event
            .visitor
            .as_ref()
            .map(|v| v.headline.clone())
            .unwrap_or_default(),
    }
}

/// The message for a batch of events (oldest first).
pub fn render(events: &[Event], ctx: Context<'_>) -> Message {
    let lines: Vec<Line> = events
        .iter()
        .map(|e| Line {
            text: describe(e, ctx),
            link: link(e, ctx),
        })
        .collect();
    let subject = match events {
        [one] => format!("[Trellis] {}", subject_of(one, ctx)),
        _ => {
            let mut counts: std::collections::BTreeMap<EventKind, usize> = Default::default();
            for e in events {
                *counts.entry(e.kind).or_default() += 1;
            }
            let parts: Vec<String> = counts
                .iter()
                .map(|(k, n)| format!("{n} {}", k.as_str().replace('_', " ")))
                .collect();
            format!("[Trellis] {} changes: {}", events.len(), parts.join(", "))
        }
    };
    Message { subject, lines }
}

fn subject_of(event: &Event, ctx: Context<'_>) -> String {
    let t = event
        .control_id
        .as_deref()
        .map(|id| ctx.catalog.get(id).map_or(id, |c| c.title.as_str()))
        .unwrap_or_default();
    match event.kind {
        EventKind::Failing => format!("{t} is failing"),
        EventKind::Erroring => format!("{t} could not be checked"),
        EventKind::Reopened => format!("{t} failed again"),
        EventKind::Fixed => format!("{t}: fixed"),
        EventKind::Stale => format!("{t} is stale"),
        EventKind::ExceptionExpiring => format!("{t}: an exception expires soon"),
        EventKind::ExceptionExpired => format!("{t}: an exception expired"),
        EventKind::RunInterrupted => "a run was interrupted".to_string(),
        EventKind::VerifyFailed => "trellis verify failed".to_string(),
        EventKind::PolicyReviewDue => "a policy review is due".to_string(),
        EventKind::RegisterOverdue => format!("{t}: register entries overdue"),
        EventKind::Test => "test message".to_string(),
        EventKind::SubscriptionConfirm
        | EventKind::PublicStatus
        | EventKind::Subprocessor
        | EventKind::IncidentNotice
        | EventKind::DocumentLink => describe(event, ctx),
    }
}

/// The body a generic webhook receives (documented in `docs/notifications.md`).
pub fn webhook_body(batch: &str, attempt: i32, events: &[Event], ctx: Context<'_>) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let control = e.control_id.as_deref().map(|id| match ctx.catalog.get(id) {
                Some(c) => json!({
                    "id": c.id,
                    "title": c.title,
                    "category": c.category,
                    "severity": c.severity.as_str(),
                    "owner": c.owner,
                }),
                None => json!({"id": id}),
            });
            json!({
                "kind": e.kind.as_str(),
                "control": control,
                "status": e.status.map(|s| s.as_str()),
                "count": e.count,
                "open_total": e.open_total,
                "fingerprints": e.fingerprints,
                "run_id": e.run_id,
                "detail": e.detail,
                "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "text": describe(e, ctx),
                "link": link(e, ctx),
            })
        })
        .collect();
    json!({
        "type": "trellis.notification",
        "version": 1,
        "delivery": batch,
        "attempt": attempt,
        "events": events,
    })
}
