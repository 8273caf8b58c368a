//! The contract as written: typed, but unresolved. Every node keeps its [`Span`].
//!
//! Produced by [`crate::decode`], checked by [`crate::validate`], lowered to the IR by
//! [`crate::lower`]. Nothing here knows about YAML libraries or Rust output.

use crate::diagnostics::{FileId, Span};
pub use crate::vocab::{Delivery, HttpMethod, Idempotency, Jitter, Streaming, Via};
pub use pactum_rules::status::ErrorStatus;
use std::fmt;
use std::path::PathBuf;

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Its position.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs a value with a span.
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

/// A value parsed once, when it was decoded. `Invalid`: it did not parse, and decoding
/// reported why at its span; validation skips it, and lowering never sees one (it runs only
/// on contracts without errors).
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed<T> {
    /// The value meant this.
    Ok(T),
    /// It meant nothing; already reported.
    Invalid,
}

impl<T> Parsed<T> {
    /// The value, when it parsed.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Parsed::Ok(v) => Some(v),
            Parsed::Invalid => None,
        }
    }
}

impl<T> Spanned<Parsed<T>> {
    /// The parsed value, when there is one.
    pub fn ok(&self) -> Option<&T> {
        self.value.ok()
    }
}

/// A duration as written (`300ms`) and what it means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationDecl {
    /// Nanoseconds.
    pub nanos: u128,
    /// The text, for messages.
    pub written: String,
}

/// `rest: METHOD /path`, split and checked for syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDecl {
    /// The method.
    pub method: HttpMethod,
    /// The path as written (`/orders/{id}`).
    pub path: String,
    /// Its `{param}` names, in order.
    pub params: Vec<String>,
}

/// An event's `deadline:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventDeadlineDecl {
    /// `inherit`: the publisher's remaining budget travels with the event.
    Inherit,
    /// A duration after publishing.
    After(DurationDecl),
}

/// One contract file, decoded.
#[derive(Clone, Debug)]
pub struct Contract {
    /// The file it came from.
    pub file: FileId,
    /// Its path, as given.
    pub path: PathBuf,
    /// `pactum:` language version.
    pub language: Spanned<u64>,
    /// `service:` name (snake_case word; becomes the Rust module).
    pub service: Spanned<String>,
    /// `version:` semver.
    pub version: Spanned<Version>,
    /// `owner:` team that owns this service's data.
    pub owner: Spanned<String>,
    /// `namespace:` dotted prefix of the proto package (`shop` → `shop.orders.v1`).
    pub namespace: Option<Spanned<String>>,
    /// `description:`.
    pub description: Option<String>,
    /// `types:`.
    pub types: Vec<TypeDecl>,
    /// `errors:`.
    pub errors: Vec<ErrorDecl>,
    /// `operations:`.
    pub operations: Vec<OperationDecl>,
    /// `events:`.
    pub events: Vec<EventDecl>,
    /// `consumes:`.
    pub consumes: Vec<ConsumeDecl>,
    /// `calls:`.
    pub calls: Vec<CallDecl>,
    /// `webhooks:`.
    pub webhooks: Vec<WebhookDecl>,
    /// `resilience:` for every operation (each may override it).
    pub resilience: Option<ResilienceDecl>,
    /// `auth:`: how callers prove who they are.
    pub auth: Option<AuthDecl>,
}

/// `auth: { schemes: { name: { type, header?, description? } }, default: [name…] }`.
#[derive(Clone, Debug)]
pub struct AuthDecl {
    /// Where `auth:` is written.
    pub span: Span,
    /// The schemes, by name.
    pub schemes: Vec<SchemeDecl>,
    /// The schemes an operation without its own `auth:` accepts (any one of them); none:
    /// such operations are public.
    pub default: Vec<Spanned<String>>,
}

/// One authentication scheme.
#[derive(Clone, Debug)]
pub struct SchemeDecl {
    /// Its name (`staff`), used in `default:` and operations' `auth:`.
    pub name: Spanned<String>,
    /// `bearer`, `api_key` or `mtls`.
    pub kind: Spanned<String>,
    /// `api_key`: the header carrying the key (default `X-Api-Key`).
    pub header: Option<Spanned<String>>,
    /// Doc text.
    pub description: Option<String>,
}

/// The header an `api_key` scheme reads when the contract names none.
pub const DEFAULT_API_KEY_HEADER: &str = "X-Api-Key";

