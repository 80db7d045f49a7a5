//! v2 users: sign up with a login (email and password), phone and names; read a profile; set
//! the KYC reference.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::validate::{
    object, parse_body, parse_new_user, parse_patch, NewUserBody, PatchUserBody,
};
use super::{ServerRead, ServerWrite, V2BodyErrors, V2KeyErrors, V2Result};
use crate::accounts;
use crate::api::idempotency;
use crate::api::request::read_body;
use crate::auth::{Caller, Project};
use crate::error::{Error, V2ErrorBody};
use crate::ids::UserId;
use crate::users::{self, NewProfileUser};
use crate::{db, time, AppState};

/// `{"id": ..., "error_codes": []}`, the answer of every successful write.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Written {
    /// The user's or account's id.
    pub(super) id: String,
    /// Always empty on success.
    #[schema(value_type = Vec<String>, max_items = 0)]
    pub(super) error_codes: [&'static str; 0],
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
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters: a retry with the same key and body gets the first answer again (`Idempotent-Replayed: true`)")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 201, description = "Created", body = Written, links(
            ("GetUser" = (operation_id = "v2_get_user", parameters(("user_id" = "$response.body#/id")))),
            ("PatchUser" = (operation_id = "v2_patch_user", parameters(("user_id" = "$response.body#/id")))),
        )),
        (status = 400, description = "Every validation problem", body = V2ErrorBody),
        (status = 409, description = "EMAIL_TAKEN, or IDEMPOTENCY_KEY_IN_USE (see Retry-After)", body = V2ErrorBody),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED", body = V2ErrorBody),
        V2KeyErrors, V2BodyErrors,
    )
)]
pub(crate) async fn create_user(
    caller: Caller<ServerWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> V2Result {
    let body = read_body(&req, payload).await?;
    let project = caller.into_project();
    // The key's fingerprint leaves the password out: a fast hash of it must not be stored.
    let fingerprinted = idempotency::without_password(&body);
    let work = create(&state, &project, &body);
    idempotency::once(&req, &state, &project, &fingerprinted, work).await
}

/// The create itself, once its keys and body are in.
async fn create(state: &AppState, project: &Project, body: &[u8]) -> V2Result {
    let new = parse_new_user(parse_body(body)?)?;
    let project = project.clone();

    // A taken email is answered before the deliberately slow hash; the unique index still
    // decides between concurrent creates.
    let (checked, email) = (project.clone(), new.email.clone());
    if db::run(&state.pool, move |conn| {
        users::identifier_taken(conn, checked.id(), &email)
    })
    .await?
    {
        return Err(Error::IdentifierTaken.into());
    }
    let password_hash = state.hasher.hash(&new.password).await?;
    let row = NewProfileUser {
        user: users::new_user(project.id(), new.email, time::now()),
        password_hash,
        phone_number: new.phone_number,
        first_name: new.first_name,
        last_name: new.last_name,
    };
    let id = row.user.id().to_owned();
    state
        .writes
        .run(move |conn| users::insert_with_profile_within(conn, &row))
        .await?;
    Ok(HttpResponse::Created().json(Written {
        id,
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
    caller: Caller<ServerRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> V2Result {
    let id = UserId::parse(&path).ok_or(Error::UserNotFound)?;
    let project = caller.into_project();
    let profile = db::run(&state.pool, move |conn| {
        let (user, profile) = users::get_with_profile(conn, project.id(), &id)?;
        let account_ids = accounts::ids_of(conn, project.id(), &id)?;
        Ok(UserProfile {
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
        })
    })
    .await?;
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
    caller: Caller<ServerWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> V2Result {
    let kyc_id = parse_patch(&object(&req, payload).await?, &path)?;
    let id = UserId::parse(&path).ok_or(Error::UserNotFound)?;
    let project = caller.into_project();
    let written = id.clone();
    db::run(&state.pool, move |conn| {
        users::set_kyc_id(conn, project.id(), &written, &kyc_id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Written {
        id: id.into_string(),
        error_codes: [],
    }))
}
