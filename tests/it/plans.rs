//! Every admin list order, filter and prefix search walks an index on both backends: the
//! database's own plan of the server's queries (`users::admin::page_query`, `filtered`) over a
//! table of two projects, with no sequential scan of the table and no sort of a project's rows.

use cotterd::db::{explain, DbConn};
use cotterd::users::admin::{self, Filter, Order, Position, SortKey, Start, Status};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::common::{Backend, TestApp};

/// Users per project: enough for the planners to prefer an index where one fits.
const USERS: usize = 20_000;

/// Fills the table with `USERS` users in the project and ten times as many in another (every
/// 10th deleted, every 7th disabled), in SQL, and gathers statistics: the project is one of the
/// table's tenants, not most of it (where reading the whole table is the better plan).
fn populate(app: &TestApp, issuers: [&str; 2]) {
    let mut conn = app.state.pool.get().unwrap();
    for (p, issuer) in issuers.iter().enumerate() {
        let users = if p == 0 { USERS } else { 10 * USERS };
        let sql = match app.db.backend {
            Backend::Postgres => format!(
                "INSERT INTO users (id, issuer, identifier, identifier_normalized, enrolled, \
                     created_at, updated_at, deleted_at, disabled_at, client_user_id) \
                 SELECT md5('{p}-' || n)::uuid::text, '{issuer}', 'User' || n || '@x.io', \
                     'user' || n || '@x.io', '[]', \
                     timestamp '2026-01-01' + n * interval '1 second', \
                     timestamp '2026-01-01', \
                     CASE WHEN n % 10 = 0 THEN timestamp '2026-02-01' END, \
                     CASE WHEN n % 7 = 0 THEN timestamp '2026-02-01' END, \
                     md5('{p}-' || n)::uuid::text \
                 FROM generate_series(1, {users}) AS n"
            ),
            Backend::Sqlite => format!(
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {users}) \
                 INSERT INTO users (id, issuer, identifier, identifier_normalized, enrolled, \
                     created_at, updated_at, deleted_at, disabled_at, client_user_id) \
                 SELECT printf('%08x-0000-4000-8000-%012x', {p}, n), '{issuer}', \
                     'User' || n || '@x.io', 'user' || n || '@x.io', '[]', \
                     datetime('2026-01-01', '+' || n || ' seconds'), '2026-01-01 00:00:00', \
                     CASE WHEN n % 10 = 0 THEN '2026-02-01 00:00:00' END, \
                     CASE WHEN n % 7 = 0 THEN '2026-02-01 00:00:00' END, \
                     printf('%08x-0000-4000-8000-%012x', {p}, n) \
                 FROM s; ANALYZE;"
            ),
        };
        conn.conn().batch_execute(&sql).expect("populate");
    }
    // What autovacuum would have done by then: statistics, and the visibility map that lets a
    // count read the index alone.
    if app.db.backend == Backend::Postgres {
        conn.conn()
            .batch_execute("VACUUM ANALYZE users")
            .expect("vacuum");
    }
}

/// What is wrong with a plan, if anything: a sequential scan of users, a full scan of an index
/// (every project's rows), or a sort where the order must come from the index (PostgreSQL's
/// incremental sort, which only orders rows that tie on the index's leading key, is allowed).
fn plan_problem(backend: Backend, plan: &[String], sort_allowed: bool) -> Option<String> {
    let bad = plan.iter().find(|line| match backend {
        // An incremental sort over an index's order only orders ties of its leading key.
        Backend::Postgres => {
            let step = line.trim_start().trim_start_matches("->").trim_start();
            let sort_node = step.starts_with("Sort ") && line.contains("(cost=");
            line.contains("Seq Scan") || (!sort_allowed && sort_node)
        }
        Backend::Sqlite => {
            (line.starts_with("SCAN") && line.contains("users"))
                || (!sort_allowed && line.contains("TEMP B-TREE"))
        }
    });
    bad.map(|line| format!("{line:?} in\n{}", plan.join("\n")))
}

async fn admin_lists_walk_an_index(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("plans");
    let other = app.project("other");
    populate(&app, [&keys.id, &other.id]);
    let project = app.project_id(&keys);
    let mut conn = app.state.pool.get().unwrap();
    let conn: &mut DbConn = conn.conn();

    let middle = |order: Order| Position {
        key: match order {
            Order::IdentifierAsc => SortKey::Identifier("user5000@x.io".into()),
            _ => SortKey::Created(
                chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
                    .unwrap()
                    .and_hms_opt(1, 23, 20)
                    .unwrap(),
            ),
        },
        id: "5d1c0b3e-8f7a-4c2d-9e6b-1a2b3c4d5e6f".into(),
    };
    let mut problems = Vec::new();
    let mut checked = 0;
    for order in [Order::CreatedDesc, Order::CreatedAsc, Order::IdentifierAsc] {
        for status in [
            Status::Active,
            Status::Disabled,
            Status::Deleted,
            Status::All,
        ] {
            for prefix in [None, Some("user12".to_owned()), Some("%".to_owned())] {
                let filter = Filter {
                    status,
                    prefix: prefix.clone(),
                    created_after: None,
                    created_before: None,
                };
                // A prefix in a time order: the matches may be sorted, the project may not.
                let sort_allowed = prefix.is_some() && order != Order::IdentifierAsc;
                for start in [
                    Start::First,
                    Start::After(middle(order)),
                    Start::Before(middle(order)),
                ] {
                    let query = admin::page_query(&project, &filter, order, &start, 50);
                    let plan = explain::plan(conn, query).expect("plan");
                    checked += 1;
                    if let Some(problem) = plan_problem(backend, &plan, sort_allowed) {
                        problems.push(format!(
                            "{order:?} {status:?} q={prefix:?} {start:?}: {problem}"
                        ));
                    }
                }
                let count = admin::filtered(&project, &filter).count();
                let plan = explain::plan(conn, count).expect("plan");
                if let Some(problem) = plan_problem(backend, &plan, true) {
                    problems.push(format!("count {status:?} q={prefix:?}: {problem}"));
                }
            }
        }
    }
    assert_eq!(checked, 108);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

both_backends!(admin_lists_walk_an_index);
