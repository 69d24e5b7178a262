//! The dashboard's prototypes and servables pages (issue 14), in a real Chromium: the hello
//! manifest uploaded through the form, its pipeline run from its page and the app opened from
//! the app's page; a broken manifest shown back with each problem next to its field; the
//! guard that keeps a prototype in use; another user seeing none of it.

use crate::browser::{Browser, csrf_of};
use crate::harness::*;
use fantoccini::Locator;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const HELLO: &str = "The Daemon says, Hello, DTaaS!";

/// A page's HTML through a signed-in client: (status, body).
async fn page(c: &reqwest::Client, server: &TestServer, path: &str) -> (u16, String) {
    let r = c.get(server.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The last segment of the browser's path (the id of the object it shows).
async fn id_in_path(b: &Browser) -> String {
    let path = b.path().await;
    let path = path.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

/// The text of the element a CSS selector names.
async fn text_at(b: &Browser, css: &str) -> String {
    b.find(css).await.text().await.unwrap()
}

/// Waits until the element a CSS selector names has the text `want` (at most `secs`).
async fn wait_element_text(b: &Browser, css: &str, want: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = text_at(b, css).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} says {now:?}, not {want:?}: {}",
            b.text().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_hello_manifest_is_uploaded_and_run_and_its_app_opened_from_the_pages() {
    let server = TestServer::start().await;
    let (c, login) = server.user("dhello").await;
    let api = V1::new(&server, c);
    for part in ["hello-daemon", "hello-app", "hello-pipeline"] {
        push_image(&server, &login, Some(&example(part)), part, "1").await;
    }
    let b = Browser::start(&server).await;
    b.sign_in(&login, PASSWORD, "/ui/prototypes").await;
    b.wait_text("No prototypes to show.", 10).await;

    // The manifest, as a file through the upload form.
    b.follow("Register prototypes from a manifest").await;
    b.wait_path("/ui/prototypes/new").await;
    b.screenshot("prototypes-new").await;
    let manifest = example("MANIFEST.json");
    b.find("input[type=file][name=manifest]")
        .await
        .send_keys(manifest.to_str().unwrap())
        .await
        .unwrap();
    b.press("Upload and register").await;
    b.wait_path("/ui/prototypes").await;
    let text = b.wait_text("Registered 3 prototype(s)", 10).await;
    assert!(text.contains("hello-pipeline:1"), "{text}");
    b.screenshot("prototypes-list").await;
    let (status, list) = api.get("/prototypes").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");

    // The list shows dependencies as links to their prototypes.
    let app_proto = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hello-app")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dep = format!("td a[href=\"/ui/prototypes/{app_proto}\"]");
    assert_eq!(text_at(&b, &dep).await, "hello-app:1");

    // The pipeline's page, and a servable made from it with small resources.
    b.follow("hello-pipeline:1").await;
    let text = b.wait_text("Dependencies", 10).await;
    assert!(text.contains("hello-daemon: hello-daemon:1"), "{text}");
    assert!(text.contains("CREATE, READ"), "{text}");
    b.screenshot("prototypes-show").await;
    b.follow("Create a servable from it").await;
    b.wait_path("/ui/servables/new").await;
    b.fill("name", "hello-pipeline").await;
    b.fill("cpu_cores", "0.5").await;
    b.fill("ram", "64").await;
    b.screenshot("servables-new").await;
    b.press("Create the servable").await;
    b.wait_text("Created the servable hello-pipeline.", 10)
        .await;
    let pipeline = id_in_path(&b).await;
    let (status, view) = api.get(&format!("/servables/{pipeline}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["type"], "pipeline");
    assert_eq!(view["resources"], small());
    assert_eq!(view["prototype"]["name"], "hello-pipeline");

    // Run it: its log arrives on the page and its state changes without a reload.
    b.press("Run").await;
    b.wait_text("Instance ", 60).await;
    b.wait_text("hello-pipeline: done", 120).await;
    wait_element_text(&b, "#instance-state", "exited", 60).await;
    // The ended instance offers Run again, and no Stop, without a reload.
    let forms = b
        .c
        .execute(
            "const shown = (s) => Array.from(document.querySelectorAll(s)).filter(f => !f.hidden).length; \
             return [shown('form[action$=\"/run\"]'), shown('form[action$=\"/stop\"]')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(forms, json!([1, 0]), "Run shown once, Stop gone");
    let (_, view) = api.get(&format!("/servables/{pipeline}")).await;
    let instance = view["current_instance"].as_str().unwrap().to_owned();
    let (_, run) = api.get(&format!("/instances/{instance}")).await;
    assert_eq!(
        (&run["state"], &run["exit_code"]),
        (&json!("exited"), &json!(0))
    );

    // After a reload, the outputs it created, linked.
    b.open(&format!("/ui/servables/{pipeline}")).await;
    let text = b.wait_text("Outputs", 10).await;
    assert!(text.contains("hello-daemon") && text.contains("daemon servable:"));
    b.screenshot("servables-show-pipeline").await;
    let output = |name: &str| {
        run["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "servable" && o["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {run}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (app, daemon) = (output("hello-app"), output("hello-daemon"));

    // The instance's page holds its stored log.
    b.follow(&instance[24..]).await;
    b.wait_path(&format!("/ui/instances/{instance}")).await;
    let text = b.wait_text("hello-pipeline: done", 10).await;
    assert!(text.contains("exited"), "{text}");
    b.screenshot("servables-instance").await;

    // The daemon's page shows its volume.
    b.open(&format!("/ui/servables/{daemon}")).await;
    let text = b.wait_text("Volume", 10).await;
    assert!(text.contains("/data") && text.contains("1 MB"), "{text}");
    assert!(!text.contains("Open the app"), "{text}");
    b.screenshot("servables-show-daemon").await;

    // The app's page, reached from the pipeline's outputs, opens the app.
    b.open(&format!("/ui/servables/{pipeline}")).await;
    b.click(&format!("td a[href=\"/ui/servables/{app}\"]"))
        .await;
    b.wait_path(&format!("/ui/servables/{app}")).await;
    let text = b.wait_text("Open the app", 10).await;
    assert!(text.contains(&format!("{app}.localhost")), "{text}");
    b.screenshot("servables-show-app").await;
    b.follow("Open the app").await;
    let apps = format!("/apps/{app}/");
    b.wait_path(&apps).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b.text().await.contains(HELLO) {
        assert!(
            Instant::now() < deadline,
            "the app never answered: {}",
            b.text().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.open(&apps).await;
    }

    // The list, filtered by type.
    b.open("/ui/servables").await;
    let text = b.wait_text("hello-app", 10).await;
    assert!(text.contains("hello-daemon") && text.contains("hello-pipeline"));
    b.screenshot("servables-list").await;
    b.select("type", "app").await;
    b.press("Filter").await;
    b.wait_path("/ui/servables").await;
    assert_eq!(b.path().await, "/ui/servables?type=app");
    let text = b.text().await;
    assert!(
        text.contains("hello-app:1") && !text.contains("hello-daemon"),
        "{text}"
    );

    // Another user cannot reach the app until it is granted REQUEST on its access page; then
    // the app answers them through the proxy with their own session.
    let (other, other_login) = server.user("dreach").await;
    let app_path = server.url(&format!("/apps/{app}/"));
    let r = other.get(&app_path).send().await.unwrap();
    assert_ne!(r.status(), 200, "not granted yet");
    b.open(&format!("/ui/access?object={app}")).await;
    b.type_into("#principal", &other_login).await;
    b.click("#grant-REQUEST").await;
    b.press("Grant").await;
    b.wait_text("Granted REQUEST", 15).await;
    b.screenshot("servables-app-access").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = other.get(&app_path).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        if status == 200 {
            assert_eq!(body, "The Daemon says, Hello, DTaaS!");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the grantee never reached the app: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Deleting from the pages: the pipeline; the app and the daemon through /v1.
    b.open(&format!("/ui/servables/{pipeline}")).await;
    b.press("Delete servable").await;
    b.wait_path("/ui/servables").await;
    b.wait_text("Deleted the servable hello-pipeline", 10).await;
    let (status, _) = api.get(&format!("/servables/{pipeline}")).await;
    assert_eq!(status, 404);
    for id in [&app, &daemon] {
        let (status, body) = api.delete(&format!("/servables/{id}")).await;
        assert_eq!(status, 204, "{body}");
    }
    b.close().await;
}

#[tokio::test]
async fn a_refused_manifest_comes_back_with_each_problem_next_to_its_field() {
    let server = TestServer::start().await;
    let (c, login) = server.user("dbroken").await;
    let api = V1::new(&server, c.clone());
    let broken = json!({
        "broken-app": {
            "name": "broken-app", "tag": "not a tag!", "type": "app",
            "dependencies": {"db": "no-such-thing:1"}
        },
        "broken-daemon": {
            "name": "other-name", "tag": "1", "type": "daemon",
            "arguments": {"volume_location": "relative/path"}
        }
    });
    let b = Browser::start(&server).await;
    b.sign_in(&login, PASSWORD, "/ui/prototypes/new").await;
    b.find("textarea[name=manifest]")
        .await
        .send_keys(&serde_json::to_string_pretty(&broken).unwrap())
        .await
        .unwrap();
    b.press("Register the manifest").await;
    b.wait_text("The manifest was refused", 10).await;
    b.screenshot("prototypes-problems").await;

    // Each problem in its prototype's group, on its field's row, the field marked.
    let row = |item: &str, field: &str| {
        format!("section[data-item=\"{item}\"] tr[data-field=\"{field}\"]")
    };
    for (item, field, says) in [
        ("broken-app", "tag", "is not a valid image tag"),
        (
            "broken-app",
            "dependencies.db",
            "is neither a prototype in this manifest",
        ),
        ("broken-daemon", "name", "must equal the manifest key"),
        (
            "broken-daemon",
            "arguments.volume_location",
            "must be an absolute path",
        ),
        ("broken-daemon", "arguments.volume_size", "missing"),
        ("broken-daemon", "tag", "is not in the registry"),
    ] {
        let text = text_at(&b, &row(item, field)).await;
        assert!(text.contains(says), "{item} {field}: {text}");
        let marked = text_at(&b, &format!("{} .field-problem", row(item, field))).await;
        assert_eq!(marked, field);
    }
    // What was written there is shown beside it, and the manifest is back in the form.
    let text = text_at(&b, &row("broken-daemon", "arguments.volume_location")).await;
    assert!(text.contains("\"relative/path\""), "{text}");
    let again = b
        .find("textarea[name=manifest]")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(again.contains("other-name"), "{again}");
    let groups =
        b.c.find_all(Locator::Css("section[data-item]"))
            .await
            .unwrap();
    assert_eq!(groups.len(), 2);

    // The status is the domain's (400 for problems of the input), and nothing was registered.
    let (_, form) = page(&c, &server, "/ui/prototypes/new").await;
    let csrf = csrf_of(&form);
    let text = broken.to_string();
    let r = c
        .post(server.url("/ui/prototypes"))
        .form(&[("csrf", csrf.as_str()), ("manifest", text.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("data-item=\"broken-daemon\""), "{body}");
    let r = c
        .post(server.url("/ui/prototypes"))
        .form(&[("csrf", csrf.as_str()), ("manifest", "{not json")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("is not JSON"));
    // Without the token: refused, and nothing registered either.
    let r = c
        .post(server.url("/ui/prototypes"))
        .form(&[("manifest", text.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, list) = api.get("/prototypes").await;
    assert_eq!((status, list), (200, json!([])));
    b.close().await;
}

#[tokio::test]
async fn a_prototype_in_use_is_kept_and_another_user_sees_none_of_it_at_360_px() {
    let server = TestServer::start().await;
    let (c, login) = server.user("dguard").await;
    let api = V1::new(&server, c.clone());
    let tiny = unique("tiny");
    let context = dockerfile_dir("CMD [\"echo\", \"tiny ran\"]");
    push_image(&server, &login, Some(context.path()), &tiny, "1").await;
    let mut manifest = serde_json::Map::new();
    manifest.insert(
        tiny.clone(),
        json!({"name": &tiny, "tag": "1", "type": "pipeline"}),
    );
    let manifest = Value::Object(manifest);
    let (status, registered) = api.post("/prototypes", manifest.clone()).await;
    assert_eq!(status, 201, "{registered}");
    let prototype = registered[0]["id"].as_str().unwrap().to_owned();

    // A servable made and run through the pages, in a phone-sized window.
    let b = Browser::start_sized(&server, 360, 800).await;
    b.sign_in(&login, PASSWORD, "/ui/servables").await;
    b.wait_text("No servables to show.", 10).await;
    b.follow("Create a servable").await;
    b.wait_path("/ui/servables/new").await;
    b.select("prototype", &prototype).await;
    b.fill("name", "tiny-run").await;
    b.fill("cpu_cores", "0.5").await;
    b.fill("ram", "64").await;
    b.screenshot("servables-new-360").await;
    b.press("Create the servable").await;
    b.wait_text("Created the servable tiny-run.", 10).await;
    let servable = id_in_path(&b).await;
    b.press("Run").await;
    b.wait_text("Instance ", 60).await;
    b.screenshot("servables-show-360").await;
    let (_, view) = api.get(&format!("/servables/{servable}")).await;
    let instance = view["current_instance"].as_str().unwrap().to_owned();
    b.open("/ui/servables").await;
    b.wait_text("tiny-run", 10).await;
    b.screenshot("servables-list-360").await;

    // Deleting the prototype a servable uses: refused, with the guard's explanation.
    b.open("/ui/prototypes").await;
    b.follow(&format!("{tiny}:1")).await;
    b.wait_path(&format!("/ui/prototypes/{prototype}")).await;
    b.press("Delete this prototype").await;
    let text = b.wait_text("was not deleted", 10).await;
    assert!(
        text.contains("is still used by") && text.contains("servable \"tiny-run\""),
        "{text}"
    );
    b.screenshot("prototypes-delete-refused-360").await;
    let (status, _) = api.get(&format!("/prototypes/{prototype}")).await;
    assert_eq!(status, 200);
    let (_, html) = page(&c, &server, &format!("/ui/prototypes/{prototype}")).await;
    let csrf = csrf_of(&html);
    let r = c
        .post(server.url(&format!("/ui/prototypes/{prototype}/delete")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // The same manifest again: its name:tag is taken, a conflict shown on its tag (409).
    let r = c
        .post(server.url("/ui/prototypes"))
        .form(&[("csrf", csrf.as_str()), ("manifest", &manifest.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("tr data-field=\"tag\"") && body.contains("is already registered"),
        "{body}"
    );

    // Another user sees none of it: empty lists, and the same 404 page on a direct address.
    let (bob, _) = server.user("dbob").await;
    let (status, list) = page(&bob, &server, "/ui/servables").await;
    assert_eq!(status, 200);
    assert!(list.contains("No servables to show.") && !list.contains("tiny-run"));
    let (status, list) = page(&bob, &server, "/ui/prototypes").await;
    assert_eq!(status, 200);
    assert!(!list.contains(&tiny), "{list}");
    for path in [
        format!("/ui/servables/{servable}"),
        format!("/ui/instances/{instance}"),
        format!("/ui/prototypes/{prototype}"),
        format!("/ui/servables/new?prototype={prototype}"),
    ] {
        let (status, body) = page(&bob, &server, &path).await;
        if path.contains("/new") {
            // The form offers nothing of alice's.
            assert_eq!(status, 200);
            assert!(!body.contains(&tiny), "{body}");
        } else {
            assert_eq!(status, 404, "{path}");
            assert!(body.contains("404 Not Found"), "{body}");
        }
    }
    let v1_bob = V1::new(&server, bob.clone());
    let (status, _) = v1_bob.get(&format!("/servables/{servable}")).await;
    assert_eq!(status, 404);
    // Nor can bob act on them: his own token on alice's forms finds nothing.
    let (_, html) = page(&bob, &server, "/ui/servables").await;
    let bob_csrf = csrf_of(&html);
    let r = bob
        .post(server.url(&format!("/ui/servables/{servable}/delete")))
        .form(&[("csrf", bob_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The instance's page, then the servable deleted from its page; now the prototype goes.
    b.open(&format!("/ui/instances/{instance}")).await;
    b.wait_text("tiny ran", 30).await;
    b.screenshot("servables-instance-360").await;
    b.open(&format!("/ui/servables/{servable}")).await;
    b.press("Delete servable").await;
    b.wait_text("Deleted the servable tiny-run", 10).await;
    b.open(&format!("/ui/prototypes/{prototype}")).await;
    b.press("Delete this prototype").await;
    b.wait_path("/ui/prototypes").await;
    b.wait_text(&format!("Deleted the prototype {tiny}:1."), 10)
        .await;
    let (status, _) = api.get(&format!("/prototypes/{prototype}")).await;
    assert_eq!(status, 404);
    let (status, list) = api.get("/servables").await;
    assert_eq!((status, list), (200, Value::Array(vec![])));
    b.close().await;
}
