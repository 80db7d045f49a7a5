//! Writing an import: records in file order, in transactions of at most [`BATCH_RECORDS`], each
//! record either written whole or not at all, each answered by one result.
//!
//! A batch is first written with a few multi-row statements after one read of what the
//! database already holds (ids, identifiers, app ids, account ids). If the database refuses
//! that (a user made meanwhile by the API took an identifier: the unique indexes decide), the
//! batch is rolled back and written again one record at a time, each under its own savepoint,
//! so that only the records that conflict fail. Results are handed out once their batch is
//! committed: a result never reports a write that a crash could still undo.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use super::read::{Format, Piece, Reader};
use super::record::{prepare, Kind, Prepared, Rejection};
use crate::accounts::Account;
use crate::audit::{self, Context};
use crate::db::schema::{accounts, projects, user_identifiers, users};
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::ids::{ProjectId, UserId};
use crate::scope;
use crate::users::{self as store, insert_many, ImportedChanges};

/// Records written in one transaction, at most.
pub const BATCH_RECORDS: usize = 1_000;
/// Largest record, in bytes.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Values per `IN (…)` list when reading what exists.
const LOOKUP_CHUNK: usize = 5_000;

/// What to do with a record whose id, or an identifier of whose, a user already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// The record is an error (the default); the others go on.
    Fail,
    /// The record is skipped, naming the user that has it.
    Skip,
    /// The user with the record's id (a minimal record: with its identifier) is rewritten from
    /// the record.
    Update,
}

impl OnConflict {
    /// Reads `fail`, `skip` or `update`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "fail" => Some(OnConflict::Fail),
            "skip" => Some(OnConflict::Skip),
            "update" => Some(OnConflict::Update),
            _ => None,
        }
    }

    /// The name it is read from.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Fail => "fail",
            OnConflict::Skip => "skip",
            OnConflict::Update => "update",
        }
    }
}

/// How to import.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub format: Format,
    pub on_conflict: OnConflict,
    /// Check every record against the database and the records before it in its batch, and
    /// write nothing (each batch is rolled back).
    pub dry_run: bool,
}

/// The result of one record.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The line the record starts on.
    pub line: u64,
    /// `created`, `updated`, `skipped` or `error`.
    pub status: &'static str,
    /// The user written, or the one in the way of a skipped record, or the record's own id.
    pub id: Option<String>,
    /// Why it was skipped or refused, or what it could not keep.
    pub code: Option<&'static str>,
    pub detail: Option<String>,
}

impl Outcome {
    fn done(record: &Prepared, status: &'static str, id: &str) -> Self {
        Outcome {
            line: record.line,
            status,
            id: Some(id.to_owned()),
            code: record.note.as_ref().map(|n| n.code),
            detail: record.note.as_ref().map(|n| n.detail.clone()),
        }
    }

    fn refused(line: u64, id: Option<&str>, why: Rejection) -> Self {
        Outcome {
            line,
            status: "error",
            id: id.map(str::to_owned),
            code: Some(why.code),
            detail: Some(why.detail),
        }
    }
}

/// The counts of an import, its last line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub records: u64,
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    pub errors: u64,
    pub dry_run: bool,
    pub on_conflict: &'static str,
    /// False when the import stopped before the end of the file (see `code`); the batches
    /// before that are written, and sending the file again with `on_conflict=skip` completes it.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Summary {
    fn count(&mut self, outcome: &Outcome) {
        self.records += 1;
        match outcome.status {
            "created" => self.created += 1,
            "updated" => self.updated += 1,
            "skipped" => self.skipped += 1,
            _ => self.errors += 1,
        }
    }

    fn stop(&mut self, code: &'static str, detail: impl Into<String>) {
        self.complete = false;
        self.code = Some(code);
        self.detail = Some(detail.into());
    }
}

/// The last line of an import's answer: `{"summary": {…}}`.
#[derive(Debug, Serialize)]
pub struct SummaryLine<'a> {
    pub summary: &'a Summary,
}

/// A record read from the file: ready to write, or already refused.
enum Entry {
    Ready(Box<Prepared>),
    Refused(Outcome),
}

