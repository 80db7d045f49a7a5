//! The OpenAPI 3.1 document of every route, generated from the handlers' annotations (utoipa)
//! and served at `GET /api/openapi.json`. tests/openapi.rs checks it against the app: every
//! documented operation is served, every served route is documented, and sample responses
//! match their documented schemas.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::api::{health, v0, v2};
use crate::metrics;

/// Cotter's error body: `{"msg": "...", "type": ""}` (v0 routes, probes' 401s).
#[derive(Serialize, ToSchema)]
pub struct CotterError {
    /// What went wrong, for people.
    pub msg: String,
    /// Always empty, as Cotter's clients expect.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The v2 error body: every problem found, as stable codes (README lists them).
#[derive(Serialize, ToSchema)]
pub struct V2ErrorBody {
    /// Never empty.
    #[schema(min_items = 1)]
    pub error_codes: Vec<String>,
    /// What went wrong, for people.
    pub msg: String,
}

/// Errors every keyed v0 route can answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum V0KeyErrors {
    /// Missing or invalid keys.
    #[response(status = 401)]
    Unauthorized(CotterError),
    /// The project's budget is spent; see Retry-After.
    #[response(status = 429)]
    RateLimited(CotterError),
    /// The database is busy; see Retry-After.
    #[response(status = 503)]
    Unavailable(CotterError),
}

/// Errors every v0 route with a body can answer, besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum V0BodyErrors {
    /// The body came too slowly.
    #[response(status = 408)]
    Timeout(CotterError),
    /// The body is larger than MAX_BODY_BYTES.
    #[response(status = 413)]
    TooLarge(CotterError),
    /// The body is not application/json.
    #[response(status = 415)]
    NotJson(CotterError),
}

/// Errors every v2 route can answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum V2KeyErrors {
    /// UNAUTHORIZED: missing or invalid keys.
    #[response(status = 401)]
    Unauthorized(V2ErrorBody),
    /// RATE_LIMITED: the project's budget is spent; see Retry-After.
    #[response(status = 429)]
    RateLimited(V2ErrorBody),
    /// SERVICE_UNAVAILABLE: busy; see Retry-After.
    #[response(status = 503)]
    Unavailable(V2ErrorBody),
}

/// Errors every v2 route with a body can answer, besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum V2BodyErrors {
    /// REQUEST_TIMEOUT: the body came too slowly.
    #[response(status = 408)]
    Timeout(V2ErrorBody),
    /// BODY_TOO_LARGE: the body is larger than MAX_BODY_BYTES.
    #[response(status = 413)]
    TooLarge(V2ErrorBody),
    /// UNSUPPORTED_MEDIA_TYPE: the body is not application/json.
    #[response(status = 415)]
    NotJson(V2ErrorBody),
}

/// A probe's answer.
#[derive(Serialize, ToSchema)]
pub struct ProbeStatus {
    /// `ok`, `ready`, `database unavailable` or `migrations pending`.
    pub status: String,
}

/// The API key headers.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key_id",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("API_KEY_ID"))),
        );
        components.add_security_scheme(
            "api_secret_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("API_SECRET_KEY"))),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "cotterd",
        description = "Cotter's v0 User API and Cradl's v2 Users API, self-hosted."
    ),
    paths(
        v0::create_user,
        v0::get_user_by_identifier,
        v0::get_user,
        v0::list_users,
        v2::create_user,
        v2::get_user,
        v2::patch_user,
        v2::open_account,
        health::healthz,
        health::readyz,
        metrics::export,
        openapi_json,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "v0", description = "Cotter's v0 User API"),
        (name = "v2", description = "Cradl's v2 Users API"),
        (name = "operations", description = "Probes, metrics and this document")
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        fix_link_keys(&mut doc);
        doc.to_string()
    })
}

/// utoipa 5 writes a response link's fields in snake case (`operation_id`); OpenAPI spells
/// them `operationId`, `operationRef` and `requestBody`.
fn fix_link_keys(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(from) {
                    link.insert(to.to_owned(), value);
                }
            }
        }
    }
}

/// `GET /api/openapi.json`: this server's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
