//! Delivers the order events to each `events.webhook_urls` entry, signed
//! (Standard Webhooks), at least once, in order for each order.
//!
//! Each URL has its own deliverer and its own progress, the event id it has
//! delivered up to (`event_deliveries`). A deliverer reads the next window
//! of events after it (a read connection: intake never waits for it),
//! delivers the window's orders side by side and each order's events one
//! after the other, each retried with backoff until the receiver takes it
//! (2xx) or the event is older than `events.max_age_s` (then it is dropped
//! for that URL and counted), and only then records the window as delivered
//! (one small write). A crash or restart delivers the unrecorded part of a
//! window again: receivers de-duplicate by `webhook-id`, the event id.
//!
//! A URL seen for the first time starts after the newest event recorded at
//! that moment: it receives what happens from then on, not the backlog.

use crate::db::{sql_err, Db};
use crate::events::{events_after, last_seq};
use dofs_core::metric_names as names;
use dofs_core::{Clock, OrderEvent, OrderId};
use dofs_fulfillment::{PostResult, SignedPoster};
use futures_util::{stream, StreamExt};
use rusqlite::{params, OptionalExtension};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Events read and delivered per window.
pub const WINDOW: usize = 256;
/// Orders of a window delivered at once.
pub const PARALLEL_ORDERS: usize = 32;
/// The first retry's delay; it doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// How often an idle deliverer looks for new events.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Where events go and how they are signed.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    /// Signs (when it has a secret) and sends each delivery.
    pub poster: SignedPoster,
    /// How long an event is retried before it is dropped for a URL.
    pub max_age: Duration,
}

/// Forgets the progress of URLs no longer configured, so that the events
/// they never took do not wait for them (see [`crate::events`]' pruning).
pub async fn forget_other_urls(
    db: &Db,
    urls: &[String],
) -> Result<usize, dofs_core::ports::PortError> {
    let keep = urls.to_vec();
    db.write(move |conn| {
        let known: Vec<String> = conn
            .prepare_cached("SELECT url FROM event_deliveries")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(sql_err)?;
        let mut forgotten = 0;
        for url in known.iter().filter(|u| !keep.contains(u)) {
            forgotten += conn
                .prepare_cached("DELETE FROM event_deliveries WHERE url = ?1")
                .and_then(|mut st| st.execute([url]))
                .map_err(sql_err)?;
        }
        Ok(forgotten)
    })
    .await
}

/// Runs one deliverer per URL until `stop` turns true.
pub fn spawn(
    db: Db,
    config: WebhookConfig,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    config
        .urls
        .iter()
        .enumerate()
        .map(|(index, url)| {
            let deliverer = Deliverer {
                db: db.clone(),
                index: index.to_string(),
                url: url.clone(),
                poster: config.poster.clone(),
                max_age: config.max_age,
                clock: clock.clone(),
            };
            tokio::spawn(deliverer.run(stop.clone()))
        })
        .collect()
}

struct Deliverer {
    db: Db,
    /// Its place in `events.webhook_urls`: the metrics' label (never the URL).
    index: String,
    url: String,
    poster: SignedPoster,
    max_age: Duration,
    clock: Arc<dyn Clock>,
}

/// How one event's delivery to one URL ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Delivered,
    Dropped,
    /// Stopped before it was delivered: the window is not recorded.
    Stopped,
}