/// Imports the records of `input` into `project`, handing each result to `emit` in file order
/// (`emit` answers false to stop after the current batch: the client went away). The summary
/// says how far it got.
pub fn run(
    conn: &mut DbConn,
    project: &ProjectId,
    input: impl BufRead,
    options: Options,
    context: &Context,
    mut emit: impl FnMut(&Outcome) -> bool,
) -> Summary {
    let mut summary = Summary {
        dry_run: options.dry_run,
        on_conflict: options.on_conflict.as_str(),
        complete: true,
        ..Summary::default()
    };
    let mut statistics = Statistics { at: 0 };
    let mut batch = Batch {
        import: uuid::Uuid::new_v4().to_string(),
        number: 0,
        entries: Vec::with_capacity(BATCH_RECORDS),
    };
    for piece in Reader::new(input, options.format, MAX_RECORD_BYTES) {
        let entry = match piece {
            Err(e) => {
                summary.stop("READ_FAILED", format!("the file could not be read: {e}"));
                break;
            }
            Ok(Piece::Record { line, bytes }) => match prepare(project, line, &bytes) {
                Ok(record) => Entry::Ready(Box::new(record)),
                Err(why) => Entry::Refused(Outcome::refused(line, None, why)),
            },
            Ok(Piece::Bad { line, code, detail } | Piece::Broken { line, code, detail }) => {
                Entry::Refused(Outcome::refused(line, None, Rejection { code, detail }))
            }
        };
        batch.entries.push(entry);
        if batch.entries.len() >= BATCH_RECORDS {
            if !batch.flush(conn, project, options, context, &mut summary, &mut emit) {
                return summary;
            }
            statistics.refresh(conn, summary.created);
        }
    }
    if summary.complete {
        batch.flush(conn, project, options, context, &mut summary, &mut emit);
    }
    summary
}

/// The planner's statistics of the tables an import grows. PostgreSQL plans the batch's lookups
/// from them, and on tables that an import is filling they say "nearly empty" until autovacuum's
/// next look (a minute or more): the lookups then scan the project's rows, each batch slower
/// than the last. They are refreshed each time the import has doubled what it wrote since.
struct Statistics {
    /// Users created when they were last refreshed.
    at: u64,
}

impl Statistics {
    fn refresh(&mut self, conn: &mut DbConn, created: u64) {
        if created < (self.at * 2).max(BATCH_RECORDS as u64) {
            return;
        }
        self.at = created;
        if let DbConn::Pg(_) = conn {
            // Only a hint: a role that may not ANALYZE leaves the work to autovacuum.
            if let Err(e) =
                diesel::sql_query("ANALYZE users, user_identifiers, accounts").execute(conn)
            {
                log::warn!("import: cannot refresh the planner's statistics: {e}");
            }
        }
    }
}

struct Batch {
    /// The import's id, in each batch's audit event.
    import: String,
    number: u64,
    entries: Vec<Entry>,
}

impl Batch {
    /// Writes the batch and hands out its results; false when the import must stop.
    fn flush(
        &mut self,
        conn: &mut DbConn,
        project: &ProjectId,
        options: Options,
        context: &Context,
        summary: &mut Summary,
        emit: &mut impl FnMut(&Outcome) -> bool,
    ) -> bool {
        let entries = std::mem::take(&mut self.entries);
        if entries.is_empty() {
            return true;
        }
        self.number += 1;
        let ready: Vec<&Prepared> = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Ready(record) => Some(&**record),
                Entry::Refused(_) => None,
            })
            .collect();
        let audit = json!({"import": self.import, "batch": self.number});
        let written = match write_batch(conn, project, &ready, options, context, audit) {
            Ok(outcomes) => outcomes,
            Err(err) => {
                let (code, detail) = match err {
                    Error::Unavailable => ("SERVICE_UNAVAILABLE", "the database is unavailable"),
                    _ => ("INTERNAL_ERROR", "the import failed on the server"),
                };
                if let Error::Internal(detail) = &err {
                    log::error!("import of project {project} stopped: {detail}");
                }
                summary.stop(code, format!("{detail}; the batches before it are written"));
                return false;
            }
        };
        let mut written = written.into_iter();
        let mut going = true;
        for entry in entries {
            let outcome = match entry {
                Entry::Refused(outcome) => outcome,
                Entry::Ready(_) => match written.next() {
                    Some(outcome) => outcome,
                    None => break,
                },
            };
            summary.count(&outcome);
            going = going && emit(&outcome);
        }
        if !going {
            summary.stop("CANCELLED", "the client went away");
        }
        going
    }
}

