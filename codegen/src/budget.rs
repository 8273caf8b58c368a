//! Budgets across `calls:`: whether what an operation calls fits in its deadline, and how
//! retries, depth and sequential calls add up along the chains the contracts declare.
//!
//! It runs on the IR, after lowering, because it needs every contract at once with its
//! references resolved and its durations parsed; it only reads the IR and reports, and an
//! error here drops the IR like any validation error (`check_sources`).
//!
//! The model is the runtime's: a `deadline` bounds a whole call, every attempt and pause
//! included; `retry.per_try` bounds one attempt (without it, one attempt may use the whole
//! deadline); the pause before retry `n` is at most `initial · 2^(n-1)`, capped at the
//! backoff's maximum. So the longest a callee's declared plan can need is
//! `attempts × per_try + the pauses' ceilings`, and a caller that gives it less has declared
//! retries that can never run (E0270). What a caller may actually wait for one call is that
//! plan cut at the callee's deadline, and steps one after another add those waits up (W0005).

use crate::diagnostics::{Code, Diagnostics, Span};
use crate::ir::{CallRef, ContractId, Idempotency, Ir, Operation, Retry};
use pactum_rules::duration::{format, DEFAULT_CALL_TIMEOUT_NS};
use std::collections::{HashMap, HashSet};

/// Most attempts one request may turn into at the end of a chain (attempts multiplied hop by
/// hop) before W0006 warns: retries belong at one layer.
pub const MAX_RETRY_AMPLIFICATION: u64 = 10;
/// Most hops of synchronous calls a chain may have before W0007 warns.
pub const MAX_CALL_DEPTH: usize = 3;
/// Most steps, one after another, one operation may make before W0008 warns.
pub const MAX_SEQUENTIAL_STEPS: usize = 4;

/// The longest a caller can wait for one operation, by its declared policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorstCase {
    /// Attempts the policy makes (1 without a retry policy).
    pub attempts: u32,
    /// The longest one attempt may take: `per_try`, else the deadline, else the default.
    pub per_try_ns: u64,
    /// The ceilings of the pauses between attempts, added up.
    pub backoff_ns: u64,
    /// The deadline, if the contract declares one.
    pub deadline_ns: Option<u64>,
}

impl WorstCase {
    /// What the policy can need: every attempt taking its longest, every pause its ceiling.
    pub fn plan_ns(&self) -> u64 {
        u64::from(self.attempts)
            .saturating_mul(self.per_try_ns)
            .saturating_add(self.backoff_ns)
    }

    /// The longest a caller waits: the plan, cut by the deadline the client enforces.
    pub fn wait_ns(&self) -> u64 {
        self.deadline_ns
            .map_or(self.plan_ns(), |d| d.min(self.plan_ns()))
    }

    /// `3 attempts × 2s + 150ms of backoff`; for a single attempt, where its time comes from.
    pub fn explain(&self) -> String {
        self.explain_with(format)
    }

    /// [`WorstCase::explain`] with durations written by `duration`.
    pub fn explain_with(&self, duration: fn(u64) -> String) -> String {
        if self.attempts <= 1 {
            return match self.deadline_ns {
                Some(_) => "one attempt, its deadline".into(),
                None => "one attempt, no deadline: the clients' default".into(),
            };
        }
        format!(
            "{} attempts × {} + {} of backoff",
            self.attempts,
            duration(self.per_try_ns),
            duration(self.backoff_ns)
        )
    }
}

/// The worst case of `op` under its contract's policy.
pub fn worst_case(op: &Operation) -> WorstCase {
    let deadline = op.deadline_ns;
    let budget = deadline.unwrap_or(DEFAULT_CALL_TIMEOUT_NS);
    let retry = op
        .retry
        .as_ref()
        .filter(|_| op.safe || op.idempotency == Idempotency::Key);
    let attempts = retry.map_or(1, |r| r.attempts.max(1));
    WorstCase {
        attempts,
        per_try_ns: retry
            .and_then(|r| r.per_try_ns)
            .map_or(budget, |p| p.min(budget)),
        backoff_ns: retry.map_or(0, |r| backoff_ceilings(r, attempts)),
        deadline_ns: deadline,
    }
}

/// The pauses' ceilings before retries 1 … `attempts - 1`, added up.
fn backoff_ceilings(r: &Retry, attempts: u32) -> u64 {
    (1..attempts)
        .map(|n| {
            let factor = 1u64.checked_shl(n - 1).unwrap_or(u64::MAX);
            r.initial_ns.saturating_mul(factor).min(r.max_ns)
        })
        .fold(0, u64::saturating_add)
}

