//! Admin users: list (keyset pages, filters, prefix search, total), count, get, create, delete
//! (soft, or `purge=true` for good), restore, disable, enable.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::query::{flag, FilterQuery, List, ListQuery};
use super::{context, cursor, AdminBodyErrors, AdminKeyErrors, AdminUserErrors, Operator};
use crate::api::idempotency;
use crate::api::request::{parse_object, read_body, read_query};
// The body of the v0 create: one type, so the document holds one `CreateUser` schema.
use crate::api::v0::CreateUser;
use crate::auth::Caller;
use crate::error::{AdminError, Error, ProblemBody};
use crate::ids::UserId;
use crate::users::admin::{self, AdminUser, Position, Start, Status};
use crate::{db, time, AppState};

type Result<T, E = AdminError> = std::result::Result<T, E>;

/// The v2 profile of a user; each field null when unset (every field of a user made through
/// v0, which has no login).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ProfileJson {
    /// The login email (the identifier) of a user made through v2.
    email: Option<String>,
    phone_number: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    kyc_id: Option<String>,
}

/// A user as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AdminUserJson {
    #[schema(format = Uuid)]
    id: String,
    /// The app's own id for the user (Cotter's `client_user_id`); the same UUID when it gave
    /// none.
    client_user_id: String,
    /// As given (trimmed).
    identifier: String,
    /// Every identifier of the user, primary first, when it was created with a list (as the
    /// v0 User object shows it); null otherwise.
    #[schema(value_type = Option<Vec<String>>)]
    identifiers: Option<serde_json::Value>,
    /// `active`, `disabled` or `deleted`.
    #[schema(pattern = "^(active|disabled|deleted)$")]
    status: &'static str,
    /// RFC 3339 UTC, as the v0 API prints times.
    created_at: String,
    updated_at: String,
    /// Null unless disabled.
    disabled_at: Option<String>,
    /// Null unless deleted.
    deleted_at: Option<String>,
    enrolled: Vec<String>,
    default_method: Option<String>,
    profile: ProfileJson,
    /// Oldest first.
    account_ids: Vec<String>,
}

impl TryFrom<AdminUser> for AdminUserJson {
    type Error = Error;

    fn try_from(admin: AdminUser) -> std::result::Result<Self, Error> {
        let AdminUser {
            user,
            profile,
            has_login,
            account_ids,
        } = admin;
        let status = Status::of(&user).as_str();
        let identifiers = user.stored_identifiers()?;
        let enrolled = user.stored_enrolled()?;
        Ok(AdminUserJson {
            client_user_id: user.client_user_id.clone(),
            id: user.id,
            profile: ProfileJson {
                email: has_login.then(|| user.identifier.clone()),
                phone_number: profile.phone_number,
                first_name: profile.first_name,
                last_name: profile.last_name,
                kyc_id: profile.kyc_id,
            },
            identifier: user.identifier,
            identifiers,
            status,
            created_at: time::format(user.created_at),
            updated_at: time::format(user.updated_at),
            disabled_at: user.disabled_at.map(time::format),
            deleted_at: user.deleted_at.map(time::format),
            enrolled,
            default_method: user.default_method,
            account_ids,
        })
    }
}

/// A page of `GET /admin/v1/users`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserPage {
    users: Vec<AdminUserJson>,
    /// The cursor of the next page; null on the last.
    next_cursor: Option<String>,
    /// The cursor of the previous page; null on the first.
    prev_cursor: Option<String>,
    /// How many users the filters select across all pages (only with `include_total=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<i64>,
}

/// `{"count": N}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Count {
    count: i64,
}

/// The request's query string with `cursor` set to `value` (other parameters kept as sent; a
/// `cursor` is recognised however its name was percent-encoded).
fn link(req: &HttpRequest, value: &str) -> String {
    let is_cursor = |pair: &&str| {
        let name = pair.split('=').next().unwrap_or_default();
        percent_encoding::percent_decode_str(name).decode_utf8_lossy() == "cursor"
    };
    let mut pairs: Vec<&str> = req
        .query_string()
        .split('&')
        .filter(|pair| !pair.is_empty() && !is_cursor(pair))
        .collect();
    let cursor = format!("cursor={value}");
    pairs.push(&cursor);
    format!("{}?{}", req.path(), pairs.join("&"))
}

