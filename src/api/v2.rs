//! Cradl's v2 Users API: user profiles (login, phone, names), KYC references and accounts.
//!
//! Every route needs `API_KEY_ID` and `API_SECRET_KEY` (the data is personal). Responses carry
//! `error_codes`: `[]` on success; on failure every problem found, as stable UPPER_SNAKE codes,
//! with a `msg` for people (`error::V2Error`). A v2 user is a v0 user whose identifier is the
//! login email, so both APIs see the same users.

use crate::api::openapi::{V2BodyErrors, V2ErrorBody, V2KeyErrors};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::accounts::{self, Opened, ACCOUNT_TYPES};
use crate::api::rules::{
    self, valid_email, valid_phone, MAX_KYC_ID_CHARS, MAX_NAME_CHARS, MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
};
use crate::api::{read_json, StrictJson};
use crate::auth::authenticate;
use crate::error::{Error, V2Error};
use crate::limits::Budget;
use crate::users::{self, Identifier, NewProfileUser};
use crate::{db, time, AppState};

type V2Result = Result<HttpResponse, V2Error>;

/// Registers the v2 routes under `/v2`, with 404 and 405 in the v2 error shape.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v2")
            .service(
                web::resource("/users")
                    .route(web::post().to(create_user))
                    .default_service(method_not_allowed("POST")),
            )
            .service(
                web::resource("/users/{user_id}")
                    .route(web::get().to(get_user))
                    .route(web::patch().to(patch_user))
                    .default_service(method_not_allowed("GET, PATCH")),
            )
            .service(
                web::resource("/accounts")
                    .route(web::post().to(open_account))
                    .default_service(method_not_allowed("POST")),
            )
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> V2Result {
    Err(V2Error::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "not found",
    ))
}

/// 405 in the v2 shape, with `Allow` naming the methods the route takes.
fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(
        move || async move { Err::<HttpResponse, V2Error>(Error::MethodNotAllowed(allow).into()) },
    )
}

/// The body of `POST /v2/users`, for the document: the handler validates the JSON by hand, so
/// that it can report every problem at once.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    login: LoginBody,
    #[schema(schema_with = rules::phone_schema)]
    phone_number: String,
    #[schema(schema_with = rules::name_schema)]
    first_name: String,
    #[schema(schema_with = rules::name_schema)]
    last_name: String,
}

/// `login` of `POST /v2/users`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    #[schema(schema_with = rules::email_schema)]
    email: String,
    #[schema(schema_with = rules::password_schema)]
    password: String,
}

/// The body of `PATCH /v2/users/{user_id}`: only `kyc_id` may be set. The body may also repeat
/// the path's `user_id` (a Cradl client habit); any other value is `USER_ID_MISMATCH`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchUserBody {
    #[schema(schema_with = rules::kyc_id_schema)]
    kyc_id: String,
}

/// The body of `POST /v2/accounts`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenAccountBody {
    /// The user's id; an id that is not a UUID is answered like an unknown one.
    #[schema(schema_with = rules::uuid_schema)]
    user_id: String,
    account_type: AccountType,
}

/// The kinds of account.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub(crate) enum AccountType {
    Checking,
    Savings,
}

/// Every problem found in a request body, reported together as one 400.
#[derive(Default)]
struct Problems {
    codes: Vec<&'static str>,
    messages: Vec<String>,
}

impl Problems {
    fn add(&mut self, code: &'static str, msg: impl Into<String>) {
        if !self.codes.contains(&code) {
            self.codes.push(code);
        }
        self.messages.push(msg.into());
    }

    /// Reports keys of `object` that are not in `allowed` (`FIELD_NOT_ALLOWED`).
    fn only(&mut self, object: &Map<String, Value>, allowed: &[&str], within: &str) {
        let mut extra: Vec<&str> = object
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !extra.is_empty() {
            extra.sort_unstable();
            self.add(
                "FIELD_NOT_ALLOWED",
                format!("{within}field(s) not allowed here: {}", extra.join(", ")),
            );
        }
    }

    fn finish(self) -> Result<(), V2Error> {
        if self.codes.is_empty() {
            return Ok(());
        }
        Err(V2Error {
            status: StatusCode::BAD_REQUEST,
            codes: self.codes,
            msg: self.messages.join("; "),
            retry_after: None,
            allow: None,
        })
    }
}

/// Reads the body, which must be a JSON object (`read_json` refuses anything else), with
/// duplicate keys refused at every depth.
async fn object(req: &HttpRequest, payload: web::Payload) -> Result<Map<String, Value>, V2Error> {
    match read_json::<StrictJson>(req, payload).await? {
        StrictJson(Value::Object(map)) => Ok(map),
        _ => Err(Error::BadRequest("request body must be a JSON object".into()).into()),
    }
}

