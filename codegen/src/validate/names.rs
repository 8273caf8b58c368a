//! Names: top-level names unique and well-formed, facts (operations, events) named as commands
//! or past-tense facts, and names that would clash once converted to Rust.

use super::*;

impl ContractChecker<'_, '_> {
    /// Types, errors, events and webhooks share the Rust type namespace of the module, together
    /// with the names generated for operations.
    pub(super) fn check_top_level_names(&mut self) {
        let c = self.c;
        let mut declared: Vec<(&Spanned<String>, &str)> = Vec::new();
        declared.extend(c.types.iter().map(|t| (&t.name, "type")));
        declared.extend(c.errors.iter().map(|t| (&t.name, "error")));
        declared.extend(c.events.iter().map(|t| (&t.name, "event")));
        declared.extend(c.webhooks.iter().map(|t| (&t.name, "webhook")));
        let mut names: HashMap<String, (&Spanned<String>, &str)> = HashMap::new();
        for (name, kind) in &declared {
            if !self.name_ok(name, Case::Pascal, kind) {
                continue;
            }
            let pascal = convert(&name.value, Case::Pascal);
            if RESERVED_TYPE_NAMES.contains(&pascal.as_str()) {
                self.diags.emit(
                    Code::GeneratedNameClash,
                    name.span,
                    format!("{kind} `{}` clashes with `{pascal}`, which Pactum generates for every contract", name.value),
                    format!("rename the {kind}, e.g. `{pascal}Info`"),
                );
                continue;
            }
            self.unique(&mut names, name, kind);
        }
        let mut ops: HashMap<String, (&Spanned<String>, &str)> = HashMap::new();
        for op in &c.operations {
            if !self.name_ok(&op.name, Case::Pascal, "operation") {
                continue;
            }
            self.unique(&mut ops, &op.name, "operation");
            let pascal = convert(&op.name.value, Case::Pascal);
            let mut generated = vec![format!("{pascal}Error")];
            if matches!(op.input, Some(Payload::Inline(..))) {
                generated.push(format!("{pascal}Request"));
            }
            if matches!(op.output, Some(Payload::Inline(..))) {
                generated.push(format!("{pascal}Response"));
            }
            for g in generated {
                if let Some((other, kind)) = names.get(&collision_key(&g)) {
                    self.diags.emit(
                        Code::GeneratedNameClash,
                        other.span,
                        format!(
                            "{kind} `{}` clashes with `{g}`, which Pactum generates for operation `{}`",
                            other.value, op.name.value
                        ),
                        format!("rename the {kind}, or declare the operation's payload as a named type and reference it"),
                    );
                }
            }
        }
    }

    pub(super) fn name_ok(&mut self, name: &Spanned<String>, case: Case, kind: &str) -> bool {
        match check_name(&name.value, case) {
            Ok(()) => true,
            Err(NameProblem::NotAnIdentifier) => {
                self.diags.emit(
                    Code::InvalidIdentifier,
                    name.span,
                    format!(
                        "{kind} name `{}` cannot become a Rust identifier",
                        name.value
                    ),
                    "use ASCII letters, digits and `_`, starting with a letter",
                );
                false
            }
            Err(NameProblem::Reserved(word)) => {
                self.diags.emit(
                    Code::ReservedName,
                    name.span,
                    format!(
                        "{kind} name `{}` becomes `{word}`, which Rust reserves",
                        name.value
                    ),
                    format!("rename it, e.g. `{}_value`", name.value),
                );
                false
            }
        }
    }

    /// Reports exact duplicates and case-conversion collisions within one namespace.
    pub(super) fn unique<'n>(
        &mut self,
        names: &mut HashMap<String, (&'n Spanned<String>, &'n str)>,
        name: &'n Spanned<String>,
        kind: &'n str,
    ) {
        let key = collision_key(&name.value);
        if let Some((first, first_kind)) = names.get(&key) {
            if first.value == name.value {
                self.diags.emit(
                    Code::DuplicateName,
                    name.span,
                    format!(
                        "`{}` is declared twice (first as {first_kind} at line {})",
                        name.value, first.span.line
                    ),
                    "rename or remove one of them",
                );
            } else {
                self.diags.emit(
                    Code::CaseCollision,
                    name.span,
                    format!(
                        "`{}` and `{}` (line {}) become the same Rust name",
                        name.value, first.value, first.span.line
                    ),
                    "rename one so they differ by more than case or underscores",
                );
            }
        } else {
            names.insert(key, (name, kind));
        }
    }

    pub(super) fn check_fact_name(&mut self, name: &Spanned<String>, kind: &str) {
        if let Verdict::NotPast { suggestion } = tense::check_event_name(&name.value) {
            self.diags.emit(
                Code::EventNotPastTense,
                name.span,
                format!("{kind} `{}` does not read as a fact that already happened", name.value),
                match suggestion {
                    Some(s) => format!("did you mean `{s}`? {kind}s are named `<Subject><PastVerb>`"),
                    None => format!(
                        "name what happened, `<Subject><PastVerb>`, e.g. `{}Changed` or `{}Created`",
                        name.value, name.value
                    ),
                },
            );
        } else if tense::reads_as_command(&name.value) {
            self.diags.emit(
                Code::EventNamedAsCommand,
                name.span,
                format!(
                    "{kind} `{}` reads like a command wrapped in an event",
                    name.value
                ),
                "name the fact itself (`OrderCreated`), or model the request as an operation",
            );
        }
    }
}
