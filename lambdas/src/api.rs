//! `api_handler`: the contract's HTTP API (the same [`dofs_server::router`] as
//! `dofs serve`) over the AWS adapters, run by `lambda_http`, which turns API
//! Gateway proxy events (REST v1 and HTTP API v2) into requests and back.
//!
//! API Gateway serves the API under a stage (`/dev/orders`); `lambda_http`
//! puts the stage into the request path for REST APIs (and HTTP APIs send it
//! in `rawPath`), so the stage is stripped here and the routes are the
//! contract's, whatever the stage is called. The stage's root without a
//! trailing slash (`/dev`: Terraform's `invoke_url`, the `api_url` output) is
//! redirected to `dev/`, so that the dashboard's URLs, relative to the page,
//! resolve under the stage (`slash_the_stage_root`).
//!
//! API keys: API Gateway checks that a request on a keyed route carries *some*
//! valid key of the usage plan, and puts that key's id in the request context
//! (`requestContext.identity.apiKeyId`). Which keys are operator keys is told
//! by `DOFS_OPERATOR_API_KEY_IDS` (a comma-separated list of API key ids, set by
//! Terraform; ids are not secrets). An operator route (retry, redrive, purge)
//! answers 403 unless the request came with one of those ids; with the
//! variable unset or empty, no request may use an operator route.
//!
//! Deadlines: the router answers 503 `Timeout` after `DOFS_REQUEST_TIMEOUT_MS`
//! (Terraform: a second under the function's timeout), or before the
//! invocation's own deadline less [`INVOCATION_RESERVE`] if that comes first
//! ([`mark_deadline`]); the DLQ actions stop working before either
//! (`dofs_server::deadline`), so a large DLQ is never cut off midway.
//!
//! Metrics: `GET /metrics` serves only values true for every instance
//! together ([`dofs_server::observability::fleet`]): gauges from DynamoDB and
//! SQS, counters summed by CloudWatch ([`crate::metrics`]). [`publishing`]
//! sends what each invocation recorded to CloudWatch before it answers.

use crate::metrics::Publisher;
use axum::extract::Request;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dofs_aws::AwsAdapters;
use dofs_server::auth::{Access, VerifiedAccess};
use dofs_server::deadline::RequestDeadline;
use dofs_server::observability::Observability;
use dofs_server::overload::OverloadConfig;
use dofs_server::AppState;
use lambda_http::request::RequestContext;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable naming the operator keys' API key ids.
pub const OPERATOR_KEY_IDS_VAR: &str = "DOFS_OPERATOR_API_KEY_IDS";

/// The environment variable with the router's per-request timeout, in ms.
pub const REQUEST_TIMEOUT_VAR: &str = "DOFS_REQUEST_TIMEOUT_MS";

/// The router's per-request timeout without `DOFS_REQUEST_TIMEOUT_MS`: under
/// the function's default timeout (15 s) and API Gateway's (29 s), so that a
/// slow request gets the contract's 503 `Timeout` rather than the function
/// being killed (502) or API Gateway giving up (504).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(14_000);

/// `DOFS_REQUEST_TIMEOUT_MS` (Terraform sets it a second under the function's
/// timeout), or [`DEFAULT_REQUEST_TIMEOUT`].
pub fn request_timeout_from(value: Option<String>) -> Result<Duration, dofs_aws::SettingsError> {
    match value {
        None => Ok(DEFAULT_REQUEST_TIMEOUT),
        Some(v) if v.trim().is_empty() => Ok(DEFAULT_REQUEST_TIMEOUT),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ms) if (100..=900_000).contains(&ms) => Ok(Duration::from_millis(ms)),
            _ => Err(dofs_aws::SettingsError::Invalid {
                name: REQUEST_TIMEOUT_VAR,
                value: v,
                why: "must be a whole number of milliseconds from 100 to 900000",
            }),
        },
    }
}

/// What an invocation keeps after its request's deadline: turning the answer
/// into API Gateway's and publishing the request's metrics ([`publishing`]).
pub const INVOCATION_RESERVE: Duration = Duration::from_secs(1);

/// The deadline of a request whose invocation ends at `deadline_ms` (ms since
/// the epoch, as the Lambda context gives it), seen at `now_ms`:
/// [`INVOCATION_RESERVE`] before it.
pub fn invocation_deadline(deadline_ms: u64, now_ms: u64, now: Instant) -> RequestDeadline {
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    RequestDeadline(now + left.saturating_sub(INVOCATION_RESERVE))
}

