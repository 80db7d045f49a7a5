//! Every SQL statement the server sends while the tests run, checked for what a database
//! sharded by project (Citus, distributing by `issuer`) needs: each statement that touches a
//! project's table names the project with an equality, so that it runs on one shard.
//!
//! `install` sets diesel's default instrumentation once per test process; every connection
//! opened afterwards reports its statements here. Only the server's own threads are heard (its
//! database threads, group writers, transfer threads and the blocking pool that loads keys):
//! a test's own reads of rows, and the operator's tools it calls in process (`cotterd copy`),
//! are not requests. Each statement is checked the first time it is seen; a statement that
//! fails is kept, and `assert_none_failed` (run as each test's database is dropped) fails the
//! test run with the statement and the reason.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use diesel::connection::{Instrumentation, InstrumentationEvent};

/// The tables whose rows belong to one project, each with its project column.
pub const PROJECT_TABLES: &[(&str, &str)] = &[
    ("users", "issuer"),
    ("user_identifiers", "issuer"),
    ("user_methods", "issuer"),
    ("credential_attempts", "issuer"),
    ("events", "issuer"),
    ("used_signatures", "issuer"),
    ("accounts", "issuer"),
    ("audit_events", "issuer"),
    ("idempotency_keys", "issuer"),
    ("console_sessions", "issuer"),
];

/// Statements that reach across projects by design, each with the reason. On Citus each of
/// these runs on every shard, which is correct and rare.
/// They are compared after `normalise` (SQLite's `IN (?, ?, …)` lists become `= ANY(?)`).
pub const ACROSS_PROJECTS: &[(&str, &str)] = &[
    (
        // `transfer::import`: an imported record's id that another project's user already has
        // is refused (`ID_TAKEN`), so the import reads which of the batch's ids exist anywhere.
        r#"select users.id, users.issuer from users where (users.id = any(?))"#,
        "an import refuses user ids another project has (ID_TAKEN): a read of ids only",
    ),
    (
        // The same for account ids (`ACCOUNT_ID_TAKEN`).
        r#"select accounts.id, accounts.issuer, accounts.user_id from accounts where (accounts.id = any(?))"#,
        "an import refuses account ids another project has: a read of ids only",
    ),
];

/// The upkeep's sweeps (`janitor::round`, every 10 minutes on each instance): each looks for
/// what expired in every project at once, so on Citus it runs on every shard, which is correct
/// and no request waits on. They are allowed on the upkeep's thread alone; what the upkeep then
/// changes of a user (the retention purge) names its project, as a request's statement does.
pub const UPKEEP: &[&str] = &[
    // The retention purge: the users deleted before the cutoff, with their projects.
    "select users.issuer, users.id from users where (users.deleted_at < ?) limit ?",
    // Stored idempotent answers past their hours, and those whose user or account is gone.
    "delete from idempotency_keys where (idempotency_keys.started_at < ?)",
    "delete from idempotency_keys where (((idempotency_keys.resource_id is not null) and  not \
     (exists (select users.id from users where ((users.id = idempotency_keys.resource_id) and \
     (users.issuer = idempotency_keys.issuer))))) and  not (exists (select accounts.id from \
     accounts where ((accounts.id = idempotency_keys.resource_id) and (accounts.issuer = \
     idempotency_keys.issuer)))))",
    // Signed approvals too old to be replayed.
    "delete from used_signatures where (used_signatures.used_at < ?)",
    // Login events past their days, with their projects (then deleted project by project).
    "select events.issuer, events.id from events where (events.created_at < ?) order by \
     events.id asc limit ?",
    // Console sessions over.
    "delete from console_sessions where (((console_sessions.seen_at < ?) or \
     (console_sessions.created_at < ?)) or (console_sessions.ended_at < ?))",
];

/// The name of the thread `common::upkeep` runs a round of the upkeep on.
pub const UPKEEP_THREAD: &str = "cotterd-upkeep";

