//! Operations: probes for load balancers and orchestrators, and the Prometheus metrics. No
//! API keys; nothing about users is shown.

use std::time::Duration;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::{OpenApi, ToSchema};

use crate::api::route::Endpoint;
use crate::error::{CotterErrorBody, Envelope, Error, RETRY_AFTER_SECS};
use crate::{db, AppState};

/// The probes and the metrics.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/healthz", |r| r.to(healthz)),
        Endpoint::new(Method::GET, "/readyz", |r| r.to(readyz)),
        Endpoint::new(Method::GET, "/metrics", |r| r.to(export)),
    ]
}

/// A probe's answer.
#[derive(Serialize, ToSchema)]
pub struct ProbeStatus {
    /// `ok`, `ready`, `database unavailable` or `migrations pending`.
    #[schema(value_type = String)]
    pub status: &'static str,
}

/// `GET /healthz`: 200 while the process serves requests; it does not touch the database.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = ProbeStatus)))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(ProbeStatus { status: "ok" })
}

/// `GET /readyz`: 200 when the database answers within `READY_TIMEOUT_MS` and every migration
/// is applied; 503 (with `Retry-After`) otherwise, so that a load balancer sends no traffic here.
/// It checks on a connection of its own: a pool busy with requests is not a database down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ProbeStatus),
        (status = 503, description = "Database unavailable or migrations pending", body = ProbeStatus)
    )
)]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let wait = Duration::from_millis(state.settings.ready_timeout_ms);
    let database = state.settings.database.clone();
    let check = web::block(move || db::check_ready(&database));
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
        HttpResponse::Ok().json(ProbeStatus { status })
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
            .json(ProbeStatus { status })
    }
}

/// Whether the request may read the metrics: always without `METRICS_TOKEN`, else only with
/// `Authorization: Bearer <token>` (compared in constant time).
fn allowed(req: &HttpRequest, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

/// `GET /metrics`: the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "METRICS_TOKEN is set and was not given", body = CotterErrorBody)
    )
)]
pub(crate) async fn export(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if !allowed(&req, state.settings.metrics_token.as_deref()) {
        let mut denied =
            Envelope::Cotter.respond(&Error::Unauthorized("a valid metrics token is required"));
        denied.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return denied;
    }
    match state.metrics.encode(&state.pool, &state.hasher) {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(body),
        Err(e) => {
            log::error!("cannot encode metrics: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The operations of the OpenAPI document (the document itself is `api::openapi`'s).
#[derive(OpenApi)]
#[openapi(paths(healthz, readyz, export))]
pub struct Doc;
