//! The intermediate representation: contracts resolved, normalized and ready to emit.
//!
//! Emitters read only this. Names are already in their Rust case (without `r#`; the emitter
//! escapes keywords through [`crate::naming`]), references are resolved to their owning
//! contract, inline inputs/outputs are named types, wire numbers are assigned and recursive
//! fields are marked for boxing. Spans stay on the nodes so later stages can still point at
//! the source.

use crate::ast::{Number, Primitive};
use crate::diagnostics::Span;
use std::fmt;
use std::path::PathBuf;

/// Everything loaded in one run.
#[derive(Clone, Debug, Default)]
pub struct Ir {
    /// Contracts, sorted by service then major.
    pub contracts: Vec<Contract>,
}

impl Ir {
    /// What the named type `r` is, in whichever contract declares it.
    pub fn kind(&self, r: &NamedRef) -> Option<&TypeKind> {
        self.contracts
            .iter()
            .find(|c| c.id == r.contract)?
            .types
            .iter()
            .find(|t| t.name == r.name)
            .map(|t| &t.kind)
    }
}

/// Identifies a contract: one service at one major version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContractId {
    /// Service name, snake_case (`orders`).
    pub service: String,
    /// Major version.
    pub major: u64,
}

impl fmt::Display for ContractId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.v{}", self.service, self.major)
    }
}

impl ContractId {
    /// The Rust module of the major version (`v1`).
    pub fn version_module(&self) -> String {
        format!("v{}", self.major)
    }

    /// The output file stem (`orders_v1`).
    pub fn file_stem(&self) -> String {
        format!("{}_v{}", self.service, self.major)
    }
}

/// One contract at one major version.
#[derive(Clone, Debug)]
pub struct Contract {
    /// Service and major.
    pub id: ContractId,
    /// Full semver.
    pub version: String,
    /// Owning team.
    pub owner: String,
    /// Proto package prefix (`shop`), if any.
    pub namespace: Option<String>,
    /// Doc text.
    pub docs: Option<String>,
    /// The file it came from.
    pub source: PathBuf,
    /// Where the contract declares its service (findings about removals point here).
    pub span: Span,
    /// Named types, including the generated `<Op>Request`/`<Op>Response`.
    pub types: Vec<TypeDef>,
    /// Declared errors.
    pub errors: Vec<ErrorDef>,
    /// Operations.
    pub operations: Vec<Operation>,
    /// Events published.
    pub events: Vec<EventDef>,
    /// Events consumed.
    pub consumers: Vec<Consumer>,
    /// Operations of other contracts this service calls.
    pub calls: Vec<Call>,
    /// Webhooks sent.
    pub webhooks: Vec<WebhookDef>,
    /// Authentication schemes (`auth.schemes`), in contract order.
    pub auth: Vec<AuthScheme>,
}

/// An authentication scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthScheme {
    /// Its name in the contract (`staff`).
    pub name: String,
    /// What the caller presents.
    pub kind: SchemeKind,
    /// Doc text.
    pub docs: Option<String>,
}

/// What a scheme's caller presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemeKind {
    /// `Authorization: Bearer <JWT>`.
    Bearer,
    /// A key in a header.
    ApiKey {
        /// The header (`X-Api-Key`).
        header: String,
    },
    /// A client certificate, verified by TLS.
    Mtls,
}

/// Where a named type came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Declared under `types:`.
    Declared,
    /// Inline `input:` of an operation.
    Input(String),
    /// Inline `output:` of an operation.
    Output(String),
}

/// A named type.
#[derive(Clone, Debug)]
pub struct TypeDef {
    /// PascalCase name.
    pub name: String,
    /// Doc text.
    pub docs: Option<String>,
    /// Deprecation reason.
    pub deprecated: Option<String>,
    /// Shape.
    pub kind: TypeKind,
    /// Declared or generated.
    pub origin: Origin,
    /// Wire numbers of removed fields or values, never to be reused.
    pub reserved: Vec<u32>,
    /// Source position.
    pub span: Span,
}

