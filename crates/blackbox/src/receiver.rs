//! A real HTTP receiver for the tests of the `http` fulfillment mode and of
//! event webhooks: it listens on `127.0.0.1`, records every request, and
//! answers as the test's script says. It can stop listening (connections are
//! then refused) and listen again on the same port.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Request {
    /// When it arrived.
    pub at: Instant,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as sent.
    pub raw: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The status the receiver answered (200 after a [`Reply::Hang`]).
    pub answered: u16,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it carries a Standard Webhooks signature of its body that
    /// `secret` (`whsec_...`) verifies now.
    pub fn verify(&self, secret: &str) -> Result<(), String> {
        let secret = dofs_fulfillment::Secret::parse(secret).map_err(|e| e.to_string())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        dofs_fulfillment::verify(
            &secret,
            self.header("webhook-id").unwrap_or_default(),
            self.header("webhook-timestamp").unwrap_or_default(),
            self.header("webhook-signature").unwrap_or_default(),
            self.raw.as_bytes(),
            now,
        )
        .map_err(|e| format!("{e:?}"))
    }

    /// Whether the receiver took it (answered 2xx).
    pub fn taken(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// What the receiver answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status, a body and extra headers.
    Status(u16, String, Vec<(&'static str, String)>),
    /// Waits this long, then answers 200 (longer than the caller's timeout, it hangs).
    Hang(Duration),
}

impl Reply {
    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Reply {
        Reply::Status(200, body.to_string(), Vec::new())
    }

    /// `status` with a short text body.
    pub fn status(status: u16) -> Reply {
        Reply::Status(
            status,
            format!("status {status} from the test receiver"),
            Vec::new(),
        )
    }
}

/// Decides the answer to a request, given the requests recorded before it.
pub type Script = Arc<dyn Fn(&Request, &[Request]) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Script>>,
}

/// A running receiver.
pub struct Receiver {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    port: u16,
    shared: Shared,
    server: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver on a free port.
    pub async fn start(script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let shared = Shared {
            log: Arc::default(),
            script: Arc::new(Mutex::new(script)),
        };
        let mut r = Receiver {
            base: format!("http://127.0.0.1:{port}"),
            port,
            shared,
            server: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Answers from now on as `script` says.
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().expect("script") = script;
    }

    /// Stops listening: connections are refused until [`Receiver::resume`].
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        let started = Instant::now();
        loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => {
                    self.serve(listener);
                    return;
                }
                Err(e) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "cannot listen again on port {}: {e}",
                        self.port
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().expect("log").clone()
    }

    /// The `webhook-id`s of the requests it took (answered 2xx).
    pub fn taken_ids(&self) -> std::collections::HashSet<String> {
        self.requests()
            .iter()
            .filter(|r| r.taken())
            .filter_map(|r| r.header("webhook-id").map(str::to_owned))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn handle(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let request = Request {
        at: Instant::now(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
        answered: 0,
    };
    let reply = {
        let mut log = shared.log.lock().expect("log");
        let script = shared.script.lock().expect("script").clone();
        let reply = script(&request, &log);
        let mut request = request;
        request.answered = match &reply {
            Reply::Status(status, _, _) => *status,
            Reply::Hang(_) => 200,
        };
        log.push(request);
        reply
    };
    match reply {
        Reply::Status(status, body, extra) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (code, body).into_response();
            for (name, value) in extra {
                if let Ok(v) = value.parse() {
                    response.headers_mut().insert(name, v);
                }
            }
            response
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, "{}").into_response()
        }
    }
}
