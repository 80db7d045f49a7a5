//! Prometheus metrics: requests by route template, method and status, latency per route, the
//! pool, the password-hashing queue, rate-limit refusals and key-cache loads. `api::ops` serves
//! them as text at `GET /metrics` (optionally behind `METRICS_TOKEN`).
//!
//! Labels are route templates (`/api/v0/user/{client_user_id}`), never raw paths, and methods
//! outside the usual few are counted as `other`: nothing a client sends can grow the series.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::{db, passwords, AppState};

/// Every series the server exports, in its own registry (one per application state).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub rate_limited: IntCounterVec,
    pub key_loads: IntCounter,
    pool_connections: IntGauge,
    pool_in_use: IntGauge,
    pool_waiting: IntGauge,
    hash_running: IntGauge,
    hash_waiting: IntGauge,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl Metrics {
    /// The server's metrics, registered in a new registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid gauge"))
        };
        Metrics {
            requests: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("cotterd_http_requests_total", "HTTP requests answered"),
                    &["route", "method", "status"],
                )
                .expect("valid counter"),
            ),
            latency: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "cotterd_http_request_duration_seconds",
                        "Time from request to response head, by route",
                    ),
                    &["route"],
                )
                .expect("valid histogram"),
            ),
            rate_limited: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "cotterd_rate_limited_total",
                        "Requests refused with 429, by budget",
                    ),
                    &["budget"],
                )
                .expect("valid counter"),
            ),
            key_loads: register(
                &registry,
                IntCounter::new(
                    "cotterd_auth_key_loads_total",
                    "Project keys read from the database (cache misses)",
                )
                .expect("valid counter"),
            ),
            pool_connections: gauge("cotterd_db_pool_connections", "Open database connections"),
            pool_in_use: gauge("cotterd_db_pool_in_use", "Database connections in use"),
            pool_waiting: gauge(
                "cotterd_db_pool_waiting",
                "Requests waiting for a database connection",
            ),
            hash_running: gauge("cotterd_password_hashes_running", "Password hashes running"),
            hash_waiting: gauge(
                "cotterd_password_hash_queue_depth",
                "Password hashes waiting for a slot",
            ),
            registry,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The label of a method: the usual ones by name, anything else `other`.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request by its route template.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let method = method_label(req.method());
    let started = std::time::Instant::now();
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = res.status();
        metrics
            .requests
            .with_label_values(&[route.as_str(), method, status.as_str()])
            .inc();
        metrics
            .latency
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

impl Metrics {
    /// Every series in the Prometheus text format, with the gauges of `pool` and `hasher` read
    /// now.
    pub fn encode(
        &self,
        pool: &db::Pool,
        hasher: &passwords::Hasher,
    ) -> Result<Vec<u8>, prometheus::Error> {
        let state = pool.state();
        self.pool_connections.set(i64::from(state.connections));
        self.pool_in_use
            .set(i64::from(state.connections - state.idle_connections));
        self.pool_waiting.set(pool.waiting() as i64);
        let running = hasher.running();
        self.hash_running.set(running as i64);
        self.hash_waiting
            .set(hasher.in_flight().saturating_sub(running) as i64);
        let mut body = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut body)?;
        Ok(body)
    }
}
