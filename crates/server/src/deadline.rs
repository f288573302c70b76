//! The request's deadline, and when work that grows with the data must stop
//! by it.
//!
//! The per-request timeout ([`crate::with_layers`]) marks each request with
//! its [`RequestDeadline`]: when it is answered 503 `Timeout` at the latest. A
//! layer outside it may mark an earlier one (the API Lambda marks its
//! invocation's deadline); the earlier wins. A handler whose work grows with
//! the data (the DLQ actions, a retry's search of the DLQ) takes a
//! [`WorkUntil`]: a point before the deadline that keeps time to release
//! what it holds and answer, rather than being cut off midway.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// When a request is answered at the latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestDeadline(pub Instant);

impl RequestDeadline {
    /// The deadline of a request that arrives `now` and may take `timeout`,
    /// or `marked`, an earlier one already on the request.
    pub fn within(
        timeout: Duration,
        marked: Option<RequestDeadline>,
        now: Instant,
    ) -> RequestDeadline {
        let own = RequestDeadline(now + timeout);
        match marked {
            Some(m) if m.0 < own.0 => m,
            _ => own,
        }
    }
}

/// The request time assumed when a request carries no deadline (a router
/// without [`crate::with_layers`]): the default request timeout.
const UNMARKED: Duration = Duration::from_secs(30);

/// When a handler's work must stop: after three quarters of the time left
/// to the request's deadline. The last quarter is kept for what follows the
/// last step begun (finishing it, releasing what is held, answering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkUntil(pub Instant);

impl WorkUntil {
    /// The point of `deadline` (none: [`UNMARKED`] from now) where work stops.
    pub fn before(deadline: Option<RequestDeadline>, now: Instant) -> WorkUntil {
        let left = deadline.map_or(UNMARKED, |d| d.0.saturating_duration_since(now));
        WorkUntil(now + left * 3 / 4)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WorkUntil {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let deadline = parts.extensions.get::<RequestDeadline>().copied();
        Ok(WorkUntil::before(deadline, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_deadline_wins() {
        let now = Instant::now();
        let lambda = RequestDeadline(now + Duration::from_secs(5));
        assert_eq!(
            RequestDeadline::within(Duration::from_secs(14), Some(lambda), now),
            lambda
        );
        assert_eq!(
            RequestDeadline::within(Duration::from_secs(2), Some(lambda), now),
            RequestDeadline(now + Duration::from_secs(2))
        );
        assert_eq!(
            RequestDeadline::within(Duration::from_secs(2), None, now),
            RequestDeadline(now + Duration::from_secs(2))
        );
    }

    #[test]
    fn work_stops_with_a_quarter_of_the_time_left_to_spare() {
        let now = Instant::now();
        let deadline = RequestDeadline(now + Duration::from_secs(14));
        assert_eq!(
            WorkUntil::before(Some(deadline), now),
            WorkUntil(now + Duration::from_millis(10_500))
        );
        assert_eq!(
            WorkUntil::before(Some(RequestDeadline(now)), now + Duration::from_secs(1)),
            WorkUntil(now + Duration::from_secs(1)),
            "a deadline already passed leaves no time"
        );
        assert_eq!(
            WorkUntil::before(None, now),
            WorkUntil(now + Duration::from_millis(22_500))
        );
    }
}
