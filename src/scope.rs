//! Which rows a project reaches, decided once.
//!
//! Every query of users or accounts starts from [`users_of`] or [`accounts_of`]: a project's
//! rows and no other's. They take a [`ProjectId`], which a handler can only get from an
//! authenticated caller, so a query cannot be scoped by a string a client sent. A new filter
//! that every query must apply is added here, once: [`users_of`] leaves out soft-deleted users,
//! which only the admin API reaches ([`every_user_of`]).
//!
//! Inserts are scoped by the row they write: `users::new_user` and `accounts::open` put the
//! caller's `ProjectId` in `issuer`, and the database ties an account's `(user_id, issuer)` to
//! its user's `(id, issuer)`, so an account can never point at another project's user.

use diesel::dsl;
use diesel::prelude::*;

use crate::db::schema::{
    accounts, audit_events, credential_attempts, events, idempotency_keys, user_identifiers,
    user_methods, users,
};
use crate::ids::ProjectId;

/// The project's users that are not deleted: all the v0 and v2 APIs see. A soft-deleted user
/// is answered like one that never existed.
#[dsl::auto_type]
pub fn users_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    users::table
        .filter(users::issuer.eq(issuer))
        .filter(users::deleted_at.is_null())
}

/// Every user of the project, soft-deleted ones included: what the admin API sees.
#[dsl::auto_type]
pub fn every_user_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    users::table.filter(users::issuer.eq(issuer))
}

/// The project's audit events.
#[dsl::auto_type]
pub fn audit_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    audit_events::table.filter(audit_events::issuer.eq(issuer))
}

/// The project's stored idempotent answers.
#[dsl::auto_type]
pub fn idempotency_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    idempotency_keys::table.filter(idempotency_keys::issuer.eq(issuer))
}

/// The project's accounts.
#[dsl::auto_type]
pub fn accounts_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    accounts::table.filter(accounts::issuer.eq(issuer))
}

/// The identifiers of the project's users that are not deleted.
#[dsl::auto_type]
pub fn identifiers_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    user_identifiers::table
        .filter(user_identifiers::issuer.eq(issuer))
        .filter(user_identifiers::deleted_at.is_null())
}

/// The enrolled methods of the project's users.
#[dsl::auto_type]
pub fn methods_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    user_methods::table.filter(user_methods::issuer.eq(issuer))
}

/// The failed-attempt counters of the project's users.
#[dsl::auto_type]
pub fn attempts_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    credential_attempts::table.filter(credential_attempts::issuer.eq(issuer))
}

/// The login events of the project's users.
#[dsl::auto_type]
pub fn events_of<'a>(project: &'a ProjectId) -> _ {
    let issuer: &'a str = project.as_str();
    events::table.filter(events::issuer.eq(issuer))
}
