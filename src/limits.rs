//! Per-project rate limits (the MIT `governor` crate's GCRA), with separate budgets for writes,
//! reads and the admin API, so that one project's burst of sign-ups cannot starve its own (or anyone's) reads.
//!
//! Limits are keyed by the authenticated project, never by address: a spoofed
//! `X-Forwarded-For` changes nothing, and unknown keys never reach a limiter, so the limiters
//! hold at most one entry per project.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::Settings;
use crate::error::{Envelope, Error, Result};
use crate::ids::ProjectId;
use crate::AppState;

/// Failed console sign-ins a project's audit trail records per minute (per instance); the rest
/// are logged.
pub const AUDITED_SIGNIN_FAILURES_PER_MINUTE: u32 = 10;

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Reads: get, list.
    Read,
    /// Writes: creating users, setting a KYC reference, opening accounts.
    Write,
    /// The admin API, reads and writes alike.
    Admin,
}

/// The two budgets of every project.
#[derive(Clone)]
pub struct RateLimits {
    reads: Option<Arc<DefaultKeyedRateLimiter<ProjectId>>>,
    writes: Option<Arc<DefaultKeyedRateLimiter<ProjectId>>>,
    admin: Option<Arc<DefaultKeyedRateLimiter<ProjectId>>>,
    /// Console sign-ins, by client address: the one limit not keyed by project, as a sign-in
    /// has no project until it succeeds.
    signins: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    /// Failed console sign-ins audited per project: the rest are only logged.
    signin_failures: Arc<DefaultKeyedRateLimiter<uuid::Uuid>>,
    clock: DefaultClock,
    /// `cotterd_rate_limited_total`, by budget.
    refused: prometheus::IntCounterVec,
}

/// A limiter allowing `per_second` on average and bursts of `per_second * 2`; `None` when 0.
fn limiter(per_second: u32) -> Option<Arc<DefaultKeyedRateLimiter<ProjectId>>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(Arc::new(DefaultKeyedRateLimiter::dashmap(
        Quota::per_second(rate).allow_burst(burst),
    )))
}

impl RateLimits {
    /// Limits sized by `RATE_LIMIT_READS`, `RATE_LIMIT_WRITES` and `RATE_LIMIT_ADMIN` (per
    /// second per project),
    /// counting refusals in `refused` (labelled by budget).
    pub fn new(settings: &Settings, refused: prometheus::IntCounterVec) -> Self {
        RateLimits {
            reads: limiter(settings.rate_limit_reads),
            writes: limiter(settings.rate_limit_writes),
            admin: limiter(settings.rate_limit_admin),
            signins: NonZeroU32::new(settings.console_signin_per_minute)
                .map(|n| Arc::new(DefaultKeyedRateLimiter::dashmap(Quota::per_minute(n)))),
            signin_failures: Arc::new(DefaultKeyedRateLimiter::dashmap(Quota::per_minute(
                NonZeroU32::new(AUDITED_SIGNIN_FAILURES_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
            ))),
            clock: DefaultClock::default(),
            refused,
        }
    }

    /// Spends one unit of the project's budget, or says how long to wait (429).
    pub fn check(&self, project: &ProjectId, budget: Budget) -> Result<()> {
        let (limiter, label) = match budget {
            Budget::Read => (&self.reads, "read"),
            Budget::Write => (&self.writes, "write"),
            Budget::Admin => (&self.admin, "admin"),
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        match limiter.check_key(project) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.refused.with_label_values(&[label]).inc();
                let wait = not_until.wait_time_from(self.clock.now());
                // Whole seconds, rounded up: what Retry-After can say.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(Error::RateLimited(secs.max(1)))
            }
        }
    }

    /// Spends one of the address's console sign-in attempts (`CONSOLE_SIGNIN_PER_MINUTE`), or
    /// says how long to wait (429). The address is the connection's peer, never a header.
    pub fn check_signin(&self, address: IpAddr) -> Result<()> {
        /// Addresses remembered before the idle ones are forgotten.
        const MAX_ADDRESSES: usize = 10_000;
        let Some(limiter) = &self.signins else {
            return Ok(());
        };
        if limiter.len() > MAX_ADDRESSES {
            limiter.retain_recent();
        }
        // An IPv6 host has a whole /64 to itself: it is one address here.
        let address = match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut segments = v6.segments();
                    segments[4..].fill(0);
                    IpAddr::V6(segments.into())
                }
            },
            v4 => v4,
        };
        limiter.check_key(&address).map_err(|not_until| {
            self.refused.with_label_values(&["signin"]).inc();
            let wait = not_until.wait_time_from(self.clock.now());
            Error::TooManyAttempts((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
        })
    }

    /// Whether one more failed console sign-in of `project` is audited: at most
    /// [`AUDITED_SIGNIN_FAILURES_PER_MINUTE`] a minute per project on this instance.
    pub fn record_signin_failure(&self, project: uuid::Uuid) -> bool {
        if self.signin_failures.len() > 10_000 {
            self.signin_failures.retain_recent();
        }
        self.signin_failures.check_key(&project).is_ok()
    }

    /// Entries the limiters hold (at most three per project that made requests).
    pub fn len(&self) -> usize {
        [&self.reads, &self.writes, &self.admin]
            .into_iter()
            .flatten()
            .map(|limiter| limiter.len())
            .sum()
    }

    /// Whether the limiters hold no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests refused so far (`cotterd_rate_limited_total`, both budgets), read without
    /// making a series of a budget that refused nothing yet.
    pub fn rejected(&self) -> u64 {
        use prometheus::core::Collector;
        let refused: f64 = self
            .refused
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|metric| metric.get_counter().get_value())
            .sum();
        refused as u64
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
        let envelope = Envelope::for_path(req.match_info().as_str());
        let response = envelope.respond(&Error::HeadersTooLarge(limit));
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
