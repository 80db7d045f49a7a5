//! The console in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (`chromedriver`, with the `fantoccini` crate), against the real `cotterd` binary on each
//! backend. `.ci/run` installs both packages when they are missing; without them these tests
//! fail and say so.
//!
//! Each test writes a screenshot of every page it visits under `target/console-screenshots/`,
//! and one of the page it was on when it failed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::test::init_service;
use diesel::prelude::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::common::req::{call, Req};
use crate::common::server::{send_wire, start_server, Server};
use crate::common::{Backend, Keys, TestApp};

/// Browsers run one at a time: each takes most of a core.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a page may take to reach the state a step waits for.
const PATIENCE: Duration = Duration::from_secs(15);

/// Where Debian puts the browser and its WebDriver server (overridable for other systems).
fn program(env: &str, default: &str) -> PathBuf {
    let path = PathBuf::from(std::env::var(env).unwrap_or_else(|_| default.to_owned()));
    assert!(
        path.exists(),
        "{} is not installed: the console's browser tests need Debian's chromium and \
         chromium-driver (`apt-get install chromium chromium-driver`; .ci/run installs them), \
         or {env} naming the program",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `chromedriver` on a free port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(log: &Path) -> Driver {
        let binary = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut driver = Driver { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!(
                    "chromedriver exited ({status}) before it listened: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver did not listen within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

/// The colour scheme the browser says the system prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Theme {
    Light,
    Dark,
}

/// A signed-out browser on the console of a fresh server, with one project.
struct Console {
    client: Client,
    base: String,
    name: String,
    shots: PathBuf,
    downloads: PathBuf,
    keys: Keys,
    app: TestApp,
    server: Server,
    _driver: Driver,
    _profile: tempfile::TempDir,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

impl Console {
    async fn open(backend: Backend, test: &str, theme: Theme) -> Console {
        let guard = ONE_BROWSER.lock().await;
        let app = TestApp::new(backend);
        let keys = app.project("Console test");
        let (server, stderr) = start_server(&app.db, &[("RUST_LOG", "warn")]);
        // The log goes nowhere, but it must be read or the pipe fills.
        std::thread::spawn(move || std::io::copy(&mut { stderr }, &mut std::io::sink()));
        let base = format!("http://127.0.0.1:{}", server.port);
        let profile = tempfile::tempdir().unwrap();
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let driver = Driver::start(&profile.path().join("chromedriver.log"));
        let chromium = program("CHROMIUM", "/usr/bin/chromium");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1440,1000".to_owned(),
            format!(
                "--user-data-dir={}",
                profile.path().join("chromium").display()
            ),
        ];
        if theme == Theme::Dark {
            args.push("--force-dark-mode".to_owned());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": args,
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("Chromium did not start through chromedriver: {e}"));
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("console-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Console {
            client,
            base,
            name: format!("{}-{test}", backend_label(backend)),
            shots,
            downloads,
            keys,
            app,
            server,
            _driver: driver,
            _profile: profile,
            _guard: guard,
        }
    }

    /// Ends the WebDriver session (and the browser with it).
    async fn close(self) {
        let Console { client, .. } = self;
        let _ = client.close().await;
    }

    /// Writes a screenshot of the page as `<backend>-<test>-<what>.png`, after checking what
    /// every page must be: each field labelled, each table with column headers, each button and
    /// link named, the language set, and nothing wider than the window.
    async fn shot(&self, what: &str) {
        let script = r#"
            const problems = [];
            const visible = (el) => el.getClientRects().length > 0;
            if (!document.documentElement.lang) problems.push('no lang on <html>');
            for (const field of document.querySelectorAll('input, select, textarea')) {
                if (field.type === 'hidden' || !visible(field)) continue;
                const named = field.labels.length > 0 || field.getAttribute('aria-label')
                    || field.getAttribute('aria-labelledby');
                if (!named) problems.push('an unlabelled ' + field.tagName + ' ' + (field.name || field.id));
            }
            for (const table of document.querySelectorAll('table')) {
                if (!visible(table)) continue;
                if (!table.querySelector('th[scope=col]')) problems.push('a table without column headers');
            }
            for (const control of document.querySelectorAll('button, a[href]')) {
                if (!visible(control)) continue;
                const name = (control.textContent || '').trim() || control.getAttribute('aria-label')
                    || control.getAttribute('title');
                if (!name) problems.push('an unnamed ' + control.tagName);
            }
            if (document.documentElement.scrollWidth > window.innerWidth + 1)
                problems.push('the page is wider than the window');
            return problems;
        "#;
        let problems = self.client.execute(script, vec![]).await.unwrap();
        if problems.as_array().is_some_and(|p| !p.is_empty()) {
            self.fail(format!("{what}: {problems}")).await;
        }
        self.picture(what).await;
    }

    /// Writes a screenshot of the page as `<backend>-<test>-<what>.png`.
    async fn picture(&self, what: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{}-{what}.png", self.name)), png);
        }
    }

    /// Fails the test with what the page shows, after a screenshot of it.
    async fn fail(&self, message: String) -> ! {
        self.picture("failure").await;
        let text = self
            .client
            .execute("return document.body.innerText", vec![])
            .await
            .unwrap_or_default();
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        panic!("{message}\n  at {url}\n  the page says: {text}");
    }

    /// Runs `script` (a function body, with `arguments`) until it returns something truthy, and
    /// returns that; fails after [`PATIENCE`].
    async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let started = Instant::now();
        loop {
            match self.client.execute(script, args.clone()).await {
                Ok(value) if !matches!(value, Value::Null | Value::Bool(false)) => return value,
                Ok(_) => {}
                Err(e) if started.elapsed() > PATIENCE => {
                    self.fail(format!("waiting for {what}: {e}")).await
                }
                Err(_) => {}
            }
            if started.elapsed() > PATIENCE {
                self.fail(format!("waited {PATIENCE:?} for {what}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page `page` has loaded its data.
    async fn ready(&self, page: &str) {
        self.until(
            &format!("the {page} page to be ready"),
            "return document.body.dataset.page === arguments[0] \
                && document.body.dataset.ready === 'true'",
            vec![json!(page)],
        )
        .await;
    }

    /// Opens `path` (under the server) and waits for `page`.
    async fn visit(&self, path: &str, page: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        self.ready(page).await;
    }

    fn css(id: &str) -> String {
        format!("[data-testid=\"{id}\"]")
    }

    async fn find(&self, id: &str) -> fantoccini::elements::Element {
        let started = Instant::now();
        loop {
            if let Ok(found) = self.client.find(Locator::Css(&Self::css(id))).await {
                return found;
            }
            if started.elapsed() > PATIENCE {
                self.fail(format!("no element {id}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn click(&self, id: &str) {
        if let Err(e) = self.find(id).await.click().await {
            self.fail(format!("cannot click {id}: {e}")).await;
        }
    }

    async fn type_into(&self, id: &str, text: &str) {
        let field = self.find(id).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn text(&self, id: &str) -> String {
        self.find(id).await.text().await.unwrap()
    }

    /// The text of every element `id` names, in document order.
    async fn texts(&self, id: &str) -> Vec<String> {
        let script = "return Array.from(document.querySelectorAll(arguments[0])) \
                      .map(e => e.textContent.trim())";
        let value = self
            .client
            .execute(script, vec![json!(Self::css(id))])
            .await
            .unwrap();
        serde_json::from_value(value).unwrap()
    }

    /// Waits until `id` names exactly `n` elements.
    async fn count_is(&self, id: &str, n: usize) {
        self.until(
            &format!("{n} × {id}"),
            "return document.querySelectorAll(arguments[0]).length === arguments[1]",
            vec![json!(Self::css(id)), json!(n)],
        )
        .await;
    }

    /// Signs in with `secret`, from the keyboard (Enter in the secret's field), and waits for
    /// the overview.
    async fn sign_in(&self, secret: &str) {
        self.visit("/admin/signin", "signin").await;
        self.type_into("signin-key", &self.keys.id).await;
        self.type_into("signin-secret", secret).await;
        self.press_enter("signin-secret").await;
        self.ready("overview").await;
    }

    /// Presses Enter with the focus on `id` (a button, or a field of a form).
    async fn press_enter(&self, id: &str) {
        let enter = char::from(fantoccini::key::Key::Enter).to_string();
        if let Err(e) = self.find(id).await.send_keys(&enter).await {
            self.fail(format!("cannot press Enter on {id}: {e}")).await;
        }
    }

    /// Waits until the user page shows the user's status as `status`.
    async fn status_is(&self, status: &str) {
        self.until(
            &format!("the user {status}"),
            "return document.querySelector('[data-testid=user-status]')?.textContent.trim() \
                === arguments[0]",
            vec![json!(status)],
        )
        .await;
    }

    /// Whether a JavaScript dialog (alert, confirm) is open.
    async fn dialog_open(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// The page's path and query string.
    async fn location(&self) -> String {
        let value = self
            .client
            .execute("return location.pathname + location.search", vec![])
            .await
            .unwrap();
        value.as_str().unwrap_or_default().to_owned()
    }
}

fn backend_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Creates a user through the admin API (in process, on the server's database); its id.
async fn create_user<S, B>(svc: &S, keys: &Keys, identifier: &str) -> String
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let reply = call(
        svc,
        &Req::post("/admin/v1/users")
            .keys(keys)
            .json(&json!({"identifier": identifier})),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// Creates `n` users, oldest first: `user-000@example.com`, `user-001@example.com`, …
async fn seed_users(console: &Console, n: usize) -> Vec<String> {
    let svc = init_service(cotterd::app(console.app.state.clone())).await;
    let mut identifiers = Vec::new();
    for i in 0..n {
        let identifier = format!("user-{i:03}@example.com");
        create_user(&svc, &console.keys, &identifier).await;
        identifiers.push(identifier);
    }
    identifiers
}

/// Sign-in refuses a wrong secret and takes the right one; the session cookie carries its
/// flags; the overview, the users table (120 users: pages of 50, 50 and 20, newest first,
/// next and previous, a reload), the search as typed and a narrow window.
async fn sign_in_page_through_users_and_search(backend: Backend) {
    let console = Console::open(backend, "users", Theme::Light).await;
    let identifiers = seed_users(&console, 120).await;
    let newest_first: Vec<String> = identifiers.iter().rev().cloned().collect();

    // A wrong secret is refused on the page.
    console.visit("/admin/users", "signin").await;
    console.shot("signin").await;
    console.type_into("signin-key", &console.keys.id).await;
    console
        .type_into("signin-secret", "cotterd_sk_not-the-secret")
        .await;
    console.click("signin-submit").await;
    console
        .until(
            "the sign-in error",
            "const e = document.querySelector('[data-testid=signin-error]'); \
             return e && e.textContent.trim().length > 0",
            vec![],
        )
        .await;
    assert_eq!(
        console
            .client
            .find(Locator::Css("body"))
            .await
            .unwrap()
            .attr("data-page")
            .await
            .unwrap()
            .as_deref(),
        Some("signin")
    );
    assert!(console
        .client
        .get_named_cookie("cotterd_console")
        .await
        .is_err());
    let secret_field = console
        .find("signin-secret")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        secret_field.as_deref(),
        Some(""),
        "the secret is not kept in the page"
    );

    // The right one signs in and goes where the operator was headed.
    console.type_into("signin-key", &console.keys.id).await;
    console
        .type_into("signin-secret", &console.keys.secret)
        .await;
    console.click("signin-submit").await;
    console.ready("users").await;
    let cookie = console
        .client
        .get_named_cookie("cotterd_console")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    assert_eq!(cookie.path(), Some("/admin"));
    // On loopback the cookie goes without Secure (the browser would drop it over plain HTTP).
    assert_ne!(cookie.secure(), Some(true));
    assert!(!cookie.value().contains(&console.keys.secret));

    // The overview: counts and the chart.
    console.visit("/admin/", "overview").await;
    assert_eq!(console.text("count-active").await.trim(), "120");
    assert_eq!(console.text("count-deleted").await.trim(), "0");
    console
        .until(
            "the chart",
            "const c = document.querySelector('[data-testid=signups-chart]'); \
             return c && (c.tagName === 'svg' || c.querySelector('svg'))",
            vec![],
        )
        .await;
    console.shot("overview").await;
    let light = console
        .client
        .execute(
            "const rgb = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number); \
             return rgb[0] + rgb[1] + rgb[2]",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        light.as_u64().unwrap() > 3 * 180,
        "a light background: {light}"
    );

    // 50, 50, 20, newest first.
    console.click("nav-users").await;
    console.ready("users").await;
    console.count_is("user-row", 50).await;
    assert!(console.text("users-total").await.contains("120"));
    assert_eq!(console.texts("user-identifier").await, newest_first[..50]);
    console.shot("users").await;
    console.click("users-next").await;
    console.ready("users").await;
    assert_eq!(
        console.texts("user-identifier").await,
        newest_first[50..100]
    );
    let second_page = console.location().await;
    assert!(second_page.contains("cursor="), "{second_page}");
    console.click("users-next").await;
    console.ready("users").await;
    console.count_is("user-row", 20).await;
    assert_eq!(console.texts("user-identifier").await, newest_first[100..]);
    let next = console.find("users-next").await;
    assert!(
        !next.is_enabled().await.unwrap() || !next.is_displayed().await.unwrap(),
        "no page after the last"
    );
    console.click("users-prev").await;
    console.ready("users").await;
    assert_eq!(
        console.texts("user-identifier").await,
        newest_first[50..100]
    );
    // The URL is the view (a cursor of its own, before the third page): a reload shows the same
    // page.
    assert!(console.location().await.contains("cursor="));
    console.client.refresh().await.unwrap();
    console.ready("users").await;
    assert_eq!(
        console.texts("user-identifier").await,
        newest_first[50..100]
    );
    // Back goes back through the pages.
    console.client.back().await.unwrap();
    console.ready("users").await;
    assert_eq!(console.texts("user-identifier").await, newest_first[100..]);

    // The search narrows as it is typed, and the URL follows.
    console.visit("/admin/users", "users").await;
    let search = console.find("users-search").await;
    search.send_keys("user-1").await.unwrap();
    console.count_is("user-row", 20).await;
    search.send_keys("1").await.unwrap();
    let expected: Vec<String> = newest_first
        .iter()
        .filter(|i| i.starts_with("user-11"))
        .cloned()
        .collect();
    console.count_is("user-row", expected.len()).await;
    assert_eq!(console.texts("user-identifier").await, expected);
    search.send_keys("9").await.unwrap();
    console.count_is("user-row", 1).await;
    assert_eq!(
        console.texts("user-identifier").await,
        ["user-119@example.com"]
    );
    console
        .until(
            "the search in the URL",
            "return location.search.includes('q=user-119')",
            vec![],
        )
        .await;
    console.client.refresh().await.unwrap();
    console.ready("users").await;
    console.count_is("user-row", 1).await;
    assert_eq!(
        console
            .find("users-search")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("user-119")
    );

    // Readable at 360 px: the table scrolls in its own box, the page does not.
    console.client.set_window_size(360, 800).await.unwrap();
    console.visit("/admin/users", "users").await;
    let overflow = console
        .client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(true), "the page scrolls sideways at 360 px");
    console.shot("users-360px").await;
    console.client.set_window_size(1440, 1000).await.unwrap();
    console.close().await;
}

/// A user's page and its actions: an identifier that is markup shows as text (no dialog);
/// delete (confirmed) takes it out of the list and out of v0 get, restore brings it back;
/// disable and enable; each lands in the audit view with the session as actor.
async fn user_actions_and_markup_as_text(backend: Backend) {
    let console = Console::open(backend, "user", Theme::Light).await;
    let hostile = "<img src=x onerror=alert(1)>";
    let svc = init_service(cotterd::app(console.app.state.clone())).await;
    let id = create_user(&svc, &console.keys, hostile).await;
    console.sign_in(&console.keys.secret).await;

    console.visit("/admin/users", "users").await;
    console.count_is("user-row", 1).await;
    assert_eq!(console.texts("user-identifier").await, [hostile]);
    assert!(!console.dialog_open().await, "the identifier ran as markup");
    let images = console
        .client
        .execute(
            "return document.querySelectorAll('main img').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(images, json!(0));

    console.visit(&format!("/admin/users/{id}"), "user").await;
    assert!(console.text("user-detail").await.contains(hostile));
    assert!(!console.dialog_open().await);
    assert_eq!(console.text("user-status").await.trim(), "active");
    console.shot("user").await;

    let v0_get = || {
        send_wire(
            console.server.port,
            &Req::get(format!("/api/v0/user/{id}")).key_id(&console.keys.id),
        )
    };
    assert_eq!(v0_get().0, 200);

    // Disable (from the keyboard), enable.
    console.press_enter("action-disable").await;
    console.status_is("disabled").await;
    console.click("action-enable").await;
    console.status_is("active").await;

    // Delete asks first, then deletes.
    console.click("action-delete").await;
    assert_eq!(
        v0_get().0,
        200,
        "nothing is deleted before the confirmation"
    );
    console.click("action-delete-confirm").await;
    console.status_is("deleted").await;
    assert!(
        !console.text("status").await.trim().is_empty(),
        "the result is shown"
    );
    assert_eq!(v0_get().0, 404, "deleted users are gone from v0 get");
    console.visit("/admin/users", "users").await;
    console.count_is("user-row", 0).await;

    console.visit(&format!("/admin/users/{id}"), "user").await;
    console.click("action-restore").await;
    console.status_is("active").await;
    assert_eq!(v0_get().0, 200);
    console.visit("/admin/users", "users").await;
    console.count_is("user-row", 1).await;

    // The audit view, newest first, with the session as the actor.
    console.click("nav-audit").await;
    console.ready("audit").await;
    let rows = console.texts("audit-row").await;
    let actions: Vec<&str> = ["user.restore", "user.delete", "user.enable", "user.disable"]
        .into_iter()
        .collect();
    for (row, action) in rows.iter().zip(&actions) {
        assert!(row.contains(action), "{row} (expected {action})");
        assert!(row.contains("console:"), "{row}");
    }
    console.shot("audit").await;

    // Purge needs the identifier typed out.
    console.visit(&format!("/admin/users/{id}"), "user").await;
    console.click("action-delete").await;
    console.click("action-delete-confirm").await;
    console.status_is("deleted").await;
    let purge = console.find("action-purge").await;
    assert!(
        !purge.is_enabled().await.unwrap(),
        "purge waits for the identifier"
    );
    console
        .type_into("action-purge-input", "something else")
        .await;
    assert!(!purge.is_enabled().await.unwrap());
    console.type_into("action-purge-input", hostile).await;
    console
        .until(
            "the purge button enabled",
            "return !document.querySelector('[data-testid=action-purge]').disabled",
            vec![],
        )
        .await;
    purge.click().await.unwrap();
    console
        .until(
            "the user purged",
            "return document.body.dataset.page === 'users' \
                || /purged/i.test(document.querySelector('[data-testid=status]').textContent)",
            vec![],
        )
        .await;
    let left: i64 = {
        use cotterd::db::schema::users;
        let mut conn = console.app.state.pool.get().unwrap();
        users::table.count().get_result(conn.conn()).unwrap()
    };
    assert_eq!(left, 0);
    assert!(!console.dialog_open().await);
    console.close().await;
}

/// Create a user, import a small file and see its results, export and get the expected lines.
async fn create_import_and_export(backend: Backend) {
    let console = Console::open(backend, "transfer", Theme::Light).await;
    console.sign_in(&console.keys.secret).await;

    console.visit("/admin/users/new", "create").await;
    console
        .type_into("create-identifier", "grace@example.com")
        .await;
    console.shot("create").await;
    console.click("create-submit").await;
    console.ready("user").await;
    assert!(console
        .text("user-detail")
        .await
        .contains("grace@example.com"));

    // Three lines: two users and one that is not JSON.
    let file = console._profile.path().join("users.ndjson");
    std::fs::write(
        &file,
        "{\"identifier\": \"ada@example.com\"}\nnot json\n{\"identifier\": \"alan@example.com\"}\n",
    )
    .unwrap();
    console.visit("/admin/import", "import").await;
    console
        .find("import-file")
        .await
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    console.click("import-submit").await;
    console.count_is("import-row", 3).await;
    let summary = console.text("import-summary").await;
    assert!(summary.contains('2') && summary.contains('1'), "{summary}");
    let rows = console.texts("import-row").await;
    assert!(
        rows[1].contains("error") || rows[1].contains("INVALID"),
        "{rows:?}"
    );
    console.shot("import").await;

    // The export link downloads what the API exports.
    console.click("export-link").await;
    let started = Instant::now();
    let downloaded = loop {
        let done: Vec<PathBuf> = std::fs::read_dir(&console.downloads)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
            .collect();
        if let Some(path) = done.first() {
            break std::fs::read_to_string(path).unwrap();
        }
        if started.elapsed() > PATIENCE {
            console.fail("the export was not downloaded".into()).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let svc = init_service(cotterd::app(console.app.state.clone())).await;
    let api = call(
        &svc,
        &Req::get("/admin/v1/users/export").keys(&console.keys),
    )
    .await;
    assert_eq!(api.status.as_u16(), 200);
    let identifiers = |ndjson: &str| -> Vec<String> {
        ndjson
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["identifier"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        identifiers(&downloaded),
        ["grace@example.com", "ada@example.com", "alan@example.com"]
    );
    assert_eq!(downloaded, api.body);
    console.close().await;
}

/// Keys: a new secret is shown once and works on the API; revoking it from the page refuses it;
/// a session made with a secret is signed out when that secret is revoked.
async fn keys_rotate_and_revocation_signs_out(backend: Backend) {
    let console = Console::open(backend, "keys", Theme::Light).await;
    console.sign_in(&console.keys.secret).await;
    console.click("nav-keys").await;
    console.ready("keys").await;
    console.count_is("key-row", 1).await;
    console.click("keys-create").await;
    let shown = console.find("new-secret").await;
    let secret = shown.prop("value").await.unwrap().unwrap_or_default();
    assert!(secret.starts_with("cotterd_sk_"), "{secret}");
    console.count_is("key-row", 2).await;
    console.shot("keys").await;
    let second = Keys {
        id: console.keys.id.clone(),
        secret: secret.clone(),
    };
    let api = |keys: &Keys| Req::get("/admin/v1/users/count").keys(keys);
    assert_eq!(send_wire(console.server.port, &api(&second)).0, 200);

    // Revoke the new one from the page.
    let prefix = &secret[..cotterd::projects::SECRET_PREFIX.len() + 8];
    let revoke =
        format!("[data-testid=key-row][data-prefix=\"{prefix}\"] [data-testid=key-revoke]");
    console
        .client
        .find(Locator::Css(&revoke))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    console.click("key-revoke-confirm").await;
    console
        .until(
            "the secret revoked",
            "const row = document.querySelector(`[data-testid=key-row][data-prefix=\"${arguments[0]}\"]`); \
             return row && !row.querySelector('[data-testid=key-revoke]')",
            vec![json!(prefix)],
        )
        .await;
    assert_eq!(send_wire(console.server.port, &api(&second)).0, 401);

    // A session made with a third secret ends when that secret is revoked elsewhere.
    let third = {
        let project = uuid::Uuid::parse_str(&console.keys.id).unwrap();
        let mut conn = console.app.state.pool.get().unwrap();
        cotterd::projects::add_secret(conn.conn(), &project, &cotterd::audit::Context::cli())
            .unwrap()
    };
    console.click("signout").await;
    console.ready("signin").await;
    console.sign_in(&third.secret).await;
    let (status, body) = send_wire(
        console.server.port,
        &Req::post(format!("/admin/v1/secrets/{}/revoke", third.id)).keys(&console.keys),
    );
    assert_eq!(status, 200, "{body}");
    console.click("nav-users").await;
    console.ready("signin").await;
    console.close().await;
}

/// A form on another site posting to the admin API is refused (the cookie does not go with it,
/// and without the CSRF token it would not count), and so is a post from the console's own
/// origin that lacks the token; nothing is written. An unknown console path shows "not found".
/// The browser prefers dark here: the page follows.
async fn cross_site_posts_are_refused(backend: Backend) {
    let console = Console::open(backend, "csrf", Theme::Dark).await;
    console.sign_in(&console.keys.secret).await;
    let dark = console
        .client
        .execute(
            "const rgb = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number); \
             return [matchMedia('(prefers-color-scheme: dark)').matches, rgb[0] + rgb[1] + rgb[2]]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(dark[0], json!(true), "the browser prefers dark");
    assert!(
        dark[1].as_u64().unwrap() < 3 * 80,
        "a dark background: {dark}"
    );
    console.shot("overview-dark").await;
    let target = format!("{}/admin/v1/users", console.base);

    // Another site: a page on another host and port that posts a form at once.
    let attacker = TcpListener::bind("127.0.0.1:0").unwrap();
    let attacker_port = attacker.local_addr().unwrap().port();
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{target}\" \
         enctype=\"text/plain\"><input name='{{\"identifier\":\"evil@example.com\",\"x\":\"' \
         value='\"}}'></form><script>document.getElementById('f').submit()</script>"
    );
    std::thread::spawn(move || {
        for stream in attacker.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    console
        .client
        .goto(&format!("http://localhost:{attacker_port}/"))
        .await
        .unwrap();
    console
        .until(
            "the form's answer",
            "return location.pathname === '/admin/v1/users' && document.body.innerText.length > 0",
            vec![],
        )
        .await;
    let answer = console
        .client
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap();
    let answer = answer.as_str().unwrap_or_default();
    // Refused for want of keys: the cookie did not even go with it (SameSite=Strict).
    assert!(answer.contains("\"status\":401"), "{answer}");

    // The console's own origin, without the token.
    console.visit("/admin/", "overview").await;
    let same_origin = console
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/admin/v1/users', {method: 'POST', credentials: 'same-origin', \
                 headers: {'Content-Type': 'application/json'}, \
                 body: JSON.stringify({identifier: 'evil@example.com'})}) \
             .then(r => r.json().then(b => done([r.status, b.code])))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(same_origin, json!([403, "CSRF_TOKEN_INVALID"]));
    let users: i64 = {
        use cotterd::db::schema::users;
        let mut conn = console.app.state.pool.get().unwrap();
        users::table.count().get_result(conn.conn()).unwrap()
    };
    assert_eq!(users, 0, "nothing was written");

    console.client.set_window_size(360, 800).await.unwrap();
    console.visit("/admin/users", "users").await;
    console.shot("users-360px-dark").await;
    console.client.set_window_size(1440, 1000).await.unwrap();
    console.visit("/admin/nowhere", "notfound").await;
    console.shot("notfound").await;
    console.close().await;
}

both_backends!(
    sign_in_page_through_users_and_search,
    user_actions_and_markup_as_text,
    create_import_and_export,
    keys_rotate_and_revocation_signs_out,
    cross_site_posts_are_refused,
);
