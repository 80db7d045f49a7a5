//! `Idempotency-Key` on the routes that create: a retry of a create whose answer was lost gets
//! that answer again (`Idempotent-Replayed: true`) instead of a 409 for the row it made.
//! `crate::idempotency` keeps the answers; this wraps a handler's work with them.

use std::future::Future;

use actix_web::body;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::auth::Project;
use crate::error::Error;
use crate::idempotency::{self, Answer, Claim, Key};
use crate::{db, time, AppState};

/// Whether an answer is kept for replay: a success, or a refusal the data decided (404 for a
/// missing user, 409 for a taken identifier or a missing KYC reference). A request refused for
/// what it sent (400) created nothing, and neither did a busy or failing server (5xx): the key
/// is released, so that the corrected request, or the same one later, runs.
fn keeps(status: StatusCode) -> bool {
    status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT
}

/// The id a created resource's answer names (`ID` in v0, `id` elsewhere), if any.
fn resource_id(answer: &Answer) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
    let id = json.get("ID").or_else(|| json.get("id"))?.as_str()?;
    Some(id.to_owned())
}

/// What of a v2 sign-up body goes into its fingerprint: the JSON object without
/// `login.password` (nor a top-level `password`), in serde_json's form (spacing and key order
/// do not matter), or a constant for a body that is not JSON (it is refused whatever it holds). A fingerprint is a fast hash, and a fast hash of a
/// password must not be stored: two retries that differ only in the password count as the same
/// request.
pub fn without_password(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut object)) => {
            object.remove("password");
            if let Some(serde_json::Value::Object(login)) = object.get_mut("login") {
                login.remove("password");
            }
            serde_json::to_vec(&object).unwrap_or_default()
        }
        Ok(other) => serde_json::to_vec(&other).unwrap_or_default(),
        Err(_) => b"not JSON".to_vec(),
    }
}

/// The stored answer, sent again.
fn replay(answer: Answer) -> HttpResponse {
    let mut response = HttpResponse::build(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    if let Some(content_type) = answer.content_type {
        response.insert_header((CONTENT_TYPE, content_type));
    }
    response.insert_header((idempotency::REPLAYED_HEADER, "true"));
    response.body(answer.body)
}

/// Runs `work` (the create, with the body already read; `body` is what of it identifies the
/// request) once per `Idempotency-Key`: without the header it just runs; with one, the first request runs and its answer is kept, a retry with
/// the same method, path and body gets that answer, another request with the key gets 422, and
/// a retry while the first still runs 409 with `Retry-After`. Errors are answered in `E`'s
/// envelope, and those a retry may fix are not kept.
pub async fn once<E, F>(
    req: &HttpRequest,
    state: &AppState,
    project: &Project,
    body: &[u8],
    work: F,
) -> Result<HttpResponse, E>
where
    E: From<Error> + ResponseError,
    F: Future<Output = Result<HttpResponse, E>>,
{
    let Some(raw) = req.headers().get(idempotency::HEADER) else {
        return work.await;
    };
    // Keys are scoped by the kind of caller too: one that holds only the public key id (an app)
    // cannot take, and so block, the keys of the project's servers.
    let key = Key::parse(raw.as_bytes())?.for_caller(project.sent_secret());
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let fingerprint = idempotency::fingerprint(req.method().as_str(), path, body);
    let ttl =
        std::time::Duration::from_secs(u64::from(state.settings.idempotency_ttl_hours) * 3600);
    let (claimer, claimed) = (project.clone(), key.clone());
    let claim = db::run(&state.pool, move |conn| {
        idempotency::claim(conn, claimer.id(), &claimed, &fingerprint, time::now(), ttl)
    })
    .await?;
    let started = match claim {
        Claim::Replay(answer) => return Ok(replay(answer)),
        Claim::Run(started) => started,
    };

    let response = match work.await {
        Ok(response) => response,
        Err(err) => err.error_response(),
    };
    let project = project.clone();
    if !keeps(response.status()) {
        db::run(&state.pool, move |conn| {
            idempotency::release(conn, project.id(), &key, started)
        })
        .await?;
        return Ok(response);
    }
    let (response, body) = response.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|_| Error::Internal("an answer's body could not be read".into()))?;
    let answer = Answer {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: bytes.to_vec(),
    };
    let resource = resource_id(&answer).filter(|_| response.status().is_success());
    let stored = db::run(&state.pool, move |conn| {
        idempotency::complete(
            conn,
            project.id(),
            &key,
            started,
            &answer,
            resource.as_deref(),
        )
    })
    .await;
    // The work is done and its answer is the client's: when it cannot be kept, the claim
    // lapses after its lease and a retry runs anew.
    if let Err(err) = stored {
        log::warn!("an idempotent answer could not be stored: {err:?}");
    }
    Ok(response.set_body(bytes).map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_sign_up_fingerprint_leaves_the_password_out() {
        let one = br#"{"login": {"email": "a@x.io", "password": "one secret"}, "first_name": "A"}"#;
        let two = br#"{"first_name":"A","login":{"password":"two secret","email":"a@x.io"}}"#;
        assert_eq!(without_password(one), without_password(two));
        let printed = String::from_utf8(without_password(one)).unwrap();
        assert!(!printed.contains("secret"), "{printed}");
        let other =
            br#"{"login": {"email": "b@x.io", "password": "one secret"}, "first_name": "A"}"#;
        assert_ne!(without_password(one), without_password(other));
        assert_eq!(without_password(b"not json"), without_password(b"{"));
    }
}
