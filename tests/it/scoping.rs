//! A project reaches only its own rows, down to the database: the scoped base queries filter by
//! the project, and an account's `(user_id, issuer)` must name its user's `(id, issuer)`, on a
//! fresh database and on one upgraded from before that key existed.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_migrations::MigrationHarness;

use crate::common::{create_req, send, test_settings, Backend, TestApp, TestDb};
use cotterd::accounts::Account;
use cotterd::db::schema::accounts;
use cotterd::db::{ConnectionManager, DbConn, PG_MIGRATIONS, SQLITE_MIGRATIONS};

/// Inserting an account row directly, bypassing the server.
fn insert_account(conn: &mut DbConn, id: &str, user_id: &str, issuer: &str) -> QueryResult<usize> {
    let account = Account {
        id: id.to_owned(),
        user_id: user_id.to_owned(),
        issuer: issuer.to_owned(),
        account_type: "checking".to_owned(),
        created_at: cotterd::time::now(),
    };
    diesel::insert_into(accounts::table)
        .values(&account)
        .execute(conn)
}

/// The database refuses an account that names a user of another project, or a user that does
/// not exist; it takes one that names a user of its own project.
async fn an_account_cannot_name_another_projects_user(backend: Backend) {
    let app = TestApp::new(backend);
    let (a, b) = (app.project("a"), app.project("b"));
    let svc = actix_web::test::init_service(cotterd::app(app.state.clone())).await;
    let user = send(&svc, create_req(&a.id, "owner@example.com")).await;
    let user_id = user.json()["ID"].as_str().unwrap().to_owned();

    let mut pooled = app.state.pool.get().unwrap();
    let conn = pooled.conn();
    let other = uuid::Uuid::new_v4().to_string();
    assert!(
        insert_account(conn, &other, &user_id, &b.id).is_err(),
        "B's account for A's user"
    );
    let missing = uuid::Uuid::new_v4().to_string();
    assert!(
        insert_account(conn, &other, &missing, &a.id).is_err(),
        "an account for no user"
    );
    assert_eq!(insert_account(conn, &other, &user_id, &a.id).unwrap(), 1);
    drop(pooled);
    assert_eq!(app.count_accounts(), 1);
}

