//! The integration tests, linked once: the real app and the real binary against real databases
//! (SQLite and the PostgreSQL server on 127.0.0.1:5432), every API test on both.
//!
//! - `v0_api`, `v2_api`, `admin_api`: each API's behaviour, route by route;
//! - `sdk_api`: what Cotter's client SDKs call: create bodies, enrolled methods, enrollment
//!   checks, login events and their locks, the v2 password check, the SDK migration;
//! - `ops`: probes, request ids, rate limits, metrics, request limits;
//! - `openapi`: the document against the route table, the route catalogue and live answers;
//! - `cli`: the binary's commands and a served request over real sockets;
//! - `console`: the browser console: its session rules over HTTP, and its pages in a real
//!   browser (Debian's Chromium over WebDriver);
//! - `copy`: `cotterd copy` between SQLite and PostgreSQL, both ways, and what it refuses;
//! - `security`: hostile input on every route, cross-project probes, the credentials matrix;
//! - `faults`: a busy pool, SQLite locks, SQLite under concurrent writers;
//! - `group_commit`: creates committed in groups: together, failing alone or as a group;
//! - `properties`: normalisation and paging on generated inputs;
//! - `replicas`: `DATABASE_READ_URL`'s reads, a read-only server, a multi-host `DATABASE_URL`;
//! - `scoping`: a project reaches only its own rows, down to the database's keys;
//! - `bench_sql`: the benchmark's pgbench scripts are the server's SQL.
//! - `deploy`: the systemd unit and its env file, and the migration policy (additive, backward
//!   compatible for one release);
//! - `plans`: the database plans every admin list and search over an index.
//!
//! `security`, `faults` and `properties` print their figures (`figure: NAME = VALUE`) for
//! `reliability/run`: `cargo test --test it -- --nocapture security:: faults:: properties::`.

#[macro_use]
mod common;

mod admin_api;
mod bench_sql;
mod cli;
mod console;
mod copy;
mod deploy;
mod faults;
mod group_commit;
mod openapi;
mod ops;
mod plans;
mod properties;
mod replicas;
mod scoping;
mod sdk_api;
mod security;
mod sharding;
mod transfer;
mod v0_api;
mod v2_api;