/// Whether an error ends the import rather than one record.
fn fatal(err: &Error) -> bool {
    matches!(err, Error::Unavailable | Error::Internal(_))
}

/// How a transaction ends: a failure, or a dry run's rollback carrying its results.
enum End {
    Failed(Error),
    DryRun(Vec<Outcome>),
}

impl From<diesel::result::Error> for End {
    fn from(err: diesel::result::Error) -> Self {
        End::Failed(err.into())
    }
}

/// Runs `f` in a transaction, rolled back for a dry run.
fn transaction(
    conn: &mut DbConn,
    project: &ProjectId,
    dry_run: bool,
    f: impl FnOnce(&mut DbConn) -> Result<Vec<Outcome>>,
) -> Result<Vec<Outcome>> {
    let result = conn.transaction::<_, End, _>(|conn| {
        // SQLite: the write lock first, as every write transaction here takes it (a
        // transaction that reads first may fail to upgrade when another writer came between).
        if let DbConn::Sqlite(_) = conn {
            diesel::update(projects::table.filter(projects::id.eq(project.as_str())))
                .set(projects::name.eq(projects::name))
                .execute(conn)?;
        }
        let outcomes = f(conn).map_err(End::Failed)?;
        match dry_run {
            true => Err(End::DryRun(outcomes)),
            false => Ok(outcomes),
        }
    });
    match result {
        Ok(outcomes) | Err(End::DryRun(outcomes)) => Ok(outcomes),
        Err(End::Failed(err)) => Err(err),
    }
}

/// Writes one batch (see the module's comment); one outcome per record, in order.
fn write_batch(
    conn: &mut DbConn,
    project: &ProjectId,
    records: &[&Prepared],
    options: Options,
    context: &Context,
    audit: serde_json::Value,
) -> Result<Vec<Outcome>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let audited = |conn: &mut DbConn, outcomes: Vec<Outcome>| -> Result<Vec<Outcome>> {
        record_batch(conn, project, context, audit.clone(), &outcomes, options)?;
        Ok(outcomes)
    };
    let at_once = transaction(conn, project, options.dry_run, |conn| {
        let outcomes = apply(conn, project, records, options.on_conflict)?;
        audited(conn, outcomes)
    });
    match at_once {
        Err(err) if !fatal(&err) => {}
        done => return done,
    }
    transaction(conn, project, options.dry_run, |conn| {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            // A savepoint each: a refused record leaves the others.
            match conn.transaction(|conn| apply(conn, project, &[record], options.on_conflict)) {
                Ok(mut one) => outcomes.append(&mut one),
                Err(err) if fatal(&err) => return Err(err),
                Err(err) => {
                    let why = match err {
                        Error::IdentifierTaken => Rejection {
                            code: "IDENTIFIER_TAKEN",
                            detail: "another user of the project has an identifier or the \
                                     client_user_id of this record"
                                .into(),
                        },
                        Error::Problems(problems) => Rejection {
                            code: problems.first().map_or("INVALID_RECORD", |p| p.code),
                            detail: Error::Problems(problems).to_string(),
                        },
                        other => Rejection {
                            code: "CONFLICT",
                            detail: other.to_string(),
                        },
                    };
                    outcomes.push(Outcome::refused(record.line, Some(record.id()), why));
                }
            }
        }
        audited(conn, outcomes)
    })
}

/// The batch's audit event, with its counts (no personal data); none when it wrote nothing.
fn record_batch(
    conn: &mut DbConn,
    project: &ProjectId,
    context: &Context,
    mut detail: serde_json::Value,
    outcomes: &[Outcome],
    options: Options,
) -> Result<()> {
    let count = |status: &str| outcomes.iter().filter(|o| o.status == status).count();
    let (created, updated) = (count("created"), count("updated"));
    if options.dry_run || created + updated == 0 {
        return Ok(());
    }
    detail["created"] = json!(created);
    detail["updated"] = json!(updated);
    detail["skipped"] = json!(count("skipped"));
    detail["errors"] = json!(count("error"));
    detail["on_conflict"] = json!(options.on_conflict.as_str());
    audit::record_users(conn, project, context, "users.import", detail)
}