/// Marks the request with its invocation's deadline, when the Lambda context
/// gives one (a deadline of 0, as in `Context::default()`, gives none); the
/// router's own timeout applies when it comes first.
async fn mark_deadline(mut request: Request) -> Request {
    let Some(deadline_ms) = request
        .extensions()
        .get::<lambda_http::Context>()
        .map(|c| c.deadline)
        .filter(|ms| *ms > 0)
    else {
        return request;
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let deadline = invocation_deadline(deadline_ms, now_ms, Instant::now());
    request.extensions_mut().insert(deadline);
    request
}

/// The API Gateway API key ids whose holders may use the operator routes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorKeyIds(HashSet<String>);

impl OperatorKeyIds {
    /// Parses a comma-separated list; blanks are ignored.
    pub fn parse(list: &str) -> Self {
        OperatorKeyIds(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// `DOFS_OPERATOR_API_KEY_IDS`, or none (operator routes closed).
    pub fn from_env() -> Self {
        OperatorKeyIds::parse(&std::env::var(OPERATOR_KEY_IDS_VAR).unwrap_or_default())
    }

    /// Whether `id` is an operator key's id.
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(id)
    }

    /// How many ids there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The router over the AWS backend, with the operator keys of
/// `DOFS_OPERATOR_API_KEY_IDS`; fails without `DOFS_STATE_MACHINE_ARN`.
pub fn app(adapters: &AwsAdapters) -> Result<axum::Router, dofs_aws::SettingsError> {
    app_with(adapters, OperatorKeyIds::from_env())
}

/// The router over the AWS backend, with these operator key ids.
pub fn app_with(
    adapters: &AwsAdapters,
    operators: OperatorKeyIds,
) -> Result<axum::Router, dofs_aws::SettingsError> {
    let backend = adapters.backend()?;
    if operators.is_empty() {
        tracing::warn!(
            "{OPERATOR_KEY_IDS_VAR} is empty: the operator routes answer 403 to every key"
        );
    }
    let request_timeout = request_timeout_from(std::env::var(REQUEST_TIMEOUT_VAR).ok())?;
    let state = AppState::new(backend, adapters.settings.limits).with_overload(OverloadConfig {
        request_timeout,
        ..OverloadConfig::default()
    });
    let counters = crate::metrics::CloudWatchCounters::new(adapters.metrics.clone());
    let obs = Observability::fleet(adapters.clock.now(), Arc::new(counters));
    let router = dofs_server::router_with(state, obs);
    let operators = Arc::new(operators);
    // A layer on a router runs after its routing: wrap it, so that the inner
    // router routes the rewritten path. Layers run outside in: the stage is
    // stripped, the stage's root without a slash is redirected, and the key
    // API Gateway verified is marked on the request for the router's route
    // groups to check, and so is the invocation's deadline.
    Ok(axum::Router::new()
        .fallback_service(router)
        .layer(axum::middleware::map_request(mark_deadline))
        .layer(axum::middleware::map_request(move |request| {
            mark_access(Arc::clone(&operators), request)
        }))
        .layer(axum::middleware::map_request(slash_the_stage_root))
        .layer(axum::middleware::map_request(strip_stage)))
}

/// `app`, publishing what each request recorded (the request counts and
/// durations, orders accepted and rejected) with `publisher` once it is
/// answered, before the invocation ends: a frozen instance sends nothing.
pub fn publishing(app: axum::Router, publisher: Arc<Publisher>) -> axum::Router {
    app.layer(axum::middleware::from_fn(
        move |request: Request, next: axum::middleware::Next| {
            let publisher = Arc::clone(&publisher);
            async move {
                let response = next.run(request).await;
                publisher.flush().await;
                response
            }
        },
    ))
}

/// The API key id API Gateway put in the request context, if any.
fn api_key_id(request: &Request) -> Option<String> {
    match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.api_key_id.clone(),
        _ => None,
    }
}

/// Marks what the request's key may do: API Gateway has checked that keyed
/// routes carry a valid key of the usage plan, so any request may read and
/// submit, and an operator route ([`dofs_server`]'s operator route group)
/// answers 403 unless the key's id is an operator key's.
async fn mark_access(operators: Arc<OperatorKeyIds>, mut request: Request) -> Request {
    let access = match api_key_id(&request) {
        Some(id) if operators.contains(&id) => Access::Operator,
        _ => Access::Submit,
    };
    request.extensions_mut().insert(VerifiedAccess(access));
    request
}

/// The stage of the API Gateway request, unless it is the default one.
fn stage_of(request: &Request) -> Option<String> {
    let stage = match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.stage.clone(),
        RequestContext::ApiGatewayV2(ctx) => ctx.stage.clone(),
        _ => None,
    }?;
    (stage != "$default" && !stage.is_empty()).then_some(stage)
}

/// Sends a browser at the stage's root without a trailing slash (`GET /dev`)
/// to `./dev/` (308). API Gateway serves the root resource at `/dev` and at
/// `/dev/` alike, with the same `path` (`/`); only `requestContext.path` (the
/// path as requested) tells them apart. The dashboard's URLs are relative to
/// the page, and from `/dev` they would resolve outside the stage
/// (`/assets/app.js`, `/stats`), which API Gateway refuses. The redirect is
/// relative, so that it holds behind a custom domain's base path too.
async fn slash_the_stage_root(request: Request) -> Result<Request, Response> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) || request.uri().path() != "/" {
        return Ok(request);
    }
    let requested = match request.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.path.clone().unwrap_or_default(),
        _ => return Ok(request),
    };
    if requested.is_empty() || requested.ends_with('/') {
        return Ok(request);
    }
    let last = requested.rsplit('/').next().unwrap_or_default();
    let location = match request.uri().query() {
        Some(q) => format!("./{last}/?{q}"),
        None => format!("./{last}/"),
    };
    Err((
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response())
}

/// Removes a leading `/{stage}` from the path.
async fn strip_stage(mut request: Request) -> Request {
    let Some(stage) = stage_of(&request) else {
        return request;
    };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => return request,
    };
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let mut parts = request.uri().clone().into_parts();
    match path_and_query.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return request,
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}
