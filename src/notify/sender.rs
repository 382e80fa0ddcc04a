//! The notifier, one per `serve` instance: sweeps for events no result carries (stale
//! controls, exceptions expiring), routes the outbox's events, and delivers each channel's
//! pending messages. Safe on every instance at once: the store hands a delivery to one
//! instance at a time (see [`crate::store::Store::claim_batch`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::channels::{self, Outgoing};
use super::config::{ChannelConfig, NotificationsConfig};
use super::message::Context;
use super::visitors::{self, Visitors, visitor_channels};
use super::{Event, EventKind, NewEvent, channels_for};
use crate::catalog::Catalog;
use crate::config::FailingDisplay;
use crate::model::LatestResult;
use crate::scheduler::Clock;
use crate::store::{BatchEnd, Store, StoreError};

/// How long an instance holds a message it is sending: longer than any channel's timeouts,
/// so a lease only expires when its instance died.
const SEND_LEASE: Duration = Duration::from_secs(600);
/// Sent and failed messages, and their events, are kept this long (the dashboard's list of
/// failures, diagnosis); a condition that still holds after it (a control stale all along)
/// is announced again, as a reminder.
const OUTBOX_RETENTION_DAYS: i64 = 90;
/// The longest wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Messages sent per channel per tick at most (the rest wait for the next tick).
const BATCHES_PER_TICK: usize = 10;

pub struct Notifier {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub config: NotificationsConfig,
    /// Where relative secret and CA files are read from.
    pub base_dir: PathBuf,
    /// The dashboard's address, for links.
    pub dashboard: Option<String>,
    pub instance: String,
    /// The evaluation clock (staleness and expiry are judged by it, as the pages judge them).
    pub clock: Arc<dyn Clock>,
    pub default_freshness: chrono::Duration,
    /// How often the outbox is looked at.
    pub poll: Duration,
    pub http: reqwest::Client,
    /// Mail to the trust page's visitors, when `notifications.visitors` is set.
    pub visitors: Option<Arc<Visitors>>,
    /// How the trust page shows failures (status notices say what the page says).
    pub display: FailingDisplay,
    /// The registers folder (subprocessor changes, public incidents), when configured.
    pub registers_dir: Option<PathBuf>,
}

