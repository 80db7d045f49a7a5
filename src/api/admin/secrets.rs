//! The project's secrets: list them by prefix, issue one (shown once), revoke one. The rotation
//! flow of `cotterd secrets …` over the admin API (and so in the console).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{context, AdminKeyErrors, Operator};
use crate::auth::{Caller, Project};
use crate::error::{AdminError, Error, ProblemBody};
use crate::projects::{self, LastSecret, SecretRecord};
use crate::{db, ids, time, AppState};

type Result<T, E = AdminError> = std::result::Result<T, E>;

/// A secret, by its printed prefix; never its value or its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SecretJson {
    #[schema(format = Uuid)]
    id: String,
    /// The secret's first characters (`cotterd_sk_1a2b3c4d`), as the audit trail names it.
    prefix: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// When it was revoked; null while it is live.
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

impl From<SecretRecord> for SecretJson {
    fn from(record: SecretRecord) -> Self {
        SecretJson {
            id: record.id,
            prefix: record.prefix,
            created_at: time::format(record.created_at),
            revoked_at: record.revoked_at.map(time::format),
        }
    }
}

/// `{"secrets": [...]}`, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SecretList {
    secrets: Vec<SecretJson>,
}

/// A secret just issued: the only answer that holds its value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct IssuedSecretJson {
    #[serde(flatten)]
    record: SecretJson,
    /// The secret itself (`API_SECRET_KEY`). It is not stored and cannot be shown again.
    secret: String,
}

/// The project's id as the projects module takes it.
fn project_uuid(project: &Project) -> std::result::Result<uuid::Uuid, Error> {
    ids::parse_uuid(project.id().as_str())
        .ok_or_else(|| Error::Internal("a project's id is not a UUID".into()))
}

/// `GET /admin/v1/secrets`: the project's secrets, live and revoked, oldest first.
#[utoipa::path(
    get,
    path = "/admin/v1/secrets",
    operation_id = "admin_list_secrets",
    tag = "admin",
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The secrets", body = SecretList),
        AdminKeyErrors,
    )
)]
pub(crate) async fn list_secrets(
    caller: Caller<Operator>,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let id = project_uuid(&caller)?;
    let secrets = db::run(&state.pool, move |conn| projects::list_secrets(conn, &id)).await?;
    Ok(HttpResponse::Ok().json(SecretList {
        secrets: secrets.into_iter().map(SecretJson::from).collect(),
    }))
}

/// `POST /admin/v1/secrets`: issues one more secret, so that clients can move to it before the
/// old one is revoked. The answer is the only time the secret is shown. Recorded as
/// `secret.create`.
#[utoipa::path(
    post,
    path = "/admin/v1/secrets",
    operation_id = "admin_create_secret",
    tag = "admin",
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 201, description = "The new secret, with its value", body = IssuedSecretJson),
        AdminKeyErrors,
    )
)]
pub(crate) async fn create_secret(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let project = caller.into_project();
    let id = project_uuid(&project)?;
    let context = context(&project, &req);
    let issued = db::run(&state.pool, move |conn| {
        let issued = projects::add_secret(conn, &id, &context)?;
        let record = projects::list_secrets(conn, &id)?
            .into_iter()
            .find(|s| s.id == issued.id)
            .ok_or_else(|| Error::Internal("a new secret is not listed".into()))?;
        Ok((record, issued.secret))
    })
    .await;
    // The new secret opens this instance's API at once.
    state.auth.forget(&id);
    let (record, secret) = issued?;
    // `no-store`, as every admin answer (`private_answers`): the secret is in it.
    Ok(HttpResponse::Created().json(IssuedSecretJson {
        record: record.into(),
        secret,
    }))
}

/// `POST /admin/v1/secrets/{secret_id}/revoke`: revokes a live secret. Calls with it fail from
/// then on (at once on this instance, within `AUTH_CACHE_TTL_SECS` on others), and console
/// sessions made with it end at once. The project's last live secret cannot be revoked here
/// (409 `LAST_SECRET`): issue another first. Recorded as `secret.revoke`.
#[utoipa::path(
    post,
    path = "/admin/v1/secrets/{secret_id}/revoke",
    operation_id = "admin_revoke_secret",
    tag = "admin",
    params(("secret_id" = String, Path, format = Uuid, description = "The secret's id")),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "The revoked secret", body = SecretJson),
        (status = 404, description = "NOT_FOUND: the project has no live secret with this id", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "LAST_SECRET: it is the project's last live secret", body = ProblemBody, content_type = "application/problem+json"),
        AdminKeyErrors,
    )
)]
pub(crate) async fn revoke_secret(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let not_found = Error::NotFound("the project has no live secret with this id");
    let secret_id = ids::parse_uuid(&path).ok_or(not_found.clone())?.to_string();
    let project = caller.into_project();
    let id = project_uuid(&project)?;
    let context = context(&project, &req);
    let revoked = db::run(&state.pool, move |conn| {
        projects::revoke_secret(conn, &id, &secret_id, LastSecret::Keep, &context)
    })
    .await;
    state.auth.forget(&id);
    Ok(
        HttpResponse::Ok().json(SecretJson::from(revoked.map_err(|e| match e {
            Error::NotFound(_) | Error::Invalid(_) => not_found,
            other => other,
        })?)),
    )
}
