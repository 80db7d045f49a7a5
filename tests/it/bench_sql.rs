//! The benchmark's pgbench scripts (bench/sql) must issue exactly the SQL the server issues, so
//! that `bench/run` compares the server with the database doing the same work.

use std::sync::{Arc, Mutex};

use crate::common::{Backend, TestApp};
use cotterd::users::{self, Identifier};
use diesel::connection::{Connection, InstrumentationEvent};

/// The statements of a pgbench script (one per `;`), each with its `:variables` and its
/// `NULL/*$*/` marks (a NULL the server binds) numbered `$1, $2, …` in order.
fn script_sql(name: &str) -> Vec<String> {
    let path = format!("{}/bench/sql/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("--") && !l.starts_with('\\') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(number_variables)
        .collect()
}

fn number_variables(statement: &str) -> String {
    let mut out = String::new();
    let mut n = 0;
    let mut chars = statement.chars().peekable();
    const BOUND_NULL: &str = "ULL/*$*/";
    while let Some(c) = chars.next() {
        if c == 'N' && chars.clone().take(BOUND_NULL.len()).eq(BOUND_NULL.chars()) {
            chars.nth(BOUND_NULL.len() - 1);
            n += 1;
            out.push_str(&format!("${n}"));
        } else if c == ':' && chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn pgbench_scripts_issue_the_servers_sql() {
    let app = TestApp::new(Backend::Postgres);
    let keys = app.project("p");
    let project = app.project_id(&keys);
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut conn = app.state.pool.get().unwrap();
    let sink = seen.clone();
    conn.conn()
        .set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                let sql = query.to_string();
                let sql = sql
                    .split(" -- binds:")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                sink.lock().unwrap().push(sql);
            }
        });

    let id = Identifier::parse("a@b.co").unwrap();
    users::insert(
        conn.conn(),
        users::new_user(&project, id.clone(), cotterd::time::now()),
    )
    .unwrap();
    // A hit: the benchmark reads identifiers that exist (a miss asks a second table).
    users::find_by_identifier(conn.conn(), &project, &id).unwrap();
    users::list_page(conn.conn(), &project, 2000).unwrap();

    let seen = seen.lock().unwrap().clone();
    let want: Vec<String> = ["create.sql", "get_by_identifier.sql", "list_page.sql"]
        .into_iter()
        .flat_map(script_sql)
        .collect();
    assert_eq!(seen, want);
}

/// The hot queries are prepared once per connection and then served from diesel's statement
/// cache: a second round of the same calls caches nothing new. (A query diesel cannot cache is
/// prepared again on every call: an INSERT writing DEFAULT for a `None` is one, which is why
/// `NewUser` binds NULL instead.)
#[test]
fn hot_queries_are_prepared_once_per_connection() {
    let app = TestApp::new(Backend::Postgres);
    let keys = app.project("p");
    let project = app.project_id(&keys);
    let cached = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut conn = app.state.pool.get().unwrap();
    let sink = cached.clone();
    conn.conn()
        .set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                sink.lock().unwrap().push(sql.to_owned());
            }
        });
    let mut round = |n: usize| {
        let id = Identifier::parse(&format!("u{n}@b.co")).unwrap();
        users::insert(
            conn.conn(),
            users::new_user(&project, id.clone(), cotterd::time::now()),
        )
        .unwrap();
        users::find_by_identifier(conn.conn(), &project, &id).unwrap();
        users::list_page(conn.conn(), &project, 0).unwrap();
        std::mem::take(&mut *cached.lock().unwrap())
    };
    let first = round(0);
    let second = round(1);
    for statement in [
        "INSERT INTO \"users\"",
        "INSERT INTO \"user_identifiers\"",
        "SELECT \"users\".\"id\"",
        "SELECT \"page_rows\".\"id\"",
    ] {
        assert_eq!(
            first
                .iter()
                .filter(|sql| sql.starts_with(statement))
                .count(),
            1,
            "{statement} is not prepared once: {first:#?}"
        );
    }
    assert!(second.is_empty(), "prepared again: {second:#?}");
}
