//! `calls` entries: the operation called exists and the transport named serves it.

use super::*;

impl ContractChecker<'_, '_> {
    pub(super) fn check_call(&mut self, call: &CallDecl) {
        let Some((service, name, major)) = parse_operation_ref(&call.operation.value) else {
            self.diags.emit(
                Code::InvalidValue,
                call.operation.span,
                format!("`{}` is not an operation reference", call.operation.value),
                "write `service.Operation`, or `service.Operation@major`, e.g. `pricing.QuoteCart`",
            );
            return;
        };
        let op = match self.scope.resolve_operation(&service, &name, major) {
            Ok((_, op)) => op,
            Err(u) => {
                self.diags
                    .emit(Code::Unresolved, call.operation.span, u.message, u.help);
                return;
            }
        };
        // An unknown `via:` was reported when it was decoded.
        let Some((via, span)) = call.via.as_ref().and_then(|v| Some((*v.ok()?, v.span))) else {
            return;
        };
        let (has, what, fix) = match via {
            Via::Rest => (
                op.rest.is_some(),
                "has no REST route",
                "write `via: grpc`, or give the operation `rest:`",
            ),
            Via::Grpc => (
                op.grpc.as_ref().is_some_and(|g| g.value),
                "is not served over gRPC",
                "write `via: rest`, or give the operation `grpc: true`",
            ),
        };
        if !has {
            self.diags.emit(
                Code::InvalidValue,
                span,
                format!("`{}` {what}", call.operation.value),
                fix,
            );
        }
    }
}

/// Splits `service.EventName@version`.
/// Splits `service.Operation` or `service.Operation@major`.
pub fn parse_operation_ref(s: &str) -> Option<(String, String, Option<u64>)> {
    let (path, major) = match s.split_once('@') {
        Some((p, m)) => (p, Some(m.parse().ok()?)),
        None => (s, None),
    };
    let (service, name) = path.split_once('.')?;
    if service.is_empty() || name.is_empty() || name.contains('.') {
        return None;
    }
    Some((service.to_string(), name.to_string(), major))
}
