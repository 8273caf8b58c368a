//! Operations: inputs and outputs, declared errors, deadlines, idempotency, retry policies,
//! streaming, and what gRPC can carry.

use super::*;

impl ContractChecker<'_, '_> {
    pub(super) fn check_error(&mut self, e: &ErrorDecl) {
        // An unknown `status:` was reported when it was decoded.
        self.check_fields(&e.fields);
    }

    /// Checks an input/output payload; returns the input's fields (for route checks).
    pub(super) fn check_payload(
        &mut self,
        p: &Payload,
        what: &str,
        op: &str,
    ) -> Option<Vec<FieldDecl>> {
        match p {
            Payload::Inline(fields, _) => {
                self.check_fields(fields);
                Some(fields.clone())
            }
            Payload::Named(ty) => {
                let TypeExpr::Ref(r) = &ty.value else {
                    if what == "input" {
                        self.diags.emit(
                            Code::InvalidValue,
                            ty.span,
                            format!("`input` of `{op}` must be a struct type or inline fields"),
                            "write `input: { field: type, … }` or name a struct declared under `types:`",
                        );
                        return None;
                    }
                    self.resolve(ty);
                    return Some(Vec::new());
                };
                match self.scope.resolve_named(self.index, r) {
                    Err(u) => {
                        self.diags
                            .emit(Code::Unresolved, ty.span, u.message, u.help);
                        None
                    }
                    Ok((_, decl)) => match &decl.body {
                        TypeBody::Struct { fields, .. } => Some(fields.clone()),
                        _ if what == "input" => {
                            self.diags.emit(
                                Code::InvalidValue,
                                ty.span,
                                format!("`input` of `{op}` must be a struct, but `{r}` is not"),
                                "wrap it: `input: { value: <type> }` — give the field a meaningful name",
                            );
                            None
                        }
                        _ => Some(Vec::new()),
                    },
                }
            }
        }
    }