/// Shapes of a named type.
#[derive(Clone, Debug)]
pub enum TypeKind {
    /// Struct with fields.
    Struct(Vec<Field>),
    /// Enum of string values.
    Enum(Vec<EnumValue>),
    /// Tagged union of struct types.
    Union(Union),
    /// Newtype over another type.
    Newtype {
        /// Inner type.
        inner: TypeRef,
        /// Constraints on the inner value.
        constraints: Constraints,
    },
}

/// A field of a struct, event, webhook or error.
#[derive(Clone, Debug)]
pub struct Field {
    /// snake_case Rust name (unescaped).
    pub name: String,
    /// Name on the wire (JSON), as written in the contract.
    pub wire_name: String,
    /// Type, `Optional` when the field may be absent.
    pub ty: TypeRef,
    /// Doc text.
    pub docs: Option<String>,
    /// Deprecation reason.
    pub deprecated: Option<String>,
    /// Constraints.
    pub constraints: Constraints,
    /// Stable gRPC field number.
    pub number: u32,
    /// Needs a `Box` because the type contains itself.
    pub boxed: bool,
    /// Source position.
    pub span: Span,
}

/// A tagged union: one of several struct types.
#[derive(Clone, Debug)]
pub struct Union {
    /// The JSON property naming the variant (`type` unless the contract says otherwise).
    pub tag: String,
    /// Variants, in contract order.
    pub variants: Vec<Variant>,
}

/// A variant of a tagged union.
#[derive(Clone, Debug)]
pub struct Variant {
    /// PascalCase Rust variant.
    pub variant: String,
    /// The tag value on the JSON wire, as written; also the protobuf `oneof` field's name.
    pub wire: String,
    /// The struct it carries.
    pub ty: NamedRef,
    /// Stable protobuf field number inside the `oneof`.
    pub number: u32,
    /// Doc text.
    pub docs: Option<String>,
    /// Deprecation reason.
    pub deprecated: Option<String>,
}

/// An enum value.
#[derive(Clone, Debug)]
pub struct EnumValue {
    /// PascalCase variant.
    pub variant: String,
    /// Wire value as written.
    pub wire: String,
    /// Stable proto number (never 0: 0 is `*_UNSPECIFIED`).
    pub number: u32,
    /// Doc text.
    pub docs: Option<String>,
    /// Deprecation reason.
    pub deprecated: Option<String>,
}

/// A resolved type.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeRef {
    /// A primitive.
    Prim(Primitive),
    /// `list<T>`.
    List(Box<TypeRef>),
    /// `map<string, T>`.
    Map(Box<TypeRef>),
    /// `optional<T>`.
    Optional(Box<TypeRef>),
    /// A named type.
    Named(NamedRef),
}

/// A reference to a named type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedRef {
    /// Owning contract.
    pub contract: ContractId,
    /// PascalCase name.
    pub name: String,
}

/// Constraints, checked by generated `validate` code.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constraints {
    /// Inclusive lower bound.
    pub min: Option<Number>,
    /// Inclusive upper bound.
    pub max: Option<Number>,
    /// Minimum length.
    pub min_len: Option<u64>,
    /// Maximum length.
    pub max_len: Option<u64>,
    /// Regex.
    pub pattern: Option<String>,
    /// Minimum items.
    pub min_items: Option<u64>,
    /// Maximum items.
    pub max_items: Option<u64>,
}

impl Constraints {
    /// True when nothing is constrained.
    pub fn is_empty(&self) -> bool {
        *self == Constraints::default()
    }
}

pub use crate::vocab::{Delivery, EventDeadline, HttpMethod, Idempotency, Jitter, Streaming, Via};
pub use pactum_rules::status::ErrorStatus;

/// A declared error.
#[derive(Clone, Debug)]
pub struct ErrorDef {
    /// PascalCase name.
    pub name: String,
    /// Class.
    pub status: ErrorStatus,
    /// Doc text; also the human message.
    pub docs: Option<String>,
    /// Fields in the problem body.
    pub fields: Vec<Field>,
    /// Source position.
    pub span: Span,
}

