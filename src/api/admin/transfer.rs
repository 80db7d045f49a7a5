//! Admin export and import: `GET /admin/v1/users/export` streams the project's users as NDJSON
//! records; `POST /admin/v1/users/import` takes such records (or Cotter's User objects, or
//! minimal ones) and answers one result line per record. Both run on a thread of their own
//! with one database connection, at most `TRANSFER_CONCURRENCY` at once.

use std::io::{BufReader, Seek, Write};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::query::{flag, FilterQuery};
use super::{context, AdminBodyErrors, AdminKeyErrors, Operator};
use crate::api::request::read_query;
use crate::api::rules;
use crate::auth::Caller;
use crate::error::{AdminError, Error};
use crate::ids::UserId;
use crate::transfer::export::{self, Export};
use crate::transfer::import::{self, OnConflict, Options, SummaryLine};
use crate::transfer::Format;
use crate::{audit, db, AppState};

type Result<T, E = AdminError> = std::result::Result<T, E>;

/// The media type of export files and of import answers.
const NDJSON: &str = "application/x-ndjson";

/// A response body fed by the thread that makes it, a chunk at a time: a slow client slows the
/// thread down (the channel holds two chunks) instead of growing memory.
struct ChannelBody {
    first: Option<Bytes>,
    chunks: mpsc::Receiver<std::result::Result<Bytes, Error>>,
}

impl MessageBody for ChannelBody {
    type Error = Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<std::result::Result<Bytes, Error>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        this.chunks.poll_recv(cx)
    }
}

/// How long a client may read nothing of a transfer's answer before the transfer gives up (it
/// holds a database connection, a transaction and a transfer place meanwhile).
const STALL_LIMIT: Duration = Duration::from_secs(60);

type Chunk = std::result::Result<Bytes, Error>;

/// The sending end of a transfer's answer, used from the transfer's own threads: a send waits
/// for room while the client is slower than the database (woken as soon as there is room), at
/// most [`STALL_LIMIT`].
#[derive(Clone)]
struct Feed {
    chunks: mpsc::Sender<Chunk>,
    waiter: std::sync::Arc<tokio::runtime::Runtime>,
}

impl Feed {
    fn new(chunks: mpsc::Sender<Chunk>) -> std::result::Result<Self, Error> {
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start a transfer's timer: {e}")))?;
        Ok(Feed {
            chunks,
            waiter: std::sync::Arc::new(waiter),
        })
    }

    /// Hands `chunk` to the response; false when the client went away or stalled.
    fn send(&self, chunk: Chunk) -> bool {
        match self
            .waiter
            .block_on(self.chunks.send_timeout(chunk, STALL_LIMIT))
        {
            Ok(()) => true,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                log::warn!("a transfer's client read nothing for {STALL_LIMIT:?}: stopped");
                false
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
        }
    }
}

/// Starts `work` on a thread of its own.
fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> std::result::Result<(), Error> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(drop)
        .map_err(|e| Error::Internal(format!("cannot start the {name} thread: {e}")))
}

/// The parameters of `GET /admin/v1/users/export`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `all` (the default for an export), `active`, `disabled` or `deleted`.
    #[param(value_type = Option<String>, pattern = "^(active|disabled|deleted|all)$")]
    pub status: Option<String>,
    /// An identifier prefix, compared in the normalised form; empty means none.
    #[param(value_type = Option<String>, schema_with = rules::prefix_schema)]
    pub q: Option<String>,
    /// Users created at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<String>,
    /// Users created strictly before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<String>,
    /// Resume a dropped download after this user: the `id` of the last record received.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<String>,
    /// `password_hash` adds each user's password hash (PHC string, null without one); empty
    /// means none.
    #[param(value_type = Option<String>, pattern = "^(password_hash)?$")]
    pub include: Option<String>,
}

impl ExportQuery {
    fn export(self) -> std::result::Result<Export, Error> {
        let filter = FilterQuery {
            status: Some(self.status.unwrap_or_else(|| "all".to_owned())),
            q: self.q,
            created_after: self.created_after,
            created_before: self.created_before,
        }
        .filter()?;
        let after = match self.after.as_deref() {
            None => None,
            Some(raw) => Some(UserId::parse(raw).ok_or_else(|| {
                Error::problem("INVALID_PARAMETER", "after must be a user's id (a UUID)")
            })?),
        };
        let include_password_hash = match self.include.as_deref() {
            None | Some("") => false,
            Some("password_hash") => true,
            Some(_) => {
                return Err(Error::problem(
                    "INVALID_PARAMETER",
                    "include must be password_hash",
                ))
            }
        };
        Ok(Export {
            filter,
            after,
            include_password_hash,
        })
    }
}