/// An operation's `auth:`: `none` (public), or the schemes it accepts (any one of them).
#[derive(Clone, Debug)]
pub enum OperationAuth {
    /// `auth: none`.
    Public,
    /// `auth: [staff, partner]`.
    Schemes(Vec<Spanned<String>>),
}

/// A semantic version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major: selects the module `v<major>`, the REST prefix and the proto package.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// Pre-release label, without the `-`.
    pub pre: Option<String>,
}

impl Version {
    /// Parses `MAJOR.MINOR.PATCH[-pre]` (build metadata is refused: it has no meaning here).
    pub fn parse(text: &str) -> Option<Version> {
        let (core, pre) = match text.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (text, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() != 3 {
            return None;
        }
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
                return None;
            }
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let pre = match pre {
            Some(p)
                if !p.is_empty()
                    && p.split('.').all(|id| {
                        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }) =>
            {
                Some(p.to_string())
            }
            Some(_) => return None,
            None => None,
        };
        Some(Version {
            major: num(parts[0])?,
            minor: num(parts[1])?,
            patch: num(parts[2])?,
            pre,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

/// `deprecated: <reason>` on a declaration.
pub type Deprecation = Option<Spanned<String>>;

/// A named type.
#[derive(Clone, Debug)]
pub struct TypeDecl {
    /// Name (becomes a PascalCase Rust type).
    pub name: Spanned<String>,
    /// Doc text.
    pub description: Option<String>,
    /// Deprecation.
    pub deprecated: Deprecation,
    /// Shape.
    pub body: TypeBody,
}

/// The shapes of a named type.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // a few hundred per contract at most; boxing buys nothing
pub enum TypeBody {
    /// `fields:` — a struct.
    Struct {
        /// Fields, in order.
        fields: Vec<FieldDecl>,
        /// `reserved:` wire numbers of removed fields.
        reserved: Vec<Spanned<u64>>,
    },
    /// `enum:` — a closed list of values (open on the wire: see docs).
    Enum {
        /// Values, in order.
        values: Vec<EnumValueDecl>,
        /// `reserved:` wire numbers of removed values.
        reserved: Vec<Spanned<u64>>,
    },
    /// `oneof:` — a tagged union: exactly one of several struct types, told apart on the
    /// JSON wire by a tag property and in protobuf by a `oneof`.
    Union {
        /// Variants, in order.
        variants: Vec<VariantDecl>,
        /// `tag:` — the JSON property naming the variant (`type` when not written).
        tag: Option<Spanned<String>>,
        /// `reserved:` wire numbers of removed variants.
        reserved: Vec<Spanned<u64>>,
    },
    /// `type:` — a newtype over another type, with optional constraints.
    Newtype {
        /// Inner type.
        ty: Spanned<TypeExpr>,
        /// Constraints on the inner value.
        constraints: Constraints,
    },
}

/// A struct field, event field, error field or inline input/output field.
#[derive(Clone, Debug)]
pub struct FieldDecl {
    /// Name as written; the JSON name on the wire.
    pub name: Spanned<String>,
    /// Type.
    pub ty: Spanned<TypeExpr>,
    /// Doc text.
    pub description: Option<String>,
    /// Deprecation.
    pub deprecated: Deprecation,
    /// Constraints.
    pub constraints: Constraints,
    /// Explicit gRPC field number.
    pub number: Option<Spanned<u64>>,
    /// The wire number: written, or positional. Assigned once, when its list was decoded.
    pub wire: u32,
}

/// The JSON property that names a union's variant when the contract gives no `tag:`
/// (OpenAPI's and TypeSpec's usual choice).
pub const DEFAULT_UNION_TAG: &str = "type";

/// A variant of a tagged union: `card: CardDetails`, or a mapping with `type:`.
#[derive(Clone, Debug)]
pub struct VariantDecl {
    /// The tag value on the JSON wire (`card`); also the protobuf `oneof` field name.
    pub name: Spanned<String>,
    /// The variant's type (must be a struct).
    pub ty: Spanned<TypeExpr>,
    /// Doc text.
    pub description: Option<String>,
    /// Deprecation.
    pub deprecated: Deprecation,
    /// Explicit protobuf field number.
    pub number: Option<Spanned<u64>>,
    /// The wire number: written, or positional. Assigned once, when its list was decoded.
    pub wire: u32,
}

/// A value of an enum.
#[derive(Clone, Debug)]
pub struct EnumValueDecl {
    /// Wire value as written (`pending`).
    pub name: Spanned<String>,
    /// Doc text.
    pub description: Option<String>,
    /// Explicit proto number.
    pub number: Option<Spanned<u64>>,
    /// Deprecation.
    pub deprecated: Deprecation,
    /// The wire number: written, or positional. Assigned once, when its list was decoded.
    pub wire: u32,
}

/// A numeric literal as written: integer when it has no fraction or exponent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// `5`, `-3`.
    Int(i128),
    /// `0.5`.
    Float(f64),
}

impl Number {
    /// As f64, for comparisons.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Value constraints; checked at run time by generated `validate` methods.
#[derive(Clone, Debug, Default)]
pub struct Constraints {
    /// Numeric lower bound (inclusive).
    pub min: Option<Spanned<Number>>,
    /// Numeric upper bound (inclusive).
    pub max: Option<Spanned<Number>>,
    /// Minimum length (characters for strings, bytes for bytes).
    pub min_len: Option<Spanned<u64>>,
    /// Maximum length.
    pub max_len: Option<Spanned<u64>>,
    /// Regular expression a string must match (anywhere, unless anchored).
    pub pattern: Option<Spanned<String>>,
    /// Minimum number of items (lists, maps).
    pub min_items: Option<Spanned<u64>>,
    /// Maximum number of items.
    pub max_items: Option<Spanned<u64>>,
}

impl Constraints {
    /// True when no constraint is set.
    pub fn is_empty(&self) -> bool {
        self.min.is_none()
            && self.max.is_none()
            && self.min_len.is_none()
            && self.max_len.is_none()
            && self.pattern.is_none()
            && self.min_items.is_none()
            && self.max_items.is_none()
    }
}

/// Built-in scalar types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Primitive {
    Bool,
    I32,
    I64,
    U32,
    U64,
    F64,
    String,
    Bytes,
    Timestamp,
    Duration,
    Uuid,
    Decimal,
}

impl Primitive {
    /// Every primitive with its contract spelling.
    pub const ALL: &'static [(&'static str, Primitive)] = &[
        ("bool", Primitive::Bool),
        ("i32", Primitive::I32),
        ("i64", Primitive::I64),
        ("u32", Primitive::U32),
        ("u64", Primitive::U64),
        ("f64", Primitive::F64),
        ("string", Primitive::String),
        ("bytes", Primitive::Bytes),
        ("timestamp", Primitive::Timestamp),
        ("duration", Primitive::Duration),
        ("uuid", Primitive::Uuid),
        ("decimal", Primitive::Decimal),
    ];

    /// Looks up a contract spelling.
    pub fn from_name(name: &str) -> Option<Primitive> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// The contract spelling.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Integer types (for `min`/`max` with integer literals).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Primitive::I32 | Primitive::I64 | Primitive::U32 | Primitive::U64
        )
    }

    /// Types with an ordering that `min`/`max` apply to.
    pub fn is_numeric(self) -> bool {
        self.is_integer() || matches!(self, Primitive::F64 | Primitive::Decimal)
    }

    /// Inclusive integer range, for checking bounds fit.
    pub fn int_range(self) -> Option<(i128, i128)> {
        Some(match self {
            Primitive::I32 => (i32::MIN as i128, i32::MAX as i128),
            Primitive::I64 => (i64::MIN as i128, i64::MAX as i128),
            Primitive::U32 => (0, u32::MAX as i128),
            Primitive::U64 => (0, u64::MAX as i128),
            _ => return None,
        })
    }
}

