//! Reading a request's JSON body and query string, which handlers do after the key check. Each
//! rejection is an [`Error`] (400, 408, 413, 415) that the handler's API answers in its shape.

use actix_web::{web, HttpMessage, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::AppState;

fn is_json(req: &HttpRequest) -> bool {
    let content_type = req.content_type();
    content_type.eq_ignore_ascii_case("application/json")
        || content_type
            .get(content_type.len().saturating_sub(5)..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
}

/// Parses a body that must be one JSON object. Duplicate keys, unknown keys (where `T` denies
/// them), invalid UTF-8 and excessive nesting are all refused by `serde_json`.
pub fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(Error::Invalid("request body is empty".into())),
        Some(_) => return Err(Error::Invalid("request body must be a JSON object".into())),
    }
    serde_json::from_slice(body).map_err(|e| Error::Invalid(format!("invalid JSON body: {e}")))
}

/// Reads a request body that must be a JSON object of `T`'s shape: `Content-Type:
/// application/json` (or `+json`), at most `MAX_BODY_BYTES`,
/// arriving within `BODY_TIMEOUT_MS`, an object rather than an array standing in for one.
/// Handlers call it after the key check.
pub async fn read_json<T: DeserializeOwned>(req: &HttpRequest, payload: web::Payload) -> Result<T> {
    parse_object(&read_body(req, payload).await?)
}

/// Reads a JSON request body's bytes (see [`read_json`]) without parsing them: for the
/// creates, whose raw body is part of their `Idempotency-Key` fingerprint.
pub async fn read_body(req: &HttpRequest, payload: web::Payload) -> Result<web::Bytes> {
    if !is_json(req) {
        return Err(Error::UnsupportedMediaType);
    }
    let settings = &req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| Error::Internal("application state is missing".into()))?
        .settings;
    let limit = usize::try_from(settings.max_body_bytes).unwrap_or(usize::MAX);
    let timeout = std::time::Duration::from_millis(settings.body_timeout_ms);
    actix_web::rt::time::timeout(timeout, payload.to_bytes_limited(limit))
        .await
        .map_err(|_| Error::RequestTimeout)?
        .map_err(|_| Error::PayloadTooLarge(limit))?
        .map_err(|_| Error::Invalid("could not read the request body".into()))
}

/// Reads the query string into `T`; errors in the API's error shape. Handlers call it after the
/// key check.
pub fn read_query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T> {
    let query = req.query_string();
    // The decoder below would replace invalid UTF-8 with U+FFFD, making `%FF` and `%EF%BF%BD`
    // one identifier; such a query is refused instead, as such a body is.
    if percent_encoding::percent_decode_str(query)
        .decode_utf8()
        .is_err()
    {
        return Err(Error::Invalid(
            "invalid query string: not UTF-8 once percent-decoded".into(),
        ));
    }
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| Error::Invalid(format!("invalid query string: {e}")))
}

/// Any JSON value, read with duplicate object keys refused at every depth (`serde_json::Value`
/// would keep the last one silently).
#[derive(Debug, Clone, PartialEq)]
pub struct StrictJson(pub serde_json::Value);

impl<'de> serde::Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            let StrictJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}