/// A required string field: `None` after recording `<FIELD>_REQUIRED` or `<FIELD>_INVALID`.
fn string_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    required: &'static str,
    invalid: &'static str,
    problems: &mut Problems,
) -> Option<&'a str> {
    match object.get(key) {
        None | Some(Value::Null) => {
            problems.add(required, format!("{key} is required"));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            problems.add(invalid, format!("{key} must be a string"));
            None
        }
    }
}

/// A create request that passed validation.
struct NewUser {
    email: Identifier,
    password: String,
    phone_number: String,
    first_name: String,
    last_name: String,
}

fn parse_new_user(body: Map<String, Value>) -> Result<NewUser, V2Error> {
    let mut problems = Problems::default();
    problems.only(
        &body,
        &["login", "phone_number", "first_name", "last_name"],
        "",
    );

    let (mut email, mut password) = (None, None);
    match body.get("login") {
        None | Some(Value::Null) => {
            problems.add("EMAIL_REQUIRED", "login.email is required");
            problems.add("PASSWORD_REQUIRED", "login.password is required");
        }
        Some(Value::Object(login)) => {
            problems.only(login, &["email", "password"], "login: ");
            if let Some(raw) = string_field(
                login,
                "email",
                "EMAIL_REQUIRED",
                "EMAIL_INVALID",
                &mut problems,
            ) {
                match Identifier::parse(raw) {
                    Ok(id) if valid_email(raw) => email = Some(id),
                    _ => problems.add(
                        "EMAIL_INVALID",
                        "login.email is not a valid email address (ASCII local@domain.tld, \
                         at most 254 characters, no surrounding spaces)",
                    ),
                }
            }
            if let Some(raw) = string_field(
                login,
                "password",
                "PASSWORD_REQUIRED",
                "PASSWORD_INVALID",
                &mut problems,
            ) {
                // Counted as sent, before any other work is done on it.
                let chars = raw.chars().count();
                if chars > MAX_PASSWORD_CHARS {
                    problems.add(
                        "PASSWORD_TOO_LONG",
                        format!("login.password must be at most {MAX_PASSWORD_CHARS} characters"),
                    );
                } else if chars < MIN_PASSWORD_CHARS {
                    problems.add(
                        "PASSWORD_TOO_SHORT",
                        format!("login.password must be at least {MIN_PASSWORD_CHARS} characters"),
                    );
                } else {
                    password = Some(raw.to_owned());
                }
            }
        }
        Some(_) => problems.add(
            "LOGIN_INVALID",
            "login must be an object with email and password",
        ),
    }

    let phone_number = string_field(
        &body,
        "phone_number",
        "PHONE_REQUIRED",
        "PHONE_INVALID",
        &mut problems,
    )
    .and_then(|raw| {
        let ok = valid_phone(raw);
        if !ok {
            problems.add(
                "PHONE_INVALID",
                "phone_number must be E.164: + and 2 to 15 digits, the first not 0",
            );
        }
        ok.then(|| raw.to_owned())
    });
    let mut name = |key: &str, required, invalid| {
        string_field(&body, key, required, invalid, &mut problems).and_then(|raw| {
            let name = rules::trimmed_text(raw, MAX_NAME_CHARS).map(str::to_owned);
            if name.is_none() {
                problems.add(
                    invalid,
                    format!(
                        "{key} must be 1 to {MAX_NAME_CHARS} characters without control characters"
                    ),
                );
            }
            name
        })
    };
    let first_name = name("first_name", "FIRST_NAME_REQUIRED", "FIRST_NAME_INVALID");
    let last_name = name("last_name", "LAST_NAME_REQUIRED", "LAST_NAME_INVALID");

    problems.finish()?;
    match (email, password, phone_number, first_name, last_name) {
        (Some(email), Some(password), Some(phone_number), Some(first_name), Some(last_name)) => {
            Ok(NewUser {
                email,
                password,
                phone_number,
                first_name,
                last_name,
            })
        }
        _ => Err(Error::Internal("validation passed with a field missing".into()).into()),
    }
}

fn email_taken() -> V2Error {
    V2Error::new(
        StatusCode::CONFLICT,
        "EMAIL_TAKEN",
        "this email is already used in this project",
    )
}

/// `{"id": ..., "error_codes": []}`, the answer of every successful write.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Written<'a> {
    /// The user's or account's id.
    id: &'a str,
    /// Always empty on success.
    #[schema(value_type = Vec<String>, max_items = 0)]
    error_codes: [&'static str; 0],
}