/// A type expression: `string`, `list<OrderLine>`, `map<string, Money>`, `optional<T>` or
/// `T?`, `payments.Money`, `payments.v1.Money`.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeExpr {
    /// A primitive.
    Prim(Primitive),
    /// `list<T>`.
    List(Box<TypeExpr>),
    /// `map<string, T>`; keys are always strings (JSON object keys).
    Map(Box<TypeExpr>),
    /// `optional<T>` or `T?`.
    Optional(Box<TypeExpr>),
    /// A named type, maybe in another contract.
    Ref(TypeRefExpr),
}

/// A reference by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeRefExpr {
    /// `payments` in `payments.Money`; `None` for the same contract.
    pub service: Option<String>,
    /// `1` in `payments.v1.Money`.
    pub major: Option<u64>,
    /// `Money`.
    pub name: String,
}

impl fmt::Display for TypeRefExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.service {
            write!(f, "{s}.")?;
        }
        if let Some(m) = self.major {
            write!(f, "v{m}.")?;
        }
        f.write_str(&self.name)
    }
}

/// Deepest type expression accepted (`list<list<…>>`), so parsing never exhausts the stack.
pub const MAX_TYPE_DEPTH: usize = 16;

impl TypeExpr {
    /// Parses a type expression. The error says what was expected.
    pub fn parse(text: &str) -> Result<TypeExpr, String> {
        let mut p = TypeParser {
            s: text.as_bytes(),
            i: 0,
        };
        let ty = p.ty(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected `{}` after the type", &text[p.i..]));
        }
        Ok(ty)
    }

