//! `POST /api/v0/event/create`: a login approved with a PIN, or with a signature of a device
//! key enrolled as TRUSTED_DEVICE or BIOMETRIC. Every checked event is stored, and readable in
//! the admin API (`GET /admin/v1/users/{id}/events`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};

use super::methods::{check_pin, TokenQuery};
use super::{AppWrite, V0BodyErrors, V0KeyErrors};
use crate::api::request::{parse_object, read_body, read_query};
use crate::auth::{Caller, Project};
use crate::error::{CotterError, CotterErrorBody, Error};
use crate::events::{self, NewEvent};
use crate::methods::keys::{Algorithm, DeviceKey};
use crate::methods::{self, Device, Method};
use crate::users::{self, User};
use crate::{db, time, AppState};

type Result<T, E = CotterError> = std::result::Result<T, E>;

/// The event that enrolls a new device's key, approved by a device already trusted.
pub const ENROLL_NEW_TRUSTED_DEVICE: &str = "ENROLL_NEW_TRUSTED_DEVICE";
/// Longest `event`, `ip` and `location` kept, in characters.
const MAX_EVENT_CHARS: usize = 100;
const MAX_IP_CHARS: usize = 100;
const MAX_LOCATION_CHARS: usize = 200;
/// Longest `code` (a PIN or a base64 signature) and `public_key`, in characters.
const MAX_CODE_CHARS: usize = 4096;

/// Body of `POST /api/v0/event/create`, as every SDK sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// The user: its `client_user_id` or `ID` (Flutter sends `user_id` instead).
    #[serde(default)]
    pub client_user_id: Option<String>,
    /// The user, as Flutter names it.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The project's `API_KEY_ID`; when sent, it must be the caller's.
    #[serde(default)]
    pub issuer: Option<String>,
    /// What is approved, such as `LOGIN_OR_UPDATE_NAME` or `ENROLL_NEW_TRUSTED_DEVICE`.
    #[schema(max_length = 100)]
    pub event: String,
    /// The device's IP address, as the app saw it.
    #[serde(default)]
    pub ip: Option<String>,
    /// The device's location, as the app saw it.
    #[serde(default)]
    pub location: Option<String>,
    /// Unix seconds, as a string (a number is accepted too); signed approvals must be within
    /// `EVENT_MAX_SKEW_SECS` of the server's clock.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub timestamp: String,
    /// `PIN`, `BIOMETRIC` or `TRUSTED_DEVICE`.
    pub method: String,
    /// The PIN, or the signature (base64) of
    /// `userID + API_KEY_ID + event + timestamp + method + approved` (+ the new key for
    /// `ENROLL_NEW_TRUSTED_DEVICE`).
    #[schema(max_length = 4096)]
    pub code: String,
    /// The device's decision (signed approvals); ignored for a PIN, whose check decides.
    #[serde(default)]
    pub approved: Option<bool>,
    /// The signing device's key; for `ENROLL_NEW_TRUSTED_DEVICE`, the new device's key.
    #[schema(max_length = 4096)]
    #[serde(default)]
    pub public_key: Option<String>,
    /// The algorithm of `public_key`: `EC`, `RSA` or `ED25519`.
    #[serde(default)]
    pub algorithm: Option<String>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(u64),
    }
    Ok(match Either::deserialize(d)? {
        Either::Text(text) => text,
        Either::Number(n) => n.to_string(),
    })
}

/// An Event, as Cotter's SDKs decode it (`CotterEvent` in the document: the admin audit trail
/// has an `EventJson` of its own).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CotterEvent)]
pub struct EventJson {
    /// The event's id (an integer).
    #[serde(rename = "ID")]
    pub id: i64,
    /// The user, as the app named it.
    pub client_user_id: String,
    /// The project's `API_KEY_ID`.
    pub issuer: String,
    pub event: String,
    pub ip: String,
    pub location: String,
    /// As sent.
    pub timestamp: String,
    pub method: String,
    /// Always false: the event is decided when it is created (no approval is pending).
    pub new: bool,
    /// Whether the login is approved: the PIN matched, or an enrolled key signed an approval.
    pub approved: bool,
}

impl From<events::Event> for EventJson {
    fn from(event: events::Event) -> Self {
        EventJson {
            id: event.id,
            client_user_id: event.data.client_user_id,
            issuer: event.data.issuer,
            event: event.data.event,
            ip: event.data.ip,
            location: event.data.location,
            timestamp: event.data.client_timestamp,
            method: event.data.method,
            new: false,
            approved: event.data.approved,
        }
    }
}

