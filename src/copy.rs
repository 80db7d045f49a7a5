//! `cotterd copy`: a whole database copied into a new, empty one, on either backend (SQLite to
//! PostgreSQL when an installation outgrows SQLite, PostgreSQL to SQLite, or the same backend).
//!
//! The source is read in one snapshot (a read-only REPEATABLE READ transaction on PostgreSQL, a
//! read transaction on SQLite), table by table in an order that satisfies the foreign keys,
//! keyset-paged by primary key; each page is one multi-row INSERT on the target. The whole copy
//! is one transaction on the target: each table is read back (row count and a SHA-256 of its
//! rows in primary-key order) and compared with what was read from the source before the
//! commit, so that a failure or a difference leaves the target as empty as it was, and the
//! command can simply be run again.
//!
//! The copier knows every table and column of the schema ([`tables`]). It refuses a database
//! whose catalogue holds a table or column it does not know, or migrations this binary does not
//! know, before it writes anything: a table added by a later migration cannot be left out
//! silently.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::NaiveDateTime;
use diesel::connection::Connection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use sha2::{Digest, Sha256};

use crate::config::DatabaseSettings;
use crate::db::{self, ConnectionManager, DbConn, Target, PG_MIGRATIONS, SQLITE_MIGRATIONS};

/// Rows per INSERT statement unless `--batch` says otherwise.
pub const DEFAULT_BATCH: usize = 1_000;

/// Fewer bind parameters than this in one statement (PostgreSQL allows 65,535, SQLite 32,766):
/// a wide table gets fewer rows per INSERT than the batch size.
const MAX_BINDS: usize = 30_000;

/// diesel's own table, which the migrations fill: never copied (the target's is its own).
const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

// ---------------------------------------------------------------------------------------------
// The tables
// ---------------------------------------------------------------------------------------------

/// One table of the schema, as the copier handles it.
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// Its columns, in the schema's order.
    pub columns: &'static [&'static str],
    /// The column a sequence fills (BIGSERIAL on PostgreSQL, AUTOINCREMENT on SQLite), if any.
    pub serial: Option<&'static str>,
    copy: fn(&mut DbConn, &mut DbConn, usize) -> Result<Sum, Failure>,
    read: fn(&mut DbConn, usize) -> Result<Sum, Failure>,
    any: fn(&mut DbConn) -> QueryResult<bool>,
}

impl Table {
    const fn of<R: Rows>(serial: Option<&'static str>) -> Self {
        Table {
            name: R::NAME,
            columns: R::COLUMNS,
            serial,
            copy: copy_rows::<R>,
            read: read_rows::<R>,
            any: R::any,
        }
    }
}

/// Every table of the schema, parents before the tables whose foreign keys name them: the
/// order they are copied in.
pub fn tables() -> &'static [Table] {
    TABLES
}

/// What the copier does with the rows of one table (made by `tables!` for each).
trait Rows: Sized {
    const NAME: &'static str;
    const COLUMNS: &'static [&'static str];
    /// Up to `limit` rows after `after` (from the first when `None`), in primary-key order.
    fn page(conn: &mut DbConn, after: Option<&Self>, limit: i64) -> QueryResult<Vec<Self>>;
    /// Inserts `rows` in one statement.
    fn insert(conn: &mut DbConn, rows: &[Self]) -> QueryResult<usize>;
    /// Whether the table holds any row.
    fn any(conn: &mut DbConn) -> QueryResult<bool>;
    /// Appends the row's canonical form (see [`Canonical`]).
    fn canonical(&self, out: &mut Vec<u8>);
}

/// The condition "after `last` in primary-key order", for a key of one or two columns. The
/// two-column form repeats the first column's bound so that it bounds the index scan.
macro_rules! after {
    ($t:ident, $last:ident, $a:ident) => {
        $t::$a.gt(&$last.$a)
    };
    ($t:ident, $last:ident, $a:ident, $b:ident) => {
        $t::$a.ge(&$last.$a).and(
            $t::$a
                .gt(&$last.$a)
                .or($t::$a.eq(&$last.$a).and($t::$b.gt(&$last.$b))),
        )
    };
}

