//! A real browser for the dashboard's tests: Debian's headless Chromium driven over WebDriver
//! by its chromedriver (each test starts its own, on a free loopback port, with a profile
//! directory of its own), through the `fantoccini` crate. Every page a test visits can be
//! saved as a screenshot under `target/dashboard-screenshots/` for review.

#![allow(dead_code)]

use crate::harness::*;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A browser: chromedriver (its own process group, killed with whatever it started when this
/// goes) and a WebDriver session on it.
pub struct Browser {
    pub c: Client,
    driver: std::process::Child,
    _profile: TempDir,
    /// The appliance's base URL, e.g. `http://127.0.0.1:40123`.
    pub base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pid = self.driver.id() as i32;
        // The driver leads its own process group: Chromium goes with it.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Where screenshots go.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

impl Browser {
    /// A browser for `server`, `width` pixels wide.
    pub async fn start(server: &TestServer) -> Browser {
        Browser::start_sized(server, 1280, 900).await
    }

    pub async fn start_sized(server: &TestServer, width: u32, height: u32) -> Browser {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let mut cmd = std::process::Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let driver = cmd
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; tests/run.sh installs it)");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut caps = serde_json::Map::new();
        let mut options = json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--no-proxy-server",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        // Headless Chromium keeps a window at least 500 px wide: a narrower page is emulated
        // as a phone's screen would be.
        if width < 500 {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}
            });
        }
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let c = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session on chromedriver: {e}"),
            }
        };
        Browser {
            c,
            driver,
            _profile: profile,
            base: server.base.clone(),
        }
    }

    /// Opens a path of the appliance.
    pub async fn open(&self, path: &str) {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path (and query) the browser shows.
    pub async fn path(&self) -> String {
        let url = self.c.current_url().await.expect("the current URL");
        let mut p = url.path().to_owned();
        if let Some(q) = url.query() {
            p.push('?');
            p.push_str(q);
        }
        p
    }

    /// The page's visible text. A page being replaced (a form's redirect) is read again.
    pub async fn text(&self) -> String {
        let mut last = String::new();
        for _ in 0..50 {
            match self.c.find(Locator::Css("body")).await {
                Ok(body) => match body.text().await {
                    Ok(text) => return text,
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page's text could not be read: {last}");
    }

    /// Waits until the page's text holds `needle` (at most `secs`), else fails with the text.
    pub async fn wait_text(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("{needle:?} never appeared on {}: {text}", self.path().await);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Signs in through the form at `/login`, landing on `next`.
    pub async fn sign_in(&self, login: &str, password: &str, next: &str) {
        self.open(&format!("/login?next={next}")).await;
        self.fill("login", login).await;
        self.fill("password", password).await;
        self.submit_form("form").await;
        self.wait_path(next).await;
    }

    /// Waits until the browser is at `path` (its path, without the query), at most 15 s.
    pub async fn wait_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.path().await;
            if now.split('?').next() == Some(path) {
                return;
            }
            if Instant::now() > deadline {
                panic!("never reached {path}: at {now}: {}", self.text().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element a CSS selector names (the first), failing with the page's text.
    pub async fn find(&self, css: &str) -> Element {
        match self.c.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!(
                "no {css} on {}: {e}\n{}",
                self.path().await,
                self.text().await
            ),
        }
    }

    /// Types `value` into the field a CSS selector names (replacing what is there).
    pub async fn type_into(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear the field");
        field.send_keys(value).await.expect("type into the field");
    }

    /// Types `value` into the field named `name` (replacing what is there).
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self.find(&format!("[name=\"{name}\"]")).await;
        field.clear().await.expect("clear the field");
        field.send_keys(value).await.expect("type into the field");
    }

    /// Chooses the option with value `value` in the select named `name`.
    pub async fn select(&self, name: &str, value: &str) {
        self.find(&format!(
            "select[name=\"{name}\"] option[value=\"{value}\"]"
        ))
        .await
        .click()
        .await
        .expect("choose the option");
    }

    /// Clicks the element a CSS selector names.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Clicks the button whose text is `label` (the first).
    pub async fn press(&self, label: &str) {
        let xpath = format!("//button[normalize-space(.)=\"{label}\"]");
        match self.c.find(Locator::XPath(&xpath)).await {
            Ok(b) => b.click().await.expect("click the button"),
            Err(e) => panic!(
                "no button {label:?} on {}: {e}\n{}",
                self.path().await,
                self.text().await
            ),
        }
    }

    /// Follows the link whose text is `text` (the first).
    pub async fn follow(&self, text: &str) {
        match self.c.find(Locator::LinkText(text)).await {
            Ok(a) => a.click().await.expect("follow the link"),
            Err(e) => panic!(
                "no link {text:?} on {}: {e}\n{}",
                self.path().await,
                self.text().await
            ),
        }
    }

    /// Submits the form a CSS selector names with its first submit button.
    pub async fn submit_form(&self, css: &str) {
        self.click(&format!("{css} [type=submit]")).await;
    }

    /// Saves a screenshot of the page as `<name>.png` under [`screenshot_dir`].
    pub async fn screenshot(&self, name: &str) {
        let png = self.c.screenshot().await.expect("a screenshot");
        std::fs::write(screenshot_dir().join(format!("{name}.png")), png)
            .expect("write the screenshot");
    }

    /// Ends the WebDriver session (the browser closes).
    pub async fn close(self) {
        let _ = self.c.clone().close().await;
    }
}

/// The CSRF token of a page's forms (its first `csrf` field).
pub fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF field on the page: {page}"))
        + marker.len();
    page[at..at + 64].to_owned()
}

/// A new administrator on `server` (made with `dtaas admin create-user --admin`), with the
/// tests' password.
pub async fn new_admin(server: &TestServer) -> String {
    let login = unique("boss");
    let out = dtaas_cli(
        &[
            "admin",
            "--data-dir",
            server.data_dir().to_str().expect("a UTF-8 path"),
            "create-user",
            &login,
            "--admin",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    login
}
