//! Wiring: one [`Application::build`] shared by `trellis serve` and the tests.
//!
//! Builds the catalog, connects the store (running migrations), starts the scheduler (which
//! owns all probe runs) and the web server (which only reads the store).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, Catalog, Control};
use crate::config::Loaded;
use crate::model::Trigger;
use crate::probes::BoxFuture;
use crate::scheduler::{
    self, Begun, Clock, Executor, ScheduledControl, SchedulerHandle, SystemClock,
};
use crate::store::Store;
use crate::web::{self, WebState};

/// How to build the application.
#[derive(Clone)]
pub struct BuildOptions {
    /// Start the cron scheduler (tests that only read pages turn it off).
    pub scheduler: bool,
    /// The clock of runs, schedules and pages (tests fix it to the example data's day).
    pub clock: Arc<dyn Clock>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            scheduler: true,
            clock: Arc::new(SystemClock),
        }
    }
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    shutdown: CancellationToken,
    /// The scheduler's handle and task, and the queue workers' task.
    scheduler: Option<(
        SchedulerHandle,
        tokio::task::JoinHandle<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// On SQLite, the lock that makes this the only instance scheduling runs on the database,
    /// held while the application lives ([`lock_sqlite_scheduler`]).
    _scheduling: Option<std::fs::File>,
    /// The metrics listener, when `metrics.bind` is set.
    metrics: Option<web::metrics::MetricsServer>,
    /// The notifier's task (with the scheduler).
    notifier: Option<tokio::task::JoinHandle<()>>,
    /// The visitor counts' flusher (when counting is on).
    analytics: Option<tokio::task::JoinHandle<()>>,
    pub store: Store,
    pub catalog: Arc<Catalog>,
}

