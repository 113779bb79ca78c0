//! `/api/openapi.json`: served without a key, valid OpenAPI 3.1 in its basics, and the
//! routes it documents are the routes the application has.
//!
//! Documented ⊆ routed: every documented path and method is requested (dummy path
//! parameters, no credentials, no body) and must reach a route, not the router's
//! fallbacks; each `/api/` one must be refused by the key layer, as a routed `/api/`
//! route is; and the `/api/` ones are exactly the access table's routes.
//!
//! Routed ⊆ documented: by construction, checked here. utoipa-axum's `routes!`
//! registers a handler and its `#[utoipa::path]` from one list, and
//! `routes_are_registered_only_with_their_documentation` reads the server's sources
//! and refuses any other way to add a route (`.route(`, `.route_service(`,
//! `.nest_service(`, a plain `Router::new()` to merge): a route added without its
//! documentation cannot pass.
//!
//! And the answers are as documented: every `GET /api/` route that can be called with
//! no parameter but a profile id is called, and its JSON holds no field its schema does
//! not name and every field it requires (down through the first item of each list).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use unavoce_core::EventType;
use unavoce_server::access::RULES;

mod common;

use common::*;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(s: &TestServer) -> Value {
    let answer = s
        .send(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/json",
        "served as JSON"
    );
    answer.json
}

/// Every documented operation: its method (upper case), path template and object.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                all.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    all
}

/// The `{name}`s of a path template.
fn template_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_string)
        .collect()
}

/// Every `$ref` in `value`, with where it is.
fn refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                if key == "$ref" {
                    found.push((at.to_string(), inner.as_str().unwrap_or("").to_string()));
                } else {
                    refs(inner, &format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                refs(inner, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_served_without_a_key_and_is_openapi_3_1() {
    let s = server().await;
    let doc = document(&s).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Every reference resolves in the document itself.
    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(!found.is_empty());
    for (at, reference) in &found {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: {reference} is not local"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: {reference} does not resolve"
        );
    }

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(schemes["write_key"]["scheme"], "basic");
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]), "{error}");

    let mut ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let what = format!("{method} {path}");
        let responses = operation["responses"].as_object();
        assert!(
            responses.is_some_and(|r| !r.is_empty()),
            "{what} has no responses"
        );
        for (status, response) in responses.unwrap() {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok(),
                "{what}: {status}"
            );
            assert!(
                response.get("$ref").is_some() || response["description"].is_string(),
                "{what} {status} has no description"
            );
        }
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(
            ids.insert(id.to_string()),
            "{what}: operationId {id:?} twice"
        );
        assert!(
            operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{what}"
        );

        // The path's parameters are the template's, each required.
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{what}: {p}"))
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(declared, template_params(&path), "{what}");

        // Who may call it.
        let security = operation["security"].to_string();
        if path.starts_with("/api/") && path != "/api/openapi.json" {
            assert!(security.contains("api_key"), "{what}: {security}");
            for status in ["401", "403", "503", "507"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{what} {status}"
                );
            }
        } else if path.starts_with("/v1/") {
            assert!(security.contains("write_key"), "{what}: {security}");
            for status in ["413", "503", "507"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{what} {status}"
                );
            }
        } else {
            assert_eq!(operation.get("security"), None, "{what} needs no key");
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let s = server().await;
    let doc = document(&s).await;
    let operations = operations(&doc);
    assert!(operations.len() > 80, "{} operations", operations.len());

    // What the fallbacks answer, so that the probe can tell them apart.
    let fallback = |answer: &Answer| {
        (answer.status == StatusCode::NOT_FOUND
            && answer.json["error"]["message"] == "no such endpoint")
            || answer.json["error"]["code"] == "method_not_allowed"
    };
    let probe = |method: &str, path: &str| {
        Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .body(Body::empty())
            .unwrap()
    };
    assert!(fallback(&s.send(probe("GET", "/api/nowhere")).await));
    assert!(fallback(&s.send(probe("DELETE", "/healthz")).await));

    for (method, template, _) in &operations {
        let path = template_params(template)
            .iter()
            .fold(template.clone(), |path, name| {
                path.replace(&format!("{{{name}}}"), "1")
            });
        let answer = s.send(probe(method, &path)).await;
        let what = format!("{method} {path}: {} {}", answer.status, answer.json);
        assert!(!fallback(&answer), "documented but not routed: {what}");
        if template.starts_with("/api/") && template != "/api/openapi.json" {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
            assert_eq!(answer.json["error"]["code"], "missing_admin_key", "{what}");
        }
    }
}

