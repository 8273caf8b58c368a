//! Time to load, validate and emit all Rust for a synthetic service of 500 operations and
//! 1,000 types, against a baseline in the same run: parsing the same text with yaml-rust2's
//! own loader (the floor any YAML-based generator pays).
//!
//! `cargo bench -p pactum-codegen --bench pipeline` — or, to look at the input,
//! `cargo bench -p pactum-codegen --bench pipeline -- --write-contract synth.yaml`.

#[path = "support/synth.rs"]
mod synth;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const OPS: usize = 500;
const TYPES: usize = 1000;

/// Runs `f` `n` times after a warm-up; returns the sorted samples.
fn sample(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(name: &str, t: &[Duration]) -> Duration {
    let median = t[t.len() / 2];
    println!(
        "{name:<34} min {:>8.2} ms   median {:>8.2} ms   max {:>8.2} ms",
        ms(t[0]),
        ms(median),
        ms(t[t.len() - 1])
    );
    median
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = synth::contract(OPS, TYPES);
    if let Some(i) = args.iter().position(|a| a == "--write-contract") {
        let path = args.get(i + 1).expect("--write-contract <path>");
        std::fs::write(path, &text).expect("writes");
        println!("wrote {path} ({} bytes)", text.len());
        return;
    }
    let iterations = 15;
    let inputs = vec![(PathBuf::from("synth.yaml"), text.clone())];
    let outcome = pactum_codegen::check_sources(&inputs);
    let ir = outcome
        .ir
        .unwrap_or_else(|| panic!("{}", outcome.diagnostics.render(&outcome.sources, false)));
    let files = pactum_codegen::emit::module_tree(&ir).expect("emits");
    let lines: usize = files.iter().map(|f| f.contents.lines().count()).sum();
    println!(
        "synthetic contract: {OPS} operations, {} named types ({TYPES} declared + {OPS} inputs), {} KiB YAML -> {lines} lines of Rust",
        ir.contracts[0].types.len(),
        text.len() / 1024
    );

    let yaml = report(
        "baseline: yaml-rust2 YamlLoader",
        &sample(iterations, || {
            black_box(yaml_rust2::YamlLoader::load_from_str(black_box(&text)).unwrap());
        }),
    );
    let check = report(
        "pactum load+validate+lower",
        &sample(iterations, || {
            black_box(pactum_codegen::check_sources(black_box(&inputs)));
        }),
    );
    let emit = report(
        "pactum emit (quote+prettyplease)",
        &sample(iterations, || {
            black_box(pactum_codegen::emit::module_tree(black_box(&ir)).unwrap());
        }),
    );
    let total = report(
        "pactum total (YAML -> Rust text)",
        &sample(iterations, || {
            let ir = pactum_codegen::check_sources(black_box(&inputs))
                .ir
                .unwrap();
            black_box(pactum_codegen::emit::module_tree(&ir).unwrap());
        }),
    );
    println!(
        "ratios (median): check/yaml-parse {:.2}x, total/yaml-parse {:.2}x, emit share of total {:.0}%",
        ms(check) / ms(yaml),
        ms(total) / ms(yaml),
        100.0 * ms(emit) / ms(total)
    );
}