macro_rules! serial {
    () => {
        None
    };
    ($column:ident) => {
        Some(stringify!($column))
    };
}

/// For each table: a row type with every column in the schema's order (loaded with
/// `all_columns`, so a column added to `schema.rs` breaks the build until it is listed here),
/// its `Rows`, and its place in [`TABLES`].
macro_rules! tables {
    ($(
        $table:ident ($first:ident $(, $rest:ident)*) $(serial $serial:ident)? {
            $($column:ident: $type:ty,)+
        }
    )+) => {
        mod rows {
            $(
                pub(super) mod $table {
                    use chrono::NaiveDateTime;
                    use diesel::prelude::*;

                    use super::super::{Canonical, Rows};
                    use crate::db::schema::$table as t;
                    use crate::db::DbConn;

                    #[derive(Queryable, Insertable)]
                    #[diesel(
                        table_name = crate::db::schema::$table,
                        treat_none_as_default_value = false
                    )]
                    pub struct Row {
                        $(pub $column: $type,)+
                    }

                    impl Rows for Row {
                        const NAME: &'static str = stringify!($table);
                        const COLUMNS: &'static [&'static str] = &[$(stringify!($column)),+];

                        fn page(
                            conn: &mut DbConn,
                            after: Option<&Self>,
                            limit: i64,
                        ) -> QueryResult<Vec<Self>> {
                            let query = t::table
                                .select(t::all_columns)
                                .order((t::$first, $(t::$rest,)*))
                                .limit(limit)
                                .into_boxed();
                            let query = match after {
                                None => query,
                                Some(last) => query.filter(after!(t, last, $first $(, $rest)*)),
                            };
                            query.load(conn)
                        }

                        fn insert(conn: &mut DbConn, rows: &[Self]) -> QueryResult<usize> {
                            // A multi-row INSERT is built for a backend's own connection.
                            match conn {
                                DbConn::Pg(c) => diesel::insert_into(t::table).values(rows).execute(c),
                                DbConn::Sqlite(c) => {
                                    diesel::insert_into(t::table).values(rows).execute(c)
                                }
                            }
                        }

                        fn any(conn: &mut DbConn) -> QueryResult<bool> {
                            diesel::select(diesel::dsl::exists(t::table.select(t::$first)))
                                .get_result(conn)
                        }

                        fn canonical(&self, out: &mut Vec<u8>) {
                            $(self.$column.write_to(out);)+
                        }
                    }
                }
            )+
        }

        static TABLES: &[Table] = &[$(Table::of::<rows::$table::Row>(serial!($($serial)?))),+];
    };
}