/// One step of an operation's calls, costed.
#[derive(Clone, Debug)]
pub struct StepCost<'a> {
    /// Each call of the step with its callee's worst case (calls whose callee is not loaded
    /// are left out).
    pub calls: Vec<(&'a CallRef, WorstCase)>,
    /// The step's worst case: the longest a caller may wait for its slowest call (calls of
    /// one step run at the same time, and the client cuts each at its own deadline).
    pub ns: u64,
    /// The steps so far, this one included, one after another.
    pub total_ns: u64,
}

/// `op`'s steps costed, with `callee` finding the operation a reference names.
pub fn step_costs<'a>(
    op: &'a Operation,
    callee: impl Fn(&CallRef) -> Option<&'a Operation>,
) -> Vec<StepCost<'a>> {
    let mut total: u64 = 0;
    op.calls
        .iter()
        .map(|step| {
            let calls: Vec<(&'a CallRef, WorstCase)> = step
                .calls
                .iter()
                .filter_map(|r| Some((r, worst_case(callee(r)?))))
                .collect();
            let ns = calls.iter().map(|(_, w)| w.wait_ns()).max().unwrap_or(0);
            total = total.saturating_add(ns);
            StepCost {
                calls,
                ns,
                total_ns: total,
            }
        })
        .collect()
}

/// One step's calls as text: a lone call as it is, calls made at the same time joined by
/// `, ` between `open` and `close`.
pub fn step_text(calls: &[String], open: &str, close: &str) -> String {
    match calls {
        [one] => one.clone(),
        many => format!("{open}{}{close}", many.join(", ")),
    }
}

/// The operation `r` names, in `ir`.
pub fn callee<'a>(ir: &'a Ir, r: &CallRef) -> Option<&'a Operation> {
    ir.contracts
        .iter()
        .find(|c| c.id == r.target)?
        .operations
        .iter()
        .find(|o| o.name == r.operation)
}

/// An operation anywhere in the system: its contract and name.
type Key<'a> = (&'a ContractId, &'a str);

/// Runs every budget check over the IR.
pub fn check(ir: &Ir, diags: &mut Diagnostics) {
    let ops: HashMap<Key<'_>, &Operation> = ir
        .contracts
        .iter()
        .flat_map(|c| {
            c.operations
                .iter()
                .map(move |o| ((&c.id, o.name.as_str()), o))
        })
        .collect();
    let graph = Graph { ops: &ops };
    for c in &ir.contracts {
        for op in &c.operations {
            graph.check_deadline(&c.id, op, diags);
            check_chattiness(&c.id, op, diags);
        }
    }
    graph.check_chains(ir, diags);
}

struct Graph<'a> {
    ops: &'a HashMap<Key<'a>, &'a Operation>,
}

/// `cart.CheckoutCart`, with `@2` for a later major.
fn name(id: &ContractId, op: &str) -> String {
    if id.major > 1 {
        format!("{}.{op}@{}", id.service, id.major)
    } else {
        format!("{}.{op}", id.service)
    }
}

