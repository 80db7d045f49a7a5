//! Cross-project probes: project B tries every way to reach project A's users and secrets.

use std::collections::BTreeSet;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::test::init_service;
use serde_json::{json, Value};

use super::{listing, same_spellings, Normaliser};
use crate::common::catalogue::{route_of, Route, KEYED_ROUTES};
use crate::common::req::{call, Req};
use crate::common::rows::Snapshot;
use crate::common::{
    device_enc_key, enroll_device_body, figure, reply_id, unsigned_event_body, url_encode, v2_user,
    Backend, Keys, Reply, TestApp, PASSWORD,
};
use cotterd::projects;
use cotterd::users::normalize_identifier;

/// A project's users, and every string about them that no other project may ever see.
struct Population {
    keys: Keys,
    user_ids: Vec<String>,
    account_ids: Vec<String>,
    identifiers: Vec<String>,
    /// The ids of the project's secrets (its first, one issued over the admin API, and one
    /// issued and revoked), oldest first.
    secret_ids: Vec<String>,
    /// Ids, identifiers (as given and normalised), emails, kyc ids, account ids, phones, names,
    /// the project's keys.
    private: Vec<String>,
    /// `private` without the identifiers (for answers that echo an identifier the caller sent).
    private_but_identifiers: Vec<String>,
}

