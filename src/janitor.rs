//! The server's own upkeep, run every few minutes on each instance: purging users deleted more
//! than `DELETED_USER_RETENTION_DAYS` ago, and stored idempotent answers older than
//! `IDEMPOTENCY_TTL_HOURS`, accepted login signatures too old to be replayed, and login events
//! older than `EVENT_RETENTION_DAYS`, and console sessions over for a week. Every step is a conditional delete, so instances running it at the
//! same time do each row once.

use std::time::Duration;

use crate::error::Error;
use crate::users::admin;
use crate::{db, events, idempotency, sessions, time, AppState};

/// How often the upkeep runs.
const EVERY: Duration = Duration::from_secs(600);
/// Users read per batch (each is purged in a transaction of its own).
const BATCH: i64 = 500;

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub users_purged: usize,
    pub answers_expired: usize,
    pub answers_orphaned: usize,
    pub signatures_forgotten: usize,
    pub events_expired: usize,
    pub sessions_forgotten: usize,
}

/// How long each kind of row is kept: the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub deleted_user_days: u32,
    pub idempotency_hours: u32,
    pub event_skew_secs: u64,
    pub event_days: u32,
    pub console: sessions::Lifetimes,
}

impl Keep {
    /// What `settings` say.
    pub fn of(settings: &crate::config::Settings) -> Self {
        Keep {
            deleted_user_days: settings.deleted_user_retention_days,
            idempotency_hours: settings.idempotency_ttl_hours,
            event_skew_secs: settings.event_max_skew_secs,
            event_days: settings.event_retention_days,
            console: sessions::Lifetimes::of(settings),
        }
    }
}

/// One round of upkeep on `pool`'s database at `now`: each step on a connection of its own for
/// one batch at a time, and a failed step does not keep the others from running (its error is
/// returned after them).
pub fn round(pool: &db::Pool, now: chrono::NaiveDateTime, keep: Keep) -> (Round, Option<Error>) {
    let Keep {
        deleted_user_days: retention_days,
        idempotency_hours: idempotency_ttl_hours,
        event_skew_secs,
        event_days,
        console,
    } = keep;
    let mut done = Round::default();
    let mut failed = None;
    if retention_days > 0 {
        let cutoff = now - chrono::Duration::days(i64::from(retention_days));
        loop {
            match db::with_conn(pool, |conn| admin::purge_expired(conn, cutoff, BATCH)) {
                Ok(purged) => {
                    done.users_purged += purged;
                    if purged < BATCH as usize {
                        break;
                    }
                }
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
    }
    let expired = now - chrono::Duration::hours(i64::from(idempotency_ttl_hours));
    match db::with_conn(pool, |conn| idempotency::purge_expired(conn, expired)) {
        Ok(n) => done.answers_expired = n,
        Err(err) => failed = Some(err),
    }
    match db::with_conn(pool, idempotency::forget_orphans) {
        Ok(n) => done.answers_orphaned = n,
        Err(err) => failed = Some(err),
    }
    match db::with_conn(pool, |conn| events::forget_used(conn, now, event_skew_secs)) {
        Ok(n) => done.signatures_forgotten = n,
        Err(err) => failed = Some(err),
    }
    if event_days > 0 {
        let cutoff = now - chrono::Duration::days(i64::from(event_days));
        loop {
            match db::with_conn(pool, |conn| events::purge_older(conn, cutoff, BATCH)) {
                Ok(n) => {
                    done.events_expired += n;
                    if n < BATCH as usize {
                        break;
                    }
                }
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
    }
    match db::with_conn(pool, |conn| sessions::forget_old(conn, now, console)) {
        Ok(n) => done.sessions_forgotten = n,
        Err(err) => failed = Some(err),
    }
    (done, failed)
}

/// Runs [`round`] every few minutes for as long as the server runs (the first a minute after
/// start). A failed round is logged and retried at the next.
pub fn spawn(state: AppState) {
    actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(Duration::from_secs(60)).await;
        loop {
            let keep = Keep::of(&state.settings);
            let pool = state.pool.clone();
            let ran = actix_web::web::block(move || round(&pool, time::now(), keep)).await;
            match ran {
                Ok((done, failed)) => {
                    if done != Round::default() {
                        log::info!("upkeep: {done:?}");
                    }
                    if let Some(err) = failed {
                        // Debug: an internal error's detail, which Display leaves out.
                        log::warn!("upkeep step failed, retried in {EVERY:?}: {err:?}");
                    }
                }
                Err(err) => log::warn!("upkeep failed, retried in {EVERY:?}: {err}"),
            }
            actix_web::rt::time::sleep(EVERY).await;
        }
    });
}
