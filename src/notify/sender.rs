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
use super::{Event, EventKind, NewEvent, channels_for};
use crate::catalog::Catalog;
use crate::model::LatestResult;
use crate::scheduler::Clock;
use crate::store::{BatchEnd, Store, StoreError};

/// How long an instance holds a message it is sending: longer than any channel's timeouts,
/// so a lease only expires when its instance died.
const SEND_LEASE: Duration = Duration::from_secs(300);
/// How often the sweeps run.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
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
}

impl Notifier {
    /// Runs until `shutdown`; a message being sent is finished first.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last_sweep: Option<tokio::time::Instant> = None;
            loop {
                let sweep = last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY);
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
        if sweep {
            let latest = self.store.latest_results().await?;
            let found = self.sweep(&latest, self.clock.now());
            let added = self.store.add_events(&found, wall).await?;
            if added > 0 {
                tracing::info!(added, "notifications: events found by the sweep");
            }
        }
        let catalog = &self.catalog;
        let rules = &self.config.rules;
        self.store
            .route_events(wall, &|e: &Event| {
                let control = e.control_id.as_deref().and_then(|id| catalog.get(id));
                channels_for(e, control, rules)
            })
            .await?;
        for channel in &self.config.channels {
            for _ in 0..BATCHES_PER_TICK {
                if shutdown.is_cancelled() || !self.deliver_one(channel).await? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Claims and sends one message of `channel`; false when none was due.
    async fn deliver_one(&self, channel: &ChannelConfig) -> Result<bool, StoreError> {
        let now = Utc::now().timestamp_millis();
        let max_attempts = i32::try_from(self.config.max_attempts).unwrap_or(i32::MAX);
        let Some(batch) = self
            .store
            .claim_batch(
                &channel.name,
                &self.instance,
                now,
                self.config.digest_window.get().num_milliseconds(),
                now + millis(SEND_LEASE),
                max_attempts,
            )
            .await?
        else {
            return Ok(false);
        };
        let ctx = Context {
            catalog: &self.catalog,
            dashboard: self.dashboard.as_deref(),
        };
        let out = Outgoing {
            id: &batch.id,
            attempt: batch.attempts,
            events: &batch.events,
        };
        let result = channels::send(channel, &self.base_dir, &self.http, &out, ctx).await;
        let done = Utc::now().timestamp_millis();
        let end = match result {
            Ok(()) => {
                tracing::info!(
                    channel = %channel.name,
                    events = batch.events.len(),
                    attempt = batch.attempts,
                    "notification sent"
                );
                BatchEnd::Sent
            }
            Err(error) if batch.attempts >= max_attempts => {
                tracing::error!(
                    channel = %channel.name,
                    attempts = batch.attempts,
                    %error,
                    "notification failed: out of attempts"
                );
                BatchEnd::Failed { error }
            }
            Err(error) => {
                let wait = self.backoff(batch.attempts);
                tracing::warn!(
                    channel = %channel.name,
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
                channel = %channel.name,
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
                    kind: EventKind::Stale,
                    control_id: Some(control.id.clone()),
                    status: Some(r.status),
                    count: 0,
                    open_total: None,
                    fingerprints: Vec::new(),
                    run_id: None,
                    detail: format!(
                        "its newest successful check ({when}) is older than its freshness \
                         ({}h); the trust page shows it as stale.",
                        freshness.num_hours()
                    ),
                    at: now,
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
                    kind,
                    control_id: Some(control.id.clone()),
                    status: None,
                    count: 0,
                    open_total: None,
                    fingerprints: Vec::new(),
                    run_id: None,
                    detail,
                    at: now,
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
        kind: EventKind::Test,
        control_id: None,
        status: None,
        count: 0,
        open_total: None,
        fingerprints: Vec::new(),
        run_id: None,
        detail: format!(
            "Test message from Trellis to channel `{}` ({}). If you can read this, \
             notifications reach it.",
            c.name,
            c.kind.as_str()
        ),
        at: Utc::now(),
    }];
    let out = Outgoing {
        id: &id,
        attempt: 1,
        events: &events,
    };
    channels::send(c, base_dir, &http, &out, Context { catalog, dashboard }).await
}