/// Makes a project's users: two through v0 (one with a mixed-case identifier), two through v2
/// (one with a kyc_id and two accounts); and two more secrets over the admin API, one of them
/// revoked. `tag` and `digit` keep every value apart from other projects'.
async fn populate<S, B>(svc: &S, keys: &Keys, tag: &str, digit: u8) -> Population
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let upper = tag.to_uppercase();
    let (mut user_ids, mut account_ids) = (Vec::new(), Vec::new());
    let mut others = vec![keys.id.clone(), keys.secret.clone()];
    let v0 = [
        format!("fiona.{tag}@example.com"),
        format!("Oscar.{upper}@Example.com"),
    ];
    for identifier in &v0 {
        let req = Req::post("/api/v0/user/create").keys(keys);
        let reply = call(svc, &req.json(&json!({ "identifier": identifier }))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        user_ids.push(reply_id(&reply));
    }
    let v2 = [
        format!("carol.{tag}@example.com"),
        format!("dave.{tag}@example.com"),
    ];
    for (n, email) in v2.iter().enumerate() {
        let (phone, first, last) = (
            format!("+1555{digit}00{n}77"),
            format!("First{upper}{n}"),
            format!("Last{upper}{n}"),
        );
        let body = json!({
            "login": {"email": email, "password": PASSWORD},
            "phone_number": phone, "first_name": first, "last_name": last,
        });
        let reply = call(svc, &Req::post("/v2/users").keys(keys).json(&body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        user_ids.push(reply_id(&reply));
        others.extend([phone, first, last]);
    }
    let carol = user_ids[2].clone();
    let kyc = format!("kyc-carol-{tag}-7741");
    let req = Req::patch(format!("/v2/users/{carol}")).keys(keys);
    assert_eq!(
        call(svc, &req.json(&json!({ "kyc_id": kyc }))).await.status,
        StatusCode::OK
    );
    others.push(kyc);
    for account_type in ["checking", "savings"] {
        let body = json!({"user_id": carol, "account_type": account_type});
        let reply = call(svc, &Req::post("/v2/accounts").keys(keys).json(&body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        account_ids.push(reply_id(&reply));
    }
    others.extend(user_ids.iter().chain(&account_ids).cloned());
    let mut issued = Vec::new();
    for _ in 0..2 {
        let reply = call(svc, &Req::post("/admin/v1/secrets").keys(keys)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let json = reply.json();
        others.push(json["secret"].as_str().unwrap().to_owned());
        issued.push(reply_id(&reply));
    }
    let revoke = Req::post(format!("/admin/v1/secrets/{}/revoke", issued[0])).keys(keys);
    let reply = call(svc, &revoke).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let list = own_secrets(svc, keys).await;
    let secrets = list["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 3, "{list}");
    let secret_ids: Vec<String> = secrets
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    for secret in secrets {
        others.push(secret["id"].as_str().unwrap().to_owned());
        others.push(secret["prefix"].as_str().unwrap().to_owned());
    }
    others.extend(others.clone().iter().map(|s| s.to_uppercase()));
    let identifiers: Vec<String> = v0.into_iter().chain(v2).collect();
    let mut private = others.clone();
    for identifier in &identifiers {
        private.extend([
            identifier.clone(),
            identifier.to_lowercase(),
            normalize_identifier(identifier),
        ]);
    }
    Population {
        keys: keys.clone(),
        user_ids,
        account_ids,
        identifiers,
        secret_ids,
        private,
        private_but_identifiers: others,
    }
}

/// `GET /admin/v1/secrets` with `keys`: the project's secrets, as listed.
async fn own_secrets<S, B>(svc: &S, keys: &Keys) -> Value
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = call(svc, &Req::get("/admin/v1/secrets").keys(keys)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()
}

/// `POST /admin/v1/secrets/{id}/revoke` with `keys`.
fn revoke_secret(id: &str, keys: &Keys) -> Req {
    Req::post(format!("/admin/v1/secrets/{}/revoke", url_encode(id))).keys(keys)
}

/// What a probe's answer is compared with.
enum Twin {
    /// The answer to this request for a target that does not exist: must be byte-identical.
    Exact(Req),
    /// The answer to this create of an unused identifier: must be equal once ids, times and the
    /// identifier are normalised (B may use A's identifiers: projects are separate namespaces,
    /// and a 409 would tell B that A has the user).
    Alike(Req),
    /// A 200 that, like every answer, holds nothing of A's (checked for every probe).
    Leakless,
    /// A page of B's admin list: must hold B's users only, and all of them.
    OwnAdminPage,
    /// A page of B's own list: must hold B's users only.
    OwnPage,
    /// B's export: B's users only, and all of them.
    OwnExport,
    /// B's secrets: B's only, and all of them.
    OwnSecrets,
}

struct Probe {
    req: Req,
    twin: Twin,
}

/// A UUID spelled the ways `Uuid::try_parse` accepts: lower and upper case, braced, simple, URN.
fn id_spellings(id: &str) -> [String; 5] {
    [
        id.to_lowercase(),
        id.to_uppercase(),
        format!("{{{id}}}"),
        id.replace('-', ""),
        format!("urn:uuid:{id}"),
    ]
}

/// A request of `route` naming the user `id` (in the path or the body), with `keys`.
fn by_user_id(route: Route, id: &str, keys: &Keys) -> Req {
    match route {
        Route::V0GetById => Req::get(format!("/api/v0/user/{}", url_encode(id))).keys(keys),
        Route::V2Get => Req::get(format!("/v2/users/{}", url_encode(id))).keys(keys),
        Route::V2Patch => Req::patch(format!("/v2/users/{}", url_encode(id)))
            .keys(keys)
            .json(&json!({"kyc_id": "kyc-by-b"})),
        Route::V2Accounts => Req::post("/v2/accounts")
            .keys(keys)
            .json(&json!({"user_id": id, "account_type": "checking"})),
        Route::AdminGet => Req::get(format!("/admin/v1/users/{}", url_encode(id))).keys(keys),
        Route::AdminDelete => Req::new(
            Method::DELETE,
            format!("/admin/v1/users/{}", url_encode(id)),
        )
        .keys(keys),
        Route::AdminRestore => {
            Req::post(format!("/admin/v1/users/{}/restore", url_encode(id))).keys(keys)
        }
        Route::AdminDisable => {
            Req::post(format!("/admin/v1/users/{}/disable", url_encode(id))).keys(keys)
        }
        Route::AdminEnable => {
            Req::post(format!("/admin/v1/users/{}/enable", url_encode(id))).keys(keys)
        }
        Route::V0UpdateMethods => Req::new(Method::PUT, format!("/api/v0/user/{}", url_encode(id)))
            .keys(keys)
            .json(&enroll_device_body()),
        Route::V0UpdateMethodsByCotterId => Req::new(
            Method::PUT,
            format!("/api/v0/user/methods?cotter_user_id={}", url_encode(id)),
        )
        .keys(keys)
        .json(&enroll_device_body()),
        Route::V0EnrolledByCotterId => Req::get(format!(
            "/api/v0/user/methods?cotter_user_id={}&method=TRUSTED_DEVICE&public_key={}",
            url_encode(id),
            device_enc_key()
        ))
        .keys(keys),
        Route::V0Enrolled => {
            Req::get(format!("/api/v0/user/enrolled/{}/PIN", url_encode(id))).keys(keys)
        }
        Route::V0EnrolledKey => Req::get(format!(
            "/api/v0/user/enrolled/{}/TRUSTED_DEVICE/{}",
            url_encode(id),
            device_enc_key()
        ))
        .keys(keys),
        Route::V0EnrolledAny => Req::get(format!(
            "/api/v0/user/enrolled/any/{}/TRUSTED_DEVICE",
            url_encode(id)
        ))
        .keys(keys),
        Route::V0ResetPin => {
            Req::post(format!("/api/v0/user/reset/start/{}", url_encode(id))).keys(keys)
        }
        Route::V0Event => {
            // One timestamp for a probe and its twin, so that their bodies differ by the id.
            let mut body = unsigned_event_body(id);
            body["timestamp"] = json!("1700000000");
            Req::post("/api/v0/event/create").keys(keys).json(&body)
        }
        Route::AdminUserEvents => {
            Req::get(format!("/admin/v1/users/{}/events", url_encode(id))).keys(keys)
        }
        Route::V0Create
        | Route::V0Get
        | Route::V0List
        | Route::V2Create
        | Route::V2Verify
        | Route::AdminList
        | Route::AdminCreate
        | Route::AdminCount
        | Route::AdminAudit
        | Route::AdminSignups
        | Route::AdminExport
        | Route::AdminImport
        | Route::AdminSecrets
        | Route::AdminCreateSecret
        | Route::AdminRevokeSecret => {
            panic!("{route:?} takes no user id")
        }
    }
}

/// Every way of B's (`b`) to reach A's (`a`) users, each with its twin.
fn bola_probes(a: &Population, b: &Population) -> Vec<Probe> {
    let mut probes = Vec::new();
    let random = || uuid::Uuid::new_v4().to_string();
    let mut exact = |req: Req, twin: Req| {
        probes.push(Probe {
            req,
            twin: Twin::Exact(twin),
        })
    };

    // A's identifiers, every spelling, against the same spelling of an unused identifier.
    for (n, identifier) in a.identifiers.iter().enumerate() {
        let unused = format!("nofile{n}.z@example.com");
        let spellings = |id: &str| {
            let mut all = vec![id.to_owned(), id.to_lowercase()];
            all.extend(same_spellings(id));
            all.into_iter().map(|s| {
                Req::get(format!("/api/v0/user?identifier={}", url_encode(&s))).keys(&b.keys)
            })
        };
        let theirs: Vec<Req> = spellings(identifier).collect();
        for (req, twin) in theirs.into_iter().zip(spellings(&unused)) {
            exact(req, twin);
        }
    }

    // A's user ids (and account ids, which are no user ids either), every spelling, on every
    // route that takes a user id, against the same spelling of a random id.
    let by_id: Vec<Route> = KEYED_ROUTES
        .iter()
        .filter(|keyed| keyed.takes_user_id)
        .map(|keyed| keyed.route)
        .collect();
    for id in a.user_ids.iter().chain(&a.account_ids) {
        let twin = random();
        for (theirs, unused) in id_spellings(id).iter().zip(id_spellings(&twin)) {
            for &route in &by_id {
                exact(
                    by_user_id(route, theirs, &b.keys),
                    by_user_id(route, &unused, &b.keys),
                );
            }
        }
    }

    // A's secret ids (live, and revoked), every spelling, revoked by B: the same 404 as an id
    // no secret has (B has more than one live secret, so its last is not at stake either).
    for id in &a.secret_ids {
        let twin = random();
        for (theirs, unused) in id_spellings(id).iter().zip(id_spellings(&twin)) {
            exact(
                revoke_secret(theirs, &b.keys),
                revoke_secret(&unused, &b.keys),
            );
        }
    }

    // A's users' emails (and identifiers) with the password they were made with, checked by B:
    // the same 401 as an email no user has.
    for (n, identifier) in a.identifiers.iter().enumerate() {
        let verify = |email: &str| {
            Req::post("/v2/users/verify")
                .keys(&b.keys)
                .json(&json!({"email": email, "password": PASSWORD}))
        };
        exact(
            verify(identifier),
            verify(&format!("noverify{n}@example.com")),
        );
    }

    // B's own user with A's ids (and A's key id as an issuer) in the body.
    let mine = &b.user_ids[2];
    for id in &a.user_ids {
        let patch = |body: Value| {
            Req::patch(format!("/v2/users/{mine}"))
                .keys(&b.keys)
                .json(&body)
        };
        exact(
            patch(json!({"kyc_id": "k", "user_id": id})),
            patch(json!({"kyc_id": "k", "user_id": random()})),
        );
    }
    {
        let (issuer, twin) = (&a.keys.id, random());
        let create = |issuer: &str| {
            Req::post("/api/v0/user/create")
                .keys(&b.keys)
                .json(&json!({"identifier": "mass@example.com", "issuer": issuer}))
        };
        exact(create(issuer), create(&twin));
        let signup = |issuer: &str| {
            let mut body = v2_user("mass@example.com", PASSWORD, "+15551234567", "Mass");
            body["issuer"] = json!(issuer);
            Req::post("/v2/users").keys(&b.keys).json(&body)
        };
        exact(signup(issuer), signup(&twin));
        let patch = |issuer: &str| {
            Req::patch(format!("/v2/users/{mine}"))
                .keys(&b.keys)
                .json(&json!({"kyc_id": "k", "issuer": issuer}))
        };
        exact(patch(issuer), patch(&twin));
    }

    // Mixed keys: one project's key id with the other's secret, both ways; two key ids.
    let wrong = format!("{}{}", projects::SECRET_PREFIX, "0".repeat(64));
    for (id_of, secret_of, targets) in [(a, b, &b.user_ids), (b, a, &a.user_ids)] {
        let mixed = Keys {
            id: id_of.keys.id.clone(),
            secret: secret_of.keys.secret.clone(),
        };
        let made_up = Keys {
            id: id_of.keys.id.clone(),
            secret: wrong.clone(),
        };
        exact(
            Req::get("/api/v0/user/list?page=0").keys(&mixed),
            Req::get("/api/v0/user/list?page=0").keys(&made_up),
        );
        for id in targets {
            let twin = random();
            for &route in &by_id {
                exact(
                    by_user_id(route, id, &mixed),
                    by_user_id(route, &twin, &mixed),
                );
            }
        }
        let secrets = if std::ptr::eq(secret_of, a) {
            &a.secret_ids
        } else {
            &b.secret_ids
        };
        for id in secrets {
            exact(revoke_secret(id, &mixed), revoke_secret(&random(), &mixed));
        }
        exact(
            Req::get("/admin/v1/secrets").keys(&mixed),
            Req::get("/admin/v1/secrets").keys(&made_up),
        );
    }
    for id in &a.user_ids {
        // B's keys and A's key id as a second API_KEY_ID header, after B's and before them.
        let after = |target: &str| {
            Req::get(format!("/v2/users/{target}"))
                .keys(&b.keys)
                .header("API_KEY_ID", &a.keys.id)
        };
        let before = |target: &str| {
            Req::get(format!("/v2/users/{target}"))
                .header("API_KEY_ID", &a.keys.id)
                .keys(&b.keys)
        };
        exact(after(id), after(&random()));
        exact(before(id), before(&random()));
    }

    // Every page of B's list, and one far past the end.
    for page in [0, 1, 2, 1_000_000] {
        probes.push(Probe {
            req: Req::get(format!("/api/v0/user/list?page={page}")).keys(&b.keys),
            twin: Twin::OwnPage,
        });
    }

    // B's admin views: its whole list (every status, A's identifiers as search prefixes), its
    // counts, its audit trail and its statistics hold nothing of A's.
    probes.push(Probe {
        req: Req::get("/admin/v1/users?status=all&limit=500&include_total=true").keys(&b.keys),
        twin: Twin::OwnAdminPage,
    });
    probes.push(Probe {
        req: Req::get("/admin/v1/users/export?include=password_hash").keys(&b.keys),
        twin: Twin::OwnExport,
    });
    probes.push(Probe {
        req: Req::get("/admin/v1/secrets").keys(&b.keys),
        twin: Twin::OwnSecrets,
    });
    // A's key id in the list's query changes nothing: B's list, still.
    probes.push(Probe {
        req: Req::get(format!("/admin/v1/secrets?project_id={}", a.keys.id)).keys(&b.keys),
        twin: Twin::OwnSecrets,
    });
    // Resuming an export after one of A's users is refused as after an id no user has.
    for id in &a.user_ids {
        let after = |id: &str| Req::get(format!("/admin/v1/users/export?after={id}")).keys(&b.keys);
        probes.push(Probe {
            req: after(id),
            twin: Twin::Exact(after(&random())),
        });
    }
    for identifier in &a.identifiers {
        let q = url_encode(&identifier[..identifier.len().min(8)]);
        for path in [
            format!("/admin/v1/users?status=all&q={q}"),
            format!("/admin/v1/users/count?status=all&q={q}"),
            format!("/admin/v1/users/export?q={q}"),
        ] {
            probes.push(Probe {
                req: Req::get(path).keys(&b.keys),
                twin: Twin::Leakless,
            });
        }
    }
    for path in [
        "/admin/v1/users/count?status=all",
        "/admin/v1/audit?limit=500",
        "/admin/v1/stats/signups?days=2",
    ] {
        probes.push(Probe {
            req: Req::get(path).keys(&b.keys),
            twin: Twin::Leakless,
        });
    }

    // Last, as they add to B: creates of A's identifiers, against creates of unused ones.
    for (n, identifier) in a.identifiers.iter().enumerate() {
        let unused = format!("unused{n}.z@example.com");
        let v0 = |id: &str| {
            Req::post("/api/v0/user/create")
                .keys(&b.keys)
                .json(&json!({ "identifier": id }))
        };
        let v2 = |id: &str| {
            Req::post("/v2/users")
                .keys(&b.keys)
                .json(&v2_user(id, PASSWORD, "+15551234567", "Bee"))
        };
        probes.push(Probe {
            req: v0(&identifier.to_uppercase()),
            twin: Twin::Alike(v0(&unused.to_uppercase())),
        });
        probes.push(Probe {
            req: v2(identifier),
            twin: Twin::Alike(v2(&unused)),
        });
        let admin = |id: &str| {
            Req::post("/admin/v1/users")
                .keys(&b.keys)
                .json(&json!({ "identifier": id }))
        };
        probes.push(Probe {
            req: admin(&format!("x{identifier}")),
            twin: Twin::Alike(admin(&format!("x{unused}"))),
        });
        // An import names identifiers too (an import of A's user ids is refused with ID_TAKEN,
        // as ids are unique across the server: README states what that tells).
        let import = |id: &str| {
            let line = format!("{}\n", json!({ "identifier": id }));
            Req::post("/admin/v1/users/import")
                .keys(&b.keys)
                .body(Some("application/x-ndjson"), line.into_bytes())
        };
        probes.push(Probe {
            req: import(&format!("i{identifier}")),
            twin: Twin::Alike(import(&format!("i{unused}"))),
        });
    }
    // B issues a secret naming A's project in the query and the body: B's secret, like any.
    let issue = |project: &str| {
        Req::post(format!("/admin/v1/secrets?project_id={project}"))
            .keys(&b.keys)
            .json(&json!({ "project_id": project, "key_id": project }))
    };
    probes.push(Probe {
        req: issue(&a.keys.id),
        twin: Twin::Alike(issue(&random())),
    });
    probes
}

/// An answer with what differs between two creates blanked: ids, times, the identifier.
fn alike(reply: &Reply) -> String {
    let mut names = Normaliser::default();
    let mut verdict = names.verdict(reply);
    if let Ok(json) = serde_json::from_str::<Value>(&reply.body) {
        if let Some(identifier) = json["identifier"].as_str() {
            verdict = verdict.replace(&Value::from(identifier).to_string(), "\"<identifier>\"");
        }
    }
    verdict
}

/// Project B probes project A's users every way it can, on every keyed route; nothing of A's
/// comes back, every answer is the one a missing target gets, and A's rows do not change.
async fn other_projects_cannot_reach_a_users(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let a = populate(&svc, &app.project("a"), "a", 1).await;
    let b = populate(&svc, &app.project("b"), "b", 2).await;
    let a_before = Snapshot::take(&app, Some(&a.keys.id));
    let a_secrets_before = own_secrets(&svc, &a.keys).await;

    let probes = bola_probes(&a, &b);
    let probed: BTreeSet<Route> = probes
        .iter()
        .filter_map(|probe| route_of(&probe.req.method, probe.req.path()))
        .collect();
    let all: BTreeSet<Route> = KEYED_ROUTES.iter().map(|keyed| keyed.route).collect();
    assert_eq!(probed, all, "keyed routes no probe reaches");
    let mut leaks = Vec::new();
    let mut differing = Vec::new();
    let mut listed = BTreeSet::new();
    for probe in &probes {
        let reply = call(&svc, &probe.req).await;
        let what = probe.req.describe();
        let private = match probe.twin {
            Twin::Alike(_) => &a.private_but_identifiers,
            _ => &a.private,
        };
        let headers: Vec<&str> = reply
            .headers
            .iter()
            .filter_map(|(_, v)| v.to_str().ok())
            .collect();
        let seen = format!("{} {}", reply.body, headers.join(" "));
        for secret in private.iter().filter(|s| seen.contains(s.as_str())) {
            leaks.push(format!("{what}: {secret:?} in {}", reply.body));
        }
        let difference = match &probe.twin {
            Twin::Exact(twin) => {
                let twin = call(&svc, twin).await;
                ((reply.status, &reply.body) != (twin.status, &twin.body))
                    .then(|| format!("missing target: {} {}", twin.status, twin.body))
            }
            Twin::Alike(twin) => {
                let twin = alike(&call(&svc, twin).await);
                (alike(&reply) != twin).then(|| format!("unused identifier: {twin}"))
            }
            Twin::Leakless => (reply.status != StatusCode::OK).then(|| "expected 200".to_owned()),
            Twin::OwnAdminPage => {
                let json = reply.json();
                let users = json["users"].as_array().cloned().unwrap_or_default();
                let ids: BTreeSet<String> = users
                    .iter()
                    .map(|u| u["id"].as_str().unwrap_or_default().to_owned())
                    .collect();
                let all_b: BTreeSet<String> = b.user_ids.iter().cloned().collect();
                (reply.status != StatusCode::OK
                    || ids != all_b
                    || json["total"] != b.user_ids.len())
                .then(|| "not exactly B's users".to_owned())
            }
            Twin::OwnExport => {
                let ids: BTreeSet<String> = reply
                    .body
                    .lines()
                    .map(|line| {
                        let record: Value = serde_json::from_str(line).unwrap_or_default();
                        record["id"].as_str().unwrap_or_default().to_owned()
                    })
                    .collect();
                let all_b: BTreeSet<String> = b.user_ids.iter().cloned().collect();
                (reply.status != StatusCode::OK || ids != all_b)
                    .then(|| "not exactly B's users".to_owned())
            }
            Twin::OwnSecrets => {
                let json = reply.json();
                let ids: Vec<String> = json["secrets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
                    .collect();
                (reply.status != StatusCode::OK || ids != b.secret_ids)
                    .then(|| "not exactly B's secrets".to_owned())
            }
            Twin::OwnPage => {
                let users = reply.json().as_array().cloned().unwrap_or_default();
                let ids: Vec<String> = users
                    .iter()
                    .map(|u| u["ID"].as_str().unwrap_or_default().to_owned())
                    .collect();
                let own = users.iter().all(|u| u["issuer"] == b.keys.id.as_str())
                    && ids.iter().all(|id| b.user_ids.contains(id));
                listed.extend(ids);
                (reply.status != StatusCode::OK || !own)
                    .then(|| "a user that is not B's".to_owned())
            }
        };
        if let Some(difference) = difference {
            differing.push(format!(
                "{what}\n    got: {} {}\n    {difference}",
                reply.status, reply.body
            ));
        }
    }
    let b_ids: BTreeSet<String> = b.user_ids.iter().cloned().collect();
    if listed != b_ids {
        differing.push(format!("B's pages held {listed:?}, B has {b_ids:?}"));
    }
    let a_after = Snapshot::take(&app, Some(&a.keys.id));
    let (added, changed) = a_after.diff(&a_before);
    let a_secrets_after = own_secrets(&svc, &a.keys).await;

    figure(&format!("bola.{}.probes", backend.label()), probes.len());
    figure(&format!("bola.{}.leaks", backend.label()), leaks.len());
    figure(
        &format!("bola.{}.answers_differing_from_not_found", backend.label()),
        differing.len(),
    );
    figure(
        &format!("bola.{}.a_rows_changed", backend.label()),
        added.len() + changed.len(),
    );
    figure(
        &format!("bola.{}.a_secrets_changed", backend.label()),
        usize::from(a_secrets_after != a_secrets_before),
    );
    assert!(
        leaks.is_empty(),
        "A's data in B's answers: {}",
        listing(&leaks)
    );
    assert!(
        differing.is_empty(),
        "answers that tell A's users apart: {}",
        listing(&differing)
    );
    assert_eq!(
        a_after, a_before,
        "A's rows changed: added {added:?}, changed {changed:?}"
    );
    assert_eq!(
        a_secrets_after, a_secrets_before,
        "A's secrets changed (one revoked, or one issued)"
    );
    assert_eq!(a_before.users.len(), 4);
    assert_eq!(a_before.accounts.len(), 2);
}
both_backends!(other_projects_cannot_reach_a_users);
