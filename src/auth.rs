//! API key checks and the cache that keeps them off the database.
//!
//! [`authenticate`] only *parses and verifies* credentials: `API_KEY_ID` names the project and
//! `API_SECRET_KEY` proves the caller holds one of its live secrets. Which users a project may
//! reach is decided once, in `users`, where every query is scoped by the project's issuer.
//!
//! Handlers call it before they read a body or a query string, so that a caller without valid
//! keys always gets 401, whatever else is wrong with the request, and no body is read for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest};
use moka::sync::Cache;
use uuid::Uuid;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::limits::Budget;
use crate::{db, projects, AppState};

/// Header naming the project.
pub const KEY_ID_HEADER: &str = "api_key_id";
/// Header carrying one of the project's secrets.
pub const SECRET_HEADER: &str = "api_secret_key";

/// How long an unknown `API_KEY_ID` is remembered as unknown: short, so that a project created
/// a moment after a failed call works at once, yet long enough to keep repeats of a bad key off
/// the database.
const UNKNOWN_KEY_TTL: Duration = Duration::from_secs(1);

/// What a request's key check needs to know of a project.
#[derive(Debug)]
pub struct ProjectKeys {
    /// The canonical `API_KEY_ID`, which is also the issuer of the project's users.
    pub issuer: String,
    pub require_secret: bool,
    secret_hashes: Vec<[u8; 32]>,
}

impl ProjectKeys {
    /// Whether `secret` is one of the project's live secrets (constant time).
    pub fn accepts(&self, secret: &str) -> bool {
        projects::secret_matches(secret, &self.secret_hashes)
    }
}

/// Why a load found no keys.
#[derive(Debug)]
enum Miss {
    Unknown,
    Failed(Error),
}

/// The two halves of the key cache.
#[derive(Clone)]
struct Caches {
    known: Cache<Uuid, Arc<ProjectKeys>>,
    unknown: Cache<Uuid, ()>,
}

/// Projects' keys by `API_KEY_ID`, each for a short time; unknown key ids are remembered apart,
/// so that a flood of made-up keys cannot push real projects out of the cache.
///
/// A revoked secret, a new secret or a changed policy takes effect within the time to live
/// (`AUTH_CACHE_TTL_SECS`); 0 turns the cache off.
#[derive(Clone)]
pub struct AuthCache {
    caches: Option<Caches>,
    loads: Arc<AtomicU64>,
    counter: prometheus::IntCounter,
}

impl AuthCache {
    /// A cache sized and timed by `settings`, counting its database loads in `counter` too.
    pub fn new(settings: &Settings, counter: prometheus::IntCounter) -> Self {
        let ttl = settings.auth_cache_ttl();
        let caches = (!ttl.is_zero()).then(|| {
            let known = Cache::builder()
                .max_capacity(settings.auth_cache_capacity)
                .time_to_live(ttl)
                .build();
            let unknown = Cache::builder()
                .max_capacity(settings.auth_cache_capacity)
                .time_to_live(ttl.min(UNKNOWN_KEY_TTL))
                .build();
            Caches { known, unknown }
        });
        AuthCache {
            caches,
            loads: Arc::new(AtomicU64::new(0)),
            counter,
        }
    }

    /// How many times keys were read from the database (for tests and metrics).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    fn load(&self, pool: &db::Pool, id: &Uuid) -> Result<Arc<ProjectKeys>, Miss> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.counter.inc();
        let loaded = db::with_conn(pool, |conn| {
            let Some(project) = projects::find(conn, id)? else {
                return Ok(None);
            };
            let secret_hashes = projects::live_secret_hashes(conn, &project.id)?;
            Ok(Some(Arc::new(ProjectKeys {
                issuer: project.id,
                require_secret: project.require_secret,
                secret_hashes,
            })))
        });
        match loaded {
            Ok(Some(keys)) => Ok(keys),
            Ok(None) => Err(Miss::Unknown),
            Err(err) => Err(Miss::Failed(err)),
        }
    }

    /// The keys of a project, from the cache when it has them (no database round trip); `None`
    /// for a key id no project has.
    pub async fn get(&self, state: &AppState, id: Uuid) -> Result<Option<Arc<ProjectKeys>>> {
        if let Some(Caches { known, unknown }) = &self.caches {
            if let Some(keys) = known.get(&id) {
                return Ok(Some(keys));
            }
            if unknown.contains_key(&id) {
                return Ok(None);
            }
        }
        let this = self.clone();
        let pool = state.pool.clone();
        // Concurrent misses of one key wait for a single load (`try_get_with`), and only that
        // load takes a database connection.
        let loaded = web::block(move || match &this.caches {
            Some(Caches { known, unknown }) => {
                let loaded = known.try_get_with(id, || this.load(&pool, &id));
                if matches!(&loaded, Err(miss) if matches!(**miss, Miss::Unknown)) {
                    unknown.insert(id, ());
                }
                loaded.map_err(|e| match &*e {
                    Miss::Unknown => Miss::Unknown,
                    Miss::Failed(err) => Miss::Failed(err.clone()),
                })
            }
            None => this.load(&pool, &id),
        })
        .await?;
        match loaded {
            Ok(keys) => Ok(Some(keys)),
            Err(Miss::Unknown) => Ok(None),
            Err(Miss::Failed(err)) => Err(err),
        }
    }
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).map(|v| v.to_str().unwrap_or(""))
}

/// Reads `API_KEY_ID` and finds its project; checks `API_SECRET_KEY` when `need_secret`, when
/// the project requires it on every route, or whenever it is sent (a wrong, revoked or other
/// project's secret is refused even where none is needed, so that its use shows up at once);
/// then spends one unit of the project's `budget` (429 when it is spent).
pub async fn authenticate(
    req: &HttpRequest,
    need_secret: bool,
    budget: Budget,
) -> Result<Arc<ProjectKeys>> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| Error::Internal("application state is missing".into()))?;
    let raw_id =
        header(req, KEY_ID_HEADER).ok_or(Error::Unauthorized("API_KEY_ID header is missing"))?;
    let id = projects::parse_key_id(raw_id)
        .ok_or(Error::Unauthorized("API_KEY_ID is not a valid API key id"))?;
    let keys = state
        .auth
        .get(state, id)
        .await?
        .ok_or(Error::Unauthorized("API_KEY_ID is not a valid API key id"))?;
    // An empty header is what a client with no secret configured sends: not a secret.
    let sent = header(req, SECRET_HEADER).filter(|s| !s.is_empty());
    if need_secret || keys.require_secret || sent.is_some() {
        let secret = sent.ok_or(Error::Unauthorized("API_SECRET_KEY header is missing"))?;
        if !keys.accepts(secret) {
            return Err(Error::Unauthorized(
                "API_SECRET_KEY is not valid for this API_KEY_ID",
            ));
        }
    }
    state.limits.check(&keys.issuer, budget)?;
    Ok(keys)
}
