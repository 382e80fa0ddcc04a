//! What visitors do on the public site, counted without cookies, without a third party and
//! without keeping who they are (`trust_page.analytics`).
//!
//! Requests are counted in memory and flushed to the store every few seconds (a page view
//! costs a lock and a hash, not a database write). A unique visitor is estimated per UTC day
//! by a truncated SHA-256 of the day's salt, the client address and the user agent: the
//! address and user agent are hashed on the request and dropped, never written. The salt is
//! random per day, shared by instances through the store, and deleted with the day's hashes
//! when the day is over; what remains is a count. Bots, by user agent, are counted apart.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_web::HttpRequest;
use chrono::{Duration, NaiveDate};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::scheduler::Clock;
use crate::store::{Store, StoreError, VisitCount};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    PageView,
    JsonFetch,
    FeedFetch,
    Subscription,
    DocumentRequest,
    DocumentDownload,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::PageView,
        Metric::JsonFetch,
        Metric::FeedFetch,
        Metric::Subscription,
        Metric::DocumentRequest,
        Metric::DocumentDownload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::PageView => "page_view",
            Metric::JsonFetch => "json_fetch",
            Metric::FeedFetch => "feed_fetch",
            Metric::Subscription => "subscription",
            Metric::DocumentRequest => "document_request",
            Metric::DocumentDownload => "document_download",
        }
    }
}

/// The metric of the estimated unique visitors (page views only).
pub const VISITORS: &str = "visitors";

/// Shards of the pending counts (more than the workers of a typical machine).
const SHARDS: usize = 8;
/// The shard the next new thread counts into.
static NEXT_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A counter's lock (a panic while counting loses nothing worth refusing to count on).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How often counts are written.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// How often finished days are closed and old counts deleted.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// Visitors one instance counts in a day, at most (spread over its shards): past this (someone
/// rotating user agents) the day's visitor estimate stops growing, and so does the memory and
/// the table holding it.
const VISITORS_LIMIT: usize = 100_000;

/// Fragments of user agents that are not people (lowercase). An empty user agent is a bot.
const BOT_MARKERS: [&str; 32] = [
    "bot",
    "crawl",
    "spider",
    "slurp",
    "scrape",
    "archiver",
    "curl/",
    "wget/",
    "httpie",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "node-fetch",
    "axios",
    "undici",
    "headless",
    "phantomjs",
    "lighthouse",
    "pingdom",
    "uptime",
    "monitor",
    "facebookexternalhit",
    "embedly",
    "preview",
    "feedfetcher",
    "postman",
    "apache-httpclient",
];

/// [`BOT_MARKERS`], searched for at once, whatever the case.
static BOTS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(BOT_MARKERS)
        // A constant list of short literals: building it cannot fail.
        .expect("the bot markers are valid patterns")
});

/// Whether a user agent is a program rather than a person's browser.
pub fn is_bot(user_agent: &str) -> bool {
    let ua = user_agent.trim();
    ua.is_empty() || BOTS.is_match(ua)
}

#[derive(Default)]
struct Pending {
    counts: HashMap<(NaiveDate, Metric, String, bool), u64>,
    hashes: Vec<(NaiveDate, [u8; 16])>,
    /// Hashes of the current days already recorded (by this instance).
    seen: HashSet<(NaiveDate, [u8; 16])>,
    /// Days whose visitors reached [`VISITORS_LIMIT`] (said once in the log).
    full: HashSet<NaiveDate>,
}

/// The counter of one instance.
pub struct Analytics {
    store: Store,
    clock: Arc<dyn Clock>,
    retention: Duration,
    /// Today's and tomorrow's salts, read without a lock.
    salts: arc_swap::ArcSwap<HashMap<NaiveDate, [u8; 32]>>,
    /// What was counted since the last flush, in shards: each worker thread counts into its
    /// own, so two workers never wait for each other (a shared lock cost a third of a gzip
    /// page's CPU time under load; BENCHMARKS.md).
    pending: [Mutex<Pending>; SHARDS],
    trusted_proxies: Arc<[IpAddr]>,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics").finish_non_exhaustive()
    }
}

