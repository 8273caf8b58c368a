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
use std::collections::{BTreeMap, HashMap, HashSet};

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
                Some(d) if d > self.per_try_ns => "one attempt, its per_try".into(),
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
        // The runtime cuts every attempt at `per_try`, retried or not.
        per_try_ns: op
            .retry
            .as_ref()
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

/// `cart.CheckoutCart@1`: with the major, so the name resolves to the same operation when
/// pasted back into a contract whatever other majors are loaded.
fn name(id: &ContractId, op: &str) -> String {
    format!("{}.{op}@{}", id.service, id.major)
}

impl<'a> Graph<'a> {
    fn callee(&self, r: &CallRef) -> Option<&'a Operation> {
        self.ops.get(&(&r.target, r.operation.as_str())).copied()
    }

    /// E0270 for a callee whose plan does not fit in the caller's deadline, W0005 for steps
    /// that together may not.
    fn check_deadline(&self, id: &ContractId, op: &'a Operation, diags: &mut Diagnostics) {
        // What the handler has for its calls: one attempt's time (`per_try`, within the
        // deadline), since it runs under the attempt's deadline.
        let per_try = op.retry.as_ref().and_then(|r| r.per_try_ns);
        let deadline = match (op.deadline_ns, per_try) {
            (Some(d), Some(p)) => d.min(p),
            (Some(d), None) => d,
            (None, Some(p)) => p,
            // The caller's caller decides; nothing declared to check against.
            (None, None) => return,
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

    /// W0006 (attempts multiplied hop by hop), W0007 (depth) and W0009 (cycles). The call
    /// graph is cut into strongly connected components (Tarjan's algorithm, with an explicit
    /// stack, so a long chain cannot overflow the generator's); each cycle is reported once,
    /// and chains are measured on the graph of components, where a cycle counts as where a
    /// chain ends. Every operation's chain is computed once, from its callees', in O(V + E),
    /// and the same whatever order the contracts were read in. A finding is reported at the
    /// call where a chain first crosses its bound.
    fn check_chains(&self, ir: &'a Ir, diags: &mut Diagnostics) {
        // Nodes, in a stable order, and each one's calls.
        let nodes: Vec<(Key<'a>, &'a Operation)> = ir
            .contracts
            .iter()
            .flat_map(|c| {
                c.operations
                    .iter()
                    .map(move |o| ((&c.id, o.name.as_str()), o))
            })
            .collect();
        let index: HashMap<Key<'a>, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (*k, i))
            .collect();
        let edges: Vec<Vec<(usize, &'a CallRef)>> = nodes
            .iter()
            .map(|(_, op)| {
                op.calls
                    .iter()
                    .flat_map(|s| s.calls.iter())
                    .filter_map(|r| Some((*index.get(&(&r.target, r.operation.as_str()))?, r)))
                    .collect()
            })
            .collect();
        let component = strongly_connected(&edges);
        let attempts: Vec<u64> = nodes
            .iter()
            .map(|(_, op)| u64::from(worst_case(op).attempts))
            .collect();
        // One W0009 per cycle, at its first call by position.
        let mut reported: HashSet<(Code, Span)> = HashSet::new();
        let mut cycles: BTreeMap<usize, (Span, usize, usize)> = BTreeMap::new();
        for (from, calls) in edges.iter().enumerate() {
            for (to, r) in calls {
                if component[from] == component[*to] {
                    let entry = cycles.entry(component[from]).or_insert((r.span, from, *to));
                    if r.span < entry.0 {
                        *entry = (r.span, from, *to);
                    }
                }
            }
        }
        for (span, from, to) in cycles.into_values() {
            let mut hops: Vec<String> = cycle_path(&edges, &component, to, from)
                .into_iter()
                .map(|n| name(nodes[n].0 .0, nodes[n].0 .1))
                .collect();
            hops.push(name(nodes[to].0 .0, nodes[to].0 .1));
            diags.emit(
                Code::CallCycle,
                span,
                format!(
                    "`{}` calls back into its own chain",
                    name(nodes[from].0 .0, nodes[from].0 .1)
                ),
                format!(
                    "{}; a cycle of synchronous calls can call itself until every deadline runs out: break it with an event",
                    hops.join(" → ")
                ),
            );
        }
        // Chains on the graph of components, callees first (Tarjan numbers components in
        // reverse topological order). A cycle's members share one chain: any of them can reach
        // the others, so the cycle is one hop-less node with its members' largest attempts
        // and every call they make out of it.
        let count = component.iter().copied().max().map_or(0, |m| m + 1);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (n, k) in component.iter().enumerate() {
            members[*k].push(n);
        }
        let mut amp = vec![1u64; count];
        let mut amp_next: Vec<Option<usize>> = vec![None; count];
        let mut depth = vec![0usize; count];
        let mut depth_next: Vec<Option<usize>> = vec![None; count];
        for k in 0..count {
            let own = members[k].iter().map(|n| attempts[*n]).max().unwrap_or(1);
            amp[k] = own;
            for n in &members[k] {
                for (c, r) in &edges[*n] {
                    let below = component[*c];
                    if below == k {
                        continue; // inside the cycle, reported above
                    }
                    let through = own.saturating_mul(amp[below]);
                    if through > MAX_RETRY_AMPLIFICATION
                        && amp[below] <= MAX_RETRY_AMPLIFICATION
                        && reported.insert((Code::RetryAmplification, r.span))
                    {
                        let chain = chain_from(*n, *c, &amp_next, &component);
                        let last = *chain.last().unwrap_or(c);
                        let hops: Vec<String> = chain
                            .iter()
                            .map(|h| {
                                format!(
                                    "{} ×{}",
                                    name(nodes[*h].0 .0, nodes[*h].0 .1),
                                    attempts[*h]
                                )
                            })
                            .collect();
                        diags.emit(
                            Code::RetryAmplification,
                            r.span,
                            format!(
                                "one call of `{}` may become {through} attempts at `{}`",
                                name(nodes[*n].0 .0, nodes[*n].0 .1),
                                name(nodes[last].0 .0, nodes[last].0 .1)
                            ),
                            format!(
                                "{}; retry at one layer: lower `attempts` on all hops but one (at most {MAX_RETRY_AMPLIFICATION} in all)",
                                shorten(&hops)
                            ),
                        );
                    }
                    if through > amp[k] {
                        amp[k] = through;
                        amp_next[k] = Some(*c);
                    }
                    let hops = depth[below] + 1;
                    if hops > MAX_CALL_DEPTH
                        && depth[below] <= MAX_CALL_DEPTH
                        && reported.insert((Code::DeepCallChain, r.span))
                    {
                        let chain: Vec<String> = chain_from(*n, *c, &depth_next, &component)
                            .iter()
                            .map(|h| name(nodes[*h].0 .0, nodes[*h].0 .1))
                            .collect();
                        diags.emit(
                            Code::DeepCallChain,
                            r.span,
                            format!(
                                "`{}` starts a chain of {hops} synchronous calls",
                                name(nodes[*n].0 .0, nodes[*n].0 .1)
                            ),
                            format!(
                                "{}; every hop adds latency and a way to fail: keep chains to {MAX_CALL_DEPTH} hops, or hand the tail to an event",
                                shorten(&chain)
                            ),
                        );
                    }
                    if hops > depth[k] {
                        depth[k] = hops;
                        depth_next[k] = Some(*c);
                    }
                }
            }
        }
    }
}

/// The chain a finding prints: `from`, the call to `first`, then each component's chosen
/// next call.
fn chain_from(
    from: usize,
    first: usize,
    next: &[Option<usize>],
    component: &[usize],
) -> Vec<usize> {
    let mut chain = vec![from, first];
    while let Some(n) = next[component[*chain.last().expect("two at least")]] {
        chain.push(n);
    }
    chain
}

/// A chain for a help line: a long one keeps its first ten hops and its last.
fn shorten(hops: &[String]) -> String {
    if hops.len() <= 12 {
        return hops.join(" → ");
    }
    format!(
        "{} → … ({} more) → {}",
        hops[..10].join(" → "),
        hops.len() - 11,
        hops[hops.len() - 1]
    )
}

/// Tarjan's strongly connected components, iteratively: each node's component number, numbered
/// so that a component's callees have lower numbers (reverse topological order).
fn strongly_connected(edges: &[Vec<(usize, &CallRef)>]) -> Vec<usize> {
    const NONE: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low, mut component) = (vec![NONE; n], vec![0; n], vec![NONE; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut next_index, mut next_component) = (Vec::new(), 0, 0);
    for root in 0..n {
        if index[root] != NONE {
            continue;
        }
        // Frames: a node and the position of its next edge.
        let mut frames: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, at)) = frames.last() {
            if let Some((w, _)) = edges[v].get(at) {
                frames.last_mut().expect("a frame").1 += 1;
                let w = *w;
                if index[w] == NONE {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    frames.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            frames.pop();
            if let Some(&(parent, _)) = frames.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = next_component;
                    if w == v {
                        break;
                    }
                }
                next_component += 1;
            }
        }
    }
    component
}

/// A path from `from` to `to` inside their component (breadth first), both included.
fn cycle_path(
    edges: &[Vec<(usize, &CallRef)>],
    component: &[usize],
    from: usize,
    to: usize,
) -> Vec<usize> {
    let mut came_from: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = HashSet::from([from]);
    while let Some(v) = queue.pop_front() {
        if v == to {
            break;
        }
        for (w, _) in &edges[v] {
            if component[*w] == component[from] && seen.insert(*w) {
                came_from.insert(*w, v);
                queue.push_back(*w);
            }
        }
    }
    let mut path = vec![to];
    while let Some(prev) = path.last().and_then(|v| came_from.get(v)) {
        path.push(*prev);
    }
    path.reverse();
    path
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
