//! Conditional requests across runs. An HTTP answer with a validator (`ETag`,
//! `Last-Modified`) is kept with its body; the next run sends `If-None-Match` /
//! `If-Modified-Since`, and an unchanged answer comes back as `304 Not Modified` — which
//! GitHub does not count against its rate limit — and is read from the kept body.
//!
//! Probes never write the store: the runner hands the kept answers in ([`Validators::new`],
//! read-only), probes record every answer they used in the run's collector
//! ([`Validators::record`]), and after collecting the runner saves [`Validators::used`]
//! through the store. With nothing stored (`check --no-store`) every request is plain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The sources whose probes ask conditionally (a run loads the kept answers only when it
/// collects from one of them).
pub const SOURCES: &[&str] = &["github"];

/// One kept answer: its validators, the `Link` header (pagination) and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub link: Option<String>,
    pub body: String,
}

/// The answers earlier runs kept (read-only) and those this run used (its collector).
#[derive(Debug, Default)]
pub struct Validators {
    previous: HashMap<String, Arc<Validator>>,
    used: Mutex<HashMap<String, Arc<Validator>>>,
}

impl Validators {
    /// From the answers earlier runs kept, by key (`github:URL`).
    pub fn new(previous: impl IntoIterator<Item = (String, Validator)>) -> Validators {
        Validators {
            previous: previous
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect(),
            used: Mutex::default(),
        }
    }

    /// What an earlier run kept for `key`.
    pub fn previous(&self, key: &str) -> Option<Arc<Validator>> {
        self.previous.get(key).cloned()
    }

    /// Records that this run used `validator` for `key` (a fresh answer, or a kept one
    /// confirmed by a 304).
    pub fn record(&self, key: &str, validator: Arc<Validator>) {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), validator);
    }

    /// Everything this run used, for the runner to save (in key order).
    pub fn used(&self) -> Vec<(String, Arc<Validator>)> {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = used.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
