//! What Cotter's client SDKs call (`../shared/cotter-sdk.md`), through the real app, on SQLite
//! and on PostgreSQL: the create bodies (`client_user_id`, `identifiers`), enrolling, changing
//! and removing a PIN or a device key of each SDK, the enrollment checks in every base64
//! alphabet, login events (PIN checks and their locks, signed approvals by P-256, Ed25519 and
//! RSA keys, stale timestamps, replays, a trusted device enrolling another), a user's events in
//! the admin API, the v2 password check, and the migration that brought them.
//!
//! Device keys and signatures are made here with the crates the server checks them with.

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::test::init_service;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::common::req::{call, Req};
use crate::common::{
    test_settings, url_encode, v2_user, Backend, Keys, Reply, TestApp, TestDb, PASSWORD,
};
use cotterd::db::schema::{credential_attempts, user_identifiers, user_methods, users};
use cotterd::db::{ConnectionManager, DbConn, PG_MIGRATIONS, SQLITE_MIGRATIONS};

// ---------------------------------------------------------------------------------------------
// Device keys
// ---------------------------------------------------------------------------------------------

/// A fixed RSA-2048 key (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`): made
/// once, as generating one in a debug test is slow.
const RSA_2048: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCwsodSXoLu0qMN
EtPh7esgU9DZeBLAaKdeu+ylzAJxJna0hhYfD/d2w4uV53SqK7MiM7xH/bJ+hGjc
Nbi99CDfb6T19PjOgAwR7imKkqMmq/B1oylcPHv16wgBV0iIozST+1h2I5HBUq7h
5bPvQ8xEmLCnOKVg0wULz+BGYWugXBP3qPPpt/gJcq0kTN1gcstM3B6Aofvd96bP
J9dW1aGb4+QF3KZqnQA9g9AVfdKfGTruoPF67rWGvIZhE8O4v30pOUHRtkXeTWaX
S+Pr/Raqy9aU9Pd1o9QN9BpTuMrLUI7RKGSGrxYZDtK57wbzeVPxkQjhM63zDSqw
q/qcsWKxAgMBAAECggEADnlpZWFxl0+w5JrEuY6sQpcrFg1kd9d60mNRhNlb39n3
Ql1zhXLg4h0tm4d8wo3W3DfhtgH9s6h0EInkCsdrQ/JY0H8TPJM3qeZZB81wSPQv
u+s0MaaQvvnUS4vTWMIJxg+CVRcf0vbLdZzD6xciLgJWAjS9M1vF34xVQl6rmtSd
NyCk/ZBDcBmNDQziV2qee29/YcFMefDpbOyeB3suuT0NBo2qeWsvpSAFx3b017+O
ojaYCHgPt63C3/wROULBh2TUyZ0frs98JkaJjS3gksqw5eRllwP74bXgFVRwmbz4
anetb2uW0XoLdAT4J2qz6W5qYv7QyFiAG1AKc2ZH8wKBgQDgWVNanwNt/HjtbhPD
L4y2oK2XItO/Bz8O5huF7gFTLBLJycpbsSbjzix8EEFe87ZjF5RzG8QftxYKLn5J
O/sSwP+y36gGarOMD1NLrtrfkKvWeakrwpQhVZf5esYs1EteS1TTR9ACq9XM2efk
NxaKrTL5tZFTG4+SuJpVh9/ulwKBgQDJoDNnEalC9UCmbwH7olIeBC+6yIRu5a0D
HYYoKCI9G1pB53G7th2goNrHLoVG4gneEu5YOGS6ls9llTlpWkSIcR/3Z0Vhz+mJ
w2DeEGJXHWcXLrbBWxoNAOa2YS8uWS15/D/FRBFlib7IyW25EfDNUF5aoxnLQLgb
KTOuBnQp9wKBgHRUHPJ6TU70gMesMjcdKrtvqVMazezZlwrkqhTSCoHT8pILPhA5
VU7+Evbpftv7RvEuwtzE4vcG+jihTv4uScu5o1xeuENLhHn1YF139ynBXDjDsMJu
DF0Ugs7rqGKKWeI08XD0ZZlc/GlR+/nLzrZthGcSjJ4pRlLvwabj42tVAoGAI+AS
ZVt6H4Td7P9BfhGixN5/059MGSNaxnwhW9HQTckpJSLWVM0RtnwIkXpQko0zrkT2
DdJy8dRVsMB9h6ZdHV3rjyzb5oyFBFM0UC7gIJoFttVEBWF9YCTx6C+gooGRmuvs
OOBkrAl3XeihUlXD3/RV5ZCxzT2FxKdvH57cWn8CgYARtViMwqJiH7KjyEKN5yQy
mjD4ux/owqrk5I/2A/RwcVB63LhEsZN6ilmK3NG14eK6FK+qm0hToyOsiqzmVo8L
rz+YegRsR/lZvhdzHRMGIUsCcRihrZRNLwnpdSFb07Jj48zVm9GRLpJ5IDtvrp/b
rFc80M+46KDCsawv6DwQhQ==
-----END PRIVATE KEY-----";

/// The SubjectPublicKeyInfo of an RSA-1024 key, too small to enroll.
const RSA_1024_PUBLIC: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC8lpV7gpTk2Gvm6GmDseZPf2oZ\
8lb+ateffFedACtEcdvdbvwVseLcG7FivcMdpdKZZvPuZ0sQs5JvWeDHKqbi0CPj\
QOS1xabUYgoALEtwSwmGp7pvU5GNgAUJ4ZALS4MaivLXj9hzw9dhkB29XgzuypvO\
pgYlHWEhnRWT0Te4NQIDAQAB";

/// A device's signing key, of one of the kinds the SDKs make.
enum Device {
    /// iOS and Android: ECDSA P-256, SHA-256, DER signatures.
    Ec(p256::ecdsa::SigningKey),
    /// React Native and Flutter.
    Ed(ed25519_dalek::SigningKey),
    /// Android before API 23: `SHA256withRSA` (PKCS#1 v1.5).
    Rsa(
        Box<rsa::pkcs1v15::SigningKey<Sha256>>,
        Box<rsa::RsaPublicKey>,
    ),
}

impl Device {
    fn ec(seed: u8) -> Self {
        Device::Ec(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("a P-256 scalar"))
    }

    fn ed(seed: u8) -> Self {
        Device::Ed(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn rsa() -> Self {
        use rsa::pkcs8::DecodePrivateKey;
        let der: String = RSA_2048
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&STANDARD.decode(der).unwrap())
            .expect("the test RSA key");
        let public = rsa::RsaPublicKey::from(&key);
        Device::Rsa(
            Box::new(rsa::pkcs1v15::SigningKey::new(key)),
            Box::new(public),
        )
    }

    /// The `algorithm` an SDK names the key by.
    fn algorithm(&self) -> &'static str {
        match self {
            Device::Ec(_) => "EC",
            Device::Ed(_) => "ED25519",
            Device::Rsa(..) => "RSA",
        }
    }

    /// The public key's bytes: SubjectPublicKeyInfo DER (EC, RSA), the raw 32 bytes (Ed25519).
    fn public_bytes(&self) -> Vec<u8> {
        use p256::pkcs8::EncodePublicKey;
        match self {
            Device::Ec(key) => p256::PublicKey::from(key.verifying_key())
                .to_public_key_der()
                .unwrap()
                .into_vec(),
            Device::Ed(key) => key.verifying_key().to_bytes().to_vec(),
            Device::Rsa(_, public) => public.to_public_key_der().unwrap().into_vec(),
        }
    }

    /// The key string as React Native and Flutter send it: standard base64, one line.
    fn plain(&self) -> String {
        STANDARD.encode(self.public_bytes())
    }

    /// As iOS sends it: base64 in 64-character lines, each ended by `\n`.
    fn ios(&self) -> String {
        lines(&self.plain(), 64)
    }

    /// As Android sends it: base64 in 76-character lines, each ended by `\n`.
    fn android(&self) -> String {
        lines(&self.plain(), 76)
    }

    /// The signature of `message`, base64, as the SDK sends it.
    fn sign(&self, message: &str) -> String {
        match self {
            Device::Ec(key) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = key.sign(message.as_bytes());
                STANDARD.encode(sig.to_der().as_bytes())
            }
            Device::Ed(key) => {
                use ed25519_dalek::Signer;
                STANDARD.encode(key.sign(message.as_bytes()).to_bytes())
            }
            Device::Rsa(key, _) => {
                use rsa::signature::{SignatureEncoding, Signer};
                STANDARD.encode(key.sign(message.as_bytes()).to_vec())
            }
        }
    }
}

/// `b64` cut into lines of `width`, each ended by `\n`.
fn lines(b64: &str, width: usize) -> String {
    b64.as_bytes()
        .chunks(width)
        .map(|chunk| format!("{}\n", std::str::from_utf8(chunk).unwrap()))
        .collect()
}