#[tokio::test]
async fn the_documented_api_routes_are_the_access_tables() {
    let s = server().await;
    let doc = document(&s).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/api/") && path != "/api/openapi.json")
        .map(|(method, path, _)| (method, path))
        .collect();
    let ruled: BTreeSet<(String, String)> = RULES
        .iter()
        .map(|r| (r.method.to_string(), r.route.to_string()))
        .collect();
    assert_eq!(
        documented.difference(&ruled).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented without an access rule"
    );
    assert_eq!(
        ruled.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "an access rule for a route not documented"
    );

    // Each Segment call type has its endpoint.
    for event_type in EventType::ALL {
        let path = format!("/v1/{event_type}");
        assert!(doc["paths"][&path]["post"].is_object(), "{path}");
    }
}

/// The server's Rust sources.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn routes_are_registered_only_with_their_documentation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 10);
    let forbidden = [
        ".route(",
        ".route_service(",
        ".nest_service(",
        "routing::get",
        "routing::post",
        "routing::put",
        "routing::delete",
        "routing::{",
    ];
    let mut registrations = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let at = format!("{}:{}", file.display(), n + 1);
            for word in forbidden {
                assert!(
                    !code.contains(word),
                    "{at}: a route registered without its documentation ({word}); \
                     register it with `.routes(routes!(handler))` and annotate the \
                     handler with #[utoipa::path]: {line}"
                );
            }
            let plain_router = code
                .match_indices("Router::new()")
                .any(|(i, _)| !code[..i].ends_with("OpenApi"));
            assert!(!plain_router, "{at}: a plain axum Router: {line}");
            registrations += code.matches(".routes(routes!(").count();
        }
    }
    assert!(registrations > 60, "{registrations}");
}

/// The schema `schema` stands for: a reference followed, one of `[T, null]` taken.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        return resolve(doc, doc.pointer(&reference[1..]).unwrap());
    }
    if let Some(one_of) = schema["oneOf"].as_array()
        && one_of.len() == 2
        && one_of[0]["type"] == "null"
    {
        return resolve(doc, &one_of[1]);
    }
    schema
}

/// Checks `value` against `schema` where the schema names its fields: no field it does
/// not document, every field it requires; then the same for the fields' values.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    match value {
        Value::Object(fields) => {
            let Some(properties) = schema["properties"].as_object() else {
                return; // a free-form object
            };
            for (name, inner) in fields {
                match properties.get(name) {
                    Some(property) => {
                        conforms(doc, property, inner, &format!("{at}.{name}"), problems)
                    }
                    None if schema
                        .get("additionalProperties")
                        .is_some_and(|a| a != false) => {}
                    None => problems.push(format!("{at}.{name} is not documented")),
                }
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                if !fields.contains_key(required.as_str().unwrap()) {
                    problems.push(format!("{at}.{required} is required but absent"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                conforms(doc, &schema["items"], first, &format!("{at}[0]"), problems);
            }
        }
        _ => {}
    }
}

/// Real answers have the documented shape: every `GET /api/` route that needs no
/// parameter but a profile id, over a store with a person in it.
#[tokio::test]
async fn answers_have_the_documented_fields() {
    let s = server().await;
    s.send_batch(vec![
        serde_json::json!({"type": "identify", "userId": "ada", "traits": {
            "first_name": "Ada", "email": "ada@example.com"}}),
        serde_json::json!({"type": "track", "userId": "ada", "event": "Order Completed",
            "context": {"channel": "web"}}),
        serde_json::json!({"type": "track", "event": "No one"}),
    ])
    .await;
    let profile = s.profile_of("ada").await;
    let doc = document(&s).await;
    let mut checked = 0;
    let mut problems = Vec::new();
    for (method, template, operation) in operations(&doc) {
        let required_query = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "query" && p["required"] == true);
        let params = template_params(&template);
        let profile_only =
            params.is_empty() || (params.len() == 1 && template.starts_with("/api/profiles/{id}"));
        if method != "GET"
            || !template.starts_with("/api/")
            || template == "/api/openapi.json"
            || template.ends_with("/export")
            || required_query
            || !profile_only
        {
            continue;
        }
        let path = template.replace("{id}", &profile);
        let answer = s.admin("GET", &path, Body::empty()).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.json);
        let schema = &operation["responses"]["200"]["content"]["application/json"]["schema"];
        conforms(&doc, schema, &answer.json, &path, &mut problems);
        checked += 1;
    }
    assert!(checked > 25, "{checked}");
    assert!(problems.is_empty(), "{problems:#?}");
}