/// A REST route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Method.
    pub method: HttpMethod,
    /// Path as written, without the version prefix (`/orders/{id}`).
    pub path: String,
    /// Path mounted under the major version (`/v1/orders/{id}`).
    pub full_path: String,
    /// `{param}` names, in order (wire names of input fields).
    pub params: Vec<String>,
}

/// Where an input field travels in an HTTP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A `{param}` of the path.
    Path,
    /// A query parameter: the rest of the input of GET, HEAD and DELETE.
    Query,
    /// A member of the JSON body: the rest of the input of other methods.
    Body,
}

impl Route {
    /// The HTTP binding rule, in one place for the server, the client and OpenAPI: path
    /// parameters by name, then the query for methods without a body, else the body.
    pub fn place(&self, wire_name: &str) -> Place {
        if self.params.iter().any(|p| p == wire_name) {
            Place::Path
        } else if self.method.input_in_query() {
            Place::Query
        } else {
            Place::Body
        }
    }
}

/// A retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// First backoff, nanoseconds.
    pub initial_ns: u64,
    /// Backoff cap, nanoseconds.
    pub max_ns: u64,
    /// Jitter.
    pub jitter: Jitter,
    /// The longest one attempt may take, nanoseconds; `None`: as long as the deadline leaves.
    pub per_try_ns: Option<u64>,
}

/// An operation.
#[derive(Clone, Debug)]
pub struct Operation {
    /// PascalCase name.
    pub name: String,
    /// Doc text.
    pub docs: Option<String>,
    /// Deprecation reason.
    pub deprecated: Option<String>,
    /// Input type (always a struct), if any.
    pub input: Option<NamedRef>,
    /// Output type, if any.
    pub output: Option<TypeRef>,
    /// Declared errors (names of this contract's errors).
    pub errors: Vec<String>,
    /// REST route.
    pub rest: Option<Route>,
    /// Served over gRPC.
    pub grpc: bool,
    /// Deadline budget, nanoseconds.
    pub deadline_ns: Option<u64>,
    /// Read-only: may be retried without a key.
    pub safe: bool,
    /// Idempotency level.
    pub idempotency: Idempotency,
    /// Retry policy.
    pub retry: Option<Retry>,
    /// Streaming shape.
    pub streaming: Streaming,
    /// What its handler calls, step by step (`calls:` on the operation).
    pub calls: Vec<CallStep>,
    /// Retry budget, breaker and concurrency limit: its `resilience:` over its contract's,
    /// over the defaults.
    pub resilience: Resilience,
    /// `paginate:`: which fields carry the page cursors, items and size.
    pub paginate: Option<Pagination>,
    /// `resume:`: how a server stream continues after a dropped connection.
    pub resume: Option<Resume>,
    /// The authentication schemes it accepts, any one of them (names of the contract's
    /// `auth`); empty: public.
    pub auth: Vec<String>,
    /// Source position.
    pub span: Span,
}

/// How a server stream resumes: each item's id (its Server-Sent Events id), and the input
/// field a reconnecting client's last id arrives in.
#[derive(Clone, Debug)]
pub struct Resume {
    /// Output field identifying an item (Rust name).
    pub id: String,
    /// Its name on the wire.
    pub id_wire: String,
    /// Input field the last id seen arrives in (Rust name).
    pub after: String,
    /// Its name on the wire.
    pub after_wire: String,
}

/// How a paginated operation pages: field names in their Rust case (the wire names are
/// the fields' own).
#[derive(Clone, Debug)]
pub struct Pagination {
    /// Input field with the cursor of the page to fetch (`page_token`).
    pub cursor: String,
    /// Its name on the wire, as written.
    pub cursor_wire: String,
    /// Output field with the next page's cursor (`next_page_token`).
    pub next: String,
    /// Its name on the wire.
    pub next_wire: String,
    /// Output list field holding the page's items.
    pub items: String,
    /// Its name on the wire.
    pub items_wire: String,
    /// The type of one item.
    pub item: TypeRef,
    /// The wire name of the input field bounding the page size, when there is one.
    pub size_wire: Option<String>,
}