#[derive(Default)]
struct Seen {
    statements: HashSet<String>,
    failed: Vec<(String, String)>,
}

fn seen() -> &'static Mutex<Seen> {
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    SEEN.get_or_init(Mutex::default)
}

/// Whether the current thread runs the server's database work.
fn on_server_thread() -> bool {
    let current = std::thread::current();
    let name = current.name().unwrap_or_default();
    name.starts_with("cotterd-") || name.starts_with("tokio-rt-worker")
}

struct Recorder;

impl Instrumentation for Recorder {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            if on_server_thread() {
                record(&query.to_string(), std::thread::current().name());
            } else if std::env::var_os("STATEMENTS_DEBUG").is_some() {
                let t = std::thread::current();
                let sql = query.to_string();
                eprintln!(
                    "UNHEARD[{}] {}",
                    t.name().unwrap_or("?"),
                    &sql[..sql.len().min(100)]
                );
            }
        }
    }
}

fn recorder() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(Recorder))
}

/// Starts listening (once per process), before the first connection is opened.
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        diesel::connection::set_default_instrumentation(recorder)
            .expect("install the statement recorder");
    });
}

/// Whether `sql`, sent on the thread named `thread`, is one of the upkeep's sweeps on the
/// upkeep's thread: the one place a statement may leave out its project.
pub fn exempt(sql: &str, thread: Option<&str>) -> bool {
    thread == Some(UPKEEP_THREAD) && UPKEEP.contains(&normalise(sql).as_str())
}

fn record(query: &str, thread: Option<&str>) {
    // diesel prints the binds after the text: the text alone is the statement.
    let sql = query.split(" -- binds:").next().unwrap_or_default().trim();
    if exempt(sql, thread) {
        return;
    }
    let mut seen = seen().lock().unwrap_or_else(|p| p.into_inner());
    if seen.statements.contains(sql) {
        return;
    }
    seen.statements.insert(sql.to_owned());
    if let Err(reason) = check(sql) {
        seen.failed.push((sql.to_owned(), reason));
    }
}

/// The distinct statements heard so far.
pub fn heard() -> Vec<String> {
    let seen = seen().lock().unwrap_or_else(|p| p.into_inner());
    seen.statements.iter().cloned().collect()
}

/// Fails with every statement heard so far that does not name its project.
pub fn assert_none_failed() {
    let seen = seen().lock().unwrap_or_else(|p| p.into_inner());
    if seen.failed.is_empty() {
        return;
    }
    let list: Vec<String> = seen
        .failed
        .iter()
        .map(|(sql, reason)| format!("  {reason}\n    {sql}"))
        .collect();
    panic!(
        "the server sent statements that a database sharded by project cannot route to one \
         shard (tests/it/common/statements.rs):\n{}",
        list.join("\n")
    );
}

/// Checks one statement: every project table it touches must be named with an equality on its
/// project column (an INSERT must set that column), and at least one such equality must be to
/// a value (a bind or a literal), not only to another table's column.
pub fn check(sql: &str) -> Result<(), String> {
    let text = normalise(sql);
    if ACROSS_PROJECTS.iter().any(|(allowed, _)| *allowed == text) {
        return Ok(());
    }
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    // Each project table the statement names, with the names it goes by (itself, its alias).
    let mut touched: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        if !matches!(pair[0], "from" | "join" | "into" | "update") {
            continue;
        }
        let name = pair[1].rsplit('.').next().unwrap_or(pair[1]);
        let Some((table, column)) = PROJECT_TABLES.iter().find(|(t, _)| *t == name) else {
            continue;
        };
        let mut names = vec![table.to_string()];
        match (words.get(i + 2), words.get(i + 3)) {
            (Some(&"as"), Some(alias)) => names.push(alias.to_string()),
            (Some(alias), _) if is_alias(alias) => names.push(alias.to_string()),
            _ => {}
        }
        match touched.iter_mut().find(|(t, _, _)| t == table) {
            Some((_, _, known)) => known.extend(names),
            None => touched.push((table, column, names)),
        }
    }
    if touched.is_empty() {
        return Ok(());
    }
    let mut bound = false;
    for (table, column, names) in &touched {
        if text.starts_with(&format!("insert into {table} ")) {
            let columns = text[format!("insert into {table} ").len()..]
                .split(')')
                .next()
                .unwrap_or_default();
            if !columns
                .split(',')
                .any(|c| c.trim().trim_start_matches('(') == *column)
            {
                return Err(format!("INSERT INTO {table} without its {column}"));
            }
            bound = true;
            continue;
        }
        match equality(&text, column, names) {
            Equality::None => {
                return Err(format!("{table} without an equality on {table}.{column}"));
            }
            Equality::ToValue => bound = true,
            Equality::ToColumn => {}
        }
    }
    match bound {
        true => Ok(()),
        false => Err("no project column is equal to a value".into()),
    }
}

