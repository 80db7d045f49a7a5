//! The browser console at `/admin/`: one HTML page, one script and one style sheet, compiled
//! into the binary, talking to the admin API with the session cookie (`sessions`).
//!
//! Static files with plain JavaScript rather than server-rendered templates: the page is a
//! client of the admin API like any other (so the console can do nothing the API does not
//! allow, and the API's tests cover it), there is no template engine to keep escaping right
//! (the script only ever sets text, never HTML), and nothing is built at install time.
//!
//! Every page answer carries a strict `Content-Security-Policy` (scripts and styles from this
//! origin only, no inline script, no framing), `X-Frame-Options: DENY` and `Referrer-Policy:
//! no-referrer`. Assets are named by a hash of their content and cached for a year; the page
//! itself is never cached, so a new binary's page names its new assets.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::api::route::method_not_allowed;
use crate::error::{Envelope, Error};
use crate::AppState;

/// What the page may load and do.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The paths the page is served at: each a view of the page's own router.
pub const PAGES: [&str; 9] = [
    "/admin",
    "/admin/",
    "/admin/signin",
    "/admin/users",
    "/admin/users/new",
    "/admin/users/{user_id}",
    "/admin/import",
    "/admin/audit",
    "/admin/keys",
];

/// One file served under `/admin/assets/`.
struct Asset {
    /// The name the page's placeholder uses (`app.js`).
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// `app.<hash>.js`: what it is served as.
    hashed_name: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Self {
        let hash = hex::encode(&Sha256::digest(body)[..6]);
        let hashed_name = match name.rsplit_once('.') {
            Some((stem, extension)) => format!("{stem}.{hash}.{extension}"),
            None => format!("{name}.{hash}"),
        };
        Asset {
            name,
            content_type,
            body,
            hashed_name,
        }
    }
}

/// The assets and the page that names them, built once.
struct Bundle {
    assets: Vec<Asset>,
    page: String,
}

static BUNDLE: LazyLock<Bundle> = LazyLock::new(|| {
    let assets = vec![
        Asset::new(
            "app.js",
            "text/javascript; charset=utf-8",
            include_bytes!("assets/app.js"),
        ),
        Asset::new(
            "app.css",
            "text/css; charset=utf-8",
            include_bytes!("assets/app.css"),
        ),
    ];
    let mut page = include_str!("assets/index.html").to_owned();
    for asset in &assets {
        page = page.replace(
            &format!("{{{{{}}}}}", asset.name),
            &format!("/admin/assets/{}", asset.hashed_name),
        );
    }
    Bundle { assets, page }
});

/// The headers every console answer carries.
fn harden(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

fn turned_off() -> actix_web::Error {
    Envelope::Admin.error(Error::NotFound(
        "the console is turned off on this server (CONSOLE_ENABLED=false)",
    ))
}

/// The page, at every path of [`PAGES`]. Which view it shows is the script's to decide from the
/// URL, so a reload or a shared link shows the same view.
async fn page(state: web::Data<AppState>) -> Result<HttpResponse, actix_web::Error> {
    page_with(&state, StatusCode::OK)
}

/// Any other path under `/admin/` that is not the API's or an asset's: the page, which shows its
/// "not found" view, with status 404.
async fn unknown_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, actix_web::Error> {
    let rest = req.match_info().get("rest").unwrap_or_default();
    if rest == "v1" || rest.starts_with("v1/") || rest.starts_with("assets/") {
        return Err(Envelope::Admin.error(Error::NotFound("not found")));
    }
    page_with(&state, StatusCode::NOT_FOUND)
}

fn page_with(state: &AppState, status: StatusCode) -> Result<HttpResponse, actix_web::Error> {
    if !state.settings.console_enabled {
        return Err(turned_off());
    }
    let mut response = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(BUNDLE.page.as_str());
    harden(&mut response);
    Ok(response)
}

/// An asset by its hashed name; any other name is 404.
async fn asset(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, actix_web::Error> {
    if !state.settings.console_enabled {
        return Err(turned_off());
    }
    let name = req.match_info().get("file").unwrap_or_default();
    let Some(asset) = BUNDLE.assets.iter().find(|a| a.hashed_name == name) else {
        return Err(Envelope::Admin.error(Error::NotFound("no such asset")));
    };
    let mut response = HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(asset.body);
    harden(&mut response);
    Ok(response)
}

/// The URL the page loads the asset `name` from (`/admin/assets/app.<hash>.js`).
pub fn asset_url(name: &str) -> Option<String> {
    BUNDLE
        .assets
        .iter()
        .find(|a| a.name == name)
        .map(|a| format!("/admin/assets/{}", a.hashed_name))
}

/// Registers the page and its assets (GET and HEAD). Not part of the OpenAPI document: these
/// are a browser's, not an API's.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let other_methods = || method_not_allowed(Envelope::Admin, "GET, HEAD".to_owned());
    for path in PAGES {
        cfg.service(
            web::resource(path)
                .route(web::get().to(page))
                .route(web::head().to(page))
                .default_service(other_methods()),
        );
    }
    cfg.service(
        web::resource("/admin/assets/{file}")
            .route(web::get().to(asset))
            .route(web::head().to(asset))
            .default_service(other_methods())
            // The script is 88 KB, 24 KB gzipped: fetched once per release, thanks to its hash.
            .wrap(actix_web::middleware::Compress::default()),
    );
    // Last: whatever the routes above and the admin API's did not match.
    cfg.service(
        web::resource("/admin/{rest:.*}")
            .route(web::get().to(unknown_page))
            .route(web::head().to(unknown_page))
            .default_service(web::to(crate::api::route::not_found)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_assets_by_hash() {
        let page = &BUNDLE.page;
        assert!(!page.contains("{{"), "a placeholder is left in the page");
        for name in ["app.js", "app.css"] {
            let url = asset_url(name).unwrap();
            assert!(page.contains(&url), "{url}");
            assert_eq!(url.len(), format!("/admin/assets/{name}").len() + 13);
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = BUNDLE.page.to_ascii_lowercase();
        assert_eq!(page.matches("<script").count(), 1);
        assert!(page.contains("<script src=\"/admin/assets/app."));
        let handler = regex_lite::Regex::new(r"\son[a-z]+\s*=").unwrap();
        assert!(!handler.is_match(&page), "an inline event handler");
        assert!(!page.contains("style="), "an inline style");
        assert!(!page.contains("<style"), "an inline style sheet");
    }
}