impl Deliverer {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let Ok(url) = reqwest::Url::parse(&self.url) else {
            tracing::error!(url = %self.url, "not a URL; its events are not delivered");
            return;
        };
        let mut after = loop {
            match self.progress().await {
                Ok(after) => break after,
                Err(e) => {
                    tracing::warn!(error = %e, url = %self.url, "cannot read webhook progress; retrying");
                    if pause(&mut stop, Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        while !*stop.borrow() {
            let window = self
                .db
                .read(move |conn| Ok((events_after(conn, after, WINDOW)?, last_seq(conn)?)))
                .await;
            let (events, newest) = match window {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, url = %self.url, "cannot read order events; retrying");
                    if pause(&mut stop, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            metrics::gauge!(names::EVENTS_PENDING, "webhook" => self.index.clone())
                .set((newest - after).max(0) as f64);
            let Some(last) = events.last().and_then(|e| e.id.parse::<i64>().ok()) else {
                if pause(&mut stop, IDLE_POLL).await {
                    return;
                }
                continue;
            };
            if !self.deliver_window(&url, events, &stop).await {
                return;
            }
            let recorded = self.record(last).await;
            match recorded {
                Ok(()) => after = last,
                Err(e) => {
                    // Delivered again after a restart, which receivers de-duplicate.
                    tracing::warn!(error = %e, url = %self.url, "cannot record webhook progress");
                    after = last;
                }
            }
        }
    }

    /// The event id delivered up to; for a new URL, the newest now.
    async fn progress(&self) -> Result<i64, dofs_core::ports::PortError> {
        let url = self.url.clone();
        self.db
            .write(move |conn| {
                let known: Option<i64> = conn
                    .prepare_cached("SELECT after_seq FROM event_deliveries WHERE url = ?1")
                    .and_then(|mut st| st.query_row([&url], |r| r.get(0)).optional())
                    .map_err(sql_err)?;
                if let Some(after) = known {
                    return Ok(after);
                }
                let newest = last_seq(conn)?;
                conn.prepare_cached(
                    "INSERT INTO event_deliveries (url, after_seq) VALUES (?1, ?2)",
                )
                .and_then(|mut st| st.execute(params![url, newest]))
                .map_err(sql_err)?;
                Ok(newest)
            })
            .await
    }

    async fn record(&self, last: i64) -> Result<(), dofs_core::ports::PortError> {
        let url = self.url.clone();
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE event_deliveries SET after_seq = ?2 WHERE url = ?1 AND after_seq < ?2",
                )
                .and_then(|mut st| st.execute(params![url, last]))
                .map(|_| ())
                .map_err(sql_err)
            })
            .await
    }

    /// Delivers a window: its orders side by side, each order's events in
    /// order. False when stopped before the window was through.
    async fn deliver_window(
        &self,
        url: &reqwest::Url,
        events: Vec<OrderEvent>,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        let mut by_order: BTreeMap<OrderId, Vec<OrderEvent>> = BTreeMap::new();
        for e in events {
            by_order.entry(e.order_id()).or_default().push(e);
        }
        let results: Vec<bool> = stream::iter(by_order.into_values())
            .map(|events| {
                let mut stop = stop.clone();
                async move {
                    for e in &events {
                        if self.deliver(url, e, &mut stop).await == Delivery::Stopped {
                            return false;
                        }
                    }
                    true
                }
            })
            .buffer_unordered(PARALLEL_ORDERS)
            .collect()
            .await;
        results.into_iter().all(|done| done)
    }

    /// Delivers one event, retrying with backoff until it is taken or too old.
    async fn deliver(
        &self,
        url: &reqwest::Url,
        event: &OrderEvent,
        stop: &mut watch::Receiver<bool>,
    ) -> Delivery {
        let body = match serde_json::to_string(&dofs_wire::OrderEvent::from(event)) {
            Ok(body) => body,
            // Strings, numbers and JSON values only: not seen in practice.
            Err(e) => {
                tracing::error!(eventId = %event.id, error = %e, "an order event cannot be written as JSON; not delivered");
                metrics::counter!(names::EVENTS_DELIVERED, "outcome" => "dropped").increment(1);
                return Delivery::Dropped;
            }
        };
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            let result = self.poster.post(url, &event.id, &[], body.clone()).await;
            let (wait, why) = match result {
                PostResult::Response(r) if (200..300).contains(&r.status) => {
                    metrics::counter!(names::EVENTS_DELIVERED, "outcome" => "success").increment(1);
                    return Delivery::Delivered;
                }
                PostResult::Response(r) => (
                    r.retry_after.map_or(delay, |ra| ra.max(delay)),
                    format!("HTTP {}", r.status),
                ),
                PostResult::Transport(t) => (delay, t.to_string()),
            };
            metrics::counter!(names::EVENTS_DELIVERED, "outcome" => "failure").increment(1);
            let age_ms = self.clock.now().millis() - event.occurred_at.millis();
            if age_ms > crate::queue::ms(self.max_age) {
                metrics::counter!(names::EVENTS_DELIVERED, "outcome" => "dropped").increment(1);
                tracing::warn!(url = %self.url, eventId = %event.id, orderId = %event.order_id(), "an order event was dropped for a webhook: older than events.max_age_s");
                let url = self.url.clone();
                let dropped = self
                    .db
                    .write(move |conn| {
                        conn.prepare_cached(
                            "UPDATE event_deliveries SET dropped = dropped + 1 WHERE url = ?1",
                        )
                        .and_then(|mut st| st.execute([url]))
                        .map(|_| ())
                        .map_err(sql_err)
                    })
                    .await;
                if let Err(e) = dropped {
                    tracing::warn!(error = %e, "cannot count a dropped event");
                }
                return Delivery::Dropped;
            }
            tracing::debug!(url = %self.url, eventId = %event.id, error = %why, "webhook delivery failed; retrying");
            if pause(stop, wait.min(MAX_RETRY_DELAY)).await {
                return Delivery::Stopped;
            }
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }
}

/// Sleeps for `d`; true when `stop` turned true meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
    *stop.borrow()
}
