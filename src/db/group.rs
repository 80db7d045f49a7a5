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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::Connection;
use tokio::sync::oneshot;

use super::{Core, DbConn, Kept, Pool, Target};
use crate::error::{Error, Result};

/// The most writes committed in one transaction.
pub const MAX_GROUP: usize = 64;
/// Writes that may wait for a writer; more are answered 503 at once.
pub const QUEUE_CAPACITY: usize = 1024;

/// One write waiting in the queue.
trait Write: Send {
    /// Runs the write under its own savepoint, keeping its outcome.
    fn run(&mut self, conn: &mut DbConn);
    /// Whether the write failed because the database could not take it (a lost connection, a
    /// read-only server, a busy SQLite), not because of what it wrote.
    fn unavailable(&self) -> bool;
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

    fn unavailable(&self) -> bool {
        matches!(self.outcome, Some(Err(Error::Unavailable)))
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
    /// Writes in the queue now.
    queued: Arc<AtomicUsize>,
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
        let queued = Arc::new(AtomicUsize::new(0));
        for n in 0..writers {
            let (core, taken, queued) = (pool.core.clone(), taken.clone(), queued.clone());
            std::thread::Builder::new()
                .name(format!("cotterd-writer-{n}"))
                .spawn(move || writer(&core, &taken, &queued, wait_limit))
                .expect("the writer thread starts");
        }
        GroupCommit { queue, queued }
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
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(queued) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                log::warn!("the write queue is full ({QUEUE_CAPACITY} writes): answered 503");
                return Err(Error::Unavailable);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(Error::Internal("the writer threads have stopped".into()));
            }
        }
        answered
            .await
            .unwrap_or_else(|_| Err(Error::Internal("a grouped write was dropped".into())))
    }
}

/// One writer thread: takes what is queued (waiting for the first write only), commits it as
/// one group, answers each write, and again, until the queue is gone. It keeps its connection
/// while groups keep coming (on SQLite, a connection that alone writes keeps its page cache
/// warm) and gives it back to the pool when the queue is empty.
fn writer(
    core: &Core,
    taken: &Mutex<Receiver<Queued>>,
    queued: &AtomicUsize,
    wait_limit: Duration,
) {
    let mut group: Vec<Box<dyn Write>> = Vec::with_capacity(MAX_GROUP);
    let mut kept = Kept::default();
    loop {
        let oldest = {
            let next = match (kept.conn.is_some(), taken.try_lock()) {
                (true, Ok(taken)) => taken.try_recv().ok().map(|first| (first, taken)),
                _ => None,
            };
            let (first, taken) = match next {
                Some(next) => next,
                None => {
                    kept.release();
                    let Ok(taken) = taken.lock() else { return };
                    let Ok(first) = taken.recv() else { return };
                    (first, taken)
                }
            };
            // The queue is first in, first out: the group's first write has waited longest.
            let oldest = first.at;
            queued.fetch_sub(1, Ordering::Relaxed);
            keep_or_refuse(first, wait_limit, &mut group);
            while group.len() < MAX_GROUP {
                match taken.try_recv() {
                    Ok(next) => {
                        queued.fetch_sub(1, Ordering::Relaxed);
                        keep_or_refuse(next, wait_limit, &mut group);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            oldest
        };
        if group.is_empty() {
            continue;
        }
        // The checkout may take what the group's oldest write has left of its wait.
        let wait = wait_limit.saturating_sub(oldest.elapsed());
        let committed = commit(core, &mut kept, wait, &mut group);
        if group.len() > 1 {
            log::trace!("committed a group of {} writes", group.len());
        }
        // With nothing queued, the connection goes back before the answers.
        if queued.load(Ordering::Relaxed) == 0 {
            kept.release();
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
/// here is the transaction itself (its BEGIN or its COMMIT, answered 503: nothing of the group
/// was stored, and a retry may well succeed) or a write that panicked (500; the connection is
/// dropped, as it may hold the transaction open).
fn commit(
    core: &Core,
    kept: &mut Kept,
    wait: Duration,
    group: &mut [Box<dyn Write>],
) -> Result<()> {
    let size = group.len();
    let mut every_write_ran = false;
    let committed = kept.run(core, Some(wait), |conn| {
        conn.transaction(|conn| {
            for write in group.iter_mut() {
                write.run(conn);
            }
            every_write_ran = true;
            // A write the database could not take fails the group, so that the connection it
            // ran on is checked (and dropped when it lost its server or landed on a read-only
            // one); the group's other writes would have met the same.
            if group.iter().any(|write| write.unavailable()) {
                return Err(Error::Unavailable);
            }
            Ok::<_, Error>(())
        })
    });
    match committed {
        Ok(()) => Ok(()),
        Err(Error::Internal(_)) if !every_write_ran => {
            Err(Error::Internal("a grouped write panicked".into()))
        }
        Err(Error::Unavailable) => Err(Error::Unavailable),
        Err(err) => {
            log::error!("a group of {size} writes failed to commit: {err:?}");
            Err(Error::Unavailable)
        }
    }
}
