//! Every configuration key, its default and what it means (`dofs serve --print-keys`).
//! The keys the Lambdas read too take their name and default from
//! [`dofs_core::settings`].

use dofs_core::settings as shared;

/// Every key, its default (None: unset) and what it means.
pub const KEYS: &[(&str, Option<&str>, &str)] = &[
    (
        "server.bind",
        Some("127.0.0.1:8080"),
        "address and port to listen on",
    ),
    (
        "server.rate_limit_per_second",
        Some("0"),
        "requests per second each client (API key, or IP without auth) may make on average; 0: no rate limit",
    ),
    (
        "server.rate_limit_burst",
        Some("200"),
        "requests a client may make at once after being idle (the token bucket's size)",
    ),
    (
        "server.max_in_flight",
        Some("256"),
        "requests handled at once, all clients together; more are answered 429",
    ),
    (
        "server.max_connections",
        Some("4096"),
        "connections open at once; more wait in the listen backlog",
    ),
    (
        "server.request_timeout_ms",
        Some("30000"),
        "longest time a request may take before it is answered 503 Timeout",
    ),
    (
        "server.header_read_timeout_ms",
        Some("10000"),
        "longest time a client may take to send a request's headers before its connection is closed",
    ),
    (
        "server.keep_alive_timeout_ms",
        Some("5000"),
        "longest time a kept-alive connection may sit idle between requests before it is closed, so that idle clients do not hold server.max_connections",
    ),
    (
        "server.body_read_timeout_ms",
        Some("10000"),
        "longest time an order's body may take to arrive before it is answered 408",
    ),
    (
        "storage.data_dir",
        Some("./dofs-data"),
        "directory holding dofs.db",
    ),
    (
        shared::ENVIRONMENT.key,
        shared::ENVIRONMENT.default,
        "environment name (dev, staging, prod, ...)",
    ),
    (
        shared::SUCCESS_RATE.key,
        shared::SUCCESS_RATE.default,
        "probability that one attempt succeeds, 0 to 1",
    ),
    (
        shared::SEED.key,
        shared::SEED.default,
        "makes outcomes a pure function of (seed, order, attempt)",
    ),
    (
        "fulfillment.delay_ms",
        Some("0"),
        "simulated work per attempt, in milliseconds",
    ),
    (
        "fulfillment.workers",
        None,
        "fulfillment workers (default: number of cores)",
    ),
    (
        shared::MODE.key,
        shared::MODE.default,
        "what an attempt does: simulated (the success rate's coin flip) or http (POST the order to fulfillment.http.url)",
    ),
    (
        shared::HTTP_URL.key,
        shared::HTTP_URL.default,
        "your fulfillment service's http:// or https:// URL (required in http mode)",
    ),
    (
        "fulfillment.http.secret",
        None,
        "signs each attempt as Standard Webhooks do: whsec_ and the base64 of the key",
    ),
    (
        shared::HTTP_TIMEOUT_MS.key,
        shared::HTTP_TIMEOUT_MS.default,
        "longest an attempt's call may take before it counts as a failed attempt",
    ),
    (
        shared::HTTP_CONCURRENCY.key,
        shared::HTTP_CONCURRENCY.default,
        "attempts in flight at once in http mode, all workers together",
    ),
    (
        "events.webhook_urls",
        None,
        "http:// or https:// URLs that receive every order event (comma-separated)",
    ),
    (
        "events.secret",
        None,
        "signs each event delivery as Standard Webhooks do: whsec_ and the base64 of the key",
    ),
    (
        shared::EVENTS_MAX_AGE_S.key,
        shared::EVENTS_MAX_AGE_S.default,
        "how long order events are kept and their webhook deliveries retried, in seconds",
    ),
    (
        shared::MAX_RECEIVE_COUNT.key,
        shared::MAX_RECEIVE_COUNT.default,
        "receives before a message moves to the DLQ",
    ),
    (
        "queue.visibility_timeout_ms",
        Some("30000"),
        "how long a received message stays hidden",
    ),
    (
        shared::BACKOFF_BASE_MS.key,
        shared::BACKOFF_BASE_MS.default,
        "delay after the first failed attempt; doubles each attempt",
    ),
    (
        shared::BACKOFF_MAX_MS.key,
        shared::BACKOFF_MAX_MS.default,
        "longest delay between attempts",
    ),
    (
        "queue.max_backlog",
        Some("100000"),
        "orders queued (waiting or being fulfilled) at which new orders are answered 429; 0: no limit",
    ),
    (
        shared::MAX_QUANTITY.key,
        shared::MAX_QUANTITY.default,
        "largest quantity accepted",
    ),
    (
        shared::MAX_PRICE.key,
        shared::MAX_PRICE.default,
        "largest price accepted",
    ),
    (
        "alerts.dlq_depth_threshold",
        Some("5"),
        "DLQ depth above which the DLQ alert fires",
    ),
    (
        "alerts.webhook_url",
        None,
        "where firing and resolved alerts are POSTed",
    ),
    (
        "alerts.evaluation_interval_ms",
        Some("1000"),
        "how often the alert rules are evaluated",
    ),
    (
        "alerts.window_s",
        Some("300"),
        "window of the failure-ratio, 5XX and workflow-failure rules, in seconds",
    ),
    (
        "alerts.failure_ratio_threshold",
        Some("0.5"),
        "failed share of fulfillment attempts (0 to 1) above which that alert fires",
    ),
    (
        "alerts.failure_ratio_min_attempts",
        Some("10"),
        "attempts the window needs before the failure-ratio alert may fire",
    ),
    (
        "alerts.http_5xx_threshold",
        Some("0"),
        "5XX responses in the window above which the API alert fires",
    ),
    (
        "alerts.workflow_failures_threshold",
        Some("0"),
        "failed workflow executions in the window above which that alert fires",
    ),
    (
        "alerts.queue_age_threshold_s",
        Some("300"),
        "age in seconds of the oldest queued message above which that alert fires",
    ),
    (
        "auth.api_keys",
        None,
        "API keys accepted on every route but /health and /ready",
    ),
    (
        "auth.operator_keys",
        None,
        "keys accepted on operator routes (retry, cancel, redrive, purge)",
    ),
    ("log.format", Some("text"), "text or json"),
];
