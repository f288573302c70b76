//! Checking real answers against a deployment's own `GET /openapi.json`:
//! for the operation (method and path template) and the status code, the
//! documented JSON schema must accept the body.
//!
//! In strict mode, which `test-system` uses, every object schema that lists
//! its properties is closed (`additionalProperties: false` unless it says
//! otherwise), so a field the server sends but the document does not describe
//! is a mismatch too.
//!
//! The module depends on nothing else in the crate, so that the black-box
//! tests can include it as is.

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// An answer to check: status, `Content-Type` and body.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// A deployment's OpenAPI document, ready to check answers against.
pub struct Spec {
    doc: Value,
    strict: bool,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Spec {
    /// Takes a document; it must be OpenAPI 3.1 with `paths`.
    pub fn new(doc: Value, strict: bool) -> Result<Spec, String> {
        let version = doc["openapi"].as_str().unwrap_or_default();
        if !version.starts_with("3.1") {
            return Err(format!(
                "not an OpenAPI 3.1 document (openapi: {})",
                doc["openapi"]
            ));
        }
        if !doc["paths"].is_object() {
            return Err("the document has no paths".into());
        }
        Ok(Spec {
            doc,
            strict,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// The document.
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Whether `method path` (a template such as `/orders/{orderId}`) is described.
    pub fn has(&self, method: &str, path: &str) -> bool {
        self.doc["paths"][path][method.to_ascii_lowercase()].is_object()
    }

    /// Checks one answer to `method template`. An undocumented method on a
    /// documented path may answer a JSON 405, and an undocumented path a JSON
    /// 404: both must match the `Error` schema.
    pub fn check(&self, method: &str, template: &str, reply: &Answer<'_>) -> Result<(), String> {
        let method = method.to_ascii_lowercase();
        let what = format!(
            "{} {template} → {}",
            method.to_ascii_uppercase(),
            reply.status
        );
        let item = &self.doc["paths"][template];
        let op = &item[&method];
        if !op.is_object() {
            let fallback = (reply.status == 405 && item.is_object())
                || (reply.status == 404 && !item.is_object());
            if !fallback {
                return Err(format!("{what}: the operation is not documented"));
            }
            let schema = json!({"$ref": "#/components/schemas/Error"});
            return self.validate(&format!("fallback {}", reply.status), &schema, reply, &what);
        }
        let responses = &op["responses"];
        let status = reply.status.to_string();
        let class = format!("{}XX", reply.status / 100);
        let Some(response) = [status.as_str(), class.as_str(), "default"]
            .iter()
            .map(|k| &responses[*k])
            .find(|r| r.is_object())
        else {
            let documented: Vec<&String> = responses
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            return Err(format!(
                "{what}: status not documented (documented: {documented:?})"
            ));
        };
        let response = self.resolve(response);
        let content_type = reply.content_type;
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let documented = &response["content"];
        if essence == "application/json" {
            let schema = &documented["application/json"]["schema"];
            if !schema.is_object() {
                return Err(format!(
                    "{what}: answered JSON, but no JSON body is documented"
                ));
            }
            let key = format!("{method} {template} {status}");
            self.validate(&key, schema, reply, &what)
        } else if reply.body.is_empty()
            || documented.get(&essence).is_some()
            || documented
                .as_object()
                .is_some_and(|m| m.keys().any(|k| essence.starts_with(k.as_str())))
        {
            Ok(())
        } else {
            Err(format!(
                "{what}: answered {content_type:?}, documented: {:?}",
                documented
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            ))
        }
    }

    /// A response object, following a `$ref` into `components/responses`.
    fn resolve<'a>(&'a self, response: &'a Value) -> &'a Value {
        match response["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/responses/"))
        {
            Some(name) => &self.doc["components"]["responses"][name],
            None => response,
        }
    }

    fn validate(
        &self,
        key: &str,
        schema: &Value,
        reply: &Answer<'_>,
        what: &str,
    ) -> Result<(), String> {
        let body: Value = serde_json::from_slice(reply.body)
            .map_err(|e| format!("{what}: the body is not JSON: {e}"))?;
        let validator = self.validator(key, schema)?;
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{e} (at {})", if at.is_empty() { "/" } else { &at })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: {}", errors.join("; ")))
        }
    }

    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let mut cache = self
            .validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = cache.get(key) {
            return Ok(v.clone());
        }
        // The schema with the document's components beside it, so that
        // `#/components/schemas/...` references resolve within one root.
        let mut root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"].clone(),
        });
        if let (Some(r), Some(s)) = (root.as_object_mut(), schema.as_object()) {
            for (k, v) in s {
                r.insert(k.clone(), v.clone());
            }
        }
        if self.strict {
            close_objects(&mut root);
        }
        let validator = jsonschema::draft202012::new(&root)
            .map_err(|e| format!("the documented schema for {key} does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(key.to_owned(), validator.clone());
        Ok(validator)
    }
}

