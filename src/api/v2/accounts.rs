//! v2 accounts: open one for a user with a KYC reference.

use actix_web::{web, HttpRequest, HttpResponse};

use super::users::Written;
use super::validate::{parse_body, parse_open_account, OpenAccountBody};
use super::{ServerWrite, V2BodyErrors, V2KeyErrors, V2Result};
use crate::accounts;
use crate::api::idempotency;
use crate::api::request::read_body;
use crate::auth::Caller;
use crate::error::{Error, V2ErrorBody};
use crate::ids::UserId;
use crate::{db, AppState};

/// `POST /v2/accounts` `{"user_id": "...", "account_type": "checking" | "savings"}`: opens an
/// account for a user that has a `kyc_id` (else 409 `KYC_REQUIRED`) and is not disabled (else
/// 409 `USER_DISABLED`).
#[utoipa::path(
    post,
    path = "/v2/accounts",
    operation_id = "v2_open_account",
    tag = "v2",
    request_body = OpenAccountBody,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters: a retry with the same key and body gets the first answer again (`Idempotent-Replayed: true`)")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 201, description = "Opened", body = Written),
        (status = 400, description = "Every validation problem", body = V2ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = V2ErrorBody),
        (status = 409, description = "KYC_REQUIRED, USER_DISABLED, or IDEMPOTENCY_KEY_IN_USE (see Retry-After)", body = V2ErrorBody),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED", body = V2ErrorBody),
        V2KeyErrors, V2BodyErrors,
    )
)]
pub(crate) async fn open_account(
    caller: Caller<ServerWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> V2Result {
    let body = read_body(&req, payload).await?;
    let project = caller.into_project();
    idempotency::once(&req, &state, &project, &body, async {
        let (user, account_type) = parse_open_account(&parse_body(&body)?)?;
        let user_id = UserId::parse(&user).ok_or(Error::UserNotFound)?;
        let opener = project.clone();
        let account = db::run(&state.pool, move |conn| {
            accounts::open(conn, opener.id(), &user_id, &account_type)
        })
        .await?;
        Ok(HttpResponse::Created().json(Written {
            id: account.id,
            error_codes: [],
        }))
    })
    .await
}
