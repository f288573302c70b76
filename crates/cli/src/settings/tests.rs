//! Tests of the layered settings: defaults, file, environment, flags, and bad values.

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_the_contract() {
    let s = Settings::load(None, &env(&[]), &Flags::default()).expect("defaults");
    assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(s.data_dir, PathBuf::from("./dofs-data"));
    assert_eq!(s.environment, "dev");
    assert_eq!(s.success_rate, 0.7);
    assert_eq!(s.seed, None);
    assert_eq!(s.max_receive_count, 3);
    assert_eq!(s.visibility_timeout, Duration::from_secs(30));
    assert_eq!(s.max_quantity, 100);
    assert_eq!(s.max_price, Price::from_cents(1_000_000));
    assert_eq!(s.dlq_depth_threshold, 5);
    assert_eq!(s.alert_rules.window, Duration::from_secs(300));
    assert_eq!(s.alert_rules.http_5xx_threshold, 0);
    assert!(s.api_keys.is_empty());
    assert_eq!(s.overload.rate_per_second, 0.0, "no rate limit by default");
    assert_eq!(s.overload.burst, 200);
    assert_eq!(s.overload.max_in_flight, 256);
    assert_eq!(s.overload.max_backlog, 100_000);
    assert_eq!(s.overload.request_timeout, Duration::from_secs(30));
    assert_eq!(s.overload.body_read_timeout, Duration::from_secs(10));
    assert_eq!(s.serve.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.serve.max_connections, 4096);
    assert_eq!(s.serve.keep_alive_timeout, Duration::from_secs(5));
}

#[test]
fn overload_limits_are_configurable_and_checked() {
    let s = Settings::load(
        None,
        &env(&[
            ("DOFS_SERVER_RATE_LIMIT_PER_SECOND", "2.5"),
            ("DOFS_SERVER_RATE_LIMIT_BURST", "5"),
            ("DOFS_SERVER_MAX_IN_FLIGHT", "8"),
            ("DOFS_QUEUE_MAX_BACKLOG", "0"),
            ("DOFS_SERVER_HEADER_READ_TIMEOUT_MS", "500"),
        ]),
        &Flags::default(),
    )
    .expect("valid limits");
    assert_eq!(
        (
            s.overload.rate_per_second,
            s.overload.burst,
            s.overload.max_in_flight
        ),
        (2.5, 5, 8)
    );
    assert_eq!(s.overload.max_backlog, 0);
    assert_eq!(s.serve.header_read_timeout, Duration::from_millis(500));
    for (var, value, key) in [
        (
            "DOFS_SERVER_RATE_LIMIT_PER_SECOND",
            "-1",
            "server.rate_limit_per_second",
        ),
        (
            "DOFS_SERVER_RATE_LIMIT_BURST",
            "0",
            "server.rate_limit_burst",
        ),
        ("DOFS_SERVER_MAX_IN_FLIGHT", "0", "server.max_in_flight"),
        (
            "DOFS_SERVER_MAX_CONNECTIONS",
            "lots",
            "server.max_connections",
        ),
        ("DOFS_QUEUE_MAX_BACKLOG", "-5", "queue.max_backlog"),
        (
            "DOFS_SERVER_REQUEST_TIMEOUT_MS",
            "5",
            "server.request_timeout_ms",
        ),
        (
            "DOFS_SERVER_HEADER_READ_TIMEOUT_MS",
            "1h",
            "server.header_read_timeout_ms",
        ),
        (
            "DOFS_SERVER_BODY_READ_TIMEOUT_MS",
            "0",
            "server.body_read_timeout_ms",
        ),
    ] {
        let m = Settings::load(None, &env(&[(var, value)]), &Flags::default())
            .expect_err(var)
            .to_string();
        assert!(m.contains(key) && m.contains(var), "{m}");
    }
}

