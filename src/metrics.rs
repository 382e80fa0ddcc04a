//! Prometheus metrics, served at `/metrics` on the metrics listener (`metrics.bind`; see
//! `web::metrics`), never on the public one.
//!
//! Two kinds:
//!
//! - **Recorded in the process**, as things happen, into [`global`] (one registry per process,
//!   reached without the web layer): collection and run durations (histograms), probe errors by
//!   source and cause, and API requests and throttles per source. The runner calls
//!   [`collection_finished`] and [`run_finished`]; the sources' HTTP clients call
//!   [`api_request`] and [`api_throttled`] where each request leaves (GitHub's `call`, the AWS
//!   SDK's interceptor, the HTTP probes' requests).
//! - **Read from the store at scrape time** by [`ScrapeSource::render`]: runs by state (from
//!   the runs table, so every instance's), controls by status of their newest result, and the
//!   seconds since each control's newest successful evaluation. Gauges from other tables (leases
//!   held, queue depth) belong in [`ScrapeSource::store_gauges`].
//!
//! The exposition is OpenMetrics text (`application/openmetrics-text; version=1.0.0`), which
//! Prometheus scrapes natively; names start with `trellis_`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::probes::ProbeError;
use crate::scheduler::Clock;
use crate::store::Store;

/// The content type of [`ScrapeSource::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prefix of every metric name.
const PREFIX: &str = "trellis";

