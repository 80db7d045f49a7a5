//! Moving users in and out of a project: the export (`export`: NDJSON records read in one
//! snapshot) and the import (`read` splits a file into records, `record` checks each one with
//! the APIs' rules, `import` writes them in batches and answers one result per record).
//! `GET /admin/v1/users/export`, `POST /admin/v1/users/import` and `cotterd users export /
//! import` all run these.

pub mod export;
pub mod files;
pub mod import;
mod read;
mod record;

pub use read::Format;
pub use record::{Kind, MAX_RECORD_ACCOUNTS, MAX_RECORD_IDENTIFIERS};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Places for exports and imports running at once on this server (`TRANSFER_CONCURRENCY`).
#[derive(Debug, Clone)]
pub struct Slots {
    used: Arc<AtomicUsize>,
    max: usize,
}

/// One taken place, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Slots {
    /// `max` places.
    pub fn new(max: usize) -> Self {
        Slots {
            used: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place, if one is free.
    pub fn take(&self) -> Option<Slot> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.used.clone()))
    }
}