/// `GET /admin/v1/users`: the project's users, a keyset page at a time.
///
/// Cursors are positions in the list (order key and id), so paging forward never returns a
/// user twice and never skips one that existed throughout, whatever is created or deleted
/// meanwhile, and a deep page costs what the first does. The `Link` header carries the same
/// cursors (`rel="next"`, `rel="prev"`).
#[utoipa::path(
    get,
    path = "/admin/v1/users",
    operation_id = "admin_list_users",
    tag = "admin",
    params(ListQuery),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "A page of users", body = UserPage, headers(
            ("Link" = String, description = "`<…>; rel=\"next\"`, `<…>; rel=\"prev\"` when those pages exist"),
        )),
        AdminKeyErrors,
    )
)]
pub(crate) async fn list_users(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let list: List = read_query::<ListQuery>(&req)?.list()?;
    let project = caller.into_project();
    // The list goes into the database closure and comes back with the page.
    let (list, page, total) = db::run(&state.reads, move |conn| {
        let page = admin::page(
            conn,
            project.id(),
            &list.filter,
            list.order,
            &list.start,
            list.limit,
        )?;
        let total = match list.include_total {
            true => Some(admin::count(conn, project.id(), &list.filter)?),
            false => None,
        };
        Ok((list, page, total))
    })
    .await?;
    let position = |user: Option<&AdminUser>| user.map(|u| Position::of(&u.user, list.order));
    let (first, last) = (position(page.users.first()), position(page.users.last()));
    // `more` counts in the direction read: after the last row when paging forward, before
    // the first when paging back; the other side exists whenever a cursor brought us here.
    let (has_next, has_prev) = match &list.start {
        Start::First => (page.more, false),
        Start::After(_) => (page.more, true),
        Start::Before(_) => (true, page.more),
    };
    // An empty page (everything past a cursor went away) has no cursors: start again.
    let next_cursor = last
        .filter(|_| has_next)
        .map(|last| cursor::after(&last, &list.fingerprint));
    let prev_cursor = first
        .filter(|_| has_prev)
        .map(|first| cursor::before(&first, &list.fingerprint));
    let users = page
        .users
        .into_iter()
        .map(AdminUserJson::try_from)
        .collect::<std::result::Result<Vec<_>, Error>>()?;
    let links: Vec<String> = [(&next_cursor, "next"), (&prev_cursor, "prev")]
        .into_iter()
        .filter_map(|(c, rel)| {
            c.as_ref()
                .map(|c| format!("<{}>; rel=\"{rel}\"", link(&req, c)))
        })
        .collect();
    let mut response = HttpResponse::Ok();
    if !links.is_empty() {
        response.insert_header((header::LINK, links.join(", ")));
    }
    Ok(response.json(UserPage {
        users,
        next_cursor,
        prev_cursor,
        total,
    }))
}

/// `GET /admin/v1/users/count`: how many of the project's users the filters select.
#[utoipa::path(
    get,
    path = "/admin/v1/users/count",
    operation_id = "admin_count_users",
    tag = "admin",
    params(FilterQuery),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The count", body = Count),
        AdminKeyErrors,
    )
)]
pub(crate) async fn count_users(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let filter = read_query::<FilterQuery>(&req)?.filter()?;
    let project = caller.into_project();
    let count = db::run(&state.reads, move |conn| {
        admin::count(conn, project.id(), &filter)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Count { count }))
}

/// The `{user_id}` of a path; an id that is not a UUID is answered like an unknown one.
fn user_id(path: &str) -> std::result::Result<UserId, Error> {
    UserId::parse(path).ok_or(Error::UserNotFound)
}

/// `GET /admin/v1/users/{user_id}`: the user, whatever its status.
#[utoipa::path(
    get,
    path = "/admin/v1/users/{user_id}",
    operation_id = "admin_get_user",
    tag = "admin",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserJson),
        AdminUserErrors, AdminKeyErrors,
    )
)]
pub(crate) async fn get_user(
    caller: Caller<Operator>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = user_id(&path)?;
    let project = caller.into_project();
    let user = db::run(&state.pool, move |conn| admin::get(conn, project.id(), &id)).await?;
    Ok(HttpResponse::Ok().json(AdminUserJson::try_from(user)?))
}

/// `POST /admin/v1/users` `{"identifier": "..."}`: creates a user (the v0 create's body and
/// rules). Send an `Idempotency-Key` to make a retry safe.
#[utoipa::path(
    post,
    path = "/admin/v1/users",
    operation_id = "admin_create_user",
    tag = "admin",
    request_body = CreateUser,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters: a retry with the same key and body gets the first answer again")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 201, description = "The new user", body = AdminUserJson),
        (status = 409, description = "IDENTIFIER_TAKEN, or IDEMPOTENCY_KEY_IN_USE (see Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED: the key was used for another request", body = ProblemBody, content_type = "application/problem+json"),
        AdminKeyErrors, AdminBodyErrors,
    )
)]
pub(crate) async fn create_user(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let body = read_body(&req, payload).await?;
    let project = caller.into_project();
    idempotency::once(&req, &state, &project, &body, async {
        let create: CreateUser = parse_object(&body)?;
        let new = create.into_new_user(project.id())?;
        let context = context(&project, &req);
        let creator = project.clone();
        let user = db::run(&state.pool, move |conn| {
            admin::create(conn, creator.id(), new, &context)
        })
        .await?;
        Ok(HttpResponse::Created().json(AdminUserJson::try_from(user)?))
    })
    .await
}