tables! {
    projects (id) {
        id: String,
        name: String,
        require_secret: bool,
        created_at: NaiveDateTime,
    }
    project_secrets (id) {
        id: String,
        project_id: String,
        prefix: String,
        secret_hash: Vec<u8>,
        created_at: NaiveDateTime,
        revoked_at: Option<NaiveDateTime>,
    }
    users (id) {
        id: String,
        issuer: String,
        identifier: String,
        identifier_normalized: String,
        enrolled: String,
        default_method: Option<String>,
        identifiers: Option<String>,
        created_at: NaiveDateTime,
        updated_at: NaiveDateTime,
        deleted_at: Option<NaiveDateTime>,
        password_hash: Option<String>,
        phone_number: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
        kyc_id: Option<String>,
        disabled_at: Option<NaiveDateTime>,
        client_user_id: String,
    }
    user_identifiers (user_id, identifier_normalized) {
        issuer: String,
        user_id: String,
        identifier_normalized: String,
        deleted_at: Option<NaiveDateTime>,
    }
    user_methods (id) {
        id: String,
        issuer: String,
        user_id: String,
        method: String,
        key_hash: String,
        algorithm: Option<String>,
        public_key: Option<String>,
        pin_hash: Option<String>,
        device_name: Option<String>,
        device_type: Option<String>,
        created_at: NaiveDateTime,
        updated_at: NaiveDateTime,
    }
    credential_attempts (user_id, credential) {
        issuer: String,
        user_id: String,
        credential: String,
        failures: i32,
        locked_until: Option<NaiveDateTime>,
    }
    events (id) serial id {
        id: i64,
        issuer: String,
        user_id: String,
        client_user_id: String,
        event: String,
        method: String,
        ip: String,
        location: String,
        client_timestamp: String,
        approved: bool,
        created_at: NaiveDateTime,
    }
    used_signatures (issuer, signature_hash) {
        issuer: String,
        signature_hash: String,
        used_at: NaiveDateTime,
    }
    accounts (id) {
        id: String,
        user_id: String,
        issuer: String,
        account_type: String,
        created_at: NaiveDateTime,
    }
    audit_events (id) {
        id: String,
        issuer: String,
        at: NaiveDateTime,
        actor: String,
        action: String,
        user_id: Option<String>,
        request_id: Option<String>,
        detail: String,
    }
    console_sessions (id) {
        id: String,
        issuer: String,
        token_hash: Vec<u8>,
        secret_id: String,
        created_at: NaiveDateTime,
        seen_at: NaiveDateTime,
        ended_at: Option<NaiveDateTime>,
    }
    idempotency_keys (issuer, key) {
        issuer: String,
        key: String,
        fingerprint: Vec<u8>,
        started_at: NaiveDateTime,
        status: Option<i32>,
        content_type: Option<String>,
        body: Option<Vec<u8>>,
        resource_id: Option<String>,
    }
}

// ---------------------------------------------------------------------------------------------
// Checksums
// ---------------------------------------------------------------------------------------------

/// A value's canonical form, the same whichever backend it was read from: a tag, then the
/// value (text with its byte length, binary as hex, timestamps to the microsecond), so that no
/// two rows share a form and NULL differs from an empty string.
trait Canonical {
    fn write_to(&self, out: &mut Vec<u8>);
}

impl Canonical for String {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("s{}:", self.len()).as_bytes());
        out.extend_from_slice(self.as_bytes());
    }
}

impl Canonical for Vec<u8> {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("x{}:", self.len()).as_bytes());
        out.extend_from_slice(hex::encode(self).as_bytes());
    }
}

impl Canonical for NaiveDateTime {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            self.format("t%Y-%m-%d %H:%M:%S%.6f;")
                .to_string()
                .as_bytes(),
        );
    }
}

impl Canonical for i32 {
    fn write_to(&self, out: &mut Vec<u8>) {
        i64::from(*self).write_to(out);
    }
}

impl Canonical for i64 {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("i{self};").as_bytes());
    }
}

impl Canonical for bool {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(if *self { b'T' } else { b'F' });
    }
}

impl<T: Canonical> Canonical for Option<T> {
    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(b'N'),
            Some(value) => value.write_to(out),
        }
    }
}

/// A table's rows, counted and hashed in primary-key order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sum {
    rows: u64,
    sha256: [u8; 32],
}

/// Walks every row of `R` on `conn` (the `side` of the copy) in primary-key order, `limit` rows
/// a query, handing each page to `each`; the rows' count and checksum.
fn walk<R: Rows>(
    conn: &mut DbConn,
    side: &str,
    limit: usize,
    mut each: impl FnMut(&[R]) -> Result<(), Failure>,
) -> Result<Sum, Failure> {
    let mut hasher = Sha256::new();
    let mut rows_seen = 0u64;
    let mut buf = Vec::new();
    let mut after: Option<R> = None;
    loop {
        let page = R::page(conn, after.as_ref(), limit as i64)
            .map_err(|e| Failure(format!("cannot read the {side}: {e}")))?;
        each(&page)?;
        for row in &page {
            buf.clear();
            row.canonical(&mut buf);
            hasher.update(&buf);
        }
        rows_seen += page.len() as u64;
        let full = page.len() == limit;
        after = page.into_iter().last();
        if !full {
            break;
        }
    }
    Ok(Sum {
        rows: rows_seen,
        sha256: hasher.finalize().into(),
    })
}

