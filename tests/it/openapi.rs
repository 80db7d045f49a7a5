//! The OpenAPI document against the app: every documented operation is served, every served
//! route is documented, and sample responses match the schema documented for their status.

use std::collections::BTreeSet;

use actix_web::test::{init_service, TestRequest};
use serde_json::{json, Value};

use crate::common::catalogue::KEYED_ROUTES;
use crate::common::{send, with_keys, Backend, TestApp};

fn document() -> Value {
    serde_json::from_str(cotterd::api::openapi::document()).expect("the document is JSON")
}

/// (method, path template) of every documented operation.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// (method, path template) of every route of the table the app is registered from, a
/// segment's pattern (`{encKey:.+}`) left out as the document writes it (`{encKey}`).
fn registered() -> BTreeSet<(String, String)> {
    cotterd::api::routes()
        .iter()
        .map(|endpoint| (endpoint.method.to_string(), without_patterns(endpoint.path)))
        .collect()
}

fn without_patterns(path: &str) -> String {
    let (mut out, mut in_braces, mut skipping) = (String::new(), false, false);
    for c in path.chars() {
        match c {
            '{' => in_braces = true,
            '}' => (in_braces, skipping) = (false, false),
            ':' if in_braces => skipping = true,
            _ => {}
        }
        if !skipping || c == '}' {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_document_and_the_routes_are_the_same_set() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = documented(&doc);
    let registered = registered();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not registered: {unserved:?}"
    );
}

/// The security alternatives an operation documents (none for an open one).
fn security_alternatives(operation: &Value) -> Vec<Value> {
    operation["security"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// (method, path template, whether `API_SECRET_KEY` is needed) of every operation the document
/// says takes `API_KEY_ID`.
fn keyed_operations(doc: &Value) -> BTreeSet<(String, String, bool)> {
    let mut keyed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let alternatives = security_alternatives(operation);
            // The alternatives with keys: an admin operation also takes the console's session
            // instead (`keyed_admin_operations_take_the_console_session`).
            let with_keys: Vec<&Value> = alternatives
                .iter()
                .filter(|a| a.get("api_key_id").is_some())
                .collect();
            if !with_keys.is_empty() {
                let needs_secret = with_keys.iter().all(|a| a.get("api_secret_key").is_some());
                keyed.insert((method.to_uppercase(), path.clone(), needs_secret));
            }
        }
    }
    keyed
}

/// The route catalogue the security suites iterate is exactly the document's keyed operations:
/// a new keyed endpoint cannot be left out of the credentials matrix, the hostile corpus or the
/// cross-project probes.
#[test]
fn the_catalogue_is_the_documents_keyed_operations() {
    let catalogue: BTreeSet<(String, String, bool)> = KEYED_ROUTES
        .iter()
        .map(|keyed| {
            let method = keyed.method.to_string();
            (method, keyed.template.to_owned(), keyed.needs_secret)
        })
        .collect();
    assert_eq!(catalogue.len(), KEYED_ROUTES.len(), "no route twice");
    assert_eq!(catalogue, keyed_operations(&document()));
}

/// Every admin operation that takes the keys takes the console's session cookie instead (the
/// extractor's `Console::Accepted`), and no other API's operation does.
#[test]
fn keyed_admin_operations_take_the_console_session() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let alternatives = security_alternatives(operation);
            let keyed = alternatives.iter().any(|a| a.get("api_key_id").is_some());
            let session = alternatives
                .iter()
                .any(|a| a.get("console_session").is_some());
            if keyed {
                assert_eq!(
                    session,
                    path.starts_with("/admin/"),
                    "{method} {path}: {alternatives:?}"
                );
            }
        }
    }
    assert!(doc["components"]["securitySchemes"]["console_session"].is_object());
}

/// The schema documented for (template, method, status), with the components beside it so
/// that `$ref`s resolve.
fn schema_for(doc: &Value, template: &str, method: &str, status: u16) -> Value {
    let response = &doc["paths"][template][method.to_lowercase()]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {template} does not document status {status}"
    );
    let content = response["content"].as_object().expect("documented content");
    let (_, media) = content.iter().next().expect("one media type");
    let mut schema = media["schema"].clone();
    schema["components"] = doc["components"].clone();
    forbid_unknown_properties(&mut schema);
    schema
}

