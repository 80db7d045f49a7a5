//! Per-project rate limits (the MIT `governor` crate's GCRA), with separate budgets for writes
//! and reads, so that one project's burst of sign-ups cannot starve its own (or anyone's) reads.
//!
//! Limits are keyed by the authenticated project, never by address: a spoofed
//! `X-Forwarded-For` changes nothing, and unknown keys never reach a limiter, so the limiters
//! hold at most one entry per project.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::Settings;
use crate::error::{Error, Result, V2Error};
use crate::AppState;

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Reads: get, list.
    Read,
    /// Writes: creating users, setting a KYC reference, opening accounts.
    Write,
}

/// The two budgets of every project.
#[derive(Clone)]
pub struct RateLimits {
    reads: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    writes: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    clock: DefaultClock,
    rejected: Arc<AtomicU64>,
    counter: prometheus::IntCounterVec,
}

/// A limiter allowing `per_second` on average and bursts of `per_second * 2`; `None` when 0.
fn limiter(per_second: u32) -> Option<Arc<DefaultKeyedRateLimiter<String>>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(Arc::new(DefaultKeyedRateLimiter::dashmap(
        Quota::per_second(rate).allow_burst(burst),
    )))
}

impl RateLimits {
    /// Limits sized by `RATE_LIMIT_READS` and `RATE_LIMIT_WRITES` (per second per project),
    /// counting refusals in `counter` (labelled by budget).
    pub fn new(settings: &Settings, counter: prometheus::IntCounterVec) -> Self {
        RateLimits {
            reads: limiter(settings.rate_limit_reads),
            writes: limiter(settings.rate_limit_writes),
            clock: DefaultClock::default(),
            rejected: Arc::new(AtomicU64::new(0)),
            counter,
        }
    }

    /// Spends one unit of the project's budget, or says how long to wait (429).
    pub fn check(&self, project: &str, budget: Budget) -> Result<()> {
        let limiter = match budget {
            Budget::Read => &self.reads,
            Budget::Write => &self.writes,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        match limiter.check_key(&project.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                let label = match budget {
                    Budget::Read => "read",
                    Budget::Write => "write",
                };
                self.counter.with_label_values(&[label]).inc();
                let wait = not_until.wait_time_from(self.clock.now());
                // Whole seconds, rounded up: what Retry-After can say.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(Error::RateLimited(secs.max(1)))
            }
        }
    }

    /// Entries the limiters hold (at most two per project that made requests).
    pub fn len(&self) -> usize {
        [&self.reads, &self.writes]
            .into_iter()
            .flatten()
            .map(|limiter| limiter.len())
            .sum()
    }

    /// Whether the limiters hold no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests refused so far (for metrics).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// Refuses requests whose head (request line and headers) is larger than `MAX_HEADER_BYTES`
/// with 431, in the error shape of the API the path belongs to.
pub async fn header_size(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> std::result::Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(u64::MAX, |state| state.settings.max_header_bytes);
    let head = req.method().as_str().len()
        + req.uri().path().len()
        + req.uri().query().map_or(0, |q| q.len() + 1)
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head as u64 > limit {
        let err = Error::HeadersTooLarge(limit);
        let response = if req.path().starts_with("/v2/") {
            V2Error::from(err).error_response()
        } else {
            err.error_response()
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
