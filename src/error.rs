//! What can go wrong, and the wire shapes it is answered in.
//!
//! Which layer uses which type:
//! - [`Error`] is what everything returns: the stores (`users`, `accounts`, `projects`), the
//!   database and the hasher, and the request plumbing (`auth`, `limits`, body reading). It says
//!   what happened — `IdentifierTaken`, `UserNotFound`, `Unavailable` — and its status, never
//!   how a client sees it.
//! - Each API answers in its own envelope, one type per shape: [`CotterError`] (Cotter's
//!   `{"msg", "type": ""}`: the v0 API, the probes, metrics and unknown paths), [`V2Error`]
//!   (Cradl's `{"error_codes": [...], "msg"}`) and [`AdminError`] (RFC 9457 problem details
//!   with a `code`, under `/admin`). Handlers return `Result<_, CotterError>`,
//!   `Result<_, V2Error>` or `Result<_, AdminError>`, and `?` wraps the `Error`; the envelope maps each domain error to its
//!   API's words (`IdentifierTaken` is `user already exist` in v0, `EMAIL_TAKEN` in v2).
//! - [`Envelope`] is the choice itself, for the answers no handler writes (unknown paths, 405,
//!   431): [`Envelope::for_path`] is the one place that says which API a path belongs to, and
//!   [`Envelope::respond`] the one place that writes an error response (and logs a 500's detail,
//!   once).

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a client is asked to wait after a 503 (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 1;

/// One problem found in a request, with a stable UPPER_SNAKE code (v2 lists the codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

/// Everything a request can fail with. The message of each client error is shown to the client;
/// an internal error's detail is logged and answered with a generic message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// 400: a value or a body breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// 400: every problem found in a request body, each with its code.
    #[error("{}", join_messages(.0))]
    Problems(Vec<Problem>),
    /// 409: another user of the project has this identifier (after normalisation).
    #[error("the identifier is taken in this project")]
    IdentifierTaken,
    /// 404: the project has no such user (another project's user included).
    #[error("user not found")]
    UserNotFound,
    /// 409: the user has no KYC reference, which opening an account needs.
    #[error("the user needs a kyc_id before an account can be opened")]
    KycRequired,
    /// 409: the user is disabled (admin API): v2 refuses to open it accounts.
    #[error("the user is disabled")]
    UserDisabled,
    /// 409: the user is deleted; it must be restored before this change.
    #[error("the user is deleted; restore it first")]
    UserDeleted,
    /// 422: an `Idempotency-Key` already used for another method, path or body.
    #[error("this Idempotency-Key was used with another method, path or body")]
    IdempotencyKeyReused,
    /// 409: the first request with this `Idempotency-Key` is still running; retry shortly.
    #[error("a request with this Idempotency-Key is still running; retry shortly")]
    IdempotencyKeyInUse,
    /// 429: the user's PIN or password is locked after failed checks; retry after this many
    /// seconds.
    #[error("too many failed attempts; retry after {0} s")]
    TooManyAttempts(u64),
    /// 404: no such route, project or secret.
    #[error("{0}")]
    NotFound(&'static str),
    /// 409: a row with this key exists already.
    #[error("{0}")]
    Conflict(&'static str),
    /// 401: a password check failed (a wrong password, or no such user: the same answer).
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// 403: a credential sent to change or remove a method is wrong.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 401: missing or invalid API keys.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: a state-changing request made with the console's session cookie lacks its CSRF
    /// token (`X-CSRF-Token`), or carries another.
    #[error(
        "a change made with the console's session cookie needs the session's token in X-CSRF-Token"
    )]
    CsrfRejected,
    /// 409: the secret is the project's last live one; issue another before revoking it.
    #[error("this is the project's last live secret: issue another before revoking it")]
    LastSecret,
    /// 405: the route exists but not for this method; the methods it takes (`Allow`).
    #[error("method not allowed")]
    MethodNotAllowed(String),
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
    /// 501: a call the server knows but does not serve yet.
    #[error("{0}")]
    NotImplemented(&'static str),
    /// 503: the database (or the hashing queue) is busy or unreachable; the client should retry.
    #[error("service temporarily unavailable, retry shortly")]
    Unavailable,
    /// 500: a bug or an unexpected database failure. The detail is logged, never sent.
    #[error("internal server error")]
    Internal(String),
}

impl Error {
    /// The error as the command line tells it to the operator: an internal error's detail
    /// (which no client ever sees), any other error as a client would read it.
    pub fn for_operator(&self) -> String {
        match self {
            Error::Internal(detail) => detail.clone(),
            other => other.to_string(),
        }
    }
}

fn join_messages(problems: &[Problem]) -> String {
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    messages.join("; ")
}

impl Error {
    /// A 400 naming one problem with its stable code.
    pub fn problem(code: &'static str, message: impl Into<String>) -> Self {
        Error::Problems(vec![Problem {
            code,
            message: message.into(),
        }])
    }

    /// The HTTP status this error is answered with, whatever the API.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid(_) | Error::Problems(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::CsrfRejected => StatusCode::FORBIDDEN,
            Error::NotFound(_) | Error::UserNotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::IdentifierTaken
            | Error::KycRequired
            | Error::UserDisabled
            | Error::UserDeleted
            | Error::IdempotencyKeyInUse
            | Error::LastSecret
            | Error::Conflict(_) => StatusCode::CONFLICT,
            Error::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::RateLimited(_) | Error::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Retry-After` seconds this error asks for, if any.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Unavailable | Error::IdempotencyKeyInUse => Some(RETRY_AFTER_SECS),
            Error::RateLimited(secs) | Error::TooManyAttempts(secs) => Some(*secs),
            _ => None,
        }
    }

    /// The `Allow` header of a 405 (RFC 9110 requires it).
    pub fn allow(&self) -> Option<&str> {
        match self {
            Error::MethodNotAllowed(methods) => Some(methods),
            _ => None,
        }
    }

    /// The stable codes v2 answers this error with.
    fn v2_codes(&self) -> Vec<&'static str> {
        let code = match self {
            Error::Problems(problems) => {
                let mut codes: Vec<&'static str> = Vec::with_capacity(problems.len());
                for problem in problems {
                    if !codes.contains(&problem.code) {
                        codes.push(problem.code);
                    }
                }
                return codes;
            }
            Error::Invalid(_) => "INVALID_BODY",
            Error::IdentifierTaken => "EMAIL_TAKEN",
            Error::UserNotFound => "USER_NOT_FOUND",
            Error::KycRequired => "KYC_REQUIRED",
            Error::UserDisabled => "USER_DISABLED",
            Error::UserDeleted => "USER_DELETED",
            Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Error::IdempotencyKeyInUse => "IDEMPOTENCY_KEY_IN_USE",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Conflict(_) => "CONFLICT",
            Error::Unauthorized(_) => "UNAUTHORIZED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::CsrfRejected => "CSRF_TOKEN_INVALID",
            Error::LastSecret => "LAST_SECRET",
            Error::InvalidCredentials => "INVALID_CREDENTIALS",
            Error::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Error::RequestTimeout => "REQUEST_TIMEOUT",
            Error::RateLimited(_) => "RATE_LIMITED",
            Error::TooManyAttempts(_) => "TOO_MANY_ATTEMPTS",
            Error::HeadersTooLarge(_) => "HEADERS_TOO_LARGE",
            Error::PayloadTooLarge(_) => "BODY_TOO_LARGE",
            Error::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Error::NotImplemented(_) => "NOT_IMPLEMENTED",
            Error::Unavailable => "SERVICE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL_ERROR",
        };
        vec![code]
    }

    /// What v2 says in `msg`.
    fn v2_message(&self) -> String {
        match self {
            Error::IdentifierTaken => "this email is already used in this project".to_owned(),
            other => other.to_string(),
        }
    }

    /// The one stable code the admin API answers this error with (README lists them).
    fn admin_code(&self) -> &'static str {
        match self {
            Error::Problems(problems) => match problems.split_first() {
                Some((first, rest)) if rest.iter().all(|p| p.code == first.code) => first.code,
                _ => "INVALID_REQUEST",
            },
            Error::Invalid(_) => "INVALID_REQUEST",
            Error::IdentifierTaken => "IDENTIFIER_TAKEN",
            other => other
                .v2_codes()
                .first()
                .copied()
                .unwrap_or("INTERNAL_ERROR"),
        }
    }

    /// What Cotter's v0 API says in `msg`.
    fn cotter_message(&self) -> String {
        match self {
            Error::IdentifierTaken => "user already exist".to_owned(),
            other => other.to_string(),
        }
    }
}

/// Cotter's error body: `{"msg": "...", "type": ""}` (v0 routes, probes' 401s).
#[derive(Serialize, ToSchema)]
#[schema(as = CotterError)]
pub struct CotterErrorBody {
    /// What went wrong, for people.
    pub msg: String,
    /// Always empty, as Cotter's clients expect.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl CotterErrorBody {
    /// The body saying `msg`.
    pub fn new(msg: impl Into<String>) -> Self {
        CotterErrorBody {
            msg: msg.into(),
            kind: "",
        }
    }
}

/// The v2 error body: every problem found, as stable codes (README lists them).
#[derive(Serialize, ToSchema)]
pub struct V2ErrorBody {
    /// Never empty.
    #[schema(value_type = Vec<String>, min_items = 1)]
    pub error_codes: Vec<&'static str>,
    /// What went wrong, for people.
    pub msg: String,
}

/// The admin API's error body: an RFC 9457 problem (`application/problem+json`) with a stable
/// `code` (README lists them).
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody {
    /// Always `about:blank`: the status and `code` say what happened.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase (`Not Found`).
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// What went wrong, for programs: UPPER_SNAKE, stable.
    pub code: &'static str,
}

/// The media type of [`ProblemBody`].
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The wire shape an error is answered in: one per API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// Cotter's `{"msg", "type": ""}`: the v0 API and everything outside `/v2`.
    Cotter,
    /// Cradl's `{"error_codes": [...], "msg"}`: everything under `/v2`.
    V2,
    /// RFC 9457 problem details: everything under `/admin`.
    Admin,
}

impl Envelope {
    /// The API a request path belongs to, for the answers no handler writes (unknown paths,
    /// 431). `path` is the path as routed (`match_info().as_str()`).
    pub fn for_path(path: &str) -> Self {
        if path == "/v2" || path.starts_with("/v2/") {
            Envelope::V2
        } else if path == "/admin" || path.starts_with("/admin/") {
            Envelope::Admin
        } else {
            Envelope::Cotter
        }
    }

    /// `err` as an actix error answered in this shape.
    pub fn error(self, err: Error) -> actix_web::Error {
        match self {
            Envelope::Cotter => CotterError(err).into(),
            Envelope::V2 => V2Error(err).into(),
            Envelope::Admin => AdminError(err).into(),
        }
    }

    /// The response to `err` in this shape, with `Retry-After` and `Allow` where the error asks
    /// for them. An internal error's detail is logged here, and only here.
    pub fn respond(self, err: &Error) -> HttpResponse {
        if let Error::Internal(detail) = err {
            log::error!("internal error: {detail}");
        }
        let mut response = HttpResponse::build(err.status());
        if let Some(secs) = err.retry_after() {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(methods) = err.allow() {
            response.insert_header((header::ALLOW, methods.to_owned()));
        }
        match self {
            Envelope::Cotter => response.json(CotterErrorBody::new(err.cotter_message())),
            Envelope::V2 => response.json(V2ErrorBody {
                error_codes: err.v2_codes(),
                msg: err.v2_message(),
            }),
            Envelope::Admin => {
                let status = err.status();
                response.content_type(PROBLEM_JSON).body(
                    serde_json::to_string(&ProblemBody {
                        kind: "about:blank",
                        title: status.canonical_reason().unwrap_or("Error"),
                        status: status.as_u16(),
                        detail: err.to_string(),
                        code: err.admin_code(),
                    })
                    .unwrap_or_default(),
                )
            }
        }
    }
}

/// An error answered in Cotter's shape.
pub struct CotterError(pub Error);

/// An error answered in Cradl's v2 shape.
pub struct V2Error(pub Error);

/// An error answered as an RFC 9457 problem (the admin API).
pub struct AdminError(pub Error);

/// The conversions `?` needs and the `ResponseError` of an envelope type.
macro_rules! envelope_type {
    ($name:ident, $envelope:expr) => {
        /// The status and the client's message only: actix logs this at debug level, and an
        /// internal error's detail is logged once, by `Envelope::respond`.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({}: {})", stringify!($name), self.0.status(), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ResponseError for $name {
            fn status_code(&self) -> StatusCode {
                self.0.status()
            }

            fn error_response(&self) -> HttpResponse {
                $envelope.respond(&self.0)
            }
        }

        impl From<Error> for $name {
            fn from(err: Error) -> Self {
                $name(err)
            }
        }

        impl From<DieselError> for $name {
            fn from(err: DieselError) -> Self {
                $name(err.into())
            }
        }

        impl From<actix_web::error::BlockingError> for $name {
            fn from(err: actix_web::error::BlockingError) -> Self {
                $name(err.into())
            }
        }
    };
}

envelope_type!(CotterError, Envelope::Cotter);
envelope_type!(V2Error, Envelope::V2);
envelope_type!(AdminError, Envelope::Admin);

impl From<DieselError> for Error {
    fn from(err: DieselError) -> Self {
        match &err {
            DieselError::NotFound => Error::NotFound("not found"),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                Error::Conflict("already exists")
            }
            // `db::with_conn` logs the lost connection when it drops it from the pool.
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                Error::Unavailable
            }
            // A write on a server that became a standby (a failover): `db` drops the
            // connection, and the next one goes to the server that now takes writes.
            DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => {
                Error::Unavailable
            }
            // A standby cancels a query whose rows its replay must remove ("conflict with
            // recovery", SQLSTATE 40001, as a serialization failure is): the dashboard read is
            // retried, not failed.
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                log::warn!("database asked for a retry: {err}");
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
            _ => Error::Internal(format!(
                "database error: {err}{}",
                crate::db::pooler_hint(&err.to_string())
            )),
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

/// Shorthand for the layers below the HTTP surface.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: HttpResponse) -> String {
        let bytes = actix_web::body::to_bytes(response.into_body())
            .await
            .map_err(|_| ())
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn database_error(kind: DatabaseErrorKind, message: &str) -> Error {
        DieselError::DatabaseError(kind, Box::new(message.to_owned())).into()
    }

    #[test]
    fn failover_errors_are_retries_and_a_pooler_error_names_the_setting() {
        for (kind, message) in [
            (
                DatabaseErrorKind::SerializationFailure,
                "canceling statement due to conflict with recovery",
            ),
            (
                DatabaseErrorKind::ReadOnlyTransaction,
                "cannot execute INSERT in a read-only transaction",
            ),
            (
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection",
            ),
        ] {
            assert!(
                matches!(database_error(kind, message), Error::Unavailable),
                "{message}"
            );
        }
        let Error::Internal(detail) = database_error(
            DatabaseErrorKind::Unknown,
            "prepared statement \"__diesel_stmt_0\" does not exist",
        ) else {
            panic!("not an internal error");
        };
        assert!(
            detail.ends_with("set DB_STATEMENT_CACHE=false)"),
            "{detail}"
        );
        let Error::Internal(detail) = database_error(DatabaseErrorKind::Unknown, "other") else {
            panic!("not an internal error");
        };
        assert!(!detail.contains("DB_STATEMENT_CACHE"), "{detail}");
    }

    #[actix_web::test]
    async fn each_api_words_a_domain_error_its_own_way() {
        let cotter = body(Envelope::Cotter.respond(&Error::IdentifierTaken)).await;
        assert_eq!(cotter, r#"{"msg":"user already exist","type":""}"#);
        let v2 = body(Envelope::V2.respond(&Error::IdentifierTaken)).await;
        assert_eq!(
            v2,
            r#"{"error_codes":["EMAIL_TAKEN"],"msg":"this email is already used in this project"}"#
        );
    }

    #[actix_web::test]
    async fn problems_list_each_code_once_and_every_message() {
        let err = Error::Problems(vec![
            Problem {
                code: "FIELD_NOT_ALLOWED",
                message: "a".into(),
            },
            Problem {
                code: "EMAIL_INVALID",
                message: "b".into(),
            },
            Problem {
                code: "FIELD_NOT_ALLOWED",
                message: "c".into(),
            },
        ]);
        assert_eq!(
            body(Envelope::V2.respond(&err)).await,
            r#"{"error_codes":["FIELD_NOT_ALLOWED","EMAIL_INVALID"],"msg":"a; b; c"}"#
        );
    }

    #[actix_web::test]
    async fn the_admin_api_answers_problem_details() {
        let response = Envelope::Admin.respond(&Error::IdentifierTaken);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
        assert_eq!(
            body(response).await,
            r#"{"type":"about:blank","title":"Conflict","status":409,"detail":"the identifier is taken in this project","code":"IDENTIFIER_TAKEN"}"#
        );
        let one = Error::Problems(vec![Problem {
            code: "CURSOR_MISMATCH",
            message: "x".into(),
        }]);
        assert!(body(Envelope::Admin.respond(&one))
            .await
            .contains(r#""code":"CURSOR_MISMATCH""#));
    }

    #[test]
    fn retry_after_and_allow_are_set_from_the_error() {
        let busy = Envelope::Cotter.respond(&Error::Unavailable);
        assert_eq!(busy.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let limited = Envelope::V2.respond(&Error::RateLimited(3));
        assert_eq!(limited.headers().get(header::RETRY_AFTER).unwrap(), "3");
        let wrong = Envelope::V2.respond(&Error::MethodNotAllowed("GET, PATCH".into()));
        assert_eq!(wrong.headers().get(header::ALLOW).unwrap(), "GET, PATCH");
    }

    #[test]
    fn paths_belong_to_the_api_of_their_prefix() {
        assert_eq!(Envelope::for_path("/v2"), Envelope::V2);
        assert_eq!(Envelope::for_path("/v2/users"), Envelope::V2);
        assert_eq!(Envelope::for_path("/v2x"), Envelope::Cotter);
        assert_eq!(Envelope::for_path("/api/v0/user"), Envelope::Cotter);
        assert_eq!(Envelope::for_path("/"), Envelope::Cotter);
        assert_eq!(Envelope::for_path("/admin/v1/users"), Envelope::Admin);
        assert_eq!(Envelope::for_path("/administrator"), Envelope::Cotter);
    }
}
