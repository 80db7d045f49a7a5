//! The route table's entry, and the answers for what is no route: 404 for a path, 405 (with
//! `Allow`) for a method, each in the shape of the API the path belongs to.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, Route};

use crate::error::{Envelope, Error};

/// One operation the server serves: a method on a path template, and its handler. `api::routes`
/// lists them all; the app is registered from that list and tests/it/openapi.rs compares it with
/// the OpenAPI document.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    handler: fn(Route) -> Route,
}

impl Endpoint {
    /// `method` on `path`, answered by the handler `handler` attaches
    /// (`|route| route.to(users::create_user)`).
    pub fn new(method: Method, path: &'static str, handler: fn(Route) -> Route) -> Self {
        Endpoint {
            method,
            path,
            handler,
        }
    }
}

/// Registers `endpoints`: one resource per path, in the order of the table (so a fixed path such
/// as `/api/v0/user/list` comes before the template `/api/v0/user/{client_user_id}` that would
/// also match it), each answering any other method with 405 and `Allow`.
pub fn register(cfg: &mut web::ServiceConfig, endpoints: &[Endpoint]) {
    let mut paths: Vec<&'static str> = Vec::new();
    for endpoint in endpoints {
        if !paths.contains(&endpoint.path) {
            paths.push(endpoint.path);
        }
    }
    for path in paths {
        let served: Vec<&Endpoint> = endpoints.iter().filter(|e| e.path == path).collect();
        let allow: Vec<&str> = served.iter().map(|e| e.method.as_str()).collect();
        let mut resource = web::resource(path);
        for endpoint in served {
            resource = resource.route((endpoint.handler)(web::method(endpoint.method.clone())));
        }
        cfg.service(resource.default_service(method_not_allowed(
            Envelope::for_path(path),
            allow.join(", "),
        )));
    }
}

/// 405 in `envelope`'s shape, with `Allow` naming the methods the path takes.
pub fn method_not_allowed(envelope: Envelope, allow: String) -> Route {
    web::to(move || {
        let err = envelope.error(Error::MethodNotAllowed(allow.clone()));
        async move { Err::<(), _>(err) }
    })
}

/// 404 for a path that is no route, in the shape of the API its prefix belongs to.
pub async fn not_found(req: HttpRequest) -> Result<(), actix_web::Error> {
    Err(Envelope::for_path(req.match_info().as_str()).error(Error::NotFound("not found")))
}

/// The errors of actix's `Path` extractor, answered like an unknown path.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, req| {
        Envelope::for_path(req.match_info().as_str()).error(Error::NotFound("not found"))
    })
}
