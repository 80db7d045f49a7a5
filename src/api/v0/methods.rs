//! Cotter's method calls: enroll, change or remove a PIN or a device key
//! (`PUT /api/v0/user/{id}`, `PUT /api/v0/user/methods?cotter_user_id=`), and the enrollment
//! checks the SDKs make before a login (`GET /api/v0/user/enrolled/…`,
//! `GET /api/v0/user/methods?…`).
//!
//! All take `API_KEY_ID` alone, as the SDKs send it (a sent secret is still checked). A user of
//! another project, a deleted user and an unknown id answer alike: 404 for a change, "not
//! enrolled" for a check.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{AppRead, AppWrite, V0BodyErrors, V0KeyErrors};
use crate::api::doc::error_set;
use crate::api::request::{parse_object, read_body, read_query};
use crate::attempts::{self, Credential};
use crate::auth::{Caller, Project};
use crate::error::{CotterError, CotterErrorBody, Error};
use crate::methods::keys::{self, Algorithm, DeviceKey};
use crate::methods::{self, pin, Device, Method};
use crate::users::{self, User, UserJson};
use crate::{db, time, AppState};

type Result<T, E = CotterError> = std::result::Result<T, E>;

/// Body of the method update, as every SDK sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MethodUpdate {
    /// `PIN`, `BIOMETRIC` or `TRUSTED_DEVICE`.
    pub method: String,
    /// `true` enrolls (or changes) the method; `false` removes it (for a key: the key in `code`).
    pub enrolled: bool,
    /// The PIN (4 to 12 digits), or the device's public key (base64: P-256 or RSA
    /// SubjectPublicKeyInfo, or a raw Ed25519 key).
    #[schema(max_length = 4096)]
    pub code: String,
    /// `true` to change an enrolled PIN; `current_code` must then be the current one.
    #[serde(default)]
    pub change_code: Option<bool>,
    /// The current PIN, when changing it.
    #[serde(default)]
    pub current_code: Option<String>,
    /// Keys only: `EC`, `RSA` or `ED25519`; read from the key when absent.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// The device's name (Android, React Native, Flutter).
    #[schema(max_length = 200)]
    #[serde(default)]
    pub device_name: Option<String>,
    /// The device's maker or kind.
    #[schema(max_length = 200)]
    #[serde(default)]
    pub device_type: Option<String>,
}

/// Query of `PUT /api/v0/user/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Accepted and ignored for now: the answer is the same as without it (no tokens yet).
    #[param(value_type = Option<bool>)]
    pub oauth_token: Option<String>,
}

impl TokenQuery {
    /// Checks `oauth_token`: `true` or `false` when sent (it changes nothing yet).
    pub fn check(&self) -> Result<(), Error> {
        oauth_token_flag(self.oauth_token.as_deref())
    }
}

fn oauth_token_flag(raw: Option<&str>) -> Result<(), Error> {
    match raw {
        None | Some("true" | "false") => Ok(()),
        Some(_) => Err(Error::Invalid("oauth_token must be true or false".into())),
    }
}

/// Query of `PUT /api/v0/user/methods`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ByCotterIdQuery {
    /// The user's `ID` (or its `client_user_id`).
    pub cotter_user_id: Option<String>,
    /// Accepted and ignored for now: the answer is the same as without it (no tokens yet).
    #[param(value_type = Option<bool>)]
    pub oauth_token: Option<String>,
}

/// The project's user named by either id, refused when disabled.
async fn enrollable_user(state: &AppState, project: &Project, id: String) -> Result<User, Error> {
    let project = project.clone();
    let user = db::run(&state.pool, move |conn| {
        users::find_by_any_id(conn, project.id(), &id)
    })
    .await?;
    if user.disabled_at.is_some() {
        return Err(Error::UserDisabled);
    }
    Ok(user)
}

