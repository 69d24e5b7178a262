//! Access control on the /v1 face (SPEC.md sections 1, 2 and 5): a capability matrix over the
//! routes that act on one object, grants and revocations, `everyone`, trusts, and that an object
//! the caller may not see answers exactly like a missing one.
//!
//! The matrix is a table of rows: a route, the object whose access list decides, and the
//! capability the route needs. For each row a second user ("other") who starts with nothing is
//! answered 401 without credentials, 404 while it holds nothing on the object, 403 with only
//! DISCOVER, and success once the owner grants the needed capability; the grants are revoked
//! again before the next row.

use crate::harness::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Delete,
}

/// One row of the capability matrix.
struct Case {
    method: Method,
    path: String,
    body: Value,
    /// The object whose access list the route consults (grants in the test go there).
    object: String,
    /// The capability the route needs on `object`.
    cap: &'static str,
    /// The status of success.
    ok: u16,
    /// The route deletes `object` (no revocation afterwards).
    consumes: bool,
    /// On success the body's `id` is this.
    returns_id: Option<String>,
}

impl Case {
    fn new(
        method: Method,
        path: impl Into<String>,
        object: &str,
        cap: &'static str,
        ok: u16,
    ) -> Case {
        Case {
            method,
            path: path.into(),
            body: json!({}),
            object: object.to_owned(),
            cap,
            ok,
            consumes: false,
            returns_id: None,
        }
    }

    fn get(path: impl Into<String>, object: &str, cap: &'static str) -> Case {
        Case::new(Method::Get, path, object, cap, 200)
    }

    fn post(path: impl Into<String>, object: &str, cap: &'static str, ok: u16) -> Case {
        Case::new(Method::Post, path, object, cap, ok)
    }

    /// A DELETE of the object itself.
    fn delete(path: impl Into<String>, object: &str) -> Case {
        Case {
            consumes: true,
            ..Case::new(Method::Delete, path, object, "DELETE", 204)
        }
    }

    fn body(mut self, body: Value) -> Case {
        self.body = body;
        self
    }

    fn returns(mut self, id: &str) -> Case {
        self.returns_id = Some(id.to_owned());
        self
    }

    fn label(&self) -> String {
        format!("{:?} /v1{} (needs {})", self.method, self.path, self.cap)
    }
}

async fn call(c: &V1, method: Method, path: &str, body: &Value) -> (u16, Value) {
    match method {
        Method::Get => c.get(path).await,
        Method::Post => c.post(path, body.clone()).await,
        Method::Delete => c.delete(path).await,
    }
}

/// A /v1 client without credentials.
fn anonymous(server: &TestServer) -> V1 {
    V1 {
        c: client(),
        base: server.base.clone(),
        bearer: None,
    }
}

/// The error code of a /v1 error body, or what the body was.
fn code(v: &Value) -> String {
    v["error"]["code"]
        .as_str()
        .map_or_else(|| format!("no error code in {v}"), str::to_owned)
}

/// An owner who makes the objects, and another user who starts with nothing.
struct World {
    server: TestServer,
    owner: V1,
    owner_login: String,
    other: V1,
    other_login: String,
}

async fn world() -> World {
    let server = TestServer::start().await;
    let (owner, owner_login) = v1_user(&server, "own").await;
    let (other, other_login) = v1_user(&server, "oth").await;
    World {
        server,
        owner,
        owner_login,
        other,
        other_login,
    }
}

/// A `pipeline` prototype per name (the busybox base image, whose `sh` exits at once).
fn pipeline_manifest(names: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for name in names {
        m.insert(
            (*name).to_owned(),
            json!({"name": name, "tag": "v1", "type": "pipeline"}),
        );
    }
    Value::Object(m)
}

impl World {
    fn anonymous(&self) -> V1 {
        anonymous(&self.server)
    }

    /// `owner` grants `caps` on `object` to `principal` (a login, an id or `everyone`).
    async fn grant_as(&self, owner: &V1, object: &str, principal: &str, caps: &[&str]) {
        let (s, v) = owner
            .post(
                &format!("/objects/{object}/access"),
                json!({"principal": principal, "capabilities": caps}),
            )
            .await;
        assert_eq!(s, 200, "granting {caps:?} on {object} to {principal}: {v}");
    }

    async fn grant(&self, object: &str, principal: &str, caps: &[&str]) {
        self.grant_as(&self.owner, object, principal, caps).await
    }

    /// The owner revokes `caps` (all when `None`) of `principal` on `object`.
    async fn revoke(&self, object: &str, principal: &str, caps: Option<&str>) -> (u16, Value) {
        let query = caps.map_or_else(String::new, |c| format!("?capabilities={c}"));
        self.owner
            .delete(&format!("/objects/{object}/access/{principal}{query}"))
            .await
    }

    /// Pushes the base image as `name:v1` for each name and registers them as pipeline
    /// prototypes; returns their ids in the order given.
    async fn prototypes(&self, names: &[&str]) -> Vec<String> {
        for name in names {
            push_image(&self.server, &self.owner_login, None, name, "v1").await;
        }
        let (s, v) = self
            .owner
            .post("/prototypes", pipeline_manifest(names))
            .await;
        assert_eq!(s, 201, "registering {names:?}: {v}");
        names
            .iter()
            .map(|n| {
                v.as_array()
                    .expect("a list of prototypes")
                    .iter()
                    .find(|p| p["name"] == *n)
                    .and_then(|p| p["id"].as_str())
                    .unwrap_or_else(|| panic!("{n} not registered: {v}"))
                    .to_owned()
            })
            .collect()
    }

    async fn servable_as(&self, c: &V1, prototype: &str, name: &str, config: Value) -> String {
        let (s, v) = c
            .post(
                "/servables",
                json!({"prototype": prototype, "name": name, "config": config, "resources": small()}),
            )
            .await;
        assert_eq!(s, 201, "creating the servable {name}: {v}");
        v["id"].as_str().expect("servable id").to_owned()
    }

    async fn servable(&self, prototype: &str, name: &str) -> String {
        self.servable_as(&self.owner, prototype, name, json!({}))
            .await
    }

    /// One servable of the owner's (with its own prototype and image).
    async fn one_servable(&self) -> String {
        let p = self.prototypes(&["acc-one"]).await;
        self.servable(&p[0], "one").await
    }

    async fn trust_as(&self, c: &V1, name: &str) -> String {
        let (s, v) = c.post("/trusts", json!({"name": name})).await;
        assert_eq!(s, 201, "creating the trust {name}: {v}");
        v["id"].as_str().expect("trust id").to_owned()
    }