/// What the database holds of what a batch names, updated as the batch's records are taken.
#[derive(Default)]
struct Known {
    /// Ids of the project's users (any status).
    here: HashSet<String>,
    /// Ids another project's users have (ids are unique across the server).
    elsewhere: HashSet<String>,
    /// Live users' identifiers (normalised) → user id.
    identifiers: HashMap<String, String>,
    /// Live users' app ids → user id.
    client_ids: HashMap<String, String>,
    /// Account id → (project, user id).
    accounts: HashMap<String, (String, String)>,
}

impl Known {
    fn read(conn: &mut DbConn, project: &ProjectId, records: &[&Prepared]) -> Result<Known> {
        let mut known = Known::default();
        // The ids records name, and the ids that app ids in UUID form could shadow.
        let mut ids: Vec<&str> = records
            .iter()
            .filter(|r| r.kind != Kind::Minimal)
            .map(|r| r.id())
            .collect();
        ids.extend(
            records
                .iter()
                .filter(|r| UserId::parse(&r.row.client_user_id).is_some())
                .map(|r| r.row.client_user_id.as_str()),
        );
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            // Across projects on purpose: only to refuse an id another project's user has;
            // nothing of that user is read or shown.
            let found: Vec<(String, String)> = users::table
                .filter(users::id.eq_any(chunk))
                .select((users::id, users::issuer))
                .load(conn)?;
            for (id, issuer) in found {
                match issuer == project.as_str() {
                    true => known.here.insert(id),
                    false => known.elsewhere.insert(id),
                };
            }
        }
        let normalized: Vec<&str> = records
            .iter()
            .flat_map(|r| r.row.all_identifiers.iter().map(String::as_str))
            .collect();
        for chunk in normalized.chunks(LOOKUP_CHUNK) {
            let found: Vec<(String, String)> = scope::identifiers_of(project)
                .filter(user_identifiers::identifier_normalized.eq_any(chunk))
                .select((
                    user_identifiers::identifier_normalized,
                    user_identifiers::user_id,
                ))
                .load(conn)?;
            known.identifiers.extend(found);
        }
        // App ids the records give, and the records' ids (an id must not be another user's app
        // id either: lookups by id would find that user first).
        let client_ids: Vec<&str> = records
            .iter()
            .flat_map(|r| [r.row.client_user_id.as_str(), r.id()])
            .collect();
        for chunk in client_ids.chunks(LOOKUP_CHUNK) {
            let found: Vec<(String, String)> = scope::users_of(project)
                .filter(users::client_user_id.eq_any(chunk))
                .select((users::client_user_id, users::id))
                .load(conn)?;
            known.client_ids.extend(found);
        }
        let account_ids: Vec<&str> = records
            .iter()
            .flat_map(|r| r.accounts.iter().map(|a| a.id.as_str()))
            .collect();
        for chunk in account_ids.chunks(LOOKUP_CHUNK) {
            // Across projects, as ids are: an account id is unique across the server.
            let found: Vec<(String, String, String)> = accounts::table
                .filter(accounts::id.eq_any(chunk))
                .select((accounts::id, accounts::issuer, accounts::user_id))
                .load(conn)?;
            known.accounts.extend(
                found
                    .into_iter()
                    .map(|(id, issuer, user)| (id, (issuer, user))),
            );
        }
        Ok(known)
    }

    /// What to do with `record`.
    fn decide(&self, project: &ProjectId, record: &Prepared, mode: OnConflict) -> Decision {
        let id = record.id();
        let target = match record.kind {
            Kind::Minimal => self
                .identifiers
                .get(&record.row.identifier_normalized)
                .cloned(),
            Kind::Export | Kind::Cotter if self.here.contains(id) => Some(id.to_owned()),
            Kind::Export | Kind::Cotter if self.elsewhere.contains(id) => {
                return Decision::Refuse(Rejection {
                    code: "ID_TAKEN",
                    detail: "this id cannot be used in this project: ids are unique across the \
                             server"
                        .into(),
                })
            }
            Kind::Export | Kind::Cotter => None,
        };
        let me = target.as_deref().unwrap_or(id);
        let clash = self.clash(project, record, me);
        let exists = match record.kind {
            Kind::Minimal => Rejection {
                code: "IDENTIFIER_TAKEN",
                detail: "a user of the project has this identifier".into(),
            },
            _ => Rejection {
                code: "ID_EXISTS",
                detail: "a user of the project has this id".into(),
            },
        };
        // A minimal record changes only what it names: naming nothing, it has nothing to update.
        let nothing_to_change = record.kind == Kind::Minimal
            && record.row.password_hash.is_none()
            && !record.names_client_user_id
            && !record.names_created_at;
        match (target, mode, clash) {
            (Some(target), OnConflict::Update, None) if nothing_to_change => Decision::Skip(
                target,
                Rejection {
                    code: "NOTHING_TO_UPDATE",
                    detail: "the user with this identifier exists, and the record names nothing \
                             an update changes (password_hash, client_user_id, created_at)"
                        .into(),
                },
            ),
            (None, _, None) => Decision::Create,
            (None, OnConflict::Skip, Some((why, Some(owner)))) => Decision::Skip(owner, why),
            (None, _, Some((why, _))) => Decision::Refuse(why),
            (Some(_), OnConflict::Fail, _) => Decision::Refuse(exists),
            (Some(target), OnConflict::Skip, _) => Decision::Skip(target, exists),
            (Some(target), OnConflict::Update, None) => Decision::Update(target),
            (Some(_), OnConflict::Update, Some((why, _))) => Decision::Refuse(why),
        }
    }

    /// What of `record` another user than `me` has: an identifier, the app's id, an account
    /// id; with that user when it is one of the project's.
    fn clash(
        &self,
        project: &ProjectId,
        record: &Prepared,
        me: &str,
    ) -> Option<(Rejection, Option<String>)> {
        let other = |owner: &String| owner != me;
        if let Some(owner) = self.client_ids.get(record.id()).filter(|o| other(o)) {
            let why = Rejection {
                code: "ID_TAKEN",
                detail: format!(
                    "user {owner} of the project has this id as its client_user_id: lookups by \
                     id would find one user for the other"
                ),
            };
            return Some((why, Some(owner.clone())));
        }
        if record.live() {
            for normalized in &record.row.all_identifiers {
                if let Some(owner) = self.identifiers.get(normalized).filter(|o| other(o)) {
                    let why = Rejection {
                        code: "IDENTIFIER_TAKEN",
                        detail: format!(
                            "user {owner} of the project has an identifier of this record"
                        ),
                    };
                    return Some((why, Some(owner.clone())));
                }
            }
            let client = &record.row.client_user_id;
            if let Some(owner) = self.client_ids.get(client).filter(|o| other(o)) {
                let why = Rejection {
                    code: "CLIENT_USER_ID_TAKEN",
                    detail: format!("user {owner} of the project has this client_user_id"),
                };
                return Some((why, Some(owner.clone())));
            }
        }
        // Within the project only, as the v0 create's rule: another project's ids name nobody
        // here (and this answer must not tell that they exist).
        let client = &record.row.client_user_id;
        let names_another = client != me
            && client != record.id()
            && UserId::parse(client).is_some()
            && self.here.contains(client);
        if names_another {
            let why = Rejection {
                code: "CLIENT_USER_ID_TAKEN",
                detail: "client_user_id is the ID of another user: lookups by id would find that \
                         user"
                    .into(),
            };
            return Some((why, None));
        }
        for account in &record.accounts {
            if let Some((issuer, user)) = self.accounts.get(&account.id) {
                if issuer != project.as_str() || user != me {
                    let why = Rejection {
                        code: "ACCOUNT_ID_TAKEN",
                        detail: format!("account {} belongs to another user", account.id),
                    };
                    return Some((why, None));
                }
            }
        }
        None
    }

    /// Counts `record`'s user (now `id`) as existing, for the records after it. An update first
    /// gives up what the user held that the record replaces (its identifiers, its app id).
    fn take(&mut self, project: &ProjectId, record: &Prepared, id: &str) {
        self.here.insert(id.to_owned());
        if record.kind != Kind::Minimal {
            self.identifiers.retain(|_, owner| owner != id);
        }
        if record.kind != Kind::Minimal || record.names_client_user_id {
            self.client_ids.retain(|_, owner| owner != id);
        }
        if record.live() {
            for normalized in &record.row.all_identifiers {
                self.identifiers.insert(normalized.clone(), id.to_owned());
            }
            self.client_ids
                .insert(record.row.client_user_id.clone(), id.to_owned());
        }
        for account in &record.accounts {
            self.accounts.insert(
                account.id.clone(),
                (project.as_str().to_owned(), id.to_owned()),
            );
        }
    }
}