#[test]
fn the_file_is_overridden_by_the_environment_and_then_by_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dofs.toml");
    std::fs::write(
        &file,
        "environment = \"staging\"\n[server]\nbind = \"127.0.0.1:9000\"\n[fulfillment]\nsuccess_rate = 0.5\nseed = 42\n",
    )
    .expect("write");
    let s = Settings::load(Some(&file), &env(&[]), &Flags::default()).expect("file");
    assert_eq!(
        (
            s.environment.as_str(),
            s.bind.port(),
            s.success_rate,
            s.seed
        ),
        ("staging", 9000, 0.5, Some(42))
    );
    let e = env(&[
        ("DOFS_FULFILLMENT_SUCCESS_RATE", "0.9"),
        ("DOFS_SERVER_BIND", "127.0.0.1:9001"),
    ]);
    let s = Settings::load(Some(&file), &e, &Flags::default()).expect("env");
    assert_eq!((s.success_rate, s.bind.port()), (0.9, 9001));
    let flags = Flags {
        bind: Some("127.0.0.1:9002".into()),
        ..Flags::default()
    };
    let s = Settings::load(Some(&file), &e, &flags).expect("flags");
    assert_eq!(s.bind.port(), 9002);
}

#[test]
fn a_bad_value_names_the_key_and_its_origin() {
    let err = |e: &[(&str, &str)]| {
        Settings::load(None, &env(e), &Flags::default())
            .expect_err("must fail")
            .to_string()
    };
    let m = err(&[("DOFS_FULFILLMENT_SUCCESS_RATE", "1.5")]);
    assert!(
        m.contains("fulfillment.success_rate") && m.contains("$DOFS_FULFILLMENT_SUCCESS_RATE"),
        "{m}"
    );
    assert!(err(&[("DOFS_QUEUE_MAX_RECEIVE_COUNT", "0")]).contains("queue.max_receive_count"));
    assert!(err(&[("DOFS_SERVER_BIND", "nowhere")]).contains("server.bind"));
    assert!(err(&[("DOFS_VALIDATION_MAX_PRICE", "10.001")]).contains("validation.max_price"));
    assert!(err(&[("DOFS_AUTH_API_KEYS", "short")]).contains("auth.api_keys"));
    let m = err(&[
        ("DOFS_AUTH_API_KEYS", "a-very-secret-key-123"),
        ("DOFS_LOG_FORMAT", "xml"),
    ]);
    assert!(
        !m.contains("a-very-secret-key-123"),
        "secrets never appear in messages: {m}"
    );
}

#[test]
fn unknown_keys_in_the_file_stop_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dofs.toml");
    std::fs::write(&file, "[fulfilment]\nsuccess_rate = 0.5\n").expect("write");
    let m = Settings::load(Some(&file), &env(&[]), &Flags::default())
        .expect_err("unknown")
        .to_string();
    assert!(m.contains("fulfilment.success_rate"), "{m}");
}

#[test]
fn every_key_has_its_environment_variable() {
    assert_eq!(
        env_var("fulfillment.success_rate"),
        "DOFS_FULFILLMENT_SUCCESS_RATE"
    );
    assert_eq!(env_var("environment"), "DOFS_ENVIRONMENT");
    for (key, _, _) in KEYS {
        let e = env(&[(&env_var(key), "!bad value!")]);
        if let Err(m) = Settings::load(None, &e, &Flags::default()) {
            assert!(m.to_string().contains(key), "{key}: {m}");
        }
    }
}

#[test]
fn the_keys_the_lambdas_share_come_from_dofs_core_with_their_variables_and_defaults() {
    for (key, var, default) in dofs_core::settings::SHARED {
        let listed = KEYS.iter().find(|(k, _, _)| *k == key);
        assert_eq!(listed.map(|(_, d, _)| *d), Some(default), "{key}");
        assert_eq!(env_var(key), var, "{key}");
    }
}

#[test]
fn a_backoff_maximum_below_its_base_is_refused_naming_where_it_came_from() {
    let m = Settings::load(
        None,
        &env(&[("DOFS_QUEUE_BACKOFF_BASE_MS", "50000")]),
        &Flags::default(),
    )
    .expect_err("refused")
    .to_string();
    assert_eq!(
        m,
        "invalid value for `queue.backoff_max_ms` (from the default): must be at least queue.backoff_base_ms (50000)"
    );
    let m = Settings::load(
        None,
        &env(&[("DOFS_QUEUE_BACKOFF_MAX_MS", "999")]),
        &Flags::default(),
    )
    .expect_err("refused")
    .to_string();
    assert!(m.contains("(from $DOFS_QUEUE_BACKOFF_MAX_MS)"), "{m}");
}

#[test]
fn secrets_do_not_print() {
    assert_eq!(format!("{:?}", Secret("abc".into())), "Secret(****)");
}
