//! Properties checked with proptest on generated inputs:
//!
//! - identifier normalisation is idempotent, and an identifier's normalised form names the same
//!   user as the identifier itself (arbitrary Unicode with full-width forms, ligatures,
//!   compatibility characters, combining marks and case mappings that change length);
//! - paging through `GET /api/v0/user/list` until `[]` yields each of a project's users exactly
//!   once, newest first (`created_at` desc, then `ID` desc, with many users sharing a
//!   `created_at`), and none of another project's, on SQLite and on PostgreSQL;
//! - paging forward through `GET /admin/v1/users` with cursors, in each order, while users are
//!   created, soft-deleted and purged between pages, never lists a user twice, never skips one
//!   that existed throughout, and keeps the list's order.
//!
//! Each property runs on fresh random inputs every time; a failure prints the minimal input
//! proptest shrank it to. Counts are printed as figures.

use std::cell::Cell;
use std::collections::HashSet;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::init_service;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::Connection;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

use crate::common::{figure, list_req, send, Backend, Keys, TestApp};
use cotterd::users::{self, normalize_identifier, Identifier, User, MAX_IDENTIFIER_CHARS};

/// Runs `test` on `cases` generated values; returns how many passed, or panics with the minimal
/// failing input.
fn check<S: Strategy>(
    what: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u32 {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let passed = Cell::new(0);
    let outcome = runner.run(&strategy, |value| {
        test(value)?;
        passed.set(passed.get() + 1);
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{what}: {failure}");
    }
    passed.get()
}

// -- identifier normalisation ---------------------------------------------------------------------

/// Characters that NFKC or lower-casing change, or that combine with their neighbours:
/// full-width forms and spaces, ligatures, compatibility letters, digits and symbols, combining
/// marks (one of them, U+0345, changes under case mapping), letters whose lower case is longer
/// or depends on the next letter, Hangul jamo that compose, half-width kana with voicing marks,
/// spacing accents that decompose to a space and a combining mark, and U+FDFA, which NFKC
/// expands to 18 characters.
const TRICKY: &str = "ＡＺａｚ０９＠．＿\u{3000}ﬁﬂﬀﬃﬅĲĳǄǅǆŉ㎏℃№Ⅻⅻ①⑴ℌℍ\u{212A}\u{212B}\u{2126}µſ\
                      \u{0300}\u{0301}\u{0307}\u{0308}\u{0327}\u{0338}\u{0345}\u{20DD}\
                      ßẞİıΣσςΐǰᾈᾀ가\u{1100}\u{1161}\u{11A8}ﾊﾟｶﾞ¨´¸¯˘ªº\u{00A0}\u{FDFA}";

/// Strings mixing the tricky characters with ASCII and arbitrary code points.
fn unicode_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => prop::sample::select(TRICKY.chars().collect::<Vec<_>>()),
        3 => prop::char::range('a', 'z'),
        2 => prop::sample::select("AZ09@.-+_ ".chars().collect::<Vec<_>>()),
        2 => any::<char>(),
    ];
    prop::collection::vec(ch, 0..40).prop_map(String::from_iter)
}

/// The full-width form of every printable ASCII character (`!`..`~` to U+FF01..U+FF5E).
fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            c => c,
        })
        .collect()
}

