//! The OpenAPI 3.1 document of every route, served at `GET /api/openapi.json`: each API module
//! contributes the part generated from its handlers' annotations (utoipa), merged here. The
//! tests check it against the app: every documented operation is served, every route of the
//! table is documented, and sample responses match their documented schemas.

use std::sync::OnceLock;

use actix_web::http::Method;
use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::route::Endpoint;
use crate::api::{admin, ops, v0, v2};

/// The document itself.
pub fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::new(Method::GET, "/api/openapi.json", |r| {
        r.to(openapi_json)
    })]
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
            "console_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::sessions::COOKIE,
                "The browser console's session (`POST /admin/v1/session`); a state-changing \
                 request made with it also sends the session's `csrf_token` in `X-CSRF-Token`.",
            ))),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What the document holds besides the APIs' parts: its title, its tags, the key headers and
/// this route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "cotterd",
        description = "Cotter's v0 User API and Cradl's v2 Users API, self-hosted, with an admin API."
    ),
    paths(openapi_json),
    modifiers(&SecuritySchemes),
    tags(
        (name = "v0", description = "Cotter's v0 User API"),
        (name = "v2", description = "Cradl's v2 Users API"),
        (name = "admin", description = "The admin API for operators' dashboards"),
        (name = "operations", description = "Probes, metrics and this document")
    )
)]
pub struct ApiDoc;

/// The whole document: this module's part and each API's, merged.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(v0::Doc::openapi());
    doc.merge(v2::Doc::openapi());
    doc.merge(admin::Doc::openapi());
    doc.merge(ops::Doc::openapi());
    doc
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = serde_json::to_value(openapi()).expect("the document serialises");
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