    async fn trust(&self, name: &str) -> String {
        self.trust_as(&self.owner, name).await
    }

    /// Runs a servable as `c`; returns the instance, answered running.
    async fn run_as(&self, c: &V1, servable: &str) -> Value {
        let (s, v) = c
            .post(&format!("/servables/{servable}/run"), json!({}))
            .await;
        assert_eq!(s, 201, "running {servable}: {v}");
        assert_eq!(v["state"], "running", "the instance did not start: {v}");
        v
    }

    /// Runs the matrix; every row that does not answer as it should is reported at the end.
    async fn check_matrix(&self, cases: &[Case]) {
        let anonymous = self.anonymous();
        let mut wrong = Vec::new();
        for case in cases {
            let label = case.label();
            let (s, v) = call(&anonymous, case.method, &case.path, &case.body).await;
            if s != 401 || code(&v) != "unauthorized" {
                wrong.push(format!("{label} without credentials: {s} {v} (want 401)"));
            }
            let (s, v) = call(&self.other, case.method, &case.path, &case.body).await;
            if s != 404 || code(&v) != "not_found" {
                wrong.push(format!("{label} holding nothing: {s} {v} (want 404)"));
            }
            if case.cap != "DISCOVER" {
                self.grant(&case.object, &self.other_login, &["DISCOVER"])
                    .await;
                let (s, v) = call(&self.other, case.method, &case.path, &case.body).await;
                if s != 403 || code(&v) != "forbidden" {
                    wrong.push(format!("{label} holding only DISCOVER: {s} {v} (want 403)"));
                }
            }
            self.grant(&case.object, &self.other_login, &[case.cap])
                .await;
            let (s, v) = call(&self.other, case.method, &case.path, &case.body).await;
            if s != case.ok {
                wrong.push(format!(
                    "{label} holding {}: {s} {v} (want {})",
                    case.cap, case.ok
                ));
            } else if let Some(id) = &case.returns_id
                && v["id"] != json!(id)
            {
                wrong.push(format!(
                    "{label}: answered another object: {v} (want id {id})"
                ));
            }
            if !case.consumes {
                let (s, v) = self.revoke(&case.object, &self.other_login, None).await;
                assert_eq!(s, 200, "revoking after {label}: {v}");
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} rows answered wrongly:\n{}",
            wrong.len(),
            cases.len(),
            wrong.join("\n")
        );
    }
}

/// Polls an instance until it is no longer created, starting or running.
async fn wait_ended(c: &V1, instance: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (s, v) = c.get(&format!("/instances/{instance}")).await;
        assert_eq!(s, 200, "{v}");
        if !matches!(
            v["state"].as_str(),
            Some("created" | "starting" | "running")
        ) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "instance {instance} did not end: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

// ---- the matrix ----

#[tokio::test]
async fn prototype_servable_and_instance_routes_need_their_capability() {
    let w = world().await;
    let p = w.prototypes(&["acc-pipe", "acc-spare"]).await;
    let (pipe, spare) = (&p[0], &p[1]);
    let s = w.servable(pipe, "matrix").await;
    let s2 = w.servable(pipe, "doomed").await;
    let i1 = id_of(&w.run_as(&w.owner, &s).await);
    let ended = wait_ended(&w.owner, &i1).await;
    assert_eq!(ended["state"], "exited", "sh exits at once: {ended}");

    let cases = [
        Case::get("/prototypes/acc-pipe:v1", pipe, "READ").returns(pipe),
        Case::get(format!("/prototypes/{pipe}"), pipe, "READ").returns(pipe),
        Case::post("/servables", pipe, "CREATE", 201).body(json!({
            "prototype": "acc-pipe:v1", "name": "theirs", "resources": small(),
        })),
        Case::delete("/prototypes/acc-spare:v1", spare),
        Case::get(format!("/servables/{s}"), &s, "READ").returns(&s),
        Case::get(format!("/servables/{s}/instances"), &s, "READ"),
        Case::get(format!("/instances/{i1}"), &i1, "READ").returns(&i1),
        Case::get(format!("/instances/{i1}/logs"), &i1, "READ"),
        Case::post(format!("/instances/{i1}/stop"), &i1, "UPDATE", 200).returns(&i1),
        Case::post(format!("/instances/{i1}/restart"), &i1, "UPDATE", 200).returns(&i1),
        Case::delete(format!("/instances/{i1}"), &i1),
        Case::post(format!("/servables/{s}/run"), &s, "UPDATE", 201),
        Case::delete(format!("/servables/{s2}"), &s2),
    ];
    w.check_matrix(&cases).await;

    // What the successful rows did is visible to the owner.
    let (st, v) = w.owner.get("/prototypes/acc-spare:v1").await;
    assert_eq!(st, 404, "the spare prototype was deleted: {v}");
    let (st, v) = w.owner.get(&format!("/servables/{s2}")).await;
    assert_eq!(st, 404, "the doomed servable was deleted: {v}");
    let (st, v) = w.owner.get(&format!("/instances/{i1}")).await;
    assert_eq!(st, 404, "the first instance was deleted: {v}");
    let (st, v) = w.owner.get(&format!("/servables/{s}/instances")).await;
    assert_eq!(st, 200, "{v}");
    let runs = v.as_array().expect("instances");
    assert_eq!(runs.len(), 1, "the run by the other user: {v}");
    assert_eq!(runs[0]["runner"], json!(w.other.get("/me").await.1["id"]));
    let (st, v) = w.other.get("/servables").await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v.as_array()
            .expect("servables")
            .iter()
            .any(|x| x["name"] == "theirs"),
        "the other user's servable from the granted prototype: {v}"
    );
}

