//! Events, webhooks and `consumes` entries: delivery modes, ordering keys, deadlines and
//! budgets, and the events consumed existing in the contracts they name.

use super::*;

impl ContractChecker<'_, '_> {
    pub(super) fn check_event(&mut self, e: &EventDecl) {
        self.check_fact_name(&e.name, "event");
        if e.version.value == 0 || e.version.value > u64::from(u32::MAX) {
            self.diags.emit(
                Code::InvalidValue,
                e.version.span,
                "event versions start at 1",
                "write `version: 1`",
            );
        }
        // An unknown `delivery:` was reported when it was decoded.
        let delivery = e.delivery.ok().copied();
        self.check_fields(&e.fields);
        match &e.key {
            Some(k) => match e.fields.iter().find(|f| f.name.value == k.value) {
                None => self.diags.emit(
                    Code::EventKey,
                    k.span,
                    format!(
                        "ordering key `{}` is not a field of `{}`",
                        k.value, e.name.value
                    ),
                    match closest(&k.value, e.fields.iter().map(|f| f.name.value.as_str())) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "name one of the event's fields".to_string(),
                    },
                ),
                Some(f) => {
                    let scalar = matches!(f.ty.value, TypeExpr::Prim(_) | TypeExpr::Ref(_))
                        && self
                            .base_primitive(&f.ty.value)
                            .is_some_and(|p| !matches!(p, Primitive::Bytes | Primitive::F64));
                    if !scalar {
                        self.diags.emit(
                            Code::EventKey,
                            k.span,
                            format!("ordering key `{}` must be a required scalar (string, uuid, integer, …)", k.value),
                            "key events by an id field, e.g. `key: order_id`",
                        );
                    }
                }
            },
            None if delivery == Some(Delivery::Stream) => self.diags.emit(
                Code::EventKey,
                e.name.span,
                format!("stream event `{}` has no ordering `key`", e.name.value),
                "add `key: <field>`: streams are ordered per key",
            ),
            None => {}
        }
        if let Some(d) = &e.deadline {
            if let Some(EventDeadlineDecl::After(after)) = d.ok() {
                self.check_event_duration(
                    after,
                    d.span,
                    "deadline",
                    MAX_EVENT_DEADLINE_NS,
                    crate::decode::EVENT_DEADLINE_HELP,
                );
            }
        }
    }

    /// A duration key of an event or a `consumes` entry: positive, at most `max`.
    pub(super) fn check_event_duration(
        &mut self,
        d: &DurationDecl,
        span: Span,
        key: &str,
        max: u128,
        help: &str,
    ) {
        match d.nanos {
            0 => self.diags.emit(
                Code::InvalidDuration,
                span,
                format!("a `{key}` of zero can never be met"),
                help,
            ),
            ns if ns > max => self.diags.emit(
                Code::InvalidDuration,
                span,
                format!(
                    "`{key}: {}` is longer than {}",
                    d.written,
                    if max == MAX_BUDGET_NS {
                        "one hour"
                    } else {
                        "seven days"
                    }
                ),
                help,
            ),
            _ => {}
        }
    }

    pub(super) fn check_webhook(&mut self, w: &WebhookDecl) {
        self.check_fact_name(&w.name, "webhook");
        if let Some(v) = &w.version {
            if v.value == 0 || v.value > u64::from(u32::MAX) {
                self.diags.emit(
                    Code::InvalidValue,
                    v.span,
                    "webhook versions start at 1",
                    "write `version: 1`",
                );
            }
        }
        self.check_fields(&w.fields);
    }

    pub(super) fn check_consume(&mut self, con: &ConsumeDecl) {
        let Some((service, name, version)) = parse_event_ref(&con.event.value) else {
            self.diags.emit(
                Code::InvalidValue,
                con.event.span,
                format!("`{}` is not an event reference", con.event.value),
                "write `service.EventName@version`, e.g. `payments.PaymentCaptured@1`",
            );
            return;
        };
        let event = match self.scope.resolve_event(&service, &name, version) {
            Ok((_, e)) => e,
            Err(u) => {
                self.diags
                    .emit(Code::Unresolved, con.event.span, u.message, u.help);
                return;
            }
        };
        // An unknown `delivery:` was reported when it was decoded; a known one must match.
        if let (Some(d), Some(published)) = (&con.delivery, event.delivery.ok()) {
            if let Some(expected) = d.ok().filter(|d| *d != published) {
                self.diags.emit(
                    Code::ConsumeMismatch,
                    d.span,
                    format!(
                        "`{}` is published with `delivery: {}`, not `{}`",
                        con.event.value,
                        published.as_str(),
                        expected.as_str()
                    ),
                    format!(
                        "write `delivery: {}`, or remove the key",
                        published.as_str()
                    ),
                );
            }
        }
        if let Some(g) = &con.group {
            let ok = !g.value.is_empty()
                && g.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                self.diags.emit(
                    Code::InvalidValue,
                    g.span,
                    format!("group `{}` is not a valid consumer name", g.value),
                    "use letters, digits, `-` and `_` (brokers use it as a durable name)",
                );
            }
        }
        if let Some(r) = &con.retry {
            self.check_retry(r);
            if let Some(p) = &r.per_try {
                self.diags.emit(
                    Code::UnknownKey,
                    p.span,
                    "`per_try` bounds an attempt of a call; a delivery's attempt is bounded by `budget`",
                    "remove `per_try`, and give the `consumes` entry `budget: 10s`",
                );
            }
        }
        if let Some((b, span)) = con.budget.as_ref().and_then(|b| Some((b.ok()?, b.span))) {
            self.check_event_duration(b, span, "budget", MAX_BUDGET_NS, crate::decode::BUDGET_HELP);
        }
    }
}

/// Splits `service.EventName@version`.
pub fn parse_event_ref(s: &str) -> Option<(String, String, u64)> {
    let (path, version) = s.split_once('@')?;
    let (service, name) = path.split_once('.')?;
    if service.is_empty() || name.is_empty() || name.contains('.') {
        return None;
    }
    Some((service.to_string(), name.to_string(), version.parse().ok()?))
}
