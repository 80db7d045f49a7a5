//! Group commit (`db::group`): writes queued while the writer is busy are committed together, in
//! one transaction, each under its own savepoint. A failed write fails alone; a failed commit or
//! a panic fails its whole group and stores none of it; a write that waited past the checkout
//! timeout is refused without running; the writer goes on after each.
//!
//! Each test holds the one writer (`DB_WRITERS=1`) with a write that waits for the test, queues
//! the writes under test behind it, then lets it go: they form the next group. Nothing here
//! measures time.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{Backend, TestApp};
use cotterd::db::DbConn;
use cotterd::error::{Error, Result};
use cotterd::ids::ProjectId;
use cotterd::users::{self, Identifier};
use diesel::connection::SimpleConnection;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use futures_util::future::join_all;
use futures_util::FutureExt;

type Answer<T> = Pin<Box<dyn Future<Output = Result<T>>>>;

/// `work` as the app's group commit runs it.
fn write<T, F>(app: &TestApp, work: F) -> Answer<T>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
{
    let writes = app.state.writes.clone();
    Box::pin(async move { writes.run(work).await })
}

fn app(backend: Backend, adjust: impl FnOnce(&mut cotterd::config::Settings)) -> TestApp {
    TestApp::with_settings(backend, |s| {
        s.db_writers = 1;
        adjust(s);
    })
}

/// Queues a write that holds the writer until the returned sender is used (or dropped), and
/// returns once the writer runs it.
async fn hold_the_writer(app: &TestApp) -> (mpsc::Sender<()>, Answer<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel::<()>();
    let mut held = write(app, move |_| {
        started.send(()).expect("tell the test");
        let _ = released.recv();
        Ok(())
    });
    assert!(held.as_mut().now_or_never().is_none());
    running
        .recv_timeout(Duration::from_secs(10))
        .expect("the writer runs the holding write");
    (release, held)
}

/// Puts each write in the queue (polls it once: it is not answered before its group commits).
async fn queue<T>(writes: &mut [Answer<T>]) {
    for write in writes.iter_mut() {
        assert!(
            write.as_mut().now_or_never().is_none(),
            "answered before its group ran"
        );
    }
}

/// The server's create of `identifier` in `project`, as v0 create runs it, answering the
/// transaction it ran in on PostgreSQL (SQLite has no transaction ids: 0).
fn create(app: &TestApp, project: &ProjectId, identifier: &str) -> Answer<i64> {
    let user = users::new_user(
        project,
        Identifier::parse(identifier).expect("identifier"),
        cotterd::time::now(),
    );
    write(app, move |conn| {
        users::insert_within(conn, user)?;
        transaction_id(conn)
    })
}

fn transaction_id(conn: &mut DbConn) -> Result<i64> {
    match conn {
        DbConn::Pg(pg) => Ok(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "txid_current()",
            ))
            .get_result(pg)?,
        ),
        DbConn::Sqlite(_) => Ok(0),
    }
}

fn stored(app: &TestApp, project: &ProjectId, identifier: &str) -> bool {
    let mut conn = app.state.pool.get().expect("connection");
    let identifier = Identifier::parse(identifier).expect("identifier");
    users::find_by_identifier(conn.conn(), project, &identifier)
        .expect("find")
        .is_some()
}

async fn writes_queued_together_commit_together_and_fail_alone(backend: Backend) {
    let app = app(backend, |_| {});
    let keys = app.project("p");
    let project = app.project_id(&keys);
    let (release, held) = hold_the_writer(&app).await;
    let names = ["a@x.co", "b@x.co", "A@x.co", "c@x.co", "b@x.co"];
    let mut writes: Vec<Answer<i64>> = names.iter().map(|n| create(&app, &project, n)).collect();
    queue(&mut writes).await;
    release.send(()).expect("release the writer");
    held.await.expect("the holding write");
    let answers = join_all(writes).await;

    // The duplicates (after normalisation) fail alone, with the error they would have alone.
    for (name, answer) in names.iter().zip(&answers) {
        let first = names.iter().position(|n| n.eq_ignore_ascii_case(name));
        match answer {
            Ok(_) => assert_eq!(first, names.iter().position(|n| n == name), "{name}"),
            Err(err) => assert!(matches!(err, Error::IdentifierTaken), "{name}: {err:?}"),
        }
    }
    let ok: Vec<i64> = answers.iter().filter_map(|a| a.clone().ok()).collect();
    assert_eq!(ok.len(), 3, "{answers:?}");
    if backend == Backend::Postgres {
        assert!(
            ok.iter().all(|id| *id == ok[0]),
            "not one transaction: {ok:?}"
        );
    }
    for name in ["a@x.co", "b@x.co", "c@x.co"] {
        assert!(
            stored(&app, &project, name),
            "{name} acknowledged, not stored"
        );
    }
    let mut conn = app.state.pool.get().expect("connection");
    let rows: i64 = cotterd::db::schema::users::table
        .filter(cotterd::db::schema::users::issuer.eq(project.as_str()))
        .count()
        .get_result(conn.conn())
        .expect("count");
    assert_eq!(rows, 3, "a failed write left a row");
}

