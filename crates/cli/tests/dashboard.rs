//! The dashboard in a real browser: Debian's headless Chromium driven over
//! WebDriver (chromedriver, plain HTTP through reqwest) against the real
//! binary. The test waits for live data, compares the numbers the page shows
//! with the API's own listings, opens an order's execution view (the ASL
//! graph, the execution history and, beside it, the order's events), saves
//! screenshots as test artifacts and requires a console free of errors.
//!
//! Chromium and chromedriver come from `scripts/setup-browser.sh`. Without
//! them the test prints SKIP, except under `CI=true`, where it fails.
//!
//! A second test configures API keys and checks that the page asks for one,
//! then shows the data once it is given. A third cancels orders, one through
//! the API and one with the page's own Cancel button, and checks that the
//! page counts, filters and shows them as CANCELLED with their reasons.

mod common;

use common::{fast_env, manifest_dir, seed_order, App};
use dofs_blackbox::browser::Browser;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Where screenshots go: `$DOFS_TEST_ARTIFACTS`, else `target/test-artifacts`.
fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("DOFS_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(manifest_dir()).join("../../target/test-artifacts"));
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir
}

/// Saves the page's screenshot as `name` among the test artifacts.
async fn screenshot(browser: &Browser, name: &str) -> PathBuf {
    let path = artifacts_dir().join(name);
    std::fs::write(&path, browser.screenshot().await).expect("save the screenshot");
    path
}

/// A number as the page shows it (`1,234`), or None for a dash.
fn shown(v: &Value) -> Option<u64> {
    v.as_str()?.replace(',', "").trim().parse().ok()
}

/// Counts by status as the API's listings give them, page by page.
async fn api_counts(app: &App) -> Vec<(String, u64)> {
    let mut counts = Vec::new();
    for status in ["PENDING", "PROCESSING", "FULFILLED", "FAILED", "CANCELLED"] {
        let n = app
            .all_pages(&format!("/orders?status={status}"))
            .await
            .len() as u64;
        counts.push((status.to_owned(), n));
    }
    let total = counts.iter().map(|(_, n)| n).sum();
    counts.push(("total".to_owned(), total));
    counts
}

const READ_COUNTS: &str =
    "return Object.fromEntries(['PENDING','PROCESSING','FULFILLED','FAILED','CANCELLED','total']
    .map(s => [s, document.getElementById('count-' + s).textContent]));";

