//! Email to the trust page's visitors: subscription confirmations (double opt-in), updates to
//! subscribers (public status changes, subprocessor changes, public incident notices) and
//! approved document requests' links.
//!
//! Every message to a subscriber carries `List-Unsubscribe` (the signed one-click link) and
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), and the same link visibly.
//! What the messages say is what the trust page says: titles, public badges, the vendors
//! register's public columns, an incident's public summary; never a resource or a finding.
//!
//! Deliveries are addressed by channel name: `confirm:<subscriber>`, `subscriber:<id>`,
//! `requester:<access request>`; the address is looked up when the message is sent, so an
//! address deleted meanwhile is never written to.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};

use super::config::{Topic, VisitorsConfig};
use super::mail::{self, Mail};
use super::{Event, EventKind, NewEvent, VisitorNotice};
use crate::access::LinkSigner;
use crate::catalog::Catalog;
use crate::config::{BaseUrl, FailingDisplay};
use crate::model::LatestResult;
use crate::registers::Registers;
use crate::store::{Batch, Store, Subscriber};
use crate::web::{Badge, badge_for};

/// Everything visitor mail needs.
#[derive(Debug)]
pub struct Visitors {
    pub config: VisitorsConfig,
    pub base_url: BaseUrl,
    pub company: String,
    pub signer: LinkSigner,
    pub base_dir: PathBuf,
    /// The gated documents' titles, by id (the link email names them).
    pub documents: Vec<(String, String)>,
}

const CONFIRM: &str = "subscribe-confirm";
const UNSUBSCRIBE: &str = "unsubscribe";

impl Visitors {
    /// The confirmation link of subscriber `id`, working until `expires` (Unix seconds).
    pub fn confirm_link(&self, id: &str, expires: i64) -> String {
        self.base_url.join(&format!(
            "/subscribe/confirm?s={id}&expires={expires}&signature={}",
            self.signer.sign_for(CONFIRM, id, expires)
        ))
    }

    pub fn check_confirm(&self, id: &str, expires: i64, signature: &str) -> bool {
        self.signer.verify_for(CONFIRM, id, expires, signature)
    }

    /// The unsubscribe link of subscriber `id` (works until they unsubscribe).
    pub fn unsubscribe_link(&self, id: &str) -> String {
        self.base_url.join(&format!(
            "/unsubscribe?s={id}&signature={}",
            self.signer.sign_for(UNSUBSCRIBE, id, 0)
        ))
    }

    pub fn check_unsubscribe(&self, id: &str, signature: &str) -> bool {
        self.signer.verify_for(UNSUBSCRIBE, id, 0, signature)
    }

    /// The event that queues subscriber `id`'s confirmation email.
    pub fn confirm_event(&self, id: &str, now: DateTime<Utc>) -> NewEvent {
        let expires = (now + self.config.confirm_within.get()).timestamp();
        NewEvent {
            key: format!("subscription_confirm:{id}:{}", now.timestamp_millis()),
            event: Event {
                visitor: Some(VisitorNotice {
                    headline: "Confirm your subscription".into(),
                    body: String::new(),
                    target: Some(id.to_string()),
                    expires: Some(expires),
                }),
                ..Event::new(EventKind::SubscriptionConfirm, now)
            },
        }
    }

    /// The event that emails an approved request's link to its requester.
    pub fn document_link_event(&self, request_id: &str, expires: DateTime<Utc>) -> NewEvent {
        NewEvent {
            key: format!("document_link:{request_id}:{}", expires.timestamp()),
            event: Event {
                visitor: Some(VisitorNotice {
                    headline: "Your requested documents".into(),
                    body: String::new(),
                    target: Some(request_id.to_string()),
                    expires: Some(expires.timestamp()),
                }),
                ..Event::new(EventKind::DocumentLink, Utc::now())
            },
        }
    }

    /// Sends a claimed batch of a visitor channel. The error says why, without secrets or
    /// addresses.
    pub async fn deliver(&self, store: &Store, batch: &Batch) -> Result<(), Undelivered> {
        self.try_deliver(store, batch).await.map_err(|e| match e {
            Undelivered::Failed(why) => Undelivered::Failed(redact_addresses(&why)),
            gone => gone,
        })
    }

