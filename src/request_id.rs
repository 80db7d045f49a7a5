//! Request ids: a client's `X-Request-Id` is kept when it is a sane token, otherwise one is made;
//! either way it is echoed in the response and written in the access log line.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;

/// The header carrying the id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client-given id kept.
const MAX_LEN: usize = 128;

/// A request's id, also in the request's extensions for handlers that log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether a client's id can be kept: 1 to 128 characters of letters, digits and `-_.:/+=`
/// (nothing that could forge a log line).
fn acceptable(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// The middleware: see the module.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let value = HeaderValue::from_str(&id).ok();
    req.extensions_mut().insert(RequestId(id));
    let mut res = next.call(req).await?;
    if let Some(value) = value {
        res.headers_mut().insert(HEADER, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_sane_ids_are_kept() {
        assert!(acceptable("b7f3c1de-2c5a-4e8f-9d0a-1f2e3d4c5b6a"));
        assert!(acceptable("trace:abc/1+2="));
        for bad in ["", "a b", "a\nb", "a\"b", &"x".repeat(129), "é"] {
            assert!(!acceptable(bad), "{bad:?}");
        }
    }
}