#[tokio::test]
async fn the_dashboard_shows_the_apis_numbers_live_and_draws_an_orders_execution() {
    let Some((chromium, chromedriver)) = Browser::binaries("the dashboard browser test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.extend([
        ("DOFS_FULFILLMENT_SEED", "42".to_string()),
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "0.5".to_string()),
    ]);
    let app = App::spawn_on(dir.path(), &env);
    let submit = |n: usize| {
        let app = &app;
        async move {
            let mut ids = Vec::new();
            for _ in 0..n {
                let r = app.post_order(&seed_order()).await;
                assert_eq!(r.status().as_u16(), 202);
                let body: Value = r.json().await.expect("json");
                ids.push(body["orderId"].as_str().expect("orderId").to_owned());
            }
            app.wait_all_terminal(&ids, Duration::from_secs(60)).await;
            ids
        }
    };
    let mut ids = submit(16).await;

    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            "the first live update",
            "return Number(document.body.dataset.updates || 0) >= 1",
        )
        .await;
    let first = browser.exec(READ_COUNTS).await;
    assert_eq!(shown(&first["total"]), Some(16), "{first}");

    // Live: more orders while the page is open, shown without a reload.
    ids.extend(submit(4).await);
    let expected = api_counts(&app).await;
    assert_eq!(expected.last().map(|(_, n)| *n), Some(20));
    let want_total = "return document.getElementById('count-total').textContent === '20'";
    browser
        .wait_for("the page to show 20 orders", want_total)
        .await;
    let want: serde_json::Map<String, Value> = expected
        .iter()
        .map(|(k, n)| (k.clone(), json!(n)))
        .collect();
    let page = browser
        .wait_for(
            "the page's counts to match the API's",
            &format!(
                "const c = (() => {{ {READ_COUNTS} }})();
                 const want = {};
                 return Object.entries(want).every(([k, v]) => c[k].replace(/,/g, '') === String(v)) ? c : null;",
                Value::Object(want)
            ),
        )
        .await;
    for (status, n) in &expected {
        assert_eq!(shown(&page[status]), Some(*n), "{status}: page {page}");
    }
    let (_, dlq) = app.get_json("/dlq").await;
    let shown_dlq = browser
        .exec("return document.getElementById('dlq-depth').textContent")
        .await;
    assert_eq!(shown(&shown_dlq), dlq["depth"].as_u64(), "DLQ depth");
    let accepted = browser
        .exec("return document.getElementById('accepted-total').textContent")
        .await;
    assert_eq!(shown(&accepted), Some(20), "accepted since start");

    // The recent-orders table is the API's first page, newest first.
    let (_, newest) = app.get_json("/orders?limit=15").await;
    let want_rows: Vec<Value> = newest["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["orderId"].clone())
        .collect();
    // The listings are fetched after the counts, in the same refresh.
    browser
        .wait_for(
            "the recent orders to be the API's first page",
            &format!(
                "const rows = [...document.querySelectorAll('#orders tbody tr[data-order]')].map(r => r.dataset.order);
                 return JSON.stringify(rows) === '{}'",
                Value::Array(want_rows)
            ),
        )
        .await;
    let failed_listed = app.all_pages("/failed-orders").await.len().min(15);
    browser
        .wait_for(
            "the failed orders shown",
            &format!(
                "return document.querySelectorAll('#failed tbody tr[data-order]').length === {failed_listed}"
            ),
        )
        .await;
    let overview = screenshot(&browser, "dashboard.png").await;

    // An order's execution view: the ASL graph with the path it took.
    let target = if failed_listed > 0 {
        "#failed tbody tr[data-order] button.link"
    } else {
        "#orders tbody tr[data-order] button.link"
    };
    let order_id = browser
        .exec(&format!(
            "return document.querySelector('{target}').dataset.order"
        ))
        .await
        .as_str()
        .expect("an order id")
        .to_owned();
    browser.click(target).await;
    browser
        .wait_for(
            "the execution view",
            "return document.getElementById('execution').dataset.state === 'ready'",
        )
        .await;
    let (_, order) = app.get_json(&format!("/orders/{order_id}")).await;
    let execution_id = order["executionArn"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .expect("execution id");
    let (_, execution) = app.get_json(&format!("/executions/{execution_id}")).await;
    let mut entered: Vec<String> = execution["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "StateEntered")
        .filter_map(|e| e["state"].as_str().map(str::to_owned))
        .collect();
    entered.sort();
    entered.dedup();
    let drawn = browser
        .exec("return [...document.querySelectorAll('#execution-graph g.node.visited')].map(g => g.dataset.state).filter(s => s !== 'fulfillment').sort()")
        .await;
    assert_eq!(
        drawn,
        json!(entered),
        "the highlighted states are the ones entered"
    );
    let all_states = browser
        .exec("return document.querySelectorAll('#execution-graph g.node[data-state]').length")
        .await;
    assert_eq!(
        all_states,
        json!(7),
        "six ASL states and the fulfillment worker"
    );
    let worker = browser
        .exec("return document.querySelector('#execution-graph g.node[data-state=fulfillment] text').textContent")
        .await;
    assert_eq!(
        worker,
        json!(format!(
            "Fulfillment: {}",
            order["status"].as_str().unwrap_or("?")
        ))
    );
    let event_rows = browser
        .exec("return document.querySelectorAll('#execution-events tbody tr').length")
        .await;
    assert_eq!(
        event_rows.as_u64(),
        Some(execution["events"].as_array().map_or(0, Vec::len) as u64)
    );
    // Beside the execution history: the order's events, oldest first.
    let (_, events) = app.get_json(&format!("/events?orderId={order_id}")).await;
    let types = event_types(&events);
    assert_eq!(
        types.first().map(String::as_str),
        Some("order.accepted"),
        "{events}"
    );
    browser
        .wait_for(
            "the order's events beside its execution",
            &format!(
                "return JSON.stringify({SHOWN_EVENT_TYPES}) === '{}'",
                json!(types)
            ),
        )
        .await;
    let detail = screenshot(&browser, "dashboard-execution.png").await;

    let severe = browser.severe_log().await;
    assert!(severe.is_empty(), "console errors: {severe:#?}");
    let page_errors = browser.exec("return window.__dofsErrors").await;
    assert_eq!(page_errors, json!([]), "errors seen by the page");

    // A page that still offers Cancel for an order fulfilled since shows the
    // server's 409 message, and the order stays FULFILLED.
    let (_, fulfilled) = app.get_json("/orders?status=FULFILLED&limit=1").await;
    let fulfilled_id = fulfilled["items"][0]["orderId"]
        .as_str()
        .expect("a fulfilled order")
        .to_owned();
    browser
        .exec(&format!(
            "document.querySelector('#orders tbody tr[data-order=\"{fulfilled_id}\"]').click(); return true;"
        ))
        .await;
    browser
        .wait_for(
            "the fulfilled order's view",
            "const s = document.getElementById('execution-summary');
             return document.getElementById('execution').dataset.state === 'ready'
                 && s.dataset.orderStatus === 'FULFILLED'
                 && document.getElementById('cancel-form').hidden",
        )
        .await;
    browser
        .exec(
            "const form = document.getElementById('cancel-form');
             form.hidden = false; form.requestSubmit(); return true;",
        )
        .await;
    let message = browser
        .wait_for(
            "the conflict message",
            "const m = document.getElementById('execution-message');
             return !m.hidden && m.textContent",
        )
        .await;
    let message = message.as_str().unwrap_or_default();
    assert!(
        message.contains("409") && message.contains("FULFILLED"),
        "{message}"
    );
    let (_, still) = app.get_json(&format!("/orders/{fulfilled_id}")).await;
    assert_eq!(still["status"], "FULFILLED");
    let severe = browser.severe_log().await;
    assert!(
        severe
            .iter()
            .all(|e| e["message"].as_str().is_some_and(|m| m.contains("409"))),
        "console errors besides the expected 409: {severe:#?}"
    );
    browser.quit().await;
    eprintln!(
        "dashboard screenshots: {} and {}",
        overview.display(),
        detail.display()
    );
}

#[tokio::test]
async fn with_api_keys_configured_the_dashboard_asks_for_a_key_and_then_shows_the_data() {
    let Some((chromium, chromedriver)) = Browser::binaries("the dashboard browser test") else {
        return;
    };
    const KEY: &str = "dashboard-key-0123456789";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.push(("DOFS_AUTH_API_KEYS", KEY.to_string()));
    let app = App::spawn_on(dir.path(), &env);
    for _ in 0..3 {
        let r = app
            .client
            .post(app.url("/order"))
            .header("x-api-key", KEY)
            .json(&seed_order())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 202);
    }

    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.goto(&app.url("/")).await;
    // Without a key the API answers 401 and the page opens its key panel.
    browser
        .wait_for(
            "the key panel",
            "return !document.getElementById('key-panel').hidden",
        )
        .await;
    let total = browser
        .exec("return document.getElementById('count-total').textContent")
        .await;
    assert_eq!(shown(&total), None, "no numbers without a key: {total}");
    let asking = screenshot(&browser, "dashboard-key.png").await;

    browser
        .exec(&format!(
            "document.getElementById('key-input').value = '{KEY}';
             document.getElementById('key-form').requestSubmit(); return true;"
        ))
        .await;
    browser
        .wait_for(
            "the numbers once the key is given",
            "return document.getElementById('count-total').textContent === '3'",
        )
        .await;
    let hidden = browser
        .exec("return document.getElementById('key-panel').hidden")
        .await;
    assert_eq!(hidden, json!(true), "the panel closes");
    // The key stays in this browser for the next visit, and nowhere in the page.
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            "the numbers on a new visit",
            "return document.getElementById('count-total').textContent === '3'",
        )
        .await;
    let in_page = browser
        .exec(&format!(
            "return document.documentElement.outerHTML.includes('{KEY}')"
        ))
        .await;
    assert_eq!(
        in_page,
        json!(false),
        "the key is not written into the page"
    );
    let page_errors = browser.exec("return window.__dofsErrors").await;
    assert_eq!(page_errors, json!([]), "errors seen by the page");
    browser.quit().await;
    eprintln!("dashboard key screenshot: {}", asking.display());
}

