//! [`AppState`]: what every handler shares: the backend's ports, the
//! validation limits, the shutdown flag, the idempotency keys in flight, the
//! API keys and the overload limits.

use crate::overload::{Overload, OverloadConfig};
use dofs_core::ports::Backend;
use dofs_core::Limits;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The router's state. Cheap to clone: every clone shares the same flag and keys.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    limits: Limits,
    shutting_down: AtomicBool,
    in_flight: InFlightKeys,
    keys: crate::auth::Keys,
    overload: Arc<Overload>,
}

impl AppState {
    /// State over a shape's ports, with the configured validation limits.
    pub fn new(backend: Backend, limits: Limits) -> Self {
        AppState {
            inner: Arc::new(Inner {
                backend,
                limits,
                shutting_down: AtomicBool::new(false),
                in_flight: InFlightKeys::default(),
                keys: crate::auth::Keys::default(),
                overload: Arc::new(Overload::new(OverloadConfig::default())),
            }),
        }
    }

    /// The same state with API keys required (see [`crate::auth`]).
    pub fn with_keys(self, keys: crate::auth::Keys) -> Self {
        let inner = &self.inner;
        AppState {
            inner: Arc::new(Inner {
                backend: inner.backend.clone(),
                limits: inner.limits,
                shutting_down: AtomicBool::new(inner.shutting_down.load(Ordering::SeqCst)),
                in_flight: InFlightKeys::default(),
                keys,
                overload: Arc::clone(&inner.overload),
            }),
        }
    }

    /// The same state with these overload limits (see [`crate::overload`]).
    pub fn with_overload(self, config: OverloadConfig) -> Self {
        let inner = &self.inner;
        AppState {
            inner: Arc::new(Inner {
                backend: inner.backend.clone(),
                limits: inner.limits,
                shutting_down: AtomicBool::new(inner.shutting_down.load(Ordering::SeqCst)),
                in_flight: InFlightKeys::default(),
                keys: inner.keys.clone(),
                overload: Arc::new(Overload::new(config)),
            }),
        }
    }

    /// The overload limits and their state.
    pub fn overload(&self) -> &Overload {
        &self.inner.overload
    }

    /// The configured API keys (hashed).
    pub fn keys(&self) -> &crate::auth::Keys {
        &self.inner.keys
    }

    /// From now on, new orders are refused with 503 `ShuttingDown` and
    /// `/ready` answers 503, so a load balancer stops sending traffic while
    /// requests already running finish. There is no way back.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether [`AppState::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// The shape's ports.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// The validation limits for submitted orders.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The idempotency keys whose requests are being processed now.
    pub(crate) fn in_flight(&self) -> &InFlightKeys {
        &self.inner.in_flight
    }
}

/// The set of `Idempotency-Key`s whose first request has not answered yet.
///
/// In memory and per process: the backend's own idempotency record covers
/// keys across processes and restarts; this set only turns a concurrent
/// duplicate into a clear 409 instead of a race inside the backend.
#[derive(Clone, Default)]
pub(crate) struct InFlightKeys {
    keys: Arc<Mutex<HashSet<String>>>,
}

impl InFlightKeys {
    /// Claims `key`, or `None` when another request holds it. The claim ends
    /// when the guard is dropped, also when the request is cancelled midway.
    pub(crate) fn claim(&self, key: &str) -> Option<InFlightGuard> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.insert(key.to_owned()) {
            Some(InFlightGuard {
                keys: Arc::clone(&self.keys),
                key: key.to_owned(),
            })
        } else {
            None
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A claimed idempotency key; released on drop.
pub(crate) struct InFlightGuard {
    keys: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_can_be_claimed_once_until_its_guard_is_dropped() {
        let keys = InFlightKeys::default();
        let first = keys.claim("k-1");
        assert!(first.is_some());
        assert!(keys.claim("k-1").is_none());
        assert!(keys.claim("k-2").is_some(), "other keys are independent");
        drop(first);
        assert!(keys.claim("k-1").is_some());
        assert_eq!(keys.len(), 0);
    }
}
