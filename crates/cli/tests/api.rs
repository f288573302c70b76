//! Black-box tests of the embedded system: the real binary, a random port, a
//! temporary data directory, HTTP like a user.
//!
//! The shared suite (`crates/blackbox`, also run against the local AWS stack)
//! comes first; the tests after it are about `dofs serve` itself: a SIGTERM
//! and a restart on the same data file, a bad configuration value, and API
//! keys (on AWS, keys belong to API Gateway's usage plans, not to the code).

mod common;

use common::{fast_env, seed_order, App};
use dofs_blackbox::{Settings, Target};
use serde_json::Value;
use std::time::Duration;

/// `dofs serve` on a temporary data directory.
struct Embedded {
    app: App,
    dir: tempfile::TempDir,
}

fn env_of(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut env = fast_env();
    env.extend(settings.env());
    env
}

fn start(settings: &Settings) -> Option<Embedded> {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::spawn_on(dir.path(), &env_of(settings));
    Some(Embedded { app, dir })
}

impl Target for Embedded {
    fn base(&self) -> String {
        self.app.base.clone()
    }

    fn restart(&mut self, settings: &Settings) {
        let status = self.app.terminate();
        assert!(status.success(), "dofs serve exited with {status:?}");
        self.app = App::spawn_on(self.dir.path(), &env_of(settings));
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn bulk_orders(&self) -> usize {
        1000
    }
}

dofs_blackbox::suite!(start);
dofs_blackbox::webhook_suite!(start);

#[tokio::test]
async fn sigterm_stops_accepting_and_exits_zero_and_accepted_orders_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.push(("DOFS_FULFILLMENT_DELAY_MS", "50".into()));
    let mut app = App::spawn_on(dir.path(), &env);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let v: Value = app
            .post_order(&seed_order())
            .await
            .json()
            .await
            .expect("json");
        ids.push(v["orderId"].as_str().expect("id").to_owned());
    }
    let status = app.terminate();
    assert!(status.success(), "exit status {status:?}");
    let app = App::spawn_on(dir.path(), &fast_env());
    app.wait_all_terminal(&ids, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_bad_configuration_value_stops_start_up_naming_the_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dofs"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DOFS_FULFILLMENT_SUCCESS_RATE", "1.7")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fulfillment.success_rate"), "{err}");
}

#[tokio::test]
async fn bad_fulfillment_and_event_settings_stop_start_up_naming_the_key() {
    let secret = "whsec_ZG9mcy1ibGFja2JveC1mdWxmaWxsbWVudC1rZXk=";
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("DOFS_FULFILLMENT_MODE", "http")], "fulfillment.http.url"),
        (&[("DOFS_FULFILLMENT_MODE", "webhook")], "fulfillment.mode"),
        (
            &[
                ("DOFS_FULFILLMENT_MODE", "http"),
                ("DOFS_FULFILLMENT_HTTP_URL", "ftp://example.com/fulfill"),
            ],
            "fulfillment.http.url",
        ),
        (
            &[("DOFS_FULFILLMENT_HTTP_SECRET", "not-a-whsec-secret")],
            "fulfillment.http.secret",
        ),
        (
            &[("DOFS_FULFILLMENT_HTTP_TIMEOUT_MS", "0")],
            "fulfillment.http.timeout_ms",
        ),
        (
            &[(
                "DOFS_EVENTS_WEBHOOK_URLS",
                "http://127.0.0.1:9/ok,file:///etc/passwd",
            )],
            "events.webhook_urls",
        ),
        (&[("DOFS_EVENTS_SECRET", "whsec_!!!")], "events.secret"),
        (&[("DOFS_EVENTS_MAX_AGE_S", "5")], "events.max_age_s"),
        (
            &[
                ("DOFS_FULFILLMENT_MODE", "http"),
                ("DOFS_FULFILLMENT_HTTP_URL", "http://127.0.0.1:9/fulfill"),
                ("DOFS_FULFILLMENT_HTTP_TIMEOUT_MS", "30000"),
            ],
            "fulfillment.http.timeout_ms",
        ),
    ];
    for (env, key) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dofs"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path());
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {err}");
        assert!(err.contains(key), "{env:?} names {key}: {err}");
        assert!(!err.contains(secret), "no secret in the message: {err}");
        if key.ends_with("secret") {
            for (_, v) in *env {
                assert!(!err.contains(v), "a secret's value is never echoed: {err}");
            }
        }
        assert!(
            !dofs_embedded_db_exists(dir.path()),
            "{env:?}: nothing was created"
        );
    }
}

fn dofs_embedded_db_exists(dir: &std::path::Path) -> bool {
    dir.join("dofs.db").exists()
}

#[tokio::test]
async fn api_keys_are_required_and_operator_routes_need_an_operator_key() {
    use dofs_blackbox::tests::{OPERATOR_KEY, SUBMIT_KEY};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = fast_env();
    env.push(("DOFS_AUTH_API_KEYS", SUBMIT_KEY.into()));
    env.push(("DOFS_AUTH_OPERATOR_KEYS", OPERATOR_KEY.into()));
    let app = App::spawn_on(dir.path(), &env);
    dofs_blackbox::tests::api_keys_are_required_and_operator_routes_need_an_operator_key(&app.base)
        .await;
}