#[tokio::test]
async fn object_access_and_trust_routes_need_their_capability() {
    let w = world().await;
    let (_carol_client, carol) = v1_user(&w.server, "car").await;
    let shared = w.trust("an object to share").await;
    let t = w.trust("matrix").await;
    let t2 = w.trust("doomed").await;
    let theirs = w.trust_as(&w.other, "the other user's own").await;
    let (st, v) = w.owner.post("/api-keys", json!({"name": "doomed"})).await;
    assert_eq!(st, 201, "{v}");
    let key_id = id_of(&v);
    let key = V1::with_key(&w.server, v["key"].as_str().expect("the secret"));

    let cases = [
        Case::get(format!("/objects/{shared}"), &shared, "DISCOVER").returns(&shared),
        Case::get(format!("/objects/{shared}/access"), &shared, "MANAGE"),
        // With MANAGE alone the other user grants what it holds: MANAGE (and DISCOVER).
        Case::post(format!("/objects/{shared}/access"), &shared, "MANAGE", 200)
            .body(json!({"principal": carol, "capabilities": ["MANAGE"]})),
        Case::new(
            Method::Delete,
            format!("/objects/{shared}/access/{carol}?capabilities=MANAGE"),
            &shared,
            "MANAGE",
            200,
        ),
        Case::get(format!("/trusts/{t}"), &t, "READ").returns(&t),
        Case::post(format!("/trusts/{t}/members"), &t, "MANAGE", 200)
            .body(json!({"principal": carol})),
        Case::new(
            Method::Delete,
            format!("/trusts/{t}/members/{carol}"),
            &t,
            "MANAGE",
            200,
        ),
        Case::post(format!("/trusts/{t}/objects"), &t, "MANAGE", 200)
            .body(json!({"object": theirs})),
        Case::new(
            Method::Delete,
            format!("/trusts/{t}/objects/{theirs}"),
            &t,
            "MANAGE",
            200,
        ),
        Case::delete(format!("/trusts/{t2}"), &t2),
        Case::delete(format!("/api-keys/{key_id}"), &key_id),
    ];
    w.check_matrix(&cases).await;

    // The grant the other user made to carol was taken back by the other user; the member
    // and the object it added were taken out again; the doomed trust is gone.
    let (s, v) = w.owner.get(&format!("/objects/{shared}/access")).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        !v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["name"] == carol),
        "carol's MANAGE was revoked: {v}"
    );
    let (s, v) = w.owner.get(&format!("/trusts/{t}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["members"], json!([]), "{v}");
    assert_eq!(v["objects"], json!([]), "{v}");
    let (s, v) = w.owner.get(&format!("/trusts/{t2}")).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = key.get("/me").await;
    assert_eq!(s, 401, "the owner's key was revoked by the other user: {v}");
}

#[tokio::test]
async fn delegation_request_and_job_routes_need_their_capability() {
    let w = world().await;
    // Two objects the owner holds nothing on: the other user's trusts.
    let wanted = w.trust_as(&w.other, "wanted").await;
    let unwanted = w.trust_as(&w.other, "unwanted").await;
    push_image(&w.server, &w.owner_login, None, "acc-deleg", "v1").await;
    let manifest = json!({"acc-deleg": {
        "name": "acc-deleg", "tag": "v1", "type": "pipeline",
        "config-capabilities": {"target": ["READ"]},
    }});
    let (s, v) = w.owner.post("/prototypes", manifest).await;
    assert_eq!(s, 201, "{v}");
    let d = w
        .servable_as(
            &w.owner,
            "acc-deleg:v1",
            "asks",
            json!({"target": [wanted, unwanted]}),
        )
        .await;
    w.run_as(&w.owner, &d).await;
    let (s, v) = w
        .owner
        .get(&format!("/delegation-requests?servable={d}&state=pending"))
        .await;
    assert_eq!(s, 200, "{v}");
    let pending = v.as_array().expect("requests");
    let owner_id = w.owner.get("/me").await.1["id"].clone();
    let request_on = |object: &str| {
        let r = pending
            .iter()
            .find(|r| r["object"] == object)
            .unwrap_or_else(|| panic!("no pending request on {object}: {v}"));
        assert_eq!(
            r["requested_from"], owner_id,
            "addressed to the runner: {r}"
        );
        assert_eq!(r["capabilities"], json!(["READ"]), "{r}");
        id_of(r)
    };
    let r1 = request_on(&wanted);
    let r2 = request_on(&unwanted);

    // A job of the owner's, never submitted.
    let k = Kabuto {
        c: w.owner.c.clone(),
        base: w.server.base.clone(),
        login: w.owner_login.clone(),
    };
    let image = k.busybox().await;
    let pipeline = k.pipeline("acc").await;
    let job = k.job(&pipeline, &image, "true", &[]).await;
    // And one that ran, for its results.
    let ran_pipeline = k.pipeline("acc-ran").await;
    let ran = k.job(&ran_pipeline, &image, "true", &[]).await;
    let (s, v) = k.submit(&ran_pipeline).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(k.wait_job(&ran_pipeline, &ran).await["state"], "done");

    let cases = [
        Case::get(format!("/delegation-requests/{r1}"), &r1, "READ").returns(&r1),
        Case::post(
            format!("/delegation-requests/{r1}/grant"),
            &r1,
            "UPDATE",
            200,
        )
        .returns(&r1),
        Case::post(
            format!("/delegation-requests/{r2}/refuse"),
            &r2,
            "UPDATE",
            200,
        )
        .returns(&r2),
        Case::get(format!("/jobs/{job}"), &job, "READ").returns(&job),
        Case::get(format!("/jobs/{job}/logs"), &job, "READ"),
        Case::post(format!("/jobs/{job}/kill"), &job, "UPDATE", 200).returns(&job),
        Case::get(format!("/jobs/{ran}/result"), &ran, "READ"),
    ];
    w.check_matrix(&cases).await;

    // The other user granted from what it holds: the servable now reads the wanted trust.
    let (s, v) = w.owner.get(&format!("/delegation-requests/{r1}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "granted", "{v}");
    let (s, v) = w.owner.get(&format!("/delegation-requests/{r2}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "refused", "{v}");
    let (s, v) = w.other.get(&format!("/objects/{wanted}/access")).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["principal"] == d && g["capabilities"] == json!(["READ"])),
        "the servable holds READ on the wanted trust: {v}"
    );
    let (s, v) = w.other.get(&format!("/objects/{unwanted}/access")).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        !v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["principal"] == d),
        "a refused request grants nothing: {v}"
    );
}

// ---- credentials and open routes ----

#[tokio::test]
async fn types_are_open_to_every_user_and_closed_to_anonymous_callers() {
    let w = world().await;
    for c in [&w.owner, &w.other] {
        let (s, v) = c.get("/types").await;
        assert_eq!(s, 200, "{v}");
        let names: Vec<&str> = v
            .as_array()
            .expect("types")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["pipeline", "app", "daemon", "dataset", "model", "report"]
        );
    }
    let key = w.other.new_key().await;
    let (s, v) = V1::with_key(&w.server, &key).get("/types").await;
    assert_eq!(s, 200, "an API key works as well: {v}");
    let (s, v) = w.other.get("/engine").await;
    assert_eq!(s, 200, "any user sees the engine: {v}");

    for c in [
        w.anonymous(),
        V1::with_key(&w.server, "not-a-key"),
        V1::with_key(&w.server, &format!("{key}x")),
    ] {
        for path in [
            "/types",
            "/servables",
            "/trusts",
            "/prototypes",
            "/delegation-requests",
            "/engine",
            "/me",
        ] {
            let (s, v) = c.get(path).await;
            assert_eq!(s, 401, "GET /v1{path} with {:?}: {v}", c.bearer);
            assert_eq!(code(&v), "unauthorized", "{v}");
        }
        let (s, v) = c.post("/trusts", json!({"name": "t"})).await;
        assert_eq!(s, 401, "{v}");
        let (s, v) = c.post("/prototypes", json!({})).await;
        assert_eq!(s, 401, "{v}");
    }
}