/// Makes every object schema refuse properties it does not name, so that an extra or renamed
/// field fails the check.
fn forbid_unknown_properties(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("object")) && map.contains_key("properties") {
                map.insert("additionalProperties".into(), json!(false));
            }
            map.values_mut().for_each(forbid_unknown_properties);
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_unknown_properties),
        _ => {}
    }
}

/// Every documented operation answers through the app with a status its documentation lists:
/// without keys, 401 where the document asks for keys (so a removed route, answering the app's
/// 404, fails), 200 where it does not.
async fn documented_operations_are_served(backend: Backend) {
    let app = TestApp::new(backend);
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let doc = document();
    for (method, template) in documented(&doc) {
        let path = template
            .replace("{client_user_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{user_id}", &uuid::Uuid::new_v4().to_string());
        let method_value = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let reply = send(&svc, TestRequest::default().method(method_value).uri(&path)).await;
        let status = reply.status.as_u16();
        let operation = &doc["paths"][&template][method.to_lowercase()];
        // Keys or a console session (the metrics token is needed only when it is set).
        let needs_credentials = security_alternatives(operation)
            .iter()
            .any(|a| a.get("api_key_id").is_some() || a.get("console_session").is_some());
        // Without credentials: 401; an open operation that takes a body (the console's
        // sign-in) refuses a request without one; the others answer.
        let expected = if needs_credentials {
            401
        } else if operation["requestBody"].is_object() {
            415
        } else {
            200
        };
        assert_eq!(status, expected, "{method} {path}: {}", reply.body);
        assert!(
            doc["paths"][&template][method.to_lowercase()]["responses"][status.to_string()]
                .is_object(),
            "{method} {path}: status {status} is not documented ({})",
            reply.body
        );
    }
}

