//! Group commit: writes that arrive while another group commits are written together, in one
//! transaction, each under its own savepoint, and each answered only after that commit.
//!
//! A commit waits on the disk (PostgreSQL's `synchronous_commit`, SQLite's `synchronous=FULL`);
//! one commit for many writes makes that wait once for all of them, without weakening it. A
//! write that fails (a taken identifier) rolls back to its savepoint and fails alone; a commit
//! that fails fails every write of the group, so no client is told "stored" for a row that is
//! not. Nothing waits to fill a group: a writer takes what is queued when it is free, so a lone
//! write goes at once and a busy server writes in larger groups.
//!
//! The writers take their connections from the pool, one per group, so the pool's size and its
//! checkout timeout (503 with `Retry-After`) hold for them as for every other query; a write
//! that waited in the queue longer than that timeout is answered 503 without running.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::Connection;
use tokio::sync::oneshot;

use super::{with_conn, DbConn, Pool, Target};
use crate::error::{Error, Result};

/// The most writes committed in one transaction.
pub const MAX_GROUP: usize = 64;
/// Writes that may wait for a writer; more are answered 503 at once.
pub const QUEUE_CAPACITY: usize = 1024;

/// One write waiting in the queue.
trait Write: Send {
    /// Runs the write under its own savepoint, keeping its outcome.
    fn run(&mut self, conn: &mut DbConn);
    /// Answers the request: the write's own outcome when its group committed, else `group`'s.
    fn finish(self: Box<Self>, group: Result<()>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<Result<T>>,
    answer: oneshot::Sender<Result<T>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send,
    F: FnOnce(&mut DbConn) -> Result<T> + Send,
{
    fn run(&mut self, conn: &mut DbConn) {
        if let Some(work) = self.work.take() {
            // Inside the group's transaction, diesel makes this one a savepoint.
            self.outcome = Some(conn.transaction(work));
        }
    }

    fn finish(self: Box<Self>, group: Result<()>) {
        let answer = match group {
            Ok(()) => self.outcome.unwrap_or(Err(Error::Unavailable)),
            Err(err) => Err(err),
        };
        // The request may have gone (its client hung up): the write stands all the same.
        let _ = self.answer.send(answer);
    }
}

struct Queued {
    at: Instant,
    write: Box<dyn Write>,
}

/// The queue of grouped writes and the threads that commit them. Cheap to clone; the threads
/// end when the last clone is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    queue: SyncSender<Queued>,
}

impl GroupCommit {
    /// Starts `writers` threads committing groups on connections of `pool` (0: one for SQLite,
    /// which takes one writer at a time, and two for PostgreSQL).
    pub fn start(pool: Pool, writers: usize, wait_limit: Duration) -> Self {
        let writers = match (writers, pool.target()) {
            (0, Target::Sqlite(_)) => 1,
            (0, Target::Postgres(_)) => 2,
            (n, _) => n,
        };
        let (queue, taken) = mpsc::sync_channel(QUEUE_CAPACITY);
        let taken = Arc::new(Mutex::new(taken));
        for n in 0..writers {
            let (pool, taken) = (pool.clone(), taken.clone());
            std::thread::Builder::new()
                .name(format!("cotterd-writer-{n}"))
                .spawn(move || writer(&pool, &taken, wait_limit))
                .expect("the writer thread starts");
        }
        GroupCommit { queue }
    }

    /// Runs `work` in the next group to commit and answers once that group has committed.
    /// `work` runs under a savepoint: its error rolls back its own statements only.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let write = Box::new(Pending {
            work: Some(work),
            outcome: None,
            answer,
        });
        let queued = Queued {
            at: Instant::now(),
            write,
        };
        match self.queue.try_send(queued) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                log::warn!("the write queue is full ({QUEUE_CAPACITY} writes): answered 503");
                return Err(Error::Unavailable);
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(Error::Internal("the writer threads have stopped".into()))
            }
        }
        answered
            .await
            .unwrap_or_else(|_| Err(Error::Internal("a grouped write was dropped".into())))
    }
}

/// One writer thread: takes what is queued (waiting for the first write only), commits it as
/// one group, answers each write, and again, until the queue is gone.
fn writer(pool: &Pool, taken: &Mutex<Receiver<Queued>>, wait_limit: Duration) {
    let mut group: Vec<Box<dyn Write>> = Vec::with_capacity(MAX_GROUP);
    loop {
        {
            let Ok(taken) = taken.lock() else { return };
            let Ok(first) = taken.recv() else { return };
            keep_or_refuse(first, wait_limit, &mut group);
            while group.len() < MAX_GROUP {
                match taken.try_recv() {
                    Ok(next) => keep_or_refuse(next, wait_limit, &mut group),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
        }
        if group.is_empty() {
            continue;
        }
        let committed = catch_unwind(AssertUnwindSafe(|| commit(pool, &mut group)))
            .unwrap_or_else(|_| Err(Error::Internal("a grouped write panicked".into())));
        if group.len() > 1 {
            log::trace!("committed a group of {} writes", group.len());
        }
        for write in group.drain(..) {
            write.finish(committed.clone());
        }
    }
}

/// Keeps a write for the group, or answers it 503 when it waited longer than a request waits
/// for a connection (its client has been kept long enough).
fn keep_or_refuse(queued: Queued, wait_limit: Duration, group: &mut Vec<Box<dyn Write>>) {
    if queued.at.elapsed() > wait_limit {
        queued.write.finish(Err(Error::Unavailable));
    } else {
        group.push(queued.write);
    }
}

/// Runs the group in one transaction. Every write's own failure stays in the write; what fails
/// here is the transaction itself (its BEGIN or its COMMIT), and that is answered 503: nothing of
/// the group was stored, and a retry may well succeed.
fn commit(pool: &Pool, group: &mut [Box<dyn Write>]) -> Result<()> {
    with_conn(pool, |conn| {
        conn.transaction(|conn| {
            for write in group.iter_mut() {
                write.run(conn);
            }
            Ok::<_, Error>(())
        })
    })
    .map_err(|err| match err {
        Error::Unavailable => Error::Unavailable,
        err => {
            log::error!("a group of {} writes failed to commit: {err:?}", group.len());
            Error::Unavailable
        }
    })
}