/// Checks a free-text field: at most `max` characters, no control characters.
fn text(field: &str, value: Option<String>, max: usize) -> Result<String, Error> {
    let value = value.unwrap_or_default();
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{field} must be at most {max} characters, without control characters"
        )));
    }
    Ok(value)
}

/// The unix seconds of a signed approval, refused when not within `max_skew` of `now`.
fn fresh_timestamp(raw: &str, now: i64, max_skew: u64) -> Result<(), Error> {
    let secs: i64 = raw
        .parse()
        .ok()
        .filter(|_| !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| Error::Invalid("timestamp must be unix seconds (digits)".into()))?;
    if secs.abs_diff(now) > max_skew {
        return Err(Error::Invalid(format!(
            "timestamp is more than {max_skew} s away from the server's clock"
        )));
    }
    Ok(())
}

/// A signed approval's check: which enrolled key signed which candidate message.
struct Signed {
    key_hash: String,
    message: Vec<u8>,
}

/// Tries every candidate key against every candidate message (the user named by either id:
/// the SDKs differ); the first that verifies.
fn find_signer(keys: &[DeviceKey], messages: &[Vec<u8>], signature: &str) -> Option<Signed> {
    keys.iter().find_map(|key| {
        messages
            .iter()
            .find(|message| key.verifies(message, signature))
            .map(|message| Signed {
                key_hash: key.hash(),
                message: message.clone(),
            })
    })
}

/// `POST /api/v0/event/create`: approves a login with a PIN or a device's signature.
///
/// 200 with the Event: `approved` says whether the PIN matched or an enrolled key signed the
/// approval (a wrong PIN or signature is `approved: false`, and a failed PIN check counts toward
/// the lock). 400 for an invalid body, a stale `timestamp` or another project's `issuer`; 404 for
/// no such user; 409 for a disabled user or a signed approval sent again (a replay); 429 while
/// the PIN is locked after failed checks. `oauth_token=true` is accepted and changes nothing.
#[utoipa::path(
    post,
    path = "/api/v0/event/create",
    operation_id = "v0_create_event",
    tag = "v0",
    request_body = EventBody,
    params(TokenQuery),
    security(("api_key_id" = [])),
    responses(
        (status = 200, description = "The event, approved or not", body = EventJson),
        (status = 400, description = "Invalid body, stale timestamp or another issuer", body = CotterErrorBody),
        (status = 404, description = "No such user in this project", body = CotterErrorBody),
        (status = 409, description = "The user is disabled, or the signed approval was used before", body = CotterErrorBody),
        V0KeyErrors, V0BodyErrors,
    )
)]
pub(crate) async fn create_event(
    caller: Caller<AppWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    read_query::<TokenQuery>(&req)?.check()?;
    let body: EventBody = parse_object(&read_body(&req, payload).await?)?;
    let project = caller.into_project();
    // The key id as the app spelled it (any case of the UUID passes the key check): the app
    // signs with its own spelling.
    let sent_key_id = req
        .headers()
        .get("API_KEY_ID")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let event = decide(&state, &project, body, sent_key_id).await?;
    Ok(HttpResponse::Ok().json(EventJson::from(event)))
}