/// A database made before accounts were tied to their user's project: the upgrade keeps its
/// accounts, and from then on refuses a mismatched one and removes a user's accounts with it;
/// the down migration removes the key again, and the upgrade refuses (whole) a database that
/// holds a mismatched account.
async fn the_upgrade_keeps_accounts_and_adds_the_key(backend: Backend) {
    let db = TestDb::new(backend);
    let settings = test_settings(&db);
    let manager = ConnectionManager::new(&settings.database).unwrap();
    let mut conn = manager.establish().unwrap();
    // The two migrations that came before the key.
    for _ in 0..2 {
        match &mut conn {
            DbConn::Pg(c) => c.run_next_migration(PG_MIGRATIONS).map(drop),
            DbConn::Sqlite(c) => c.run_next_migration(SQLITE_MIGRATIONS).map(drop),
        }
        .expect("an earlier migration");
    }
    let at = "'2026-01-02 03:04:05.678901'";
    conn.batch_execute(&format!(
        "INSERT INTO projects (id, name, require_secret, created_at) VALUES \
             ('p-a', 'a', FALSE, {at}), ('p-b', 'b', FALSE, {at});
         INSERT INTO users (id, issuer, identifier, identifier_normalized, enrolled, created_at, \
             updated_at, kyc_id) VALUES \
             ('u-a', 'p-a', 'a@x.io', 'a@x.io', '[]', {at}, {at}, 'kyc'), \
             ('u-b', 'p-b', 'b@x.io', 'b@x.io', '[]', {at}, {at}, 'kyc');
         INSERT INTO accounts (id, user_id, issuer, account_type, created_at) VALUES \
             ('acct-1', 'u-a', 'p-a', 'checking', {at}), ('acct-2', 'u-a', 'p-a', 'savings', {at});"
    ))
    .expect("rows of the earlier schema");

    match &mut conn {
        DbConn::Pg(c) => c.run_next_migration(PG_MIGRATIONS).map(drop),
        DbConn::Sqlite(c) => c.run_next_migration(SQLITE_MIGRATIONS).map(drop),
    }
    .expect("the migration that adds the key");
    let kept: Vec<(String, String, String)> = accounts::table
        .select((accounts::id, accounts::user_id, accounts::issuer))
        .order(accounts::id)
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        kept,
        [
            ("acct-1".into(), "u-a".into(), "p-a".into()),
            ("acct-2".into(), "u-a".into(), "p-a".into())
        ]
    );
    assert!(insert_account(&mut conn, "acct-3", "u-a", "p-b").is_err());
    assert_eq!(
        insert_account(&mut conn, "acct-3", "u-b", "p-b").unwrap(),
        1
    );

    // Down: the key goes, the accounts stay, and a mismatched account can be written again...
    match &mut conn {
        DbConn::Pg(c) => c.revert_last_migration(PG_MIGRATIONS).map(drop),
        DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS).map(drop),
    }
    .expect("the down migration");
    assert_eq!(
        accounts::table
            .count()
            .get_result::<i64>(&mut conn)
            .unwrap(),
        3
    );
    assert_eq!(
        insert_account(&mut conn, "acct-x", "u-a", "p-b").unwrap(),
        1
    );
    // ...which the upgrade then refuses, whole: nothing of it stays applied.
    assert!(cotterd::db::run_migrations(&mut conn).is_err());
    assert_eq!(
        cotterd::db::pending_migrations(&mut conn).unwrap(),
        migrations_after(2)
    );
    conn.batch_execute("DELETE FROM accounts WHERE id = 'acct-x'")
        .unwrap();
    match &mut conn {
        DbConn::Pg(c) => c.run_next_migration(PG_MIGRATIONS).map(drop),
        DbConn::Sqlite(c) => c.run_next_migration(SQLITE_MIGRATIONS).map(drop),
    }
    .expect("the migration that adds the key");
    assert!(insert_account(&mut conn, "acct-y", "u-a", "p-b").is_err());

    conn.batch_execute("DELETE FROM users WHERE id = 'u-a'")
        .unwrap();
    let left: i64 = diesel::select(diesel::dsl::sql::<BigInt>(
        "(SELECT count(*) FROM accounts)",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(left, 1, "a user's accounts go with it");
}

/// A database made before the admin API: the upgrade keeps every user (none disabled), and
/// from then on an identifier is unique among the users that are not deleted only; the down
/// migration refuses, whole, a database where a deleted user's identifier was taken again.
async fn the_admin_upgrade_keeps_users_and_frees_deleted_identifiers(backend: Backend) {
    let db = TestDb::new(backend);
    let settings = test_settings(&db);
    let manager = ConnectionManager::new(&settings.database).unwrap();
    let mut conn = manager.establish().unwrap();
    let next = |conn: &mut DbConn| {
        match conn {
            DbConn::Pg(c) => c.run_next_migration(PG_MIGRATIONS).map(drop),
            DbConn::Sqlite(c) => c.run_next_migration(SQLITE_MIGRATIONS).map(drop),
        }
        .expect("a migration")
    };
    for _ in 0..3 {
        next(&mut conn);
    }
    let at = "'2026-01-02 03:04:05.678901'";
    let insert = |id: &str, deleted: &str| {
        format!(
            "INSERT INTO users (id, issuer, identifier, identifier_normalized, enrolled, \
                 created_at, updated_at, deleted_at) VALUES \
                 ('{id}', 'p', 'A@x.io', 'a@x.io', '[]', {at}, {at}, {deleted});"
        )
    };
    conn.batch_execute(&format!(
        "INSERT INTO projects (id, name, require_secret, created_at) VALUES ('p', 'p', FALSE, {at});
         {}",
        insert("u-1", at)
    ))
    .expect("rows of the earlier schema");
    next(&mut conn);
    let disabled: Vec<Option<chrono::NaiveDateTime>> = cotterd::db::schema::users::table
        .select(cotterd::db::schema::users::disabled_at)
        .load(&mut conn)
        .unwrap();
    assert_eq!(disabled, [None]);
    conn.batch_execute(&insert("u-2", "NULL"))
        .expect("a deleted user's identifier is free");
    assert!(
        conn.batch_execute(&insert("u-3", "NULL")).is_err(),
        "a live user's identifier is not"
    );
    assert!(match &mut conn {
        DbConn::Pg(c) => c.revert_last_migration(PG_MIGRATIONS).is_err(),
        DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS).is_err(),
    });
    // The migrations after the admin API's are not applied yet.
    assert_eq!(
        cotterd::db::pending_migrations(&mut conn).unwrap(),
        migrations_after(4)
    );
}

/// The base queries are scoped by the project they are given.
#[test]
fn base_queries_filter_by_project() {
    let app = TestApp::new(Backend::Postgres);
    let keys = app.project("p");
    let project = app.project_id(&keys);
    let users =
        diesel::debug_query::<diesel::pg::Pg, _>(&cotterd::scope::users_of(&project)).to_string();
    assert!(
        users.contains(r#"WHERE (("users"."issuer" = $1) AND ("users"."deleted_at" IS NULL))"#)
            && users.contains(&keys.id),
        "{users}"
    );
    let every = diesel::debug_query::<diesel::pg::Pg, _>(&cotterd::scope::every_user_of(&project))
        .to_string();
    assert!(
        every.contains(r#"WHERE ("users"."issuer" = $1)"#) && every.contains(&keys.id),
        "{every}"
    );
    for (name, query) in [
        (
            "audit",
            diesel::debug_query::<diesel::pg::Pg, _>(&cotterd::scope::audit_of(&project))
                .to_string(),
        ),
        (
            "idempotency",
            diesel::debug_query::<diesel::pg::Pg, _>(&cotterd::scope::idempotency_of(&project))
                .to_string(),
        ),
    ] {
        assert!(
            query.contains(r#"."issuer" = $1)"#) && query.contains(&keys.id),
            "{name}: {query}"
        );
    }
    let accounts = diesel::debug_query::<diesel::pg::Pg, _>(&cotterd::scope::accounts_of(&project))
        .to_string();
    assert!(
        accounts.contains(r#"WHERE ("accounts"."issuer" = $1)"#) && accounts.contains(&keys.id),
        "{accounts}"
    );
}

both_backends!(
    an_account_cannot_name_another_projects_user,
    the_upgrade_keeps_accounts_and_adds_the_key,
    the_admin_upgrade_keeps_users_and_frees_deleted_identifiers,
);

/// How many migrations come after the first `applied` (the same on both backends).
fn migrations_after(applied: usize) -> usize {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let all = std::fs::read_dir(folder)
        .expect("the migrations folder")
        .count();
    all - applied
}
