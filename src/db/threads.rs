//! The database threads: a few threads, each keeping one pooled connection, fed by one bounded
//! queue. A request's query is handed to them instead of to the blocking thread pool, which
//! would spawn or wake a thread and check a connection out of the pool for every call.
//!
//! A slow query holds one thread; the others go on taking the queue. The pool's promise holds:
//! a call that waited longer than the checkout timeout (`DB_POOL_TIMEOUT_MS`) for a thread, or
//! that finds no connection within it, is answered 503 with `Retry-After`, and so is a call
//! that finds the queue full.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Core, DbConn, Kept};
use crate::error::{Error, Result};

/// Calls that may wait for a thread; more are answered 503 at once.
pub const QUEUE_CAPACITY: usize = 1024;

/// A call, boxed: it runs on a thread's connection, or is refused unrun.
trait Call: Send {
    /// Runs the call on `kept` (checking a connection out within `wait` if none is kept) and
    /// answers it.
    fn run(self: Box<Self>, core: &Core, kept: &mut Kept, wait: Duration);
    /// Answers the call with `err`, unrun.
    fn refuse(self: Box<Self>, err: Error);
}

struct Pending<T, F> {
    work: F,
    answer: oneshot::Sender<Result<T>>,
}

impl<T, F> Call for Pending<T, F>
where
    T: Send,
    F: FnOnce(&mut DbConn) -> Result<T> + Send,
{
    fn run(self: Box<Self>, core: &Core, kept: &mut Kept, wait: Duration) {
        let Pending { work, answer } = *self;
        let result = kept.run(core, Some(wait), work);
        // With nothing queued, the connection goes back before the answer: the caller's next
        // look at the pool finds it idle.
        if core.waiting.load(Ordering::Relaxed) == 0 {
            kept.release();
        }
        let _ = answer.send(result);
    }

    fn refuse(self: Box<Self>, err: Error) {
        let _ = self.answer.send(Err(err));
    }
}

struct Queued {
    at: Instant,
    call: Box<dyn Call>,
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
        let queued = Queued {
            at: Instant::now(),
            call: Box::new(Pending { work: f, answer }),
        };
        core.waiting.fetch_add(1, Ordering::Relaxed);
        if let Err(refused) = self.queue.try_send(queued) {
            core.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(match refused {
                TrySendError::Full(_) => {
                    log::warn!("the database queue is full ({QUEUE_CAPACITY} calls): answered 503");
                    Error::Unavailable
                }
                TrySendError::Disconnected(_) => {
                    Error::Internal("the database threads have stopped".into())
                }
            });
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
    let mut kept = Kept::default();
    loop {
        let next = match (kept.conn.is_some(), taken.try_lock()) {
            (true, Ok(taken)) => taken.try_recv().ok(),
            _ => None,
        };
        let Queued { at, call } = match next {
            Some(queued) => queued,
            None => {
                kept.release();
                let Ok(taken) = taken.lock() else { return };
                match taken.recv() {
                    Ok(queued) => queued,
                    Err(_) => return,
                }
            }
        };
        core.waiting.fetch_sub(1, Ordering::Relaxed);
        // The call's whole wait, for a thread and a connection, is the checkout timeout.
        match wait_limit.checked_sub(at.elapsed()) {
            Some(left) => call.run(core, &mut kept, left),
            None => call.refuse(Error::Unavailable),
        }
    }
}