/// Rows per INSERT for `R`: the batch, or fewer when its columns would pass [`MAX_BINDS`].
fn rows_per_statement<R: Rows>(batch: usize) -> usize {
    batch.min((MAX_BINDS - 1) / R::COLUMNS.len()).max(1)
}

/// Copies every row of `R` from `from` to `to`; the count and checksum of the rows read.
fn copy_rows<R: Rows>(from: &mut DbConn, to: &mut DbConn, batch: usize) -> Result<Sum, Failure> {
    walk::<R>(from, "source", rows_per_statement::<R>(batch), |rows| {
        if !rows.is_empty() {
            R::insert(to, rows).map_err(|e| Failure(format!("cannot write to the target: {e}")))?;
        }
        Ok(())
    })
}

/// The count and checksum of every row of `R` on the target, read back.
fn read_rows<R: Rows>(conn: &mut DbConn, batch: usize) -> Result<Sum, Failure> {
    walk::<R>(conn, "target", rows_per_statement::<R>(batch), |_| Ok(()))
}

// ---------------------------------------------------------------------------------------------
// Catalogues, migrations and sequences
// ---------------------------------------------------------------------------------------------

#[derive(QueryableByName)]
struct CatalogueRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    column_name: Option<String>,
}

/// The tables of the database and their columns, as its own catalogue lists them (PostgreSQL:
/// the base tables of the current schema; SQLite: `sqlite_master` without SQLite's own tables),
/// diesel's migration table left out.
pub fn catalogue(conn: &mut DbConn) -> QueryResult<BTreeMap<String, BTreeSet<String>>> {
    let rows: Vec<CatalogueRow> = match conn {
        DbConn::Pg(c) => diesel::sql_query(
            "SELECT t.table_name::text AS table_name, c.column_name::text AS column_name \
             FROM information_schema.tables t \
             LEFT JOIN information_schema.columns c \
               ON c.table_schema = t.table_schema AND c.table_name = t.table_name \
             WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
        )
        .load(c)?,
        DbConn::Sqlite(c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name \
             FROM sqlite_master m LEFT JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT GLOB 'sqlite_*'",
        )
        .load(c)?,
    };
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        if row.table_name == MIGRATIONS_TABLE {
            continue;
        }
        let columns = tables.entry(row.table_name).or_default();
        columns.extend(row.column_name);
    }
    Ok(tables)
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The versions of the migrations applied to the database, `None` when it has no migration
/// table (read directly: diesel's harness would create the table on a database that has none).
fn applied_migrations(conn: &mut DbConn) -> QueryResult<Option<BTreeSet<String>>> {
    let exists = match conn {
        DbConn::Pg(c) => diesel::sql_query(
            "SELECT count(*) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind::<Text, _>(MIGRATIONS_TABLE)
        .get_result::<Count>(c)?,
        DbConn::Sqlite(c) => diesel::sql_query(
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind::<Text, _>(MIGRATIONS_TABLE)
        .get_result::<Count>(c)?,
    };
    if exists.n == 0 {
        return Ok(None);
    }
    let versions: Vec<Version> =
        diesel::sql_query(format!("SELECT version FROM {MIGRATIONS_TABLE}")).load(conn)?;
    Ok(Some(versions.into_iter().map(|v| v.version).collect()))
}

/// The versions of the migrations embedded in this binary for the connection's backend.
fn known_migrations(conn: &DbConn) -> Result<BTreeSet<String>, String> {
    let versions = match conn {
        DbConn::Pg(_) => MigrationSource::<diesel::pg::Pg>::migrations(&PG_MIGRATIONS)
            .map(|all| all.iter().map(|m| m.name().version().to_string()).collect()),
        DbConn::Sqlite(_) => {
            MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
                .map(|all| all.iter().map(|m| m.name().version().to_string()).collect())
        }
    };
    versions.map_err(|e| format!("cannot read the embedded migrations: {e}"))
}

/// Refuses a database whose schema is not exactly the one this binary copies: migrations
/// missing or unknown, or a table or column the copier does not know. `role` names it in the
/// messages (`source`, `target`).
fn check_schema(conn: &mut DbConn, role: &str, target: &Target) -> Result<(), String> {
    let at = target.describe();
    let cannot = |e: diesel::result::Error| format!("cannot read the {role} database ({at}): {e}");
    let Some(applied) = applied_migrations(conn).map_err(cannot)? else {
        return Err(format!(
            "the {role} database ({at}) holds no cotterd database: it has no migration applied"
        ));
    };
    let known = known_migrations(conn)?;
    let pending = known.difference(&applied).count();
    if pending > 0 {
        return Err(format!(
            "the {role} database ({at}) has {pending} pending migration(s): upgrade it with \
             `cotterd migrate` (DATABASE_URL naming it) first, with no server of an older \
             version running"
        ));
    }
    if let Some(unknown) = applied.difference(&known).next() {
        return Err(format!(
            "the {role} database ({at}) has migration {unknown}, which this cotterd does not \
             know: copy it with the cotterd that migrated it"
        ));
    }
    let found = catalogue(conn).map_err(cannot)?;
    for (name, columns) in &found {
        let Some(table) = TABLES.iter().find(|t| t.name == name) else {
            return Err(format!(
                "the {role} database ({at}) has a table `{name}` that the copier does not know: \
                 nothing was copied{}",
                if role == "source" {
                    " (copy it with a cotterd that knows the table)"
                } else {
                    " (copy into a new, empty database)"
                }
            ));
        };
        if let Some(column) = columns
            .iter()
            .find(|c| !table.columns.contains(&c.as_str()))
        {
            return Err(format!(
                "the {role} database ({at}) has a column `{name}.{column}` that the copier does \
                 not know: nothing was copied"
            ));
        }
    }
    for table in TABLES {
        let missing = match found.get(table.name) {
            None => Some(table.name.to_owned()),
            Some(columns) => table
                .columns
                .iter()
                .find(|c| !columns.contains(**c))
                .map(|c| format!("{}.{c}", table.name)),
        };
        if let Some(missing) = missing {
            return Err(format!(
                "the {role} database ({at}) lacks `{missing}` although every migration is \
                 applied: it was changed by hand"
            ));
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Nullable<BigInt>)]
    value: Option<i64>,
}

/// The highest value the sequence of `table.column` has handed out, as far as the database
/// records it (PostgreSQL: the sequence's last value; SQLite: `sqlite_sequence`), and the
/// column's highest value in the table.
fn high_water(conn: &mut DbConn, table: &str, column: &str) -> QueryResult<i64> {
    let sequence = match conn {
        DbConn::Pg(c) => diesel::sql_query(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass) AS value",
        )
        .bind::<Text, _>(table)
        .bind::<Text, _>(column)
        .get_result::<Value>(c)?,
        DbConn::Sqlite(c) => {
            diesel::sql_query("SELECT max(seq) AS value FROM sqlite_sequence WHERE name = ?")
                .bind::<Text, _>(table)
                .get_result::<Value>(c)?
        }
    };
    // Names from the copier's own list, never from input.
    let max: Value = diesel::sql_query(format!(
        "SELECT max(\"{column}\") AS value FROM \"{table}\""
    ))
    .get_result(conn)?;
    Ok(sequence.value.unwrap_or(0).max(max.value.unwrap_or(0)))
}

/// Sets the sequence of `table.column` so that the next row gets `value + 1`.
fn set_sequence(conn: &mut DbConn, table: &str, column: &str, value: i64) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => {
            diesel::sql_query("SELECT setval(pg_get_serial_sequence($1, $2), $3)")
                .bind::<Text, _>(table)
                .bind::<Text, _>(column)
                .bind::<BigInt, _>(value)
                .execute(c)?;
        }
        DbConn::Sqlite(c) => {
            let updated = diesel::sql_query("UPDATE sqlite_sequence SET seq = ? WHERE name = ?")
                .bind::<BigInt, _>(value)
                .bind::<Text, _>(table)
                .execute(c)?;
            if updated == 0 {
                diesel::sql_query("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)")
                    .bind::<Text, _>(table)
                    .bind::<BigInt, _>(value)
                    .execute(c)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The copy
// ---------------------------------------------------------------------------------------------

/// Why a copy stopped, said for the operator.
#[derive(Debug)]
struct Failure(String);

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        Failure(format!("database error: {e}"))
    }
}

/// One table copied: its rows and the checksum both sides agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The table's name.
    pub table: &'static str,
    /// Rows copied (as many as each side holds).
    pub rows: u64,
    /// SHA-256 (hex) of the table's rows in primary-key order, in their canonical form.
    pub checksum: String,
}