/// Lower case, without quotes (PostgreSQL's `"` and SQLite's backticks), binds as `?`, and
/// `IN (?, ?, …)` lists as `= any(?)`: one text for a statement on either backend.
fn normalise(sql: &str) -> String {
    let mut text = sql.to_ascii_lowercase().replace(['"', '`'], "");
    // `$1` … `$n` → `?`.
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    text = out;
    while let Some(start) = text.find(" in (?") {
        let Some(len) = text[start..].find(')') else {
            break;
        };
        let list = &text[start + " in (".len()..start + len];
        if !list.split(',').all(|item| item.trim() == "?") {
            break;
        }
        text.replace_range(start..start + len + 1, " = any(?)");
    }
    text
}

/// A word after a table name that is its alias, not the next keyword.
fn is_alias(word: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "where",
        "set",
        "join",
        "inner",
        "left",
        "right",
        "on",
        "order",
        "group",
        "limit",
        "for",
        "values",
        "select",
        "returning",
        "union",
        "offset",
        "default",
        "having",
        "using",
        "cross",
        "natural",
        "full",
        "outer",
        "except",
        "intersect",
    ];
    word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !KEYWORDS.contains(&word)
}

enum Equality {
    None,
    ToValue,
    ToColumn,
}

/// How the statement sets `column` of the table called `names`: equal to a value (a bind
/// `$n`, `?`, or a literal), only to another column, or not at all.
fn equality(text: &str, column: &str, names: &[String]) -> Equality {
    let mut found = Equality::None;
    let mut refs: Vec<String> = names.iter().map(|n| format!("{n}.{column}")).collect();
    refs.push(column.to_owned());
    for reference in &refs {
        let mut from = 0;
        while let Some(at) = text[from..].find(reference.as_str()) {
            let start = from + at;
            let end = start + reference.len();
            from = end;
            let before_ok = start == 0 || {
                let c = text.as_bytes()[start - 1];
                !(c.is_ascii_alphanumeric() || c == b'_' || (c == b'.' && reference == column))
            };
            let after_ok = text
                .as_bytes()
                .get(end)
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
            if !(before_ok && after_ok) {
                continue;
            }
            // `column = x` or `x = column`.
            let after = text[end..].trim_start();
            let before = text[..start].trim_end();
            let other = if let Some(rest) = after.strip_prefix('=') {
                Some(rest.split_whitespace().next().unwrap_or(""))
            } else if let Some(rest) = before.strip_suffix('=') {
                rest.split_whitespace().last()
            } else {
                None
            };
            let Some(other) = other else { continue };
            let other = other.trim_matches(|c| c == '(' || c == ')');
            if other.starts_with('?') || other.starts_with('\'') {
                return Equality::ToValue;
            }
            if other.contains('.') {
                found = Equality::ToColumn;
            }
        }
    }
    found
}