/// Checks a PIN against the user's enrolled one, as one attempt of the brute-force count:
/// whether it matches (`false` too when none is enrolled); `TooManyAttempts` while locked.
pub(super) async fn check_pin(
    state: &AppState,
    project: &Project,
    user_id: &str,
    pin_given: &str,
) -> Result<bool, Error> {
    let (charged, user) = (project.clone(), user_id.to_owned());
    let stored = db::run(&state.pool, move |conn| {
        let now = time::now();
        attempts::charge(conn, charged.id(), &user, Credential::Pin, now)?;
        methods::pin_hash(conn, charged.id(), &user)
    })
    .await?;
    // A PIN of a form never enrolled is not hashed, but still counts as a failure.
    let verdict = match (&stored, pin::check_form(pin_given)) {
        (Some(_), Ok(())) => state.hasher.verify(pin_given, stored).await,
        _ => Ok(crate::passwords::Check {
            matches: false,
            stale: false,
        }),
    };
    let (settled, user) = (project.clone(), user_id.to_owned());
    match verdict {
        Ok(check) if check.matches => {
            db::run(&state.pool, move |conn| {
                attempts::reset(conn, settled.id(), &user, Credential::Pin)
            })
            .await?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(err) => {
            // Not checked (the hashing queue was full): the attempt is taken back.
            db::run(&state.pool, move |conn| {
                attempts::refund(conn, settled.id(), &user, Credential::Pin)
            })
            .await?;
            Err(err)
        }
    }
}

error_set!(
    /// Errors of both forms of the method update (document only).
    V0MethodErrors,
    CotterErrorBody,
    [
        (400, "Invalid method, PIN, key, body or query (a missing cotter_user_id)"),
        (403, "The current PIN sent is wrong"),
        (404, "No such user in this project"),
        (409, "A PIN is enrolled already or none is there to change, the user is disabled, or it has the most keys allowed"),
    ]
);

/// Applies a method update to the user; the updated user.
async fn update(
    state: &AppState,
    project: &Project,
    user: User,
    body: MethodUpdate,
) -> Result<User, Error> {
    let method = Method::parse(&body.method)?;
    let now = time::now();
    let project_id = project.id().clone();
    let user_id = user.id.clone();
    if method.is_key() {
        let algorithm = body
            .algorithm
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(Algorithm::parse)
            .transpose()?;
        let key = DeviceKey::parse(&body.code, algorithm)?;
        let device = Device::parse(body.device_name, body.device_type)?;
        return db::run(&state.pool, move |conn| {
            if body.enrolled {
                methods::enroll_key(conn, &project_id, &user_id, method, &key, &device, now)
            } else {
                methods::remove(conn, &project_id, &user_id, method, Some(&key.hash()), now)
            }
        })
        .await;
    }
    let change = body.change_code.unwrap_or(false);
    let (reader, id) = (project_id.clone(), user_id.clone());
    let has_pin = db::run(&state.pool, move |conn| {
        methods::pin_hash(conn, &reader, &id)
    })
    .await?
    .is_some();
    if !body.enrolled && !has_pin {
        // Removing what is not enrolled changes nothing, as for keys.
        return Ok(user);
    }
    if body.enrolled && !change && has_pin {
        return Err(Error::Conflict(
            "a PIN is already enrolled: send change_code true and current_code to change it",
        ));
    }
    if body.enrolled && change && !has_pin {
        return Err(Error::Conflict(
            "no PIN is enrolled to change: enroll one without change_code",
        ));
    }
    if !body.enrolled {
        // Removing a PIN needs the PIN, so that knowing the app's key id is not enough.
        if !check_pin(state, project, &user_id, &body.code).await? {
            return Err(Error::Forbidden("code is not the enrolled PIN"));
        }
        return db::run(&state.pool, move |conn| {
            methods::remove(conn, &project_id, &user_id, Method::Pin, None, now)
        })
        .await;
    }
    pin::check_new(&body.code)?;
    if change {
        let current = body.current_code.as_deref().unwrap_or("");
        if current.is_empty() {
            return Err(Error::Invalid(
                "current_code is required to change the PIN".into(),
            ));
        }
        if !check_pin(state, project, &user_id, current).await? {
            return Err(Error::Forbidden("current_code is not the enrolled PIN"));
        }
        let hash = state.hasher.hash(&body.code).await?;
        return db::run(&state.pool, move |conn| {
            methods::change_pin(conn, &project_id, &user_id, hash, now)
        })
        .await;
    }
    let hash = state.hasher.hash(&body.code).await?;
    db::run(&state.pool, move |conn| {
        methods::enroll_pin(conn, &project_id, &user_id, hash, now)
    })
    .await
}

/// `PUT /api/v0/user/{client_user_id}`: enrolls, changes or removes a method of the user named
/// by either id.
///
/// 200 with the User (`enrolled`, `default_method` updated). A key enrolled again is a 200
/// too. 400 for an invalid method, PIN (digits only, 4–12, not one digit repeated, not a straight
/// run) or key; 403 when `current_code` (changing) or `code` (removing a PIN) is not the
/// enrolled PIN; 404 for no such user; 409 when a PIN is enrolled already (change it with
/// `change_code`) or none is there to change, the user is disabled or has 20 keys for the
/// method; 429 while the PIN is locked after failed checks. Removing what is not enrolled is a
/// 200 that changes nothing.
#[utoipa::path(
    put,
    path = "/api/v0/user/{client_user_id}",
    operation_id = "v0_update_methods",
    tag = "v0",
    request_body = MethodUpdate,
    params(("client_user_id" = String, Path, description = "The app's id for the user (`client_user_id`) or the user's `ID`"), TokenQuery),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "The updated user", body = UserJson),
        V0MethodErrors, V0KeyErrors, V0BodyErrors,
    )
)]
pub(crate) async fn update_methods(
    caller: Caller<AppWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    read_query::<TokenQuery>(&req)?.check()?;
    let body: MethodUpdate = parse_object(&read_body(&req, payload).await?)?;
    let project = caller.into_project();
    let user = enrollable_user(&state, &project, path.into_inner()).await?;
    let user = update(&state, &project, user, body).await?;
    Ok(HttpResponse::Ok().json(UserJson::try_from(user)?))
}

