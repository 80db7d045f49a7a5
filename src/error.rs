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
    /// 405: the route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the resource already exists.
    #[error("{0}")]
    Conflict(&'static str),
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

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
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
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Error::Unavailable) {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        let msg = self.to_string();
        response.json(ErrorBody {
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

/// Shorthand for handlers and queries.
pub type Result<T, E = Error> = std::result::Result<T, E>;