async fn a_failed_commit_fails_its_whole_group(backend: Backend) {
    let app = app(backend, |_| {});
    let keys = app.project("p");
    let project = app.project_id(&keys);
    let (release, held) = hold_the_writer(&app).await;
    // A constraint checked at COMMIT, broken by one write of the group: the commit fails.
    let broken = write(&app, move |conn| {
        conn.batch_execute(match conn {
            DbConn::Pg(_) => {
                "CREATE TEMP TABLE deferred_check (x int UNIQUE DEFERRABLE INITIALLY DEFERRED) \
                 ON COMMIT DROP; INSERT INTO deferred_check VALUES (1), (1);"
            }
            DbConn::Sqlite(_) => {
                "CREATE TEMP TABLE parent_row (x INTEGER PRIMARY KEY); \
                 CREATE TEMP TABLE child_row (x INTEGER REFERENCES parent_row (x) \
                 DEFERRABLE INITIALLY DEFERRED); INSERT INTO child_row VALUES (1);"
            }
        })?;
        Ok(0)
    });
    let mut writes = vec![
        create(&app, &project, "d@x.co"),
        broken,
        create(&app, &project, "e@x.co"),
    ];
    queue(&mut writes).await;
    release.send(()).expect("release the writer");
    held.await.expect("the holding write");
    for answer in join_all(writes).await {
        assert!(matches!(answer, Err(Error::Unavailable)), "{answer:?}");
    }
    assert!(!stored(&app, &project, "d@x.co"));
    assert!(!stored(&app, &project, "e@x.co"));

    // The writer goes on: a lone write commits.
    create(&app, &project, "f@x.co")
        .await
        .expect("a later write");
    assert!(stored(&app, &project, "f@x.co"));
}

async fn a_panicking_write_fails_its_group_and_the_writer_goes_on(backend: Backend) {
    let app = app(backend, |_| {});
    let keys = app.project("p");
    let project = app.project_id(&keys);
    let (release, held) = hold_the_writer(&app).await;
    let panics = write(&app, |_| -> Result<i64> { panic!("a bug in a write") });
    let mut writes = vec![create(&app, &project, "g@x.co"), panics];
    queue(&mut writes).await;
    release.send(()).expect("release the writer");
    held.await.expect("the holding write");
    for answer in join_all(writes).await {
        assert!(matches!(answer, Err(Error::Internal(_))), "{answer:?}");
    }
    assert!(!stored(&app, &project, "g@x.co"));
    create(&app, &project, "h@x.co")
        .await
        .expect("a later write");
    assert!(stored(&app, &project, "h@x.co"));
}

async fn a_write_queued_past_the_checkout_timeout_is_refused_unrun(backend: Backend) {
    let app = app(backend, |s| s.db_pool_timeout_ms = 200);
    let keys = app.project("p");
    let project = app.project_id(&keys);
    let (release, held) = hold_the_writer(&app).await;
    let mut writes = vec![create(&app, &project, "late@x.co")];
    queue(&mut writes).await;
    std::thread::sleep(Duration::from_millis(400));
    release.send(()).expect("release the writer");
    held.await.expect("the holding write");
    let answer = writes.pop().unwrap().await;
    assert!(matches!(answer, Err(Error::Unavailable)), "{answer:?}");
    assert!(!stored(&app, &project, "late@x.co"));
}

both_backends!(
    writes_queued_together_commit_together_and_fail_alone,
    a_failed_commit_fails_its_whole_group,
    a_panicking_write_fails_its_group_and_the_writer_goes_on,
    a_write_queued_past_the_checkout_timeout_is_refused_unrun,
);
