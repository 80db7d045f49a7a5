//! The error shape of each API, checked in one place: Cotter's `{"msg", "type": ""}` for v0 and
//! everything outside `/v2`, Cradl's `{"error_codes": [CODES], "msg"}` under `/v2`.

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
}

impl Api {
    /// The API a request path belongs to: `/v2` and everything under it is v2.
    pub fn of_path(path: &str) -> Self {
        if path == "/v2" || path.starts_with("/v2/") {
            Api::V2
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
    if json.len() != 2 {
        return wrong();
    }
    let msg = match json.get("msg").and_then(Value::as_str) {
        Some(msg) if !msg.is_empty() => msg.to_owned(),
        _ => return wrong(),
    };
    match api {
        Api::V0 if json.get("type") == Some(&Value::from("")) => Ok((msg, Vec::new())),
        Api::V0 => wrong(),
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

/// What is wrong with an error reply's shape for a request to `path`, if anything.
pub fn shape_problem(path: &str, reply: &Reply) -> Option<String> {
    read(Api::of_path(path), &reply.body).err()
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
            Ok((_, codes)) if api == Api::V2 => {
                assert_eq!(codes, ["SERVICE_UNAVAILABLE"], "{what}: {}", self.body);
            }
            Ok(_) => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
}