// ---- grants and revocations ----

#[tokio::test]
async fn revoking_takes_the_access_away_again() {
    let w = world().await;
    let s = w.one_servable().await;
    let path = format!("/servables/{s}");
    let other = w.other_login.clone();

    w.grant(&s, &other, &["READ"]).await;
    let (st, v) = w.other.get(&path).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get("/servables").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v.as_array().expect("list").len(),
        1,
        "listed once granted: {v}"
    );
    let (st, v) = w.owner.get(&format!("/objects/{s}/access")).await;
    assert_eq!(st, 200, "{v}");
    let grant = v["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|g| g["name"] == other)
        .unwrap_or_else(|| panic!("the grant is listed: {v}"))
        .clone();
    assert_eq!(grant["kind"], "user");
    assert_eq!(grant["capabilities"], json!(["READ"]));

    let (st, v) = w.revoke(&s, &other, Some("READ")).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        !v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["name"] == other),
        "nothing left, so the grant is gone: {v}"
    );
    let (st, v) = w.other.get(&path).await;
    assert_eq!(st, 404, "READ was the only capability: {v}");
    let (st, v) = w.other.get("/servables").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, json!([]), "no longer listed: {v}");

    // Revoking part of a grant keeps the rest.
    w.grant(&s, &other, &["DISCOVER", "READ", "UPDATE"]).await;
    let (st, v) = w.revoke(&s, &other, Some("READ,UPDATE")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&path).await;
    assert_eq!(st, 403, "DISCOVER is left: {v}");
    let (st, v) = w.other.get(&format!("/objects/{s}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["capabilities"], json!(["DISCOVER"]), "{v}");
    assert_eq!(v["kind"], "servable", "{v}");

    // Without a list, everything goes.
    let (st, v) = w.revoke(&s, &other, None).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&format!("/objects/{s}")).await;
    assert_eq!(st, 404, "{v}");

    // Bad input. Capability names are exactly as the document's pattern has them: an empty
    // list, an empty item or a space is no capability (issue 11: `" READ"` was trimmed, which
    // the pattern does not allow).
    for list in ["READ,FLY", "", "READ,", "%20READ", "read"] {
        let (st, v) = w.revoke(&s, &other, Some(list)).await;
        assert_eq!(st, 400, "{list:?}: {v}");
        assert_eq!(code(&v), "bad_request", "{list:?}: {v}");
    }
    let (st, v) = w
        .owner
        .post(
            &format!("/objects/{s}/access"),
            json!({"principal": other, "capabilities": []}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = w
        .owner
        .post(
            &format!("/objects/{s}/access"),
            json!({"principal": other, "capabilities": ["FLY"]}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = w
        .owner
        .post(
            &format!("/objects/{s}/access"),
            json!({"principal": "nobody-by-that-name", "capabilities": ["READ"]}),
        )
        .await;
    assert_eq!(st, 404, "{v}");
}

#[tokio::test]
async fn grants_to_everyone_apply_to_every_user() {
    let w = world().await;
    let (carol, _) = v1_user(&w.server, "car").await;
    let s = w.one_servable().await;
    let path = format!("/servables/{s}");
    for c in [&w.other, &carol] {
        let (st, v) = c.get(&path).await;
        assert_eq!(st, 404, "{v}");
    }

    w.grant(&s, "everyone", &["READ"]).await;
    for c in [&w.other, &carol] {
        let (st, v) = c.get(&path).await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = c.get("/servables").await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v.as_array().expect("list").len(), 1, "{v}");
        // READ, not more.
        let (st, v) = c.post(&format!("{path}/run"), json!({})).await;
        assert_eq!(st, 403, "{v}");
        let (st, v) = c.delete(&path).await;
        assert_eq!(st, 403, "{v}");
    }
    // A user who registers afterwards is covered too.
    let (dave, _) = v1_user(&w.server, "dav").await;
    let (st, v) = dave.get(&path).await;
    assert_eq!(st, 200, "{v}");

    let (st, v) = w.owner.get(&format!("/objects/{s}/access")).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["grants"].as_array().expect("grants").iter().any(|g| {
            g["principal"] == "everyone"
                && g["kind"] == "everyone"
                && g["capabilities"] == json!(["READ"])
        }),
        "{v}"
    );

    let (st, v) = w.revoke(&s, "everyone", Some("READ")).await;
    assert_eq!(st, 200, "{v}");
    for c in [&w.other, &carol, &dave] {
        let (st, v) = c.get(&path).await;
        assert_eq!(st, 404, "{v}");
    }
}

// ---- servables as principals ----

#[tokio::test]
async fn a_servable_acts_through_its_key_with_its_own_capabilities() {
    let w = world().await;
    let context = dockerfile_dir(r#"CMD ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]"#);
    push_image(
        &w.server,
        &w.owner_login,
        Some(context.path()),
        "acc-sleeper",
        "v1",
    )
    .await;
    let manifest = json!({"acc-sleeper": {
        "name": "acc-sleeper", "tag": "v1", "type": "daemon",
        "arguments": {"volume_location": "/data", "volume_size": 1},
    }});
    let (st, v) = w.owner.post("/prototypes", manifest).await;
    assert_eq!(st, 201, "{v}");
    // Named like the other user's login: a name is no namespace.
    let s = w.servable("acc-sleeper:v1", &w.other_login).await;
    let t = w.trust("the owner's").await;
    let instance = id_of(&w.run_as(&w.owner, &s).await);
    let key_file = w
        .server
        .data_dir()
        .join("servables")
        .join(&s)
        .join("secrets")
        .join("api-key");
    let key = std::fs::read_to_string(&key_file).expect("the instance's key");
    let inside = V1::with_key(&w.server, key.trim());
    let owner_id = w.owner.get("/me").await.1["id"].clone();

    let (st, v) = inside.get("/me").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["kind"], "servable", "{v}");
    assert_eq!(v["id"], json!(s), "{v}");
    // Its key mints no other key (one would outlive the instance).
    let (st, v) = inside.post("/api-keys", json!({"name": "mine"})).await;
    assert_eq!(st, 403, "a servable creating an API key: {v}");
    // Its pushes create repositories in its owner's namespace, not in the namespace its name
    // looks like.
    let registry = client();
    let start_upload = |repo: String| {
        registry
            .post(w.server.url(&format!("/v2/{repo}/blobs/uploads/")))
            .bearer_auth(key.trim())
            .send()
    };
    let r = start_upload(format!(
        "{}/squatted",
        dtaas::core::names::slug(&w.other_login)
    ))
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        403,
        "a servable squatting another user's namespace"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    let r = start_upload(format!("{}/mine", dtaas::core::names::slug(&w.owner_login)))
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "its owner's namespace");
    // It reads itself and its instance, and not what its owner holds.
    let (st, v) = inside.get(&format!("/servables/{s}")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = inside.get(&format!("/instances/{instance}")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = inside.delete(&format!("/servables/{s}")).await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = inside.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 404, "the servable is not its owner: {v}");
    // `everyone` is every user, not every servable.
    w.grant(&t, "everyone", &["READ"]).await;
    let (st, v) = w.other.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = inside.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 404, "{v}");
    // A grant to the servable itself counts.
    w.grant(&t, &s, &["READ"]).await;
    let (st, v) = inside.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.revoke(&t, &s, None).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = inside.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 404, "{v}");

    // What it creates while it runs belongs to its owner; it holds every capability on it.
    let (created_status, created) = inside.post("/trusts", json!({"name": "made inside"})).await;
    let (st, v) = w.owner.get(&format!("/instances/{instance}")).await;
    assert_eq!(st, 200, "{v}");
    let outputs = v["outputs"].clone();

    // Stopped, its key is revoked.
    let (st, v) = w
        .owner
        .post(&format!("/instances/{instance}/stop"), json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "stopped", "{v}");
    let (st, v) = inside.get("/me").await;
    assert_eq!(st, 401, "the key of an ended instance: {v}");

    assert_eq!(
        created_status, 201,
        "a running servable creates a trust through its key: {created}"
    );
    let made = id_of(&created);
    let (st, v) = w.owner.get(&format!("/objects/{made}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["owner"], owner_id, "{v}");
    let (st, v) = w.owner.get(&format!("/objects/{made}/access")).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["grants"].as_array().expect("grants").iter().any(|g| {
            g["principal"] == s && g["capabilities"].as_array().is_some_and(|c| c.len() == 7)
        }),
        "the servable holds every capability on what it made: {v}"
    );
    let (st, v) = w.other.get(&format!("/trusts/{made}")).await;
    assert_eq!(st, 404, "{v}");
    assert!(
        outputs
            .as_array()
            .is_some_and(|o| o.iter().any(|x| x["id"] == made && x["kind"] == "trust")),
        "the instance lists what it made: {outputs}"
    );
}

// ---- trusts ----

#[tokio::test]
async fn trust_members_hold_what_is_granted_to_the_trust() {
    let w = world().await;
    let s = w.one_servable().await;
    let t = w.trust("readers").await;
    let path = format!("/servables/{s}");
    w.grant(&s, &t, &["READ"]).await;
    let (st, v) = w.other.get(&path).await;
    assert_eq!(st, 404, "not a member yet: {v}");
    let (st, v) = w.other.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 404, "not a member yet: {v}");

    let (st, v) = w
        .owner
        .post(
            &format!("/trusts/{t}/members"),
            json!({"principal": w.other_login}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let other_id = w.other.get("/me").await.1["id"].clone();
    assert_eq!(v["members"], json!([other_id]), "{v}");

    let (st, v) = w.other.get(&path).await;
    assert_eq!(st, 200, "a member holds the trust's READ: {v}");
    assert_eq!(v["id"], json!(s));
    let (st, v) = w.other.post(&format!("{path}/run"), json!({})).await;
    assert_eq!(st, 403, "READ, not UPDATE: {v}");
    // Members read the trust, but only trustees manage it.
    let (st, v) = w.other.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get("/trusts").await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v.as_array().expect("trusts").iter().any(|x| x["id"] == t),
        "listed for a member: {v}"
    );
    let (st, v) = w
        .other
        .post(
            &format!("/trusts/{t}/members"),
            json!({"principal": w.owner_login}),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = w.other.get(&format!("/objects/{t}/access")).await;
    assert_eq!(st, 403, "{v}");

    // Removing the member takes it all away.
    let (st, v) = w
        .owner
        .delete(&format!("/trusts/{t}/members/{}", w.other_login))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["members"], json!([]), "{v}");
    let (st, v) = w.other.get(&path).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = w.other.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = w
        .owner
        .delete(&format!("/trusts/{t}/members/{}", w.other_login))
        .await;
    assert_eq!(st, 404, "no longer a member: {v}");

    // Revoking the trust's grant works like any other.
    w.grant(&s, &w.other_login, &["DISCOVER"]).await;
    let (st, v) = w
        .owner
        .post(
            &format!("/trusts/{t}/members"),
            json!({"principal": w.other_login}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&path).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.revoke(&s, &t, Some("READ")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&path).await;
    assert_eq!(st, 403, "its own DISCOVER is left: {v}");
}

#[tokio::test]
async fn trustees_manage_what_is_placed_in_the_trust() {
    let w = world().await;
    let (carol_client, carol) = v1_user(&w.server, "car").await;
    let s = w.one_servable().await;
    let t = w.trust("stewards").await;
    let (st, v) = w
        .owner
        .post(
            &format!("/trusts/{t}/members"),
            json!({"principal": w.other_login, "role": "trustee"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let other_id = w.other.get("/me").await.1["id"].clone();
    let owner_id = w.owner.get("/me").await.1["id"].clone();
    let mut trustees = v["trustees"].as_array().expect("trustees").clone();
    trustees.sort_by_key(|x| x.to_string());
    let mut want = vec![owner_id.clone(), other_id.clone()];
    want.sort_by_key(|x| x.to_string());
    assert_eq!(trustees, want, "{v}");

    let access = format!("/objects/{s}/access");
    let (st, v) = w.other.get(&access).await;
    assert_eq!(st, 404, "not in the trust yet: {v}");
    let (st, v) = w
        .owner
        .post(&format!("/trusts/{t}/objects"), json!({"object": s}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["objects"], json!([s]), "{v}");

    // MANAGE on the servable, and nothing else.
    let (st, v) = w.other.get(&access).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&format!("/servables/{s}")).await;
    assert_eq!(st, 403, "MANAGE is not READ: {v}");
    let (st, v) = w.other.delete(&format!("/servables/{s}")).await;
    assert_eq!(st, 403, "{v}");
    // Managing means granting, but only what the trustee holds itself: not READ.
    let (st, v) = w
        .other
        .post(
            &access,
            json!({"principal": carol, "capabilities": ["READ"]}),
        )
        .await;
    assert_eq!(st, 403, "a trustee's MANAGE does not hand out READ: {v}");
    w.grant_as(&w.other, &s, &carol, &["DISCOVER"]).await;
    w.grant_as(&w.owner, &s, &carol, &["READ"]).await;
    let (st, v) = w.owner.get(&access).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["name"] == carol),
        "{v}"
    );
    // Trustees manage the trust itself: they add members.
    let (st, v) = w
        .other
        .post(&format!("/trusts/{t}/members"), json!({"principal": carol}))
        .await;
    assert_eq!(st, 200, "{v}");
    // A plain member manages nothing placed in the trust.
    let (st, v) = carol_client.get(&access).await;
    assert_eq!(
        st, 403,
        "carol, a plain member, reads it but does not manage it: {v}"
    );
    let (st, v) = carol_client.get(&format!("/servables/{s}")).await;
    assert_eq!(st, 200, "carol's own READ grant: {v}");

    // Taken out of the trust, the servable is out of the trustee's reach.
    let (st, v) = w.other.delete(&format!("/trusts/{t}/objects/{s}")).await;
    assert_eq!(st, 200, "a trustee takes objects out: {v}");
    assert_eq!(v["objects"], json!([]), "{v}");
    let (st, v) = w.other.get(&access).await;
    assert_eq!(st, 404, "{v}");

    // Placed again, then the trustee removed from the trust.
    let (st, v) = w
        .owner
        .post(&format!("/trusts/{t}/objects"), json!({"object": s}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&access).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w
        .owner
        .delete(&format!("/trusts/{t}/members/{}", w.other_login))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["trustees"], json!([owner_id]), "{v}");
    let (st, v) = w.other.get(&access).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = w.other.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 404, "{v}");
}

#[tokio::test]
async fn a_trustee_places_only_what_it_manages() {
    let w = world().await;
    let s = w.one_servable().await;
    let t = w.trust_as(&w.other, "the other user's").await;
    // The owner's servable, invisible to the other user.
    let (st, v) = w
        .other
        .post(&format!("/trusts/{t}/objects"), json!({"object": s}))
        .await;
    assert_eq!(st, 404, "{v}");
    // Visible, readable, but not managed.
    w.grant(
        &s,
        &w.other_login,
        &["DISCOVER", "READ", "UPDATE", "DELETE"],
    )
    .await;
    let (st, v) = w
        .other
        .post(&format!("/trusts/{t}/objects"), json!({"object": s}))
        .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = w.other.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["objects"], json!([]), "{v}");
    // Managed: placed.
    w.grant(&s, &w.other_login, &["MANAGE"]).await;
    let (st, v) = w
        .other
        .post(&format!("/trusts/{t}/objects"), json!({"object": s}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["objects"], json!([s]), "{v}");
}

#[tokio::test]
async fn the_last_trustee_cannot_be_removed() {
    let w = world().await;
    let t = w.trust("kept").await;
    let owner_id = w.owner.get("/me").await.1["id"].clone();
    let other_id = w.other.get("/me").await.1["id"].clone();
    let (st, v) = w
        .owner
        .delete(&format!("/trusts/{t}/members/{}", w.owner_login))
        .await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(code(&v), "conflict", "{v}");
    let (st, v) = w.owner.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["trustees"], json!([owner_id]), "{v}");

    // With a second trustee the first may go; then the second is the last.
    let (st, v) = w
        .owner
        .post(
            &format!("/trusts/{t}/members"),
            json!({"principal": w.other_login, "role": "trustee"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w
        .other
        .delete(&format!("/trusts/{t}/members/{}", w.owner_login))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["trustees"], json!([other_id]), "{v}");
    let (st, v) = w
        .other
        .delete(&format!("/trusts/{t}/members/{}", w.other_login))
        .await;
    assert_eq!(st, 409, "{v}");
    let (st, v) = w.other.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["trustees"], json!([other_id]), "{v}");
    // The owner still owns the trust (an owner holds every capability).
    let (st, v) = w
        .owner
        .delete(&format!("/trusts/{t}/members/{}", w.other_login))
        .await;
    assert_eq!(st, 409, "the last trustee stays whoever asks: {v}");
}

/// Issue 11 (schemathesis): a trust holds itself for good; taking it out of itself was a 400,
/// which a request the document allows may not be: it conflicts with what the trust is (409).
#[tokio::test]
async fn a_trust_cannot_leave_itself() {
    let w = world().await;
    let t = w.trust("selfish").await;
    let (_, before) = w.owner.get(&format!("/trusts/{t}")).await;
    let (st, v) = w.owner.delete(&format!("/trusts/{t}/objects/{t}")).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(code(&v), "conflict", "{v}");
    let (st, after) = w.owner.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 200, "{after}");
    assert_eq!(after, before);
}

#[tokio::test]
async fn deleting_a_trust_takes_away_what_it_granted() {
    let w = world().await;
    let s = w.one_servable().await;
    let t = w.trust("short-lived").await;
    w.grant(&s, &t, &["READ"]).await;
    let (st, v) = w
        .owner
        .post(
            &format!("/trusts/{t}/members"),
            json!({"principal": w.other_login}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&format!("/servables/{s}")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.delete(&format!("/trusts/{t}")).await;
    assert_eq!(st, 403, "a member may not delete it: {v}");

    let (st, v) = w.owner.delete(&format!("/trusts/{t}")).await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = w.other.get(&format!("/servables/{s}")).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = w.owner.get(&format!("/objects/{s}/access")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["grants"],
        json!([]),
        "the trust's grant went with it: {v}"
    );
    let (st, v) = w.owner.get(&format!("/trusts/{t}")).await;
    assert_eq!(st, 404, "{v}");
}

// ---- visibility ----

#[tokio::test]
async fn any_capability_makes_an_object_discoverable() {
    let w = world().await;
    let s = w.one_servable().await;
    let t = w.trust("placed").await;
    // READ alone: the servable reads in full, so its type and id are no secret.
    w.grant(&s, &w.other_login, &["READ"]).await;
    let (st, v) = w.other.get(&format!("/servables/{s}")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&format!("/objects/{s}")).await;
    assert_eq!(st, 200, "READ without DISCOVER: {v}");
    assert_eq!(v["kind"], "servable", "{v}");
    assert!(
        v["capabilities"]
            .as_array()
            .expect("capabilities")
            .contains(&json!("READ")),
        "{v}"
    );
    let (st, v) = w.revoke(&s, &w.other_login, None).await;
    assert_eq!(st, 200, "{v}");

    // MANAGE through a trust: its access list is open, so is its type.
    let (st, v) = w
        .owner
        .post(
            &format!("/trusts/{t}/members"),
            json!({"principal": w.other_login, "role": "trustee"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w
        .owner
        .post(&format!("/trusts/{t}/objects"), json!({"object": s}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&format!("/objects/{s}/access")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.other.get(&format!("/objects/{s}")).await;
    assert_eq!(st, 200, "MANAGE without DISCOVER: {v}");
    let caps = v["capabilities"].as_array().expect("capabilities");
    assert!(caps.contains(&json!("MANAGE")), "{v}");
    for lacking in ["READ", "UPDATE", "DELETE", "CREATE", "REQUEST"] {
        assert!(
            !caps.contains(&json!(lacking)),
            "a trustee holds MANAGE, not {lacking}: {v}"
        );
    }
}

// ---- invisible is missing ----

/// A fresh id no object has.
fn missing_id() -> String {
    dtaas::core::id::Id::new().to_string()
}

/// One probe: a route asked about an invisible object and about a missing one (`PROBE` in the
/// path and body stands for either).
struct Probe {
    method: Method,
    path: String,
    body: Value,
    invisible: String,
    missing: String,
}

impl Probe {
    fn new(
        method: Method,
        path: impl Into<String>,
        body: Value,
        invisible: &str,
        missing: &str,
    ) -> Probe {
        Probe {
            method,
            path: path.into(),
            body,
            invisible: invisible.to_owned(),
            missing: missing.to_owned(),
        }
    }
}

/// The body with `probe` replaced, so answers about different ids compare.
fn normalized(v: &Value, probe: &str) -> String {
    v.to_string().replace(probe, "<probe>")
}

#[tokio::test]
async fn invisible_objects_answer_exactly_like_missing_ones() {
    let w = world().await;
    let p = w.prototypes(&["acc-hidden"]).await;
    let s = w.servable(&p[0], "hidden").await;
    let t = w.trust("hidden").await;
    let theirs = w.trust_as(&w.other, "the other user's").await;

    let m = missing_id();
    let rows = [
        Probe::new(Method::Get, "/servables/PROBE", json!({}), &s, &m),
        Probe::new(Method::Post, "/servables/PROBE/run", json!({}), &s, &m),
        Probe::new(Method::Delete, "/servables/PROBE", json!({}), &s, &m),
        Probe::new(Method::Get, "/prototypes/PROBE", json!({}), &p[0], &m),
        Probe::new(
            Method::Get,
            "/prototypes/PROBE",
            json!({}),
            "acc-hidden:v1",
            "acc-nosuch:v1",
        ),
        Probe::new(
            Method::Post,
            "/servables",
            json!({"prototype": "PROBE", "name": "x"}),
            &p[0],
            &m,
        ),
        Probe::new(
            Method::Post,
            "/servables",
            json!({"prototype": "PROBE", "name": "x"}),
            "acc-hidden:v1",
            "acc-nosuch:v1",
        ),
        Probe::new(Method::Get, "/trusts/PROBE", json!({}), &t, &m),
        Probe::new(Method::Get, "/objects/PROBE", json!({}), &s, &m),
        Probe::new(Method::Get, "/objects/PROBE", json!({}), &t, &m),
        Probe::new(Method::Get, "/objects/PROBE/access", json!({}), &s, &m),
        Probe::new(
            Method::Post,
            "/objects/PROBE/access",
            json!({"principal": "everyone", "capabilities": ["READ"]}),
            &s,
            &m,
        ),
        Probe::new(
            Method::Delete,
            "/objects/PROBE/access/everyone",
            json!({}),
            &s,
            &m,
        ),
        Probe::new(
            Method::Post,
            format!("/trusts/{theirs}/objects"),
            json!({"object": "PROBE"}),
            &s,
            &m,
        ),
        // Naming a principal the caller cannot see, on an object it manages.
        Probe::new(
            Method::Post,
            format!("/objects/{theirs}/access"),
            json!({"principal": "PROBE", "capabilities": ["READ"]}),
            &t,
            &m,
        ),
        Probe::new(
            Method::Post,
            format!("/objects/{theirs}/access"),
            json!({"principal": "PROBE", "capabilities": ["READ"]}),
            &s,
            &m,
        ),
        Probe::new(
            Method::Post,
            format!("/trusts/{theirs}/members"),
            json!({"principal": "PROBE"}),
            &s,
            &m,
        ),
    ];
    let mut leaks = Vec::new();
    for Probe {
        method,
        path,
        body,
        invisible,
        missing,
    } in &rows
    {
        let ask = |probe: &str| {
            let path = path.replace("PROBE", probe);
            let body: Value = serde_json::from_str(&body.to_string().replace("PROBE", probe))
                .expect("a body template");
            (path, body)
        };
        let (path_i, body_i) = ask(invisible);
        let (path_m, body_m) = ask(missing);
        let (si, vi) = call(&w.other, *method, &path_i, &body_i).await;
        let (sm, vm) = call(&w.other, *method, &path_m, &body_m).await;
        if sm != 404 {
            leaks.push(format!(
                "{method:?} {path_m} {body_m}: a missing id answers {sm} {vm}"
            ));
        }
        if (si, normalized(&vi, invisible)) != (sm, normalized(&vm, missing)) {
            leaks.push(format!(
                "{method:?} {path} {body}: invisible {invisible} answers {si} {vi}; missing answers {sm} {vm}"
            ));
        }
    }
    // An object of another kind is as unknown as a missing one, even to its owner.
    for (path, probe) in [
        ("/servables/PROBE", &t),
        ("/trusts/PROBE", &s),
        ("/instances/PROBE", &s),
        ("/delegation-requests/PROBE", &s),
        ("/jobs/PROBE", &t),
        ("/prototypes/PROBE", &s),
    ] {
        let (si, vi) = w.owner.get(&path.replace("PROBE", probe)).await;
        let (sm, vm) = w.owner.get(&path.replace("PROBE", &m)).await;
        if (si, normalized(&vi, probe)) != (sm, normalized(&vm, &m)) || si != 404 {
            leaks.push(format!(
                "GET {path} with an id of another kind answers {si} {vi}; a missing id answers {sm} {vm}"
            ));
        }
    }
    // What the probes left behind, for the report.
    let (st, v) = w.owner.get(&format!("/objects/{s}/access")).await;
    assert_eq!(st, 200, "{v}");
    let (st2, v2) = w.other.get(&format!("/objects/{theirs}/access")).await;
    assert_eq!(st2, 200, "{v2}");
    assert!(
        leaks.is_empty(),
        "{} answers tell invisible objects from missing ones:\n{}\n(afterwards: the owner's servable's access list {v}; the other user's trust's {v2})",
        leaks.len(),
        leaks.join("\n")
    );
}

/// A principal grants and takes away only the capabilities it holds itself: with MANAGE alone
/// on another user's object, a user cannot give itself (or anyone, or everyone) READ, UPDATE or
/// DELETE, nor take away what the owner granted beyond what it holds. MANAGE is needed to grant
/// MANAGE, and owners grant everything.
#[tokio::test]
async fn manage_alone_grants_only_what_the_granter_holds() {
    let w = world().await;
    let (carol_client, carol) = v1_user(&w.server, "car").await;
    let obj = w.trust("owned by the owner").await;
    let access = format!("/objects/{obj}/access");
    w.grant_as(&w.owner, &obj, &w.other_login, &["MANAGE"])
        .await;

    for caps in [
        json!(["READ"]),
        json!(["UPDATE"]),
        json!(["DELETE"]),
        json!(["MANAGE", "READ"]),
    ] {
        for principal in [w.other_login.as_str(), carol.as_str(), "everyone"] {
            let (st, v) = w
                .other
                .post(
                    &access,
                    json!({"principal": principal, "capabilities": caps}),
                )
                .await;
            assert_eq!(st, 403, "{principal} {caps}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("hold yourself"),
                "{v}"
            );
        }
    }
    let (st, v) = w.other.get(&format!("/trusts/{obj}")).await;
    assert_eq!(st, 403, "still no READ for the manager: {v}");
    let (st, v) = carol_client.get(&format!("/trusts/{obj}")).await;
    assert_eq!(st, 404, "nothing reached carol: {v}");

    // What it holds, it may hand on: MANAGE (with DISCOVER).
    w.grant_as(&w.other, &obj, &carol, &["MANAGE"]).await;
    let (st, v) = carol_client.get(&access).await;
    assert_eq!(st, 200, "{v}");

    // The owner's grant of DELETE to carol is out of the manager's reach; taking away
    // "everything" takes only what the manager holds.
    w.grant_as(&w.owner, &obj, &carol, &["DELETE"]).await;
    let (st, v) = w
        .other
        .delete(&format!("{access}/{carol}?capabilities=DELETE"))
        .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = w.other.delete(&format!("{access}/{carol}")).await;
    assert_eq!(st, 200, "{v}");
    let carol_grant = v["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .find(|g| g["name"] == carol)
        .cloned()
        .expect("carol keeps the owner's grant");
    assert_eq!(carol_grant["capabilities"], json!(["DELETE"]), "{v}");

    // With MANAGE and READ, READ can be handed on, UPDATE still not.
    w.grant_as(&w.owner, &obj, &w.other_login, &["READ"]).await;
    w.grant_as(&w.other, &obj, &carol, &["READ"]).await;
    let (st, v) = w
        .other
        .post(
            &access,
            json!({"principal": carol, "capabilities": ["UPDATE"]}),
        )
        .await;
    assert_eq!(st, 403, "{v}");
}

/// Running a servable someone else configured asks before it hands anything of the runner's
/// to it: user B's prototype asks READ and DELETE on the object in its config, B's servable
/// points that at user A's trust, and B lets A run it. Before, the grant was automatic when A
/// ran it (and the servable could delete A's object). Now it is a pending request A resolves;
/// an admin running a servable of its own is asked too.
#[tokio::test]
async fn delegation_is_automatic_only_for_what_the_runner_owns() {
    let w = world().await;
    let target = w.trust("A's").await;
    push_image(&w.server, &w.other_login, None, "acc-greedy", "v1").await;
    let manifest = json!({"acc-greedy": {
        "name": "acc-greedy", "tag": "v1", "type": "pipeline",
        "config-capabilities": {"target": ["READ", "DELETE"]},
    }});
    let (st, v) = w.other.post("/prototypes", manifest).await;
    assert_eq!(st, 201, "{v}");
    let greedy = w
        .servable_as(
            &w.other,
            "acc-greedy:v1",
            "greedy",
            json!({"target": target}),
        )
        .await;
    w.grant_as(&w.other, &greedy, &w.owner_login, &["UPDATE"])
        .await;

    let instance = id_of(&w.run_as(&w.owner, &greedy).await);
    let (st, v) = w
        .owner
        .get(&format!("/delegation-requests?servable={greedy}"))
        .await;
    assert_eq!(st, 200, "{v}");
    let requests = v.as_array().expect("requests").clone();
    assert_eq!(requests.len(), 1, "{v}");
    assert_eq!(requests[0]["state"], "pending", "{v}");
    assert_eq!(requests[0]["automatic"], false, "{v}");
    assert_eq!(requests[0]["object"], json!(target), "{v}");
    wait_ended(&w.owner, &instance).await;
    let (st, v) = w.owner.get(&format!("/objects/{target}/access")).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        !v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["principal"] == greedy),
        "nothing of A's was handed to B's servable: {v}"
    );
    let (st, v) = w.owner.get(&format!("/trusts/{target}")).await;
    assert_eq!(st, 200, "A's trust is still there: {v}");

    // A decides: granted, the servable holds what it asked for.
    let request = id_of(&requests[0]);
    let (st, v) = w
        .owner
        .post(&format!("/delegation-requests/{request}/grant"), json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w.owner.get(&format!("/objects/{target}/access")).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .any(|g| g["principal"] == greedy),
        "{v}"
    );

    // An admin's powers hand nothing over by themselves either.
    let dir = w.server.data_dir();
    let root = unique("root");
    let out = dtaas_cli(
        &[
            "admin",
            "--data-dir",
            dir.to_str().unwrap(),
            "create-user",
            &root,
            "--admin",
            "--password-stdin",
        ],
        Some(PASSWORD),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let admin_client = client();
    let r = admin_client
        .post(w.server.url("/login"))
        .form(&[("login", root.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let admin = V1::new(&w.server, admin_client);
    push_image(&w.server, &root, None, "acc-admins", "v1").await;
    let manifest = json!({"acc-admins": {
        "name": "acc-admins", "tag": "v1", "type": "pipeline",
        "config-capabilities": {"target": ["READ"]},
    }});
    let (st, v) = admin.post("/prototypes", manifest).await;
    assert_eq!(st, 201, "{v}");
    let theirs = w.trust_as(&w.other, "B's").await;
    let admins = w
        .servable_as(&admin, "acc-admins:v1", "admins", json!({"target": theirs}))
        .await;
    w.run_as(&admin, &admins).await;
    let (st, v) = admin
        .get(&format!("/delegation-requests?servable={admins}"))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v[0]["state"], "pending", "an admin is asked too: {v}");
}
