//! Types: references resolve, fields and their wire numbers, constraints fit their types,
//! nesting stays within what rustc can check, no type contains itself without an indirection,
//! and no two contracts' types reference each other.

use super::*;

impl ContractChecker<'_, '_> {
    /// Refuses types that hold chains of named types deeper than [`MAX_TYPE_NESTING`]: the
    /// generated Rust would exceed the compiler's recursion limit. Cycles (recursive types)
    /// are fine; only acyclic depth counts. Reported once, at the deepest type.
    pub(super) fn check_nesting_depth(&mut self) {
        let c = self.c;
        let names: HashMap<&str, &TypeDecl> =
            c.types.iter().map(|t| (t.name.value.as_str(), t)).collect();
        fn refs(ty: &TypeExpr, out: &mut Vec<String>) {
            match ty {
                TypeExpr::Ref(r) if r.service.is_none() => out.push(r.name.clone()),
                TypeExpr::List(i) | TypeExpr::Map(i) | TypeExpr::Optional(i) => refs(i, out),
                _ => {}
            }
        }
        let children = |t: &TypeDecl| {
            let mut out = Vec::new();
            match &t.body {
                TypeBody::Struct { fields, .. } => {
                    fields.iter().for_each(|f| refs(&f.ty.value, &mut out))
                }
                TypeBody::Newtype { ty, .. } => refs(&ty.value, &mut out),
                TypeBody::Union { variants, .. } => {
                    variants.iter().for_each(|v| refs(&v.ty.value, &mut out))
                }
                TypeBody::Enum { .. } => {}
            }
            out
        };
        // Iterative post-order DFS with memo; edges back into the current path are cycles.
        let mut depth: HashMap<String, usize> = HashMap::new();
        for t in &c.types {
            let mut stack: Vec<(String, usize)> = vec![(t.name.value.clone(), 0)];
            let mut on_path: HashSet<String> = HashSet::new();
            while let Some((name, next)) = stack.pop() {
                if depth.contains_key(&name) {
                    continue;
                }
                on_path.insert(name.clone());
                let kids = names
                    .get(name.as_str())
                    .map(|d| children(d))
                    .unwrap_or_default();
                if let Some(k) = kids.get(next) {
                    stack.push((name.clone(), next + 1));
                    if !depth.contains_key(k)
                        && !on_path.contains(k)
                        && names.contains_key(k.as_str())
                    {
                        stack.push((k.clone(), 0));
                    }
                    continue;
                }
                let d = 1 + kids
                    .iter()
                    .filter(|k| !on_path.contains(*k) || depth.contains_key(*k))
                    .filter_map(|k| depth.get(k))
                    .max()
                    .copied()
                    .unwrap_or(0);
                on_path.remove(&name);
                depth.insert(name, d);
            }
        }
        if let Some((name, d)) = depth
            .iter()
            .max_by_key(|(n, d)| (**d, std::cmp::Reverse(n.as_str())))
        {
            if *d > MAX_TYPE_NESTING {
                let span = names[name.as_str()].name.span;
                self.diags.emit(
                    Code::NestingTooDeep,
                    span,
                    format!("type `{name}` holds a chain of {d} nested named types; the limit is {MAX_TYPE_NESTING}"),
                    "Rust's compiler stops at its recursion limit on chains this deep: refer to distant records by id instead of embedding them",
                );
            }
        }
    }

    pub(super) fn resolve(&mut self, ty: &Spanned<TypeExpr>) -> bool {
        match self.scope.resolve(self.index, &ty.value) {
            Ok(_) => true,
            Err(u) => {
                self.diags
                    .emit(Code::Unresolved, ty.span, u.message, u.help);
                false
            }
        }
    }

    /// Names, types, constraints and lints of a field list. (Its wire numbers were
    /// assigned, and their collisions reported, when it was decoded.)
    pub(super) fn check_fields(&mut self, fields: &[FieldDecl]) {
        let mut names = HashMap::new();
        for f in fields {
            if self.name_ok(&f.name, Case::Snake, "field") {
                self.unique(&mut names, &f.name, "field");
            }
            if self.resolve(&f.ty) {
                self.check_constraints(&f.ty, &f.constraints, &f.name.value);
            }
            self.lint_vague(f);
        }
    }

    pub(super) fn lint_vague(&mut self, f: &FieldDecl) {
        let unstructured = match f.ty.value.unwrap_optional().0 {
            TypeExpr::Prim(Primitive::String | Primitive::Bytes) => true,
            TypeExpr::Map(inner) => matches!(**inner, TypeExpr::Prim(_)),
            _ => false,
        };
        if unstructured && VAGUE_NAMES.contains(&f.name.value.to_ascii_lowercase().as_str()) {
            self.diags.emit(
                Code::VagueFieldName,
                f.name.span,
                format!(
                    "field `{}` is vague and carries unstructured data",
                    f.name.value
                ),
                "name what it holds (`shipping_note`, `error_detail`) or give it a declared type",
            );
        }
    }