/// Copies every table of the database `from` (every migration applied; only read) into the
/// database `to` (created and migrated if needed; it must hold no rows), checks each table's
/// count and checksum equal on both sides, and only then commits. Prints a line per table to
/// `out`; on any failure the target is left without a row and the error says why.
///
/// `batch` is the rows per INSERT statement (fewer for a table whose columns would pass 30,000
/// bind parameters).
pub fn run(
    from: &DatabaseSettings,
    to: &DatabaseSettings,
    batch: usize,
    out: &mut dyn Write,
) -> Result<Vec<Copied>, String> {
    let batch = batch.max(1);
    let source_manager = ConnectionManager::new(from)?;
    let source_db = source_manager.target().clone();
    let target_db = Target::parse(&to.database_url)?;
    if same_database(&source_db, &target_db) {
        return Err("--from and --to name the same database".into());
    }

    // Every check of the source comes before the target is touched.
    if let Target::Sqlite(path) = &source_db {
        if !path.is_file() {
            return Err(format!(
                "the source database ({}) does not exist",
                source_db.describe()
            ));
        }
    }
    let mut source = source_manager.establish().map_err(|e| {
        format!(
            "cannot connect to the source ({}): {e}",
            source_db.describe()
        )
    })?;
    check_schema(&mut source, "source", &source_db)?;

    let mut target = db::connect_one(to)?;
    check_schema(&mut target, "target", &target_db)?;
    for table in TABLES {
        let any = (table.any)(&mut target)
            .map_err(|e| format!("cannot read the target ({}): {e}", target_db.describe()))?;
        if any {
            return Err(format!(
                "the target database ({}) is not empty: table `{}` holds rows. Copy into a \
                 new, empty database; nothing was copied",
                target_db.describe(),
                table.name
            ));
        }
    }

    say(
        out,
        format!(
            "copying {} into {}",
            source_db.describe(),
            target_db.describe()
        ),
    );
    // The source's transaction ends inside the target's, so that nothing is committed unless
    // the whole copy, the checks included, went through.
    let copied = target
        .transaction(|target| {
            source.transaction(|source| {
                if let DbConn::Pg(_) = source {
                    // Every table from one snapshot, even while servers write.
                    diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                        .execute(source)?;
                }
                copy_all(source, target, batch, out)
            })
        })
        .map_err(|Failure(e)| format!("{e}; nothing was written to the target"))?;
    let total: u64 = copied.iter().map(|c| c.rows).sum();
    say(
        out,
        format!(
            "copied {} tables, {}; both sides checked equal; committed",
            copied.len(),
            rows(total)
        ),
    );
    Ok(copied)
}