/// An Ed25519 device whose key string holds a `+` and a `/`. (Base64 of a base64 string never
/// holds either, as every byte it encodes is a base64 character or a line break: only a key
/// string sent as it is, not double-encoded, puts them in a path or a query.)
fn awkward_device() -> Device {
    (1u8..=255)
        .map(Device::ed)
        .find(|device| {
            let key = device.plain();
            key.contains('+') && key.contains('/')
        })
        .expect("some seed gives a key with + and /")
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

const LOGIN: &str = "LOGIN_OR_UPDATE_NAME";
const ENROLL_NEW: &str = "ENROLL_NEW_TRUSTED_DEVICE";

fn create(keys: &Keys, body: Value) -> Req {
    Req::post("/api/v0/user/create")
        .key_id(&keys.id)
        .json(&body)
}

fn put_user(keys: &Keys, id: &str, body: &Value) -> Req {
    Req::new(Method::PUT, format!("/api/v0/user/{}", url_encode(id)))
        .key_id(&keys.id)
        .json(body)
}

fn put_by_cotter_id(keys: &Keys, id: &str, body: &Value) -> Req {
    Req::new(
        Method::PUT,
        format!("/api/v0/user/methods?cotter_user_id={}", url_encode(id)),
    )
    .key_id(&keys.id)
    .json(body)
}

fn get(keys: &Keys, uri: &str) -> Req {
    Req::get(uri).key_id(&keys.id)
}

fn event(keys: &Keys, body: &Value) -> Req {
    Req::post("/api/v0/event/create")
        .key_id(&keys.id)
        .json(body)
}

/// An admin call (both keys, no body).
fn admin(keys: &Keys, method: Method, uri: &str) -> Req {
    Req::new(method, uri).keys(keys)
}

fn verify(keys: &Keys, email: &str, password: &str) -> Req {
    Req::post("/v2/users/verify")
        .keys(keys)
        .json(&json!({"email": email, "password": password}))
}

fn pin(code: &str) -> Value {
    json!({"method": "PIN", "enrolled": true, "code": code})
}

fn key_body(method: &str, enrolled: bool, code: &str) -> Value {
    json!({"method": method, "enrolled": enrolled, "code": code})
}

/// A PIN login event, as the reference shows it.
fn pin_event(keys: &Keys, user: &str, code: &str) -> Value {
    json!({
        "client_user_id": user, "issuer": keys.id, "event": LOGIN, "ip": "1.2.3.4",
        "location": "unknown", "timestamp": "1591234567", "method": "PIN", "code": code,
        "approved": true, "public_key": "", "algorithm": "",
    })
}

/// What a device signs: `userID + API_KEY_ID + event + timestamp + method + approved`.
fn message(user: &str, keys: &Keys, event: &str, ts: &str, method: &str, approved: bool) -> String {
    format!("{user}{}{event}{ts}{method}{approved}", keys.id)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A login approval signed by `device` (enrolled with the key string `key`) at `ts`.
fn signed_event(
    keys: &Keys,
    user: &str,
    device: &Device,
    key: &str,
    method: &str,
    ts: i64,
) -> Value {
    let ts = ts.to_string();
    json!({
        "client_user_id": user, "issuer": keys.id, "event": LOGIN, "ip": "1.2.3.4",
        "location": "unknown", "timestamp": ts, "method": method,
        "code": device.sign(&message(user, keys, LOGIN, &ts, method, true)),
        "approved": true, "public_key": key, "algorithm": device.algorithm(),
    })
}

/// Sends `req` and asserts a 200; its JSON.
async fn ok<S, B>(svc: &S, req: Req) -> Value
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    crate::common::req::call_ok(svc, &req).await
}

/// Whether the enrollment check at `uri` says enrolled (asserting its exact shape).
async fn is_enrolled<S, B>(svc: &S, keys: &Keys, uri: &str, method: &str) -> bool
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let answer = ok(svc, get(keys, uri)).await;
    assert_eq!(answer.as_object().unwrap().len(), 2, "{uri}: {answer}");
    assert_eq!(answer["method"], method, "{uri}");
    answer["enrolled"].as_bool().expect("enrolled is a bool")
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

/// The `Retry-After` of a reply, in seconds.
fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {}", reply.body))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/// A `user_methods` row, the columns a test reads.
#[derive(Debug, Queryable)]
struct MethodRow {
    method: String,
    key_hash: String,
    algorithm: Option<String>,
    public_key: Option<String>,
    pin_hash: Option<String>,
    device_name: Option<String>,
    device_type: Option<String>,
}

fn method_rows(app: &TestApp, user_id: &str) -> Vec<MethodRow> {
    let mut conn = app.state.pool.get().unwrap();
    user_methods::table
        .filter(user_methods::user_id.eq(user_id))
        .select((
            user_methods::method,
            user_methods::key_hash,
            user_methods::algorithm,
            user_methods::public_key,
            user_methods::pin_hash,
            user_methods::device_name,
            user_methods::device_type,
        ))
        .order((user_methods::created_at, user_methods::id))
        .load(conn.conn())
        .unwrap()
}

/// The normalised identifiers stored for a user, sorted.
fn identifier_rows(app: &TestApp, user_id: &str) -> Vec<String> {
    let mut conn = app.state.pool.get().unwrap();
    user_identifiers::table
        .filter(user_identifiers::user_id.eq(user_id))
        .select(user_identifiers::identifier_normalized)
        .order(user_identifiers::identifier_normalized)
        .load(conn.conn())
        .unwrap()
}

fn count_identifier_rows(app: &TestApp) -> i64 {
    let mut conn = app.state.pool.get().unwrap();
    user_identifiers::table
        .count()
        .get_result(conn.conn())
        .unwrap()
}

/// The failures counted against a user's credential (`PIN`, `PASSWORD`), if a row exists.
fn failures(app: &TestApp, user_id: &str, credential: &str) -> Option<i32> {
    let mut conn = app.state.pool.get().unwrap();
    credential_attempts::table
        .filter(credential_attempts::user_id.eq(user_id))
        .filter(credential_attempts::credential.eq(credential))
        .select(credential_attempts::failures)
        .first(conn.conn())
        .optional()
        .unwrap()
}

/// Ends a user's lock now, as if its time had passed.
fn expire_lock(app: &TestApp, user_id: &str) {
    let past = cotterd::time::now() - chrono::Duration::seconds(1);
    let mut conn = app.state.pool.get().unwrap();
    let changed =
        diesel::update(credential_attempts::table.filter(credential_attempts::user_id.eq(user_id)))
            .set(credential_attempts::locked_until.eq(Some(past)))
            .execute(conn.conn())
            .unwrap();
    assert_eq!(changed, 1, "one locked credential");
}

// ---------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------

/// Each create body of the SDKs makes its user: the app's id or the user's own as
/// `client_user_id`, every identifier finding the user, both ids naming it in a path.
async fn create_takes_every_sdk_body(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let plain = ok(&svc, create(&keys, json!({"identifier": "plain@x.io"}))).await;
    assert_eq!(plain["client_user_id"], plain["ID"]);
    assert_eq!(plain["identifiers"], Value::Null);
    // iOS: "" is no app id.
    let ios = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "", "identifier": "ios@x.io"}),
        ),
    )
    .await;
    assert_eq!(ios["client_user_id"], ios["ID"]);
    assert_eq!(ios["identifier"], "ios@x.io");
    let app42 = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-42", "identifier": "Ada@X.io"}),
        ),
    )
    .await;
    assert_eq!(app42["client_user_id"], "app-42");
    let id = text(&app42["ID"]);
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().to_string(), id);
    assert_eq!(app42["identifiers"], Value::Null);
    // iOS with the app's id alone: that id is the identifier too.
    let only_id = ok(
        &svc,
        create(&keys, json!({"client_user_id": "app-9", "identifier": ""})),
    )
    .await;
    assert_eq!(only_id["client_user_id"], "app-9");
    assert_eq!(only_id["identifier"], "app-9");
    // React Native: the first identifier is the primary one.
    let rn = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-7", "identifiers": ["a@x.io", "b@x.io"]}),
        ),
    )
    .await;
    assert_eq!(rn["client_user_id"], "app-7");
    assert_eq!(rn["identifier"], "a@x.io");
    assert_eq!(rn["identifiers"], json!(["a@x.io", "b@x.io"]));
    // A primary identifier that is also in the list is listed once, as first given.
    let both = ok(
        &svc,
        create(
            &keys,
            json!({"identifier": "C@x.io", "identifiers": ["c@x.io", "d@x.io"]}),
        ),
    )
    .await;
    assert_eq!(both["identifier"], "C@x.io");
    assert_eq!(both["identifiers"], json!(["C@x.io", "d@x.io"]));

    for (identifier, user) in [
        ("plain@x.io", &plain),
        ("ios@x.io", &ios),
        ("ada@x.io", &app42),
        ("a@x.io", &rn),
        ("B@X.IO", &rn),
        ("D@x.io", &both),
        ("app-9", &only_id),
    ] {
        let uri = format!("/api/v0/user?identifier={}", url_encode(identifier));
        assert_eq!(&ok(&svc, get(&keys, &uri)).await, user, "{identifier}");
    }
    for user in [&plain, &ios, &app42, &only_id, &rn, &both] {
        for id in [&user["ID"], &user["client_user_id"]] {
            let uri = format!("/api/v0/user/{}", text(id));
            assert_eq!(&ok(&svc, get(&keys, &uri)).await, user, "{id}");
        }
    }

    let rn_id = text(&rn["ID"]);
    assert_eq!(app.user_row(&rn_id).client_user_id, "app-7");
    assert_eq!(identifier_rows(&app, &rn_id), ["a@x.io", "b@x.io"]);
    assert_eq!(identifier_rows(&app, &id), ["ada@x.io"]);
    assert_eq!(count_identifier_rows(&app), 8);
}

/// An identifier another live user has (primary or not, after normalisation) or its
/// `client_user_id` is a 409 that leaves nothing behind; an invalid `client_user_id` or too many
/// identifiers is a 400. Another project, or a deleted user, takes nothing.
async fn create_refuses_taken_and_invalid_ids(backend: Backend) {
    let app = TestApp::new(backend);
    let (keys, other) = (app.project("p"), app.project("q"));
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let rn = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-7", "identifiers": ["a@x.io", "b@x.io"]}),
        ),
    )
    .await;
    ok(&svc, create(&keys, json!({"identifier": "c@x.io"}))).await;
    let rows = count_identifier_rows(&app);
    for body in [
        json!({"identifier": "A@X.IO"}),
        json!({"identifier": " b@x.io "}),
        json!({"client_user_id": "app-8", "identifiers": ["z@x.io", "B@x.io"]}),
        json!({"client_user_id": "app-8", "identifier": "C@x.io"}),
        json!({"identifier": "y@x.io", "identifiers": ["y@x.io", "C@X.IO"]}),
        json!({"client_user_id": "app-7", "identifier": "new@x.io"}),
    ] {
        let reply = call(&svc, &create(&keys, body.clone())).await;
        assert_eq!(
            reply.assert_error(StatusCode::CONFLICT),
            "user already exist",
            "{body}"
        );
    }
    assert_eq!(app.count_users(&keys.id), 2);
    assert_eq!(count_identifier_rows(&app), rows);
    // What the refused creates named is still free.
    ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-8", "identifiers": ["z@x.io", "new@x.io", "y@x.io"]}),
        ),
    )
    .await;

    let ten: Vec<String> = (0..10).map(|n| format!("ten{n}@x.io")).collect();
    ok(&svc, create(&keys, json!({"identifiers": ten}))).await;
    let eleven: Vec<String> = (0..11).map(|n| format!("eleven{n}@x.io")).collect();
    let long_id = "x".repeat(200);
    ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": long_id, "identifier": "long@x.io"}),
        ),
    )
    .await;
    let users = app.count_users(&keys.id);
    for body in [
        json!({"identifiers": eleven}),
        json!({"client_user_id": "x".repeat(201), "identifier": "e1@x.io"}),
        json!({"client_user_id": "app 42", "identifier": "e2@x.io"}),
        json!({"client_user_id": "app\u{1}42", "identifier": "e3@x.io"}),
        json!({"client_user_id": "app\t42", "identifier": "e4@x.io"}),
        json!({}),
        json!({"client_user_id": "", "identifier": ""}),
        json!({"identifiers": []}),
        json!({"client_user_id": "app-9", "identifiers": ["ok@x.io", ""]}),
        json!({"client_user_id": "list", "identifier": "e5@x.io"}),
        json!({"client_user_id": "methods", "identifier": "e6@x.io"}),
    ] {
        let reply = call(&svc, &create(&keys, body.clone())).await;
        reply.assert_error(StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.count_users(&keys.id), users);

    // Another project has ids of its own.
    ok(
        &svc,
        create(
            &other,
            json!({"client_user_id": "app-7", "identifiers": ["b@x.io", "a@x.io"]}),
        ),
    )
    .await;
    // A deleted user's ids are free again.
    let deleted = admin(
        &keys,
        Method::DELETE,
        &format!("/admin/v1/users/{}", text(&rn["ID"])),
    );
    assert!(call(&svc, &deleted).await.status.is_success());
    let again = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-7", "identifiers": ["B@x.io"]}),
        ),
    )
    .await;
    assert_ne!(again["ID"], rn["ID"]);
    let found = ok(&svc, get(&keys, "/api/v0/user/app-7")).await;
    assert_eq!(found["ID"], again["ID"]);
}