/// Query of `DELETE /admin/v1/users/{user_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `true`: erase the user and everything tied to it for good (204) instead of a soft delete.
    #[param(value_type = Option<bool>)]
    pub purge: Option<String>,
}

/// `DELETE /admin/v1/users/{user_id}`: soft-deletes the user (200 with it): v0 and v2 no longer
/// see it and its identifier is free again; repeating it answers the same. With `purge=true`,
/// erases the user, its accounts and its stored answers for good (204).
#[utoipa::path(
    delete,
    path = "/admin/v1/users/{user_id}",
    operation_id = "admin_delete_user",
    tag = "admin",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id"), DeleteQuery),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "Soft-deleted: the user", body = AdminUserJson),
        (status = 204, description = "Purged"),
        AdminUserErrors, AdminKeyErrors,
    )
)]
pub(crate) async fn delete_user(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let query: DeleteQuery = read_query(&req)?;
    let purge = flag("purge", query.purge.as_deref())?;
    let id = user_id(&path)?;
    let context = context(&caller, &req);
    let project = caller.into_project();
    if purge {
        db::run(&state.pool, move |conn| {
            admin::purge(conn, project.id(), &id, &context)
        })
        .await?;
        return Ok(HttpResponse::NoContent().finish());
    }
    let user = db::run(&state.pool, move |conn| {
        admin::soft_delete(conn, project.id(), &id, &context)
    })
    .await?;
    Ok(HttpResponse::Ok().json(AdminUserJson::try_from(user)?))
}

/// What `restore`, `disable` and `enable` do.
#[derive(Clone, Copy)]
enum Change {
    Restore,
    Disable,
    Enable,
}

async fn change(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    change: Change,
) -> Result<HttpResponse> {
    let id = user_id(&path)?;
    let context = context(&caller, &req);
    let project = caller.into_project();
    let user = db::run(&state.pool, move |conn| match change {
        Change::Restore => admin::restore(conn, project.id(), &id, &context),
        Change::Disable => admin::set_disabled(conn, project.id(), &id, true, &context),
        Change::Enable => admin::set_disabled(conn, project.id(), &id, false, &context),
    })
    .await?;
    Ok(HttpResponse::Ok().json(AdminUserJson::try_from(user)?))
}

/// `POST /admin/v1/users/{user_id}/restore`: brings a soft-deleted user back; 409
/// `IDENTIFIER_TAKEN` when a live user took its identifier meanwhile. A user that is not
/// deleted is answered as it is.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{user_id}/restore",
    operation_id = "admin_restore_user",
    tag = "admin",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserJson),
        (status = 409, description = "IDENTIFIER_TAKEN", body = ProblemBody, content_type = "application/problem+json"),
        AdminUserErrors, AdminKeyErrors,
    )
)]
pub(crate) async fn restore_user(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    change(caller, req, state, path, Change::Restore).await
}

/// `POST /admin/v1/users/{user_id}/disable`: disables the user. It stays visible to v0 and v2,
/// but v2 refuses to open it accounts (`USER_DISABLED`). 409 `USER_DELETED` for a deleted user.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{user_id}/disable",
    operation_id = "admin_disable_user",
    tag = "admin",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserJson),
        (status = 409, description = "USER_DELETED", body = ProblemBody, content_type = "application/problem+json"),
        AdminUserErrors, AdminKeyErrors,
    )
)]
pub(crate) async fn disable_user(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    change(caller, req, state, path, Change::Disable).await
}

/// `POST /admin/v1/users/{user_id}/enable`: enables a disabled user. 409 `USER_DELETED` for a
/// deleted user.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{user_id}/enable",
    operation_id = "admin_enable_user",
    tag = "admin",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserJson),
        (status = 409, description = "USER_DELETED", body = ProblemBody, content_type = "application/problem+json"),
        AdminUserErrors, AdminKeyErrors,
    )
)]
pub(crate) async fn enable_user(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    change(caller, req, state, path, Change::Enable).await
}
