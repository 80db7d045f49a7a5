//! Who is calling: the access policies routes declare, the key checks behind them, and the cache
//! that keeps those checks off the database.
//!
//! A handler names its policy in its signature (`caller: Caller<v0::AppWrite>`). The extractor
//! *parses and verifies* the credentials — `API_KEY_ID` names the project, `API_SECRET_KEY`
//! proves the caller holds one of its live secrets — spends one unit of the policy's budget, and
//! hands the handler the authenticated [`Project`]. [`ProjectId`] is made here and nowhere else
//! (from keys that passed the check, or by [`verify_keys`] for callers outside HTTP), and every
//! project-scoped query (`scope`) needs one: which rows a caller reaches is decided by the types,
//! not by each handler remembering a filter.
//!
//! A refused call is answered in the error shape of the policy's API. Extractors run before the
//! handler body, and no handler reads its body before them, so a caller without valid keys
//! always gets 401, whatever else is wrong with the request, and no body is read for it.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, ResponseError};
use moka::sync::Cache;
use uuid::Uuid;

use crate::config::Settings;
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids;
use crate::limits::Budget;
use crate::sessions::{self, Session};
use crate::{db, projects, AppState};

/// Header naming the project.
pub const KEY_ID_HEADER: &str = "api_key_id";
/// Header carrying one of the project's secrets.
pub const SECRET_HEADER: &str = "api_secret_key";

/// How long an unknown `API_KEY_ID` is remembered as unknown: short, so that a project created
/// a moment after a failed call works at once, yet long enough to keep repeats of a bad key off
/// the database.
const UNKNOWN_KEY_TTL: Duration = Duration::from_secs(1);

/// A project's id: its `API_KEY_ID`, also the `issuer` column of its users and accounts. Only
/// this module makes one, for a project whose keys were checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(String);

impl ProjectId {
    /// The canonical text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which credentials a policy asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// `API_KEY_ID`, and `API_SECRET_KEY` too when the project requires it on every route
    /// (`projects set --require-secret true`): what apps built on Cotter's SDKs send.
    KeyId,
    /// `API_KEY_ID` and `API_SECRET_KEY`: backend services only.
    KeyAndSecret,
}

/// Whether a route takes the browser console's session cookie (`sessions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// Keys only.
    Refused,
    /// The keys, or, when no `API_KEY_ID` is sent, the session cookie (with its CSRF token on a
    /// state-changing request): every admin route.
    Accepted,
    /// The session cookie only (keys are not looked at): the session's own routes.
    Required,
}

/// An access policy: who may call a route, what a call spends, and the API whose error shape
/// answers a refused call. Each API declares its policies (`api::v0`, `api::v2`).
///
/// Whatever the policy, a secret that is sent is checked: a wrong, revoked or other project's
/// secret is refused even where none is needed, so that its use shows up at once.
pub trait Policy: 'static {
    /// The credentials a call must carry.
    const CREDENTIALS: Credentials;
    /// The rate-limit budget a call spends.
    const BUDGET: Budget;
    /// The envelope a refusal is answered in.
    type Error: From<Error> + ResponseError + 'static;
    /// Whether the console's session stands in for the keys.
    const CONSOLE: Console = Console::Refused;
}

/// What a request's key check needs to know of a project.
#[derive(Debug)]
struct ProjectKeys {
    /// The canonical `API_KEY_ID`, which is also the issuer of the project's users.
    id: ProjectId,
    require_secret: bool,
    secret_hashes: Vec<[u8; 32]>,
    /// The printed prefix of each secret, in the order of `secret_hashes`.
    secret_prefixes: Vec<Arc<str>>,
}

impl ProjectKeys {
    /// The prefix of the live secret `secret` is, if it is one (compared in constant time).
    fn accepts(&self, secret: &str) -> Option<Arc<str>> {
        let index = projects::matching_secret(secret, &self.secret_hashes)?;
        self.secret_prefixes.get(index).cloned()
    }
}

/// How a caller proved it acts for its project.
#[derive(Debug, Clone)]
enum Proof {
    /// `API_KEY_ID` alone.
    KeyId,
    /// A live secret too, named by its printed prefix.
    Secret(Arc<str>),
    /// A console session, made with a live secret.
    Console(Arc<Session>),
}

/// An authenticated caller's project.
#[derive(Debug, Clone)]
pub struct Project {
    keys: Arc<ProjectKeys>,
    proof: Proof,
}

impl Project {
    /// The project's id: what its queries are scoped by.
    pub fn id(&self) -> &ProjectId {
        &self.keys.id
    }

    /// Whether the caller proved it holds a live secret: it sent (a valid) `API_SECRET_KEY`,
    /// or it is a console session (made with one).
    pub fn sent_secret(&self) -> bool {
        !matches!(self.proof, Proof::KeyId)
    }

