//! `api_handler`: the contract's HTTP API (the same [`dofs_server::router`] as
//! `dofs serve`) over the AWS adapters, run by `lambda_http`, which turns API
//! Gateway proxy events (REST v1 and HTTP API v2) into requests and back.
//!
//! API Gateway serves the API under a stage (`/dev/orders`); `lambda_http`
//! puts the stage into the request path for REST APIs (and HTTP APIs send it
//! in `rawPath`), so the stage is stripped here and the routes are the
//! contract's, whatever the stage is called.

use axum::extract::Request;
use axum::http::Uri;
use dofs_aws::AwsAdapters;
use dofs_server::AppState;
use lambda_http::request::RequestContext;

/// The router over the AWS backend; fails without `DOFS_STATE_MACHINE_ARN`.
pub fn app(adapters: &AwsAdapters) -> Result<axum::Router, dofs_aws::SettingsError> {
    let backend = adapters.backend()?;
    let router = dofs_server::router(AppState::new(backend, adapters.settings.limits));
    // A layer on a router runs after its routing: wrap it, so that the inner
    // router routes the rewritten path.
    Ok(axum::Router::new()
        .fallback_service(router)
        .layer(axum::middleware::map_request(strip_stage)))
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