/// `GET /admin/v1/users/export`: the project's users as NDJSON, one record a line, oldest
/// first.
///
/// A record is the admin user object with `accounts` (`id`, `type`, `created_at`) and, with
/// `include=password_hash`, `password_hash`. The file is read in chunks inside one snapshot
/// (what the project held when the export began), streamed as it is read and compressed with
/// gzip when the client accepts it. A download that broke off resumes with `after=` the `id` of
/// the last complete line. 503 when `TRANSFER_CONCURRENCY` exports and imports are running.
#[utoipa::path(
    get,
    path = "/admin/v1/users/export",
    operation_id = "admin_export_users",
    tag = "admin",
    params(ExportQuery),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "NDJSON export records", content_type = "application/x-ndjson", body = String),
        AdminKeyErrors,
    )
)]
pub(crate) async fn export_users(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse> {
    let export = read_query::<ExportQuery>(&req)?.export()?;
    let project = caller.into_project();
    let context = context(&project, &req);
    let slot = state.transfers.take().ok_or(Error::Unavailable)?;
    let (primary, reads) = (state.pool.clone(), state.reads.clone());
    let (chunks, mut received) = mpsc::channel(2);
    let feed = Feed::new(chunks)?;
    spawn("cotterd-export", move || {
        let sent = feed.clone();
        // The audit event is a write (the primary); the records are a dashboard read (a
        // standby's, when DATABASE_READ_URL names one).
        let recorded = db::with_conn(&primary, |conn| {
            // Who took the project's users, and whether with their password hashes (no
            // filter values: a search prefix may be personal data).
            audit::record_users(
                conn,
                project.id(),
                &context,
                "users.export",
                json!({
                    "include_password_hash": export.include_password_hash,
                    "resumed": export.after.is_some(),
                }),
            )
        });
        let result = recorded.and_then(|()| {
            db::with_conn(&reads, |conn| {
                export::run(conn, project.id(), &export, |lines| {
                    sent.send(Ok(Bytes::from(lines)))
                })
            })
        });
        // The place is free before the answer can end (the last sender goes after it), so that
        // a client's next transfer never finds its own last one still holding it.
        drop(slot);
        if let Err(err) = result {
            if let Error::Internal(detail) = &err {
                log::error!("export of project {} failed: {detail}", project.id());
            }
            feed.send(Err(err));
        }
    })?;
    // The first chunk (or the refusal, before anything is sent) decides the status.
    let first = match received.recv().await {
        Some(Err(err)) => return Err(err.into()),
        Some(Ok(first)) => Some(first),
        None => None,
    };
    Ok(HttpResponse::Ok()
        .content_type(NDJSON)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"users.ndjson\"",
        ))
        .body(ChannelBody {
            first,
            chunks: received,
        }))
}

/// The parameters of `POST /admin/v1/users/import`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// What a record whose id or identifier a user already has does: `fail` (the default: that
    /// record is an error), `skip` or `update`.
    #[param(value_type = Option<String>, pattern = "^(fail|skip|update)$")]
    pub on_conflict: Option<String>,
    /// `true` checks every record and writes nothing.
    #[param(value_type = Option<bool>)]
    pub dry_run: Option<String>,
}

/// Which format a body's Content-Type names.
fn format_of(req: &HttpRequest) -> std::result::Result<Format, Error> {
    match req.content_type().to_ascii_lowercase().as_str() {
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok(Format::Ndjson),
        "application/json" => Ok(Format::JsonArray),
        _ => Err(Error::UnsupportedMediaType),
    }
}

/// Longest an upload may take in all, however steadily it trickles in (it holds a transfer
/// place meanwhile): 64 MiB in 10 minutes is 110 KB/s.
const UPLOAD_LIMIT: Duration = Duration::from_secs(600);

/// Writes the body to a temporary file as it arrives (each chunk within `idle` of the last, the
/// whole within [`UPLOAD_LIMIT`]), at most `limit` bytes: a file too large is refused before
/// anything is imported, and an upload that breaks off imports nothing.
async fn spool(
    mut payload: web::Payload,
    limit: u64,
    idle: Duration,
) -> std::result::Result<std::fs::File, Error> {
    let mut file = tempfile::tempfile()
        .map_err(|e| Error::Internal(format!("cannot make a temporary file: {e}")))?;
    let mut size = 0u64;
    let started = std::time::Instant::now();
    loop {
        let left = UPLOAD_LIMIT.saturating_sub(started.elapsed());
        let next = actix_web::rt::time::timeout(idle.min(left), payload.next())
            .await
            .map_err(|_| Error::RequestTimeout)?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|_| Error::Invalid("could not read the request body".into()))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(Error::PayloadTooLarge(
                usize::try_from(limit).unwrap_or(usize::MAX),
            ));
        }
        file.write_all(&chunk)
            .map_err(|e| Error::Internal(format!("cannot spool an import: {e}")))?;
    }
    file.rewind()
        .map_err(|e| Error::Internal(format!("cannot read a spooled import: {e}")))?;
    Ok(file)
}

