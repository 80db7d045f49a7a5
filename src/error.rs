//! The one application error type and its wire format: Cotter's `{"msg": "...", "type": ""}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// Everything a request can fail with. The message of each client error is shown to the client;
/// internal errors are logged and answered with a generic message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed or fails validation.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or invalid API keys.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404: no such resource for this project.
    #[error("{0}")]
    NotFound(&'static str),
    /// 405: the route exists but not for this method; the methods it takes (`Allow`).
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// 409: the resource already exists.
    #[error("{0}")]
    Conflict(&'static str),
    /// 408: the client took too long to send its body.
    #[error("the request body took too long to arrive")]
    RequestTimeout,
    /// 429: the project spent its budget; retry after this many seconds.
    #[error("rate limit exceeded for this project; retry after {0} s")]
    RateLimited(u64),
    /// 431: the request's headers are larger than the configured limit.
    #[error("request headers are larger than {0} bytes")]
    HeadersTooLarge(u64),
    /// 413: the body is larger than the configured limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not `application/json`.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// 503: the database is busy or unreachable; the client should retry.
    #[error("service temporarily unavailable, retry shortly")]
    Unavailable,
    /// 500: a bug or an unexpected database failure. The detail is logged, never sent.
    #[error("internal server error")]
    Internal(String),
}

/// Cotter's error envelope. `type` is always empty, as Cotter's clients expect.
#[derive(Serialize)]
struct ErrorBody<'a> {
    msg: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

impl Error {
    /// The `Retry-After` seconds this error asks for, if any.
    pub fn retry_after(&self) -> Option<String> {
        match self {
            Error::Unavailable => Some(RETRY_AFTER_SECS.to_owned()),
            Error::RateLimited(secs) => Some(secs.to_string()),
            _ => None,
        }
    }

    /// The `Allow` header of a 405 (RFC 9110 requires it).
    pub fn allow(&self) -> Option<&'static str> {
        match self {
            Error::MethodNotAllowed(methods) => Some(methods),
            _ => None,
        }
    }
}

/// A response of `status` with the headers an error asks for.
fn error_builder(
    status: StatusCode,
    retry_after: Option<&str>,
    allow: Option<&str>,
) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    if let Some(secs) = retry_after {
        response.insert_header((header::RETRY_AFTER, secs));
    }
    if let Some(methods) = allow {
        response.insert_header((header::ALLOW, methods));
    }
    response
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Error::Internal(detail) = self {
            log::error!("internal error: {detail}");
        }
        let msg = self.to_string();
        error_builder(
            self.status_code(),
            self.retry_after().as_deref(),
            self.allow(),
        )
        .json(ErrorBody {
            msg: &msg,
            kind: "",
        })
    }
}

impl From<DieselError> for Error {
    fn from(err: DieselError) -> Self {
        match &err {
            DieselError::NotFound => Error::NotFound("not found"),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Error::Conflict("already exists")
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                log::warn!("database connection lost: {err}");
                Error::Unavailable
            }
            // SQLite reports a lock held past busy_timeout as an unknown database error.
            DieselError::DatabaseError(_, info)
                if info.message().contains("database is locked")
                    || info.message().contains("database is busy") =>
            {
                log::warn!("database busy: {err}");
                Error::Unavailable
            }
            _ => Error::Internal(format!("database error: {err}")),
        }
    }
}

impl From<r2d2::Error> for Error {
    fn from(err: r2d2::Error) -> Self {
        log::warn!("no database connection available: {err}");
        Error::Unavailable
    }
}

impl From<actix_web::error::BlockingError> for Error {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Error::Internal(format!("blocking task failed: {err}"))
    }
}

/// An error of the Cradl v2 API: `{"error_codes": [...], "msg": "..."}`, where `error_codes`
/// holds every problem found (stable UPPER_SNAKE codes, listed in README) and `msg` is for people.
#[derive(Debug, Clone)]
pub struct V2Error {
    pub status: StatusCode,
    pub codes: Vec<&'static str>,
    pub msg: String,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<String>,
    /// `Allow`, for 405.
    pub allow: Option<&'static str>,
}

impl V2Error {
    /// An error with one code.
    pub fn new(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        V2Error {
            status,
            codes: vec![code],
            msg: msg.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// 404 `USER_NOT_FOUND`: also what another project's user looks like.
    pub fn user_not_found() -> Self {
        V2Error::new(StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user not found")
    }
}

impl std::fmt::Display for V2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.msg, self.codes.join(", "))
    }
}

#[derive(Serialize)]
struct V2ErrorBody<'a> {
    error_codes: &'a [&'static str],
    msg: &'a str,
}

impl ResponseError for V2Error {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        error_builder(self.status, self.retry_after.as_deref(), self.allow).json(V2ErrorBody {
            error_codes: &self.codes,
            msg: &self.msg,
        })
    }
}

impl From<Error> for V2Error {
    fn from(err: Error) -> Self {
        let code = match &err {
            Error::BadRequest(_) => "INVALID_BODY",
            Error::Unauthorized(_) => "UNAUTHORIZED",
            Error::NotFound(_) => "NOT_FOUND",
            Error::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Error::Conflict(_) => "CONFLICT",
            Error::RequestTimeout => "REQUEST_TIMEOUT",
            Error::RateLimited(_) => "RATE_LIMITED",
            Error::HeadersTooLarge(_) => "HEADERS_TOO_LARGE",
            Error::PayloadTooLarge(_) => "BODY_TOO_LARGE",
            Error::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Error::Unavailable => "SERVICE_UNAVAILABLE",
            Error::Internal(detail) => {
                log::error!("internal error: {detail}");
                "INTERNAL_ERROR"
            }
        };
        V2Error {
            retry_after: err.retry_after(),
            allow: err.allow(),
            ..V2Error::new(err.status_code(), code, err.to_string())
        }
    }
}

impl From<DieselError> for V2Error {
    fn from(err: DieselError) -> Self {
        Error::from(err).into()
    }
}

impl From<actix_web::error::BlockingError> for V2Error {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Error::from(err).into()
    }
}

/// Shorthand for handlers and queries.
pub type Result<T, E = Error> = std::result::Result<T, E>;
