//! The per-run fetch cache: two controls reading the same data cause one fetch.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::ProbeError;

type Slot = Arc<OnceCell<Result<Arc<dyn Any + Send + Sync>, ProbeError>>>;

/// Memoises fetches by key for the duration of one run. Concurrent callers of the same key
/// wait for the first fetch rather than starting their own; failures are cached too, so a
/// broken source is asked once per run.
#[derive(Default)]
pub struct FetchCache {
    slots: Mutex<HashMap<String, Slot>>,
    fetches: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for FetchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchCache")
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl FetchCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many fetches actually ran (cache misses).
    pub fn fetch_count(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every cached value (the run's collections are over: what they fetched is either
    /// in their resources or already stored as evidence). Later callers fetch again.
    pub fn clear(&self) {
        let drained: Vec<Slot> = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.drain().map(|(_, slot)| slot).collect()
        };
        // Dropped outside the lock: large values take a while to free.
        drop(drained);
    }

    /// Returns the cached value for `key`, running `fetch` only if no caller has yet.
    pub async fn get_or_fetch<T, F>(&self, key: &str, fetch: F) -> Result<Arc<T>, ProbeError>
    where
        T: Any + Send + Sync,
        F: Future<Output = Result<T, ProbeError>>,
    {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.entry(key.to_owned()).or_default().clone()
        };
        let value = slot
            .get_or_init(|| async {
                self.fetches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
}