    pub(super) fn check_operation(
        &mut self,
        op: &OperationDecl,
        routes: &mut HashMap<(HttpMethod, String), String>,
    ) {
        let name = &op.name.value;
        if tense::reads_as_event(name) {
            self.diags.emit(
                Code::OperationNamedAsEvent,
                op.name.span,
                format!("operation `{name}` is named like an event (a fact that happened)"),
                "operations are commands: start with a verb, e.g. `PlaceOrder`; publish the fact as an event",
            );
        }
        let input_fields = op
            .input
            .as_ref()
            .and_then(|p| self.check_payload(p, "input", name));
        let mut output_fields = None;
        if let Some(p) = &op.output {
            output_fields = self.check_payload(p, "output", name);
            if op.grpc.as_ref().is_some_and(|g| g.value) {
                self.check_grpc_output(p, name);
            }
        }
        if let Some(p) = &op.paginate {
            self.check_paginate(op, p, input_fields.as_deref(), output_fields.as_deref());
        }
        if let Some(r) = &op.resume {
            self.check_resume(op, r, input_fields.as_deref(), output_fields.as_deref());
        }
        let error_names: Vec<&str> = self
            .c
            .errors
            .iter()
            .map(|e| e.name.value.as_str())
            .collect();
        let mut seen_errors = HashSet::new();
        for e in &op.errors {
            if !error_names.contains(&e.value.as_str()) {
                self.diags.emit(
                    Code::Unresolved,
                    e.span,
                    format!("operation `{name}` lists unknown error `{}`", e.value),
                    match closest(&e.value, error_names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("declare `{}` under `errors:`", e.value),
                    },
                );
            } else if !seen_errors.insert(e.value.as_str()) {
                self.diags.emit(
                    Code::DuplicateName,
                    e.span,
                    format!("error `{}` is listed twice", e.value),
                    "list each error once",
                );
            }
        }
        let mut method = None;
        if let Some(rest) = &op.rest {
            method = self.check_route(op, rest, input_fields.as_deref(), routes);
        }
        let safe = op.safe.as_ref().is_some_and(|s| s.value);
        if let (Some(s), Some(m)) = (&op.safe, method) {
            if s.value && !m.is_read_only() {
                self.diags.emit(
                    Code::SafeNotReadOnly,
                    s.span,
                    format!("`safe: true` on `{name}`, whose route uses {}", m.as_str()),
                    "safe operations read only: use GET or HEAD, or drop `safe` and use `idempotency: key`",
                );
            }
        }
        if let Some((d, span)) = op.deadline.as_ref().and_then(|d| Some((d.ok()?, d.span))) {
            match d.nanos {
                0 => self.diags.emit(
                    Code::InvalidDuration,
                    span,
                    "a deadline of zero can never be met",
                    "give a positive budget, e.g. `deadline: 300ms`",
                ),
                ns if ns > MAX_DEADLINE_NS => self.diags.emit(
                    Code::InvalidDuration,
                    span,
                    format!("deadline `{}` is longer than one hour", d.written),
                    "deadlines bound one call; use a shorter budget, or model long work as an event",
                ),
                _ => {}
            }
        }
        let keyed = op
            .idempotency
            .as_ref()
            .is_some_and(|i| i.ok() == Some(&Idempotency::Key));
        if let Some(r) = &op.resilience {
            self.check_resilience(r);
        }
        if let Some(r) = &op.retry {
            self.check_retry(r);
            let deadline = op.deadline.as_ref().and_then(|d| d.ok());
            self.check_per_try(name, r, deadline);
            if r.attempts.value > 1 && !safe && !keyed {
                self.diags.emit(
                    Code::RetryNotIdempotent,
                    r.span,
                    format!("`{name}` is retried but is neither safe nor keyed: a retry could apply it twice"),
                    "add `idempotency: key` (or `safe: true` if it only reads), or remove `retry`",
                );
            }
        }
        if let Some((mode, span)) = op.streaming.as_ref().and_then(|s| Some((*s.ok()?, s.span))) {
            let grpc = op.grpc.as_ref().is_some_and(|g| g.value);
            if mode == Streaming::Server {
                // Over REST a server stream is Server-Sent Events, which browsers' EventSource
                // and proxies expect on GET.
                if let Some(m) = method.filter(|m| *m != HttpMethod::Get) {
                    self.diags.emit(
                        Code::StreamingOverRest,
                        span,
                        format!(
                            "`{name}` streams from the server over REST, which is Server-Sent Events, but its route uses {}",
                            m.as_str()
                        ),
                        "serve it on `GET` (its input travels as path and query parameters), or drop `rest:` and serve it over gRPC only",
                    );
                }
                if op.rest.is_none() && !grpc {
                    self.diags.emit(
                        Code::StreamingOverRest,
                        span,
                        format!("`{name}` streams but is served neither over gRPC nor REST"),
                        "add `grpc: true`, or a `rest: GET …` route (Server-Sent Events)",
                    );
                }
            } else if mode != Streaming::None {
                if op.rest.is_some() {
                    self.diags.emit(
                        Code::StreamingOverRest,
                        span,
                        format!(
                            "`{name}` streams ({}) but also has a REST route",
                            mode.as_str()
                        ),
                        "only server streams travel over REST (as Server-Sent Events): serve this one over gRPC only, and remove `rest:`",
                    );
                }
                if !grpc {
                    self.diags.emit(
                        Code::StreamingOverRest,
                        span,
                        format!(
                            "`{name}` streams ({}) but is not served over gRPC",
                            mode.as_str()
                        ),
                        "add `grpc: true`",
                    );
                }
            }
        }
    }

