//! JSON log lines that carry the accepting request's id along an order's
//! whole journey.
//!
//! Lines logged while a request is served carry its `requestId` in their
//! span (see [`super::http`]). Lines logged later about the same order, by
//! the workflow engine and the fulfillment workers, run outside any request.
//! [`JourneyFormat`] wraps the JSON event format: it remembers which request
//! each order was accepted by (from any line naming both, such as "order
//! accepted") and adds `requestId` to every later line naming that `orderId`.
//! It also lifts a request line's `requestId` to the top level, so one field
//! selects every line of a request or of an order.
//!
//! The memory is per process and bounded ([`REMEMBERED`] orders, oldest
//! forgotten first): lines about an order accepted before a restart, or very
//! long ago, carry its `orderId` and `executionId` only.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How many orders' request ids are remembered.
pub const REMEMBERED: usize = 100_000;

/// A JSON event format (`inner`) whose lines gain `requestId`.
pub struct JourneyFormat<F> {
    inner: F,
    ids: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    by_order: HashMap<String, String>,
    oldest_first: VecDeque<String>,
    capacity: usize,
}

impl Remembered {
    fn remember(&mut self, order: &str, request: &str) {
        if self.by_order.contains_key(order) {
            return;
        }
        if self.oldest_first.len() >= self.capacity {
            if let Some(old) = self.oldest_first.pop_front() {
                self.by_order.remove(&old);
            }
        }
        self.by_order.insert(order.to_owned(), request.to_owned());
        self.oldest_first.push_back(order.to_owned());
    }
}

impl<F> JourneyFormat<F> {
    /// Wraps `inner`, which must write one JSON object per event.
    pub fn new(inner: F) -> Self {
        JourneyFormat::with_capacity(inner, REMEMBERED)
    }

    /// As [`JourneyFormat::new`], remembering at most `capacity` orders.
    pub fn with_capacity(inner: F, capacity: usize) -> Self {
        JourneyFormat {
            inner,
            ids: Mutex::new(Remembered {
                capacity: capacity.max(1),
                ..Remembered::default()
            }),
        }
    }

    /// The line with `requestId` added where it is known.
    fn enrich(&self, line: &str) -> Option<String> {
        if !line.contains("\"orderId\"") && !line.contains("\"requestId\"") {
            return None;
        }
        let mut value: Value = serde_json::from_str(line.trim_end()).ok()?;
        let order = value
            .get("orderId")
            .and_then(Value::as_str)
            .filter(|o| !o.is_empty())
            .map(str::to_owned);
        let from_span = value
            .pointer("/span/requestId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                value.get("spans")?.as_array()?.iter().rev().find_map(|s| {
                    s.get("requestId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
            });
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let request = match (&order, from_span) {
            (Some(o), Some(r)) => {
                ids.remember(o, &r);
                Some(r)
            }
            (Some(o), None) => ids.by_order.get(o).cloned(),
            (None, r) => r,
        };
        drop(ids);
        let request = request?;
        value
            .as_object_mut()?
            .insert("requestId".into(), Value::String(request));
        Some(format!("{value}\n"))
    }
}

impl<S, N, F> FormatEvent<S, N> for JourneyFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match self.enrich(&line) {
            Some(enriched) => writer.write_str(&enriched),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(capacity: usize, log: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .map_event_format(|f| JourneyFormat::with_capacity(f, capacity))
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn later_lines_about_an_order_carry_the_request_that_accepted_it() {
        let lines = lines_of(10, || {
            tracing::info_span!("request", requestId = "req-1").in_scope(|| {
                tracing::info!(orderId = "o-1", executionId = "o-1", "order accepted");
                tracing::info!("no order named here");
            });
            tracing::info!(orderId = "o-1", executionId = "o-1", "fulfillment attempt");
            tracing::info!(orderId = "o-2", "an order no request was seen for");
            tracing::info!("nothing about orders");
        });
        let request: Vec<Option<&str>> = lines.iter().map(|l| l["requestId"].as_str()).collect();
        assert_eq!(
            request,
            [Some("req-1"), Some("req-1"), Some("req-1"), None, None]
        );
        assert_eq!(lines[2]["message"], "fulfillment attempt");
        assert_eq!(lines[2]["executionId"], "o-1");
    }

    #[test]
    fn the_oldest_orders_are_forgotten_first() {
        let lines = lines_of(2, || {
            for (order, request) in [("o-1", "r-1"), ("o-2", "r-2"), ("o-3", "r-3")] {
                tracing::info_span!("request", requestId = request)
                    .in_scope(|| tracing::info!(orderId = order, "order accepted"));
            }
            for order in ["o-1", "o-2", "o-3"] {
                tracing::info!(orderId = order, "later");
            }
        });
        let later: Vec<Option<&str>> = lines[3..].iter().map(|l| l["requestId"].as_str()).collect();
        assert_eq!(later, [None, Some("r-2"), Some("r-3")]);
    }
}
