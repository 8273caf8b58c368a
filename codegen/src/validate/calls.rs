//! `calls` entries: the operation called exists and the transport named serves it; an
//! operation's own `calls:` name only operations its contract declares it calls.

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

impl ContractChecker<'_, '_> {
    /// An operation's `calls:`: each reference resolves and is one of the contract's `calls`
    /// entries (which say over which transport), and no operation is called twice in one step.
    pub(super) fn check_operation_calls(
        &mut self,
        op: &OperationDecl,
        declared: &HashSet<(usize, String)>,
    ) {
        for step in &op.calls {
            let mut in_step = HashSet::new();
            for r in &step.operations {
                let Some((service, name, major)) = parse_operation_ref(&r.value) else {
                    self.diags.emit(
                        Code::InvalidValue,
                        r.span,
                        format!("`{}` is not an operation reference", r.value),
                        "write `service.Operation`, or `service.Operation@major`, e.g. `pricing.QuoteCart`",
                    );
                    continue;
                };
                let resolved = match self.scope.resolve_operation(&service, &name, major) {
                    Ok((i, _)) => i,
                    Err(u) => {
                        self.diags.emit(Code::Unresolved, r.span, u.message, u.help);
                        continue;
                    }
                };
                if !declared.contains(&(resolved, name.clone())) {
                    self.diags.emit(
                        Code::Unresolved,
                        r.span,
                        format!(
                            "`{}` calls `{}`, which is not among this contract's `calls`",
                            op.name.value, r.value
                        ),
                        format!(
                            "add `- operation: {}` (with `via: rest` or `via: grpc`) to the contract's top-level `calls:`",
                            r.value
                        ),
                    );
                }
                if !in_step.insert((resolved, name.clone())) {
                    self.diags.emit(
                        Code::DuplicateName,
                        r.span,
                        format!("`{}` is called twice in one step", r.value),
                        "list it once per step; a second call made later is a step of its own",
                    );
                }
            }
        }
    }
}

impl ContractChecker<'_, '_> {
    /// The contract's `calls` entries, resolved to (contract index, operation name): an
    /// entry may name the major or leave it to resolution, so they are compared resolved.
    pub(super) fn declared_calls(&self) -> HashSet<(usize, String)> {
        self.c
            .calls
            .iter()
            .filter_map(|c| {
                let (service, name, major) = parse_operation_ref(&c.operation.value)?;
                let (i, _) = self.scope.resolve_operation(&service, &name, major).ok()?;
                Some((i, name))
            })
            .collect()
    }
}

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
