//! The metrics listener (`metrics.bind`): `/metrics` ([`crate::metrics`]), `/healthz` and
//! `/readyz`, and nothing else. A server of its own, so the public listener never serves
//! metrics; it stops with the application.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use anyhow::Context as _;

use crate::metrics::{CONTENT_TYPE, ScrapeSource};

/// A running metrics listener.
#[derive(Debug)]
pub struct MetricsServer {
    pub port: u16,
    handle: ServerHandle,
}

impl MetricsServer {
    /// Binds `bind` and starts serving `source` in the background (port 0 picks a free port).
    pub fn start(bind: &str, source: ScrapeSource) -> anyhow::Result<MetricsServer> {
        let listener = TcpListener::bind(bind)
            .with_context(|| format!("cannot listen on {bind} (metrics.bind)"))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(source);
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .configure(configure)
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "the metrics listener failed");
            }
        });
        tracing::info!(port, "metrics are served at /metrics");
        Ok(MetricsServer { port, handle })
    }

    /// Stops serving (requests under way finish).
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// The metrics listener's routes. Needs `web::Data<ScrapeSource>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .route(web::head().to(metrics)),
    );
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(super::health::healthz))
            .route(web::head().to(super::health::healthz)),
    );
    cfg.service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .route(web::head().to(readyz)),
    );
    cfg.default_service(web::to(|| async {
        HttpResponse::NotFound()
            .content_type(header::ContentType::plaintext())
            .body("Not found.")
    }));
}

async fn metrics(source: web::Data<ScrapeSource>) -> HttpResponse {
    match source.render().await {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(error) => {
            tracing::error!(%error, "metrics: cannot encode");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn readyz(source: web::Data<ScrapeSource>) -> HttpResponse {
    super::health::readyz(source.store()).await
}