    /// Strips `optional<…>`, returning the inner type and whether it was optional.
    pub fn unwrap_optional(&self) -> (&TypeExpr, bool) {
        match self {
            TypeExpr::Optional(inner) => (inner, true),
            other => (other, false),
        }
    }
}

struct TypeParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl TypeParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn word(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'_' | b'.'))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn ty(&mut self, depth: usize) -> Result<TypeExpr, String> {
        if depth > MAX_TYPE_DEPTH {
            return Err(format!("type nests deeper than {MAX_TYPE_DEPTH} levels"));
        }
        let word = self.word();
        if word.is_empty() {
            return Err("expected a type name".into());
        }
        let mut ty = match word.as_str() {
            "list" | "optional" | "map" => {
                if !self.eat(b'<') {
                    return Err(format!("`{word}` takes a type argument: `{word}<T>`"));
                }
                if word == "map" {
                    let key = self.ty(depth + 1)?;
                    if key != TypeExpr::Prim(Primitive::String) {
                        return Err("map keys must be `string`: write `map<string, T>`".into());
                    }
                    if !self.eat(b',') {
                        return Err("`map` takes a key and a value: `map<string, T>`".into());
                    }
                }
                let inner = self.ty(depth + 1)?;
                if !self.eat(b'>') {
                    return Err(format!("missing `>` to close `{word}<`"));
                }
                match word.as_str() {
                    "list" => TypeExpr::List(Box::new(inner)),
                    "map" => TypeExpr::Map(Box::new(inner)),
                    _ => TypeExpr::Optional(Box::new(inner)),
                }
            }
            _ => match Primitive::from_name(&word) {
                Some(p) => TypeExpr::Prim(p),
                None => TypeExpr::Ref(parse_ref(&word)?),
            },
        };
        if self.eat(b'?') {
            ty = TypeExpr::Optional(Box::new(ty));
        }
        if let TypeExpr::Optional(inner) = &ty {
            if matches!(**inner, TypeExpr::Optional(_)) {
                return Err("a type cannot be optional twice".into());
            }
        }
        Ok(ty)
    }
}

