//! API key extractors and the cache that keeps key checks off the database.
//!
//! The extractors only *parse and verify* credentials: [`ProjectKey`] names the project and
//! [`ProjectSecret`] proves the caller holds one of its live secrets. Which users a project may
//! reach is decided once, in `users`, where every query is scoped by the project's issuer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use moka::sync::Cache;
use uuid::Uuid;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::{db, projects, AppState};

/// Header naming the project.
pub const KEY_ID_HEADER: &str = "api_key_id";
/// Header carrying one of the project's secrets.
pub const SECRET_HEADER: &str = "api_secret_key";

/// How long an unknown `API_KEY_ID` is remembered as unknown, at most: short, so that a project
/// created a moment after a failed call works at once, yet long enough to keep a flood of bad
/// keys off the database.
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

type Entry = Option<Arc<ProjectKeys>>;

struct EntryExpiry {
    ttl: Duration,
}

impl moka::Expiry<Uuid, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &Uuid, value: &Entry, _: Instant) -> Option<Duration> {
        Some(match value {
            Some(_) => self.ttl,
            None => self.ttl.min(UNKNOWN_KEY_TTL),
        })
    }
}

/// Projects' keys by `API_KEY_ID`, known and unknown alike, each for a short time.
///
/// A revoked secret, a new secret or a changed policy takes effect within the time to live
/// (`AUTH_CACHE_TTL_SECS`); 0 turns the cache off.
#[derive(Clone)]
pub struct AuthCache {
    cache: Option<Cache<Uuid, Entry>>,
    loads: Arc<AtomicU64>,
}

impl AuthCache {
    /// A cache sized and timed by `settings`.
    pub fn new(settings: &Settings) -> Self {
        let ttl = settings.auth_cache_ttl();
        let cache = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(settings.auth_cache_capacity)
                .expire_after(EntryExpiry { ttl })
                .build()
        });
        AuthCache {
            cache,
            loads: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many times keys were read from the database (for tests and metrics).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Forgets what is cached of one project, so its next request reads the database.
    pub fn invalidate(&self, id: &Uuid) {
        if let Some(cache) = &self.cache {
            cache.invalidate(id);
        }
    }

    fn load(&self, pool: &db::Pool, id: &Uuid) -> Result<Entry> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let mut pooled = pool.get()?;
        let conn = pooled.conn();
        let Some(project) = projects::find(conn, id)? else {
            return Ok(None);
        };
        let secret_hashes = projects::live_secret_hashes(conn, &project.id)?;
        Ok(Some(Arc::new(ProjectKeys {
            issuer: project.id,
            require_secret: project.require_secret,
            secret_hashes,
        })))
    }

    /// The keys of a project, from the cache when it has them (no database round trip).
    pub async fn get(&self, state: &AppState, id: Uuid) -> Result<Entry> {
        if let Some(cache) = &self.cache {
            if let Some(entry) = cache.get(&id) {
                return Ok(entry);
            }
        }
        let this = self.clone();
        let pool = state.pool.clone();
        // Concurrent misses of one key wait for a single load (`try_get_with`), and only that
        // load takes a database connection.
        web::block(move || match &this.cache {
            Some(cache) => cache
                .try_get_with(id, || this.load(&pool, &id))
                .map_err(|e| (*e).clone()),
            None => this.load(&pool, &id),
        })
        .await?
    }
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).map(|v| v.to_str().unwrap_or(""))
}

/// Reads `API_KEY_ID` and finds its project; checks `API_SECRET_KEY` when `need_secret` or when
/// the project requires it on every route.
pub async fn authenticate(req: &HttpRequest, need_secret: bool) -> Result<Arc<ProjectKeys>> {
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
    if need_secret || keys.require_secret {
        let secret = header(req, SECRET_HEADER)
            .ok_or(Error::Unauthorized("API_SECRET_KEY header is missing"))?;
        if !keys.accepts(secret) {
            return Err(Error::Unauthorized(
                "API_SECRET_KEY is not valid for this API_KEY_ID",
            ));
        }
    }
    Ok(keys)
}

/// A request from a project, named by `API_KEY_ID` alone (as Cotter's browser SDKs send it),
/// unless the project requires its secret on every route.
pub struct ProjectKey(pub Arc<ProjectKeys>);

/// A request that proved it holds one of the project's live secrets.
pub struct ProjectSecret(pub Arc<ProjectKeys>);

impl FromRequest for ProjectKey {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req, false).await.map(ProjectKey) })
    }
}

impl FromRequest for ProjectSecret {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req, true).await.map(ProjectSecret) })
    }
}
