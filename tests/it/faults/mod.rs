//! Faults through the real app, and what clients see of them:
//!
//! - every pool connection busy in the database (PostgreSQL: `pg_sleep`; SQLite: an open write
//!   transaction and an open read transaction): each request answers 503 with `Retry-After` in
//!   its API's error shape within the checkout timeout, `/healthz` and `/readyz` still answer,
//!   nothing is written, and the very same requests succeed once the connections are free;
//! - a SQLite write lock held by a connection outside the pool past `busy_timeout`: writes
//!   answer 503 the same way, reads go on beside the lock (WAL);
//! - many concurrent writers and readers on one SQLite file through three server instances over
//!   real sockets (two in this process, each with a pool of its own, and a separate `cotterd`
//!   process): no 5xx, every acknowledged write stored exactly once, nothing stored that was not
//!   acknowledged.
//!
//! Measured numbers are printed as figures (`common::figure`); only correctness bounds are
//! asserted, never speed.

mod pool;
mod sqlite_writers;