/// The event types the order view lists, in its order.
const SHOWN_EVENT_TYPES: &str =
    "[...document.querySelectorAll('#order-events tbody tr[data-type]')].map(r => r.dataset.type)";

/// The `type` of each event of a `GET /events` page, in order.
fn event_types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["type"].as_str().expect("a type").to_owned())
        .collect()
}

/// Requests to a server that requires an API key, with `key`.
struct Keyed<'a> {
    app: &'a App,
    key: &'a str,
}

impl Keyed<'_> {
    async fn get(&self, path: &str) -> Value {
        let r = self
            .app
            .client
            .get(self.app.url(path))
            .header("x-api-key", self.key)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.json().await.expect("json")
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .header("x-api-key", self.key)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_cancelled_order_is_counted_filtered_and_shown_with_its_reason_and_events() {
    let Some((chromium, chromedriver)) = Browser::binaries("the dashboard browser test") else {
        return;
    };
    const KEY: &str = "dashboard-operator-0123456789";
    const REASON: &str = "customer <b>changed</b> their mind";
    const BUTTON_REASON: &str = "duplicate of another order";
    // Every attempt fails, and the retry after the first one waits ten
    // minutes: each order sits PENDING, cancellable, for the whole test.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env: Vec<_> = fast_env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("DOFS_QUEUE_BACKOFF_"))
        .collect();
    env.extend([
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "0".to_string()),
        ("DOFS_QUEUE_BACKOFF_BASE_MS", "600000".to_string()),
        ("DOFS_QUEUE_BACKOFF_MAX_MS", "600000".to_string()),
        (
            "DOFS_AUTH_API_KEYS",
            "dashboard-reader-0123456789".to_string(),
        ),
        ("DOFS_AUTH_OPERATOR_KEYS", KEY.to_string()),
    ]);
    let app = App::spawn_on(dir.path(), &env);
    let api = Keyed {
        app: &app,
        key: KEY,
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = api.post("/order", &seed_order()).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["orderId"].as_str().expect("orderId").to_owned());
    }
    for id in &ids {
        let api = &api;
        app.eventually(
            "a failed first attempt",
            Duration::from_secs(30),
            move || async move {
                let order = api.get(&format!("/orders/{id}")).await;
                (order["status"] == "PENDING" && order["attempts"] == 1).then_some(())
            },
        )
        .await;
    }
    let (by_api, by_button) = (&ids[0], &ids[1]);
    let (status, cancelled) = api
        .post(
            &format!("/orders/{by_api}/cancel"),
            &json!({ "reason": REASON }),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["cancelReason"], REASON);

    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            "the key panel",
            "return !document.getElementById('key-panel').hidden",
        )
        .await;
    browser
        .exec(&format!(
            "document.getElementById('key-input').value = '{KEY}';
             document.getElementById('key-form').requestSubmit(); return true;"
        ))
        .await;
    // The page counts the cancelled order apart.
    let counts = browser
        .wait_for(
            "the counts with one order cancelled",
            &format!(
                "const c = (() => {{ {READ_COUNTS} }})();
                 return c.CANCELLED === '1' && c.PENDING === '2' && c.total === '3' ? c : null;"
            ),
        )
        .await;
    // The 401s before the key was given are expected; nothing after them is.
    browser.severe_log().await;

    // The status filter lists it, with its cancel reason as the reason.
    browser
        .exec(
            "const s = document.getElementById('orders-status');
             s.value = 'CANCELLED'; s.dispatchEvent(new Event('change')); return true;",
        )
        .await;
    let rows = browser
        .wait_for(
            "the CANCELLED listing",
            &format!(
                "const rows = [...document.querySelectorAll('#orders tbody tr[data-order]')];
                 return rows.length === 1 && rows[0].dataset.order === '{by_api}'
                     ? rows.map(r => [r.querySelector('.status').textContent, r.querySelector('td.reason').textContent])
                     : null;"
            ),
        )
        .await;
    assert_eq!(rows, json!([["CANCELLED", REASON]]), "counts {counts}");

    // Its view: CANCELLED with the reason (as text), no Cancel button, the
    // history ending with the cancel, and the order's events beside it.
    browser
        .click(&format!(
            "#orders tbody tr[data-order='{by_api}'] button.link"
        ))
        .await;
    browser
        .wait_for(
            "the cancelled order's view",
            "const s = document.getElementById('execution-summary');
             return document.getElementById('execution').dataset.state === 'ready'
                 && s.dataset.orderStatus === 'CANCELLED'",
        )
        .await;
    let view = browser
        .exec(
            "const q = (css) => document.querySelector(css);
             const last = [...document.querySelectorAll('#execution-events tbody tr')].pop();
             return {
               reason: q('#execution-summary [data-field=cancelReason]').textContent,
               bold: document.querySelectorAll('#execution b').length,
               cancelOffered: !q('#cancel-form').hidden,
               lastEvent: [...last.cells].map(c => c.textContent),
               worker: q('#execution-graph g.node[data-state=fulfillment] text').textContent,
             };",
        )
        .await;
    assert_eq!(view["reason"], REASON, "{view}");
    assert_eq!(view["bold"], 0, "API text is shown as text: {view}");
    assert_eq!(view["cancelOffered"], false, "{view}");
    assert_eq!(view["lastEvent"][1], "OrderCancelled", "{view}");
    assert!(
        view["lastEvent"][3]
            .as_str()
            .is_some_and(|d| d.contains(REASON)),
        "{view}"
    );
    assert_eq!(view["worker"], "Fulfillment: CANCELLED", "{view}");
    let events = api.get(&format!("/events?orderId={by_api}")).await;
    let types = event_types(&events);
    assert_eq!(
        types,
        [
            "order.accepted",
            "order.processing",
            "order.retried",
            "order.cancelled"
        ],
        "{events}"
    );
    let shown = browser
        .wait_for(
            "the order's events",
            &format!(
                "const rows = [...document.querySelectorAll('#order-events tbody tr[data-type]')];
                 return JSON.stringify(rows.map(r => r.dataset.type)) === '{}'
                     ? rows.map(r => [...r.cells].map(c => c.textContent)) : null;",
                json!(types)
            ),
        )
        .await;
    let last = &shown[3];
    assert_eq!(last[2], "CANCELLED", "{shown}");
    assert_eq!(last[3], "1", "attempts: {shown}");
    assert!(
        last[4].as_str().is_some_and(|d| d.contains(REASON)),
        "{shown}"
    );
    assert!(
        shown[2][4]
            .as_str()
            .is_some_and(|d| d.contains("attempt 1")),
        "the retry's failure reason: {shown}"
    );
    browser
        .exec("document.getElementById('order-events').scrollIntoView({block: 'center'}); return true;")
        .await;
    let cancelled_view = screenshot(&browser, "dashboard-cancelled.png").await;

    // The Cancel button of a PENDING order, sent with the page's key.
    browser
        .exec(
            "const s = document.getElementById('orders-status');
             s.value = ''; s.dispatchEvent(new Event('change')); return true;",
        )
        .await;
    let button_row = format!("#orders tbody tr[data-order='{by_button}'] button.link");
    browser
        .wait_for(
            "the order to cancel in the listing",
            &format!("return document.querySelector(\"{button_row}\") !== null"),
        )
        .await;
    browser.click(&button_row).await;
    browser
        .wait_for(
            "the pending order's Cancel button",
            "const s = document.getElementById('execution-summary');
             return document.getElementById('execution').dataset.state === 'ready'
                 && s.dataset.orderStatus === 'PENDING'
                 && !document.getElementById('cancel-form').hidden",
        )
        .await;
    browser
        .exec(&format!(
            "document.getElementById('cancel-reason').value = '{BUTTON_REASON}';
             document.getElementById('cancel-form').requestSubmit(); return true;"
        ))
        .await;
    browser
        .wait_for(
            "the order cancelled from the page",
            &format!(
                "const r = document.querySelector('#execution-summary [data-field=cancelReason]');
                 return document.getElementById('execution-summary').dataset.orderStatus === 'CANCELLED'
                     && r && r.textContent === '{BUTTON_REASON}'
                     && document.getElementById('cancel-form').hidden
                     && document.getElementById('count-CANCELLED').textContent === '2'"
            ),
        )
        .await;
    let order = api.get(&format!("/orders/{by_button}")).await;
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["cancelReason"], BUTTON_REASON);
    let untouched = api.get(&format!("/orders/{}", ids[2])).await;
    assert_eq!(untouched["status"], "PENDING");

    let severe = browser.severe_log().await;
    assert!(severe.is_empty(), "console errors: {severe:#?}");
    let page_errors = browser.exec("return window.__dofsErrors").await;
    assert_eq!(page_errors, json!([]), "errors seen by the page");
    browser.quit().await;
    eprintln!("dashboard cancel screenshot: {}", cancelled_view.display());
}