/// A user's `ID` keeps naming it: an app may not create another user whose `client_user_id`
/// is that `ID` and so take the lookups (`/user/{id}`, `cotter_user_id=`, the events' user)
/// that name it. Either the create is refused, or the `ID` still names its own user.
async fn a_client_user_id_cannot_take_another_users_id(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;

    let victim = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-v", "identifier": "victim@x.io"}),
        ),
    )
    .await;
    let id = text(&victim["ID"]);
    let taker = call(
        &svc,
        &create(
            &keys,
            json!({"client_user_id": id, "identifier": "taker@x.io"}),
        ),
    )
    .await;
    assert!(
        taker.status == StatusCode::OK || taker.status == StatusCode::CONFLICT,
        "{}",
        taker.body
    );

    let found = ok(&svc, get(&keys, &format!("/api/v0/user/{id}"))).await;
    assert_eq!(found["identifier"], "victim@x.io", "GET /user/{{ID}}");
    let enrolled = ok(&svc, put_by_cotter_id(&keys, &id, &pin("135790"))).await;
    assert_eq!(
        enrolled["ID"],
        id.as_str(),
        "PUT /user/methods?cotter_user_id="
    );
}

/// Restoring a deleted user whose `client_user_id` or further identifier a live user took
/// meanwhile is a 409 that leaves it deleted; with its ids free again, it is restored with them.
async fn a_restore_needs_the_users_ids_free(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-7", "identifiers": ["a@x.io", "b@x.io"]}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    let delete = admin(&keys, Method::DELETE, &format!("/admin/v1/users/{id}"));
    assert!(call(&svc, &delete).await.status.is_success());
    let restore = admin(
        &keys,
        Method::POST,
        &format!("/admin/v1/users/{id}/restore"),
    );

    for (body, id_uri) in [
        (
            json!({"client_user_id": "app-7", "identifier": "other@x.io"}),
            "/api/v0/user/app-7",
        ),
        (
            json!({"identifier": "B@x.io"}),
            "/api/v0/user?identifier=b%40x.io",
        ),
    ] {
        let taker = ok(&svc, create(&keys, body)).await;
        let code = call(&svc, &restore)
            .await
            .assert_problem(StatusCode::CONFLICT);
        assert_eq!(code, "IDENTIFIER_TAKEN");
        assert!(app.user_row(&id).deleted_at.is_some(), "still deleted");
        // The taker keeps what it took.
        assert_eq!(ok(&svc, get(&keys, id_uri)).await["ID"], taker["ID"]);
        let gone = admin(
            &keys,
            Method::DELETE,
            &format!("/admin/v1/users/{}?purge=true", text(&taker["ID"])),
        );
        assert!(call(&svc, &gone).await.status.is_success());
    }
    assert_eq!(call(&svc, &restore).await.status, StatusCode::OK);
    for uri in [
        "/api/v0/user/app-7".to_owned(),
        format!("/api/v0/user/{id}"),
        "/api/v0/user?identifier=b%40x.io".to_owned(),
        "/api/v0/user?identifier=a%40x.io".to_owned(),
    ] {
        assert_eq!(ok(&svc, get(&keys, &uri)).await["ID"], id.as_str(), "{uri}");
    }
}

/// Purging a user removes its identifiers, methods, attempt counters and events with it.
async fn a_purge_removes_the_users_sdk_rows(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-x", "identifiers": ["x@x.io", "y@x.io"]}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    ok(&svc, put_user(&keys, &id, &pin("135790"))).await;
    ok(
        &svc,
        put_user(
            &keys,
            &id,
            &key_body("TRUSTED_DEVICE", true, &Device::ed(1).plain()),
        ),
    )
    .await;
    ok(&svc, event(&keys, &pin_event(&keys, "app-x", "975310"))).await;
    assert_eq!(failures(&app, &id, "PIN"), Some(1));

    let purge = admin(
        &keys,
        Method::DELETE,
        &format!("/admin/v1/users/{id}?purge=true"),
    );
    assert_eq!(call(&svc, &purge).await.status, StatusCode::NO_CONTENT);
    assert!(identifier_rows(&app, &id).is_empty());
    assert!(method_rows(&app, &id).is_empty());
    assert_eq!(failures(&app, &id, "PIN"), None);
    let events: i64 = {
        let mut conn = app.state.pool.get().unwrap();
        cotterd::db::schema::events::table
            .filter(cotterd::db::schema::events::user_id.eq(&id))
            .count()
            .get_result(conn.conn())
            .unwrap()
    };
    assert_eq!(events, 0);
    // Its ids are free.
    ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-x", "identifiers": ["y@x.io"]}),
        ),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// PIN
// ---------------------------------------------------------------------------------------------

/// A PIN is enrolled (stored as an argon2id hash), refused a second time, changed with the
/// current one (a wrong one is a 403 and a failed attempt) and removed with it.
async fn pin_is_enrolled_changed_and_removed(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-1", "identifier": "pin@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);

    // Nothing to change, nothing to remove.
    let nothing = json!({"method": "PIN", "enrolled": true, "current_code": "135790",
                         "code": "246801", "change_code": true});
    call(&svc, &put_user(&keys, "app-1", &nothing))
        .await
        .assert_error(StatusCode::CONFLICT);
    let removed = json!({"method": "PIN", "enrolled": false, "code": "135790"});
    assert_eq!(
        ok(&svc, put_user(&keys, "app-1", &removed)).await["enrolled"],
        json!([])
    );
    assert_eq!(failures(&app, &id, "PIN"), None);

    let enrolled = ok(
        &svc,
        put_user(
            &keys,
            "app-1",
            &json!({"method": "PIN", "enrolled": true, "code": "135790"}),
        ),
    )
    .await;
    assert_eq!(enrolled["ID"], id.as_str());
    assert_eq!(enrolled["enrolled"], json!(["PIN"]));
    assert_eq!(enrolled["default_method"], "PIN");
    assert_eq!(ok(&svc, get(&keys, "/api/v0/user/app-1")).await, enrolled);
    let rows = method_rows(&app, &id);
    assert_eq!(rows.len(), 1);
    let first_hash = rows[0].pin_hash.clone().unwrap();
    assert!(first_hash.starts_with("$argon2id$"), "{first_hash}");
    assert!(!first_hash.contains("135790"));
    assert_eq!(
        (rows[0].method.as_str(), rows[0].key_hash.as_str()),
        ("PIN", "")
    );
    assert_eq!(rows[0].public_key, None);

    // A second PIN needs change_code (Flutter sends change_code false by default).
    for body in [
        pin("135790"),
        json!({"method": "PIN", "enrolled": true, "code": "246801", "change_code": false,
               "current_code": null, "algorithm": null}),
    ] {
        let reply = call(&svc, &put_user(&keys, &id, &body)).await;
        let msg = reply.assert_error(StatusCode::CONFLICT);
        assert!(msg.contains("change_code"), "{msg}");
    }

    let change = |current: &str| {
        json!({"method": "PIN", "enrolled": true, "current_code": current, "code": "246801",
               "change_code": true})
    };
    let reply = call(&svc, &put_by_cotter_id(&keys, &id, &change("975310"))).await;
    reply.assert_error(StatusCode::FORBIDDEN);
    assert_eq!(failures(&app, &id, "PIN"), Some(1));
    let reply = call(
        &svc,
        &put_by_cotter_id(
            &keys,
            &id,
            &json!({"method": "PIN", "enrolled": true, "code": "246801", "change_code": true}),
        ),
    )
    .await;
    reply.assert_error(StatusCode::BAD_REQUEST);
    let changed = ok(&svc, put_by_cotter_id(&keys, &id, &change("135790"))).await;
    assert_eq!(changed["enrolled"], json!(["PIN"]));
    assert_eq!(changed["default_method"], "PIN");
    assert_eq!(failures(&app, &id, "PIN"), None, "a success resets");
    let second_hash = method_rows(&app, &id)[0].pin_hash.clone().unwrap();
    assert_ne!(second_hash, first_hash);
    assert!(!second_hash.contains("246801"));
    // The new PIN is the one checked.
    let old = ok(&svc, event(&keys, &pin_event(&keys, "app-1", "135790"))).await;
    assert_eq!(old["approved"], false);
    let new = ok(&svc, event(&keys, &pin_event(&keys, "app-1", "246801"))).await;
    assert_eq!(new["approved"], true);

    // Removing it needs it.
    let remove = |code: &str| json!({"method": "PIN", "enrolled": false, "code": code});
    call(&svc, &put_user(&keys, "app-1", &remove("135790")))
        .await
        .assert_error(StatusCode::FORBIDDEN);
    assert_eq!(method_rows(&app, &id).len(), 1);
    let removed = ok(&svc, put_user(&keys, "app-1", &remove("246801"))).await;
    assert_eq!(removed["enrolled"], json!([]));
    assert_eq!(removed["default_method"], Value::Null);
    assert!(method_rows(&app, &id).is_empty());
    // And it can be enrolled again.
    ok(&svc, put_user(&keys, &id, &pin("135790"))).await;
}

