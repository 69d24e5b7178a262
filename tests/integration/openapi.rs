//! The /v1 OpenAPI document: served, browsable offline, and equal to the committed copy.

use crate::harness::*;
use serde_json::Value;

#[tokio::test]
async fn served_document_matches_the_committed_copy() {
    let server = TestServer::start().await;
    let r = client()
        .get(server.url("/v1/doc/openapi.json"))
        .send()
        .await
        .expect("openapi.json");
    assert_eq!(r.status(), 200);
    let served: Value = r.json().await.expect("JSON");
    let committed: Value = serde_json::from_str(include_str!("../../docs/openapi.json"))
        .expect("docs/openapi.json is JSON");
    assert!(
        served == committed,
        "the served OpenAPI document differs from docs/openapi.json: \
         run `cargo run -- openapi > docs/openapi.json` and commit it"
    );
    // Every /v1 route the router knows is documented: a few spot checks of the routes.
    let paths = served["paths"].as_object().expect("paths");
    for path in [
        "/v1/types",
        "/v1/prototypes",
        "/v1/servables/{id}/run",
        "/v1/instances/{id}/logs",
        "/v1/objects/{id}/access",
        "/v1/trusts/{id}/members",
        "/v1/delegation-requests/{id}/grant",
        "/v1/jobs/{id}/logs",
        "/v1/api-keys",
        "/v1/images/{id}/builds",
        "/v1/builds/{id}",
        "/v1/pipelines/{id}/jobs",
        "/v1/pipelines/{id}/submit",
        "/v1/repositories/{id}/tags",
        "/v1/users",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
}

#[tokio::test]
async fn browsable_docs_work_offline() {
    let server = TestServer::start().await;
    let c = client();
    let r = c
        .get(server.url("/v1/doc/"))
        .send()
        .await
        .expect("doc page");
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("page");
    assert!(page.contains("swagger-ui"), "{page}");
    // The page's scripts come from the binary, not a CDN.
    assert!(
        !page.contains("https://"),
        "the doc page loads something remote: {page}"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let r = c
            .get(server.url(&format!("/v1/doc/{asset}")))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{asset}");
        assert!(!r.bytes().await.expect("asset body").is_empty(), "{asset}");
    }
    let init = c
        .get(server.url("/v1/doc/swagger-initializer.js"))
        .send()
        .await
        .expect("initializer")
        .text()
        .await
        .expect("text");
    assert!(init.contains("/v1/doc/openapi.json"), "{init}");
}

/// Issue 11: every operation states the statuses its request's reading answers (401 without
/// credentials; 400 for a malformed parameter, path or body; 413 for a body over the limit; 500),
/// and the bounds the server enforces are the ones the document states.
#[test]
fn the_document_states_every_status_and_the_servers_bounds() {
    let doc = serde_json::to_value(dtaas::faces::v1::openapi::document()).expect("JSON");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            let mut expected = vec!["401", "500"];
            let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
            let has_body = op.get("requestBody").is_some();
            if has_params || has_body {
                expected.push("400");
            }
            if has_body {
                expected.push("413");
            }
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not state {status}"
                );
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    let expires = &schemas["NewKey"]["properties"]["expires_in_days"];
    assert_eq!(
        expires["maximum"],
        dtaas::domains::accounts::MAX_EXPIRES_IN_DAYS,
        "{expires}"
    );
    assert_eq!(expires["minimum"], 1, "{expires}");
    for schema in ["NewKey", "NewTrust", "NewServable"] {
        let name = &schemas[schema]["properties"]["name"];
        assert_eq!(
            name["maxLength"],
            dtaas::core::names::MAX_NAME_CHARS,
            "{schema}"
        );
        assert_eq!(name["minLength"], 1, "{schema}");
        assert_eq!(
            name["pattern"],
            dtaas::core::names::NAME_PATTERN,
            "{schema}"
        );
    }
}