async fn decide(
    state: &AppState,
    project: &Project,
    body: EventBody,
    sent_key_id: Option<String>,
) -> Result<events::Event, Error> {
    let named = body
        .client_user_id
        .clone()
        .filter(|id| !id.is_empty())
        .or_else(|| body.user_id.clone().filter(|id| !id.is_empty()))
        .ok_or_else(|| Error::Invalid("client_user_id (or user_id) is required".into()))?;
    if let Some(issuer) = body.issuer.as_deref().filter(|i| !i.is_empty()) {
        let same = crate::ids::parse_uuid(issuer)
            .is_some_and(|issuer| issuer.to_string() == project.id().as_str());
        if !same {
            return Err(Error::Invalid(
                "issuer must be the API_KEY_ID the request is sent with".into(),
            ));
        }
    }
    let method = Method::parse(&body.method)?;
    let event_name = text("event", Some(body.event.clone()), MAX_EVENT_CHARS)?;
    if event_name.is_empty() {
        return Err(Error::Invalid("event is required".into()));
    }
    let ip = text("ip", body.ip.clone(), MAX_IP_CHARS)?;
    let location = text("location", body.location.clone(), MAX_LOCATION_CHARS)?;
    if body.code.len() > MAX_CODE_CHARS
        || body
            .public_key
            .as_ref()
            .is_some_and(|k| k.len() > MAX_CODE_CHARS)
    {
        return Err(Error::Invalid(format!(
            "code and public_key must be at most {MAX_CODE_CHARS} characters"
        )));
    }
    let timestamp = text("timestamp", Some(body.timestamp.clone()), 20)?;

    let (finder, id) = (project.clone(), named.clone());
    let user: User = db::run(&state.pool, move |conn| {
        users::find_by_any_id(conn, finder.id(), &id)
    })
    .await?;
    if user.disabled_at.is_some() {
        return Err(Error::UserDisabled);
    }
    let now = time::now();
    let mut new = NewEvent {
        issuer: project.id().as_str().to_owned(),
        user_id: user.id.clone(),
        client_user_id: named.clone(),
        event: event_name.clone(),
        method: method.as_str().to_owned(),
        ip,
        location,
        client_timestamp: timestamp.clone(),
        approved: false,
        created_at: now,
    };
    let recorder = project.clone();

    if method == Method::Pin {
        new.approved = check_pin(state, project, &user.id, &body.code).await?;
        return db::run(&state.pool, move |conn| {
            events::record(conn, recorder.id(), new, None, |_| Ok(()))
        })
        .await;
    }

    let approved = body
        .approved
        .ok_or_else(|| Error::Invalid("approved is required for a signed approval".into()))?;
    fresh_timestamp(
        &timestamp,
        now.and_utc().timestamp(),
        state.settings.event_max_skew_secs,
    )?;
    let algorithm = body
        .algorithm
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(Algorithm::parse)
        .transpose()?;
    let sent_key = body.public_key.clone().filter(|k| !k.trim().is_empty());
    let enrolling = event_name == ENROLL_NEW_TRUSTED_DEVICE;
    // For an enrollment the sent key is the new device's, and any trusted device may sign;
    // otherwise it names the signing device's key, or any of the user's keys may have signed.
    let (new_key, signer_hash) = match (&sent_key, enrolling) {
        (Some(key), true) => (Some(DeviceKey::parse(key, algorithm)?), None),
        (None, true) => {
            return Err(Error::Invalid(
                "public_key (the new device's key) is required to enroll a new trusted device"
                    .into(),
            ))
        }
        (Some(key), false) => (None, Some(DeviceKey::parse(key, algorithm)?.hash())),
        (None, false) => (None, None),
    };
    if enrolling && method != Method::TrustedDevice {
        return Err(Error::Invalid(
            "ENROLL_NEW_TRUSTED_DEVICE is approved with the TRUSTED_DEVICE method".into(),
        ));
    }

    let key_ids = [Some(project.id().as_str()), sent_key_id.as_deref()];
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for user_ref in [
        named.as_str(),
        user.client_user_id.as_str(),
        user.id.as_str(),
    ] {
        for key_id in key_ids.into_iter().flatten() {
            let mut message = format!(
                "{user_ref}{key_id}{event_name}{timestamp}{}{approved}",
                method.as_str()
            );
            if enrolling {
                message.push_str(sent_key.as_deref().unwrap_or(""));
            }
            let message = message.into_bytes();
            if !messages.contains(&message) {
                messages.push(message);
            }
        }
    }
    let (reader, user_id) = (project.clone(), user.id.clone());
    let candidates = db::run(&state.pool, move |conn| {
        methods::keys(conn, reader.id(), &user_id, method, signer_hash.as_deref())
    })
    .await?;
    let signature = body.code.clone();
    let signed = web::block(move || find_signer(&candidates, &messages, &signature))
        .await
        .map_err(|e| Error::Internal(format!("signature check failed: {e}")))?;

    let Some(signed) = signed else {
        return db::run(&state.pool, move |conn| {
            events::record(conn, recorder.id(), new, None, |_| Ok(()))
        })
        .await;
    };
    new.approved = approved;
    let replay = events::replay_name(&signed.key_hash, &signed.message);
    let user_id = user.id.clone();
    db::run(&state.pool, move |conn| {
        events::record(
            conn,
            recorder.id(),
            new,
            Some(replay),
            |conn| match new_key {
                Some(key) if approved => methods::enroll_key(
                    conn,
                    recorder.id(),
                    &user_id,
                    Method::TrustedDevice,
                    &key,
                    &Device::default(),
                    now,
                )
                .map(|_| ()),
                _ => Ok(()),
            },
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::fresh_timestamp;

    #[test]
    fn timestamps_must_be_fresh_unix_seconds() {
        let now = 1_700_000_000;
        assert!(fresh_timestamp("1700000000", now, 300).is_ok());
        assert!(fresh_timestamp("1700000300", now, 300).is_ok());
        assert!(fresh_timestamp("1699999700", now, 300).is_ok());
        for bad in [
            "1700000301",
            "1699999699",
            "",
            "-5",
            "17e8",
            " 1700000000",
            "99999999999999999999",
        ] {
            assert!(fresh_timestamp(bad, now, 300).is_err(), "{bad}");
        }
    }
}
