//! Authentication: schemes are `bearer`, `api_key` or `mtls` with usable names and headers;
//! `default:` and operations' `auth:` name declared schemes; an operation's `auth:` needs the
//! contract's `auth:`.

use super::*;

/// The scheme types, as written.
pub(crate) const SCHEME_KINDS: &[&str] = &["bearer", "api_key", "mtls"];

impl ContractChecker<'_, '_> {
    pub(super) fn check_auth(&mut self) {
        let c = self.c;
        let Some(auth) = &c.auth else {
            for op in &c.operations {
                if let Some(a) = &op.auth {
                    if let OperationAuth::Schemes(_) = a.value {
                        self.diags.emit(
                            Code::Auth,
                            a.span,
                            format!(
                                "`{}` names authentication schemes, but the contract declares none",
                                op.name.value
                            ),
                            "declare them at the top level: `auth: { schemes: { staff: { type: bearer } }, default: [staff] }`",
                        );
                    }
                }
            }
            return;
        };
        let mut names = HashMap::new();
        for s in &auth.schemes {
            if self.name_ok(&s.name, Case::Snake, "scheme") {
                self.unique(&mut names, &s.name, "scheme");
            }
            if !SCHEME_KINDS.contains(&s.kind.value.as_str()) {
                self.diags.emit(
                    Code::Auth,
                    s.kind.span,
                    format!("unknown scheme type `{}`", s.kind.value),
                    match closest(&s.kind.value, SCHEME_KINDS.iter().copied()) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => "use `bearer` (a JWT), `api_key` (a header) or `mtls` (a client certificate)".into(),
                    },
                );
            }
            if let Some(h) = &s.header {
                let token = !h.value.is_empty()
                    && h.value
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch));
                if s.kind.value != "api_key" {
                    self.diags.emit(
                        Code::Auth,
                        h.span,
                        format!(
                            "`header` applies to `api_key` schemes, not `{}`",
                            s.kind.value
                        ),
                        "remove `header:`",
                    );
                } else if !token || h.value.eq_ignore_ascii_case("authorization") {
                    self.diags.emit(
                        Code::Auth,
                        h.span,
                        format!("`{}` cannot carry an API key", h.value),
                        "name a header of letters, digits, `-` and `_` other than `Authorization` (which bearer tokens use), e.g. `X-Api-Key`",
                    );
                }
            }
        }
        let declared: Vec<&str> = auth.schemes.iter().map(|s| s.name.value.as_str()).collect();
        let mut named: Vec<&Spanned<String>> = auth.default.iter().collect();
        for op in &c.operations {
            if let Some(Spanned {
                value: OperationAuth::Schemes(list),
                span,
            }) = &op.auth
            {
                if list.is_empty() {
                    self.diags.emit(
                        Code::Auth,
                        *span,
                        format!("`auth` of `{}` names no scheme", op.name.value),
                        "name the schemes it accepts, or write `auth: none` for a public operation",
                    );
                }
                named.extend(list.iter());
            }
        }
        for n in named {
            if n.value == "none" {
                self.diags.emit(
                    Code::Auth,
                    n.span,
                    "`none` cannot be listed with schemes",
                    "write `auth: none` alone for a public operation",
                );
            } else if !declared.contains(&n.value.as_str()) {
                self.diags.emit(
                    Code::Auth,
                    n.span,
                    format!("unknown authentication scheme `{}`", n.value),
                    match closest(&n.value, declared.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "declare it under `auth.schemes`, or use one of: {}",
                            declared.join(", ")
                        ),
                    },
                );
            }
        }
    }
}