impl Application {
    /// Loads everything and binds `server.bind` (port 0 picks a free port).
    pub async fn build(loaded: Loaded, options: BuildOptions) -> anyhow::Result<Application> {
        let clock = options.clock.clone();
        let catalog = catalog::from_config(&loaded, clock.now().date_naive())
            .map_err(|d| anyhow::anyhow!("{d}"))?;
        let catalog = Arc::new(catalog);
        let default_schedule = loaded.config.default_schedule.clone();
        let default_freshness = loaded.config.default_freshness.get();
        let store = Store::connect(&loaded.config.database_url).await?;
        let (signer, _) = signing(&loaded)?;

        let shutdown = CancellationToken::new();
        let scheduling = if options.scheduler {
            lock_sqlite_scheduler(&loaded.config.database_url)?
        } else {
            None
        };
        let mut notifier = None;
        let scheduler = if options.scheduler {
            let controls = catalog
                .controls()
                .iter()
                .map(|c| ScheduledControl {
                    id: c.id.clone(),
                    schedule: c
                        .schedule
                        .clone()
                        .unwrap_or_else(|| default_schedule.clone()),
                    freshness: c.freshness.unwrap_or(default_freshness),
                })
                .collect();
            let instance = crate::queue::instance_name();
            let instance_for_notify = instance.clone();
            let wake = Arc::new(tokio::sync::Notify::new());
            let closed = Arc::new(tokio::sync::Notify::new());
            let executor = Arc::new(QueueExecutor {
                signer: signer.clone(),
                catalog: catalog.clone(),
                store: store.clone(),
                clock: clock.clone(),
                instance: instance.clone(),
                wake: Arc::clone(&wake),
                closed: Arc::clone(&closed),
                shutdown: shutdown.clone(),
            });
            let workers = Arc::new(crate::queue::Workers {
                store: store.clone(),
                catalog: catalog.clone(),
                loaded: Arc::new(loaded.clone()),
                clock: clock.clone(),
                signer: signer.clone(),
                instance,
                config: crate::queue::QueueConfig::from_loaded(&loaded),
                wake,
                closed,
                permits: Arc::new(tokio::sync::Semaphore::new(
                    loaded.config.limits.concurrency.max(1),
                )),
            });
            let workers = workers.spawn(shutdown.clone());
            let (handle, join) =
                scheduler::spawn(controls, executor, clock.clone(), shutdown.clone());
            notifier = Some(
                Arc::new(notifier_of(
                    &loaded,
                    &store,
                    &catalog,
                    &clock,
                    instance_for_notify,
                )?)
                .spawn(shutdown.clone()),
            );
            Some((handle, join, workers))
        } else {
            None
        };

        let documents = documents(&loaded)?;
        let state = WebState::new(
            store.clone(),
            site_inputs(&loaded, catalog.clone())?,
            documents,
            clock,
            &loaded.config.server.trusted_proxies,
        )
        .with_dashboard(
            loaded.config.dashboard.clone(),
            secure_cookies(&loaded),
            scheduler.as_ref().map(|(h, _, _)| h.clone()),
        )
        .with_signer(signer.clone())
        .with_oidc(oidc(&loaded)?)
        .with_visitors(visitors(&loaded)?);
        let counting = &loaded.config.trust_page.analytics;
        let mut analytics_task = None;
        let state = if counting.enabled {
            let analytics = Arc::new(
                crate::web::analytics::Analytics::start(
                    store.clone(),
                    options.clock.clone(),
                    counting.retention.get(),
                    &loaded.config.server.trusted_proxies,
                )
                .await?,
            );
            analytics_task = Some(analytics.clone().spawn(shutdown.clone()));
            state.with_analytics(Some(analytics))
        } else {
            state
        };
        tokio::spawn(state.site.clone().poll_store(
            loaded.config.server.refresh_interval.to_std(),
            shutdown.clone(),
        ));
        let state = actix_web::web::Data::new(state);
        let server_config = loaded.config.server.clone();
        let listener = TcpListener::bind(&loaded.config.server.bind)
            .with_context(|| format!("cannot listen on {}", loaded.config.server.bind))?;
        let port = listener.local_addr()?.port();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .wrap(web::security_headers(&server_config))
                .app_data(state.clone())
                .configure(web::configure)
        })
        .listen(listener)?
        .run();
        let metrics = metrics_server(&loaded, &store, &catalog, options.clock.clone())?;
        tracing::info!(port, controls = catalog.len(), "trellis is serving");
        Ok(Application {
            port,
            server,
            shutdown,
            scheduler,
            _scheduling: scheduling,
            metrics,
            notifier,
            analytics: analytics_task,
            store,
            catalog,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when `metrics.bind` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|m| m.port)
    }

    /// The handle that asks the scheduler for runs ("run now").
    pub fn scheduler(&self) -> Option<SchedulerHandle> {
        self.scheduler.as_ref().map(|(h, _, _)| h.clone())
    }

    /// Serves until the server stops (SIGINT/SIGTERM), then stops gracefully: the scheduler
    /// queues nothing more, the workers claim nothing more, and a unit in progress has the
    /// queue's grace to finish before it is released to another instance.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        tracing::info!("stopping: no new work is claimed");
        if let Some(metrics) = &self.metrics {
            metrics.stop().await;
        }
        self.shutdown.cancel();
        if let Some((_, scheduler, workers)) = self.scheduler {
            if let Err(e) = scheduler.await {
                tracing::error!(error = %e, "scheduler task failed");
            }
            if let Err(e) = workers.await {
                tracing::error!(error = %e, "queue workers task failed");
            }
        }
        if let Some(notifier) = self.notifier
            && let Err(e) = notifier.await
        {
            tracing::error!(error = %e, "notifier task failed");
        }
        if let Some(analytics) = self.analytics
            && let Err(e) = analytics.await
        {
            tracing::error!(error = %e, "visitor counts task failed");
        }
        result.context("web server failed")
    }
}

/// The notifier of this instance (see [`crate::notify::sender`]).
pub fn notifier_of(
    loaded: &Loaded,
    store: &Store,
    catalog: &Arc<Catalog>,
    clock: &Arc<dyn Clock>,
    instance: String,
) -> anyhow::Result<crate::notify::sender::Notifier> {
    Ok(crate::notify::sender::Notifier {
        store: store.clone(),
        catalog: catalog.clone(),
        config: loaded.config.notifications.clone(),
        base_dir: loaded.base_dir.clone(),
        dashboard: dashboard_url(loaded),
        instance,
        clock: clock.clone(),
        default_freshness: loaded.config.default_freshness.get(),
        poll: loaded
            .config
            .limits
            .queue_poll
            .to_std()
            .min(std::time::Duration::from_secs(2)),
        http: crate::notify::channels::http_client().map_err(|e| anyhow::anyhow!(e))?,
        visitors: visitors(loaded)?,
        display: loaded.config.trust_page.failing_display,
        registers_dir: loaded
            .config
            .sources
            .registers
            .as_ref()
            .map(|r| loaded.resolve(&r.path)),
    })
}

