//! Prototypes registered from a project manifest (issue 5, seeds 001 and 002): the validation
//! rules that need the store or the registry, with the prototype and field each reports;
//! all-or-nothing registration; the seed's manifest end to end; references by id and `name:tag`;
//! deletion in dependency order; and access. The rules that need only the manifest are unit
//! tests next to the code (`domains::servables::manifest::parse` and `::check`).

use crate::harness::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// An id no prototype has.
const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef";

/// A server and a user on it, with the busybox image pushed by that user as `<name>:1` for each
/// of `images` (so that only the problem under test is reported).
async fn setup(images: &[&str]) -> (TestServer, V1, String) {
    let server = TestServer::start().await;
    let (v1, login) = v1_user(&server, "mf").await;
    for name in images {
        push_image(&server, &login, None, name, "1").await;
    }
    (server, v1, login)
}

/// A complete, valid app entry for the image `<name>:1`.
fn app(name: &str) -> Value {
    json!({
        "name": name,
        "tag": "1",
        "type": "app",
        "dependencies": {},
        "arguments": {},
        "capabilities": {},
        "config-capabilities": {},
    })
}

/// A complete, valid daemon entry for the image `<name>:1` with a 1 MB volume on /data.
fn daemon(name: &str) -> Value {
    json!({
        "name": name,
        "tag": "1",
        "type": "daemon",
        "dependencies": {},
        "arguments": {"volume_location": "/data", "volume_size": 1},
        "capabilities": {},
        "config-capabilities": {},
    })
}

/// `entry` with the fields of `changes` set; a null in `changes` removes the field.
fn with(mut entry: Value, changes: Value) -> Value {
    let fields = entry.as_object_mut().expect("an entry is an object");
    for (k, v) in changes.as_object().expect("changes are an object") {
        if v.is_null() {
            fields.remove(k);
        } else {
            fields.insert(k.clone(), v.clone());
        }
    }
    entry
}

/// The seed's example project (examples/hello/MANIFEST.json): a daemon, an app depending on it
/// with a config capability, a pipeline depending on both with capabilities on both.
fn hello_manifest() -> Value {
    json!({
        "hello-daemon": {
            "name": "hello-daemon",
            "tag": "1",
            "type": "daemon",
            "dockerfile": "hello-daemon/Dockerfile",
            "context": "hello-daemon",
            "dependencies": {},
            "arguments": {"volume_location": "/data", "volume_size": 1},
            "capabilities": {},
            "config-capabilities": {}
        },
        "hello-app": {
            "name": "hello-app",
            "tag": "1",
            "type": "app",
            "dockerfile": "hello-app/Dockerfile",
            "context": "hello-app",
            "dependencies": {"hello-daemon": "hello-daemon"},
            "arguments": {},
            "capabilities": {},
            "config-capabilities": {"daemon-id": ["READ"]}
        },
        "hello-pipeline": {
            "name": "hello-pipeline",
            "tag": "1",
            "type": "pipeline",
            "dockerfile": "hello-pipeline/Dockerfile",
            "context": "hello-pipeline",
            "dependencies": {"hello-app": "hello-app", "hello-daemon": "hello-daemon"},
            "arguments": {},
            "capabilities": {
                "hello-app": ["CREATE", "READ"],
                "hello-daemon": ["CREATE", "READ"]
            },
            "config-capabilities": {}
        }
    })
}

/// The (item, field) pairs of an error's `details`.
fn details(body: &Value) -> BTreeSet<(String, String)> {
    body["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no error.details in {body}"))
        .iter()
        .map(|d| {
            (
                d["item"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no item in {d}"))
                    .to_owned(),
                d["field"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no field in {d}"))
                    .to_owned(),
            )
        })
        .collect()
}

/// The message of the problem about `item`'s `field`.
fn detail_message<'a>(body: &'a Value, item: &str, field: &str) -> &'a str {
    body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["item"] == item && d["field"] == field)
        .and_then(|d| d["message"].as_str())
        .unwrap_or_else(|| panic!("no problem about {item}.{field} in {body}"))
}