/// Guessable PINs and PINs that are not 4 to 12 digits are refused with a reason; nothing is
/// stored.
async fn pins_must_be_digits_and_hard_to_guess(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(&svc, create(&keys, json!({"identifier": "pin@x.io"}))).await;
    let id = text(&user["ID"]);

    for (code, reason) in [
        ("1111", "PIN must not be one digit repeated"),
        ("1234", "PIN must not be a straight run"),
        ("9876", "PIN must not be a straight run"),
        ("123", "4 to 12 digits"),
        ("12a4", "4 to 12 digits"),
        ("", "4 to 12 digits"),
        ("1234567890135", "4 to 12 digits"),
    ] {
        let reply = call(&svc, &put_user(&keys, &id, &pin(code))).await;
        let msg = reply.assert_error(StatusCode::BAD_REQUEST);
        assert!(msg.contains(reason), "{code}: {msg}");
    }
    assert!(method_rows(&app, &id).is_empty());
    assert_eq!(app.user_row(&id).enrolled, "[]");
}

// ---------------------------------------------------------------------------------------------
// Device keys
// ---------------------------------------------------------------------------------------------

/// The keys of every SDK enroll (iOS P-256 for BIOMETRIC, Android P-256 and RSA, React Native
/// Ed25519 with its device): one row each in a canonical form; the same key again is a 200 that
/// adds nothing; removing a key removes it alone; `enrolled` and `default_method` follow.
async fn device_keys_of_every_sdk_enroll(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-d", "identifier": "dev@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    let (iphone, android, pixel, old_android) =
        (Device::ec(1), Device::ec(2), Device::ed(3), Device::rsa());

    let reply = ok(
        &svc,
        put_user(&keys, "app-d", &key_body("BIOMETRIC", true, &iphone.ios())),
    )
    .await;
    assert_eq!(reply["enrolled"], json!(["BIOMETRIC"]));
    assert_eq!(reply["default_method"], "BIOMETRIC");
    let reply = ok(
        &svc,
        put_user(
            &keys,
            &id,
            &json!({"method": "TRUSTED_DEVICE", "enrolled": true, "code": android.android(),
                   "algorithm": "EC"}),
        ),
    )
    .await;
    assert_eq!(reply["enrolled"], json!(["BIOMETRIC", "TRUSTED_DEVICE"]));
    assert_eq!(reply["default_method"], "TRUSTED_DEVICE");
    ok(
        &svc,
        put_by_cotter_id(
            &keys,
            &id,
            &json!({"method": "TRUSTED_DEVICE", "enrolled": true, "code": pixel.plain(),
                   "algorithm": "ED25519", "device_name": "Pixel 7 14", "device_type": "Google"}),
        ),
    )
    .await;
    let reply = ok(
        &svc,
        put_user(
            &keys,
            "app-d",
            &json!({"method": "TRUSTED_DEVICE", "enrolled": true, "code": old_android.android(),
                   "algorithm": "RSA"}),
        ),
    )
    .await;
    assert_eq!(reply["enrolled"], json!(["BIOMETRIC", "TRUSTED_DEVICE"]));

    let rows = method_rows(&app, &id);
    let kinds: Vec<(&str, Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.algorithm.as_deref(),
                r.public_key.as_deref(),
            )
        })
        .collect();
    let (iphone_key, android_key, pixel_key, rsa_key) = (
        iphone.plain(),
        android.plain(),
        pixel.plain(),
        old_android.plain(),
    );
    assert_eq!(
        kinds,
        [
            ("BIOMETRIC", Some("EC"), Some(iphone_key.as_str())),
            ("TRUSTED_DEVICE", Some("EC"), Some(android_key.as_str())),
            ("TRUSTED_DEVICE", Some("ED25519"), Some(pixel_key.as_str())),
            ("TRUSTED_DEVICE", Some("RSA"), Some(rsa_key.as_str())),
        ]
    );
    assert_eq!(rows[2].device_name.as_deref(), Some("Pixel 7 14"));
    assert_eq!(rows[2].device_type.as_deref(), Some("Google"));
    assert!(rows.iter().all(|r| r.pin_hash.is_none()));

    // The same key again, as sent or in another form, adds nothing and changes no default.
    for body in [
        key_body("BIOMETRIC", true, &iphone.ios()),
        key_body(
            "BIOMETRIC",
            true,
            &URL_SAFE_NO_PAD.encode(iphone.public_bytes()),
        ),
        key_body("TRUSTED_DEVICE", true, &pixel.plain()),
    ] {
        let reply = ok(&svc, put_user(&keys, &id, &body)).await;
        assert_eq!(reply["default_method"], "TRUSTED_DEVICE");
    }
    assert_eq!(method_rows(&app, &id).len(), 4);

    // Removing a key removes that key alone.
    let reply = ok(
        &svc,
        put_user(
            &keys,
            &id,
            &key_body("TRUSTED_DEVICE", false, &android.android()),
        ),
    )
    .await;
    assert_eq!(reply["enrolled"], json!(["BIOMETRIC", "TRUSTED_DEVICE"]));
    let left: Vec<Option<String>> = method_rows(&app, &id)
        .into_iter()
        .map(|r| r.public_key)
        .collect();
    assert_eq!(
        left,
        [
            Some(iphone_key.clone()),
            Some(pixel_key.clone()),
            Some(rsa_key.clone())
        ]
    );
    // A key not enrolled (or enrolled for another method) removes nothing.
    ok(
        &svc,
        put_user(
            &keys,
            &id,
            &key_body("TRUSTED_DEVICE", false, &iphone.ios()),
        ),
    )
    .await;
    assert_eq!(method_rows(&app, &id).len(), 3);
    for device in [&pixel, &old_android] {
        ok(
            &svc,
            put_user(
                &keys,
                &id,
                &key_body("TRUSTED_DEVICE", false, &device.plain()),
            ),
        )
        .await;
    }
    let reply = ok(&svc, get(&keys, &format!("/api/v0/user/{id}"))).await;
    assert_eq!(reply["enrolled"], json!(["BIOMETRIC"]));
    assert_eq!(reply["default_method"], "BIOMETRIC");
    // The latest enrolled is the default.
    let reply = ok(&svc, put_user(&keys, &id, &pin("135790"))).await;
    assert_eq!(reply["enrolled"], json!(["BIOMETRIC", "PIN"]));
    assert_eq!(reply["default_method"], "PIN");
    let reply = ok(
        &svc,
        put_user(&keys, &id, &key_body("BIOMETRIC", false, &iphone.ios())),
    )
    .await;
    assert_eq!(reply["enrolled"], json!(["PIN"]));
    assert_eq!(reply["default_method"], "PIN");
    let reply = ok(
        &svc,
        put_user(
            &keys,
            &id,
            &json!({"method": "PIN", "enrolled": false, "code": "135790"}),
        ),
    )
    .await;
    assert_eq!(reply["enrolled"], json!([]));
    assert_eq!(reply["default_method"], Value::Null);
}

/// Keys that are not keys, RSA under 2048 bits, keys of another kind than `algorithm` says,
/// unknown algorithms and methods: 400, nothing stored.
async fn bad_keys_and_methods_are_refused(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(&svc, create(&keys, json!({"identifier": "dev@x.io"}))).await;
    let id = text(&user["ID"]);
    let (ec, ed) = (Device::ec(1), Device::ed(2));
    let with = |code: &str, algorithm: &str| {
        json!({"method": "TRUSTED_DEVICE", "enrolled": true, "code": code,
               "algorithm": algorithm})
    };

    for body in [
        with(RSA_1024_PUBLIC, "RSA"),
        key_body("TRUSTED_DEVICE", true, RSA_1024_PUBLIC),
        key_body("TRUSTED_DEVICE", true, "not a key at all"),
        key_body("BIOMETRIC", true, "AAAA"),
        key_body("TRUSTED_DEVICE", true, ""),
        with(&ed.plain(), "EC"),
        with(&ec.android(), "ED25519"),
        with(&ec.android(), "RSA"),
        with(&ec.android(), "DSA"),
        key_body("FACE", true, &ec.plain()),
        key_body("WEBAUTHN", true, &ec.plain()),
        key_body("trusted_device", true, &ec.plain()),
        json!({"method": "PIN", "enrolled": true, "code": "135790", "extra": 1}),
    ] {
        let reply = call(&svc, &put_user(&keys, &id, &body)).await;
        reply.assert_error(StatusCode::BAD_REQUEST);
    }
    assert!(method_rows(&app, &id).is_empty());
    // The right algorithm, named in any case, is taken.
    ok(&svc, put_user(&keys, &id, &with(&ed.plain(), "ed25519"))).await;
}

/// A user has at most 20 keys per method: the 21st is a 409 until one is removed; the other
/// method has its own 20.
async fn a_user_has_at_most_twenty_keys_per_method(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(&svc, create(&keys, json!({"identifier": "many@x.io"}))).await;
    let id = text(&user["ID"]);
    for seed in 1..=20 {
        let body = key_body("TRUSTED_DEVICE", true, &Device::ed(seed).plain());
        ok(&svc, put_user(&keys, &id, &body)).await;
    }
    let body = key_body("TRUSTED_DEVICE", true, &Device::ed(21).plain());
    call(&svc, &put_user(&keys, &id, &body))
        .await
        .assert_error(StatusCode::CONFLICT);
    // One of the twenty again is still fine, and the other method is not full.
    let again = key_body("TRUSTED_DEVICE", true, &Device::ed(20).plain());
    ok(&svc, put_user(&keys, &id, &again)).await;
    let other = key_body("BIOMETRIC", true, &Device::ed(21).plain());
    ok(&svc, put_user(&keys, &id, &other)).await;
    let removed = key_body("TRUSTED_DEVICE", false, &Device::ed(1).plain());
    ok(&svc, put_user(&keys, &id, &removed)).await;
    ok(&svc, put_user(&keys, &id, &body)).await;
    assert_eq!(method_rows(&app, &id).len(), 21);
}

