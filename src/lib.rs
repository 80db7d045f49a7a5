//! cotterd: a self-hostable identity API server that speaks Cotter's v0 User API.
//!
//! `app` builds the whole actix application from an [`AppState`], so the binary and the
//! integration tests serve exactly the same routes, extractors and error handling.

pub mod accounts;
pub mod api;
pub mod attempts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod console;
pub mod copy;
pub mod db;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod ids;
pub mod janitor;
pub mod limits;
pub mod methods;
pub mod metrics;
pub mod passwords;
pub mod projects;
pub mod request_id;
pub mod scope;
pub mod sessions;
pub mod time;
pub mod transfer;
pub mod users;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App};

use crate::auth::AuthCache;
use crate::config::Settings;
use crate::db::Pool;

/// Everything a request handler needs; cheap to clone (one per worker).
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    /// The admin API's dashboard reads (lists, counts, sign-up counts, exports): a standby's
    /// pool when `DATABASE_READ_URL` names one, else `pool` itself.
    pub reads: Pool,
    /// Creates, committed in groups (`db::group`).
    pub writes: db::group::GroupCommit,
    pub auth: AuthCache,
    pub hasher: passwords::Hasher,
    pub limits: limits::RateLimits,
    pub metrics: metrics::Metrics,
    /// Exports and imports running now.
    pub transfers: transfer::Slots,
    pub settings: Settings,
}

impl AppState {
    /// Opens the database named by `settings` (running pending migrations) and builds the state.
    pub fn open(settings: Settings) -> Result<Self, String> {
        let pool = db::connect(&settings)?;
        let reads = db::connect_reads(&settings, &pool)?;
        Ok(Self::with_pools(pool, reads, settings))
    }

    /// Builds the state around an existing pool, which serves every read too.
    pub fn with_pool(pool: Pool, settings: Settings) -> Self {
        Self::with_pools(pool.clone(), pool, settings)
    }

    /// Builds the state around existing pools: `reads` serves the admin API's dashboard reads.
    pub fn with_pools(pool: Pool, reads: Pool, settings: Settings) -> Self {
        let metrics = metrics::Metrics::new();
        AppState {
            limits: limits::RateLimits::new(&settings, metrics.rate_limited.clone()),
            auth: AuthCache::new(&settings, metrics.key_loads.clone()),
            metrics,
            hasher: passwords::Hasher::new(&settings),
            transfers: transfer::Slots::new(settings.transfer_concurrency as usize),
            writes: db::group::GroupCommit::start(
                pool.clone(),
                settings.db_writers as usize,
                settings.db_pool_timeout(),
            ),
            pool,
            reads,
            settings,
        }
    }
}

/// The actix application: every route, the body limits and the error handlers.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(api::route::path_config())
        .wrap(middleware::from_fn(api::admin::private_answers))
        .wrap(middleware::from_fn(limits::header_size))
        .wrap(middleware::from_fn(metrics::middleware))
        .wrap(middleware::from_fn(request_id::middleware))
        // The query string is left out of the access log: it carries users' identifiers. The
        // logger is left out altogether when info lines are not logged.
        .wrap(middleware::Condition::new(
            log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info),
            middleware::Logger::new("%a \"%U\" %s %b %Dms request_id=%{x-request-id}o"),
        ))
        .configure(api::configure)
}