/// `POST /v2/users`: creates a user with a login (email and password), phone and names.
///
/// 201 `{"id", "error_codes": []}`; 400 with every validation problem; 409 `EMAIL_TAKEN` when the
/// email is any user's identifier in this project (v0 or v2); 503 when the hashing queue is full.
#[utoipa::path(
    post,
    path = "/v2/users",
    operation_id = "v2_create_user",
    tag = "v2",
    request_body = NewUserBody,
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 201, description = "Created", body = Written, links(
            ("GetUser" = (operation_id = "v2_get_user", parameters(("user_id" = "$response.body#/id")))),
            ("PatchUser" = (operation_id = "v2_patch_user", parameters(("user_id" = "$response.body#/id")))),
        )),
        (status = 400, description = "Every validation problem", body = V2ErrorBody),
        (status = 409, description = "EMAIL_TAKEN", body = V2ErrorBody),
        V2KeyErrors, V2BodyErrors,
    )
)]
pub(crate) async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> V2Result {
    let project = authenticate(&req, true, Budget::Write).await?;
    let new = parse_new_user(object(&req, payload).await?)?;

    // A taken email is answered before the deliberately slow hash; the unique index still
    // decides between concurrent creates.
    let (issuer, email) = (project.issuer.clone(), new.email.clone());
    if db::run(&state.pool, move |conn| {
        users::identifier_taken(conn, &issuer, &email)
    })
    .await?
    {
        return Err(email_taken());
    }
    let password_hash = state.hasher.hash(&new.password).await?;
    let row = NewProfileUser {
        user: users::new_user(&project.issuer, new.email, time::now()),
        password_hash,
        phone_number: new.phone_number,
        first_name: new.first_name,
        last_name: new.last_name,
    };
    let id = row.user.id.clone();
    db::run(&state.pool, move |conn| {
        users::insert_with_profile(conn, &row)
    })
    .await
    .map_err(|e| match e {
        Error::Conflict(_) => email_taken(),
        other => other.into(),
    })?;
    Ok(HttpResponse::Created().json(Written {
        id: &id,
        error_codes: [],
    }))
}

/// The login part of a user: the email only, never the password or its hash.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Login {
    email: String,
}

/// A user as `GET /v2/users/{user_id}` answers it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserProfile {
    id: String,
    kyc_id: Option<String>,
    login: Login,
    phone_number: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// Oldest first.
    account_ids: Vec<String>,
    /// Always empty on success.
    #[schema(value_type = Vec<String>, max_items = 0)]
    error_codes: [&'static str; 0],
}

fn user_id(raw: &str) -> Result<Uuid, V2Error> {
    rules::parse_id(raw).ok_or_else(V2Error::user_not_found)
}

/// `GET /v2/users/{user_id}`: the user's profile and account ids (oldest first). 404
/// `USER_NOT_FOUND` for a user of another project, as for a missing one.
#[utoipa::path(
    get,
    path = "/v2/users/{user_id}",
    operation_id = "v2_get_user",
    tag = "v2",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID); any other string is answered like an unknown id")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The user", body = UserProfile),
        (status = 404, description = "USER_NOT_FOUND", body = V2ErrorBody),
        V2KeyErrors,
    )
)]
pub(crate) async fn get_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> V2Result {
    let project = authenticate(&req, true, Budget::Read).await?;
    let id = user_id(&path)?;
    let found = db::run(&state.pool, move |conn| {
        let Some((user, profile)) = users::find_with_profile(conn, &project.issuer, &id)? else {
            return Ok(None);
        };
        let account_ids = accounts::ids_of(conn, &project.issuer, &user.id)?;
        Ok(Some(UserProfile {
            id: user.id,
            kyc_id: profile.kyc_id,
            login: Login {
                email: user.identifier,
            },
            phone_number: profile.phone_number,
            first_name: profile.first_name,
            last_name: profile.last_name,
            account_ids,
            error_codes: [],
        }))
    })
    .await?;
    let profile = found.ok_or_else(V2Error::user_not_found)?;
    Ok(HttpResponse::Ok().json(profile))
}