enum Decision {
    Create,
    Update(String),
    Skip(String, Rejection),
    Refuse(Rejection),
}

/// Decides and writes `records` (one batch, or one record under its savepoint).
fn apply(
    conn: &mut DbConn,
    project: &ProjectId,
    records: &[&Prepared],
    mode: OnConflict,
) -> Result<Vec<Outcome>> {
    let mut known = Known::read(conn, project, records)?;
    let mut outcomes = Vec::with_capacity(records.len());
    let mut created: Vec<&Prepared> = Vec::new();
    for record in records {
        // Accounts the user has already (an update) are kept, not written again.
        let outcome = match known.decide(project, record, mode) {
            Decision::Create => {
                known.take(project, record, record.id());
                created.push(record);
                Outcome::done(record, "created", record.id())
            }
            Decision::Update(target) => {
                let new_accounts: Vec<Account> = record
                    .accounts
                    .iter()
                    .filter(|a| !known.accounts.contains_key(&a.id))
                    .cloned()
                    .map(|a| Account {
                        user_id: target.clone(),
                        ..a
                    })
                    .collect();
                update(conn, project, record, &target, &new_accounts)?;
                known.take(project, record, &target);
                Outcome::done(record, "updated", &target)
            }
            Decision::Skip(owner, why) => Outcome {
                line: record.line,
                status: "skipped",
                id: Some(owner),
                code: Some(why.code),
                detail: Some(why.detail),
            },
            // A minimal record's id was made up here: it names nobody.
            Decision::Refuse(why) => {
                let id = (record.kind != Kind::Minimal).then(|| record.id());
                Outcome::refused(record.line, id, why)
            }
        };
        outcomes.push(outcome);
    }
    let rows: Vec<store::ImportedRow> = created.iter().map(|r| r.row.clone()).collect();
    store::insert_imported(conn, &rows)?;
    let opened: Vec<Account> = created
        .iter()
        .flat_map(|r| r.accounts.iter().cloned())
        .collect();
    insert_accounts(conn, &opened)?;
    Ok(outcomes)
}

