//! `dofs validate-system`: is this deployment healthy and configured as the
//! contract says? Liveness and readiness (store and queue reachable), the
//! API key, every contract route answering without side effects, the DLQ
//! depth, firing alerts, metrics and the OpenAPI document. Prints a
//! checklist; exits 1 when any check fails, 3 when nothing answers.

use crate::commands::checks::{Checklist, Status};
use crate::commands::client::{Api, CliError, Exit, Reply, Target};
use crate::commands::format::{human_duration, text};
use clap::Args;
use reqwest::Method;
use std::time::{Duration, Instant};

/// `dofs validate-system`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub target: Target,
    /// Fail when the DLQ holds more dead letters than this (the seed's alert threshold).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_dlq_depth: u64,
    /// Warn when /health takes longer than this.
    #[arg(long, default_value = "1s", value_parser = crate::commands::format::parse_duration, value_name = "DURATION")]
    pub slow: Duration,
}

/// The contract's routes (CONTRACT.md section 1) and a probe for each that
/// changes nothing: (method, template, path to request, accepted statuses).
const NIL: &str = "00000000-0000-7000-8000-000000000000";

fn probes() -> Vec<(Method, &'static str, String, &'static [u16])> {
    vec![
        (Method::GET, "/orders", "/orders?limit=1".into(), &[200]),
        (
            Method::GET,
            "/orders/{orderId}",
            format!("/orders/{NIL}"),
            &[404],
        ),
        // A text body is refused before anything is recorded.
        (Method::POST, "/order", "/order".into(), &[415]),
        (Method::POST, "/orders", "/orders".into(), &[415]),
        // Unknown order: 404; a submit-only key: 403. Either way the route exists.
        (
            Method::POST,
            "/orders/{orderId}/retry",
            format!("/orders/{NIL}/retry"),
            &[404, 403],
        ),
        (
            Method::GET,
            "/failed-orders",
            "/failed-orders?limit=1".into(),
            &[200],
        ),
        (Method::GET, "/dlq", "/dlq?limit=1".into(), &[200]),
        // POST-only actions: a GET proves the route without acting.
        (Method::GET, "/dlq/redrive", "/dlq/redrive".into(), &[405]),
        (Method::GET, "/dlq/purge", "/dlq/purge".into(), &[405]),
        (
            Method::GET,
            "/executions/{executionId}",
            format!("/executions/{NIL}"),
            &[404],
        ),
        (Method::GET, "/openapi.json", "/openapi.json".into(), &[200]),
    ]
}

/// Runs every check and prints the checklist.
pub async fn run(args: ValidateArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let mut list = Checklist::new(args.target.json);
    check_endpoint(&api, &mut list);

    let started = Instant::now();
    let health = match api.get("/health").await {
        Ok(r) => r,
        Err(e @ CliError::Unreachable { .. }) => {
            list.record("health", Status::Fail, e.to_string());
            list.unreachable = true;
            return Ok(list.finish());
        }
        Err(e) => {
            list.record("health", Status::Fail, e.to_string());
            return Ok(list.finish());
        }
    };
    let took = started.elapsed();
    match (health.status, health.json()["status"].as_str()) {
        (200, Some("ok")) if took > args.slow => list.record(
            "health",
            Status::Warn,
            format!("GET /health answered ok, but took {}", human_duration(took)),
        ),
        (200, Some("ok")) => list.record(
            "health",
            Status::Pass,
            format!("GET /health answered ok in {}", human_duration(took)),
        ),
        _ => list.record(
            "health",
            Status::Fail,
            format!("GET /health answered {}", summary(&health)),
        ),
    }

    match api.get("/ready").await {
        Ok(r) if r.status == 200 => list.record(
            "ready",
            Status::Pass,
            "GET /ready: the store and the queue are reachable",
        ),
        Ok(r) => list.record(
            "ready",
            Status::Fail,
            format!("GET /ready answered {}", summary(&r)),
        ),
        Err(e) => list.record("ready", Status::Fail, e.to_string()),
    }

    let authorized = check_auth(&api, &mut list).await;
    if authorized {
        check_routes(&api, &mut list).await;
        check_dlq(&api, &mut list, args.max_dlq_depth).await;
        check_alerts(&api, &mut list).await;
        check_metrics(&api, &mut list).await;
        check_openapi(&api, &mut list).await;
    }
    Ok(list.finish())
}