/// The resolved `resilience:` of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resilience {
    /// Retries per request to a target, in thousandths.
    pub ratio_permille: u32,
    /// Retries per second allowed whatever the traffic.
    pub min_per_second: u32,
    /// Failures in a row that open a target's breaker.
    pub failures: u32,
    /// How long an open breaker waits before a probe, nanoseconds.
    pub cooldown_ns: u64,
    /// Most requests a server runs at once.
    pub concurrency: Option<u32>,
}

impl Default for Resilience {
    fn default() -> Self {
        use pactum_rules::resilience::*;
        Resilience {
            ratio_permille: DEFAULT_RETRY_RATIO_PERMILLE,
            min_per_second: DEFAULT_RETRIES_PER_SECOND,
            failures: DEFAULT_BREAKER_FAILURES,
            cooldown_ns: DEFAULT_BREAKER_COOLDOWN_NS,
            concurrency: None,
        }
    }
}

/// One step of an operation's calls: one call, or several made at the same time.
#[derive(Clone, Debug)]
pub struct CallStep {
    /// The operations called in this step (more than one: concurrently).
    pub calls: Vec<CallRef>,
    /// Source position of the step.
    pub span: Span,
}

/// An operation called, resolved to its contract.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallRef {
    /// The contract called.
    pub target: ContractId,
    /// The operation's name (PascalCase).
    pub operation: String,
    /// Source position of the reference.
    pub span: Span,
}

/// An event published by the contract.
#[derive(Clone, Debug)]
pub struct EventDef {
    /// PascalCase past-tense name.
    pub name: String,
    /// Doc text.
    pub docs: Option<String>,
    /// Deprecation reason.
    pub deprecated: Option<String>,
    /// Event schema version.
    pub version: u32,
    /// Ordering key field (Rust name).
    pub key: Option<String>,
    /// Delivery mode.
    pub delivery: Delivery,
    /// Whether and how long the event is worth processing.
    pub deadline: EventDeadline,
    /// Fields.
    pub fields: Vec<Field>,
    /// Broker subject, `<service>.<event_snake>.v<version>`.
    pub subject: String,
    /// Source position.
    pub span: Span,
}

/// An event consumed from another (or the same) contract.
#[derive(Clone, Debug)]
pub struct Consumer {
    /// The event type.
    pub event: NamedRef,
    /// Event schema version.
    pub version: u32,
    /// Broker subject of the event.
    pub subject: String,
    /// Delivery mode.
    pub delivery: Delivery,
    /// Consumer group (durable name).
    pub group: String,
    /// Retry policy before dead-lettering.
    pub retry: Option<Retry>,
    /// Failures go to a dead-letter subject.
    pub dead_letter: bool,
    /// Processing budget per delivery, in nanoseconds (`None`: the runtime's default).
    pub budget_ns: Option<u64>,
    /// Doc text.
    pub docs: Option<String>,
    /// Source position.
    pub span: Span,
}

/// An operation of another contract that this service calls.
#[derive(Clone, Debug)]
pub struct Call {
    /// The contract called.
    pub target: ContractId,
    /// The operation's name.
    pub operation: String,
    /// The transport.
    pub via: Via,
    /// Doc text.
    pub docs: Option<String>,
    /// Source position.
    pub span: Span,
}

/// A webhook the service sends.
#[derive(Clone, Debug)]
pub struct WebhookDef {
    /// PascalCase past-tense name.
    pub name: String,
    /// Doc text.
    pub docs: Option<String>,
    /// Payload version.
    pub version: u32,
    /// `type` on the wire, `<service>.<snake_name>`.
    pub wire_type: String,
    /// Fields.
    pub fields: Vec<Field>,
    /// Source position.
    pub span: Span,
}