    /// `paginate:`: the cursor is an optional string input field, the next cursor an optional
    /// string output field, the items a list output field, the page size (when named, or
    /// when the input has `page_size`) an integer input field with a `max:`; not on
    /// streaming operations.
    fn check_paginate(
        &mut self,
        op: &OperationDecl,
        p: &PaginateDecl,
        input: Option<&[FieldDecl]>,
        output: Option<&[FieldDecl]>,
    ) {
        let name = &op.name.value;
        let (cursor_default, next_default, size_default) = PAGINATE_DEFAULTS;
        if op
            .streaming
            .as_ref()
            .and_then(|s| s.ok())
            .is_some_and(|s| *s != Streaming::None)
        {
            self.diags.emit(
                Code::Pagination,
                p.span,
                format!("`{name}` streams, so it has no pages"),
                "remove `paginate:`, or `streaming:` if the operation lists a page at a time",
            );
            return;
        }
        let (Some(input), Some(output)) = (input, output) else {
            self.diags.emit(
                Code::Pagination,
                p.span,
                format!("`{name}` is paginated but has no input or no output of fields"),
                "give it an input with the cursor and an output with the items and the next cursor",
            );
            return;
        };
        let span = p.span;
        let diags = &mut *self.diags;
        let mut field = |fields: &[FieldDecl],
                         named: &Option<Spanned<String>>,
                         default: Option<&str>,
                         role: &str,
                         side: &str|
         -> Option<FieldDecl> {
            let (wanted, span) = match (named, default) {
                (Some(n), _) => (n.value.as_str(), n.span),
                (None, Some(d)) => (d, span),
                (None, None) => return None,
            };
            if let Some(f) = fields.iter().find(|f| f.name.value == wanted) {
                return Some(f.clone());
            }
            diags.emit(
                Code::Pagination,
                span,
                format!("the {role} of `{name}` is `{wanted}`, which its {side} does not have"),
                match closest(wanted, fields.iter().map(|f| f.name.value.as_str())) {
                    Some(c) => format!("did you mean `{c}`? (or add `{wanted}` to the {side})"),
                    None => {
                        format!("add `{wanted}` to the {side}, or name its field in `paginate:`")
                    }
                },
            );
            None
        };
        let cursor = field(
            input,
            &p.cursor,
            Some(cursor_default),
            "page cursor",
            "input",
        );
        let next = field(
            output,
            &p.next,
            Some(next_default),
            "next page cursor",
            "output",
        );
        let named_items = field(output, &p.items, None, "item list", "output");
        let named_size = field(input, &p.size, None, "page size", "input");
        let items = if p.items.is_some() {
            named_items
        } else {
            let lists: Vec<&FieldDecl> = output
                .iter()
                .filter(|f| matches!(f.ty.value, TypeExpr::List(_)))
                .collect();
            match lists.as_slice() {
                [one] => Some((*one).clone()),
                _ => {
                    self.diags.emit(
                        Code::Pagination,
                        p.span,
                        format!(
                            "the output of `{name}` has {} list fields, so which one holds the page is not clear",
                            lists.len()
                        ),
                        "name it: `paginate: { items: <list field> }`",
                    );
                    None
                }
            }
        };
        let size = match &p.size {
            Some(_) => named_size,
            None => input.iter().find(|f| f.name.value == size_default).cloned(),
        };
        let optional_string = |f: &FieldDecl| {
            matches!(
                f.ty.value.unwrap_optional(),
                (TypeExpr::Prim(Primitive::String), true)
            )
        };
        for (f, role) in [(&cursor, "page cursor"), (&next, "next page cursor")] {
            if let Some(f) = f.as_ref().filter(|f| !optional_string(f)) {
                self.diags.emit(
                    Code::Pagination,
                    f.ty.span,
                    format!("the {role} `{}` of `{name}` is not an optional string", f.name.value),
                    "cursors are opaque text, absent on the first request and after the last page: write `optional<string>`",
                );
            }
        }
        if let Some(f) = items.filter(|f| !matches!(f.ty.value, TypeExpr::List(_))) {
            self.diags.emit(
                Code::Pagination,
                f.ty.span,
                format!("the item list `{}` of `{name}` is not a list", f.name.value),
                "name the output's `list<…>` field that holds the page's items",
            );
        }
        if let Some(f) = size {
            let integer = self
                .base_primitive(&f.ty.value)
                .is_some_and(|p| p.is_integer());
            if !integer {
                self.diags.emit(
                    Code::Pagination,
                    f.ty.span,
                    format!(
                        "the page size `{}` of `{name}` is not an integer",
                        f.name.value
                    ),
                    "write `page_size: { type: u32, optional: true, min: 1, max: 100 }`",
                );
            } else if f.constraints.max.is_none() && !self.newtype_has_max(&f.ty.value) {
                self.diags.emit(
                    Code::Pagination,
                    f.name.span,
                    format!("the page size `{}` of `{name}` has no upper bound", f.name.value),
                    "bound it, e.g. `max: 100`: a client could otherwise ask for everything in one page",
                );
            }
        }
    }