    async fn try_deliver(&self, store: &Store, batch: &Batch) -> Result<(), Undelivered> {
        let (kind, target) = batch.channel.split_once(':').ok_or_else(|| {
            Undelivered::Gone(format!("not a visitor channel: {}", batch.channel))
        })?;
        let lookup = |e: crate::store::StoreError| {
            Undelivered::Failed(format!("cannot read the recipient: {e}"))
        };
        match kind {
            "confirm" | "subscriber" => {
                let Some(subscriber) = store.subscriber(target).await.map_err(lookup)? else {
                    return Err(Undelivered::Gone(
                        "the subscriber has unsubscribed or was deleted".into(),
                    ));
                };
                let (subject, body) = if kind == "confirm" {
                    self.confirm_text(&subscriber, &batch.events)
                } else {
                    self.update_text(&subscriber, &batch.events)
                }
                .map_err(Undelivered::Gone)?;
                let unsubscribe = self.unsubscribe_link(&subscriber.id);
                let headers = vec![
                    ("List-Unsubscribe", format!("<{unsubscribe}>")),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()),
                ];
                self.send(&batch.id, subscriber.email, &subject, body, headers)
                    .await
                    .map_err(Undelivered::Failed)
            }
            "requester" => {
                let Some(request) = store.access_request(target).await.map_err(lookup)? else {
                    return Err(Undelivered::Gone("the request no longer exists".into()));
                };
                let expires = match (request.status, request.expires_at) {
                    (crate::access::AccessStatus::Approved, Some(e)) => e,
                    _ => {
                        return Err(Undelivered::Gone(
                            "the request is no longer approved".into(),
                        ));
                    }
                };
                let link = self
                    .base_url
                    .join(&self.signer.link_path(&request.id, expires));
                let titles: Vec<String> = request
                    .documents
                    .iter()
                    .map(|d| {
                        self.documents
                            .iter()
                            .find(|(id, _)| id == d)
                            .map_or_else(|| d.clone(), |(_, t)| t.clone())
                    })
                    .collect();
                let subject = format!("Your requested documents from {}", self.company);
                let body = format!(
                    "Hello {},\n\nYour request for {} was approved. Download them here \
                     (a personal link, valid until {}):\n\n  {link}\n\nPlease do not forward \
                     this link: the documents are shared with you under the non-disclosure \
                     terms you accepted.\n\n-- \n{} Trust Center\n{}\n",
                    request.name,
                    titles.join(", "),
                    expires.format("%Y-%m-%d %H:%M UTC"),
                    self.company,
                    self.base_url.as_str(),
                );
                self.send(&batch.id, request.email, &subject, body, Vec::new())
                    .await
                    .map_err(Undelivered::Failed)
            }
            _ => Err(Undelivered::Gone(format!(
                "not a visitor channel: {}",
                batch.channel
            ))),
        }
    }

    /// Sends one message (id `id`) to `to` from the configured sender.
    async fn send(
        &self,
        id: &str,
        to: String,
        subject: &str,
        body: String,
        headers: Vec<(&'static str, String)>,
    ) -> Result<(), String> {
        let to = [to];
        let mail = Mail {
            from: &self.config.from,
            to: &to,
            subject,
            body,
            id,
            headers,
        };
        mail::send(&self.config.smtp, &self.base_dir, mail).await
    }

    fn confirm_text(
        &self,
        subscriber: &Subscriber,
        events: &[Event],
    ) -> Result<(String, String), String> {
        let expires = events
            .iter()
            .rev()
            .find_map(|e| e.visitor.as_ref().and_then(|v| v.expires))
            .ok_or("the confirmation has no expiry")?;
        let until = DateTime::from_timestamp(expires, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        let topics: Vec<&str> = subscriber.topics.iter().map(|t| t.label()).collect();
        let subject = format!(
            "Confirm your subscription to {}'s security updates",
            self.company
        );
        let body = format!(
            "Someone, hopefully you, asked to receive these updates from the {company} Trust \
             Center at this address:\n\n{topics}\n\nTo confirm, open this link (it works until \
             {until}):\n\n  {link}\n\nIf you did not ask for this, ignore this email: nothing \
             will be sent unless the link is followed, and the request is forgotten if you \
             unsubscribe:\n\n  {unsubscribe}\n",
            company = self.company,
            topics = topics
                .iter()
                .map(|t| format!("  - {t}"))
                .collect::<Vec<_>>()
                .join("\n"),
            link = self.confirm_link(&subscriber.id, expires),
            unsubscribe = self.unsubscribe_link(&subscriber.id),
        );
        Ok((subject, body))
    }

    fn update_text(
        &self,
        subscriber: &Subscriber,
        events: &[Event],
    ) -> Result<(String, String), String> {
        let notices: Vec<&VisitorNotice> = events
            .iter()
            .filter(|e| {
                e.kind
                    .topic()
                    .is_some_and(|t| subscriber.topics.contains(&t))
            })
            .filter_map(|e| e.visitor.as_ref())
            .collect();
        let subject = match notices.as_slice() {
            [] => return Err("nothing left to send for this subscriber's topics".into()),
            [one] => format!("{} security update: {}", self.company, one.headline),
            many => format!("{} security updates ({})", self.company, many.len()),
        };
        let mut body = String::new();
        for n in &notices {
            body.push_str(&n.headline);
            body.push('\n');
            if !n.body.is_empty() {
                body.push_str(&n.body);
                body.push('\n');
            }
            body.push('\n');
        }
        body.push_str(&format!(
            "The trust page: {}\n\n-- \nYou receive this because you subscribed to updates from \
             the {} Trust Center. Unsubscribe (one click, no sign-in):\n  {}\n",
            self.base_url.as_str(),
            self.company,
            self.unsubscribe_link(&subscriber.id)
        ));
        Ok((subject, body))
    }
}

/// A change of what was announced: the mark `key` goes from `before` to `after` (`None`:
/// absent), announced by `event` (none: recorded silently, e.g. on first sight).
#[derive(Debug, Clone, PartialEq)]
pub struct MarkChange {
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub event: Option<NewEvent>,
}

/// Why a visitor message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// Its recipient is gone (unsubscribed, deleted, a request revoked) or it has nothing
    /// left to say: dropped, not retried.
    Gone(String),
    /// Sending failed: retried.
    Failed(String),
}

