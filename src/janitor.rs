//! The server's own upkeep, run every few minutes on each instance: purging users deleted more
//! than `DELETED_USER_RETENTION_DAYS` ago, and stored idempotent answers older than
//! `IDEMPOTENCY_TTL_HOURS`. Every step is a conditional delete, so instances running it at the
//! same time do each row once.

use std::time::Duration;

use crate::error::Result;
use crate::users::admin;
use crate::{db, idempotency, time, AppState};

/// How often the upkeep runs.
const EVERY: Duration = Duration::from_secs(600);
/// Users purged per transaction batch.
const BATCH: i64 = 500;

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub users_purged: usize,
    pub answers_expired: usize,
}

/// One round of upkeep on `conn`'s database at `now`.
pub fn round(
    conn: &mut db::DbConn,
    now: chrono::NaiveDateTime,
    retention_days: u32,
    idempotency_ttl_hours: u32,
) -> Result<Round> {
    let mut done = Round::default();
    if retention_days > 0 {
        let cutoff = now - chrono::Duration::days(i64::from(retention_days));
        loop {
            let purged = admin::purge_expired(conn, cutoff, BATCH)?;
            done.users_purged += purged;
            if purged < BATCH as usize {
                break;
            }
        }
    }
    let expired = now - chrono::Duration::hours(i64::from(idempotency_ttl_hours));
    done.answers_expired = idempotency::purge_expired(conn, expired)?;
    Ok(done)
}

/// Runs [`round`] every few minutes for as long as the server runs (the first a minute after
/// start). A failed round is logged and retried at the next.
pub fn spawn(state: AppState) {
    actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(Duration::from_secs(60)).await;
        loop {
            let (retention, ttl) = (
                state.settings.deleted_user_retention_days,
                state.settings.idempotency_ttl_hours,
            );
            match db::run(&state.pool, move |conn| {
                round(conn, time::now(), retention, ttl)
            })
            .await
            {
                Ok(done) if done != Round::default() => log::info!("upkeep: {done:?}"),
                Ok(_) => {}
                Err(err) => log::warn!("upkeep failed, retried in {EVERY:?}: {err}"),
            }
            actix_web::rt::time::sleep(EVERY).await;
        }
    });
}
