//! `/healthz` and `/readyz`, on the public listener (for load balancers) and on the metrics
//! listener.
//!
//! - `/healthz`: the process is up and serving HTTP. It asks nothing of the database, so a
//!   database outage never gets the process restarted.
//! - `/readyz`: the database answers and every migration of this build is applied
//!   ([`Store::readiness`]); otherwise 503 with a short reason (`{"status": "unavailable",
//!   "reason": "database unreachable"}`) that never names the database.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::header;
use serde::Serialize;

use crate::store::{Readiness, Store};

/// Longest `/readyz` waits for the database before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `/healthz`: 200 `{"status": "ok"}` while the process serves.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Health {
            status: "ok",
            reason: None,
        })
}

/// `/readyz` for `store`: 200 `{"status": "ok"}` when it is ready, else 503 with the reason.
pub async fn readyz(store: &Store) -> HttpResponse {
    let readiness = tokio::time::timeout(READY_TIMEOUT, store.readiness())
        .await
        .unwrap_or(Readiness::Unreachable);
    if readiness == Readiness::Ready {
        return healthz().await;
    }
    HttpResponse::ServiceUnavailable()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Health {
            status: "unavailable",
            reason: Some(readiness.reason()),
        })
}