/// `POST /admin/v1/users/import`: imports users from NDJSON (`application/x-ndjson`) or a JSON
/// array (`application/json`, also several arrays one after the other, as saved list pages).
///
/// Each record is this server's export record, a Cotter User object exactly as
/// `GET /api/v0/user/list` printed it, or a minimal `{"identifier": …}`; ids, times (Go's
/// zero time included), identifiers, `client_user_id`, deletion, profile, accounts and password
/// hashes (argon2, bcrypt, PBKDF2-SHA256) are kept. Records are written in file order, in
/// transactions of at most 1,000; a record is written whole or not at all. The answer is NDJSON:
/// one `{"line", "status", "id", "code", "detail"}` per record (`created`, `updated`, `skipped`
/// or `error`), then `{"summary": {…}}` with the counts. At most `MAX_IMPORT_BYTES` (413 before
/// anything is written).
#[utoipa::path(
    post,
    path = "/admin/v1/users/import",
    operation_id = "admin_import_users",
    tag = "admin",
    params(ImportQuery),
    request_body(content = String, content_type = "application/x-ndjson", description = "Records, one a line (or a JSON array with application/json)"),
    security(("api_key_id" = [], "api_secret_key" = [])),
    responses(
        (status = 200, description = "One result line per record, then the summary", content_type = "application/x-ndjson", body = String),
        AdminKeyErrors, AdminBodyErrors,
    )
)]
pub(crate) async fn import_users(
    caller: Caller<Operator>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let query = read_query::<ImportQuery>(&req)?;
    let on_conflict = match query.on_conflict.as_deref() {
        None => OnConflict::Fail,
        Some(raw) => OnConflict::parse(raw).ok_or_else(|| {
            Error::problem(
                "INVALID_PARAMETER",
                "on_conflict must be fail, skip or update",
            )
        })?,
    };
    let dry_run = flag("dry_run", query.dry_run.as_deref())?;
    let format = format_of(&req)?;
    let limit = state.settings.max_import_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(Error::PayloadTooLarge(usize::try_from(limit).unwrap_or(usize::MAX)).into());
    }
    let project = caller.into_project();
    let context = context(&project, &req);
    let slot = state.transfers.take().ok_or(Error::Unavailable)?;
    let idle = Duration::from_millis(state.settings.body_timeout_ms);
    let file = spool(payload, limit, idle).await?;
    // The connection before the answer starts: a busy pool is a 503, not a broken stream.
    let pool = state.pool.clone();
    let mut conn = web::block(move || pool.get())
        .await
        .map_err(|e| Error::Internal(format!("blocking pool: {e}")))?
        .map_err(|_| Error::Unavailable)?;
    let options = Options {
        format,
        on_conflict,
        dry_run,
    };
    let (lines, received) = mpsc::channel(2);
    let feed = Feed::new(lines)?;
    spawn("cotterd-import", move || {
        let mut buffer = Vec::with_capacity(64 * 1024);
        let flush = |buffer: &mut Vec<u8>| feed.send(Ok(Bytes::from(std::mem::take(buffer))));
        let summary = import::run(
            conn.conn(),
            project.id(),
            BufReader::new(file),
            options,
            &context,
            |outcome| {
                if serde_json::to_writer(&mut buffer, outcome).is_ok() {
                    buffer.push(b'\n');
                }
                buffer.len() < 64 * 1024 || flush(&mut buffer)
            },
        );
        if serde_json::to_writer(&mut buffer, &SummaryLine { summary: &summary }).is_ok() {
            buffer.push(b'\n');
        }
        // The connection and the place are given back before the answer ends, so that the
        // client's next transfer finds them free.
        drop(conn);
        drop(slot);
        flush(&mut buffer);
    })?;
    Ok(HttpResponse::Ok()
        .content_type(NDJSON)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(ChannelBody {
            first: None,
            chunks: received,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_default_to_every_status_and_check_their_parameters() {
        let export = ExportQuery::default().export().unwrap();
        assert_eq!(export.filter.status, crate::users::admin::Status::All);
        assert!(!export.include_password_hash);
        let bad = ExportQuery {
            include: Some("secrets".into()),
            ..ExportQuery::default()
        };
        assert!(bad.export().is_err());
        let bad = ExportQuery {
            after: Some("not-a-uuid".into()),
            ..ExportQuery::default()
        };
        assert!(bad.export().is_err());
    }
}
