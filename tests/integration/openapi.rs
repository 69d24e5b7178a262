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
