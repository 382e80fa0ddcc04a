//! The per-run fetch cache: two controls reading the same data cause one fetch.
//!
//! Every key starts with the name of the source it fetches from, followed by `:` or `.`
//! (`aws:prod:iam:…`, `hr.roster:…`). A probe reads its own source's fetches and those of the
//! sources it declares ([`Probe::ALSO_READS`](super::Probe::ALSO_READS)); during a collection
//! the cache refuses any other key, so the declarations are true, and the runner lets go of a
//! source's fetches as soon as no collection that may read them is left.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::ProbeError;

type Slot = Arc<OnceCell<Result<Arc<dyn Any + Send + Sync>, ProbeError>>>;

#[derive(Default)]
struct Shared {
    slots: Mutex<HashMap<String, Slot>>,
    fetches: AtomicUsize,
}

/// Memoises fetches by key for the duration of one run. Concurrent callers of the same key
/// wait for the first fetch rather than starting their own; failures are cached too, so a
/// broken source is asked once per run. Clones share the entries; a clone made for a probe
/// ([`FetchCache::for_probe`]) only reads the sources that probe declares.
#[derive(Default, Clone)]
pub struct FetchCache {
    shared: Arc<Shared>,
    /// The sources the holder may read; `None`: any (outside a collection).
    sources: Option<(&'static str, &'static [&'static str])>,
}

impl std::fmt::Debug for FetchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchCache")
            .field("fetches", &self.fetch_count())
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// The source a key fetches from: its first part, up to `:` or `.`.
pub fn source_of(key: &str) -> &str {
    key.split([':', '.']).next().unwrap_or(key)
}

impl FetchCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The same entries, for a probe of `source` that also reads `also`: any other key is
    /// refused.
    pub fn for_probe(&self, source: &'static str, also: &'static [&'static str]) -> FetchCache {
        FetchCache {
            shared: self.shared.clone(),
            sources: Some((source, also)),
        }
    }

    /// How many fetches actually ran (cache misses).
    pub fn fetch_count(&self) -> usize {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.shared
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops the cached values of the keys `which` selects. Later callers fetch again.
    fn drop_where(&self, which: impl Fn(&str) -> bool) {
        let drained: Vec<Slot> = {
            let mut slots = self.slots();
            let keys: Vec<String> = slots.keys().filter(|k| which(k)).cloned().collect();
            keys.iter().filter_map(|k| slots.remove(k)).collect()
        };
        // Dropped outside the lock: large values take a while to free.
        drop(drained);
    }

    /// Drops every cached value (the run's collections are over: what they fetched is either
    /// in their resources or already stored as evidence).
    pub fn clear(&self) {
        self.drop_where(|_| true);
    }

    /// Drops what was fetched from `source` (no collection left may read it).
    pub fn release(&self, source: &str) {
        self.drop_where(|key| source_of(key) == source);
    }

    /// Returns the cached value for `key`, running `fetch` only if no caller has yet.
    pub async fn get_or_fetch<T, F>(&self, key: &str, fetch: F) -> Result<Arc<T>, ProbeError>
    where
        T: Any + Send + Sync,
        F: Future<Output = Result<T, ProbeError>>,
    {
        if let Some((own, also)) = self.sources {
            let from = source_of(key);
            if from != own && !also.contains(&from) {
                return Err(ProbeError::Io(format!(
                    "internal: a probe of source `{own}` read `{key}` from `{from}`, which it \
                     does not declare (Probe::ALSO_READS)"
                )));
            }
        }
        let slot = self.slots().entry(key.to_owned()).or_default().clone();
        let value = slot
            .get_or_init(|| async {
                self.shared.fetches.fetch_add(1, Ordering::Relaxed);
                fetch
                    .await
                    .map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>)
            })
            .await
            .clone()?;
        value.downcast::<T>().map_err(|_| {
            ProbeError::Io(format!(
                "internal: fetch cache key `{key}` holds another type"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(FetchCache::new());
        let mut handles = Vec::new();
        for _ in 0..8 {
            let cache = cache.clone();
            handles.push(tokio::spawn(async move {
                cache
                    .get_or_fetch("k", async {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok::<_, ProbeError>(42u32)
                    })
                    .await
            }));
        }
        for h in handles {
            assert_eq!(*h.await.unwrap().unwrap(), 42);
        }
        assert_eq!(cache.fetch_count(), 1);
    }

    #[tokio::test]
    async fn cleared_values_are_freed_and_fetched_again() {
        let cache = FetchCache::new();
        let first: Arc<Vec<u8>> = cache
            .get_or_fetch("k", async { Ok::<_, ProbeError>(vec![1u8; 1024]) })
            .await
            .unwrap();
        assert_eq!(Arc::strong_count(&first), 2, "the cache holds it");
        cache.clear();
        assert_eq!(Arc::strong_count(&first), 1, "the cache let it go");
        let again: Arc<Vec<u8>> = cache
            .get_or_fetch("k", async { Ok::<_, ProbeError>(vec![2u8; 8]) })
            .await
            .unwrap();
        assert_eq!(again.as_slice(), [2u8; 8]);
        assert_eq!(cache.fetch_count(), 2);
    }

    #[tokio::test]
    async fn failures_are_cached_per_run() {
        let cache = FetchCache::new();
        for _ in 0..3 {
            let r: Result<Arc<u8>, _> = cache
                .get_or_fetch("bad", async { Err(ProbeError::Unavailable("down".into())) })
                .await;
            assert_eq!(r.unwrap_err(), ProbeError::Unavailable("down".into()));
        }
        assert_eq!(cache.fetch_count(), 1);
    }

    #[tokio::test]
    async fn a_probe_reads_only_the_sources_it_declares() {
        let cache = FetchCache::new();
        let identity = cache.for_probe("hr", &["aws"]);
        for key in ["hr.roster:/r.csv", "aws:prod:iam"] {
            let v: Arc<u8> = identity
                .get_or_fetch(key, async { Ok::<_, ProbeError>(1) })
                .await
                .unwrap();
            assert_eq!(*v, 1);
        }
        let refused: Result<Arc<u8>, _> = identity
            .get_or_fetch("github:acme:members", async { Ok::<_, ProbeError>(1) })
            .await;
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("github:acme:members"), "{message}");
        // The entries are shared with the run's cache.
        assert_eq!(cache.fetch_count(), 2);
    }

    #[tokio::test]
    async fn releasing_a_source_drops_only_its_entries() {
        let cache = FetchCache::new();
        let mut held = Vec::new();
        for key in [
            "aws:prod:iam",
            "aws.other",
            "hr.roster:/r.csv",
            "awsx:lookalike",
        ] {
            let v: Arc<Vec<u8>> = cache
                .get_or_fetch(key, async { Ok::<_, ProbeError>(vec![0u8; 16]) })
                .await
                .unwrap();
            held.push(v);
        }
        cache.release("aws");
        let counts: Vec<usize> = held.iter().map(Arc::strong_count).collect();
        assert_eq!(
            counts,
            [1, 1, 2, 2],
            "aws's two entries let go of, the others kept"
        );
        assert_eq!(source_of("hr.roster:/r.csv"), "hr");
        assert_eq!(source_of("plain"), "plain");
    }
}
