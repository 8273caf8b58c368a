//! REST routes: `METHOD /path`, path parameters and the HTTP binding of every input field.

use super::*;

impl ContractChecker<'_, '_> {
    pub(super) fn check_route(
        &mut self,
        op: &OperationDecl,
        rest: &Spanned<Parsed<RouteDecl>>,
        input_fields: Option<&[FieldDecl]>,
        routes: &mut HashMap<(HttpMethod, String), String>,
    ) -> Option<HttpMethod> {
        let name = &op.name.value;
        // Syntax (a method, a path of valid segments) was checked when it was decoded.
        let route = rest.ok()?;
        let (method, path, params) = (route.method, route.path.as_str(), route.params.clone());
        let first = path.split('/').nth(1).unwrap_or("");
        if first.len() > 1
            && first.starts_with('v')
            && first[1..].bytes().all(|b| b.is_ascii_digit())
        {
            self.diags.emit(
                Code::InvalidRoute,
                rest.span,
                format!("path `{path}` starts with a version segment"),
                format!(
                    "drop `/{first}`: Pactum mounts major {m} under `/v{m}` itself",
                    m = self.c.version.value.major
                ),
            );
            return None;
        }
        let mut seen = HashSet::new();
        for p in &params {
            if !seen.insert(p) {
                self.diags.emit(
                    Code::InvalidRoute,
                    rest.span,
                    format!("path parameter `{{{p}}}` appears twice"),
                    "use each parameter once",
                );
            }
            let found = input_fields.is_some_and(|f| f.iter().any(|f| &f.name.value == p));
            if !found && (input_fields.is_some() || op.input.is_none()) {
                self.diags.emit(
                    Code::PathParamMissing,
                    rest.span,
                    format!("path parameter `{{{p}}}` of `{name}` is not a field of its input"),
                    match op.input {
                        None => format!("add `input: {{ {p}: string }}` (with the right type)"),
                        Some(_) => {
                            format!("add a field `{p}` to the input, or rename the parameter")
                        }
                    },
                );
            }
        }
        self.check_param_types(op, method, &params, input_fields.unwrap_or(&[]));
        let segments: Vec<&str> = path.split('/').collect();
        for (i, seg) in segments.iter().enumerate() {
            let Some(p) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                continue;
            };
            let prefix: String = segments[..i]
                .iter()
                .map(|s| if s.starts_with('{') { "{}" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            match self.param_names.get(&prefix) {
                Some((other, other_op)) if other != p => self.diags.emit(
                    Code::DuplicateRoute,
                    rest.span,
                    format!("`{{{p}}}` sits where `{other_op}` names the parameter `{{{other}}}`"),
                    format!("use `{{{other}}}` here too: a router matches one parameter name per position"),
                ),
                Some(_) => {}
                None => {
                    self.param_names.insert(prefix, (p.to_string(), name.clone()));
                }
            }
        }
        let normalized: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        if let Some(other) = routes.insert((method, normalized), name.clone()) {
            self.diags.emit(
                Code::DuplicateRoute,
                rest.span,
                format!(
                    "`{} {path}` is also the route of `{other}`",
                    method.as_str()
                ),
                "give each operation its own method and path",
            );
        }
        Some(method)
    }

    /// Can a value of this type travel as one path or query parameter?
    pub(super) fn is_scalar(&self, ty: &TypeExpr) -> bool {
        let mut current = ty.clone();
        for _ in 0..32 {
            match current {
                TypeExpr::Prim(_) => return true,
                TypeExpr::Ref(r) => match self.scope.resolve_named(self.index, &r) {
                    Ok((_, decl)) => match &decl.body {
                        TypeBody::Newtype { ty, .. } => current = ty.value.clone(),
                        TypeBody::Enum { .. } => return true,
                        TypeBody::Struct { .. } | TypeBody::Union { .. } => return false,
                    },
                    Err(_) => return true, // reported elsewhere
                },
                _ => return false,
            }
        }
        false
    }

    /// Path parameters must be required scalars; on GET, HEAD and DELETE every other input
    /// field is a query parameter and must be a scalar, an optional scalar or a list of them.
    pub(super) fn check_param_types(
        &mut self,
        op: &OperationDecl,
        method: HttpMethod,
        params: &[String],
        fields: &[FieldDecl],
    ) {
        let query = method.input_in_query();
        for f in fields {
            let in_path = params.contains(&f.name.value);
            let ok = if in_path {
                self.is_scalar(&f.ty.value)
            } else if query {
                let (inner, _) = f.ty.value.unwrap_optional();
                match inner {
                    TypeExpr::List(item) => self.is_scalar(item),
                    other => self.is_scalar(other),
                }
            } else {
                true
            };
            if !ok {
                let (place, allowed) = if in_path {
                    (
                        "path",
                        "a required string, number, id, enum or newtype of one",
                    )
                } else {
                    ("query", "a scalar, an optional scalar or a list of scalars")
                };
                self.diags.emit(
                    Code::ParamNotScalar,
                    f.ty.span,
                    format!(
                        "field `{}` of `{}` is a {place} parameter of `{}`, but its type cannot be one",
                        f.name.value,
                        op.name.value,
                        span_route(op)
                    ),
                    format!("make it {allowed}, or send it in a body with POST, PUT or PATCH"),
                );
            }
        }
    }
}

pub(super) fn span_route(op: &OperationDecl) -> String {
    op.rest
        .as_ref()
        .and_then(|r| r.ok())
        .map_or_else(String::new, |r| format!("{} {}", r.method.as_str(), r.path))
}