fn parse_ref(word: &str) -> Result<TypeRefExpr, String> {
    let parts: Vec<&str> = word.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{word}` is not a type name"));
    }
    let major = |p: &str| -> Result<u64, String> {
        p.strip_prefix('v')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("`{p}` should be a major version like `v1`"))
    };
    Ok(match parts.as_slice() {
        [name] => TypeRefExpr {
            service: None,
            major: None,
            name: name.to_string(),
        },
        [service, name] => TypeRefExpr {
            service: Some(service.to_string()),
            major: None,
            name: name.to_string(),
        },
        [service, m, name] => TypeRefExpr {
            service: Some(service.to_string()),
            major: Some(major(m)?),
            name: name.to_string(),
        },
        _ => {
            return Err(format!(
                "`{word}` has too many parts: write `Type`, `service.Type` or `service.v1.Type`"
            ))
        }
    })
}

pub use pactum_rules::duration::parse as parse_duration;

/// A declared error.
#[derive(Clone, Debug)]
pub struct ErrorDecl {
    /// Name (PascalCase type).
    pub name: Spanned<String>,
    /// `status:` — the error class, mapped to an HTTP status and a gRPC code.
    pub status: Spanned<Parsed<ErrorStatus>>,
    /// Doc text; also the default message.
    pub description: Option<String>,
    /// Fields carried in the problem body.
    pub fields: Vec<FieldDecl>,
}

/// An operation's input or output.
#[derive(Clone, Debug)]
pub enum Payload {
    /// `input: PlaceOrderRequest` — a named struct.
    Named(Spanned<TypeExpr>),
    /// `input: { id: OrderId }` — fields of a generated `<Op>Request`/`<Op>Response`.
    Inline(Vec<FieldDecl>, Span),
}

/// `retry:` settings.
#[derive(Clone, Debug)]
pub struct RetryDecl {
    /// Where `retry:` was written.
    pub span: Span,
    /// Total attempts, including the first.
    pub attempts: Spanned<u64>,
    /// `initial..max` backoff, nanoseconds.
    pub backoff: Option<Spanned<(u128, u128)>>,
    /// `full` or `none`.
    pub jitter: Option<Spanned<Parsed<Jitter>>>,
    /// `per_try: 400ms`: the longest one attempt may take.
    pub per_try: Option<Spanned<Parsed<DurationDecl>>>,
}

/// An operation.
#[derive(Clone, Debug)]
pub struct OperationDecl {
    /// Name (PascalCase, a command: `PlaceOrder`).
    pub name: Spanned<String>,
    /// Doc text.
    pub description: Option<String>,
    /// Deprecation.
    pub deprecated: Deprecation,
    /// Input.
    pub input: Option<Payload>,
    /// Output.
    pub output: Option<Payload>,
    /// Declared error names.
    pub errors: Vec<Spanned<String>>,
    /// `rest: METHOD /path`.
    pub rest: Option<Spanned<Parsed<RouteDecl>>>,
    /// `grpc: true`.
    pub grpc: Option<Spanned<bool>>,
    /// `deadline: 300ms`.
    pub deadline: Option<Spanned<Parsed<DurationDecl>>>,
    /// `safe: true`: read-only, may be retried.
    pub safe: Option<Spanned<bool>>,
    /// `idempotency: key | none`.
    pub idempotency: Option<Spanned<Parsed<Idempotency>>>,
    /// `retry:`.
    pub retry: Option<RetryDecl>,
    /// `streaming: none | server | client | bidi`.
    pub streaming: Option<Spanned<Parsed<Streaming>>>,
    /// `calls:`: the operations its handler calls, in the order it calls them.
    pub calls: Vec<CallStepDecl>,
    /// `resilience:`: over the contract's, key by key.
    pub resilience: Option<ResilienceDecl>,
    /// `paginate:`: the operation lists a collection page by page.
    pub paginate: Option<PaginateDecl>,
    /// `resume: { id, after }`: how a server stream resumes after a dropped connection.
    pub resume: Option<ResumeDecl>,
    /// `auth:`: over the contract's `auth.default`.
    pub auth: Option<Spanned<OperationAuth>>,
}

/// `resume: { id: <output field>, after: <input field> }` on a server-streaming operation:
/// each item's `id` is its Server-Sent Events id; a reconnecting client's `Last-Event-ID`
/// arrives in the input field `after`, so the handler continues after it (over gRPC the
/// client sets `after` itself).
#[derive(Clone, Debug)]
pub struct ResumeDecl {
    /// Where `resume:` is written.
    pub span: Span,
    /// Output field identifying an item.
    pub id: Option<Spanned<String>>,
    /// Input field the last id seen arrives in.
    pub after: Option<Spanned<String>>,
}

/// `paginate: true`, or `paginate: { cursor, next, items, size }`: which input field carries
/// the opaque page cursor in, which output field the next one out, which output list holds
/// the page's items and which input field bounds the page size. Keys left out take the
/// conventional names ([`PAGINATE_DEFAULTS`]).
#[derive(Clone, Debug)]
pub struct PaginateDecl {
    /// Where `paginate:` is written.
    pub span: Span,
    /// Input field with the cursor of the page to fetch.
    pub cursor: Option<Spanned<String>>,
    /// Output field with the cursor of the next page (absent on the last page).
    pub next: Option<Spanned<String>>,
    /// Output list field with the page's items.
    pub items: Option<Spanned<String>>,
    /// Input field bounding the page size.
    pub size: Option<Spanned<String>>,
}

/// The names `paginate: true` uses (Google's AIP-158 spelling): cursor `page_token`, next
/// `next_page_token`, size `page_size` (when the input has it); the items are the output's
/// one list field.
pub const PAGINATE_DEFAULTS: (&str, &str, &str) = ("page_token", "next_page_token", "page_size");

/// `resilience:`: the retry budget and circuit breaker clients keep per target, and the
/// concurrency limit servers apply, for a contract or one operation. Each key is optional.
#[derive(Clone, Debug)]
pub struct ResilienceDecl {
    /// Where `resilience:` is written.
    pub span: Span,
    /// `retry_budget.ratio`: retries per request, 0..=1.
    pub ratio: Option<Spanned<Number>>,
    /// `retry_budget.min_per_second`.
    pub min_per_second: Option<Spanned<u64>>,
    /// `breaker.failures`: failures in a row that open the breaker.
    pub failures: Option<Spanned<u64>>,
    /// `breaker.cooldown`.
    pub cooldown: Option<Spanned<Parsed<DurationDecl>>>,
    /// `concurrency`: most requests of an operation a server runs at once.
    pub concurrency: Option<Spanned<u64>>,
}

/// One step of an operation's `calls:`: one call (`pricing.QuoteCart`), or calls made at the
/// same time (`[pricing.QuoteCart, inventory.CheckStock]`).
#[derive(Clone, Debug)]
pub struct CallStepDecl {
    /// Where the step is written.
    pub span: Span,
    /// `service.Operation` or `service.Operation@major`, each with its own position.
    pub operations: Vec<Spanned<String>>,
}

/// An event this contract publishes.
#[derive(Clone, Debug)]
pub struct EventDecl {
    /// Name: a past-tense fact.
    pub name: Spanned<String>,
    /// Doc text.
    pub description: Option<String>,
    /// Deprecation.
    pub deprecated: Deprecation,
    /// Schema version of the event (independent of the contract version).
    pub version: Spanned<u64>,
    /// Ordering/partition key field.
    pub key: Option<Spanned<String>>,
    /// `stream | pubsub | queue`.
    pub delivery: Spanned<Parsed<Delivery>>,
    /// `deadline: inherit` (the publisher's remaining budget travels with the event) or a
    /// duration (the event expires that long after it is published); absent: no deadline.
    pub deadline: Option<Spanned<Parsed<EventDeadlineDecl>>>,
    /// Fields.
    pub fields: Vec<FieldDecl>,
}

/// An event this service consumes, from another contract.
#[derive(Clone, Debug)]
pub struct ConsumeDecl {
    /// Where the entry starts.
    pub span: Span,
    /// `service.EventName@version`.
    pub event: Spanned<String>,
    /// Expected delivery mode (must match the event's).
    pub delivery: Option<Spanned<Parsed<Delivery>>>,
    /// Consumer group / durable name.
    pub group: Option<Spanned<String>>,
    /// Retry policy before dead-lettering.
    pub retry: Option<RetryDecl>,
    /// Send failures to a dead-letter subject.
    pub dead_letter: Option<Spanned<bool>>,
    /// `budget: 30s`: how long one delivery may take to handle.
    pub budget: Option<Spanned<Parsed<DurationDecl>>>,
    /// Doc text.
    pub description: Option<String>,
}

/// An operation of another contract this service calls.
#[derive(Clone, Debug)]
pub struct CallDecl {
    /// Where the entry starts.
    pub span: Span,
    /// `service.Operation` or `service.Operation@major`.
    pub operation: Spanned<String>,
    /// `rest | grpc`.
    pub via: Option<Spanned<Parsed<Via>>>,
    /// Doc text.
    pub description: Option<String>,
}

/// A webhook this service sends.
#[derive(Clone, Debug)]
pub struct WebhookDecl {
    /// Name: a past-tense fact.
    pub name: Spanned<String>,
    /// Doc text.
    pub description: Option<String>,
    /// Payload version.
    pub version: Option<Spanned<u64>>,
    /// Fields.
    pub fields: Vec<FieldDecl>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_type_expressions() {
        assert_eq!(
            TypeExpr::parse("string"),
            Ok(TypeExpr::Prim(Primitive::String))
        );
        assert_eq!(
            TypeExpr::parse("list<map<string, payments.v1.Money>>?"),
            Ok(TypeExpr::Optional(Box::new(TypeExpr::List(Box::new(
                TypeExpr::Map(Box::new(TypeExpr::Ref(TypeRefExpr {
                    service: Some("payments".into()),
                    major: Some(1),
                    name: "Money".into()
                })))
            )))))
        );
        assert!(TypeExpr::parse("list<").is_err());
        assert!(TypeExpr::parse("map<u32, string>").is_err());
        assert!(TypeExpr::parse("string??").is_err());
        assert!(TypeExpr::parse("a..b").is_err());
        assert!(TypeExpr::parse(&"list<".repeat(100)).is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn parses_semver() {
        let v = Version::parse("1.2.3-rc.1").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 2, 3));
        assert_eq!(v.to_string(), "1.2.3-rc.1");
        assert!(Version::parse("1.2").is_none());
        assert!(Version::parse("01.2.3").is_none());
        assert!(Version::parse("1.2.3+build").is_none());
    }
}