/// `text` with every email address replaced by `<address>` (SMTP replies often repeat the
/// recipient; errors are logged and shown on the dashboard).
pub fn redact_addresses(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace())
        .map(|word| {
            let trimmed = word.trim_end();
            let core = trimmed.trim_matches(|c: char| "<>()[],;:'\"`".contains(c));
            if core.contains('@') && core.len() > 2 {
                word.replace(core, "<address>")
            } else {
                word.to_string()
            }
        })
        .collect()
}

/// A public control's status change, when its presented badge differs from `announced` (the
/// badge last announced, by control id). Returns the new badges to record with their events.
pub fn status_changes(
    catalog: &Catalog,
    latest: &[LatestResult],
    announced: &BTreeMap<String, String>,
    default_freshness: chrono::Duration,
    display: FailingDisplay,
    now: DateTime<Utc>,
) -> Vec<MarkChange> {
    let latest: BTreeMap<&str, &LatestResult> =
        latest.iter().map(|r| (r.control_id.as_str(), r)).collect();
    let mut out = Vec::new();
    for c in catalog.controls().iter().filter(|c| c.public) {
        let r = latest.get(c.id.as_str());
        let badge = badge_for(
            r.map(|r| (r.status, r.evaluated_at)),
            c.freshness.unwrap_or(default_freshness),
            now,
        )
        .present(display);
        let before = announced.get(&c.id).cloned();
        if before.as_deref() == Some(badge.as_str()) {
            continue;
        }
        // First sight (a new install, a new control): recorded, not announced.
        let event = before
            .as_deref()
            .and_then(Badge::parse)
            .map(|was| NewEvent {
                key: format!(
                    "public_status:{}:{}:{}",
                    c.id,
                    badge.as_str(),
                    now.timestamp_millis()
                ),
                event: Event {
                    visitor: Some(VisitorNotice {
                        headline: format!("{}: {}", c.title, badge.label()),
                        body: format!(
                            "{} ({}) changed from {} to {} on {}. {}",
                            c.title,
                            c.category,
                            was.present(display).label(),
                            badge.label(),
                            now.format("%Y-%m-%d"),
                            badge.meaning()
                        ),
                        target: None,
                        expires: None,
                    }),
                    ..Event::new(EventKind::PublicStatus, now)
                },
            });
        out.push(MarkChange {
            key: format!("status:{}", c.id),
            before,
            after: Some(badge.as_str().to_string()),
            event,
        });
    }
    out
}

/// What the trust page lists of one subprocessor (the mark's value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listed {
    pub purpose: String,
    pub location: String,
    #[serde(default)]
    pub starts_on: Option<NaiveDate>,
}