impl<'a> Graph<'a> {
    fn callee(&self, r: &CallRef) -> Option<&'a Operation> {
        self.ops.get(&(&r.target, r.operation.as_str())).copied()
    }

    /// E0270 for a callee whose plan does not fit in the caller's deadline, W0005 for steps
    /// that together may not.
    fn check_deadline(&self, id: &ContractId, op: &'a Operation, diags: &mut Diagnostics) {
        let Some(deadline) = op.deadline_ns else {
            return; // the caller's caller decides; nothing declared to check against
        };
        let caller = name(id, &op.name);
        let steps = step_costs(op, |r| self.callee(r));
        let mut failed = false;
        for (r, w) in steps.iter().flat_map(|s| s.calls.iter()) {
            if w.plan_ns() > deadline {
                failed = true;
                let callee_name = name(&r.target, &r.operation);
                diags.emit(
                    Code::CallBudget,
                    r.span,
                    format!(
                        "`{caller}` has {} but `{callee_name}` may need {} ({})",
                        format(deadline),
                        format(w.plan_ns()),
                        w.explain()
                    ),
                    fix_for(&caller, deadline, &callee_name, w),
                );
            }
        }
        let over_at = op
            .calls
            .iter()
            .zip(&steps)
            .find(|(_, cost)| cost.total_ns > deadline)
            .map(|(step, _)| step.span);
        if let (Some(span), false) = (over_at, failed) {
            let total = steps.last().map_or(0, |s| s.total_ns);
            let parts: Vec<String> = steps
                .iter()
                .map(|s| {
                    let names: Vec<String> = s
                        .calls
                        .iter()
                        .map(|(r, w)| {
                            format!("{} {}", name(&r.target, &r.operation), format(w.wait_ns()))
                        })
                        .collect();
                    step_text(&names, "max(", ")")
                })
                .collect();
            diags.emit(
                Code::CallsOverBudget,
                span,
                format!(
                    "`{caller}`'s calls may need {} one after another, more than its deadline {}",
                    format(total),
                    format(deadline)
                ),
                format!(
                    "{} = {}; make independent calls at the same time (`[a, b]`), shorten the callees' `per_try`, or raise the deadline",
                    parts.join(" + "),
                    format(total)
                ),
            );
        }
    }

    /// W0006 (attempts multiplied hop by hop), W0007 (depth) and W0009 (cycles), each at the
    /// call where a chain first crosses the bound. Computed once per operation, bottom-up, with
    /// an explicit stack, so a long chain cannot overflow the generator's.
    fn check_chains(&self, ir: &'a Ir, diags: &mut Diagnostics) {
        let mut done: HashMap<Key<'a>, Chain<'a>> = HashMap::new();
        let mut on_stack: HashSet<Key<'a>> = HashSet::new();
        // One report per call and finding.
        let mut reported: HashSet<(Code, Span)> = HashSet::new();
        for c in &ir.contracts {
            for op in &c.operations {
                let root: Key<'a> = (&c.id, op.name.as_str());
                if done.contains_key(&root) {
                    continue;
                }
                // Frames: an operation and the index of its next call to visit.
                let mut stack: Vec<(Key<'a>, &'a Operation, usize)> = vec![(root, op, 0)];
                on_stack.insert(root);
                while let Some((key, op, next)) = stack.pop() {
                    let refs: Vec<&'a CallRef> =
                        op.calls.iter().flat_map(|s| s.calls.iter()).collect();
                    if let Some(r) = refs.get(next) {
                        stack.push((key, op, next + 1));
                        let child: Key<'a> = (&r.target, r.operation.as_str());
                        if on_stack.contains(&child) {
                            if reported.insert((Code::CallCycle, r.span)) {
                                let mut cycle: Vec<String> = stack
                                    .iter()
                                    .skip_while(|(k, _, _)| *k != child)
                                    .map(|(k, _, _)| name(k.0, k.1))
                                    .collect();
                                cycle.push(name(child.0, child.1));
                                diags.emit(
                                    Code::CallCycle,
                                    r.span,
                                    format!(
                                        "`{}` calls back into its own chain",
                                        name(key.0, key.1)
                                    ),
                                    format!(
                                        "{}; a cycle of synchronous calls can call itself until every deadline runs out: break it with an event",
                                        cycle.join(" → ")
                                    ),
                                );
                            }
                        } else if !done.contains_key(&child) {
                            if let Some(callee) = self.callee(r) {
                                on_stack.insert(child);
                                stack.push((child, callee, 0));
                            }
                        }
                        continue;
                    }
                    // Every call visited: the chain below `op` is known.
                    let chain = self.finish(key, op, &refs, &done, &mut reported, diags);
                    on_stack.remove(&key);
                    done.insert(key, chain);
                }
            }
        }
    }

    /// The longest-amplifying and the deepest chain below `op`, from its callees' (cycles
    /// count as ending), reporting the calls where a bound is first crossed.
    fn finish(
        &self,
        key: Key<'a>,
        op: &'a Operation,
        refs: &[&'a CallRef],
        done: &HashMap<Key<'a>, Chain<'a>>,
        reported: &mut HashSet<(Code, Span)>,
        diags: &mut Diagnostics,
    ) -> Chain<'a> {
        let attempts = u64::from(worst_case(op).attempts);
        let mut chain = Chain {
            amplification: attempts,
            amplified: vec![(key, attempts)],
            depth: 0,
            deepest: vec![key],
        };
        for r in refs {
            let child: Key<'a> = (&r.target, r.operation.as_str());
            let Some(below) = done.get(&child) else {
                continue;
            };
            let amplification = attempts.saturating_mul(below.amplification);
            if amplification > MAX_RETRY_AMPLIFICATION
                && below.amplification <= MAX_RETRY_AMPLIFICATION
                && reported.insert((Code::RetryAmplification, r.span))
            {
                let hops: Vec<String> = std::iter::once((key, attempts))
                    .chain(below.amplified.iter().copied())
                    .map(|(k, n)| format!("{} ×{n}", name(k.0, k.1)))
                    .collect();
                let last = below.amplified.last().map_or(child, |(k, _)| *k);
                diags.emit(
                    Code::RetryAmplification,
                    r.span,
                    format!(
                        "one call of `{}` may become {amplification} attempts at `{}`",
                        name(key.0, key.1),
                        name(last.0, last.1)
                    ),
                    format!(
                        "{}; retry at one layer: lower `attempts` on all hops but one (at most {MAX_RETRY_AMPLIFICATION} in all)",
                        hops.join(" → ")
                    ),
                );
            }
            if amplification > chain.amplification {
                chain.amplification = amplification;
                chain.amplified = std::iter::once((key, attempts))
                    .chain(below.amplified.iter().copied())
                    .collect();
            }
            let depth = below.depth + 1;
            if depth > MAX_CALL_DEPTH
                && below.depth <= MAX_CALL_DEPTH
                && reported.insert((Code::DeepCallChain, r.span))
            {
                let hops: Vec<String> = std::iter::once(key)
                    .chain(below.deepest.iter().copied())
                    .map(|k| name(k.0, k.1))
                    .collect();
                diags.emit(
                    Code::DeepCallChain,
                    r.span,
                    format!(
                        "`{}` starts a chain of {depth} synchronous calls",
                        name(key.0, key.1)
                    ),
                    format!(
                        "{}; every hop adds latency and a way to fail: keep chains to {MAX_CALL_DEPTH} hops, or hand the tail to an event",
                        hops.join(" → ")
                    ),
                );
            }
            if depth > chain.depth {
                chain.depth = depth;
                chain.deepest = std::iter::once(key)
                    .chain(below.deepest.iter().copied())
                    .collect();
            }
        }
        chain
    }
}