/// Where a claimed message goes.
#[derive(Clone, Copy)]
enum Target<'a> {
    Team(&'a ChannelConfig),
    Visitor(&'a Visitors),
}

/// The prefixes of visitor channels.
const VISITOR_CHANNELS: [&str; 3] = ["confirm:", "subscriber:", "requester:"];

impl Notifier {
    /// Runs until `shutdown`; a message being sent is finished first.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last_sweep: Option<tokio::time::Instant> = None;
            loop {
                let every = self.config.sweep_every.to_std();
                let sweep = last_sweep.is_none_or(|t| t.elapsed() >= every);
                if sweep {
                    last_sweep = Some(tokio::time::Instant::now());
                }
                if let Err(e) = self.tick(sweep, &shutdown).await {
                    tracing::warn!(error = %e, "notifications: will try again");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.poll) => {}
                }
            }
        })
    }

    /// One pass: sweep (when asked), route, deliver what is due.
    pub async fn tick(&self, sweep: bool, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let wall = Utc::now().timestamp_millis();
        // A sweep that fails is logged: what is already in the outbox is still delivered.
        if sweep && let Err(error) = self.sweep_all(wall).await {
            tracing::warn!(%error, "notifications: the sweep failed; will try again");
        }
        // Routing reads the subscribers: only when there is something to route.
        if self.store.has_unrouted_events().await? {
            let subscribers = if self.visitors.is_some() {
                self.store.confirmed_subscribers().await?
            } else {
                Vec::new()
            };
            let catalog = &self.catalog;
            let rules = &self.config.rules;
            self.store
                .route_events(wall, &|e: &Event| {
                    if e.kind.is_for_visitors() {
                        return visitor_channels(e, &subscribers);
                    }
                    let control = e.control_id.as_deref().and_then(|id| catalog.get(id));
                    channels_for(e, control, rules)
                })
                .await?;
        }
        let window = self.config.digest_window.get().num_milliseconds();
        for channel in &self.config.channels {
            for _ in 0..BATCHES_PER_TICK {
                if shutdown.is_cancelled()
                    || !self
                        .deliver_one(&channel.name, window, Target::Team(channel))
                        .await?
                {
                    break;
                }
            }
        }
        if let Some(visitors) = &self.visitors {
            for channel in self.store.waiting_channels(&VISITOR_CHANNELS).await? {
                if shutdown.is_cancelled() {
                    break;
                }
                // A confirmation or a document link is awaited by someone: sent at once.
                let window = if channel.starts_with("subscriber:") {
                    window
                } else {
                    0
                };
                self.deliver_one(&channel, window, Target::Visitor(visitors))
                    .await?;
            }
        }
        Ok(())
    }

    /// Every sweep: stale controls, exceptions, policy reviews, the visitors' public changes,
    /// subscriptions never confirmed, deliveries of removed channels, the outbox's retention.
    async fn sweep_all(&self, wall: i64) -> Result<(), StoreError> {
        let latest = self.store.latest_results().await?;
        let now = self.clock.now();
        let mut found = self.sweep(&latest, now);
        let policies = self.store.latest_evidence(&["documents.policies"]).await?;
        found.extend(policy_reviews(
            &policies,
            now,
            self.config.review_warning.get(),
        ));
        let added = self.store.add_events(&found, wall).await?;
        if added > 0 {
            tracing::info!(added, "notifications: events found by the sweep");
        }
        if let Some(v) = &self.visitors {
            self.sweep_public(&latest, now, wall).await?;
            // An address a stranger typed and nobody confirmed is not kept.
            let expired = self
                .store
                .expire_pending_subscriptions(now - v.config.confirm_within.get())
                .await?;
            if expired > 0 {
                tracing::info!(expired, "unconfirmed subscriptions deleted");
            }
        }
        let configured: Vec<String> = self
            .config
            .channels
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let dropped = self
            .store
            .drop_orphans(&configured, self.visitors.is_some(), wall)
            .await?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "notifications for channels no longer configured dropped"
            );
        }
        let pruned = self
            .store
            .prune_outbox(wall - OUTBOX_RETENTION_DAYS * 86_400_000)
            .await?;
        if pruned > 0 {
            tracing::info!(
                pruned,
                "notifications: settled outbox rows older than the retention forgotten"
            );
        }
        Ok(())
    }

    /// The visitors' sweeps: public status changes, subprocessor changes, public incidents.
    /// Each change is recorded as a mark with its event in one transaction, so an instance
    /// that loses the race announces nothing.
    async fn sweep_public(
        &self,
        latest: &[LatestResult],
        now: DateTime<Utc>,
        wall: i64,
    ) -> Result<(), StoreError> {
        let marks = |prefix: &'static str| async move {
            Ok::<_, StoreError>(
                self.store
                    .marks(prefix)
                    .await?
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
        };
        let status: std::collections::BTreeMap<String, String> = marks("status:")
            .await?
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("status:").map(|id| (id.to_string(), v)))
            .collect();
        let mut changes = visitors::status_changes(
            &self.catalog,
            latest,
            &status,
            self.default_freshness,
            self.display,
            now,
        );
        let registers = match &self.registers_dir {
            None => None,
            Some(dir) => match crate::registers::load(dir) {
                Ok(r) => Some(r),
                Err(problems) => {
                    tracing::warn!(
                        problems = problems.len(),
                        first = %problems.first().map(ToString::to_string).unwrap_or_default(),
                        "notifications: the registers do not load; subprocessor and incident \
                         notices wait"
                    );
                    None
                }
            },
        };
        let Some(registers) = registers else {
            return self.record(changes, wall).await;
        };
        let company = self
            .visitors
            .as_ref()
            .map(|v| v.company.clone())
            .unwrap_or_default();
        let notice_days = self
            .visitors
            .as_ref()
            .and_then(|v| v.config.subprocessor_notice_days);
        // The registers as first read are what the page already lists: not news.
        let seeded = self.store.mark("seeded:subprocessors").await?.is_some();
        let incidents_seeded = self.store.mark("seeded:incidents").await?.is_some();
        if !registers.missing.contains_key("vendors") {
            changes.extend(visitors::subprocessor_changes(
                &company,
                &registers,
                &marks("subprocessor:").await?,
                notice_days,
                !seeded,
                now.date_naive(),
                now,
            ));
        }
        if !registers.missing.contains_key("incidents") {
            changes.extend(visitors::incident_notices(
                &registers,
                &marks("incident:").await?,
                !incidents_seeded,
                now,
            ));
        }
        self.record(changes, wall).await?;
        for (register, done) in [("vendors", seeded), ("incidents", incidents_seeded)] {
            if !done && !registers.missing.contains_key(register) {
                let key = if register == "vendors" {
                    "seeded:subprocessors"
                } else {
                    "seeded:incidents"
                };
                self.store
                    .set_mark(key, None, Some("yes"), None, wall)
                    .await?;
            }
        }
        Ok(())
    }

    /// Records each change with its event (an instance that lost the race records nothing).
    async fn record(
        &self,
        changes: Vec<visitors::MarkChange>,
        wall: i64,
    ) -> Result<(), StoreError> {
        for c in changes {
            self.store
                .set_mark(
                    &c.key,
                    c.before.as_deref(),
                    c.after.as_deref(),
                    c.event.as_ref(),
                    wall,
                )
                .await?;
        }
        Ok(())
    }

    /// Claims and sends one message of `channel`; false when none was due.
    async fn deliver_one(
        &self,
        channel: &str,
        window_ms: i64,
        target: Target<'_>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now().timestamp_millis();
        let max_attempts = i32::try_from(self.config.max_attempts).unwrap_or(i32::MAX);
        let Some(batch) = self
            .store
            .claim_batch(
                channel,
                &self.instance,
                now,
                window_ms,
                now + millis(SEND_LEASE),
                max_attempts,
            )
            .await?
        else {
            return Ok(false);
        };
        let result = match target {
            Target::Team(c) => {
                let ctx = Context {
                    catalog: &self.catalog,
                    dashboard: self.dashboard.as_deref(),
                };
                let out = Outgoing {
                    id: &batch.id,
                    attempt: batch.attempts,
                    events: &batch.events,
                };
                channels::send(c, &self.base_dir, &self.http, &out, ctx).await
            }
            Target::Visitor(v) => match v.deliver(&self.store, &batch).await {
                Ok(()) => Ok(()),
                Err(visitors::Undelivered::Failed(why)) => Err(why),
                Err(visitors::Undelivered::Gone(reason)) => {
                    tracing::info!(channel = %channel, %reason, "notification dropped");
                    let done = Utc::now().timestamp_millis();
                    let end = BatchEnd::Dropped { reason };
                    self.store
                        .finish_batch(&batch.id, &self.instance, &end, done)
                        .await?;
                    return Ok(true);
                }
            },
        };
        // Visitor channels are named by ids, never by addresses: safe to log.
        let done = Utc::now().timestamp_millis();
        let end = match result {
            Ok(()) => {
                tracing::info!(
                    channel = %channel,
                    events = batch.events.len(),
                    attempt = batch.attempts,
                    "notification sent"
                );
                BatchEnd::Sent
            }
            Err(error) if batch.attempts >= max_attempts => {
                tracing::error!(
                    channel = %channel,
                    attempts = batch.attempts,
                    %error,
                    "notification failed: out of attempts"
                );
                BatchEnd::Failed { error }
            }
            Err(error) => {
                let wait = self.backoff(batch.attempts);
                tracing::warn!(
                    channel = %channel,
                    attempt = batch.attempts,
                    retry_in_ms = millis(wait),
                    %error,
                    "notification not delivered: will retry"
                );
                BatchEnd::Retry {
                    at_ms: done + millis(wait),
                    error,
                }
            }
        };
        if !self
            .store
            .finish_batch(&batch.id, &self.instance, &end, done)
            .await?
        {
            tracing::warn!(
                channel = %channel,
                "notification: the message was taken over by another instance while sending"
            );
        }
        Ok(true)
    }

    /// The wait before retry number `attempt` (1: the first retry): `retry_backoff`, doubled
    /// each time, at most an hour.
    pub fn backoff(&self, attempt: i32) -> Duration {
        let base = self.config.retry_backoff.to_std();
        let doublings = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
    }

    /// The events no stored result carries: controls whose newest successful result is older
    /// than their freshness (`stale`, once per result that went stale), exceptions expiring
    /// within `exception_warning` or expired (once per exception and date).
    pub fn sweep(&self, latest: &[LatestResult], now: DateTime<Utc>) -> Vec<NewEvent> {
        sweep(
            &self.catalog,
            latest,
            now,
            self.default_freshness,
            self.config.exception_warning.get(),
        )
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// See [`Notifier::sweep`].
pub fn sweep(
    catalog: &Catalog,
    latest: &[LatestResult],
    now: DateTime<Utc>,
    default_freshness: chrono::Duration,
    exception_warning: chrono::Duration,
) -> Vec<NewEvent> {
    let mut out = Vec::new();
    for r in latest {
        let Some(control) = catalog.get(&r.control_id) else {
            continue;
        };
        let Some(success) = r.last_success_at else {
            continue;
        };
        let freshness = control.freshness.unwrap_or(default_freshness);
        if now - success > freshness {
            let when = success.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            out.push(NewEvent {
                key: format!("stale:{}:{when}", control.id),
                event: Event {
                    control_id: Some(control.id.clone()),
                    status: Some(r.status),
                    detail: format!(
                        "its newest successful check ({when}) is older than its freshness \
                         ({}h); the trust page shows it as stale.",
                        freshness.num_hours()
                    ),
                    ..Event::new(EventKind::Stale, now)
                },
            });
        }
    }
    let today = now.date_naive();
    for control in catalog.controls() {
        for ex in &control.exceptions {
            let (kind, detail) = if ex.expires_on < today {
                (
                    EventKind::ExceptionExpired,
                    format!(
                        "exception `{}` expired on {}: what it waived counts as failing again.",
                        ex.id, ex.expires_on
                    ),
                )
            } else if ex.expires_on - today <= exception_warning {
                (
                    EventKind::ExceptionExpiring,
                    format!(
                        "exception `{}` expires on {} ({} days); renew it or fix what it waives.",
                        ex.id,
                        ex.expires_on,
                        (ex.expires_on - today).num_days()
                    ),
                )
            } else {
                continue;
            };
            out.push(NewEvent {
                key: format!(
                    "{}:{}:{}:{}",
                    kind.as_str(),
                    control.id,
                    ex.id,
                    ex.expires_on
                ),
                event: Event {
                    control_id: Some(control.id.clone()),
                    detail,
                    ..Event::new(kind, now)
                },
            });
        }
    }
    out
}

/// Policy documents whose next review falls due within `warning` (once per due date) or is
/// past (once more), read from the newest `documents.policies` evidence: what the last run
/// saw, so a document fixed since is not reported until a run has read it.
pub fn policy_reviews(
    evidence: &[crate::model::Evidence],
    now: DateTime<Utc>,
    warning: chrono::Duration,
) -> Vec<NewEvent> {
    let today = now.date_naive();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for e in evidence {
        let Some(documents) = e.content["documents"].as_array() else {
            continue;
        };
        for d in documents {
            let (Some(id), Some(due)) = (
                d["id"].as_str(),
                d["attributes"]["next_review_due"]
                    .as_str()
                    .and_then(|s| s.parse::<chrono::NaiveDate>().ok()),
            ) else {
                continue;
            };
            if !seen.insert(id.to_string()) {
                continue;
            }
            let title = d["attributes"]["title"].as_str().unwrap_or(id);
            let (stage, detail) = if due < today {
                (
                    "overdue",
                    format!("{title}: its review was due on {due} and is overdue."),
                )
            } else if due - today <= warning {
                (
                    "due",
                    format!(
                        "{title}: its review is due on {due} (in {} days).",
                        (due - today).num_days()
                    ),
                )
            } else {
                continue;
            };
            out.push(NewEvent {
                key: format!("policy_review_due:{id}:{due}:{stage}"),
                event: Event {
                    detail,
                    ..Event::new(EventKind::PolicyReviewDue, now)
                },
            });
        }
    }
    out
}

/// Sends a test message to `channel` now, outside the outbox (`trellis notify test`).
pub async fn send_test(
    config: &NotificationsConfig,
    channel: &str,
    base_dir: &std::path::Path,
    catalog: &Catalog,
    dashboard: Option<&str>,
) -> Result<(), String> {
    let Some(c) = config.channels.iter().find(|c| c.name == channel) else {
        let known: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "no channel named `{channel}` in notifications.channels (channels: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    let http = channels::http_client()?;
    let id = uuid::Uuid::now_v7().to_string();
    let events = [Event {
        detail: format!(
            "Test message from Trellis to channel `{}` ({}). If you can read this, \
             notifications reach it.",
            c.name,
            c.kind.as_str()
        ),
        ..Event::new(EventKind::Test, Utc::now())
    }];
    let out = Outgoing {
        id: &id,
        attempt: 1,
        events: &events,
    };
    channels::send(c, base_dir, &http, &out, Context { catalog, dashboard }).await
}