/// `PUT /api/v0/user/methods?cotter_user_id=…`: the same update, the user named by its `ID`.
#[utoipa::path(
    put,
    path = "/api/v0/user/methods",
    operation_id = "v0_update_methods_by_cotter_id",
    tag = "v0",
    request_body = MethodUpdate,
    params(ByCotterIdQuery),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "The updated user", body = UserJson),
        V0MethodErrors, V0KeyErrors, V0BodyErrors,
    )
)]
pub(crate) async fn update_methods_by_cotter_id(
    caller: Caller<AppWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let query: ByCotterIdQuery = read_query(&req)?;
    oauth_token_flag(query.oauth_token.as_deref())?;
    let id = query
        .cotter_user_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::Invalid("the cotter_user_id query parameter is required".into()))?;
    let body: MethodUpdate = parse_object(&read_body(&req, payload).await?)?;
    let project = caller.into_project();
    let user = enrollable_user(&state, &project, id).await?;
    let user = update(&state, &project, user, body).await?;
    Ok(HttpResponse::Ok().json(UserJson::try_from(user)?))
}

/// The answer of every enrollment check, as every SDK decodes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Enrolled {
    /// Whether the method (and the key, when one was sent) is enrolled.
    pub enrolled: bool,
    /// The method asked about.
    pub method: String,
}

/// Whether the user named by either id has the method (and the key) enrolled: `false` for no
/// such user.
async fn enrolled(
    state: &AppState,
    project: Project,
    id: String,
    method: &str,
    enc_key: Option<&str>,
) -> Result<HttpResponse> {
    let method = Method::parse(method)?;
    let key_hash = match enc_key.filter(|k| !k.is_empty()) {
        Some(enc_key) => Some(keys::key_from_enc_key(enc_key)?.hash()),
        None => None,
    };
    let found = db::run(&state.pool, move |conn| {
        let user = match users::find_by_any_id(conn, project.id(), &id) {
            Ok(user) => user,
            Err(Error::UserNotFound) => return Ok(false),
            Err(other) => return Err(other),
        };
        methods::is_enrolled(conn, project.id(), &user.id, method, key_hash.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(Enrolled {
        enrolled: found,
        method: method.as_str().to_owned(),
    }))
}

/// The user and method of an enrollment check's path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CheckPath {
    /// The app's id for the user or its `ID`.
    client_user_id: String,
    /// `PIN`, `BIOMETRIC` or `TRUSTED_DEVICE`.
    method: String,
}

/// `GET /api/v0/user/enrolled/{client_user_id}/{method}`: whether the user has the method
/// (a PIN, or any key of a key method) enrolled. 200 `{"enrolled": false}` for no such user.
#[utoipa::path(
    get,
    path = "/api/v0/user/enrolled/{client_user_id}/{method}",
    operation_id = "v0_enrolled",
    tag = "v0",
    params(CheckPath),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "Whether it is enrolled", body = Enrolled),
        (status = 400, description = "Unknown method", body = CotterErrorBody),
        V0KeyErrors,
    )
)]
pub(crate) async fn enrolled_method(
    caller: Caller<AppRead>,
    state: web::Data<AppState>,
    path: web::Path<CheckPath>,
) -> Result<HttpResponse> {
    let CheckPath {
        client_user_id,
        method,
    } = path.into_inner();
    enrolled(&state, caller.into_project(), client_user_id, &method, None).await
}