/// Sample requests over every operation and many statuses: each answer matches the schema
/// documented for its status.
async fn responses_match_the_documented_schemas(backend: Backend) {
    let app = TestApp::new(backend);
    let keys = app.project("p");
    let svc = init_service(cotterd::app(app.state.clone())).await;
    let doc = document();
    let v2_user = json!({
        "login": {"email": "ada@example.com", "password": "correct horse"},
        "phone_number": "+15551234567", "first_name": "Ada", "last_name": "Lovelace",
    });

    let created = send(
        &svc,
        crate::common::create_req(&keys.id, "hello@example.com"),
    )
    .await;
    let user_id = created.json()["ID"].as_str().unwrap().to_owned();
    let v2 = send(
        &svc,
        with_keys(
            TestRequest::post().uri("/v2/users").set_json(&v2_user),
            &keys,
        ),
    )
    .await;
    let v2_id = v2.json()["id"].as_str().unwrap().to_owned();
    let missing = uuid::Uuid::new_v4().to_string();

    // Opened before the user has a kyc_id (409), after (201), and for a missing user (404).
    let open_account = |user: &str| {
        with_keys(
            TestRequest::post()
                .uri("/v2/accounts")
                .set_json(json!({"user_id": user, "account_type": "savings"})),
            &keys,
        )
    };
    let raw_create = |content_type: &str, body: String| {
        TestRequest::post()
            .uri("/api/v0/user/create")
            .insert_header(("API_KEY_ID", keys.id.as_str()))
            .insert_header(("Content-Type", content_type))
            .set_payload(body)
    };
    let mut samples: Vec<(&str, &str, TestRequest)> = vec![
        (
            "/api/v0/user/create",
            "POST",
            raw_create("text/plain", "x".into()),
        ),
        (
            "/api/v0/user/create",
            "POST",
            raw_create("application/json", "x".repeat(20_000)),
        ),
        (
            "/v2/users",
            "POST",
            with_keys(
                TestRequest::post()
                    .uri("/v2/users")
                    .insert_header(("Content-Type", "text/plain"))
                    .set_payload("x"),
                &keys,
            ),
        ),
        (
            "/api/v0/user/create",
            "POST",
            crate::common::create_req(&keys.id, "new@example.com"),
        ),
        (
            "/api/v0/user/create",
            "POST",
            crate::common::create_req(&keys.id, "hello@example.com"),
        ),
        (
            "/api/v0/user/create",
            "POST",
            crate::common::create_req(&keys.id, ""),
        ),
        (
            "/api/v0/user/create",
            "POST",
            TestRequest::post()
                .uri("/api/v0/user/create")
                .set_json(json!({"identifier": "x"})),
        ),
        (
            "/api/v0/user",
            "GET",
            crate::common::get_by_identifier_req(&keys.id, "hello@example.com"),
        ),
        (
            "/api/v0/user",
            "GET",
            crate::common::get_by_identifier_req(&keys.id, "nobody@example.com"),
        ),
        (
            "/api/v0/user",
            "GET",
            TestRequest::get()
                .uri("/api/v0/user")
                .insert_header(("API_KEY_ID", keys.id.as_str())),
        ),
        (
            "/api/v0/user/{client_user_id}",
            "GET",
            TestRequest::get()
                .uri(&format!("/api/v0/user/{user_id}"))
                .insert_header(("API_KEY_ID", keys.id.as_str())),
        ),
        (
            "/api/v0/user/{client_user_id}",
            "GET",
            TestRequest::get()
                .uri(&format!("/api/v0/user/{missing}"))
                .insert_header(("API_KEY_ID", keys.id.as_str())),
        ),
        (
            "/api/v0/user/list",
            "GET",
            crate::common::list_req(&keys, "0"),
        ),
        (
            "/api/v0/user/list",
            "GET",
            crate::common::list_req(&keys, "-1"),
        ),
        (
            "/v2/users",
            "POST",
            with_keys(
                TestRequest::post().uri("/v2/users").set_json(&v2_user),
                &keys,
            ),
        ),
        (
            "/v2/users",
            "POST",
            with_keys(
                TestRequest::post()
                    .uri("/v2/users")
                    .set_json(json!({"login": 1})),
                &keys,
            ),
        ),
        (
            "/v2/users/{user_id}",
            "GET",
            with_keys(TestRequest::get().uri(&format!("/v2/users/{v2_id}")), &keys),
        ),
        (
            "/v2/users/{user_id}",
            "GET",
            with_keys(
                TestRequest::get().uri(&format!("/v2/users/{missing}")),
                &keys,
            ),
        ),
        (
            "/v2/users/{user_id}",
            "PATCH",
            with_keys(
                TestRequest::patch()
                    .uri(&format!("/v2/users/{v2_id}"))
                    .set_json(json!({"id": "x"})),
                &keys,
            ),
        ),
        ("/v2/accounts", "POST", open_account(&v2_id)),
        (
            "/v2/users/{user_id}",
            "PATCH",
            with_keys(
                TestRequest::patch()
                    .uri(&format!("/v2/users/{v2_id}"))
                    .set_json(json!({"kyc_id": "kyc_1"})),
                &keys,
            ),
        ),
        ("/v2/accounts", "POST", open_account(&v2_id)),
        ("/v2/accounts", "POST", open_account(&missing)),
        ("/healthz", "GET", TestRequest::get().uri("/healthz")),
        ("/readyz", "GET", TestRequest::get().uri("/readyz")),
        (
            "/api/openapi.json",
            "GET",
            TestRequest::get().uri("/api/openapi.json"),
        ),
    ];
    let mut statuses = BTreeSet::new();
    for (template, method, req) in samples.drain(..) {
        let reply = send(&svc, req).await;
        let status = reply.status.as_u16();
        statuses.insert(status);
        let schema = schema_for(&doc, template, method, status);
        let body = reply.json();
        if let Err(e) = jsonschema::validate(&schema, &body) {
            panic!("{method} {template} → {status}: {body} does not match its schema: {e}");
        }
    }
    assert_eq!(
        statuses,
        BTreeSet::from([200, 201, 400, 401, 404, 409, 413, 415]),
        "the samples cover these statuses"
    );
    // The metrics are text, documented as such.
    let metrics = send(&svc, TestRequest::get().uri("/metrics")).await;
    assert!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object()
    );
    assert_eq!(metrics.status.as_u16(), 200);
}

both_backends!(
    documented_operations_are_served,
    responses_match_the_documented_schemas,
);
