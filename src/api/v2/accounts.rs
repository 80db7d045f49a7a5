//! v2 accounts: open one for a user with a KYC reference.

use actix_web::{web, HttpRequest, HttpResponse};

use super::users::Written;
use super::validate::{object, parse_open_account, OpenAccountBody};
use super::{ServerWrite, V2BodyErrors, V2KeyErrors, V2Result};
use crate::accounts;
use crate::auth::Caller;
use crate::error::{Error, V2ErrorBody};
use crate::ids::UserId;
use crate::{db, AppState};

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
    caller: Caller<ServerWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> V2Result {
    let (user, account_type) = parse_open_account(&object(&req, payload).await?)?;
    let user_id = UserId::parse(&user).ok_or(Error::UserNotFound)?;
    let project = caller.into_project();
    let account = db::run(&state.pool, move |conn| {
        accounts::open(conn, project.id(), &user_id, &account_type)
    })
    .await?;
    Ok(HttpResponse::Created().json(Written {
        id: account.id,
        error_codes: [],
    }))
}