/// A disabled user's methods do not change (409), another project's user is a 404 like an
/// unknown one, `oauth_token` is `true` or `false`, and the `cotter_user_id` form needs its
/// parameter.
async fn updates_refuse_disabled_and_foreign_users(backend: Backend) {
    let app = TestApp::new(backend);
    let (keys, other) = (app.project("p"), app.project("q"));
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-a", "identifier": "a@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    let body = key_body("TRUSTED_DEVICE", true, &Device::ed(1).plain());

    for name in [id.as_str(), "app-a", "00000000-0000-4000-8000-000000000000"] {
        for req in [
            put_user(&other, name, &body),
            put_by_cotter_id(&other, name, &body),
        ] {
            call(&svc, &req).await.assert_error(StatusCode::NOT_FOUND);
        }
    }
    call(&svc, &put_user(&keys, "nobody", &body))
        .await
        .assert_error(StatusCode::NOT_FOUND);

    for query in ["?oauth_token=true", "?oauth_token=false"] {
        let uri = format!("/api/v0/user/{id}{query}");
        ok(
            &svc,
            Req::new(Method::PUT, uri).key_id(&keys.id).json(&body),
        )
        .await;
        let uri = format!("/api/v0/user/methods?cotter_user_id={id}&{}", &query[1..]);
        ok(
            &svc,
            Req::new(Method::PUT, uri).key_id(&keys.id).json(&body),
        )
        .await;
    }
    for uri in [
        format!("/api/v0/user/{id}?oauth_token=x"),
        format!("/api/v0/user/methods?cotter_user_id={id}&oauth_token=x"),
        "/api/v0/user/methods".to_owned(),
        "/api/v0/user/methods?cotter_user_id=".to_owned(),
    ] {
        let reply = call(
            &svc,
            &Req::new(Method::PUT, uri.as_str())
                .key_id(&keys.id)
                .json(&body),
        )
        .await;
        reply.assert_error(StatusCode::BAD_REQUEST);
    }

    let disable = admin(
        &keys,
        Method::POST,
        &format!("/admin/v1/users/{id}/disable"),
    );
    assert_eq!(call(&svc, &disable).await.status, StatusCode::OK);
    for req in [
        put_user(&keys, &id, &pin("135790")),
        put_user(&keys, "app-a", &body),
        put_by_cotter_id(&keys, &id, &pin("135790")),
    ] {
        call(&svc, &req).await.assert_error(StatusCode::CONFLICT);
    }
    assert_eq!(method_rows(&app, &id).len(), 1);
    let enable = admin(&keys, Method::POST, &format!("/admin/v1/users/{id}/enable"));
    assert_eq!(call(&svc, &enable).await.status, StatusCode::OK);
    ok(&svc, put_user(&keys, &id, &pin("135790"))).await;

    let delete = admin(&keys, Method::DELETE, &format!("/admin/v1/users/{id}"));
    assert!(call(&svc, &delete).await.status.is_success());
    for name in [id.as_str(), "app-a"] {
        call(&svc, &put_user(&keys, name, &body))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
}

// ---------------------------------------------------------------------------------------------
// Enrollment checks
// ---------------------------------------------------------------------------------------------

/// Every check answers 200 `{"enrolled", "method"}`, the user named by either id and the key
/// as `encKey` in every base64 alphabet, in the path or the query; an unknown user and another
/// project's user answer alike; an unknown method is a 400.
async fn enrollment_checks_answer_every_sdk(backend: Backend) {
    let app = TestApp::new(backend);
    let (keys, other) = (app.project("p"), app.project("q"));
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-c", "identifier": "c@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    let device = awkward_device();
    let key = device.plain();
    let standard = STANDARD.encode(&key);
    let iphone = Device::ec(4);
    let stranger = Device::ed(200);

    for name in [id.as_str(), "app-c"] {
        let uri = format!("/api/v0/user/enrolled/{name}/PIN");
        assert!(!is_enrolled(&svc, &keys, &uri, "PIN").await);
        let uri = format!("/api/v0/user/enrolled/any/{name}/TRUSTED_DEVICE");
        assert!(!is_enrolled(&svc, &keys, &uri, "TRUSTED_DEVICE").await);
    }
    ok(&svc, put_user(&keys, &id, &pin("135790"))).await;
    ok(
        &svc,
        put_user(&keys, &id, &key_body("TRUSTED_DEVICE", true, &key)),
    )
    .await;
    ok(
        &svc,
        put_user(&keys, &id, &key_body("BIOMETRIC", true, &iphone.ios())),
    )
    .await;

    // Base64 of the key string in each alphabet, and the key string itself (with its '+', '/'
    // and '=': the path route takes the rest of the path, and the query's '+' reads as a space).
    let encodings = [
        standard.clone(),
        STANDARD_NO_PAD.encode(&key),
        URL_SAFE.encode(&key),
        URL_SAFE_NO_PAD.encode(&key),
        key.clone(),
    ];
    for name in [id.as_str(), "app-c"] {
        let uri = format!("/api/v0/user/enrolled/{name}/PIN");
        assert!(is_enrolled(&svc, &keys, &uri, "PIN").await);
        let uri = format!("/api/v0/user/enrolled/{name}/TRUSTED_DEVICE");
        assert!(is_enrolled(&svc, &keys, &uri, "TRUSTED_DEVICE").await);
        let uri = format!("/api/v0/user/enrolled/any/{name}/TRUSTED_DEVICE");
        assert!(is_enrolled(&svc, &keys, &uri, "TRUSTED_DEVICE").await);
        for enc in &encodings {
            let uri = format!("/api/v0/user/enrolled/{name}/TRUSTED_DEVICE/{enc}");
            assert!(
                is_enrolled(&svc, &keys, &uri, "TRUSTED_DEVICE").await,
                "{uri}"
            );
            // In the query as sent ('+' then reads as a space) and percent-encoded.
            for public_key in [enc.clone(), url_encode(enc)] {
                let uri = format!(
                    "/api/v0/user/methods?cotter_user_id={name}&method=TRUSTED_DEVICE\
                     &public_key={public_key}"
                );
                assert!(
                    is_enrolled(&svc, &keys, &uri, "TRUSTED_DEVICE").await,
                    "{uri}"
                );
            }
            // The key of one method is not enrolled for the other.
            let uri = format!("/api/v0/user/enrolled/{name}/BIOMETRIC/{enc}");
            assert!(!is_enrolled(&svc, &keys, &uri, "BIOMETRIC").await, "{uri}");
        }
        // The iOS key, with its line breaks, double-encoded as iOS (and Android) do it.
        for ios_enc in [
            URL_SAFE_NO_PAD.encode(iphone.ios()),
            URL_SAFE.encode(iphone.ios()),
        ] {
            let uri = format!("/api/v0/user/enrolled/{name}/BIOMETRIC/{ios_enc}");
            assert!(is_enrolled(&svc, &keys, &uri, "BIOMETRIC").await);
        }
        let uri = format!("/api/v0/user/methods?cotter_user_id={name}&method=PIN");
        assert!(is_enrolled(&svc, &keys, &uri, "PIN").await);
        let uri = format!(
            "/api/v0/user/enrolled/{name}/TRUSTED_DEVICE/{}",
            URL_SAFE.encode(stranger.plain())
        );
        assert!(!is_enrolled(&svc, &keys, &uri, "TRUSTED_DEVICE").await);
    }

    // No such user, and another project's user, answer exactly alike.
    let not_enrolled = r#"{"enrolled":false,"method":"TRUSTED_DEVICE"}"#;
    for (caller, name) in [
        (&keys, "nobody"),
        (&keys, "00000000-0000-4000-8000-000000000000"),
        (&other, id.as_str()),
        (&other, "app-c"),
    ] {
        for uri in [
            format!("/api/v0/user/enrolled/{name}/TRUSTED_DEVICE/{standard}"),
            format!("/api/v0/user/enrolled/{name}/TRUSTED_DEVICE"),
            format!("/api/v0/user/enrolled/any/{name}/TRUSTED_DEVICE"),
            format!(
                "/api/v0/user/methods?cotter_user_id={name}&method=TRUSTED_DEVICE\
                 &public_key={standard}"
            ),
        ] {
            let reply = call(&svc, &get(caller, &uri)).await;
            assert_eq!(reply.status, StatusCode::OK, "{uri}");
            assert_eq!(reply.body, not_enrolled, "{uri}");
        }
    }

    for uri in [
        format!("/api/v0/user/enrolled/{id}/FACE"),
        format!("/api/v0/user/enrolled/{id}/FACE/{standard}"),
        format!("/api/v0/user/enrolled/any/{id}/FACE"),
        "/api/v0/user/enrolled/nobody/FACE".to_owned(),
        format!("/api/v0/user/methods?cotter_user_id={id}&method=FACE"),
        format!("/api/v0/user/methods?cotter_user_id={id}"),
        "/api/v0/user/methods?method=PIN".to_owned(),
        format!("/api/v0/user/enrolled/{id}/TRUSTED_DEVICE/bm90IGEga2V5"),
    ] {
        call(&svc, &get(&keys, &uri))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// A PIN login: the Event as iOS decodes it, approved or not; five failures lock the PIN for a
/// minute, the next failure after the lock for two, and a success resets the count.
async fn pin_events_approve_and_lock(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-e", "identifier": "e@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    ok(&svc, put_user(&keys, &id, &pin("135790"))).await;

    let approved = ok(&svc, event(&keys, &pin_event(&keys, "app-e", "135790"))).await;
    let mut fields: Vec<&String> = approved.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "ID",
            "approved",
            "client_user_id",
            "event",
            "ip",
            "issuer",
            "location",
            "method",
            "new",
            "timestamp"
        ]
    );
    assert!(approved["ID"].is_i64(), "{approved}");
    assert_eq!(approved["new"], false);
    assert_eq!(approved["approved"], true);
    assert_eq!(approved["client_user_id"], "app-e");
    assert_eq!(approved["issuer"], keys.id.as_str());
    assert_eq!(approved["event"], LOGIN);
    assert_eq!(approved["method"], "PIN");
    assert_eq!(approved["timestamp"], "1591234567");
    assert_eq!(
        (&approved["ip"], &approved["location"]),
        (&json!("1.2.3.4"), &json!("unknown"))
    );
    // iOS omits public_key for a PIN, and may name the user by its ID.
    let ios = json!({"client_user_id": id, "issuer": keys.id, "event": LOGIN, "ip": "",
                     "location": "", "timestamp": "1591234567", "method": "PIN",
                     "code": "135790", "approved": true});
    let second = ok(&svc, event(&keys, &ios)).await;
    assert_eq!(second["approved"], true);
    assert!(second["ID"].as_i64() > approved["ID"].as_i64());

    for n in 1..=5 {
        let wrong = ok(&svc, event(&keys, &pin_event(&keys, "app-e", "975310"))).await;
        assert_eq!(wrong["approved"], false);
        assert_eq!(failures(&app, &id, "PIN"), Some(n));
    }
    // Locked: even the right PIN is not checked.
    let locked = call(&svc, &event(&keys, &pin_event(&keys, "app-e", "135790"))).await;
    locked.assert_error(StatusCode::TOO_MANY_REQUESTS);
    let first_lock = retry_after(&locked);
    assert!((30..=60).contains(&first_lock), "{first_lock}");
    assert_eq!(failures(&app, &id, "PIN"), Some(5));

    expire_lock(&app, &id);
    let wrong = ok(&svc, event(&keys, &pin_event(&keys, &id, "975310"))).await;
    assert_eq!(wrong["approved"], false);
    assert_eq!(failures(&app, &id, "PIN"), Some(6));
    let locked = call(&svc, &event(&keys, &pin_event(&keys, "app-e", "135790"))).await;
    locked.assert_error(StatusCode::TOO_MANY_REQUESTS);
    let second_lock = retry_after(&locked);
    assert!((90..=120).contains(&second_lock), "{second_lock}");

    expire_lock(&app, &id);
    let right = ok(&svc, event(&keys, &pin_event(&keys, "app-e", "135790"))).await;
    assert_eq!(right["approved"], true);
    assert_eq!(failures(&app, &id, "PIN"), None, "a success resets");

    // A user with no PIN is never approved, and the attempts count for it too.
    let bare = ok(&svc, create(&keys, json!({"identifier": "bare@x.io"}))).await;
    let bare_id = text(&bare["ID"]);
    let reply = ok(&svc, event(&keys, &pin_event(&keys, &bare_id, "135790"))).await;
    assert_eq!(reply["approved"], false);
    assert_eq!(failures(&app, &bare_id, "PIN"), Some(1));
}

/// Signed approvals by each kind of device key (iOS P-256 BIOMETRIC, Android RSA and P-256,
/// React Native Ed25519), the user named by either id in the body and in the signed message;
/// a wrong signature, a key of another method and a declined approval are `approved: false`;
/// Flutter's `user_id` works as `client_user_id`.
async fn signed_events_of_every_key_kind(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-s", "identifier": "s@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    let (iphone, old_android, android, pixel) =
        (Device::ec(3), Device::rsa(), Device::ec(4), Device::ed(5));
    let enrolled = [
        (&iphone, iphone.ios(), "BIOMETRIC"),
        (&old_android, old_android.android(), "TRUSTED_DEVICE"),
        (&android, android.android(), "TRUSTED_DEVICE"),
        (&pixel, pixel.plain(), "TRUSTED_DEVICE"),
    ];
    for (device, key, method) in &enrolled {
        let body = json!({"method": method, "enrolled": true, "code": key,
                          "algorithm": device.algorithm()});
        ok(&svc, put_user(&keys, &id, &body)).await;
    }

    let ts = now_secs();
    for (device, key, method) in &enrolled {
        for name in [id.as_str(), "app-s"] {
            let body = signed_event(&keys, name, device, key, method, ts);
            let reply = ok(&svc, event(&keys, &body)).await;
            assert_eq!(reply["approved"], true, "{method} {name}: {reply}");
            assert_eq!(reply["client_user_id"], name);
            assert_eq!(reply["method"], *method);
            assert_eq!(reply["timestamp"], ts.to_string());
        }
        // The body names the user by one id, the message by the other.
        let ts = ts - 1;
        let mut body = signed_event(&keys, &id, device, key, method, ts);
        body["client_user_id"] = json!("app-s");
        let reply = ok(&svc, event(&keys, &body)).await;
        assert_eq!(reply["approved"], true, "{method}: {reply}");
    }

    let ts = ts - 2;
    // A signature of another message, garbage, or nothing: not approved.
    let mut body = signed_event(&keys, "app-s", &pixel, &pixel.plain(), "TRUSTED_DEVICE", ts);
    body["code"] = json!(pixel.sign(&message(
        "app-s",
        &keys,
        LOGIN,
        &ts.to_string(),
        "TRUSTED_DEVICE",
        false
    )));
    assert_eq!(ok(&svc, event(&keys, &body)).await["approved"], false);
    body["code"] = json!("AAAA");
    assert_eq!(ok(&svc, event(&keys, &body)).await["approved"], false);
    body["code"] = json!("");
    assert_eq!(ok(&svc, event(&keys, &body)).await["approved"], false);
    // A device not enrolled, and a key enrolled for the other method.
    let stranger = Device::ed(6);
    let body = signed_event(
        &keys,
        "app-s",
        &stranger,
        &stranger.plain(),
        "TRUSTED_DEVICE",
        ts,
    );
    assert_eq!(ok(&svc, event(&keys, &body)).await["approved"], false);
    let body = signed_event(&keys, "app-s", &pixel, &pixel.plain(), "BIOMETRIC", ts);
    assert_eq!(ok(&svc, event(&keys, &body)).await["approved"], false);
    // The device declined: a valid signature of "false".
    let mut body = signed_event(&keys, "app-s", &pixel, &pixel.plain(), "TRUSTED_DEVICE", ts);
    body["approved"] = json!(false);
    body["code"] = json!(pixel.sign(&message(
        "app-s",
        &keys,
        LOGIN,
        &ts.to_string(),
        "TRUSTED_DEVICE",
        false
    )));
    let declined = ok(&svc, event(&keys, &body)).await;
    assert_eq!(declined["approved"], false);
    // Without public_key, any of the user's keys for the method may have signed.
    let mut body = signed_event(&keys, "app-s", &android, "", "TRUSTED_DEVICE", ts);
    body.as_object_mut().unwrap().remove("public_key");
    assert_eq!(ok(&svc, event(&keys, &body)).await["approved"], true);

    // Flutter: `user_id`, Cotter's ID in the message.
    let ts = ts - 3;
    let ts_text = ts.to_string();
    let flutter = json!({
        "user_id": id, "issuer": keys.id, "event": LOGIN, "ip": "1.2.3.4",
        "location": "unknown", "timestamp": ts_text, "method": "TRUSTED_DEVICE",
        "code": pixel.sign(&message(&id, &keys, LOGIN, &ts_text, "TRUSTED_DEVICE", true)),
        "approved": true, "public_key": pixel.plain(), "algorithm": "ED25519",
    });
    let reply = ok(&svc, event(&keys, &flutter)).await;
    assert_eq!(reply["approved"], true, "{reply}");
    assert_eq!(reply["client_user_id"], id.as_str());
    // oauth_token=true changes nothing; any other value is refused.
    let again = signed_event(&keys, "app-s", &pixel, &pixel.plain(), "TRUSTED_DEVICE", ts);
    let reply = ok(
        &svc,
        Req::post("/api/v0/event/create?oauth_token=true")
            .key_id(&keys.id)
            .json(&again),
    )
    .await;
    assert_eq!(reply["approved"], true);
    call(
        &svc,
        &Req::post("/api/v0/event/create?oauth_token=x")
            .key_id(&keys.id)
            .json(&pin_event(&keys, "app-s", "135790")),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST);
}

/// A signed approval's timestamp must be within EVENT_MAX_SKEW_SECS of the server's clock, and
/// an approval is accepted once: sent again (even from elsewhere) it is a 409.
async fn signed_events_refuse_stale_timestamps_and_replays(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-r", "identifier": "r@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    let phone = Device::ec(9);
    let key = phone.android();
    ok(
        &svc,
        put_user(&keys, &id, &key_body("TRUSTED_DEVICE", true, &key)),
    )
    .await;

    let skew = i64::try_from(app.state.settings.event_max_skew_secs).unwrap();
    assert_eq!(skew, 300);
    for ts in [now_secs() - skew - 600, now_secs() + skew + 600] {
        let body = signed_event(&keys, "app-r", &phone, &key, "TRUSTED_DEVICE", ts);
        let msg = call(&svc, &event(&keys, &body))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
        assert!(msg.contains("timestamp"), "{msg}");
    }
    let mut body = signed_event(&keys, "app-r", &phone, &key, "TRUSTED_DEVICE", now_secs());
    body["timestamp"] = json!("soon");
    call(&svc, &event(&keys, &body))
        .await
        .assert_error(StatusCode::BAD_REQUEST);

    let body = signed_event(&keys, "app-r", &phone, &key, "TRUSTED_DEVICE", now_secs());
    assert_eq!(ok(&svc, event(&keys, &body)).await["approved"], true);
    let msg = call(&svc, &event(&keys, &body))
        .await
        .assert_error(StatusCode::CONFLICT);
    assert!(msg.contains("replay"), "{msg}");
    let mut elsewhere = body.clone();
    elsewhere["ip"] = json!("5.6.7.8");
    elsewhere["location"] = json!("elsewhere");
    call(&svc, &event(&keys, &elsewhere))
        .await
        .assert_error(StatusCode::CONFLICT);
    // The replays were not recorded as events.
    let page = ok(
        &svc,
        admin(&keys, Method::GET, &format!("/admin/v1/users/{id}/events")),
    )
    .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
}

/// A trusted device approves ENROLL_NEW_TRUSTED_DEVICE for a new device's key (appended to
/// the signed message): the new key is enrolled and may then sign logins. An approval from a
/// device that is not trusted, or without the key in the message, enrolls nothing.
async fn a_trusted_device_enrolls_a_new_one(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-t", "identifier": "t@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    let trusted = Device::ec(7);
    let body = json!({"method": "TRUSTED_DEVICE", "enrolled": true, "code": trusted.android(),
                      "algorithm": "EC"});
    ok(&svc, put_user(&keys, &id, &body)).await;
    let (newcomer, stranger, other_new) = (Device::ed(8), Device::ed(10), Device::ed(11));
    let check = |device: &Device| {
        format!(
            "/api/v0/user/enrolled/app-t/TRUSTED_DEVICE/{}",
            URL_SAFE.encode(device.plain())
        )
    };
    let enroll = |signer: &Device, new_key: &str, appended: &str| {
        let ts = now_secs().to_string();
        let signed = message("app-t", &keys, ENROLL_NEW, &ts, "TRUSTED_DEVICE", true) + appended;
        json!({
            "client_user_id": "app-t", "issuer": keys.id, "event": ENROLL_NEW,
            "ip": "1.2.3.4", "location": "unknown", "timestamp": ts,
            "method": "TRUSTED_DEVICE", "code": signer.sign(&signed), "approved": true,
            "public_key": new_key, "algorithm": "ED25519",
        })
    };
    assert!(!is_enrolled(&svc, &keys, &check(&newcomer), "TRUSTED_DEVICE").await);

    // Not trusted, or the key not signed: nothing enrolled.
    let reply = ok(
        &svc,
        event(
            &keys,
            &enroll(&stranger, &other_new.plain(), &other_new.plain()),
        ),
    )
    .await;
    assert_eq!(reply["approved"], false);
    let reply = ok(
        &svc,
        event(&keys, &enroll(&trusted, &other_new.plain(), "")),
    )
    .await;
    assert_eq!(reply["approved"], false);
    assert!(!is_enrolled(&svc, &keys, &check(&other_new), "TRUSTED_DEVICE").await);

    let reply = ok(
        &svc,
        event(
            &keys,
            &enroll(&trusted, &newcomer.plain(), &newcomer.plain()),
        ),
    )
    .await;
    assert_eq!(reply["approved"], true, "{reply}");
    assert_eq!(reply["event"], ENROLL_NEW);
    assert!(is_enrolled(&svc, &keys, &check(&newcomer), "TRUSTED_DEVICE").await);
    let rows = method_rows(&app, &id);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].algorithm.as_deref(), Some("ED25519"));
    // The new device signs in.
    let login = signed_event(
        &keys,
        &id,
        &newcomer,
        &newcomer.plain(),
        "TRUSTED_DEVICE",
        now_secs(),
    );
    assert_eq!(ok(&svc, event(&keys, &login)).await["approved"], true);

    // The event needs the new key, and the TRUSTED_DEVICE method.
    let mut body = enroll(&trusted, &other_new.plain(), &other_new.plain());
    body["public_key"] = json!("");
    call(&svc, &event(&keys, &body))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    let mut body = enroll(&trusted, &other_new.plain(), &other_new.plain());
    body["method"] = json!("BIOMETRIC");
    call(&svc, &event(&keys, &body))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
}

