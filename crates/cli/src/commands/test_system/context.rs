//! What the checks share: a request as a check describes it ([`Req`]), the
//! context that sends it and records its answer for the OpenAPI check
//! ([`Ctx`]), order bodies, and answer expectations.

use super::*;

/// A request as a check describes it.
pub(super) struct Req {
    pub(super) method: Method,
    /// The OpenAPI path template, for the conformance check.
    pub(super) template: &'static str,
    pub(super) path: String,
    pub(super) content_type: Option<String>,
    pub(super) body: Option<Vec<u8>>,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl Req {
    pub(super) fn get(template: &'static str, path: impl Into<String>) -> Req {
        Req {
            method: Method::GET,
            template,
            path: path.into(),
            content_type: None,
            body: None,
            headers: Vec::new(),
        }
    }

    pub(super) fn post(template: &'static str, path: impl Into<String>) -> Req {
        Req {
            method: Method::POST,
            ..Req::get(template, path)
        }
    }

    /// `POST /order` with a JSON body, byte for byte.
    pub(super) fn order(body: impl Into<Vec<u8>>) -> Req {
        Req::post("/order", "/order").json(body)
    }

    pub(super) fn json(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.content_type = Some("application/json".into());
        self.body = Some(body.into());
        self
    }

    pub(super) fn content_type(mut self, ct: Option<&str>) -> Req {
        self.content_type = ct.map(str::to_owned);
        self
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }
}

pub(super) struct Ctx {
    pub(super) api: Api,
    pub(super) spec: Option<Spec>,
    pub(super) conformance: Mutex<Conformance>,
    pub(super) max_quantity: u32,
    pub(super) max_price_cents: u64,
}

impl Ctx {
    /// Sends a request; records its answer for the OpenAPI check.
    pub(super) async fn call(&self, req: Req) -> Result<Reply, String> {
        let mut builder = self.api.request(req.method.clone(), &req.path);
        if let Some(ct) = &req.content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let reply = self.api.send(builder).await.map_err(|e| e.to_string())?;
        if let Some(spec) = &self.spec {
            let answer = crate::commands::openapi::Answer {
                status: reply.status,
                content_type: reply.header("content-type").unwrap_or_default(),
                body: &reply.body,
            };
            let outcome = spec.check(req.method.as_str(), req.template, &answer);
            self.conformance
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(req.method.as_str(), req.template, reply.status, outcome);
        }
        Ok(reply)
    }

    pub(super) async fn submit(&self, body: impl Into<Vec<u8>>) -> Result<Reply, String> {
        self.call(Req::order(body)).await
    }

    /// A valid order accepted; its id.
    pub(super) async fn accepted(&self, body: impl Into<Vec<u8>>) -> Result<String, String> {
        let r = self.submit(body).await?;
        expect_status(&r, 202)?;
        r.json()["orderId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the 202 body has no orderId".to_owned())
    }
}

/// A body that is the seed's valid order with fields replaced (`Some(raw JSON)`)
/// or removed (`None`), written as text so numbers keep their exact form.
pub(super) fn order_with(edits: &[(&str, Option<&str>)]) -> String {
    let mut fields: Vec<(String, String)> = [
        ("customerId", r#""CUST-1001""#),
        ("productId", r#""PROD-2001""#),
        ("quantity", "2"),
        ("price", "29.99"),
        ("metadata", r#"{"source":"dofs-test-system"}"#),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (key, value) in edits {
        match (fields.iter().position(|(k, _)| k == key), value) {
            (Some(i), Some(v)) => fields[i].1 = (*v).to_owned(),
            (Some(i), None) => {
                fields.remove(i);
            }
            (None, Some(v)) => fields.push(((*key).to_owned(), (*v).to_owned())),
            (None, None) => {}
        }
    }
    let parts: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", parts.join(","))
}

pub(super) fn seed_order() -> String {
    order_with(&[])
}

pub(super) fn excerpt(r: &Reply) -> String {
    let body = String::from_utf8_lossy(&r.body);
    crate::commands::format::truncate(body.trim(), 160)
}

pub(super) fn expect_status(r: &Reply, want: u16) -> Result<(), String> {
    if r.status == want {
        Ok(())
    } else {
        Err(format!("expected {want}, got {}: {}", r.status, excerpt(r)))
    }
}

/// The status, the JSON error name, and every field in `fields` among the details.
pub(super) fn expect_error(
    r: &Reply,
    status: u16,
    name: &str,
    fields: &[&str],
) -> Result<String, String> {
    expect_status(r, status)?;
    let body = r.json();
    if body["error"] != name {
        return Err(format!("expected error {name}, got {}", excerpt(r)));
    }
    if !body["message"].is_string() {
        return Err(format!("the error has no message: {}", excerpt(r)));
    }
    let listed: Vec<&str> = body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["field"].as_str())
        .collect();
    let missing: Vec<&&str> = fields.iter().filter(|f| !listed.contains(f)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "details should name {missing:?}, they name {listed:?}"
        ));
    }
    Ok(if fields.is_empty() {
        format!("{status} {name}")
    } else {
        format!("{status} {name} naming {}", fields.join(", "))
    })
}