/// Mail to the trust page's visitors, when `notifications.visitors` is set (the config's
/// checks make sure `trust_page.base_url` is then set too). Signs its links with the
/// documents' link key.
pub fn visitors(loaded: &Loaded) -> anyhow::Result<Option<Arc<crate::notify::visitors::Visitors>>> {
    let Some(config) = &loaded.config.notifications.visitors else {
        return Ok(None);
    };
    let trust = &loaded.config.trust_page;
    let base_url = trust
        .base_url
        .clone()
        .context("notifications.visitors needs trust_page.base_url: emails carry absolute links")?;
    let key_file = loaded.resolve(&trust.documents.link_key_file);
    Ok(Some(Arc::new(crate::notify::visitors::Visitors {
        config: config.clone(),
        base_url,
        company: trust.company.clone(),
        signer: crate::access::LinkSigner::load_or_create(&key_file)?,
        base_dir: loaded.base_dir.clone(),
        documents: trust
            .documents
            .items
            .iter()
            .map(|d| (d.id.clone(), d.title.clone()))
            .collect(),
    })))
}

/// Where messages link to: `notifications.dashboard_url`, else `trust_page.base_url`.
pub fn dashboard_url(loaded: &Loaded) -> Option<String> {
    loaded
        .config
        .notifications
        .dashboard_url
        .as_ref()
        .or(loaded.config.trust_page.base_url.as_ref())
        .map(|u| u.as_str().to_string())
}