/// A disabled user's events are a 409; a deleted user's and another project's user's a 404; an
/// `issuer` that is not the caller's key, a missing user or an unknown method a 400.
async fn events_refuse_unusable_users_and_other_issuers(backend: Backend) {
    let app = TestApp::new(backend);
    let (keys, other) = (app.project("p"), app.project("q"));
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(
        &svc,
        create(
            &keys,
            json!({"client_user_id": "app-u", "identifier": "u@x.io"}),
        ),
    )
    .await;
    let id = text(&user["ID"]);
    let phone = Device::ed(12);
    ok(&svc, put_user(&keys, &id, &pin("135790"))).await;
    ok(
        &svc,
        put_user(
            &keys,
            &id,
            &key_body("TRUSTED_DEVICE", true, &phone.plain()),
        ),
    )
    .await;

    // Another project's caller, with its own issuer.
    for name in [id.as_str(), "app-u"] {
        call(&svc, &event(&other, &pin_event(&other, name, "135790")))
            .await
            .assert_error(StatusCode::NOT_FOUND);
        let body = signed_event(
            &other,
            name,
            &phone,
            &phone.plain(),
            "TRUSTED_DEVICE",
            now_secs(),
        );
        call(&svc, &event(&other, &body))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
    assert_eq!(failures(&app, &id, "PIN"), None);
    // Another project's key as issuer.
    let msg = call(&svc, &event(&keys, &pin_event(&other, "app-u", "135790")))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    assert!(msg.contains("issuer"), "{msg}");
    let mut body = pin_event(&keys, "app-u", "135790");
    body["method"] = json!("FACE");
    call(&svc, &event(&keys, &body))
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    for missing in [json!(""), Value::Null] {
        let mut body = pin_event(&keys, "app-u", "135790");
        body["client_user_id"] = missing;
        call(&svc, &event(&keys, &body))
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    call(&svc, &event(&keys, &pin_event(&keys, "nobody", "135790")))
        .await
        .assert_error(StatusCode::NOT_FOUND);

    let disable = admin(
        &keys,
        Method::POST,
        &format!("/admin/v1/users/{id}/disable"),
    );
    assert_eq!(call(&svc, &disable).await.status, StatusCode::OK);
    call(&svc, &event(&keys, &pin_event(&keys, "app-u", "135790")))
        .await
        .assert_error(StatusCode::CONFLICT);
    let body = signed_event(
        &keys,
        "app-u",
        &phone,
        &phone.plain(),
        "TRUSTED_DEVICE",
        now_secs(),
    );
    call(&svc, &event(&keys, &body))
        .await
        .assert_error(StatusCode::CONFLICT);
    let enable = admin(&keys, Method::POST, &format!("/admin/v1/users/{id}/enable"));
    assert_eq!(call(&svc, &enable).await.status, StatusCode::OK);
    let reply = ok(&svc, event(&keys, &pin_event(&keys, "app-u", "135790"))).await;
    assert_eq!(reply["approved"], true);

    let delete = admin(&keys, Method::DELETE, &format!("/admin/v1/users/{id}"));
    assert!(call(&svc, &delete).await.status.is_success());
    for name in [id.as_str(), "app-u"] {
        call(&svc, &event(&keys, &pin_event(&keys, name, "135790")))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
}

// ---------------------------------------------------------------------------------------------
// A user's events in the admin API
// ---------------------------------------------------------------------------------------------

/// `GET /admin/v1/users/{id}/events`: the user's events alone, newest first, in cursor pages;
/// a deleted user's too; 404 for another project's user.
async fn admin_lists_a_users_events_newest_first(backend: Backend) {
    let app = TestApp::new(backend);
    let (keys, other) = (app.project("p"), app.project("q"));
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let mut ids = Vec::new();
    for name in ["app-l", "app-m"] {
        let user = ok(
            &svc,
            create(
                &keys,
                json!({"client_user_id": name, "identifier": format!("{name}@x.io")}),
            ),
        )
        .await;
        ids.push(text(&user["ID"]));
        ok(&svc, put_user(&keys, name, &pin("135790"))).await;
    }
    let id = &ids[0];
    let mut sent = Vec::new();
    for (code, ip) in [
        ("135790", "1.1.1.1"),
        ("975310", "2.2.2.2"),
        ("135790", "3.3.3.3"),
    ] {
        let mut body = pin_event(&keys, "app-l", code);
        body["ip"] = json!(ip);
        sent.push(ok(&svc, event(&keys, &body)).await["ID"].as_i64().unwrap());
        // The other user's events are not listed.
        ok(&svc, event(&keys, &pin_event(&keys, "app-m", "135790"))).await;
    }

    let uri = format!("/admin/v1/users/{id}/events");
    let page = ok(&svc, admin(&keys, Method::GET, &uri)).await;
    let events = page["events"].as_array().unwrap();
    let listed: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, [sent[2], sent[1], sent[0]]);
    assert_eq!(page["next_cursor"], Value::Null);
    let newest = &events[0];
    assert_eq!(newest["event"], LOGIN);
    assert_eq!(newest["method"], "PIN");
    assert_eq!(newest["approved"], true);
    assert_eq!(newest["ip"], "3.3.3.3");
    assert_eq!(newest["location"], "unknown");
    assert_eq!(newest["timestamp"], "1591234567");
    assert!(newest["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(events[1]["approved"], false);

    let first = ok(&svc, admin(&keys, Method::GET, &format!("{uri}?limit=2"))).await;
    let listed: Vec<i64> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [sent[2], sent[1]]);
    let cursor = text(&first["next_cursor"]);
    let next = ok(
        &svc,
        admin(
            &keys,
            Method::GET,
            &format!("{uri}?limit=2&cursor={}", url_encode(&cursor)),
        ),
    )
    .await;
    let listed: Vec<i64> = next["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [sent[0]]);
    assert_eq!(next["next_cursor"], Value::Null);
    // A cursor is the user's own.
    let theirs = format!("/admin/v1/users/{}/events?cursor={cursor}", ids[1]);
    call(&svc, &admin(&keys, Method::GET, &theirs))
        .await
        .assert_problem(StatusCode::BAD_REQUEST);

    call(&svc, &admin(&other, Method::GET, &uri))
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    let delete = admin(&keys, Method::DELETE, &format!("/admin/v1/users/{id}"));
    assert!(call(&svc, &delete).await.status.is_success());
    let page = ok(&svc, admin(&keys, Method::GET, &uri)).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// v2 password check
// ---------------------------------------------------------------------------------------------

/// `POST /v2/users/verify`: the right password is a 200 with the user's id; a wrong one, an
/// unknown email and a user without a password the same 401; five failures lock the password
/// (429 with Retry-After); a disabled user is a 409.
async fn v2_verify_checks_passwords_and_locks(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let created = call(
        &svc,
        &Req::post("/v2/users").keys(&keys).json(&v2_user(
            "ada@x.io",
            PASSWORD,
            "+15551234567",
            "Ada",
        )),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = text(&created.json()["id"]);
    ok(
        &svc,
        create(&keys, json!({"identifier": "nopassword@x.io"})),
    )
    .await;

    for email in ["ada@x.io", " ADA@X.io "] {
        let reply = ok(&svc, verify(&keys, email, PASSWORD)).await;
        assert_eq!(reply, json!({"id": id, "error_codes": []}));
    }

    let wrong = call(&svc, &verify(&keys, "ada@x.io", "wrong password")).await;
    assert_eq!(
        wrong.assert_v2_error(StatusCode::UNAUTHORIZED),
        ["INVALID_CREDENTIALS"]
    );
    for (email, password) in [
        ("nobody@x.io", PASSWORD),
        ("nopassword@x.io", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let reply = call(&svc, &verify(&keys, email, password)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{email}");
        assert_eq!(reply.body, wrong.body, "{email}");
    }
    assert_eq!(failures(&app, &id, "PASSWORD"), Some(1));
    for n in 2..=5 {
        call(&svc, &verify(&keys, "ada@x.io", "wrong password"))
            .await
            .assert_v2_error(StatusCode::UNAUTHORIZED);
        assert_eq!(failures(&app, &id, "PASSWORD"), Some(n));
    }
    let locked = call(&svc, &verify(&keys, "ada@x.io", PASSWORD)).await;
    assert_eq!(
        locked.assert_v2_error(StatusCode::TOO_MANY_REQUESTS),
        ["TOO_MANY_ATTEMPTS"]
    );
    let secs = retry_after(&locked);
    assert!((30..=60).contains(&secs), "{secs}");
    // Unknown emails are not locked: nothing to lock.
    call(&svc, &verify(&keys, "nobody@x.io", PASSWORD))
        .await
        .assert_v2_error(StatusCode::UNAUTHORIZED);

    expire_lock(&app, &id);
    ok(&svc, verify(&keys, "ada@x.io", PASSWORD)).await;
    assert_eq!(failures(&app, &id, "PASSWORD"), None, "a success resets");

    let disable = admin(
        &keys,
        Method::POST,
        &format!("/admin/v1/users/{id}/disable"),
    );
    assert_eq!(call(&svc, &disable).await.status, StatusCode::OK);
    let reply = call(&svc, &verify(&keys, "ada@x.io", PASSWORD)).await;
    assert_eq!(
        reply.assert_v2_error(StatusCode::CONFLICT),
        ["USER_DISABLED"]
    );
    // Without the password, a disabled user is answered like anyone else.
    let reply = call(&svc, &verify(&keys, "ada@x.io", "wrong password")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body, wrong.body);
}

/// A stored hash with weaker argon2 parameters (or another variant) verifies, and is replaced
/// by one in the current argon2id parameters after a success only.
async fn v2_verify_rehashes_weaker_hashes(backend: Backend) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let created = call(
        &svc,
        &Req::post("/v2/users").keys(&keys).json(&v2_user(
            "old@x.io",
            PASSWORD,
            "+15551234567",
            "Old",
        )),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = text(&created.json()["id"]);

    let params = argon2::Params::new(4096, 1, 1, None).unwrap();
    let weak = argon2::Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x13, params)
        .hash_password(
            PASSWORD.as_bytes(),
            &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
        )
        .unwrap()
        .to_string();
    assert!(weak.starts_with("$argon2i$v=19$m=4096,t=1,p=1$"), "{weak}");
    {
        let mut conn = app.state.pool.get().unwrap();
        diesel::update(users::table.find(&id))
            .set(users::password_hash.eq(&weak))
            .execute(conn.conn())
            .unwrap();
    }

    call(&svc, &verify(&keys, "old@x.io", "wrong password"))
        .await
        .assert_v2_error(StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.user_row(&id).password_hash.as_deref(),
        Some(weak.as_str())
    );

    ok(&svc, verify(&keys, "old@x.io", PASSWORD)).await;
    let fresh = app.user_row(&id).password_hash.unwrap();
    assert!(
        fresh.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{fresh}"
    );
    assert!(cotterd::passwords::verify(PASSWORD, &fresh));
    ok(&svc, verify(&keys, "old@x.io", PASSWORD)).await;
    assert_eq!(
        app.user_row(&id).password_hash,
        Some(fresh),
        "current: kept"
    );
}

// ---------------------------------------------------------------------------------------------
// The migration
// ---------------------------------------------------------------------------------------------

/// A database made before the SDK calls: the upgrade gives every user (deleted ones too) its
/// own id as `client_user_id` and its identifier as its one row of `user_identifiers` (deleted
/// with it), and the server then finds users by them.
async fn the_sdk_upgrade_gives_every_user_its_ids(backend: Backend) {
    let db = TestDb::new(backend);
    let settings = test_settings(&db);
    let manager = ConnectionManager::new(&settings.database).unwrap();
    let mut conn = manager.establish().unwrap();
    let next = |conn: &mut DbConn| {
        match conn {
            DbConn::Pg(c) => c.run_next_migration(PG_MIGRATIONS).map(drop),
            DbConn::Sqlite(c) => c.run_next_migration(SQLITE_MIGRATIONS).map(drop),
        }
        .expect("a migration")
    };
    // The migrations up to the admin API's.
    for _ in 0..4 {
        next(&mut conn);
    }
    let (p, q) = (
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
    );
    let at = "'2026-01-02 03:04:05.678901'";
    let user = |id: &str, issuer: &str, identifier: &str, deleted: &str| {
        format!(
            "INSERT INTO users (id, issuer, identifier, identifier_normalized, enrolled, \
                 created_at, updated_at, deleted_at) VALUES \
                 ('{id}', '{issuer}', '{identifier}', '{}', '[]', {at}, {at}, {deleted});",
            identifier.to_lowercase()
        )
    };
    conn.batch_execute(&format!(
        "INSERT INTO projects (id, name, require_secret, created_at) VALUES \
             ('{p}', 'p', FALSE, {at}), ('{q}', 'q', FALSE, {at});
         {}{}{}",
        user("u-1", p, "A@x.io", at),
        user("u-2", p, "A@x.io", "NULL"),
        user("u-3", q, "B@x.io", "NULL"),
    ))
    .expect("rows of the earlier schema");

    next(&mut conn);
    let ids: Vec<(String, String)> = users::table
        .select((users::id, users::client_user_id))
        .order(users::id)
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        ids,
        [
            ("u-1".into(), "u-1".into()),
            ("u-2".into(), "u-2".into()),
            ("u-3".into(), "u-3".into())
        ]
    );
    let deleted_at =
        NaiveDateTime::parse_from_str("2026-01-02 03:04:05.678901", "%F %T%.f").unwrap();
    let identifiers: Vec<(String, String, String, Option<NaiveDateTime>)> = user_identifiers::table
        .select((
            user_identifiers::user_id,
            user_identifiers::issuer,
            user_identifiers::identifier_normalized,
            user_identifiers::deleted_at,
        ))
        .order(user_identifiers::user_id)
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        identifiers,
        [
            ("u-1".into(), p.into(), "a@x.io".into(), Some(deleted_at)),
            ("u-2".into(), p.into(), "a@x.io".into(), None),
            ("u-3".into(), q.into(), "b@x.io".into(), None),
        ]
    );
    // A live user's client_user_id is taken from now on.
    assert!(conn
        .batch_execute(&format!(
            "INSERT INTO users (id, issuer, identifier, identifier_normalized, enrolled, \
                 created_at, updated_at, client_user_id) VALUES \
                 ('u-4', '{p}', 'C@x.io', 'c@x.io', '[]', {at}, {at}, 'u-2');"
        ))
        .is_err());
    drop(conn);

    let state = cotterd::AppState::open(settings).expect("open the upgraded database");
    let svc = init_service(cotterd::app(state)).await;
    let keys = Keys {
        id: p.to_owned(),
        secret: String::new(),
    };
    let found = ok(&svc, get(&keys, "/api/v0/user/u-2")).await;
    assert_eq!(
        (&found["ID"], &found["client_user_id"], &found["identifier"]),
        (&json!("u-2"), &json!("u-2"), &json!("A@x.io"))
    );
    let found = ok(&svc, get(&keys, "/api/v0/user?identifier=a%40x.io")).await;
    assert_eq!(found["ID"], "u-2");
    call(&svc, &get(&keys, "/api/v0/user/u-1"))
        .await
        .assert_error(StatusCode::NOT_FOUND);
    call(&svc, &create(&keys, json!({"identifier": "a@X.io"})))
        .await
        .assert_error(StatusCode::CONFLICT);
    ok(&svc, create(&keys, json!({"identifier": "b@x.io"}))).await;
}

/// An app configured with its key id in upper case passes the key check, names that spelling
/// as `issuer` and signs with it: its approvals are checked as it signed them.
async fn an_upper_case_key_id_signs_as_spelled(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let upper = Keys {
        id: keys.id.to_uppercase(),
        secret: keys.secret.clone(),
    };
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(&svc, create(&upper, json!({"identifier": "u@x.io"}))).await;
    let id = text(&user["ID"]);
    let pixel = Device::ed(9);
    let enroll = json!({"method": "TRUSTED_DEVICE", "enrolled": true, "code": pixel.plain()});
    ok(&svc, put_user(&upper, &id, &enroll)).await;
    let body = signed_event(
        &upper,
        &id,
        &pixel,
        &pixel.plain(),
        "TRUSTED_DEVICE",
        now_secs(),
    );
    assert_eq!(body["issuer"], upper.id);
    let reply = ok(&svc, event(&upper, &body)).await;
    assert_eq!(reply["approved"], true, "{reply}");
    assert_eq!(reply["issuer"], keys.id, "the project's own spelling");
}

/// App ids that would end or split a path the SDKs build are refused.
async fn app_ids_that_break_paths_are_refused(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    for bad in [
        "team/42", "a?b", "a#b", "100%", "a\\b", ".", "..", "list", "any",
    ] {
        let body = json!({"client_user_id": bad, "identifier": "x@x.io"});
        let reply = call(&svc, &create(&keys, body)).await;
        let msg = reply.assert_error(StatusCode::BAD_REQUEST);
        assert!(msg.contains("client_user_id"), "{bad}: {msg}");
    }
    assert_eq!(app.count_users(&keys.id), 0);
}

/// The janitor deletes events older than EVENT_RETENTION_DAYS and keeps the others; 0 keeps all.
async fn old_events_are_deleted_by_the_janitor(backend: Backend) {
    use cotterd::db::schema::events;
    use cotterd::janitor::Keep;
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let user = ok(&svc, create(&keys, json!({"identifier": "e@x.io"}))).await;
    let id = text(&user["ID"]);
    for _ in 0..3 {
        ok(&svc, event(&keys, &pin_event(&keys, &id, "246801"))).await;
    }
    let now = cotterd::time::now();
    {
        let mut conn = app.state.pool.get().unwrap();
        let first: i64 = events::table
            .select(diesel::dsl::min(events::id))
            .first::<Option<i64>>(conn.conn())
            .unwrap()
            .unwrap();
        diesel::update(events::table.filter(events::id.eq(first)))
            .set(events::created_at.eq(now - chrono::Duration::days(91)))
            .execute(conn.conn())
            .unwrap();
    }
    let keep = |event_days| Keep {
        deleted_user_days: 30,
        idempotency_hours: 24,
        event_skew_secs: 300,
        event_days,
        console: Default::default(),
    };
    let (done, failed) = crate::common::upkeep(&app.state.pool, now, keep(0));
    assert!(failed.is_none());
    assert_eq!(done.events_expired, 0, "0 keeps every event");
    let (done, failed) = crate::common::upkeep(&app.state.pool, now, keep(90));
    assert!(failed.is_none());
    assert_eq!(done.events_expired, 1);
    let mut conn = app.state.pool.get().unwrap();
    let left: i64 = events::table.count().get_result(conn.conn()).unwrap();
    assert_eq!(left, 2);
}

both_backends!(
    old_events_are_deleted_by_the_janitor,
    an_upper_case_key_id_signs_as_spelled,
    app_ids_that_break_paths_are_refused,
    create_takes_every_sdk_body,
    create_refuses_taken_and_invalid_ids,
    a_client_user_id_cannot_take_another_users_id,
    a_restore_needs_the_users_ids_free,
    a_purge_removes_the_users_sdk_rows,
    pin_is_enrolled_changed_and_removed,
    pins_must_be_digits_and_hard_to_guess,
    device_keys_of_every_sdk_enroll,
    bad_keys_and_methods_are_refused,
    a_user_has_at_most_twenty_keys_per_method,
    updates_refuse_disabled_and_foreign_users,
    enrollment_checks_answer_every_sdk,
    pin_events_approve_and_lock,
    signed_events_of_every_key_kind,
    signed_events_refuse_stale_timestamps_and_replays,
    a_trusted_device_enrolls_a_new_one,
    events_refuse_unusable_users_and_other_issuers,
    admin_lists_a_users_events_newest_first,
    v2_verify_checks_passwords_and_locks,
    v2_verify_rehashes_weaker_hashes,
    the_sdk_upgrade_gives_every_user_its_ids,
);
