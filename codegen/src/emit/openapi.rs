//! OpenAPI 3.1, one document per contract major version.
//!
//! The JSON Schema fragments come from `json_schema`; the document's layout is the askama
//! template `templates/openapi.yaml`.
//!
//! The document describes exactly what the generated router binds (see `emit::rest`): path
//! parameters, query parameters on GET/HEAD/DELETE, a JSON body otherwise, problem+json errors.

use super::json_schema::{per_contract, q, Flavour, Schemas};
use super::GeneratedFile;
use crate::ir::{
    Contract, Field, Idempotency, Ir, Operation, Place, SchemeKind, TypeKind, TypeRef,
};
use askama::Template;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Template)]
#[template(path = "openapi.yaml", escape = "none")]
struct Document {
    source: String,
    title: String,
    version: String,
    description: String,
    owner: String,
    service: String,
    paths: Vec<PathItem>,
    schemas: Vec<(String, String)>,
    /// `components.securitySchemes`: the contract's `auth.schemes`.
    security_schemes: Vec<(String, String)>,
}

struct PathItem {
    path: String,
    ops: Vec<OpItem>,
}

struct OpItem {
    method: String,
    id: String,
    summary: String,
    description: Option<String>,
    deprecated: bool,
    parameters: Vec<String>,
    request_body: Option<String>,
    responses: Vec<(u16, String)>,
    extensions: Vec<(String, String)>,
    /// `security`: any one of the schemes it accepts (`[]`: public), when the contract has
    /// `auth`.
    security: Option<String>,
}

/// One OpenAPI document per contract that has REST operations: `<service>.v<major>.yaml`.
pub fn documents(ir: &Ir) -> Result<Vec<GeneratedFile>, String> {
    per_contract(
        ir,
        |c| c.operations.iter().any(|o| o.rest.is_some()),
        ".yaml",
        "OpenAPI",
        |c| document(ir, c),
    )
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details. Declared errors add `code` and their fields; constraint violations add `violations`.",
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "code": {"type": "string"},
            "violations": {"type": "array", "items": {
                "type": "object",
                "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}},
                "required": ["pointer", "message"]
            }}
        },
        "required": ["type", "title", "status"]
    })
}

fn problem_response(description: &str, schema: Value) -> String {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": schema}}
    })
    .to_string()
}

/// The `Idempotency-Key` values the generated servers accept (`pactum::wire::
/// IDEMPOTENCY_KEY_PATTERN`; a test feeds every document's schema back to a server).
const IDEMPOTENCY_KEY_PATTERN: &str = r#"^(?:"(?:[ !#-\[\]-~]|\\["\\]){1,255}"|[!#-~]{1,255})$"#;

fn problem_ref() -> Value {
    json!({"$ref": "#/components/schemas/Problem"})
}