fn insert_accounts(conn: &mut DbConn, rows: &[Account]) -> Result<()> {
    for chunk in rows.chunks(5_000) {
        insert_many!(&mut *conn, accounts::table, chunk).map_err(|err| match Error::from(err) {
            Error::Conflict(_) => Error::Conflict("an account id of this record is taken"),
            other => other,
        })?;
    }
    Ok(())
}

/// Rewrites the project's user `target` from `record`: every field a full record has (the
/// profile only from an export record); for a minimal record, only what it names.
fn update(
    conn: &mut DbConn,
    project: &ProjectId,
    record: &Prepared,
    target: &str,
    new_accounts: &[Account],
) -> Result<()> {
    let row = &record.row;
    let full = record.kind != Kind::Minimal;
    let profile = record.kind == Kind::Export;
    let changes = ImportedChanges {
        identifier: full.then(|| row.identifier.clone()),
        identifier_normalized: full.then(|| row.identifier_normalized.clone()),
        identifiers: full.then(|| row.identifiers.clone()),
        client_user_id: (full || record.names_client_user_id).then(|| row.client_user_id.clone()),
        created_at: (full || record.names_created_at).then_some(row.created_at),
        updated_at: full.then_some(row.updated_at),
        deleted_at: full.then_some(row.deleted_at),
        disabled_at: full.then_some(row.disabled_at),
        password_hash: row.password_hash.clone().map(Some),
        phone_number: profile.then(|| row.phone_number.clone()),
        first_name: profile.then(|| row.first_name.clone()),
        last_name: profile.then(|| row.last_name.clone()),
        kyc_id: profile.then(|| row.kyc_id.clone()),
    };
    let identifiers = full.then_some(row.all_identifiers.as_slice());
    store::update_imported(conn, project, target, &changes, identifiers)?;
    // Accounts need a KYC reference (as opening one does): a profile without one may not
    // replace the profile of a user that has accounts.
    if profile && row.kyc_id.is_none() {
        let held: i64 = scope::accounts_of(project)
            .filter(accounts::user_id.eq(target))
            .count()
            .get_result(conn)?;
        if held > 0 {
            return Err(Error::problem(
                "INVALID_ACCOUNT",
                "the user has accounts, which need a kyc_id: the record's profile must keep one",
            ));
        }
    }
    insert_accounts(conn, new_accounts)
}