/// `PATCH /v2/users/{user_id}` `{"kyc_id": "..."}`: sets the user's KYC reference. Only `kyc_id`
/// (and a `user_id` equal to the path's) may be sent: anything else is `FIELD_NOT_ALLOWED` and
/// nothing is stored.
#[utoipa::path(
    patch,
    path = "/v2/users/{user_id}",
    operation_id = "v2_patch_user",
    tag = "v2",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID); any other string is answered like an unknown id")),
    request_body = PatchUserBody,
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "Updated", body = Written, links(
            ("OpenAccount" = (operation_id = "v2_open_account", request_body = json!({"user_id": "$response.body#/id", "account_type": "checking"}))),
        )),
        (status = 400, description = "Every validation problem", body = V2ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = V2ErrorBody),
        V2KeyErrors, V2BodyErrors,
    )
)]
pub(crate) async fn patch_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> V2Result {
    let project = authenticate(&req, true, Budget::Write).await?;
    let body = object(&req, payload).await?;
    let mut problems = Problems::default();
    problems.only(&body, &["kyc_id", "user_id"], "");
    match body.get("user_id") {
        None => {}
        Some(Value::String(s)) if matches!((rules::parse_id(s), rules::parse_id(&path)), (Some(a), Some(b)) if a == b) =>
            {}
        Some(_) => problems.add(
            "USER_ID_MISMATCH",
            "user_id in the body must equal the user_id of the path",
        ),
    }
    let kyc_id = string_field(
        &body,
        "kyc_id",
        "KYC_ID_REQUIRED",
        "KYC_ID_INVALID",
        &mut problems,
    )
    .and_then(|raw| {
        let kyc_id = rules::trimmed_text(raw, MAX_KYC_ID_CHARS);
        if kyc_id.is_none() {
            problems.add(
                "KYC_ID_INVALID",
                format!(
                    "kyc_id must be 1 to {MAX_KYC_ID_CHARS} characters without control characters"
                ),
            );
        }
        kyc_id.map(str::to_owned)
    });
    problems.finish()?;
    let kyc_id =
        kyc_id.ok_or_else(|| Error::Internal("validation passed without kyc_id".into()))?;
    let id = user_id(&path)?;
    let updated = db::run(&state.pool, move |conn| {
        users::set_kyc_id(conn, &project.issuer, &id, &kyc_id)
    })
    .await?;
    if !updated {
        return Err(V2Error::user_not_found());
    }
    Ok(HttpResponse::Ok().json(Written {
        id: &id.to_string(),
        error_codes: [],
    }))
}

/// `POST /v2/accounts` `{"user_id": "...", "account_type": "checking" | "savings"}`: opens an
/// account for a user that has a `kyc_id` (else 409 `KYC_REQUIRED`).
#[utoipa::path(
    post,
    path = "/v2/accounts",
    operation_id = "v2_open_account",
    tag = "v2",
    request_body = OpenAccountBody,
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 201, description = "Opened", body = Written),
        (status = 400, description = "Every validation problem", body = V2ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = V2ErrorBody),
        (status = 409, description = "KYC_REQUIRED", body = V2ErrorBody),
        V2KeyErrors, V2BodyErrors,
    )
)]
pub(crate) async fn open_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> V2Result {
    let project = authenticate(&req, true, Budget::Write).await?;
    let body = object(&req, payload).await?;
    let mut problems = Problems::default();
    problems.only(&body, &["user_id", "account_type"], "");
    let user = string_field(
        &body,
        "user_id",
        "USER_ID_REQUIRED",
        "USER_ID_INVALID",
        &mut problems,
    )
    .map(str::to_owned);
    let account_type = string_field(
        &body,
        "account_type",
        "ACCOUNT_TYPE_REQUIRED",
        "ACCOUNT_TYPE_INVALID",
        &mut problems,
    )
    .and_then(|raw| {
        let ok = ACCOUNT_TYPES.contains(&raw);
        if !ok {
            problems.add(
                "ACCOUNT_TYPE_INVALID",
                format!("account_type must be one of: {}", ACCOUNT_TYPES.join(", ")),
            );
        }
        ok.then(|| raw.to_owned())
    });
    problems.finish()?;
    let (Some(user), Some(account_type)) = (user, account_type) else {
        return Err(Error::Internal("validation passed with a field missing".into()).into());
    };
    let user_id = user_id(&user)?;
    let opened = db::run(&state.pool, move |conn| {
        accounts::open(conn, &project.issuer, &user_id, &account_type)
    })
    .await?;
    match opened {
        Opened::Account(account) => Ok(HttpResponse::Created().json(Written {
            id: &account.id,
            error_codes: [],
        })),
        Opened::UserNotFound => Err(V2Error::user_not_found()),
        Opened::KycRequired => Err(V2Error::new(
            StatusCode::CONFLICT,
            "KYC_REQUIRED",
            "the user needs a kyc_id before an account can be opened",
        )),
    }
}
