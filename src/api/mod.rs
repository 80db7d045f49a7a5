//! The HTTP surfaces. Each API is a module with its routes, its access policies and its part of
//! the OpenAPI document (`v0`, `v2`, `ops`, `openapi`); what they share is beside them:
//! the route table's entry and the 404/405 answers (`route`), reading bodies and query strings
//! (`request`), input rules stated in the document (`rules`) and document helpers (`doc`).

pub mod admin;
pub mod doc;
pub mod idempotency;
pub mod openapi;
pub mod ops;
pub mod request;
pub mod route;
pub mod rules;
pub mod v0;
pub mod v2;

use actix_web::web;

use route::Endpoint;

/// Every operation the server serves, in the order they are matched: the one table the app is
/// registered from and the tests compare with the document.
pub fn routes() -> Vec<Endpoint> {
    [
        ops::endpoints(),
        openapi::endpoints(),
        v0::endpoints(),
        v2::endpoints(),
        admin::endpoints(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Registers [`routes`], and 404 (in the shape of the path's API) for every other path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    route::register(cfg, &routes());
    crate::console::configure(cfg);
    cfg.default_service(web::to(route::not_found));
}
