//! The two middleware shapes the router is built from, as plain tower
//! services. `axum::middleware::from_fn` clones the route and boxes a future
//! at each layer of each request; on the submit route that cost about 1.5 us
//! of the runtime's CPU per layer per order (bench/PROFILE.md, "The HTTP
//! layers").
//!
//! - [`Check`]: a test of the request before the routes inside it (an API
//!   key, the overload limits). A refusal is the answer; otherwise the
//!   request goes on, and what the test returned (an in-flight permit) is
//!   held until the answer is made.
//! - [`Timeout`]: marks the request with its [`RequestDeadline`] and answers
//!   503 `Timeout` when the routes inside have not answered by then.

use crate::deadline::RequestDeadline;
use crate::ApiError;
use axum::extract::Request;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};

/// A layer that runs `check` on every request first: `Err(refusal)` is
/// the answer, `Ok(held)` lets the request through and keeps `held`
/// until the inner answer is ready (or the request is dropped).
#[derive(Clone)]
pub struct Check<F> {
    check: F,
}

impl<F> Check<F> {
    pub fn new(check: F) -> Self {
        Check { check }
    }
}

impl<S, F: Clone> Layer<S> for Check<F> {
    type Service = Checked<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Checked {
            inner,
            check: self.check.clone(),
        }
    }
}

/// The service [`Check`] wraps around the routes.
#[derive(Clone)]
pub struct Checked<S, F> {
    inner: S,
    check: F,
}

impl<S, F, H, E> Service<Request> for Checked<S, F>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    F: Fn(&Request) -> Result<H, E>,
    E: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CheckedFuture<S::Future, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match (self.check)(&request) {
            Ok(held) => CheckedFuture::Passed {
                inner: self.inner.call(request),
                held: Some(held),
            },
            Err(refusal) => CheckedFuture::Refused {
                answer: Some(refusal.into_response()),
            },
        }
    }
}

pin_project! {
    /// The answer of a [`Checked`] service.
    #[project = CheckedProj]
    pub enum CheckedFuture<Fut, H> {
        Passed { #[pin] inner: Fut, held: Option<H> },
        Refused { answer: Option<Response> },
    }
}

impl<Fut, H> Future for CheckedFuture<Fut, H>
where
    Fut: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CheckedProj::Passed { inner, held } => {
                let answer = ready!(inner.poll(cx));
                drop(held.take());
                Poll::Ready(answer)
            }
            // Taken once: a future is not polled again after it is ready.
            CheckedProj::Refused { answer } => Poll::Ready(Ok(answer.take().unwrap_or_default())),
        }
    }
}

/// The per-request timeout: the request is marked with its
/// [`RequestDeadline`] (`limit` from now, or an earlier deadline a layer
/// outside marked) and answered 503 `Timeout` if the routes have not
/// answered by then.
#[derive(Clone, Copy)]
pub struct Timeout {
    limit: Duration,
}

impl Timeout {
    pub fn new(limit: Duration) -> Self {
        Timeout { limit }
    }
}

impl<S> Layer<S> for Timeout {
    type Service = TimedOut<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimedOut {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`Timeout`] wraps around the routes.
#[derive(Clone)]
pub struct TimedOut<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for TimedOut<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TimedOutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let now = Instant::now();
        let marked = request.extensions().get::<RequestDeadline>().copied();
        let deadline = RequestDeadline::within(self.limit, marked, now);
        request.extensions_mut().insert(deadline);
        let left = deadline.0.saturating_duration_since(now);
        let uri = request.uri().clone();
        TimedOutFuture {
            inner: tokio::time::timeout(left, self.inner.call(request)),
            uri,
        }
    }
}

pin_project! {
    /// The answer of a [`TimedOut`] service.
    pub struct TimedOutFuture<Fut> {
        #[pin]
        inner: tokio::time::Timeout<Fut>,
        uri: Uri,
    }
}

impl<Fut> Future for TimedOutFuture<Fut>
where
    Fut: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match ready!(this.inner.poll(cx)) {
            Ok(answer) => Poll::Ready(answer),
            Err(_) => {
                tracing::warn!(path = %this.uri.path(), "request timed out");
                Poll::Ready(Ok(ApiError::Timeout.into_response()))
            }
        }
    }
}