    /// The primitive a type finally is, through newtypes, for constraint checks.
    pub(super) fn base_primitive(&self, ty: &TypeExpr) -> Option<Primitive> {
        let mut current = ty.unwrap_optional().0.clone();
        for _ in 0..32 {
            match current {
                TypeExpr::Prim(p) => return Some(p),
                TypeExpr::Ref(r) => {
                    let (_, decl) = self.scope.resolve_named(self.index, &r).ok()?;
                    match &decl.body {
                        TypeBody::Newtype { ty, .. } => {
                            current = ty.value.unwrap_optional().0.clone()
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        None
    }

    pub(super) fn check_constraints(
        &mut self,
        ty: &Spanned<TypeExpr>,
        k: &Constraints,
        what: &str,
    ) {
        let inner = ty.value.unwrap_optional().0;
        let collection = matches!(inner, TypeExpr::List(_) | TypeExpr::Map(_));
        let prim = self.base_primitive(inner);
        let bad = |diags: &mut Diagnostics, span: Span, key: &str, applies: &str| {
            diags.emit(
                Code::InvalidConstraint,
                span,
                format!("`{key}` does not apply to `{what}`, whose type is not {applies}"),
                format!("remove `{key}`, or use it on {applies}"),
            );
        };
        for (key, n) in [("min", &k.min), ("max", &k.max)] {
            let Some(n) = n else { continue };
            match prim {
                Some(p) if p.is_numeric() => {
                    if let (Some((lo, hi)), Number::Int(v)) = (p.int_range(), n.value) {
                        if v < lo || v > hi {
                            self.diags.emit(
                                Code::InvalidConstraint,
                                n.span,
                                format!("`{key}: {v}` is outside the range of `{}`", p.name()),
                                format!("use a bound within {lo}..={hi}"),
                            );
                        }
                    } else if p.is_integer() {
                        self.diags.emit(
                            Code::InvalidConstraint,
                            n.span,
                            format!(
                                "`{key}` on integer type `{}` must be a whole number",
                                p.name()
                            ),
                            "write a whole number, e.g. `min: 1`",
                        );
                    }
                }
                _ => bad(self.diags, n.span, key, "a number"),
            }
        }
        if let (Some(lo), Some(hi)) = (&k.min, &k.max) {
            if lo.value.as_f64() > hi.value.as_f64() {
                self.diags.emit(
                    Code::InvalidConstraint,
                    hi.span,
                    format!("`max: {}` is below `min: {}`", hi.value, lo.value),
                    "swap them, or fix the bound",
                );
            }
        }
        for (key, n) in [("min_len", &k.min_len), ("max_len", &k.max_len)] {
            if let Some(n) = n {
                if !matches!(prim, Some(Primitive::String | Primitive::Bytes)) || collection {
                    bad(self.diags, n.span, key, "a string or bytes");
                }
            }
        }
        for (key, n) in [("min_items", &k.min_items), ("max_items", &k.max_items)] {
            if let Some(n) = n {
                if !collection {
                    bad(self.diags, n.span, key, "a list or map");
                }
            }
        }
        for (lo, hi) in [(&k.min_len, &k.max_len), (&k.min_items, &k.max_items)] {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo.value > hi.value {
                    self.diags.emit(
                        Code::InvalidConstraint,
                        hi.span,
                        format!("maximum {} is below minimum {}", hi.value, lo.value),
                        "swap them, or fix the bound",
                    );
                }
            }
        }
        if let Some(p) = &k.pattern {
            if prim != Some(Primitive::String) || collection {
                bad(self.diags, p.span, "pattern", "a string");
            } else if let Err(e) = regex_lite::Regex::new(&p.value) {
                self.diags.emit(
                    Code::InvalidConstraint,
                    p.span,
                    format!("`pattern` is not a valid regular expression: {e}"),
                    "fix the expression; Pactum uses the `regex` syntax (no look-around or back-references)",
                );
            }
        }
    }

    pub(super) fn check_type(&mut self, t: &TypeDecl) {
        match &t.body {
            TypeBody::Struct { fields, .. } => {
                self.check_fields(fields);
            }
            TypeBody::Enum { values, .. } => {
                if values.is_empty() {
                    self.diags.emit(
                        Code::InvalidValue,
                        t.name.span,
                        format!("enum `{}` has no values", t.name.value),
                        "list at least one value under `enum:`",
                    );
                }
                let mut names = HashMap::new();
                for v in values {
                    // Wire values may use `-` and `.` (`critical-now`, `v1.2`): the variant
                    // name is derived, and that must be an identifier.
                    let wire_ok = !v.name.value.is_empty()
                        && v.name
                            .value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                    let derived = Spanned::new(convert(&v.name.value, Case::Pascal), v.name.span);
                    if !wire_ok {
                        self.diags.emit(
                            Code::InvalidIdentifier,
                            v.name.span,
                            format!("enum value `{}` cannot become a Rust variant", v.name.value),
                            "use ASCII letters, digits, `_`, `-` and `.`, starting with a letter",
                        );
                        continue;
                    }
                    if !self.name_ok(&derived, Case::Pascal, "enum value") {
                        continue;
                    }
                    if convert(&v.name.value, Case::Pascal) == "Unrecognized" {
                        self.diags.emit(
                            Code::ReservedName,
                            v.name.span,
                            "enum value `unrecognized` is reserved",
                            "Pactum adds `Unrecognized(String)` to every enum to carry values from newer versions; rename this one",
                        );
                    }
                    self.unique(&mut names, &v.name, "enum value");
                }
            }
            TypeBody::Union { variants, tag, .. } => self.check_union(t, variants, tag.as_ref()),
            TypeBody::Newtype { ty, constraints } => {
                if let TypeExpr::Ref(r) = ty.value.unwrap_optional().0 {
                    if r.service.is_none() && r.name == t.name.value {
                        self.diags.emit(
                            Code::InfiniteType,
                            ty.span,
                            format!("newtype `{}` wraps itself", t.name.value),
                            "wrap a primitive or another type",
                        );
                        return;
                    }
                }
                if self.resolve(ty) {
                    self.check_constraints(ty, constraints, &t.name.value);
                }
            }
        }
    }

    /// A tagged union: two or more variants with snake_case names, each a struct (its fields
    /// sit beside the tag in JSON, so nothing else has a place to go), none of which has a
    /// field named like the tag.
    fn check_union(
        &mut self,
        t: &TypeDecl,
        variants: &[VariantDecl],
        tag: Option<&Spanned<String>>,
    ) {
        if variants.len() < 2 {
            self.diags.emit(
                Code::InvalidUnion,
                t.name.span,
                format!(
                    "union `{}` has {} variant{}; a union chooses between two or more",
                    t.name.value,
                    variants.len(),
                    if variants.len() == 1 { "" } else { "s" }
                ),
                "add another variant under `oneof:`, or use the one struct directly",
            );
        }
        let tag_name = tag.map_or(DEFAULT_UNION_TAG, |t| t.value.as_str());
        let tag_span = tag.map_or(t.name.span, |t| t.span);
        let tag_ok = tag_name.starts_with(|c: char| c.is_ascii_lowercase())
            && tag_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !tag_ok {
            self.diags.emit(
                Code::InvalidUnion,
                tag_span,
                format!("union tag `{tag_name}` is not a snake_case property name"),
                "use lowercase letters, digits and `_`, starting with a letter (e.g. `tag: kind`)",
            );
        }
        let mut names = HashMap::new();
        for v in variants {
            if self.name_ok(&v.name, Case::Snake, "variant") {
                if convert(&v.name.value, Case::Pascal) == "Unrecognized" {
                    self.diags.emit(
                        Code::ReservedName,
                        v.name.span,
                        "variant `unrecognized` is reserved",
                        "Pactum adds `Unrecognized` to every union to carry variants from newer versions; rename this one",
                    );
                }
                self.unique(&mut names, &v.name, "variant");
                if v.name.value == tag_name {
                    self.diags.emit(
                        Code::InvalidUnion,
                        v.name.span,
                        format!(
                            "variant `{}` of union `{}` is named like its tag",
                            v.name.value, t.name.value
                        ),
                        "protobuf names the `oneof` for the tag and its fields for the variants, in one namespace: rename the variant or choose another `tag:`",
                    );
                }
            }
            let TypeExpr::Ref(r) = &v.ty.value else {
                self.diags.emit(
                    Code::InvalidUnion,
                    v.ty.span,
                    format!(
                        "variant `{}` of union `{}` is not a named struct type",
                        v.name.value, t.name.value
                    ),
                    "declare a struct under `types:` (`fields: …`) and name it here; a union variant cannot be optional, a list, a map or a primitive",
                );
                continue;
            };
            if !self.resolve(&v.ty) {
                continue;
            }
            let Ok((_, decl)) = self.scope.resolve_named(self.index, r) else {
                continue;
            };
            let TypeBody::Struct { fields, .. } = &decl.body else {
                let shape = match decl.body {
                    TypeBody::Enum { .. } => "an enum",
                    TypeBody::Union { .. } => "a union",
                    _ => "a newtype",
                };
                self.diags.emit(
                    Code::InvalidUnion,
                    v.ty.span,
                    format!(
                        "variant `{}` of union `{}` is `{}`, which is {shape}, not a struct",
                        v.name.value, t.name.value, r.name
                    ),
                    "a variant's fields sit beside the tag in JSON, so it must be a struct: wrap the value in one (`fields: { value: … }`)",
                );
                continue;
            };
            if let Some(f) = fields.iter().find(|f| f.name.value == tag_name) {
                self.diags.emit(
                    Code::InvalidUnion,
                    tag_span,
                    format!(
                        "the tag `{tag_name}` of union `{}` is also a field of variant `{}` (`{}`)",
                        t.name.value, v.name.value, r.name
                    ),
                    format!(
                        "choose another tag (`tag: kind`), or rename `{}.{}`",
                        r.name, f.name.value
                    ),
                );
            }
        }
    }

    /// A struct that must contain itself (through required, non-collection fields) can never
    /// be built; optional and collection links are fine (they are boxed or heap-allocated).
    pub(super) fn check_infinite_types(&mut self) {
        let c = self.c;
        let mut edges: HashMap<String, Vec<(String, Span)>> = HashMap::new();
        for t in &c.types {
            let TypeBody::Struct { fields, .. } = &t.body else {
                continue;
            };
            for f in fields {
                if let TypeExpr::Ref(r) = &f.ty.value {
                    if let Ok((nr, decl)) = self.scope.resolve_named(self.index, r) {
                        if nr.contract == id_of(c) && Scope::shape(decl) == Shape::Struct {
                            edges
                                .entry(t.name.value.clone())
                                .or_default()
                                .push((decl.name.value.clone(), f.ty.span));
                        }
                    }
                }
            }
        }
        let mut reported = HashSet::new();
        for t in &c.types {
            let start = &t.name.value;
            // Iterative DFS: does `start` reach itself?
            let mut stack: Vec<&str> = edges
                .get(start)
                .map(|v| v.iter().map(|(n, _)| n.as_str()).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            while let Some(n) = stack.pop() {
                if n == start {
                    if reported.insert(start.clone()) {
                        let span = edges[start][0].1;
                        self.diags.emit(
                            Code::InfiniteType,
                            span,
                            format!("`{start}` contains itself through required fields, so no value of it can exist"),
                            "make one field on the cycle optional (`T?`) or a list",
                        );
                    }
                    break;
                }
                if seen.insert(n) {
                    if let Some(next) = edges.get(n) {
                        stack.extend(next.iter().map(|(n, _)| n.as_str()));
                    }
                }
            }
        }
    }
}

/// Contracts whose types reference each other compile fine in Rust, but their `.proto` files
/// would import each other, which protoc refuses. Reported once per pair, as a lint.
pub(super) fn check_contract_cycles(
    contracts: &[Contract],
    scope: &Scope<'_>,
    diags: &mut Diagnostics,
) {
    pub(super) fn refs(ty: &TypeExpr, out: &mut Vec<TypeRefExpr>) {
        match ty {
            TypeExpr::Ref(r) => out.push(r.clone()),
            TypeExpr::List(i) | TypeExpr::Map(i) | TypeExpr::Optional(i) => refs(i, out),
            TypeExpr::Prim(_) => {}
        }
    }
    let mut edges: Vec<HashSet<usize>> = vec![HashSet::new(); contracts.len()];
    for (i, c) in contracts.iter().enumerate() {
        let mut found = Vec::new();
        let fields = c
            .types
            .iter()
            .flat_map(|t| match &t.body {
                TypeBody::Struct { fields, .. } => fields.iter().map(|f| &f.ty.value).collect(),
                TypeBody::Newtype { ty, .. } => vec![&ty.value],
                TypeBody::Union { variants, .. } => variants.iter().map(|v| &v.ty.value).collect(),
                TypeBody::Enum { .. } => Vec::new(),
            })
            .chain(
                c.errors
                    .iter()
                    .flat_map(|e| e.fields.iter().map(|f| &f.ty.value)),
            )
            .chain(
                c.events
                    .iter()
                    .flat_map(|e| e.fields.iter().map(|f| &f.ty.value)),
            );
        for ty in fields {
            refs(ty, &mut found);
        }
        for r in found.iter().filter(|r| r.service.is_some()) {
            if let Ok((target, _)) = scope.resolve_named(i, r) {
                if let Some(j) = scope.index_of(&target.contract) {
                    if j != i {
                        edges[i].insert(j);
                    }
                }
            }
        }
    }
    for i in 0..contracts.len() {
        for &j in &edges[i] {
            if i < j && edges[j].contains(&i) {
                let (a, b) = (&contracts[i], &contracts[j]);
                diags.emit(
                    Code::ContractCycle,
                    b.service.span,
                    format!(
                        "contracts `{}` and `{}` use each other's types, so their .proto files would import each other, which protoc refuses",
                        id_of(a),
                        id_of(b)
                    ),
                    "move the shared types into one of them (or a third contract both use)",
                );
            }
        }
    }
}