/// Upper bounds of the collection duration buckets, in seconds (a local file takes
/// milliseconds, a large AWS or GitHub estate minutes).
const COLLECTION_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Upper bounds of the run duration buckets, in seconds.
const RUN_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectionLabels {
    source: String,
    probe: String,
    /// `ok` or `error`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    /// `completed` or `failed` (the run ended with an error).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    source: String,
    /// [`ProbeError::cause`].
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics recorded in the process (see the module documentation).
pub struct Metrics {
    registry: Registry,
    collection_seconds: Histograms<CollectionLabels>,
    run_seconds: Histograms<RunLabels>,
    probe_errors: Family<ErrorLabels, Counter>,
    api_requests: Family<SourceLabels, Counter>,
    api_throttles: Family<SourceLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn collection_histogram() -> Histogram {
    Histogram::new(COLLECTION_BUCKETS)
}

fn run_histogram() -> Histogram {
    Histogram::new(RUN_BUCKETS)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let collection_seconds: Histograms<CollectionLabels> =
            Family::new_with_constructor(collection_histogram);
        let run_seconds: Histograms<RunLabels> = Family::new_with_constructor(run_histogram);
        let probe_errors = Family::<ErrorLabels, Counter>::default();
        let api_requests = Family::<SourceLabels, Counter>::default();
        let api_throttles = Family::<SourceLabels, Counter>::default();
        registry.register(
            "collection_duration_seconds",
            "How long each collection (a probe with its parameters) took, by source, probe and outcome",
            collection_seconds.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "How long each run of this process took, by outcome",
            run_seconds.clone(),
        );
        registry.register(
            "probe_errors",
            "Collections that failed, by source and cause (auth, throttled, timeout, bad_body, unavailable, io, not_configured, not_available)",
            probe_errors.clone(),
        );
        registry.register(
            "api_requests",
            "Requests sent to a source's API (each attempt, retries included), by source",
            api_requests.clone(),
        );
        registry.register(
            "api_throttles",
            "Answers of a source's API saying to slow down (rate limits, throttling), by source",
            api_throttles.clone(),
        );
        Metrics {
            registry,
            collection_seconds,
            run_seconds,
            probe_errors,
            api_requests,
            api_throttles,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

/// A collection of `probe` (reading `source`) ended after `elapsed`, failing with `error` if
/// it failed.
pub fn collection_finished(
    probe: &str,
    source: &str,
    elapsed: Duration,
    error: Option<&ProbeError>,
) {
    let m = global();
    m.collection_seconds
        .get_or_create(&CollectionLabels {
            source: source.to_string(),
            probe: probe.to_string(),
            outcome: if error.is_some() { "error" } else { "ok" },
        })
        .observe(elapsed.as_secs_f64());
    if let Some(error) = error {
        m.probe_errors
            .get_or_create(&ErrorLabels {
                source: source.to_string(),
                cause: error.cause(),
            })
            .inc();
    }
}

/// A run of this process ended after `elapsed`; `completed`: without an error.
pub fn run_finished(elapsed: Duration, completed: bool) {
    run_closed(elapsed, if completed { "completed" } else { "failed" });
}

/// A queued run was closed by this process in `state` (`completed`, `interrupted`,
/// `cancelled`), `elapsed` after it started.
pub fn run_closed(elapsed: Duration, outcome: &'static str) {
    global()
        .run_seconds
        .get_or_create(&RunLabels { outcome })
        .observe(elapsed.as_secs_f64());
}

/// A request to `source`'s API is leaving (each attempt counts).
pub fn api_request(source: &'static str) {
    global()
        .api_requests
        .get_or_create(&SourceLabels { source })
        .inc();
}

/// `source`'s API said to slow down (a rate limit, throttling).
pub fn api_throttled(source: &'static str) {
    global()
        .api_throttles
        .get_or_create(&SourceLabels { source })
        .inc();
}

/// The requests and throttles this process counted for `source` so far (what
/// `trellis_api_requests_total` and `trellis_api_throttles_total` say).
pub fn api_counts(source: &'static str) -> (u64, u64) {
    let m = global();
    let labels = SourceLabels { source };
    (
        m.api_requests.get_or_create(&labels).get(),
        m.api_throttles.get_or_create(&labels).get(),
    )
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControlLabels {
    control: String,
}

/// Status label of a control without a stored result.
pub const NOT_RUN: &str = "not_run";

/// What `/metrics` reads at scrape time: the store, the catalog's control ids and the clock.
#[derive(Clone)]
pub struct ScrapeSource {
    store: Store,
    controls: Arc<[String]>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ScrapeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeSource")
            .field("controls", &self.controls.len())
            .finish_non_exhaustive()
    }
}

impl ScrapeSource {
    pub fn new(store: Store, controls: Vec<String>, clock: Arc<dyn Clock>) -> ScrapeSource {
        ScrapeSource {
            store,
            controls: controls.into(),
            clock,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The whole exposition: the process's metrics, then those read from the store now. A
    /// store that cannot be read leaves its metrics out and sets `trellis_database_up` to 0
    /// (the error is logged, without the database's URL).
    pub async fn render(&self) -> Result<String, std::fmt::Error> {
        let mut scraped = Registry::with_prefix(PREFIX);
        let up = Gauge::<i64>::default();
        scraped.register(
            "database_up",
            "Whether the last scrape could read the database (1) or not (0)",
            up.clone(),
        );
        match self.store_gauges(&mut scraped).await {
            Ok(()) => {
                up.set(1);
            }
            Err(error) => {
                tracing::warn!(%error, "metrics: cannot read the store");
                up.set(0);
            }
        }
        let mut out = String::new();
        text::encode_registry(&mut out, &global().registry)?;
        text::encode_registry(&mut out, &scraped)?;
        text::encode_eof(&mut out)?;
        Ok(out)
    }

    /// The gauges read from the store, registered into `registry` (which prefixes their names
    /// with `trellis_`). More store-derived gauges (leases held, queue depth) go here.
    async fn store_gauges(&self, registry: &mut Registry) -> Result<(), crate::store::StoreError> {
        let runs = Family::<StateLabels, Gauge>::default();
        for (state, n) in self.store.runs_by_state().await? {
            runs.get_or_create(&StateLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        // Read before registering anything else: a failure leaves every store metric out.
        let latest = self.store.latest_results().await?;
        registry.register(
            "runs",
            "Runs stored in the database (by every instance), by state",
            runs,
        );

        let by_id: std::collections::HashMap<&str, &crate::model::LatestResult> =
            latest.iter().map(|r| (r.control_id.as_str(), r)).collect();
        let controls = Family::<StatusLabels, Gauge>::default();
        let age = Family::<ControlLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let now = self.clock.now();
        for id in self.controls.iter() {
            let result = by_id.get(id.as_str());
            let status = result.map_or(NOT_RUN, |r| r.status.as_str());
            controls.get_or_create(&StatusLabels { status }).inc();
            if let Some(at) = result.and_then(|r| r.last_success_at) {
                let seconds = (now - at).num_milliseconds() as f64 / 1000.0;
                age.get_or_create(&ControlLabels {
                    control: id.clone(),
                })
                .set(seconds.max(0.0));
            }
        }
        registry.register(
            "controls",
            "Controls of the catalog by the status of their newest result (not_run: none stored)",
            controls,
        );
        registry.register(
            "control_last_success_age_seconds",
            "Seconds since each control's newest evaluation that was not an error",
            age,
        );
        // The run queue, as every instance shares it (wall clock: leases are real time).
        let queue = self.store.queue_stats(chrono::Utc::now()).await?;
        let depth = Gauge::<i64>::default();
        depth.set(i64::try_from(queue.queued).unwrap_or(i64::MAX));
        registry.register(
            "queue_depth",
            "Units of queued runs waiting for an instance to claim them",
            depth,
        );
        let held = Gauge::<i64>::default();
        held.set(i64::try_from(queue.leases_held).unwrap_or(i64::MAX));
        registry.register(
            "leases_held",
            "Units of runs under a live lease (being worked on by some instance)",
            held,
        );
        // The notification outbox: alert on `failed` (messages nobody received).
        let outbox = self.store.notify_overview().await?;
        let deliveries = Family::<StateLabels, Gauge>::default();
        for (state, n) in [
            ("pending", outbox.pending),
            ("sending", outbox.sending),
            ("sent", outbox.sent),
            ("failed", outbox.failed),
        ] {
            deliveries
                .get_or_create(&StateLabels {
                    state: state.to_string(),
                })
                .set(n);
        }
        registry.register(
            "notifications",
            "Notification deliveries in the outbox (every instance's), by state; failed: out of attempts",
            deliveries,
        );
        Ok(())
    }
}
