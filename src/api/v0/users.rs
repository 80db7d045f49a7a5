//! v0 users: create one, get one by identifier or id, list them 50 a page.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{AppRead, AppWrite, ServerRead, V0BodyErrors, V0KeyErrors};
use crate::api::idempotency;
use crate::api::request::{parse_object, read_body, read_query};
use crate::api::rules;
use crate::auth::Caller;
use crate::error::{CotterError, CotterErrorBody, Error};
use crate::ids::ProjectId;
use crate::users::{self, ClientUserId, Identifier, UserJson};
use crate::{db, time, AppState};

type Result<T, E = CotterError> = std::result::Result<T, E>;

/// Body of `POST /api/v0/user/create`, in each shape Cotter's SDKs send: `{"identifier"}`;
/// iOS's `{"client_user_id", "identifier"}` (`""` meaning absent); React Native's
/// `{"client_user_id", "identifiers": [...]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The primary identifier; when absent or `""`, the first of `identifiers`, else the
    /// `client_user_id`.
    #[schema(schema_with = rules::identifier_schema)]
    #[serde(default)]
    pub identifier: Option<String>,
    /// The app's own id for the user: 1 to 200 characters without spaces or control
    /// characters, unique in the project; absent or `""` makes it the user's `ID`.
    #[schema(max_length = 200)]
    #[serde(default)]
    pub client_user_id: Option<String>,
    /// Further identifiers (at most 10), each unique in the project and each finding the user.
    #[schema(max_items = 10)]
    #[serde(default)]
    pub identifiers: Option<Vec<String>>,
}

/// Most identifiers one user may have.
pub const MAX_IDENTIFIERS: usize = 10;

impl CreateUser {
    /// Checks the body and makes the user it asks for, for `project`.
    pub fn into_new_user(self, project: &ProjectId) -> Result<users::NewUser, Error> {
        let more = self.identifiers.unwrap_or_default();
        if more.len() > MAX_IDENTIFIERS {
            return Err(Error::Invalid(format!(
                "identifiers may hold at most {MAX_IDENTIFIERS} identifiers"
            )));
        }
        let more = more
            .iter()
            .map(|raw| Identifier::parse(raw))
            .collect::<Result<Vec<_>, Error>>()?;
        let client_user_id = ClientUserId::parse(self.client_user_id.as_deref().unwrap_or(""))?;
        // iOS may send only the app's id (`"identifier": ""`): the app's id is then the
        // user's identifier too, so that some identifier finds the user.
        let primary = match (self.identifier.as_deref(), more.first(), &client_user_id) {
            (Some(raw), _, _) if !raw.is_empty() => Identifier::parse(raw)?,
            (_, Some(first), _) => first.clone(),
            (_, None, Some(app_id)) => Identifier::parse(app_id.as_str())?,
            (_, None, None) => {
                return Err(Error::Invalid(
                    "identifier is required (or identifiers, or client_user_id)".into(),
                ))
            }
        };
        let mut user = users::new_user(project, primary, time::now());
        if !more.is_empty() {
            user = user.with_identifiers(more);
        }
        if let Some(client_user_id) = client_user_id {
            user = user.with_client_user_id(client_user_id);
        }
        Ok(user)
    }
}

/// `POST /api/v0/user/create`: creates a user of the caller's project.
///
/// 200 with the new User; 409 `user already exist` when an identifier (after normalisation) or
/// the `client_user_id` is taken in this project; 400 for an invalid identifier or body. An `Idempotency-Key` makes a
/// retry safe (`api::idempotency`).
#[utoipa::path(
    post,
    path = "/api/v0/user/create",
    operation_id = "v0_create_user",
    tag = "v0",
    request_body = CreateUser,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters: a retry with the same key and body gets the first answer again (`Idempotent-Replayed: true`)")),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "The new user", body = UserJson, links(
            ("GetUserById" = (operation_id = "v0_get_user", parameters(("client_user_id" = "$response.body#/ID")))),
            ("GetUserByIdentifier" = (operation_id = "v0_get_user_by_identifier", parameters(("identifier" = "$response.body#/identifier")))),
        )),
        (status = 400, description = "Invalid identifier or body", body = CotterErrorBody),
        (status = 409, description = "`user already exist`, or the first request with this Idempotency-Key still runs (see Retry-After)", body = CotterErrorBody),
        (status = 422, description = "The Idempotency-Key was used for another request", body = CotterErrorBody),
        V0KeyErrors, V0BodyErrors,
    )
)]
pub(crate) async fn create_user(
    caller: Caller<AppWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let body = read_body(&req, payload).await?;
    let project = caller.into_project();
    idempotency::once(&req, &state, &project, &body, async {
        let body: CreateUser = parse_object(&body)?;
        let user = body.into_new_user(project.id())?;
        // Under the group's savepoint: the statements need no transaction of their own.
        let user = state
            .writes
            .run(move |conn| users::insert_within(conn, user))
            .await?;
        Ok(HttpResponse::Ok().json(UserJson::try_from(user)?))
    })
    .await
}