/// What is known of the chains below one operation.
struct Chain<'a> {
    /// Attempts one call of it may become at the far end of its most-retried chain.
    amplification: u64,
    /// That chain, with each hop's attempts.
    amplified: Vec<(Key<'a>, u64)>,
    /// Hops of its deepest chain.
    depth: usize,
    /// That chain.
    deepest: Vec<Key<'a>>,
}

/// The help of E0270: the `per_try` that would fit, or what else to change.
fn fix_for(caller: &str, deadline: u64, callee: &str, w: &WorstCase) -> String {
    let room = deadline.saturating_sub(w.backoff_ns) / u64::from(w.attempts.max(1));
    // Whole milliseconds, rounded down, so the suggestion fits.
    let per_try = room / 1_000_000 * 1_000_000;
    if w.attempts > 1 && per_try > 0 {
        format!(
            "give `{callee}` `retry: {{ per_try: {} }}` or less so its {} attempts fit, lower its `attempts`, or raise `{caller}`'s deadline",
            format(per_try),
            w.attempts
        )
    } else if w.deadline_ns.is_none() {
        format!(
            "give `{callee}` a deadline shorter than {} (without one a client waits up to {}), or raise `{caller}`'s deadline",
            format(deadline),
            format(DEFAULT_CALL_TIMEOUT_NS)
        )
    } else {
        format!(
            "shorten `{callee}`'s deadline or attempts, or raise `{caller}`'s deadline above {}",
            format(w.plan_ns())
        )
    }
}

/// W0008: more sequential steps than [`MAX_SEQUENTIAL_STEPS`], or one operation called in
/// more than one step.
fn check_chattiness(id: &ContractId, op: &Operation, diags: &mut Diagnostics) {
    let caller = name(id, &op.name);
    if let Some(step) = op.calls.get(MAX_SEQUENTIAL_STEPS) {
        let steps: Vec<String> = op
            .calls
            .iter()
            .map(|s| {
                let names: Vec<String> = s
                    .calls
                    .iter()
                    .map(|r| name(&r.target, &r.operation))
                    .collect();
                step_text(&names, "[", "]")
            })
            .collect();
        diags.emit(
            Code::ChattyCalls,
            step.span,
            format!(
                "`{caller}` makes {} calls one after another",
                op.calls.len()
            ),
            format!(
                "{}; make independent calls at the same time (`[a, b]`), or give the callee one operation that does the work",
                steps.join(" → ")
            ),
        );
    }
    let mut seen: HashSet<(&ContractId, &str)> = HashSet::new();
    for step in &op.calls {
        for r in &step.calls {
            if !seen.insert((&r.target, r.operation.as_str())) {
                diags.emit(
                    Code::ChattyCalls,
                    r.span,
                    format!(
                        "`{caller}` calls `{}` in more than one step",
                        name(&r.target, &r.operation)
                    ),
                    "call it once with everything it needs: one operation that takes a batch",
                );
            }
        }
    }
}