fn summary(r: &Reply) -> String {
    let body = r.json();
    match (body["error"].as_str(), body["message"].as_str()) {
        (Some(e), Some(m)) => format!("{} {e}: {m}", r.status),
        (None, Some(m)) => format!("{}: {m}", r.status),
        _ => match body["reason"].as_str() {
            Some(reason) => format!("{} ({reason})", r.status),
            None => r.status.to_string(),
        },
    }
}

/// The URL itself: https, or http only to this machine (keys travel in clear otherwise).
fn check_endpoint(api: &Api, list: &mut Checklist) {
    let base = api.base();
    let host = reqwest::Url::parse(base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let local = matches!(host.as_str(), "localhost" | "[::1]" | "::1") || host.starts_with("127.");
    if base.starts_with("https://") || local {
        list.record("endpoint", Status::Pass, base.to_owned());
    } else if api.api_key().is_some() {
        list.record(
            "endpoint",
            Status::Warn,
            format!("{base}: plain http to another host sends the API key in clear"),
        );
    } else {
        list.record(
            "endpoint",
            Status::Warn,
            format!("{base}: plain http to another host"),
        );
    }
}

/// Whether a read needs a key that we lack. Returns false when nothing else can be checked.
async fn check_auth(api: &Api, list: &mut Checklist) -> bool {
    match api.get("/orders?limit=1").await {
        Ok(r) if r.status == 200 => {
            let detail = if api.api_key().is_some() {
                "the API key is accepted"
            } else {
                "no API key needed"
            };
            list.record("auth", Status::Pass, detail);
            true
        }
        Ok(r) if r.status == 401 || r.status == 403 => {
            let hint = if api.api_key().is_some() {
                "the API key was refused"
            } else {
                "a key is required: pass --api-key or set DOFS_API_KEY"
            };
            list.record("auth", Status::Fail, format!("{}; {hint}", summary(&r)));
            false
        }
        Ok(r) => {
            list.record(
                "auth",
                Status::Fail,
                format!("GET /orders answered {}", summary(&r)),
            );
            true
        }
        Err(e) => {
            list.record("auth", Status::Fail, e.to_string());
            false
        }
    }
}

/// Each contract route answers like DOFS (a JSON answer with the expected status),
/// not like a gateway in front of nothing.
async fn check_routes(api: &Api, list: &mut Checklist) {
    for (method, template, path, accepted) in probes() {
        let mut request = api.request(method.clone(), &path);
        if method == Method::POST {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "text/plain")
                .body("validate-system probe");
        }
        let served = if accepted.contains(&405) {
            Method::POST
        } else {
            method.clone()
        };
        let name = format!("route {served} {template}");
        match api.send(request).await {
            Ok(r) if accepted.contains(&r.status) && (r.is_json() || r.body.is_empty()) => {
                list.record(
                    &name,
                    Status::Pass,
                    format!("{method} {path} answered {}", r.status),
                );
            }
            Ok(r) => list.record(
                &name,
                Status::Fail,
                format!(
                    "{method} {path} answered {}, expected {}",
                    summary(&r),
                    accepted
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            ),
            Err(e) => list.record(&name, Status::Fail, e.to_string()),
        }
    }
    match api.get("/no-such-route-validate-system").await {
        Ok(r) if r.status == 404 && r.json()["error"] == "NotFound" => list.record(
            "route unknown",
            Status::Pass,
            "an unknown route answers the contract's JSON 404",
        ),
        Ok(r) => list.record(
            "route unknown",
            Status::Fail,
            format!(
                "an unknown route answered {}: is the endpoint's stage right?",
                summary(&r)
            ),
        ),
        Err(e) => list.record("route unknown", Status::Fail, e.to_string()),
    }
}

async fn check_dlq(api: &Api, list: &mut Checklist, max: u64) {
    match api.get_json("/dlq?limit=1").await {
        Ok(page) => match page["depth"].as_u64() {
            Some(depth) if depth > max => list.record(
                "dlq depth",
                Status::Fail,
                format!("{depth} dead letters await an operator (threshold {max}): dofs dlq list"),
            ),
            Some(depth) => list.record(
                "dlq depth",
                Status::Pass,
                format!("{depth} dead letter(s) (threshold {max})"),
            ),
            None => list.record("dlq depth", Status::Fail, "GET /dlq has no depth"),
        },
        Err(e) => list.record("dlq depth", Status::Fail, e.to_string()),
    }
}

/// Firing alerts fail; a deployment without `/alerts` is skipped, not failed.
async fn check_alerts(api: &Api, list: &mut Checklist) {
    let r = match api.get("/alerts").await {
        Ok(r) => r,
        Err(e) => return list.record("alerts", Status::Fail, e.to_string()),
    };
    if r.status == 404 {
        return list.record(
            "alerts",
            Status::Skip,
            "alerts not available (GET /alerts: 404)",
        );
    }
    if r.status != 200 {
        return list.record(
            "alerts",
            Status::Fail,
            format!("GET /alerts answered {}", summary(&r)),
        );
    }
    let body = r.json();
    let rules = body["alerts"]
        .as_array()
        .or_else(|| body.as_array())
        .cloned()
        .unwrap_or_default();
    let firing: Vec<String> = rules
        .iter()
        .filter(|a| {
            a["state"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("firing"))
        })
        .map(|a| format!("{} (since {})", text(&a["name"]), text(&a["since"])))
        .collect();
    if firing.is_empty() {
        list.record(
            "alerts",
            Status::Pass,
            format!("{} rule(s), none firing", rules.len()),
        );
    } else {
        list.record(
            "alerts",
            Status::Fail,
            format!("firing: {}", firing.join(", ")),
        );
    }
}

async fn check_metrics(api: &Api, list: &mut Checklist) {
    match api.get("/metrics").await {
        Ok(r) if r.status == 404 => list.record(
            "metrics",
            Status::Skip,
            "metrics not available (GET /metrics: 404)",
        ),
        Ok(r) if r.status == 200 => {
            let body = String::from_utf8_lossy(&r.body);
            if body.contains("dofs_") {
                let series = body.lines().filter(|l| l.starts_with("dofs_")).count();
                list.record("metrics", Status::Pass, format!("{series} dofs_* series"));
            } else {
                list.record("metrics", Status::Fail, "GET /metrics has no dofs_* series");
            }
        }
        Ok(r) => list.record(
            "metrics",
            Status::Fail,
            format!("GET /metrics answered {}", summary(&r)),
        ),
        Err(e) => list.record("metrics", Status::Fail, e.to_string()),
    }
}

async fn check_openapi(api: &Api, list: &mut Checklist) {
    let doc = match api.get_json("/openapi.json").await {
        Ok(d) => d,
        Err(e) => return list.record("openapi", Status::Fail, e.to_string()),
    };
    let spec = match crate::commands::openapi::Spec::new(doc, false) {
        Ok(s) => s,
        Err(e) => return list.record("openapi", Status::Fail, e),
    };
    let missing: Vec<String> = dofs_server::api_doc::CONTRACT_ROUTES
        .iter()
        .filter(|(m, p)| !spec.has(m, p))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    let version = spec.doc()["info"]["version"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    if !missing.is_empty() {
        list.record(
            "openapi",
            Status::Fail,
            format!("not described: {}", missing.join(", ")),
        );
    } else if version != env!("CARGO_PKG_VERSION") {
        list.record(
            "openapi",
            Status::Warn,
            format!(
                "every contract route is described; the server is version {version}, this dofs is {}",
                env!("CARGO_PKG_VERSION")
            ),
        );
    } else {
        list.record(
            "openapi",
            Status::Pass,
            format!(
                "OpenAPI {} describing every contract route (version {version})",
                text(&spec.doc()["openapi"])
            ),
        );
    }
}
