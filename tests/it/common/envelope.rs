//! The error shape of each API, checked in one place: Cotter's `{"msg", "type": ""}` for v0 and
//! everything outside `/v2` and `/admin`, Cradl's `{"error_codes": [CODES], "msg"}` under `/v2`,
//! RFC 9457 problem details with a `code` under `/admin`.

use actix_web::http::StatusCode;
use serde_json::Value;

use super::Reply;

/// An API, by the error shape it answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Cotter's `{"msg", "type": ""}`.
    V0,
    /// Cradl's `{"error_codes", "msg"}`.
    V2,
    /// RFC 9457 problem details with a `code` (`application/problem+json`).
    Admin,
}

impl Api {
    /// The API a request path belongs to: `/v2` and everything under it is v2.
    pub fn of_path(path: &str) -> Self {
        if path == "/v2" || path.starts_with("/v2/") {
            Api::V2
        } else if path == "/admin" || path.starts_with("/admin/") {
            Api::Admin
        } else {
            Api::V0
        }
    }
}

/// An error body read in `api`'s shape: its `msg`, and its codes (v2), or what is wrong with it.
fn read(api: Api, body: &str) -> Result<(String, Vec<String>), String> {
    let Ok(Value::Object(json)) = serde_json::from_str::<Value>(body) else {
        return Err(format!("not a JSON object: {body:?}"));
    };
    let wrong = || Err(format!("not in the {api:?} error shape: {body}"));
    if api == Api::Admin {
        return read_problem(&json).ok_or_else(|| format!("not a problem+json body: {body}"));
    }
    if json.len() != 2 {
        return wrong();
    }
    let msg = match json.get("msg").and_then(Value::as_str) {
        Some(msg) if !msg.is_empty() => msg.to_owned(),
        _ => return wrong(),
    };
    match api {
        Api::V0 if json.get("type") == Some(&Value::from("")) => Ok((msg, Vec::new())),
        Api::V0 | Api::Admin => wrong(),
        Api::V2 => {
            let codes: Vec<String> = json
                .get("error_codes")
                .and_then(Value::as_array)
                .map(|codes| {
                    codes
                        .iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let stable =
                |c: &String| !c.is_empty() && c.chars().all(|c| c.is_ascii_uppercase() || c == '_');
            let all_codes = json["error_codes"].as_array().map(Vec::len) == Some(codes.len());
            if codes.is_empty() || !all_codes || !codes.iter().all(stable) {
                return wrong();
            }
            Ok((msg, codes))
        }
    }
}

/// A problem body's `detail` and `[code]`: exactly `type` (about:blank), `title`, `status`,
/// `detail` and an UPPER_SNAKE `code`.
fn read_problem(json: &serde_json::Map<String, Value>) -> Option<(String, Vec<String>)> {
    let code = json.get("code")?.as_str()?;
    let detail = json.get("detail")?.as_str()?;
    let stable = !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    let ok = json.len() == 5
        && json.get("type")? == "about:blank"
        && !json.get("title")?.as_str()?.is_empty()
        && json.get("status")?.as_u64().is_some()
        && !detail.is_empty()
        && stable;
    ok.then(|| (detail.to_owned(), vec![code.to_owned()]))
}

/// A reply read off the wire: its status line and header lines (`head`), and its body.
pub fn reply_from_wire(head: &str, body: String) -> Reply {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value.trim()),
            ) {
                headers.append(name, value);
            }
        }
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// What is wrong with an error reply's shape for a request to `path`, if anything.
pub fn shape_problem(path: &str, reply: &Reply) -> Option<String> {
    let api = Api::of_path(path);
    if api == Api::Admin {
        let media = reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if media != "application/problem+json" {
            return Some(format!(
                "admin error with Content-Type {media:?}: {}",
                reply.body
            ));
        }
        let status = serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|json| json.get("status").and_then(Value::as_u64));
        if status != Some(u64::from(reply.status.as_u16())) {
            return Some(format!(
                "problem status is not the HTTP status: {}",
                reply.body
            ));
        }
    }
    read(api, &reply.body).err()
}

impl Reply {
    /// Asserts an error in Cotter's shape with this status, and returns its `msg`.
    pub fn assert_error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        read(Api::V0, &self.body)
            .unwrap_or_else(|e| panic!("{e}"))
            .0
    }

    /// Asserts a v2 error with this status, and returns its codes.
    pub fn assert_v2_error(&self, status: StatusCode) -> Vec<String> {
        assert_eq!(self.status, status, "{}", self.body);
        read(Api::V2, &self.body)
            .unwrap_or_else(|e| panic!("{e}"))
            .1
    }

    /// Asserts an admin problem with this status (and its `status` member, and the media type),
    /// and returns its `code`.
    pub fn assert_problem(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        if let Some(problem) = shape_problem("/admin/", self) {
            panic!("{problem}");
        }
        read(Api::Admin, &self.body)
            .unwrap_or_else(|e| panic!("{e}"))
            .1
            .remove(0)
    }

    /// Asserts a 503 with `Retry-After: 1` in `api`'s error shape (`SERVICE_UNAVAILABLE` in v2).
    pub fn assert_unavailable(&self, api: Api, what: &str) {
        assert_eq!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {}",
            self.body
        );
        assert_eq!(
            self.headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "{what}: Retry-After"
        );
        match read(api, &self.body) {
            Ok((_, codes)) if api != Api::V0 => {
                assert_eq!(codes, ["SERVICE_UNAVAILABLE"], "{what}: {}", self.body);
            }
            Ok(_) => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
}