/// Subprocessor changes between the register and what was announced (by name): added (once
/// within `notice_days` of its start, or at once), changed, removed.
pub fn subprocessor_changes(
    company: &str,
    registers: &Registers,
    announced: &BTreeMap<String, String>,
    notice_days: Option<u32>,
    first_sight: bool,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<MarkChange> {
    let mut out = Vec::new();
    let mut listed: BTreeMap<String, Listed> = BTreeMap::new();
    for v in registers.vendors.iter().filter(|v| v.subprocessor) {
        listed.insert(
            v.name.clone(),
            Listed {
                purpose: v.purpose.clone(),
                location: v.location.clone(),
                starts_on: v.starts_on,
            },
        );
    }
    let notice = |kind: &str, name: &str, headline: String, body: String| NewEvent {
        key: format!("subprocessor:{kind}:{name}:{}", now.timestamp_millis()),
        event: Event::for_visitors(
            EventKind::Subprocessor,
            now,
            VisitorNotice::public(headline, body),
        ),
    };
    for (name, l) in &listed {
        let key = format!("subprocessor:{name}");
        let value = serde_json::to_string(l).unwrap_or_default();
        let before = announced.get(&key);
        if before == Some(&value) {
            continue;
        }
        let event = match before.and_then(|b| serde_json::from_str::<Listed>(b).ok()) {
            _ if first_sight => None,
            None => {
                // Announced `notice_days` before it starts (or at once when nearer).
                if let (Some(days), Some(start)) = (notice_days, l.starts_on)
                    && start - today > chrono::Duration::days(i64::from(days))
                {
                    continue;
                }
                let when = match l.starts_on {
                    Some(d) if d > today => format!(" It starts processing data on {d}."),
                    _ => String::new(),
                };
                Some(notice(
                    "added",
                    name,
                    format!("New subprocessor: {name}"),
                    format!(
                        "{name} ({}) is a new subprocessor of {company}, processing data in {}.{when}",
                        l.purpose, l.location
                    ),
                ))
            }
            Some(_) => Some(notice(
                "changed",
                name,
                format!("Subprocessor changed: {name}"),
                format!(
                    "{name} now: {}, processing data in {}.",
                    l.purpose, l.location
                ),
            )),
        };
        out.push(MarkChange {
            key,
            before: before.cloned(),
            after: Some(value),
            event,
        });
    }
    for (key, value) in announced {
        let Some(name) = key.strip_prefix("subprocessor:") else {
            continue;
        };
        if !listed.contains_key(name) {
            let event = (!first_sight).then(|| {
                notice(
                    "removed",
                    name,
                    format!("Subprocessor removed: {name}"),
                    format!("{name} is no longer a subprocessor."),
                )
            });
            out.push(MarkChange {
                key: key.clone(),
                before: Some(value.clone()),
                after: None,
                event,
            });
        }
    }
    out
}

/// Incidents marked `public: true` not yet announced (by id), with their public summary:
/// once when listed, once when resolved. On `first_sight` (the register as first read) they
/// are recorded, not announced.
pub fn incident_notices(
    registers: &Registers,
    announced: &BTreeMap<String, String>,
    first_sight: bool,
    now: DateTime<Utc>,
) -> Vec<MarkChange> {
    let mut out = Vec::new();
    for i in registers.incidents.iter().filter(|i| i.public) {
        let key = format!("incident:{}", i.id);
        let state = if i.resolved.is_some() {
            "resolved"
        } else {
            "open"
        };
        let before = announced.get(&key);
        if before.map(String::as_str) == Some(state) {
            continue;
        }
        let summary = i.public_summary.clone().unwrap_or_default();
        let (headline, body) = match i.resolved {
            Some(d) => (
                format!("Security incident resolved: {}", i.public_title()),
                format!("Resolved on {d}. {summary}"),
            ),
            None => (
                format!("Security incident: {}", i.public_title()),
                format!("Since {}. {summary}", i.opened),
            ),
        };
        let event = NewEvent {
            key: format!("incident_notice:{}:{state}", i.id),
            event: Event::for_visitors(
                EventKind::IncidentNotice,
                now,
                VisitorNotice::public(headline, body),
            ),
        };
        out.push(MarkChange {
            key,
            before: before.cloned(),
            after: Some(state.to_string()),
            event: (!first_sight).then_some(event),
        });
    }
    out
}

/// The channels a visitor event goes to: the confirmation to its subscriber, a document link
/// to its requester, a topic's events to every confirmed subscriber of that topic.
pub fn visitor_channels(
    event: &Event,
    subscribers: &[Subscriber],
) -> std::collections::BTreeSet<String> {
    let target = event.visitor.as_ref().and_then(|v| v.target.clone());
    match (event.kind, event.kind.topic(), target) {
        (EventKind::SubscriptionConfirm, _, Some(id)) => [format!("confirm:{id}")].into(),
        (EventKind::DocumentLink, _, Some(id)) => [format!("requester:{id}")].into(),
        (_, Some(topic), _) => subscribers
            .iter()
            .filter(|s| s.topics.contains(&topic))
            .map(|s| format!("subscriber:{}", s.id))
            .collect(),
        _ => Default::default(),
    }
}

/// Whether `topics` are all offered.
pub fn offered(config: &VisitorsConfig, topics: &[Topic]) -> bool {
    topics.iter().all(|t| config.topics.contains(t))
}