/// `GET /api/v0/user/enrolled/{client_user_id}/{method}/{encKey}`: whether this device's key
/// is enrolled for the method. `encKey` is base64 (standard or URL-safe, padded or not) of the
/// key string the SDK enrolled.
#[utoipa::path(
    get,
    path = "/api/v0/user/enrolled/{client_user_id}/{method}/{encKey}",
    operation_id = "v0_enrolled_key",
    tag = "v0",
    params(
        CheckPath,
        ("encKey" = String, Path, description = "base64 (any alphabet) of the public key string"),
    ),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "Whether it is enrolled", body = Enrolled),
        (status = 400, description = "Unknown method, or a key that is not base64 of a public key", body = CotterErrorBody),
        V0KeyErrors,
    )
)]
pub(crate) async fn enrolled_key(
    caller: Caller<AppRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let (id, method, enc_key) = path.into_inner();
    enrolled(&state, caller.into_project(), id, &method, Some(&enc_key)).await
}

/// `GET /api/v0/user/enrolled/any/{client_user_id}/{method}`: whether the user has the method
/// enrolled on any device.
#[utoipa::path(
    get,
    path = "/api/v0/user/enrolled/any/{client_user_id}/{method}",
    operation_id = "v0_enrolled_any",
    tag = "v0",
    params(CheckPath),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "Whether it is enrolled", body = Enrolled),
        (status = 400, description = "Unknown method", body = CotterErrorBody),
        V0KeyErrors,
    )
)]
pub(crate) async fn enrolled_any(
    caller: Caller<AppRead>,
    state: web::Data<AppState>,
    path: web::Path<CheckPath>,
) -> Result<HttpResponse> {
    let CheckPath {
        client_user_id,
        method,
    } = path.into_inner();
    enrolled(&state, caller.into_project(), client_user_id, &method, None).await
}

/// Query of `GET /api/v0/user/methods`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MethodQuery {
    /// The user's `ID` (or its `client_user_id`).
    pub cotter_user_id: Option<String>,
    /// `PIN`, `BIOMETRIC` or `TRUSTED_DEVICE`.
    pub method: Option<String>,
    /// This device's key, as `encKey` (base64 of the key string; a `+` may arrive as a space).
    pub public_key: Option<String>,
}

/// `GET /api/v0/user/methods?cotter_user_id=&method=&public_key=`: the check of
/// `/user/enrolled/…`, the user named by its `ID`.
#[utoipa::path(
    get,
    path = "/api/v0/user/methods",
    operation_id = "v0_enrolled_by_cotter_id",
    tag = "v0",
    params(MethodQuery),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "Whether it is enrolled", body = Enrolled),
        (status = 400, description = "Missing cotter_user_id or method, unknown method, or an invalid key", body = CotterErrorBody),
        V0KeyErrors,
    )
)]
pub(crate) async fn enrolled_by_cotter_id(
    caller: Caller<AppRead>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let query: MethodQuery = read_query(&req)?;
    let id = query
        .cotter_user_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::Invalid("the cotter_user_id query parameter is required".into()))?;
    let method = query
        .method
        .ok_or_else(|| Error::Invalid("the method query parameter is required".into()))?;
    enrolled(
        &state,
        caller.into_project(),
        id,
        &method,
        query.public_key.as_deref(),
    )
    .await
}

/// `POST /api/v0/user/reset/{step}/{client_user_id}` (`start`, `verify`, `respond`): Cotter's
/// PIN reset by an e-mailed code. This server sends no e-mail yet: 501 in Cotter's shape, after
/// the keys are checked.
#[utoipa::path(
    post,
    path = "/api/v0/user/reset/{step}/{client_user_id}",
    operation_id = "v0_reset_pin",
    tag = "v0",
    params(
        ("step" = String, Path, description = "`start`, `verify` or `respond` (every step answers the same)"),
        ("client_user_id" = String, Path, description = "The app's id for the user or its `ID`"),
    ),
    security(("api_key_id" = [])),
    responses(
        (status = 501, description = "PIN reset needs e-mail delivery, which this server does not do", body = CotterErrorBody),
        V0KeyErrors,
    )
)]
pub(crate) async fn reset_pin(_caller: Caller<AppWrite>) -> Result<HttpResponse> {
    Err(Error::NotImplemented(
        "PIN reset by e-mail is not available on this server: it sends no e-mail. Remove the PIN \
         with its current code, or have an operator help the user",
    )
    .into())
}