    /// The console session the call was made in, if it was.
    pub fn session(&self) -> Option<&Session> {
        match &self.proof {
            Proof::Console(session) => Some(session),
            _ => None,
        }
    }

    /// Who made the call, as the audit trail names it: `secret:<prefix>` for a caller that sent
    /// a secret (never the secret itself), `console:<session prefix>` for a console session,
    /// `key` for one that sent only the key id.
    pub fn actor(&self) -> String {
        match &self.proof {
            Proof::Secret(prefix) => format!("secret:{prefix}"),
            Proof::Console(session) => format!("console:{}", session.prefix()),
            Proof::KeyId => "key".to_owned(),
        }
    }
}

/// A caller whose credentials passed policy `P`.
pub struct Caller<P> {
    project: Project,
    policy: PhantomData<fn() -> P>,
}

impl<P> Caller<P> {
    /// The caller's project, to move into a database closure.
    pub fn into_project(self) -> Project {
        self.project
    }
}

impl<P> std::ops::Deref for Caller<P> {
    type Target = Project;

    fn deref(&self) -> &Project {
        &self.project
    }
}

impl<P: Policy> FromRequest for Caller<P> {
    type Error = P::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, P::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let project = authenticate(&req, P::CREDENTIALS, P::BUDGET, P::CONSOLE).await?;
            Ok(Caller {
                project,
                policy: PhantomData,
            })
        })
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
    loads: prometheus::IntCounter,
}

impl AuthCache {
    /// A cache sized and timed by `settings`, counting its database loads in `loads`.
    pub fn new(settings: &Settings, loads: prometheus::IntCounter) -> Self {
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
        AuthCache { caches, loads }
    }

    /// How many times keys were read from the database (`cotterd_auth_key_loads_total`).
    pub fn loads(&self) -> u64 {
        self.loads.get()
    }

    fn load(&self, pool: &db::Pool, id: &Uuid) -> Result<Arc<ProjectKeys>, Miss> {
        self.loads.inc();
        match db::with_conn(pool, |conn| load_keys(conn, id)) {
            Ok(Some(keys)) => Ok(Arc::new(keys)),
            Ok(None) => Err(Miss::Unknown),
            Err(err) => Err(Miss::Failed(err)),
        }
    }