/// Asserts an answer is `expected_status` with exactly these (item, field) problems.
#[track_caller]
fn assert_problems(answer: &(u16, Value), expected_status: u16, expected: &[(&str, &str)]) {
    let (status, body) = answer;
    assert_eq!(*status, expected_status, "{body}");
    let code = match expected_status {
        400 => "invalid",
        403 => "forbidden",
        404 => "not_found",
        _ => "conflict",
    };
    assert_eq!(body["error"]["code"], code, "{body}");
    let expected: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(i, f)| (i.to_string(), f.to_string()))
        .collect();
    assert_eq!(details(body), expected, "{body}");
}

/// Asserts a 400 naming exactly these (item, field) problems.
#[track_caller]
fn assert_invalid(answer: &(u16, Value), expected: &[(&str, &str)]) {
    assert_problems(answer, 400, expected);
}

/// Asserts a well-formed manifest was refused for naming something that is not there (or not
/// visible to the caller): 404 `not_found`, with exactly these (item, field) problems.
#[track_caller]
fn assert_missing(answer: &(u16, Value), expected: &[(&str, &str)]) {
    assert_problems(answer, 404, expected);
}

/// Nothing is registered: the list is empty.
async fn assert_nothing_registered(v1: &V1) {
    let (status, body) = v1.get("/prototypes").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([]), "nothing may be registered");
}

/// Registers the seed's manifest (its images pushed first) and returns the prototypes by name.
async fn register_hello(server: &TestServer, v1: &V1, login: &str) -> BTreeMap<String, Value> {
    for name in HELLO_PARTS {
        push_image(server, login, None, name, "1").await;
    }
    let (status, body) = v1.post("/prototypes", hello_manifest()).await;
    assert_eq!(status, 201, "{body}");
    by_name(&body)
}

fn by_name(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|p| (p["name"].as_str().expect("name").to_owned(), p.clone()))
        .collect()
}

fn id_of(p: &Value) -> String {
    p["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {p}"))
        .to_owned()
}

#[tokio::test]
async fn dependencies_must_resolve() {
    let (_server, v1, _) = setup(&["p"]).await;
    let entry = with(
        app("p"),
        json!({"dependencies": {"by-name": "nowhere", "by-id": UNKNOWN_ID, "not-a-string": 5}}),
    );
    let answer = v1.post("/prototypes", json!({ "p": entry })).await;
    assert_invalid(
        &answer,
        &[
            ("p", "dependencies.by-name"),
            ("p", "dependencies.by-id"),
            ("p", "dependencies.not-a-string"),
        ],
    );
    assert!(
        detail_message(&answer.1, "p", "dependencies.by-name").contains("nowhere"),
        "{}",
        answer.1
    );
    assert_nothing_registered(&v1).await;
}

#[tokio::test]
async fn capability_targets_must_resolve() {
    let (_server, v1, _) = setup(&["p"]).await;
    let mut caps = serde_json::Map::new();
    caps.insert("nowhere".into(), json!(["READ"]));
    caps.insert(UNKNOWN_ID.into(), json!(["READ"]));
    let entry = with(app("p"), json!({ "capabilities": caps }));
    let answer = v1.post("/prototypes", json!({ "p": entry })).await;
    let by_id = format!("capabilities.{UNKNOWN_ID}");
    // A well-formed manifest naming what is not there: not found, not malformed (issue 11).
    assert_problems(
        &answer,
        404,
        &[("p", "capabilities.nowhere"), ("p", by_id.as_str())],
    );
    assert_nothing_registered(&v1).await;
}

