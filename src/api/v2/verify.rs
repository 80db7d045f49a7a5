//! `POST /v2/users/verify`: checks a user's password.
//!
//! An unknown email, a user without a password (made through v0), a deleted user and a wrong
//! password all get the same 401 after the same argon2 work (a dummy hash stands in for a
//! missing one), so the answer tells nothing about which emails exist. A correct password whose
//! hash is in an older scheme or weaker parameters is re-hashed with the current argon2id.
//! Failed checks lock the user's password (`attempts`): 429 `TOO_MANY_ATTEMPTS`.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;

use super::users::Written;
use super::{ServerWrite, V2BodyErrors, V2KeyErrors, V2Result};
use crate::api::request::{parse_object, read_body};
use crate::api::rules::MAX_PASSWORD_CHARS;
use crate::attempts::{self, Credential};
use crate::auth::Caller;
use crate::db::schema::users;
use crate::error::{Error, V2ErrorBody};
use crate::passwords::Check;
use crate::users::Identifier;
use crate::{db, scope, time, AppState};

/// Body of `POST /v2/users/verify`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The login email.
    #[schema(max_length = 254)]
    pub email: String,
    /// The password to check.
    #[schema(max_length = 1024)]
    pub password: String,
}

/// `POST /v2/users/verify` `{"email", "password"}`: whether the password is the user's.
///
/// 200 `{"id", "error_codes": []}`; 401 `INVALID_CREDENTIALS` for a wrong password or an email
/// with no such user, alike; 409 `USER_DISABLED` for a disabled user's right password; 429 `TOO_MANY_ATTEMPTS`
/// (with `Retry-After`) while the password is locked after failed checks; 503 when the hashing
/// queue is full.
#[utoipa::path(
    post,
    path = "/v2/users/verify",
    operation_id = "v2_verify_password",
    tag = "v2",
    request_body = VerifyBody,
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The password is the user's", body = Written),
        (status = 400, description = "INVALID_BODY", body = V2ErrorBody),
        (status = 401, description = "INVALID_CREDENTIALS (also for an unknown email)", body = V2ErrorBody),
        (status = 409, description = "USER_DISABLED", body = V2ErrorBody),
        V2KeyErrors, V2BodyErrors,
    )
)]
pub(crate) async fn verify_password(
    caller: Caller<ServerWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> V2Result {
    let body: VerifyBody = parse_object(&read_body(&req, payload).await?)?;
    if body.password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(Error::problem(
            "PASSWORD_INVALID",
            format!("password must be at most {MAX_PASSWORD_CHARS} characters"),
        )
        .into());
    }
    let project = caller.into_project();
    let found = match Identifier::parse(&body.email) {
        Ok(email) => {
            let reader = project.clone();
            db::run(&state.pool, move |conn| {
                let user = crate::users::find_by_identifier(conn, reader.id(), &email)?;
                let Some(user) = user else { return Ok(None) };
                let hash: Option<String> = scope::users_of(reader.id())
                    .filter(users::id.eq(&user.id))
                    .select(users::password_hash)
                    .first(conn)?;
                Ok(hash.map(|hash| (user.id, user.disabled_at.is_some(), hash)))
            })
            .await?
        }
        Err(_) => None,
    };
    let Some((user_id, disabled, stored)) = found else {
        state.hasher.verify(&body.password, None).await?;
        return Err(Error::InvalidCredentials.into());
    };
    let (charged, id) = (project.clone(), user_id.clone());
    db::run(&state.pool, move |conn| {
        attempts::charge(conn, charged.id(), &id, Credential::Password, time::now())
    })
    .await?;
    let checked = state
        .hasher
        .verify(&body.password, Some(stored.clone()))
        .await;
    let (settled, id) = (project.clone(), user_id.clone());
    let check = match checked {
        Ok(check) => check,
        Err(err) => {
            db::run(&state.pool, move |conn| {
                attempts::refund(conn, settled.id(), &id, Credential::Password)
            })
            .await?;
            return Err(err.into());
        }
    };
    let Check { matches, stale } = check;
    if !matches {
        return Err(Error::InvalidCredentials.into());
    }
    // Told only to a caller who knows the password: otherwise a disabled user is answered
    // like any wrong password, after the same work.
    if disabled {
        return Err(Error::UserDisabled.into());
    }
    // The count first: the re-hash below is a courtesy (a full hashing queue leaves the old
    // hash for the next check) and must not leave a right password counted as a failure.
    let (reset, reset_id) = (settled.clone(), id.clone());
    db::run(&state.pool, move |conn| {
        attempts::reset(conn, reset.id(), &reset_id, Credential::Password)
    })
    .await?;
    if stale {
        if let Ok(fresh) = state.hasher.hash(&body.password).await {
            db::run(&state.pool, move |conn| {
                // Only over the hash just checked: a password changed meanwhile stays changed.
                diesel::update(
                    scope::users_of(settled.id())
                        .filter(users::id.eq(&id))
                        .filter(users::password_hash.eq(&stored)),
                )
                .set(users::password_hash.eq(fresh))
                .execute(conn)?;
                Ok(())
            })
            .await?;
        }
    }
    Ok(HttpResponse::Ok().json(Written {
        id: user_id,
        error_codes: [],
    }))
}