#[test]
fn normalisation_is_idempotent_and_keeps_the_user() {
    let not_identifiers = Cell::new(0u32);
    let unicode = check(
        "normalisation of Unicode identifiers",
        3000,
        unicode_text(),
        |raw| {
            let once = normalize_identifier(&raw);
            prop_assert_eq!(normalize_identifier(&once), once.clone(), "raw: {:?}", raw);
            let Ok(parsed) = Identifier::parse(&raw) else {
                return Ok(());
            };
            let normalized = parsed.normalized;
            prop_assert_eq!(
                normalize_identifier(&normalized),
                normalized.clone(),
                "raw: {:?}",
                raw
            );
            prop_assert_eq!(&normalize_identifier(&parsed.given), &normalized);
            // Identifiers are trimmed before they are normalised (README), so a normalised form
            // that begins or ends with a space (U+00A8 is U+0020 U+0308 under NFKC) is not one
            // an identifier can have; nor is one past 254 characters (the limit is on the
            // identifier as given, and NFKC can expand it). Every other normalised form is an
            // identifier of the same user.
            if normalized.trim() != normalized || normalized.chars().count() > MAX_IDENTIFIER_CHARS
            {
                not_identifiers.set(not_identifiers.get() + 1);
                return Ok(());
            }
            let again = Identifier::parse(&normalized)
                .map_err(|e| TestCaseError::fail(format!("{raw:?} -> {normalized:?}: {e}")))?;
            prop_assert_eq!(again.normalized, normalized, "raw: {:?}", raw);
            Ok(())
        },
    );
    let variants = check(
        "case and width variants of ASCII identifiers",
        1000,
        "[A-Za-z0-9._%+-]{1,30}@[A-Za-z0-9-]{1,20}\\.[A-Za-z]{2,6}",
        |ascii| {
            let key = Identifier::parse(&ascii).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&key.normalized, &ascii.to_lowercase());
            for variant in [
                ascii.to_uppercase(),
                full_width(&ascii),
                full_width(&ascii.to_uppercase()),
                format!("  {}\t", full_width(&ascii)),
            ] {
                let parsed =
                    Identifier::parse(&variant).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&parsed.normalized, &key.normalized, "variant {:?}", variant);
            }
            Ok(())
        },
    );
    figure("props.normalisation_cases", unicode + variants);
    figure("props.normalisation_not_identifiers", not_identifiers.get());
}

// -- paging -----------------------------------------------------------------------------------------

/// Cases per backend: each inserts up to 200 users and pages through two projects.
const PAGING_CASES: u32 = 20;

/// One user to insert: whether it is of the project under test (else of the other one), and
/// its creation time as a second and a microsecond, each from a small set so that many users
/// share a `created_at` and the fractions print with 0, 3 and 6 digits.
type Planned = (bool, u8, u32);

fn population() -> impl Strategy<Value = Vec<Planned>> {
    let micros = prop::sample::select(vec![0u32, 1, 42, 123_000, 500_000, 999_999]);
    prop::collection::vec((prop::bool::weighted(0.8), 0u8..3, micros), 0..=200)
}

fn at(second: u8, micros: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 1, 1)
        .and_then(|day| day.and_hms_micro_opt(12, 0, second.into(), micros))
        .expect("a valid time")
}

/// Every non-empty page of the project's list, asking for pages until one is `[]`.
async fn all_pages<S, B>(svc: &S, keys: &Keys) -> Vec<Vec<Value>>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut pages = Vec::new();
    for page in 0..100 {
        let reply = send(svc, list_req(keys, &page.to_string())).await;
        assert_eq!(reply.status, StatusCode::OK, "page {page}: {}", reply.body);
        let Value::Array(users) = reply.json() else {
            panic!("page {page} is not an array: {}", reply.body)
        };
        if users.is_empty() {
            return pages;
        }
        pages.push(users);
    }
    panic!("the list never ended")
}

/// Inserts the planned users in one transaction, alternating between the two projects as
/// planned.
fn insert_population(app: &TestApp, projects: &[Keys; 2], planned: &[Planned]) -> Vec<User> {
    let ids = projects.each_ref().map(|keys| app.project_id(keys));
    let mut pooled = app.state.pool.get().expect("connection");
    pooled
        .conn()
        .transaction::<_, cotterd::error::Error, _>(|conn| {
            planned
                .iter()
                .enumerate()
                .map(|(i, &(mine, second, micros))| {
                    let issuer = &ids[usize::from(!mine)];
                    let identifier = Identifier::parse(&format!("user{i}@example.com"))?;
                    users::insert(
                        conn,
                        users::new_user(issuer, identifier, at(second, micros)),
                    )
                })
                .collect()
        })
        .expect("insert the users")
}