/// The copy proper, inside the source's snapshot and the target's transaction.
fn copy_all(
    source: &mut DbConn,
    target: &mut DbConn,
    batch: usize,
    out: &mut dyn Write,
) -> Result<Vec<Copied>, Failure> {
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let read = (table.copy)(source, target, batch)
            .map_err(|Failure(e)| Failure(format!("{}: {e}", table.name)))?;
        let written = (table.read)(target, batch)
            .map_err(|Failure(e)| Failure(format!("{}: {e}", table.name)))?;
        if written != read {
            return Err(Failure(format!(
                "{}: the copy differs from the source (source {}, checksum {}; target {}, \
                 checksum {})",
                table.name,
                rows(read.rows),
                short(&read.sha256),
                rows(written.rows),
                short(&written.sha256)
            )));
        }
        say(
            out,
            format!(
                "{}: {} copied, checksum {}",
                table.name,
                rows(read.rows),
                short(&read.sha256)
            ),
        );
        if let Some(column) = table.serial {
            // New rows must not take an id the source already handed out.
            let advance = |source: &mut DbConn, target: &mut DbConn| {
                let next = high_water(source, table.name, column)?
                    .max(high_water(target, table.name, column)?);
                if next > 0 {
                    set_sequence(target, table.name, column, next)?;
                }
                QueryResult::Ok(())
            };
            advance(source, target).map_err(|e| {
                Failure(format!(
                    "{}: cannot advance the sequence of `{column}`: {e}",
                    table.name
                ))
            })?;
        }
        copied.push(Copied {
            table: table.name,
            rows: read.rows,
            checksum: hex::encode(read.sha256),
        });
    }
    Ok(copied)
}

