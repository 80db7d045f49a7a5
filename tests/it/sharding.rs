//! Ready for sharding by project: every statement the server sends names its project, and
//! every unique index of a project's table holds the project column (what Citus needs to
//! distribute these tables by `issuer`). The statements are heard while the whole suite runs
//! (`common::statements`); these tests check the checker and the schema.

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::common::statements::{self, check, PROJECT_TABLES};
use crate::common::{self, create_req, send, Backend, TestApp};

#[test]
fn the_checker_accepts_statements_that_name_their_project() {
    for sql in [
        r#"SELECT "users"."id" FROM "users" WHERE (("users"."issuer" = $1) AND ("users"."id" = $2))"#,
        r#"INSERT INTO "users" ("id", "issuer", "identifier") VALUES ($1, $2, $3)"#,
        r#"UPDATE "users" SET "deleted_at" = $1 WHERE (("users"."issuer" = $2) AND ("users"."id" = $3))"#,
        r#"DELETE FROM "idempotency_keys" WHERE (("idempotency_keys"."issuer" = $1) AND ("idempotency_keys"."key" = $2))"#,
        r#"SELECT a.id FROM accounts a JOIN users u ON u.id = a.user_id AND u.issuer = a.issuer WHERE a.issuer = $1"#,
        "SELECT 1",
        "BEGIN",
        r#"SELECT "projects"."id" FROM "projects" WHERE ("projects"."id" = $1)"#,
    ] {
        assert_eq!(check(sql), Ok(()), "{sql}");
    }
}

#[test]
fn the_checker_refuses_statements_that_do_not() {
    for sql in [
        // No project at all.
        r#"SELECT "users"."id" FROM "users" WHERE ("users"."id" = $1)"#,
        // The project, but not by equality.
        r#"SELECT "users"."id" FROM "users" WHERE ("users"."issuer" <> $1)"#,
        r#"SELECT "users"."id" FROM "users" WHERE ("users"."issuer" IN (SELECT id FROM projects))"#,
        // Another column whose name ends like the project's.
        r#"SELECT "users"."id" FROM "users" WHERE ("users"."not_issuer" = $1)"#,
        // An INSERT that leaves the project out.
        r#"INSERT INTO "events" ("user_id", "event") VALUES ($1, $2)"#,
        // A join whose second table is not tied to the project.
        r#"SELECT a.id FROM accounts a JOIN users u ON u.id = a.user_id WHERE a.issuer = $1"#,
        // Tables tied to each other but to no value.
        r#"SELECT a.id FROM accounts a JOIN users u ON u.issuer = a.issuer"#,
        // A whole-table delete.
        r#"DELETE FROM "used_signatures" WHERE ("used_signatures"."used_at" < $1)"#,
    ] {
        assert!(check(sql).is_err(), "accepted: {sql}");
    }
}

#[test]
fn the_upkeeps_sweeps_are_allowed_on_its_thread_alone() {
    let request = r#"SELECT "users"."id" FROM "users" WHERE ("users"."id" = $1)"#;
    for sql in statements::UPKEEP {
        // Each sweep is one the checker refuses: sent by a request, it would fail the run.
        assert!(
            check(sql).is_err(),
            "the checker accepts an upkeep sweep: {sql}"
        );
        assert!(
            statements::exempt(sql, Some(statements::UPKEEP_THREAD)),
            "{sql}"
        );
        for thread in [Some("cotterd-db-0"), Some("tokio-rt-worker"), None] {
            assert!(
                !statements::exempt(sql, thread),
                "exempt on {thread:?}: {sql}"
            );
        }
    }
    // The upkeep's thread is exempt for its sweeps only.
    assert!(check(request).is_err());
    assert!(!statements::exempt(
        request,
        Some(statements::UPKEEP_THREAD)
    ));
}

/// The statements heard so far (this test's own requests at least) all passed, and they do
/// reach the project tables: the recorder hears the server.
async fn the_server_is_heard_and_names_its_project(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("heard");
    let service = actix_web::test::init_service(cotterd::app(app.state.clone())).await;
    let created = send(
        &service,
        common::with_keys(create_req(&keys.id, "heard@example.com"), &keys),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let heard = statements::heard();
    for needle in [r#"INSERT INTO "users""#, r#"FROM "project_secrets""#] {
        assert!(
            heard.iter().any(|sql| sql.contains(needle)),
            "no statement with {needle} was heard: {heard:?}"
        );
    }
    statements::assert_none_failed();
}

both_backends!(the_server_is_heard_and_names_its_project);

#[derive(QueryableByName)]
struct UniqueIndex {
    #[diesel(sql_type = Text)]
    tablename: String,
    #[diesel(sql_type = Text)]
    indexdef: String,
}

/// Every unique index (primary keys included) of a project's table holds its project column.
#[test]
fn every_unique_index_of_a_project_table_holds_the_project() {
    let app = TestApp::new(Backend::Postgres);
    let mut conn = app.state.pool.get().expect("connection");
    let indexes: Vec<UniqueIndex> = diesel::sql_query(
        "SELECT tablename::text AS tablename, indexdef FROM pg_indexes \
         WHERE schemaname = current_schema() AND indexdef LIKE 'CREATE UNIQUE INDEX %'",
    )
    .load(conn.conn())
    .expect("read the indexes");
    let mut checked = 0;
    for (table, column) in PROJECT_TABLES {
        let on_table: Vec<&UniqueIndex> =
            indexes.iter().filter(|i| i.tablename == *table).collect();
        assert!(!on_table.is_empty(), "{table} has no unique index");
        for index in on_table {
            let columns = index
                .indexdef
                .split_once(" USING btree (")
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(columns, _)| columns)
                .unwrap_or_else(|| panic!("cannot read {}", index.indexdef));
            assert!(
                columns.split(',').any(|c| c.trim() == *column),
                "a unique index of {table} without {column}: {}",
                index.indexdef
            );
            checked += 1;
        }
    }
    assert!(checked >= PROJECT_TABLES.len(), "checked {checked} indexes");
}