/// Query of `GET /api/v0/user`. Missing is read as `None`, for a clearer 400 than serde's.
#[derive(Debug, Deserialize)]
pub struct IdentifierQuery {
    pub identifier: Option<String>,
}

/// The document's view of [`IdentifierQuery`]: required, with the identifier's rules.
impl utoipa::IntoParams for IdentifierQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        vec![ParameterBuilder::new()
            .name("identifier")
            .parameter_in(ParameterIn::Query)
            .required(utoipa::openapi::Required::True)
            .description(Some(
                "The identifier the user was created with (compared after normalisation).",
            ))
            .schema(Some(rules::identifier_schema()))
            .build()]
    }
}

/// `GET /api/v0/user?identifier=…`: the caller's user with this identifier.
///
/// An identifier with no user answers 200 with Cotter's zero-valued User (nil UUID `ID`), which
/// Cotter's SDKs test to learn that the user does not exist.
#[utoipa::path(
    get,
    path = "/api/v0/user",
    operation_id = "v0_get_user_by_identifier",
    tag = "v0",
    params(IdentifierQuery),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "The user, or the zero-valued User when there is none", body = UserJson),
        (status = 400, description = "Missing or invalid identifier", body = CotterErrorBody),
        V0KeyErrors,
    )
)]
pub(crate) async fn get_user_by_identifier(
    caller: Caller<AppRead>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let query: IdentifierQuery = read_query(&req)?;
    let raw = query
        .identifier
        .ok_or_else(|| Error::Invalid("the identifier query parameter is required".into()))?;
    let identifier = Identifier::parse(&raw)?;
    let project = caller.into_project();
    let user = db::run(&state.pool, move |conn| {
        users::find_by_identifier(conn, project.id(), &identifier)
    })
    .await?;
    let json = match user {
        Some(user) => UserJson::try_from(user)?,
        None => UserJson::zero(),
    };
    Ok(HttpResponse::Ok().json(json))
}

/// `GET /api/v0/user/{client_user_id}`: the caller's user with this `client_user_id` or, failing
/// that, this `ID`; 404 when the project has no such user (another project's user included).
#[utoipa::path(
    get,
    path = "/api/v0/user/{client_user_id}",
    operation_id = "v0_get_user",
    tag = "v0",
    params(("client_user_id" = String, Path, description = "The app's id for the user (`client_user_id`) or the user's `ID`")),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "The user", body = UserJson),
        (status = 404, description = "No such user in this project", body = CotterErrorBody),
        V0KeyErrors,
    )
)]
pub(crate) async fn get_user(
    caller: Caller<AppRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let project = caller.into_project();
    let id = path.into_inner();
    let user = db::run(&state.pool, move |conn| {
        users::find_by_any_id(conn, project.id(), &id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserJson::try_from(user)?))
}

/// Query of `GET /api/v0/user/list`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number from 0 (the default) to `MAX_PAGE` (1,000,000 unless configured); 50 users
    /// a page.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 1_000_000)]
    pub page: Option<String>,
}

/// Reads `page`: absent means 0; anything but a whole number (digits only) from 0 to `max_page`
/// is a 400.
fn parse_page(raw: Option<&str>, max_page: i64) -> Result<i64, Error> {
    let Some(raw) = raw else { return Ok(0) };
    let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    match raw.parse::<i64>() {
        Ok(page) if digits && (0..=max_page).contains(&page) => Ok(page),
        _ => Err(Error::Invalid(format!(
            "page must be a whole number from 0 to {max_page}"
        ))),
    }
}

/// `GET /api/v0/user/list?page=N`: 50 of the caller's users, newest first; `[]` past the end.
/// Needs `API_SECRET_KEY`.
#[utoipa::path(
    get,
    path = "/api/v0/user/list",
    operation_id = "v0_list_users",
    tag = "v0",
    params(PageQuery),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "At most 50 users, newest first", body = Vec<UserJson>),
        (status = 400, description = "Invalid page", body = CotterErrorBody),
        V0KeyErrors,
    )
)]
pub(crate) async fn list_users(
    caller: Caller<ServerRead>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let query: PageQuery = read_query(&req)?;
    let page = parse_page(query.page.as_deref(), state.settings.max_page)?;
    let project = caller.into_project();
    let page = db::run(&state.pool, move |conn| {
        users::list_page(conn, project.id(), page)
    })
    .await?;
    let body = page
        .into_iter()
        .map(UserJson::try_from)
        .collect::<Result<Vec<UserJson>, Error>>()?;
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::parse_page;

    #[test]
    fn pages_are_whole_numbers_in_range() {
        let max = 1_000_000;
        assert_eq!(parse_page(None, max).unwrap(), 0);
        assert_eq!(parse_page(Some("3"), max).unwrap(), 3);
        assert_eq!(parse_page(Some("1000000"), max).unwrap(), 1_000_000);
        for bad in [
            "-1",
            "x",
            "",
            "1.5",
            "1000001",
            "99999999999999999999999",
            " 5",
            "+5",
            "5 ",
        ] {
            assert!(parse_page(Some(bad), max).is_err(), "{bad}");
        }
        assert!(parse_page(Some("11"), 10).is_err());
    }
}
