//! The load: concurrent clients submitting orders, and the sampler that
//! watches order statuses never move backwards.

use super::*;

/// What the load, the sampler and the controller share.
pub(super) struct Shared {
    pub(super) base: RwLock<Option<String>>,
    pub(super) acked: Mutex<Vec<String>>,
    pub(super) acked_count: AtomicUsize,
    pub(super) stop_load: AtomicBool,
    pub(super) stop_sampler: AtomicBool,
    pub(super) statuses: Mutex<HashMap<u16, usize>>,
    pub(super) connect_errors: AtomicUsize,
    pub(super) samples: AtomicUsize,
    pub(super) backwards: Mutex<Vec<String>>,
}

impl Shared {
    pub(super) fn base(&self) -> Option<String> {
        self.base.read().ok().and_then(|b| b.clone())
    }
    pub(super) fn set_base(&self, base: Option<String>) {
        if let Ok(mut b) = self.base.write() {
            *b = base;
        }
    }
}

pub(super) async fn client(index: usize, shared: Arc<Shared>) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let mut n: u64 = 0;
    while !shared.stop_load.load(Ordering::Relaxed) {
        let Some(base) = shared.base() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        n += 1;
        let body = format!(
            r#"{{"customerId":"CUST-{:04}","productId":"PROD-{:04}","quantity":{},"price":{}.{:02},"metadata":{{"source":"kill-campaign"}}}}"#,
            1000 + index,
            2000 + n % 50,
            1 + n % 5,
            1 + n % 90,
            n % 100
        );
        let sent = http
            .post(format!("{base}/order"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                if let Ok(mut s) = shared.statuses.lock() {
                    *s.entry(status).or_default() += 1;
                }
                if status == 202 {
                    let id = r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["orderId"].as_str().map(str::to_owned));
                    if let Some(id) = id {
                        if let Ok(mut a) = shared.acked.lock() {
                            a.push(id);
                        }
                        shared.acked_count.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Err(_) => {
                shared.connect_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Where an order is in its lifecycle, as the sampler saw it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Seen {
    pub(super) status: String,
}

pub(super) fn is_terminal(status: &str) -> bool {
    matches!(status, "FULFILLED" | "FAILED" | "CANCELLED")
}

/// Samples order statuses while the campaign runs and records any that moved
/// backwards in the lifecycle: a terminal status that changed (the campaign
/// runs no operator retry or redrive, the only ways out of `FAILED` but a
/// cancel, which it does run).
/// `PENDING` and `PROCESSING` alternate legitimately between attempts.
pub(super) async fn sampler(
    shared: Arc<Shared>,
    seed: u64,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut rng = Rng::new(seed ^ 0x5a5a);
    while !shared.stop_sampler.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(base) = shared.base() else { continue };
        let mut observed: Vec<(String, Seen)> = Vec::new();
        let picks: Vec<String> = match shared.acked.lock() {
            Ok(a) if !a.is_empty() => (0..16)
                .map(|_| a[rng.range(0, a.len() as u64 - 1) as usize].clone())
                .collect(),
            _ => Vec::new(),
        };
        for id in picks {
            let Ok(r) = http.get(format!("{base}/orders/{id}")).send().await else {
                break;
            };
            if r.status().as_u16() == 404 {
                if let Ok(mut b) = shared.backwards.lock() {
                    b.push(format!("acknowledged order {id} answered 404"));
                }
                continue;
            }
            if let Ok(v) = r.json::<Value>().await {
                if let Some(s) = seen_of(&v) {
                    observed.push((id, s));
                }
            }
        }
        if let Ok(r) = http.get(format!("{base}/orders?limit=100")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                for o in v["items"].as_array().into_iter().flatten() {
                    if let (Some(id), Some(s)) = (o["orderId"].as_str(), seen_of(o)) {
                        observed.push((id.to_owned(), s));
                    }
                }
            }
        }
        let Ok(mut seen) = seen.lock() else { return };
        for (id, now) in observed {
            shared.samples.fetch_add(1, Ordering::Relaxed);
            if let Some(before) = seen.get(&id) {
                if let Some(why) = backwards(&before.status, &now.status) {
                    if let Ok(mut b) = shared.backwards.lock() {
                        b.push(format!("order {id}: {why}"));
                    }
                }
            }
            seen.insert(id, now);
        }
    }
}

pub(super) fn seen_of(order: &Value) -> Option<Seen> {
    Some(Seen {
        status: order["status"].as_str()?.to_owned(),
    })
}

pub(super) fn backwards(before: &str, now: &str) -> Option<String> {
    let cancelled_failure = before == "FAILED" && now == "CANCELLED";
    if is_terminal(before) && now != before && !cancelled_failure {
        return Some(format!("{before} then {now}"));
    }
    None
}
