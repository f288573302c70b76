//! Real HTTP receivers on `127.0.0.1:0` for the integration tests, and a
//! sample order.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use dofs_core::{CustomerId, NewOrder, Order, OrderId, Price, ProductId, Timestamp};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// What a receiver answers to every request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Waited before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_owned();
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A running receiver: its URL and what it has received so far.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("not poisoned").clone()
    }
}

type Shared = (Reply, Arc<Mutex<Vec<Received>>>);

async fn record(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (reply, log) = &*shared;
    log.lock()
        .expect("not poisoned")
        .push(Received { headers, body });
    tokio::time::sleep(reply.delay).await;
    let status = StatusCode::from_u16(reply.status).expect("a valid status");
    let mut response = (status, reply.body.clone()).into_response();
    for (name, value) in &reply.headers {
        response
            .headers_mut()
            .insert(*name, value.parse().expect("a valid header value"));
    }
    response
}

/// Starts a receiver answering `reply` to every request at any path.
pub async fn spawn_receiver(reply: Reply) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/fulfill", listener.local_addr().expect("addr"));
    let received = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .fallback(record)
        .with_state(Arc::new((reply, received.clone())));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, received }
}

/// A URL where nothing listens: a port bound and then released.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/fulfill")
}

/// A URL whose listener accepts connections and closes them unanswered.
pub async fn hang_up_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    format!("http://{addr}/fulfill")
}

/// A `PENDING` order as the service would hold it.
pub fn sample_order() -> Order {
    let new = NewOrder {
        customer_id: CustomerId::parse("CUST-1001").expect("id"),
        product_id: ProductId::parse("PROD-2001").expect("id"),
        quantity: 2,
        price: Price::from_cents(2999),
        metadata: None,
    };
    Order::new(
        OrderId::generate(),
        new,
        "arn:test:execution:1".into(),
        Timestamp(1_795_874_400_000),
    )
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}
