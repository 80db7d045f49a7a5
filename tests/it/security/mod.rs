//! Security checks against the real app on real databases. Each part iterates the route
//! catalogue (`common::catalogue`), so a new keyed route cannot be left out of any of them.
//!
//! 1. **Hostile input on every route** (`hostile`): one generated corpus (control bytes and NUL
//!    in bodies, queries and paths, invalid UTF-8, a 2 MB body, 100k-deep JSON, absurd page
//!    numbers, SQL and LIKE metacharacters, case, width, NFKC and lookalike spellings of existing
//!    identifiers, wrong content types, duplicate keys) is sent with valid keys to a SQLite app and
//!    a PostgreSQL app. No answer may be a 5xx, every error must be in its API's shape, no
//!    rejected request may change a row, and both backends must give the same verdict to every
//!    input.
//! 2. **Cross-project probes** (`bola`): project B tries every way to reach project A's users
//!    and secrets (identifiers and their variants, user, account and secret ids in several
//!    spellings, writes, mixed keys, list pages). No answer may carry anything of A's, each must be byte-identical to the
//!    answer for a target that does not exist, and A's rows must not change.
//! 3. **The credentials matrix** (`credentials`): every keyed route under every kind of
//!    credentials, for a project with and one without `--require-secret`, in process and then
//!    against the real binary over sockets, whose responses and debug log must not hold a
//!    secret, its hash or a password; and the key comparison itself among several live secrets.
//! 4. **The console's session** (`console`): a session reaches only its own project's users and
//!    secrets; forged, malformed and ended cookies are 401 and write nothing; every change made
//!    with the cookie needs the session's CSRF token (403 `CSRF_TOKEN_INVALID` without it);
//!    hostile sign-in bodies are refused in the admin API's shape without a cookie; the secret
//!    and the session's token are in no answer and nowhere in the audit trail.
//!
//! Each part prints its figures with `common::figure` (`cargo test --test it -- --nocapture
//! security::` shows them).

mod bola;
mod console;
mod credentials;
mod hostile;

use std::collections::HashMap;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::common::req::{call, Req};
use crate::common::{reply_id, Keys, Reply, NIL_ID};

/// Signs a v2 user up with `body` and sets its `kyc_id` (asserting both succeed); its id.
async fn signed_up_with_kyc<S, B>(svc: &S, keys: &Keys, body: &Value, kyc_id: &str) -> String
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let id = reply_id(&call(svc, &Req::post("/v2/users").keys(keys).json(body)).await);
    let patch = Req::patch(format!("/v2/users/{id}")).keys(keys);
    let reply = call(svc, &patch.json(&json!({ "kyc_id": kyc_id }))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    id
}

/// A string the server wrote that differs from run to run: a UUID or a time (not the zero
/// time of Cotter's zero user).
fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

fn is_time(s: &str) -> bool {
    s != cotterd::time::ZERO_TIME && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Turns replies into verdicts that two runs of the same requests can be compared on: ids
/// become stable names (the seeds' names, then `id#N` in order of first appearance), times
/// become `<time>`, cursors `<cursor>`, secret and session prefixes `<…prefix>`, event timestamps
/// `<timestamp>`, the seconds of a lock `<n>`, a body that is not JSON becomes its content type.
#[derive(Default)]
struct Normaliser {
    names: HashMap<String, String>,
}

impl Normaliser {
    fn name(&mut self, id: &str, name: &str) {
        self.names.insert(id.to_lowercase(), name.to_owned());
    }

    fn value(&mut self, value: &mut Value) {
        match value {
            Value::String(s) if s != NIL_ID && is_uuid(s) => {
                let next = format!("id#{}", self.names.len());
                *s = self.names.entry(s.to_lowercase()).or_insert(next).clone();
            }
            Value::String(s) if is_time(s) => *s = "<time>".to_owned(),
            // A secret's printed prefix (audit events, as detail or as actor) is random, as is
            // a console session's.
            Value::String(s) if s.starts_with(cotterd::projects::SECRET_PREFIX) => {
                *s = "<secret prefix>".to_owned()
            }
            Value::String(s) if s.starts_with("secret:") => *s = "secret:<prefix>".to_owned(),
            Value::String(s) if s.starts_with("console:") => *s = "console:<prefix>".to_owned(),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    match v {
                        // Cursors encode ids and times.
                        Value::String(s) if key.ends_with("_cursor") => *s = "<cursor>".to_owned(),
                        // An event's timestamp is the clock's when the request was made.
                        Value::String(s) if key == "timestamp" => *s = "<timestamp>".to_owned(),
                        // A lock's seconds left count down while the requests run.
                        Value::String(s) if s.contains("retry after ") => {
                            *s = s
                                .split(' ')
                                .map(|w| if w.parse::<u64>().is_ok() { "<n>" } else { w })
                                .collect::<Vec<_>>()
                                .join(" ");
                        }
                        _ => self.value(v),
                    }
                }
            }
            _ => {}
        }
    }

    fn verdict(&mut self, reply: &Reply) -> String {
        let body = match serde_json::from_str::<Value>(&reply.body) {
            Ok(mut json) => {
                self.value(&mut json);
                json.to_string()
            }
            Err(_) => format!(
                "<{} body>",
                reply
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("untyped")
            ),
        };
        format!("{} {body}", reply.status.as_u16())
    }
}

/// Spellings of `identifier` that are the same identifier once normalised: case, full width,
/// NFKC ligatures and compatibility characters, surrounding whitespace. Always seven, in the
/// same order, some equal to `identifier` when it has no letter to respell.
fn same_spellings(identifier: &str) -> [String; 7] {
    let full_width: String = identifier
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            c => c,
        })
        .collect();
    let mixed_case: String = identifier
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    [
        identifier.to_uppercase(),
        mixed_case,
        full_width,
        identifier.replace("fi", "\u{FB01}"),
        identifier.replace('@', "\u{FF20}"),
        identifier.replace('k', "\u{212A}"),
        format!("  {identifier}\t\n"),
    ]
}

/// Spellings that look like `identifier` but are other identifiers: Cyrillic and Greek
/// letters, a dotless i, a capital I for an l, a zero-width space (those that differ from it).
fn lookalike_spellings(identifier: &str) -> Vec<String> {
    vec![
        identifier.replacen('a', "\u{430}", 1),
        identifier.replacen('e', "\u{435}", 1),
        identifier.replacen('i', "\u{131}", 1),
        identifier.replacen('l', "I", 1),
        identifier.replacen('n', "\u{3B7}", 1),
        format!("{identifier}\u{200B}"),
    ]
    .into_iter()
    .filter(|s| s != identifier)
    .collect()
}
/// Prints the first few entries of a list of problems and how many there were.
fn listing(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(15).map(String::as_str).collect();
    format!("{} in all:\n  {}", problems.len(), shown.join("\n  "))
}