    /// The keys of a project, from the cache when it has them (no database round trip); `None`
    /// for a key id no project has.
    async fn get(&self, pool: &db::Pool, id: Uuid) -> Result<Option<Arc<ProjectKeys>>> {
        if let Some(Caches { known, unknown }) = &self.caches {
            if let Some(keys) = known.get(&id) {
                return Ok(Some(keys));
            }
            if unknown.contains_key(&id) {
                return Ok(None);
            }
        }
        let this = self.clone();
        let pool = pool.clone();
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

/// The keys of the project whose `API_KEY_ID` is `id`, read from the database.
fn load_keys(conn: &mut DbConn, id: &Uuid) -> Result<Option<ProjectKeys>> {
    let Some(project) = projects::find(conn, id)? else {
        return Ok(None);
    };
    let (secret_hashes, secret_prefixes) = projects::live_secrets(conn, id)?
        .into_iter()
        .map(|(hash, prefix)| (hash, Arc::from(prefix)))
        .unzip();
    Ok(Some(ProjectKeys {
        id: ProjectId(project.id),
        require_secret: project.require_secret,
        secret_hashes,
        secret_prefixes,
    }))
}

/// The project `id` names, for an operator at the command line (`cotterd users export`,
/// `import`): whoever can open the database holds every project's data already, so no key is
/// asked. `NotFound` when there is no such project.
pub fn project_for_operator(conn: &mut DbConn, id: &Uuid) -> Result<ProjectId> {
    match projects::find(conn, id)? {
        Some(project) => Ok(ProjectId(project.id)),
        None => Err(Error::NotFound("no project has this id")),
    }
}

/// The project whose keys these are, checked on `conn` without the cache and without spending
/// a budget: `key_id` must name a project and `secret` be one of its live secrets, as
/// [`Credentials::KeyAndSecret`] asks. For callers outside HTTP (tools, tests).
pub fn verify_keys(conn: &mut DbConn, key_id: &str, secret: &str) -> Result<Project> {
    let unknown = Error::Unauthorized("API_KEY_ID is not a valid API key id");
    let id = ids::parse_uuid(key_id).ok_or(unknown.clone())?;
    let keys = load_keys(conn, &id)?.ok_or(unknown)?;
    let Some(prefix) = keys.accepts(secret) else {
        return Err(Error::Unauthorized(
            "API_SECRET_KEY is not valid for this API_KEY_ID",
        ));
    };
    Ok(Project {
        keys: Arc::new(keys),
        proof: Proof::Secret(prefix),
    })
}

impl AuthCache {
    /// Drops what the cache holds of a project, after a change to its secrets on this instance,
    /// so that the change takes effect here at once (elsewhere within the time to live).
    pub fn forget(&self, id: &Uuid) {
        if let Some(Caches { known, unknown }) = &self.caches {
            known.invalidate(id);
            unknown.invalidate(id);
        }
    }
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).map(|v| v.to_str().unwrap_or(""))
}

/// Reads `API_KEY_ID` and finds its project; checks `API_SECRET_KEY` when the credentials ask
/// for it, when the project requires it on every route, or whenever it is sent; then spends one
/// unit of the project's `budget` (429 when it is spent). Where the policy takes the console's
/// session, a request without `API_KEY_ID` is checked by its session cookie instead.
async fn authenticate(
    req: &HttpRequest,
    credentials: Credentials,
    budget: Budget,
    console: Console,
) -> Result<Project> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| Error::Internal("application state is missing".into()))?;
    let raw_id = header(req, KEY_ID_HEADER);
    let session_cookie = match console {
        Console::Refused => None,
        Console::Accepted if raw_id.is_some() => None,
        Console::Accepted | Console::Required => {
            let cookie = state
                .settings
                .console_enabled
                .then(|| req.cookie(sessions::COOKIE))
                .flatten();
            if console == Console::Required && cookie.is_none() {
                return Err(Error::Unauthorized(
                    "no console session: sign in at /admin/signin",
                ));
            }
            cookie
        }
    };
    if let Some(cookie) = session_cookie {
        // Another site of the same parent domain can set a cookie of this name for a longer
        // path, which the browser would send first: two are refused, not chosen between.
        let sent = req.cookies().map_or(0, |all| {
            all.iter().filter(|c| c.name() == sessions::COOKIE).count()
        });
        if sent > 1 {
            return Err(Error::Unauthorized(
                "more than one console session cookie was sent: sign in again",
            ));
        }
        return console_session(req, state, cookie.value(), budget).await;
    }
    let raw_id = raw_id.ok_or(Error::Unauthorized("API_KEY_ID header is missing"))?;
    let id = ids::parse_uuid(raw_id)
        .ok_or(Error::Unauthorized("API_KEY_ID is not a valid API key id"))?;
    let keys = state
        .auth
        .get(&state.pool, id)
        .await?
        .ok_or(Error::Unauthorized("API_KEY_ID is not a valid API key id"))?;
    // An empty header is what a client with no secret configured sends: not a secret.
    let sent = header(req, SECRET_HEADER).filter(|s| !s.is_empty());
    let needs_secret = credentials == Credentials::KeyAndSecret || keys.require_secret;
    let mut secret_prefix = None;
    if needs_secret || sent.is_some() {
        let secret = sent.ok_or(Error::Unauthorized("API_SECRET_KEY header is missing"))?;
        secret_prefix = Some(keys.accepts(secret).ok_or(Error::Unauthorized(
            "API_SECRET_KEY is not valid for this API_KEY_ID",
        ))?);
    }
    state.limits.check(&keys.id, budget)?;
    Ok(Project {
        keys,
        proof: match secret_prefix {
            Some(prefix) => Proof::Secret(prefix),
            None => Proof::KeyId,
        },
    })
}

/// The project of the console session whose cookie holds `value`: the session must be live
/// (`sessions::find`), a state-changing request must carry its CSRF token, and the call spends
/// the project's `budget` as a call with keys would.
async fn console_session(
    req: &HttpRequest,
    state: &AppState,
    value: &str,
    budget: Budget,
) -> Result<Project> {
    let ended = Error::Unauthorized("the console session has ended: sign in again");
    let (project_id, token) = sessions::parse_cookie(value).ok_or(ended.clone())?;
    let token = token.to_owned();
    let lifetimes = sessions::Lifetimes::of(&state.settings);
    let found = token.clone();
    // The session first, so that a page whose session ended is told to sign in again (401)
    // rather than that its token is wrong; another site's request never carries the cookie.
    let session = db::run(&state.pool, move |conn| {
        sessions::find(conn, &project_id, &found, lifetimes, crate::time::now())
    })
    .await?
    .ok_or(ended.clone())?;
    if !req.method().is_safe() {
        let presented = header(req, sessions::CSRF_HEADER).unwrap_or_default();
        if !sessions::csrf_matches(&token, presented) {
            return Err(Error::CsrfRejected);
        }
    }
    let keys = state
        .auth
        .get(&state.pool, project_id)
        .await?
        .ok_or(ended)?;
    state.limits.check(&keys.id, budget)?;
    Ok(Project {
        keys,
        proof: Proof::Console(Arc::new(session)),
    })
}