impl Analytics {
    /// A counter with today's and tomorrow's salts loaded.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        retention: Duration,
        trusted_proxies: &[IpAddr],
    ) -> Result<Analytics, StoreError> {
        let analytics = Analytics {
            store,
            clock,
            retention,
            salts: arc_swap::ArcSwap::from_pointee(HashMap::new()),
            pending: std::array::from_fn(|_| Mutex::new(Pending::default())),
            trusted_proxies: trusted_proxies.into(),
        };
        analytics.load_salts().await?;
        Ok(analytics)
    }

    async fn load_salts(&self) -> Result<(), StoreError> {
        let today = self.clock.now().date_naive();
        let mut salts: HashMap<NaiveDate, [u8; 32]> = (**self.salts.load()).clone();
        salts.retain(|d, _| *d >= today);
        for day in [today, today + Duration::days(1)] {
            if !salts.contains_key(&day)
                && let Some(salt) = self.store.visitor_salt(day).await?
            {
                salts.insert(day, salt);
            }
        }
        self.salts.store(Arc::new(salts));
        Ok(())
    }

    /// This thread's shard.
    fn shard(&self) -> std::sync::MutexGuard<'_, Pending> {
        thread_local! {
            static SHARD: usize = NEXT_SHARD.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS;
        }
        lock(&self.pending[SHARD.with(|s| *s)])
    }

    /// Counts a request for the page, the JSON or the feed; a page view by a person also
    /// counts its visitor's hash.
    pub fn request(&self, req: &HttpRequest, metric: Metric) {
        self.event(req, metric, "");
    }

    /// Counts something a visitor did (`subject`: the document, or empty).
    pub fn event(&self, req: &HttpRequest, metric: Metric, subject: &str) {
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let bot = is_bot(user_agent);
        let day = self.clock.now().date_naive();
        let hash = (metric == Metric::PageView && !bot)
            .then(|| {
                let ip = super::client_ip(req, &self.trusted_proxies)?;
                let salt = *self.salts.load().get(&day)?;
                Some(visitor_hash(&salt, ip, user_agent))
            })
            .flatten();
        let mut pending = self.shard();
        *pending
            .counts
            .entry((day, metric, subject.to_string(), bot))
            .or_default() += 1;
        if let Some(hash) = hash
            && !pending.seen.contains(&(day, hash))
        {
            if pending.seen.len() < VISITORS_LIMIT / SHARDS {
                pending.seen.insert((day, hash));
                pending.hashes.push((day, hash));
            } else if pending.full.insert(day) {
                tracing::warn!(
                    %day,
                    limit = VISITORS_LIMIT,
                    "visitor counts: the day's unique visitors reached the limit; page views are still counted"
                );
            }
        }
    }

    /// Writes what was counted since the last flush. On failure the counts are kept for the
    /// next one.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut counts: HashMap<(NaiveDate, Metric, String, bool), u64> = HashMap::new();
        let mut hashes = Vec::new();
        for shard in &self.pending {
            let mut pending = lock(shard);
            for (key, n) in pending.counts.drain() {
                *counts.entry(key).or_default() += n;
            }
            hashes.append(&mut pending.hashes);
        }
        let rows: Vec<VisitCount> = counts
            .iter()
            .map(|((day, metric, subject, bot), n)| VisitCount {
                day: *day,
                metric: metric.as_str().to_string(),
                subject: subject.clone(),
                bot: *bot,
                count: *n,
            })
            .collect();
        let hex_hashes: Vec<(NaiveDate, String)> =
            hashes.iter().map(|(d, h)| (*d, hex::encode(h))).collect();
        if let Err(e) = self.store.add_visits(&rows, &hex_hashes).await {
            let mut pending = lock(&self.pending[0]);
            for (key, n) in counts {
                *pending.counts.entry(key).or_default() += n;
            }
            pending.hashes.extend(hashes);
            return Err(e);
        }
        Ok(())
    }

    /// Closes finished days (their hashes become a count, their salt is deleted), deletes
    /// counts past the retention, and loads the coming day's salt.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let today = self.clock.now().date_naive();
        self.flush().await?;
        self.store.close_visitor_days(today).await?;
        self.store
            .prune_visits(today - Duration::days(self.retention.num_days()))
            .await?;
        for shard in &self.pending {
            let mut pending = lock(shard);
            pending.seen.retain(|(d, _)| *d >= today);
            pending.full.retain(|d| *d >= today);
        }
        self.load_salts().await
    }

    /// Flushes every [`FLUSH_EVERY`] and sweeps every [`SWEEP_EVERY`] (and when the day
    /// changes) until `shutdown`, then flushes once more.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut flush = tokio::time::interval(FLUSH_EVERY);
            flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_sweep: Option<(std::time::Instant, NaiveDate)> = None;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = flush.tick() => {}
                }
                let today = self.clock.now().date_naive();
                let due =
                    last_sweep.is_none_or(|(at, day)| at.elapsed() >= SWEEP_EVERY || day != today);
                let result = if due {
                    last_sweep = Some((std::time::Instant::now(), today));
                    self.sweep().await
                } else {
                    self.flush().await
                };
                if let Err(error) = result {
                    tracing::warn!(%error, "visitor counts: cannot write; kept for the next try");
                }
            }
            if let Err(error) = self.flush().await {
                tracing::warn!(%error, "visitor counts: the last counts could not be written");
            }
        })
    }
}

/// The day's hash of a visitor: SHA-256 of salt, address and user agent, truncated to 128
/// bits.
fn visitor_hash(salt: &[u8; 32], ip: IpAddr, user_agent: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(salt);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    h.update([0]);
    h.update(user_agent.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_are_told_from_browsers() {
        for bot in [
            "",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0)",
            "curl/8.5.0",
            "python-requests/2.32",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0",
            "facebookexternalhit/1.1",
            "Slackbot-LinkExpanding 1.0",
            "UptimeRobot/2.0",
        ] {
            assert!(is_bot(bot), "{bot}");
        }
        for person in [
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        ] {
            assert!(!is_bot(person), "{person}");
        }
    }

    #[test]
    fn a_visitors_hash_changes_with_the_salt() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = visitor_hash(&[1; 32], ip, "Firefox");
        assert_eq!(a, visitor_hash(&[1; 32], ip, "Firefox"));
        assert_ne!(a, visitor_hash(&[2; 32], ip, "Firefox"));
        assert_ne!(a, visitor_hash(&[1; 32], ip, "Safari"));
        assert_ne!(
            a,
            visitor_hash(&[1; 32], "203.0.113.8".parse().unwrap(), "Firefox")
        );
    }
}
