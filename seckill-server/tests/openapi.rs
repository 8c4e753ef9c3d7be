//! The OpenAPI document covers every route: every route of docs/api.md's table is in
//! `/openapi.json` with its method, every documented path is served, and the Swagger UI at
//! `/docs` is served from the binary.

mod support;

use axum::http::StatusCode;
use std::collections::BTreeSet;
use support::*;

/// `(METHOD, /path)` of every row of docs/api.md's route table, with `/api/v1` added to API
/// routes.
fn documented_routes() -> BTreeSet<(String, String)> {
    let doc = include_str!("../../docs/api.md");
    doc.lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let method = cells.next()?;
            if !["GET", "POST", "PUT", "DELETE"].contains(&method) {
                return None;
            }
            let path = cells.next()?.split('`').nth(1)?;
            let path = path.split('?').next()?;
            let full = if ["/health", "/ready", "/metrics"].contains(&path) {
                path.to_string()
            } else {
                format!("/api/v1{path}")
            };
            Some((method.to_string(), full))
        })
        .collect()
}

fn openapi_routes(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let a = api(false).await;
    let (status, text) = a.text("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let in_doc = openapi_routes(&doc);
    let in_table = documented_routes();
    assert!(in_table.len() >= 37, "the table was read: {in_table:?}");
    let missing: Vec<_> = in_table.difference(&in_doc).collect();
    assert!(
        missing.is_empty(),
        "routes of docs/api.md missing from /openapi.json: {missing:?}"
    );
    let undocumented: Vec<_> = in_doc.difference(&in_table).collect();
    assert!(
        undocumented.is_empty(),
        "routes of /openapi.json missing from docs/api.md: {undocumented:?}"
    );
    // Served: no documented route answers "no such route".
    for (method, path) in &in_doc {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let r = a.raw(method, &concrete, None, None, &[]).await;
        assert_ne!(
            r.body["code"], 2004,
            "{method} {concrete} is not served: {}",
            r.body
        );
    }
    // Every operation names its tag, its success and its refusals; authenticated ones their scheme.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path}"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path}"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn the_swagger_ui_is_served_offline() {
    let a = api(false).await;
    let resp = a.text("/docs/").await;
    assert_eq!(resp.0, StatusCode::OK);
    assert!(resp.1.to_lowercase().contains("swagger"), "{}", resp.1);
    let (status, js) = a.text("/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        js.len() > 100_000,
        "the bundle is compiled in ({} bytes)",
        js.len()
    );
}