fn operation(s: &mut Schemas<'_>, c: &Contract, op: &Operation) -> OpItem {
    let route = op.rest.as_ref().expect("REST operations only");
    let fields: Vec<Field> = op
        .input
        .as_ref()
        .and_then(|i| c.types.iter().find(|t| t.name == i.name))
        .and_then(|t| match &t.kind {
            TypeKind::Struct(f) => Some(f.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let mut parameters = Vec::new();
    let mut body_fields = Vec::new();
    for f in &fields {
        let (ty, optional) = match &f.ty {
            TypeRef::Optional(inner) => (&**inner, true),
            other => (other, false),
        };
        let location = match route.place(&f.wire_name) {
            Place::Path => "path",
            Place::Query => "query",
            Place::Body => {
                body_fields.push(f.clone());
                continue;
            }
        };
        let mut p = json!({
            "name": f.wire_name,
            "in": location,
            "required": location == "path" || !optional,
            "schema": s.constrained(ty, &f.constraints),
        });
        if let Some(d) = &f.docs {
            p["description"] = json!(d.trim());
        } else if let Some(pg) = op
            .paginate
            .as_ref()
            .filter(|pg| pg.cursor_wire == f.wire_name)
        {
            p["description"] = json!(format!(
                "Opaque page cursor: the `{}` of the previous page, unchanged; none for the first page.",
                pg.next_wire
            ));
        }
        if matches!(ty, TypeRef::List(_)) {
            p["style"] = json!("form");
            p["explode"] = json!(true);
        }
        parameters.push(p.to_string());
    }
    if op.idempotency == Idempotency::Key {
        parameters.push(
            json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": true,
                "description": "The call's idempotency key: 1-255 visible ASCII characters, as a bare token (8e03978e-40d5-43e8-bc93-6894a57f9324, as Stripe-style clients send) or an RFC 8941 string (\"8e03978e-40d5-43e8-bc93-6894a57f9324\", as the IETF draft sends); both name the same key. Retries reuse it; a completed key replays the stored reply; the same key with another payload is refused with 422.",
                "schema": {
                    "type": "string",
                    "pattern": IDEMPOTENCY_KEY_PATTERN,
                    "maxLength": 512,
                    "examples": ["8e03978e-40d5-43e8-bc93-6894a57f9324", "\"8e03978e-40d5-43e8-bc93-6894a57f9324\""]
                }
            })
            .to_string(),
        );
    }
    let request_body = (!body_fields.is_empty()).then(|| {
        // The whole input as body: reference the named type; otherwise the remaining fields.
        let schema = match &op.input {
            Some(i) if body_fields.len() == fields.len() => s.reference(i),
            _ => s.object(&body_fields, None, false),
        };
        json!({"required": true, "content": {"application/json": {"schema": schema}}}).to_string()
    });
    let mut responses: BTreeMap<u16, String> = BTreeMap::new();
    match &op.output {
        // A server stream over REST: Server-Sent Events, one item per event. OpenAPI 3.1 has
        // no field for an event's schema (3.2's `itemSchema`), so it rides in an extension.
        Some(t) if op.streaming == crate::ir::Streaming::Server => {
            let item = s.ty(t);
            let mut description = String::from(
                "Success: a stream of Server-Sent Events. Each item is one event whose `data` is its JSON; an `end` event closes a finished stream, a `problem` event (an RFC 9457 problem as `data`) one that failed.",
            );
            if let Some(r) = &op.resume {
                description.push_str(&format!(
                    " Each event's `id` is the item's `{}`: reconnect with `Last-Event-ID` to continue after it (it arrives as `{}`).",
                    r.id_wire, r.after_wire
                ));
            }
            responses.insert(
                200,
                json!({"description": description, "content": {"text/event-stream": {
                    "schema": {"type": "string"},
                    "x-pactum-event-data": item,
                }}})
                .to_string(),
            );
        }
        Some(t) => {
            let schema = s.ty(t);
            responses.insert(
                200,
                json!({"description": "Success.", "content": {"application/json": {"schema": schema}}}).to_string(),
            );
        }
        None => {
            responses.insert(
                204,
                json!({"description": "Success, no content."}).to_string(),
            );
        }
    }
    // Declared errors, grouped by status (several may share one).
    let mut declared: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for e in &op.errors {
        if let Some(def) = c.errors.iter().find(|d| &d.name == e) {
            declared
                .entry(def.status.http_status())
                .or_default()
                .push(&def.name);
        }
    }
    let mut generic = vec![
        (
            400,
            if op.idempotency == Idempotency::Key {
                "Malformed request (bad JSON, a missing or malformed Idempotency-Key)."
            } else {
                "Malformed request (bad JSON)."
            },
        ),
        (422, "Invalid input: wrong types, missing fields, unknown enum values, constraint violations."),
        (504, "The deadline passed before the operation finished."),
        (500, "The server failed."),
    ];
    if !op.auth.is_empty() {
        generic.push((
            401,
            "No credentials, or none that prove anything (see WWW-Authenticate).",
        ));
        generic.push((403, "The credentials are good, but not for this operation."));
    }
    if !body_fields.is_empty() {
        generic.push((413, "Request body too large."));
        generic.push((415, "The body is not JSON."));
    }
    if op.idempotency == Idempotency::Key {
        generic.push((
            409,
            "A request with this Idempotency-Key is still being processed; retry after Retry-After.",
        ));
        generic.push((
            503,
            "The idempotency store is unavailable; nothing was done; retry after Retry-After.",
        ));
    }
    for (status, names) in &declared {
        let mut variants: Vec<Value> = names
            .iter()
            .map(|n| json!({"allOf": [problem_ref(), {"$ref": format!("#/components/schemas/{n}")}]}))
            .collect();
        let mut description = format!("Declared error: {}.", names.join(", "));
        // A status the server also uses for its own replies (a 400 for a missing key, a 409
        // for a key in flight…) carries either shape. `anyOf`, not `oneOf`: a declared error
        // is a problem document too, so it matches both branches.
        let builtin = generic.iter().find(|(g, _)| g == status);
        if let Some((_, text)) = builtin {
            variants.push(problem_ref());
            description = format!("{description} Or: {text}");
        }
        let schema = match (variants.len(), builtin.is_some()) {
            (1, _) => variants.remove(0),
            (_, true) => json!({"anyOf": variants}),
            (_, false) => json!({"oneOf": variants}),
        };
        responses.insert(*status, problem_response(&description, schema));
    }
    for (status, text) in generic {
        responses
            .entry(status)
            .or_insert_with(|| problem_response(text, problem_ref()));
    }
    let mut extensions = vec![
        ("x-pactum-safe".to_string(), json!(op.safe).to_string()),
        (
            "x-pactum-idempotency".to_string(),
            q(if op.idempotency == Idempotency::Key {
                "key"
            } else {
                "none"
            }),
        ),
    ];
    if let Some(ns) = op.deadline_ns {
        extensions.push((
            "x-pactum-deadline-ms".to_string(),
            json!(ns as f64 / 1e6).to_string(),
        ));
    }
    if let Some(p) = &op.paginate {
        // Which fields page (as AutoRest's `x-ms-pageable` and Speakeasy's `x-speakeasy-pagination`
        // say it), so tools can walk every page; the cursor is opaque and sealed.
        let mut pagination = json!({
            "cursor": p.cursor_wire,
            "next": p.next_wire,
            "items": p.items_wire,
        });
        if let Some(size) = &p.size_wire {
            pagination["pageSize"] = json!(size);
        }
        extensions.push(("x-pactum-pagination".to_string(), pagination.to_string()));
    }
    if let Some(r) = &op.retry {
        extensions.push((
            "x-pactum-retry".to_string(),
            json!({"attempts": r.attempts, "initialBackoffMs": r.initial_ns as f64 / 1e6, "maxBackoffMs": r.max_ns as f64 / 1e6, "fullJitter": r.jitter == crate::ir::Jitter::Full}).to_string(),
        ));
    }
    OpItem {
        method: route.method.as_str().to_ascii_lowercase(),
        id: q(&op.name),
        summary: q(op
            .docs
            .as_deref()
            .map_or(op.name.as_str(), |d| d.lines().next().unwrap_or(""))),
        description: op
            .docs
            .as_deref()
            .filter(|d| d.trim().lines().count() > 1)
            .map(|d| q(d.trim())),
        deprecated: op.deprecated.is_some(),
        parameters,
        request_body,
        responses: responses.into_iter().collect(),
        extensions,
        security: (!c.auth.is_empty()).then(|| {
            Value::Array(op.auth.iter().map(|name| json!({ name: [] })).collect()).to_string()
        }),
    }
}

fn document(ir: &Ir, c: &Contract) -> Document {
    let mut s = Schemas::new(ir, c, Flavour::OpenApi);
    let mut by_path: BTreeMap<&str, Vec<OpItem>> = BTreeMap::new();
    for op in c.operations.iter().filter(|o| o.rest.is_some()) {
        let item = operation(&mut s, c, op);
        by_path
            .entry(op.rest.as_ref().expect("filtered").full_path.as_str())
            .or_default()
            .push(item);
    }
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    schemas.insert("Problem".into(), problem_schema());
    for e in &c.errors {
        let schema = s.object(&e.fields, e.docs.as_deref(), false);
        schemas.insert(e.name.clone(), schema);
    }
    s.components(&mut schemas);
    Document {
        source: c.source.to_string_lossy().replace('\\', "/"),
        title: q(&c.id.service),
        version: q(&c.version),
        description: q(c.docs.as_deref().unwrap_or("").trim()),
        owner: q(&c.owner),
        service: q(&c.id.service),
        paths: by_path
            .into_iter()
            .map(|(path, ops)| PathItem { path: q(path), ops })
            .collect(),
        schemas: schemas
            .into_iter()
            .map(|(k, v)| (q(&k), v.to_string()))
            .collect(),
        security_schemes: c
            .auth
            .iter()
            .map(|a| {
                let mut scheme = match &a.kind {
                    SchemeKind::Bearer => {
                        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
                    }
                    SchemeKind::ApiKey { header } => {
                        json!({"type": "apiKey", "in": "header", "name": header})
                    }
                    SchemeKind::Mtls => json!({"type": "mutualTLS"}),
                };
                if let Some(d) = &a.docs {
                    scheme["description"] = json!(d.trim());
                }
                (q(&a.name), scheme.to_string())
            })
            .collect(),
    }
}
