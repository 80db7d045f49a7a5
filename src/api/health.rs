//! Probes for load balancers and orchestrators. No keys needed; nothing about users is shown.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::api::method_not_allowed;
use crate::{db, AppState};

/// Registers `/healthz` and `/readyz`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .default_service(method_not_allowed("GET")),
    );
}

/// `GET /healthz`: 200 while the process serves requests; it does not touch the database.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = crate::api::openapi::ProbeStatus)))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers within `READY_TIMEOUT_MS` and every migration
/// is applied; 503 (with `Retry-After`) otherwise, so that a load balancer sends no traffic here.
/// It checks on a connection of its own: a pool busy with requests is not a database down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = crate::api::openapi::ProbeStatus),
        (status = 503, description = "Database unavailable or migrations pending", body = crate::api::openapi::ProbeStatus)
    )
)]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let wait = Duration::from_millis(state.settings.ready_timeout_ms);
    let settings = state.settings.clone();
    let check = web::block(move || db::check_ready(&settings));
    let (ready, status) = match actix_web::rt::time::timeout(wait, check).await {
        Ok(Ok(Ok(0))) => (true, "ready"),
        Ok(Ok(Ok(_))) => (false, "migrations pending"),
        Ok(Ok(Err(e))) => {
            log::warn!("not ready: {e}");
            (false, "database unavailable")
        }
        Ok(Err(_)) | Err(_) => (false, "database unavailable"),
    };
    if ready {
        HttpResponse::Ok().json(json!({"status": status}))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({"status": status}))
    }
}