#[tokio::test]
async fn image_must_be_in_the_registry() {
    let (_server, v1, _) = setup(&["p"]).await;
    // Never pushed: a well-formed manifest naming what is not there is answered 404, with the
    // problem in the details (issue 11: it was a 400, which schemathesis found answering a
    // request the document allows).
    let answer = v1.post("/prototypes", json!({"ghost": app("ghost")})).await;
    assert_problems(&answer, 404, &[("ghost", "tag")]);
    assert!(
        detail_message(&answer.1, "ghost", "tag").contains("not in the registry"),
        "{}",
        answer.1
    );
    // Pushed, but under another tag.
    let entry = with(app("p"), json!({"tag": "2"}));
    let answer = v1.post("/prototypes", json!({ "p": entry })).await;
    assert_problems(&answer, 404, &[("p", "tag")]);
    assert_nothing_registered(&v1).await;
}

/// The rules that need only the manifest are unit tests (`domains::servables::manifest::parse`
/// and `::check`); here, their problems and those found against the store and the registry are
/// reported together, as a 400, and nothing is registered.
#[tokio::test]
async fn every_problem_is_reported_and_nothing_is_registered() {
    let (_server, v1, _) = setup(&["good", "bad", "daemon"]).await;
    let manifest = json!({
        "good": app("good"),
        "bad": with(app("bad"), json!({
            "name": "other",
            "type": "spaceship",
            "dependencies": {"db": "nowhere", "me": "bad"},
            "capabilities": {"nowhere": ["READ"], "good": ["FLY"]},
            "config-capabilities": {"x": "READ"},
            "colour": "blue",
        })),
        "daemon": with(daemon("daemon"), json!({
            "arguments": {"volume_location": "data", "volume_size": 0}
        })),
        "ghost": app("ghost"),
        // Without a sound name or tag, the registry is not asked: only that problem is reported.
        "untagged": with(app("untagged"), json!({"tag": null})),
        "badly-tagged": with(app("badly-tagged"), json!({"tag": "-"})),
        "Not An Image": app("Not An Image"),
        "broken": 5,
    });
    let answer = v1.post("/prototypes", manifest).await;
    assert_invalid(
        &answer,
        &[
            ("bad", "name"),
            ("bad", "type"),
            ("bad", "dependencies.db"),
            ("bad", "dependencies"),
            ("bad", "capabilities.nowhere"),
            ("bad", "capabilities.good"),
            ("bad", "config-capabilities.x"),
            ("bad", "colour"),
            ("daemon", "arguments.volume_location"),
            ("daemon", "arguments.volume_size"),
            ("ghost", "tag"),
            ("untagged", "tag"),
            ("badly-tagged", "tag"),
            ("Not An Image", "name"),
            ("broken", ""),
        ],
    );
    assert!(
        detail_message(&answer.1, "bad", "dependencies").contains("bad -> bad"),
        "{}",
        answer.1
    );
    // Not even the valid entry is registered.
    assert_nothing_registered(&v1).await;
    let (status, body) = v1.get("/prototypes/good:1").await;
    assert_eq!(status, 404, "{body}");
    // Once alone, the valid entry registers (its earlier refusal was the manifest's, not its own).
    let (status, body) = v1.post("/prototypes", json!({"good": app("good")})).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_seed_manifest_registers_with_ids_resolved() {
    let server = TestServer::start().await;
    let (v1, login) = v1_user(&server, "mf").await;
    let protos = register_hello(&server, &v1, &login).await;
    assert_eq!(
        protos.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(HELLO_PARTS),
        "{protos:?}"
    );
    let (d, a, p) = (
        &protos["hello-daemon"],
        &protos["hello-app"],
        &protos["hello-pipeline"],
    );
    let (did, aid, pid) = (id_of(d), id_of(a), id_of(p));
    for id in [&did, &aid, &pid] {
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "an id: {id}"
        );
    }
    assert_eq!(
        [&did, &aid, &pid]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .len(),
        3,
        "distinct ids"
    );

    assert_eq!(d["type"], "daemon");
    assert_eq!(d["tag"], "1");
    assert_eq!(d["image"], "hello-daemon:1");
    assert_eq!(
        d["arguments"],
        json!({"volume_location": "/data", "volume_size": 1})
    );
    assert_eq!(d["dependencies"], json!({}));
    assert_eq!(d["capabilities"], json!({}));
    assert_eq!(d["dockerfile"], "hello-daemon/Dockerfile");
    assert_eq!(d["context"], "hello-daemon");

    assert_eq!(a["type"], "app");
    assert_eq!(a["dependencies"], json!({ "hello-daemon": did }));
    assert_eq!(a["config-capabilities"], json!({"daemon-id": ["READ"]}));
    assert_eq!(a["capabilities"], json!({}));

    assert_eq!(p["type"], "pipeline");
    assert_eq!(
        p["dependencies"],
        json!({"hello-app": aid, "hello-daemon": did})
    );
    let mut caps = serde_json::Map::new();
    caps.insert(aid.clone(), json!(["CREATE", "READ"]));
    caps.insert(did.clone(), json!(["CREATE", "READ"]));
    assert_eq!(p["capabilities"], Value::Object(caps));
    assert_eq!(d["owner"], a["owner"]);
    assert_eq!(d["owner"], p["owner"]);

    // Listed, and found by id and by name:tag.
    let (status, list) = v1.get("/prototypes").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(by_name(&list), protos);
    for (name, proto) in &protos {
        let (status, body) = v1.get(&format!("/prototypes/{}", id_of(proto))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(&body, proto);
        let (status, body) = v1.get(&format!("/prototypes/{name}:1")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(&body, proto);
    }

    // The same name:tag again: a conflict on each, and nothing changes.
    let answer = v1.post("/prototypes", hello_manifest()).await;
    assert_problems(
        &answer,
        409,
        &[
            ("hello-daemon", "tag"),
            ("hello-app", "tag"),
            ("hello-pipeline", "tag"),
        ],
    );
    let answer = v1
        .post(
            "/prototypes",
            json!({"hello-daemon": daemon("hello-daemon")}),
        )
        .await;
    assert_problems(&answer, 409, &[("hello-daemon", "tag")]);
    // A conflict beside an image that is not there: the missing image is what to fix first.
    let answer = v1
        .post(
            "/prototypes",
            json!({"hello-daemon": daemon("hello-daemon"), "ghost": app("ghost")}),
        )
        .await;
    assert_problems(&answer, 404, &[("hello-daemon", "tag"), ("ghost", "tag")]);
    // A conflict among problems of the manifest's own is one problem of a 400.
    let answer = v1
        .post(
            "/prototypes",
            json!({"hello-daemon": daemon("hello-daemon"), "Bad": app("Bad")}),
        )
        .await;
    assert_invalid(&answer, &[("hello-daemon", "tag"), ("Bad", "name")]);
    let (_, list) = v1.get("/prototypes").await;
    assert_eq!(by_name(&list), protos, "nothing changed");

    // A second manifest refers to an existing prototype by its id.
    push_image(&server, &login, None, "hello-consumer", "1").await;
    let mut caps = serde_json::Map::new();
    caps.insert(did.clone(), json!(["READ"]));
    let consumer = with(
        app("hello-consumer"),
        json!({"dependencies": {"daemon": did}, "capabilities": caps}),
    );
    let (status, body) = v1
        .post("/prototypes", json!({ "hello-consumer": consumer }))
        .await;
    assert_eq!(status, 201, "{body}");
    let c = &by_name(&body)["hello-consumer"];
    assert_eq!(c["dependencies"], json!({ "daemon": did }));
    assert_eq!(c["capabilities"], Value::Object(caps));
    let (status, list) = v1.get("/prototypes").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(4), "{list}");
}

#[tokio::test]
async fn prototypes_are_deleted_in_dependency_order() {
    let server = TestServer::start().await;
    let (v1, login) = v1_user(&server, "mf").await;
    let protos = register_hello(&server, &v1, &login).await;
    let did = id_of(&protos["hello-daemon"]);

    // The daemon is still needed by the app (and the pipeline).
    let (status, body) = v1.delete(&format!("/prototypes/{did}")).await;
    assert_eq!(status, 409, "{body}");
    let (_, message) = v1_error(&body);
    assert!(message.contains("hello-app"), "names hello-app: {message}");
    assert!(
        message.contains("hello-pipeline"),
        "names hello-pipeline: {message}"
    );
    let (status, body) = v1.delete("/prototypes/hello-app:1").await;
    assert_eq!(status, 409, "{body}");
    let (_, message) = v1_error(&body);
    assert!(
        message.contains("hello-pipeline"),
        "names hello-pipeline: {message}"
    );
    let (status, list) = v1.get("/prototypes").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(3),
        "nothing deleted: {list}"
    );

    // In dependency order, by name:tag and by id.
    let (status, body) = v1.delete("/prototypes/hello-pipeline:1").await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = v1
        .delete(&format!("/prototypes/{}", id_of(&protos["hello-app"])))
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = v1.delete("/prototypes/hello-daemon:1").await;
    assert_eq!(status, 204, "{body}");
    for (name, proto) in &protos {
        let (status, body) = v1.get(&format!("/prototypes/{}", id_of(proto))).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = v1.get(&format!("/prototypes/{name}:1")).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = v1.delete(&format!("/prototypes/{name}:1")).await;
        assert_eq!(status, 404, "{body}");
    }
    assert_nothing_registered(&v1).await;

    // The names are free again.
    let (status, body) = v1.post("/prototypes", hello_manifest()).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn other_users_cannot_see_use_or_delete_prototypes() {
    let server = TestServer::start().await;
    let (owner, login) = v1_user(&server, "mf").await;
    let protos = register_hello(&server, &owner, &login).await;
    let did = id_of(&protos["hello-daemon"]);
    let (other, other_login) = v1_user(&server, "mg").await;

    let (status, list) = other.get("/prototypes").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list, json!([]), "another user's prototypes are not listed");
    for (name, proto) in &protos {
        let id = id_of(proto);
        for path in [format!("/prototypes/{id}"), format!("/prototypes/{name}:1")] {
            let (status, body) = other.get(&path).await;
            assert_eq!(status, 404, "GET {path}: {body}");
            let (status, body) = other.delete(&path).await;
            assert_eq!(status, 404, "DELETE {path}: {body}");
        }
    }

    // Nor can they depend on one.
    push_image(&server, &other_login, None, "mine", "1").await;
    let entry = with(app("mine"), json!({"dependencies": {"daemon": did}}));
    let answer = other.post("/prototypes", json!({ "mine": entry })).await;
    assert_missing(&answer, &[("mine", "dependencies.daemon")]);
    let (status, list) = other.get("/prototypes").await;
    assert_eq!((status, list), (200, json!([])));

    // All still there for the owner.
    let (status, list) = owner.get("/prototypes").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(by_name(&list), protos);
}

#[tokio::test]
async fn an_image_the_caller_cannot_read_is_refused() {
    let server = TestServer::start().await;
    let (owner, login) = v1_user(&server, "mf").await;
    let (other, _) = v1_user(&server, "mg").await;
    // The owner's namespaced repository, and a top-level one the owner created.
    push_image(&server, &login, None, &format!("{login}/secret"), "1").await;
    push_image(&server, &login, None, "shared", "1").await;

    let namespaced = format!("{login}/secret");
    for name in ["secret", namespaced.as_str(), "shared"] {
        let answer = other.post("/prototypes", json!({ name: app(name) })).await;
        assert_missing(&answer, &[(name, "tag")]);
    }
    assert_nothing_registered(&other).await;

    // The owner may: the bare name finds the image in the owner's namespace.
    let (status, body) = owner
        .post("/prototypes", json!({"secret": app("secret")}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body[0]["image"], format!("{login}/secret:1"), "{body}");
    let (status, body) = owner
        .post("/prototypes", json!({"shared": app("shared")}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body[0]["image"], "shared:1", "{body}");
}
