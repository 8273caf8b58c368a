//! Synthetic contracts for benchmarks: one service with `ops` operations and `types` types,
//! shaped like real contracts (structs referencing each other, enums, constrained newtypes,
//! inline inputs, REST routes, errors, events).

use std::fmt::Write;

/// A contract with `ops` operations and `types` named types (plus `ops` inline inputs).
pub fn contract(ops: usize, types: usize) -> String {
    let mut s = String::new();
    let w = &mut s;
    writeln!(
        w,
        "pactum: 1\nservice: synth\nversion: 1.0.0\nowner: team-bench"
    )
    .unwrap();
    writeln!(
        w,
        "description: Synthetic service, {ops} operations and {types} types."
    )
    .unwrap();
    writeln!(w, "types:").unwrap();
    let prims = [
        "string",
        "u32",
        "i64",
        "uuid",
        "timestamp",
        "decimal",
        "bool",
        "f64",
    ];
    for i in 0..types {
        match i % 5 {
            0 => {
                writeln!(w, "  Status{i}:\n    enum: [active, paused, closed, archived]").unwrap();
            }
            1 => writeln!(
                w,
                "  Code{i}:\n    type: string\n    min_len: 1\n    max_len: 32\n    pattern: \"^[A-Z0-9-]+$\""
            )
            .unwrap(),
            _ => {
                writeln!(w, "  Record{i}:\n    description: Record number {i}.\n    fields:").unwrap();
                for f in 0..6 {
                    let ty = match (f, i) {
                        (0, _) => "uuid".to_string(),
                        (1, i) if i > 5 => format!("Status{}", (i / 5) * 5),
                        (2, i) if i > 5 => format!("list<Code{}>", (i / 5) * 5 + 1),
                        // A link to an earlier record in the same block of 25: real contracts
                        // nest a few levels, not hundreds (E0251 refuses those).
                        (3, i) if i % 25 > 5 => format!("optional<Record{}>", i - (i % 25) + 2),
                        _ => prims[(i + f) % prims.len()].to_string(),
                    };
                    writeln!(w, "      field_{f}: {{ type: \"{ty}\" }}").unwrap();
                }
            }
        }
    }
    writeln!(w, "errors:").unwrap();
    for e in 0..20 {
        writeln!(w, "  Failure{e}:\n    status: failed_precondition\n    fields: {{ id: uuid, reason: string }}").unwrap();
    }
    writeln!(w, "operations:").unwrap();
    let record = |i: usize| {
        let r = (i * 7) % types;
        r - (r % 5) + 2
    };
    for o in 0..ops {
        let safe = o % 2 == 0;
        writeln!(w, "  Operate{o}:").unwrap();
        writeln!(w, "    description: Operation {o}.").unwrap();
        writeln!(
            w,
            "    input: {{ id: uuid, filter: {{ type: string, max_len: 64 }}, page: u32 }}"
        )
        .unwrap();
        writeln!(w, "    output: Record{}", record(o)).unwrap();
        writeln!(
            w,
            "    errors: [Failure{}, Failure{}]",
            o % 20,
            (o + 7) % 20
        )
        .unwrap();
        if safe {
            writeln!(w, "    rest: GET /things{o}/{{id}}\n    safe: true").unwrap();
        } else {
            writeln!(w, "    rest: POST /things{o}/{{id}}\n    idempotency: key").unwrap();
        }
        writeln!(
            w,
            "    grpc: true\n    deadline: 300ms\n    retry: {{ attempts: 3, backoff: 10ms..1s }}"
        )
        .unwrap();
    }
    writeln!(w, "events:").unwrap();
    for e in 0..ops / 10 {
        writeln!(
            w,
            "  Thing{e}Changed:\n    version: 1\n    key: id\n    delivery: stream\n    fields: {{ id: uuid, record: Record{} }}",
            record(e)
        )
        .unwrap();
    }
    s
}