/// Pages through a project's list; checks it holds exactly `expected` in newest-first order.
fn check_listing(
    pages: &[Vec<Value>],
    keys: &Keys,
    inserted: &[User],
) -> Result<usize, TestCaseError> {
    let mut expected: Vec<&User> = inserted.iter().filter(|u| u.issuer == keys.id).collect();
    expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let page_size = users::PAGE_SIZE as usize;
    prop_assert_eq!(pages.len(), expected.len().div_ceil(page_size));
    for (n, page) in pages.iter().enumerate() {
        let full = n + 1 < pages.len();
        prop_assert!(
            page.len() <= page_size && (!full || page.len() == page_size),
            "page {} holds {} users",
            n,
            page.len()
        );
    }
    let listed: Vec<&Value> = pages.iter().flatten().collect();
    let theirs: HashSet<&str> = inserted
        .iter()
        .filter(|u| u.issuer != keys.id)
        .map(|u| u.id.as_str())
        .collect();
    for user in &listed {
        prop_assert_eq!(user["issuer"].as_str(), Some(keys.id.as_str()));
        prop_assert!(
            !theirs.contains(user["ID"].as_str().unwrap_or_default()),
            "another project's user listed: {}",
            user
        );
    }
    let got: Vec<(&str, &str)> = listed
        .iter()
        .map(|u| {
            (
                u["ID"].as_str().unwrap_or_default(),
                u["created_at"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let formatted: Vec<String> = expected
        .iter()
        .map(|u| cotterd::time::format(u.created_at))
        .collect();
    let want: Vec<(&str, &str)> = expected
        .iter()
        .zip(&formatted)
        .map(|(u, at)| (u.id.as_str(), at.as_str()))
        .collect();
    prop_assert_eq!(got, want, "listed (ID, created_at) against newest first");
    Ok(expected.len())
}

/// Runs the paging property on one backend; returns (cases, users checked).
fn paging_property(backend: Backend) -> (u32, usize) {
    let app = TestApp::new(backend);
    let system = actix_web::rt::System::new();
    let svc = system.block_on(init_service(cotterd::app(app.state.clone())));
    let checked = Cell::new(0);
    let cases = check(
        &format!("paging on {backend:?}"),
        PAGING_CASES,
        population(),
        |planned| {
            let projects = [app.project("mine"), app.project("theirs")];
            let inserted = insert_population(&app, &projects, &planned);
            for keys in &projects {
                let pages = system.block_on(all_pages(&svc, keys));
                checked.set(checked.get() + check_listing(&pages, keys, &inserted)?);
            }
            Ok(())
        },
    );
    (cases, checked.get())
}

#[test]
fn paging_yields_each_user_once_newest_first() {
    let (mut cases, mut checked) = (0, 0);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (c, u) = paging_property(backend);
        cases += c;
        checked += u;
    }
    figure("props.paging_cases", cases);
    figure("props.paging_users_checked", checked);
}

// -- admin cursor paging under concurrent changes -------------------------------------------------

/// Cases per backend: each inserts up to 120 users and pages through them while others are
/// created and deleted.
const CURSOR_CASES: u32 = 12;

/// A change made between two pages: create a user (identifier from a small alphabet, so that
/// it lands anywhere in the identifier order), or soft-delete / purge the n-th user made so far.
#[derive(Debug, Clone)]
enum Change {
    Create(String),
    Delete(usize),
    Purge(usize),
}

/// Users made before the paging (identifier stem, second, micros), the order (an index into the
/// three), the page size, and the changes made between pages.
type CursorCase = (Vec<(String, u8, u32)>, usize, i64, Vec<Change>);

fn cursor_case() -> impl Strategy<Value = CursorCase> {
    let identifier = "[a-dA-D]{1,4}";
    let micros = prop::sample::select(vec![0u32, 1, 500_000]);
    let initial = prop::collection::vec((identifier, 0u8..3, micros), 0..=120);
    let change = prop_oneof![
        identifier.prop_map(Change::Create),
        (0usize..200).prop_map(Change::Delete),
        (0usize..200).prop_map(Change::Purge),
    ];
    (
        initial,
        0usize..3,
        1i64..=20,
        prop::collection::vec(change, 0..40),
    )
}

/// Pages forward through a project's admin list while `changes` are made between pages: no
/// user is listed twice, every user that existed throughout is listed, in the list's order.
fn cursor_property(backend: Backend) -> (u32, usize) {
    let app = TestApp::new(backend);
    let system = actix_web::rt::System::new();
    let svc = system.block_on(init_service(cotterd::app(app.state.clone())));
    let checked = Cell::new(0);
    let orders = ["created_at.desc", "created_at.asc", "identifier.asc"];
    let cases = check(
        &format!("cursor paging on {backend:?}"),
        CURSOR_CASES,
        cursor_case(),
        |(initial, order, limit, changes)| {
            let keys = app.project("cursor");
            let project = app.project_id(&keys);
            // Unique identifiers: the generated stem and the position.
            let mut made: Vec<User> = {
                let mut pooled = app.state.pool.get().expect("connection");
                initial
                    .iter()
                    .enumerate()
                    .map(|(i, (stem, second, micros))| {
                        let identifier = Identifier::parse(&format!("{stem}{i}@x.io")).unwrap();
                        let new = users::new_user(&project, identifier, at(*second, *micros));
                        users::insert(pooled.conn(), new).expect("insert")
                    })
                    .collect()
            };
            let mut gone: HashSet<String> = HashSet::new();
            let mut listed: Vec<Value> = Vec::new();
            let mut changes = changes.into_iter();
            let mut uri = format!("/admin/v1/users?order={}&limit={limit}", orders[order]);
            for _ in 0..500 {
                let reply = system.block_on(crate::common::req::call(
                    &svc,
                    &crate::common::req::Req::get(&uri).keys(&keys),
                ));
                prop_assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
                let page = reply.json();
                listed.extend(page["users"].as_array().cloned().unwrap_or_default());
                let Some(next) = page["next_cursor"].as_str() else {
                    break;
                };
                uri = format!(
                    "/admin/v1/users?order={}&limit={limit}&cursor={next}",
                    orders[order]
                );
                // Up to three changes between two pages.
                for change in changes.by_ref().take(3) {
                    let req = match &change {
                        Change::Create(stem) => {
                            let identifier = format!("{stem}n{}@x.io", made.len());
                            crate::common::req::Req::post("/admin/v1/users")
                                .json(&serde_json::json!({ "identifier": identifier }))
                        }
                        Change::Delete(n) | Change::Purge(n) if made.is_empty() => {
                            let _ = n;
                            continue;
                        }
                        Change::Delete(n) => crate::common::req::Req::new(
                            actix_web::http::Method::DELETE,
                            format!("/admin/v1/users/{}", made[n % made.len()].id),
                        ),
                        Change::Purge(n) => crate::common::req::Req::new(
                            actix_web::http::Method::DELETE,
                            format!("/admin/v1/users/{}?purge=true", made[n % made.len()].id),
                        ),
                    };
                    let reply = system.block_on(crate::common::req::call(&svc, &req.keys(&keys)));
                    match change {
                        Change::Create(_) => {
                            prop_assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
                            let id = reply.json()["id"].as_str().unwrap_or_default().to_owned();
                            let mut pooled = app.state.pool.get().expect("connection");
                            let user = users::get(
                                pooled.conn(),
                                &project,
                                &cotterd::ids::UserId::parse(&id).unwrap(),
                            )
                            .expect("the new user");
                            made.push(user);
                        }
                        Change::Delete(n) | Change::Purge(n) => {
                            gone.insert(made[n % made.len()].id.clone());
                        }
                    }
                }
            }
            let ids: Vec<&str> = listed
                .iter()
                .map(|u| u["id"].as_str().unwrap_or_default())
                .collect();
            let unique: HashSet<&str> = ids.iter().copied().collect();
            prop_assert_eq!(unique.len(), ids.len(), "a user listed twice: {:?}", ids);
            let known: HashSet<&str> = made.iter().map(|u| u.id.as_str()).collect();
            prop_assert!(unique.is_subset(&known), "a user that never existed listed");
            // Users made before the paging began and never deleted existed throughout.
            for user in made.iter().take(initial.len()) {
                prop_assert!(
                    gone.contains(&user.id) || unique.contains(user.id.as_str()),
                    "{} existed throughout and was skipped",
                    user.identifier
                );
            }
            // In the list's order.
            let key = |id: &str| {
                let user = made.iter().find(|u| u.id == id).expect("known");
                (
                    user.created_at,
                    user.identifier_normalized.clone(),
                    user.id.clone(),
                )
            };
            let keys_listed: Vec<_> = ids.iter().map(|id| key(id)).collect();
            let in_order = keys_listed.windows(2).all(|w| match order {
                0 => (w[0].0, &w[0].2) > (w[1].0, &w[1].2),
                1 => (w[0].0, &w[0].2) < (w[1].0, &w[1].2),
                _ => (&w[0].1, &w[0].2) < (&w[1].1, &w[1].2),
            });
            prop_assert!(in_order, "not in {} order", orders[order]);
            checked.set(checked.get() + ids.len());
            Ok(())
        },
    );
    (cases, checked.get())
}

#[test]
fn cursor_paging_survives_concurrent_changes() {
    let (mut cases, mut checked) = (0, 0);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (c, u) = cursor_property(backend);
        cases += c;
        checked += u;
    }
    figure("props.cursor_cases", cases);
    figure("props.cursor_users_checked", checked);
}