/// Sets `additionalProperties: false` on every schema that lists
/// `properties` and says nothing about other properties.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("properties").is_some_and(Value::is_object)
                && !map.contains_key("additionalProperties")
                && !map.contains_key("unevaluatedProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (_, child) in map.iter_mut() {
                close_objects(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Every answer checked during a run, and the mismatches.
#[derive(Default)]
pub struct Conformance {
    /// (method, template, status) triples seen.
    pub seen: BTreeSet<(String, String, u16)>,
    pub checked: usize,
    pub mismatches: Vec<String>,
}

impl Conformance {
    /// Records the outcome of one check.
    pub fn record(
        &mut self,
        method: &str,
        template: &str,
        status: u16,
        outcome: Result<(), String>,
    ) {
        self.checked += 1;
        self.seen
            .insert((method.to_owned(), template.to_owned(), status));
        if let Err(m) = outcome {
            if !self.mismatches.contains(&m) {
                self.mismatches.push(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::new(
            json!({
                "openapi": "3.1.0",
                "paths": {"/things/{id}": {"get": {"responses": {
                    "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                    "404": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                }}}},
                "components": {"schemas": {
                    "Thing": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                    "Error": {"type": "object", "required": ["error", "message"],
                              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}
                }}
            }),
            true,
        )
        .expect("3.1")
    }

    fn reply(status: u16, body: Value) -> (u16, String) {
        (status, body.to_string())
    }

    fn answer((status, body): &(u16, String)) -> Answer<'_> {
        Answer {
            status: *status,
            content_type: "application/json",
            body: body.as_bytes(),
        }
    }

    #[test]
    fn a_documented_answer_passes_and_a_wrong_type_is_reported_with_its_place() {
        let spec = spec();
        assert_eq!(
            spec.check(
                "GET",
                "/things/{id}",
                &answer(&reply(200, json!({"id": "a"})))
            ),
            Ok(())
        );
        let e = spec
            .check(
                "GET",
                "/things/{id}",
                &answer(&reply(200, json!({"id": 1}))),
            )
            .expect_err("wrong type");
        assert!(e.contains("/id"), "{e}");
    }

    #[test]
    fn strict_mode_reports_fields_the_document_does_not_describe() {
        let e = spec()
            .check(
                "GET",
                "/things/{id}",
                &answer(&reply(200, json!({"id": "a", "extra": true}))),
            )
            .expect_err("undocumented field");
        assert!(e.contains("extra"), "{e}");
    }

    #[test]
    fn an_undocumented_status_or_operation_is_a_mismatch() {
        let spec = spec();
        let e = spec
            .check(
                "GET",
                "/things/{id}",
                &answer(&reply(500, json!({"error": "x", "message": "y"}))),
            )
            .expect_err("500 undocumented");
        assert!(e.contains("status not documented"), "{e}");
        assert!(spec
            .check("POST", "/things/{id}", &answer(&reply(201, json!({}))))
            .is_err());
        let fallback = reply(405, json!({"error": "MethodNotAllowed", "message": "no"}));
        assert_eq!(
            spec.check("POST", "/things/{id}", &answer(&fallback)),
            Ok(())
        );
    }

    #[test]
    fn only_openapi_3_1_documents_are_accepted() {
        assert!(Spec::new(json!({"openapi": "3.0.3", "paths": {}}), true).is_err());
        assert!(Spec::new(json!({"swagger": "2.0"}), true).is_err());
    }
}
