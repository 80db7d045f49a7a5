//! The database threads: a few threads, each keeping one pooled connection, fed by one bounded
//! queue. A request's query is handed to them instead of to the blocking thread pool, which
//! would spawn or wake a thread and check a connection out of the pool for every call.
//!
//! A slow query holds one thread; the others go on taking the queue. The pool's promise holds:
//! a call that waited longer than the checkout timeout (`DB_POOL_TIMEOUT_MS`) for a thread, or
//! that finds no connection within it, is answered 503 with `Retry-After`, and so is a call
//! that finds the queue full.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::r2d2::R2D2Connection;
use tokio::sync::oneshot;

use super::{Core, DbConn, PooledConn};
use crate::error::{Error, Result};

/// Calls that may wait for a thread; more are answered 503 at once.
pub const QUEUE_CAPACITY: usize = 1024;

/// A call, boxed: it runs on a connection, or is told why it cannot. It answers whether the
/// connection was found lost.
type Job = Box<dyn FnOnce(Result<&mut DbConn, Error>) -> bool + Send>;

struct Queued {
    at: Instant,
    job: Job,
}

/// The sending end of the queue. Cheap to clone; the threads end when the last clone goes.
#[derive(Clone)]
pub(super) struct DbThreads {
    queue: SyncSender<Queued>,
}

impl DbThreads {
    /// Starts `count` threads over the pool's connections.
    pub(super) fn start(core: &Core, count: usize, wait_limit: Duration) -> Self {
        let (queue, taken) = mpsc::sync_channel(QUEUE_CAPACITY);
        let taken = Arc::new(Mutex::new(taken));
        for n in 0..count.max(1) {
            let (core, taken) = (core.clone(), taken.clone());
            std::thread::Builder::new()
                .name(format!("cotterd-db-{n}"))
                .spawn(move || serve(&core, &taken, wait_limit))
                .expect("the database thread starts");
        }
        DbThreads { queue }
    }

    /// Runs `f` on a database thread's connection and returns what it returned.
    pub(super) async fn run<T, F>(&self, core: &Core, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let (result, lost) = match conn {
                Ok(conn) => match f(conn) {
                    // As `with_conn` judges it: a failure on a connection that no longer
                    // answers was the server going away, whatever the driver said.
                    Err(Error::Unavailable | Error::Internal(_)) if conn.ping().is_err() => {
                        (Err(Error::Unavailable), true)
                    }
                    result => (result, false),
                },
                Err(err) => (Err(err), false),
            };
            let _ = answer.send(result);
            lost
        });
        core.waiting.fetch_add(1, Ordering::Relaxed);
        let queued = Queued {
            at: Instant::now(),
            job,
        };
        match self.queue.try_send(queued) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                core.waiting.fetch_sub(1, Ordering::Relaxed);
                log::warn!("the database queue is full ({QUEUE_CAPACITY} calls): answered 503");
                return Err(Error::Unavailable);
            }
            Err(TrySendError::Disconnected(_)) => {
                core.waiting.fetch_sub(1, Ordering::Relaxed);
                return Err(Error::Internal("the database threads have stopped".into()));
            }
        }
        answered
            .await
            .unwrap_or_else(|_| Err(Error::Internal("a database call was dropped".into())))
    }
}

/// One database thread: takes a call and runs it. It keeps its connection only while it goes
/// straight from one call to the next; when the queue is empty it gives the connection back to
/// the pool, so that an idle server holds none and the pool's size stays the one budget.
fn serve(core: &Core, taken: &Mutex<Receiver<Queued>>, wait_limit: Duration) {
    let mut kept: Option<PooledConn> = None;
    loop {
        let next = match (&kept, taken.try_lock()) {
            (Some(_), Ok(taken)) => taken.try_recv().ok(),
            _ => None,
        };
        let Queued { at, job } = match next {
            Some(queued) => queued,
            None => {
                kept = None;
                let Ok(taken) = taken.lock() else { return };
                match taken.recv() {
                    Ok(queued) => queued,
                    Err(_) => return,
                }
            }
        };
        core.waiting.fetch_sub(1, Ordering::Relaxed);
        // What is left of the call's wait, for a connection.
        let Some(left) = wait_limit.checked_sub(at.elapsed()) else {
            job(Err(Error::Unavailable));
            continue;
        };
        if kept.is_none() {
            match core.inner.get_timeout(left) {
                Ok(conn) => kept = Some(conn),
                Err(err) => {
                    job(Err(err.into()));
                    continue;
                }
            }
        }
        let conn = kept.as_mut().expect("a connection was just kept");
        let lost = catch_unwind(AssertUnwindSafe(|| job(Ok(&mut conn.conn))));
        if !matches!(lost, Ok(false)) {
            // A lost server, or a panic that may have left a transaction open: the connection
            // is not kept, and the pool drops it.
            conn.broken = true;
            log::warn!("database connection lost or left unclean, dropped from the pool");
            kept = None;
        }
    }
}