    /// `resume:`: on a server stream; `id` a required scalar output field, `after` an
    /// optional input field of the same type.
    fn check_resume(
        &mut self,
        op: &OperationDecl,
        r: &ResumeDecl,
        input: Option<&[FieldDecl]>,
        output: Option<&[FieldDecl]>,
    ) {
        let name = &op.name.value;
        let server_stream = op
            .streaming
            .as_ref()
            .and_then(|s| s.ok())
            .is_some_and(|s| *s == Streaming::Server);
        if !server_stream {
            self.diags.emit(
                Code::Resume,
                r.span,
                format!("`{name}` is not a server stream, so there is nothing to resume"),
                "remove `resume:`, or make the operation `streaming: server`",
            );
            return;
        }
        let (Some(id), Some(after)) = (&r.id, &r.after) else {
            return; // reported when decoded
        };
        let find = |fields: Option<&[FieldDecl]>, wanted: &str| {
            fields.and_then(|fs| fs.iter().find(|f| f.name.value == wanted).cloned())
        };
        let Some(id_field) = find(output, &id.value) else {
            self.diags.emit(
                Code::Resume,
                id.span,
                format!("the stream items of `{name}` have no field `{}`", id.value),
                match closest(
                    &id.value,
                    output.unwrap_or(&[]).iter().map(|f| f.name.value.as_str()),
                ) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => {
                        "name the output field that identifies each item (a sequence number or id)"
                            .into()
                    }
                },
            );
            return;
        };
        let (id_ty, id_optional) = id_field.ty.value.unwrap_optional();
        if id_optional || !self.is_scalar(id_ty) {
            self.diags.emit(
                Code::Resume,
                id_field.ty.span,
                format!("the resume id `{}` of `{name}` is not a required scalar", id.value),
                "every item needs an id that fits an event id: a required string, integer, uuid or the like",
            );
            return;
        }
        let Some(after_field) = find(input, &after.value) else {
            self.diags.emit(
                Code::Resume,
                after.span,
                format!("the input of `{name}` has no field `{}`", after.value),
                format!(
                    "add `{}: {{ type: optional<…>, description: Resume after this id. }}` to the input",
                    after.value
                ),
            );
            return;
        };
        let (after_ty, after_optional) = after_field.ty.value.unwrap_optional();
        if !after_optional || after_ty != id_ty {
            self.diags.emit(
                Code::Resume,
                after_field.ty.span,
                format!(
                    "`{}` of `{name}` must be `optional<…>` of the type of `{}`, which it receives",
                    after.value, id.value
                ),
                "a first request has nothing to resume after: make it optional, of the id's type",
            );
        }
    }

    /// Does a newtype chain under `ty` carry a `max:`?
    fn newtype_has_max(&self, ty: &TypeExpr) -> bool {
        let mut current = ty.unwrap_optional().0.clone();
        for _ in 0..32 {
            let TypeExpr::Ref(r) = current else {
                return false;
            };
            let Ok((_, decl)) = self.scope.resolve_named(self.index, &r) else {
                return false;
            };
            let TypeBody::Newtype { ty, constraints } = &decl.body else {
                return false;
            };
            if constraints.max.is_some() {
                return true;
            }
            current = ty.value.unwrap_optional().0.clone();
        }
        false
    }

    /// A gRPC method returns a message: the output must be a struct, a union (a message
    /// holding one `oneof`) or inline fields.
    pub(super) fn check_grpc_output(&mut self, p: &Payload, op: &str) {
        let Payload::Named(ty) = p else { return };
        let is_struct = match &ty.value {
            TypeExpr::Ref(r) => self
                .scope
                .resolve_named(self.index, r)
                .map_or(true, |(_, d)| {
                    matches!(d.body, TypeBody::Struct { .. } | TypeBody::Union { .. })
                }),
            _ => false,
        };
        if !is_struct {
            self.diags.emit(
                Code::GrpcShape,
                ty.span,
                format!("`{op}` is served over gRPC, whose replies are messages, but its output is not a struct or union"),
                "wrap it in fields: `output: { value: <type> }` (name the field for what it holds)",
            );
        }
    }

    /// `per_try` bounds one attempt inside the deadline, which bounds the whole call: one longer
    /// than the deadline could never be used.
    fn check_per_try(&mut self, name: &str, r: &RetryDecl, deadline: Option<&DurationDecl>) {
        let Some((p, span)) = r.per_try.as_ref().and_then(|p| Some((p.ok()?, p.span))) else {
            return;
        };
        if p.nanos == 0 {
            self.diags.emit(
                Code::InvalidDuration,
                span,
                "a per-try timeout of zero can never be met",
                "give each attempt a positive budget, e.g. `per_try: 400ms`",
            );
        } else if let Some(d) = deadline.filter(|d| p.nanos > d.nanos) {
            self.diags.emit(
                Code::ContradictoryPolicy,
                span,
                format!(
                    "`per_try: {}` of `{name}` is longer than its deadline `{}`, which bounds every attempt together",
                    p.written, d.written
                ),
                format!(
                    "make `per_try` shorter than the deadline so the retries fit in it, e.g. `per_try: {}`",
                    pactum_rules::duration::format(
                        (d.nanos / u128::from(r.attempts.value.max(1))) as u64
                    )
                ),
            );
        }
    }

    /// `resilience:`: a ratio in 0..=1, counts and durations in range.
    pub(super) fn check_resilience(&mut self, r: &ResilienceDecl) {
        use pactum_rules::resilience::{
            MAX_BREAKER_FAILURES, MAX_CONCURRENCY, MAX_RETRIES_PER_SECOND,
        };
        if let Some(ratio) = &r.ratio {
            let v = ratio.value.as_f64();
            if !(0.0..=1.0).contains(&v) {
                self.diags.emit(
                    Code::ContradictoryPolicy,
                    ratio.span,
                    format!("a retry budget ratio of {v} is outside 0..=1"),
                    "the ratio is retries per request: 0.2 lets a target see at most 1.2× its load; 0 allows only `min_per_second`",
                );
            }
        }
        let mut in_range =
            |n: &Option<Spanned<u64>>, lo: u64, hi: u64, what: &str, example: &str| {
                if let Some(n) = n {
                    if n.value < lo || n.value > hi {
                        self.diags.emit(
                            Code::InvalidValue,
                            n.span,
                            format!("`{what}: {}` is outside {lo}..={hi}", n.value),
                            format!("e.g. `{what}: {example}`"),
                        );
                    }
                }
            };
        in_range(
            &r.min_per_second,
            0,
            MAX_RETRIES_PER_SECOND,
            "min_per_second",
            "10",
        );
        in_range(&r.failures, 1, MAX_BREAKER_FAILURES, "failures", "5");
        in_range(&r.concurrency, 1, MAX_CONCURRENCY, "concurrency", "64");
        if let Some((d, span)) = r.cooldown.as_ref().and_then(|d| Some((d.ok()?, d.span))) {
            if d.nanos == 0 || d.nanos > MAX_DEADLINE_NS {
                self.diags.emit(
                    Code::InvalidDuration,
                    span,
                    format!("a breaker cooldown of `{}` is outside (0, 1h]", d.written),
                    "e.g. `cooldown: 5s`: how long a target is left alone before one probe",
                );
            }
        }
    }

    pub(super) fn check_retry(&mut self, r: &RetryDecl) {
        if r.attempts.value == 0 || r.attempts.value > MAX_ATTEMPTS {
            self.diags.emit(
                Code::InvalidValue,
                r.attempts.span,
                format!(
                    "`attempts: {}` is outside 1..={MAX_ATTEMPTS}",
                    r.attempts.value
                ),
                "count every try, including the first; 3 is a good default",
            );
        }
        if let Some(b) = &r.backoff {
            let (lo, hi) = b.value;
            if lo == 0 || lo > hi {
                self.diags.emit(
                    Code::InvalidDuration,
                    b.span,
                    "backoff must be `initial..max` with 0 < initial ≤ max",
                    "e.g. `backoff: 50ms..1s`",
                );
            }
            if hi > MAX_DEADLINE_NS {
                self.diags.emit(
                    Code::InvalidDuration,
                    b.span,
                    "backoff is longer than one hour",
                    "use a shorter maximum backoff",
                );
            }
        }
        // An unknown `jitter:` was reported when it was decoded.
    }
}