/// The metrics listener on `metrics.bind` (none when unset): `/metrics` read from `store`
/// and the process's own metrics, `/healthz`, `/readyz`.
fn metrics_server(
    loaded: &Loaded,
    store: &Store,
    catalog: &Catalog,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<web::metrics::MetricsServer>> {
    let Some(bind) = &loaded.config.metrics.bind else {
        return Ok(None);
    };
    let controls = catalog.controls().iter().map(|c| c.id.clone()).collect();
    let source = crate::metrics::ScrapeSource::new(store.clone(), controls, clock);
    web::metrics::MetricsServer::start(bind, source).map(Some)
}

/// Single sign-on's identity provider, when configured: its client secret must be readable.
pub fn oidc(loaded: &Loaded) -> anyhow::Result<Option<crate::oidc::Oidc>> {
    loaded
        .config
        .dashboard
        .oidc
        .as_ref()
        .map(|c| crate::oidc::Oidc::from_config(c, &loaded.base_dir).map_err(anyhow::Error::msg))
        .transpose()
}

/// Whether session cookies are `Secure`: as configured, else when the public address is https.
pub fn secure_cookies(loaded: &Loaded) -> bool {
    loaded.config.dashboard.secure_cookies.unwrap_or_else(|| {
        loaded
            .config
            .trust_page
            .base_url
            .as_ref()
            .is_some_and(|b| b.as_str().starts_with("https://"))
    })
}

/// What the public site is made of: the catalog, the trust page's configuration, its
/// narrative (sections, and subprocessors from the vendors register) and the templates.
pub fn site_inputs(loaded: &Loaded, catalog: Arc<Catalog>) -> anyhow::Result<web::SiteInputs> {
    // A broken register must not take the trust page down: the register's own controls
    // report it (as errors), and the page goes without a subprocessor list until fixed.
    let registers = loaded.config.sources.registers.as_ref().and_then(|source| {
        crate::registers::load(&loaded.resolve(&source.path))
            .inspect_err(|problems| {
                for p in problems {
                    tracing::error!("registers: {p}; the trust page omits subprocessors");
                }
            })
            .inspect(|r| {
                if let Err(why) = r.require("vendors") {
                    tracing::error!("{why}; the trust page omits subprocessors");
                }
            })
            .ok()
    });
    let trust = &loaded.config.trust_page;
    let index = crate::diag::YamlIndex::new(&loaded.text());
    let located = |problems: Vec<(String, String)>| {
        let list: Vec<String> = problems
            .iter()
            .map(|(path, message)| index.at(&loaded.source, path, message).to_string())
            .collect();
        anyhow::anyhow!("{}", list.join("\n"))
    };
    let citations = web::faq_citation_problems(trust, &catalog);
    if !citations.is_empty() {
        return Err(located(citations));
    }
    let brand =
        web::chrome::BrandAssets::load(&trust.brand, |p| loaded.resolve(p)).map_err(located)?;
    let mut narrative = web::Narrative::build(trust, registers.as_ref());
    let (signer, _) = signing(loaded)?;
    let key = signer.public_key();
    if loaded.config.notifications.visitors.is_some() {
        narrative.subscribe_url = trust.base_url.as_ref().map(|b| b.join("/subscribe"));
    }
    narrative.signing_key = Some(web::SigningKeyView {
        algorithm: "ed25519",
        public_key: key.to_text(),
        fingerprint: key.fingerprint(),
    });
    Ok(web::SiteInputs {
        catalog,
        trust: trust.clone(),
        narrative: Arc::new(narrative),
        default_freshness: loaded.config.default_freshness.get(),
        default_schedule: loaded.config.default_schedule.clone(),
        templates: Arc::new(web::templates()?),
        brand: Arc::new(brand),
    })
}

/// The gated documents, with the key signing their links (created at first use); `None`
/// when no document is configured.
pub fn documents(loaded: &Loaded) -> anyhow::Result<Option<web::Documents>> {
    let trust = &loaded.config.trust_page;
    if trust.documents.items.is_empty() {
        return Ok(None);
    }
    let key_file = loaded.resolve(&trust.documents.link_key_file);
    Ok(Some(web::Documents::new(
        trust.documents.clone(),
        crate::access::LinkSigner::load_or_create(&key_file)?,
        loaded.base_dir.clone(),
        trust.company.clone(),
        trust.base_url.clone(),
    )))
}

/// The key signing run manifests (created at first use), and every public key signatures
/// are accepted from (it and the configured former ones).
pub fn signing(
    loaded: &Loaded,
) -> anyhow::Result<(crate::integrity::Signer, Vec<crate::integrity::PublicKey>)> {
    let signer =
        crate::integrity::Signer::load_or_create(&loaded.resolve(&loaded.config.signing.key_file))?;
    let mut keys = vec![signer.public_key()];
    for text in &loaded.config.signing.previous_public_keys {
        keys.push(
            crate::integrity::PublicKey::parse(text)
                .map_err(|e| anyhow::anyhow!("signing.previous_public_keys: {e}"))?,
        );
    }
    Ok((signer, keys))
}

/// The public keys `trellis verify` accepts signatures from: the key file's, read but never
/// created (a new key would verify nothing), and the configured former ones. `false` when the
/// key file does not exist.
pub fn verifying_keys(loaded: &Loaded) -> anyhow::Result<(bool, Vec<crate::integrity::PublicKey>)> {
    let current = crate::integrity::Signer::load(&loaded.resolve(&loaded.config.signing.key_file))?;
    let found = current.is_some();
    let mut keys: Vec<_> = current.iter().map(|s| s.public_key()).collect();
    for text in &loaded.config.signing.previous_public_keys {
        keys.push(
            crate::integrity::PublicKey::parse(text)
                .map_err(|e| anyhow::anyhow!("signing.previous_public_keys: {e}"))?,
        );
    }
    Ok((found, keys))
}

/// SQLite serves one instance: a second `serve` on the same database file would schedule
/// every run again. The scheduling instance holds an exclusive lock on `<database>.scheduler.lock`
/// (released by the OS when the process ends, however it ends); another that cannot take it
/// refuses to start, naming the database. `None` for PostgreSQL and in-memory databases.
fn lock_sqlite_scheduler(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(db) = crate::store::sqlite_file(url) else {
        return Ok(None);
    };
    let mut name = db.clone().into_os_string();
    name.push(".scheduler.lock");
    let path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the scheduler's lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "another `trellis serve` is already scheduling runs on the SQLite database {} (it \
             holds {}); SQLite serves one instance: stop the other, or use PostgreSQL \
             (`database_url: postgres://…`) to run several",
            db.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// `trellis serve`.
pub async fn serve(loaded: Loaded) -> anyhow::Result<()> {
    Application::build(loaded, BuildOptions::default())
        .await?
        .run_until_stopped()
        .await
}

/// Runs controls for the scheduler through the run queue: queues the run (claiming each
/// control's slot, so several instances on one database run a slot once), wakes this
/// instance's workers, and waits until some instance's workers closed it.
struct QueueExecutor {
    signer: crate::integrity::Signer,
    catalog: Arc<Catalog>,
    store: Store,
    clock: Arc<dyn Clock>,
    instance: String,
    wake: Arc<tokio::sync::Notify>,
    /// Notified when this instance's workers close a run.
    closed: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
}

/// How often a waiting scheduler task looks whether its run closed (another instance may
/// close it; this instance's workers say so at once).
const CLOSE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

impl Executor for QueueExecutor {
    fn run(
        &self,
        controls: Vec<String>,
        trigger: Trigger,
        slots: HashMap<String, String>,
        begun: Begun,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let controls: Vec<String> = if controls.is_empty() {
                self.catalog
                    .controls()
                    .iter()
                    .map(|c| c.id.clone())
                    .collect()
            } else {
                controls
            };
            let catalog = Arc::clone(&self.catalog);
            let units = move |ids: &[String]| {
                let selected: Vec<&Control> = ids.iter().filter_map(|id| catalog.get(id)).collect();
                crate::queue::units_of(&selected)
            };
            let now = self.clock.now();
            let enqueued = self
                .store
                .enqueue_run(trigger, &controls, &slots, &self.instance, now, &units)
                .await?;
            if !enqueued.slot_taken.is_empty() {
                tracing::info!(controls = ?enqueued.slot_taken, "slot claimed by another instance: not run here");
            }
            if !enqueued.in_flight.is_empty() {
                tracing::warn!(controls = ?enqueued.in_flight, trigger = trigger.as_str(), "controls are running (on this or another instance); not starting them again");
            }
            let mut elsewhere = enqueued.in_flight;
            elsewhere.extend(enqueued.slot_taken);
            begun.report_began(crate::scheduler::Began {
                run_id: enqueued.run_id.clone(),
                elsewhere,
            });
            let Some(id) = enqueued.run_id else {
                return Ok(());
            };
            self.wake.notify_waiters();
            // Wait for the run to close, so this instance's scheduler does not start its
            // controls again meanwhile (other instances see them in `run_controls`).
            loop {
                let closed = self.closed.notified();
                tokio::pin!(closed);
                closed.as_mut().enable();
                match self.store.run(&id).await {
                    Ok(Some(run)) if run.state != crate::model::RunState::Running => break,
                    Ok(None) => break,
                    Ok(Some(_)) => {}
                    Err(e) => tracing::warn!(run = %id, error = %e, "cannot read the run's state"),
                }
                tokio::select! {
                    () = self.shutdown.cancelled() => return Ok(()),
                    () = &mut closed => {}
                    () = tokio::time::sleep(CLOSE_POLL) => {}
                }
            }
            Ok(())
        })
    }

    fn last_success(&self) -> BoxFuture<'_, anyhow::Result<HashMap<String, DateTime<Utc>>>> {
        Box::pin(async move {
            Ok(self
                .store
                .latest_results()
                .await?
                .into_iter()
                .filter_map(|r| r.last_success_at.map(|t| (r.control_id, t)))
                .collect())
        })
    }

    fn mark_interrupted(&self) -> BoxFuture<'_, anyhow::Result<u64>> {
        Box::pin(async move {
            Ok(self
                .store
                .mark_interrupted_runs(self.clock.now(), &self.signer)
                .await?)
        })
    }
}