/// Writes a line of the report. Output lost (a closed pipe) does not stop the copy: the result
/// is the exit status.
fn say(out: &mut dyn Write, line: String) {
    let _ = writeln!(out, "{line}");
}

/// Whether two targets name the same database (a SQLite file by any of its paths).
fn same_database(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::Sqlite(a), Target::Sqlite(b)) => {
            a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
        }
        (Target::Postgres(a), Target::Postgres(b)) => a == b,
        _ => false,
    }
}

/// The first 16 hex digits of a checksum, for people.
fn short(sha256: &[u8; 32]) -> String {
    format!("{}…", hex::encode(&sha256[..8]))
}

/// `1 row`, `1,234 rows`.
fn rows(n: u64) -> String {
    format!("{} {}", thousands(n), if n == 1 { "row" } else { "rows" })
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Timelike};

    fn canonical<T: Canonical>(value: T) -> Vec<u8> {
        let mut out = Vec::new();
        value.write_to(&mut out);
        out
    }

    #[test]
    fn null_empty_and_values_have_distinct_forms() {
        assert_ne!(canonical(None::<String>), canonical(Some(String::new())));
        assert_ne!(
            canonical(Some(String::new())),
            canonical(Some(Vec::<u8>::new()))
        );
        // A length prefix keeps column boundaries: ("ab", "c") is not ("a", "bc").
        let mut ab_c = canonical("ab".to_owned());
        ab_c.extend(canonical("c".to_owned()));
        let mut a_bc = canonical("a".to_owned());
        a_bc.extend(canonical("bc".to_owned()));
        assert_ne!(ab_c, a_bc);
        assert_eq!(canonical(vec![0u8, 255]), b"x2:00ff");
    }

    #[test]
    fn timestamps_are_written_to_the_microsecond() {
        let t = NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_micro_opt(10, 0, 5, 120)
            .unwrap();
        assert_eq!(canonical(t), b"t2026-11-23 10:00:05.000120;");
        assert_eq!(
            canonical(t.with_nanosecond(0).unwrap()),
            b"t2026-11-23 10:00:05.000000;"
        );
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn wide_tables_stay_under_the_bind_limit() {
        for table in tables() {
            let rows = (MAX_BINDS - 1) / table.columns.len();
            assert!(rows * table.columns.len() < MAX_BINDS, "{}", table.name);
        }
        assert_eq!(rows_per_statement::<rows::users::Row>(100_000), 29_999 / 17);
        assert_eq!(rows_per_statement::<rows::users::Row>(1_000), 1_000);
        assert_eq!(rows_per_statement::<rows::users::Row>(0), 1);
    }

    #[test]
    fn every_table_has_a_unique_name() {
        let names: BTreeSet<_> = tables().iter().map(|t| t.name).collect();
        assert_eq!(names.len(), tables().len());
    }
}
