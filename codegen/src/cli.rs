//! The `pactum` command line: argument parsing and the thin layer that prints results.

use crate::emit;
use crate::outputs::Output;
use crate::project::{self, Project};
use crate::scaffold;
use crate::write::{self, FileStatus};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "pactum",
    version,
    about = "Service contracts in YAML → typed Rust for REST, gRPC, events and webhooks.",
    after_help = "Examples:\n  pactum generate                # what pactum.yaml lists\n  pactum generate --check        # CI: fail if anything is stale\n  pactum check contracts/\n  pactum generate contracts/ --out src/generated --openapi openapi --proto proto\n  pactum schema > pactum.schema.json"
)]
struct Cli {
    /// When to color diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Color {
    /// Color when stderr is a terminal and NO_COLOR is unset.
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate and lint contracts; report every problem with file:line:col.
    #[command(
        after_help = "Examples:\n  pactum check contracts/\n  pactum check contracts/orders/v2.yaml contracts/payments/v1.yaml --deny-warnings"
    )]
    Check(CheckArgs),
    /// Generate Rust from contracts. Writes only files whose content changed; writes nothing
    /// when any contract has an error.
    #[command(
        after_help = "Examples:\n  pactum generate                                         # reads pactum.yaml\n  pactum generate --check                                 # CI: fail if stale\n  pactum generate contracts/ --out src/generated          # no project file needed\n  pactum generate --proto /tmp/proto                      # pactum.yaml, one output moved"
    )]
    Generate(GenerateArgs),
    /// Classify every change between two sets of contracts as breaking or compatible.
    #[command(
        after_help = "Examples:\n  pactum diff old-contracts/ contracts/\n  pactum diff contracts/orders/v1.yaml /tmp/orders-v1-edited.yaml --format json"
    )]
    Diff(DiffArgs),
    /// Write Markdown documentation: a page per contract version, and the system topology as
    /// Mermaid (topology.md) and Graphviz DOT (topology.dot).
    #[command(
        after_help = "Examples:\n  pactum docs contracts/ --out generated-example/docs\n  pactum docs contracts/ --out generated-example/docs --check   # CI: fail if stale\n  dot -Tsvg generated-example/docs/topology.dot > topology.svg"
    )]
    Docs(DocsArgs),
    /// Write Kubernetes manifests: a `Service` per service, and with `--mesh` the mesh's
    /// routes carrying each operation's deadline and (only where the contract allows them)
    /// retries. Writes nothing when any contract has an error.
    #[command(
        after_help = "Examples:\n  pactum manifests contracts/ --out deploy/\n  pactum manifests --out deploy/ --mesh linkerd --namespace shop\n  pactum manifests --out deploy/ --mesh istio --check   # CI: fail if stale\n\nWith a mesh, load the <service>-pactum-mesh ConfigMap into each service's pods (envFrom):\nit sets PACTUM_MESH_RETRIES=1, so the generated clients leave retrying to the mesh."
    )]
    Manifests(ManifestsArgs),
    /// Start a service from a contract: a workspace that builds on its own, with the
    /// generated code in one crate and the service (REST and gRPC servers, health, telemetry,
    /// graceful shutdown, a handler file per contract version, a consumer per `consumes`
    /// entry) in another. Then `pactum generate` in that directory keeps it current.
    #[command(
        after_help = "Examples:\n  pactum new orders-service --contract contracts/orders/v1.yaml\n  pactum new orders-service --contract contracts/orders/v1.yaml --contract contracts/orders/v2.yaml --name orders\n  cd orders-service && cargo run -p orders -- --http 8080 --grpc 50051\n\nAfter a contract change, run `pactum generate` in the service's directory: it rewrites only\ngenerated files and lists the operations that have no handler yet."
    )]
    New(NewArgs),
    /// Print the JSON Schema of the contract language.
    #[command(
        after_help = "Example:\n  pactum schema > pactum.schema.json\n  # then, first line of a contract:\n  # yaml-language-server: $schema=./pactum.schema.json"
    )]
    Schema,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Contract files, or directories searched for *.yaml / *.yml. Default: the
    /// `contracts:` of the nearest `pactum.yaml`.
    paths: Vec<PathBuf>,
    /// The project file to read instead of the nearest `pactum.yaml`.
    #[arg(long, value_name = "FILE", global = true)]
    project: Option<PathBuf>,
    /// Treat lint warnings (and compatible changes without a minor bump) as errors.
    #[arg(long, short = 'D', alias = "deny")]
    deny_warnings: bool,
    /// Also compare with a baseline: a directory or file of contracts, or a git revision
    /// (`main`, `HEAD~1`, a tag) at which the same paths are read.
    #[arg(long, value_name = "DIR|REV")]
    against: Option<String>,
    /// Output format of the comparison.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `path:line:col: breaking[rule]: …` with `help:` lines.
    Human,
    /// One JSON document on stdout.
    Json,
}

#[derive(Args, Debug)]
struct DiffArgs {
    /// The old contracts (file or directory).
    old: PathBuf,
    /// The new contracts (file or directory).
    new: PathBuf,
    /// Fail on compatible changes without a minor bump too.
    #[arg(long, short = 'D')]
    deny_warnings: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(Args, Debug)]
struct NewArgs {
    /// The directory to create the service in.
    dir: PathBuf,
    /// The contract to serve; repeat it for several majors of one service.
    #[arg(long, required = true, value_name = "FILE")]
    contract: Vec<PathBuf>,
    /// Where the contracts it uses are. Default: the directory above the contract's own
    /// (the `contracts/<service>/v<major>.yaml` layout).
    #[arg(long, value_name = "DIR")]
    contracts: Option<PathBuf>,
    /// The service crate's name (default: the contract's service); the generated code's
    /// crate is `<name>-api`.
    #[arg(long)]
    name: Option<String>,
    /// Depend on the `pactum` runtime at this path instead of its released version.
    #[arg(long, value_name = "DIR")]
    pactum_path: Option<PathBuf>,
    /// Add what the scaffold is missing to a directory that is not empty. No existing file
    /// is overwritten.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    #[command(flatten)]
    inputs: CheckArgs,
    /// Rust output directory: receives `mod.rs` and `<service>/v<major>.rs`.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Write one OpenAPI 3.1 document per contract version with REST operations here.
    #[arg(long, value_name = "DIR")]
    openapi: Option<PathBuf>,
    /// Write one `.proto` per contract version here.
    #[arg(long, value_name = "DIR")]
    proto: Option<PathBuf>,
    /// Write one AsyncAPI 3.0 document per contract version with events, consumers or
    /// webhooks here.
    #[arg(long, value_name = "DIR")]
    asyncapi: Option<PathBuf>,
    /// Write the Markdown docs (as `pactum docs`) here.
    #[arg(long, value_name = "DIR")]
    docs: Option<PathBuf>,
    /// Write nothing; exit non-zero and list the files that would change.
    #[arg(long)]
    check: bool,
}

impl GenerateArgs {
    /// The output directories given as flags.
    fn flags(&self) -> BTreeMap<Output, PathBuf> {
        [
            (Output::Rust, &self.out),
            (Output::OpenApi, &self.openapi),
            (Output::Proto, &self.proto),
            (Output::AsyncApi, &self.asyncapi),
            (Output::Docs, &self.docs),
        ]
        .into_iter()
        .filter_map(|(o, d)| d.clone().map(|d| (o, d)))
        .collect()
    }
}

#[derive(Args, Debug)]
struct DocsArgs {
    #[command(flatten)]
    inputs: CheckArgs,
    /// Output directory: `<service>.v<major>.md`, `topology.md`, `topology.dot`. Default:
    /// the `docs` output of the nearest `pactum.yaml`.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Write nothing; exit non-zero and list the files that would change.
    #[arg(long)]
    check: bool,
}

#[derive(Args, Debug)]
struct ManifestsArgs {
    #[command(flatten)]
    inputs: CheckArgs,
    /// Output directory: `<service>.yaml`, and `<service>.<mesh>.yaml` with a mesh.
    #[arg(long, short)]
    out: PathBuf,
    /// The mesh whose routing objects to write.
    #[arg(long, value_enum)]
    mesh: Option<MeshArg>,
    /// Kubernetes namespace. Default: each contract's `namespace`, else `default`.
    #[arg(long)]
    namespace: Option<String>,
    /// The port services serve REST on.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// The port services serve gRPC on.
    #[arg(long, default_value_t = 50051)]
    grpc_port: u16,
    /// Write nothing; exit non-zero and list the files that would change.
    #[arg(long)]
    check: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MeshArg {
    /// Gateway API HTTPRoute/GRPCRoute with Linkerd's timeout and retry annotations.
    Linkerd,
    /// VirtualService, DestinationRule (outlier detection, ISTIO_MUTUAL), PeerAuthentication.
    Istio,
}

/// `manifests`: checks the contracts (those of `pactum.yaml` when none are named), then
/// writes or compares the manifests.
fn manifests(mut args: ManifestsArgs, color: bool) -> ExitCode {
    if args.inputs.paths.is_empty() || args.inputs.project.is_some() {
        // The project's contracts; `--out` is re-anchored with the other typed paths.
        match enter_project(&mut args.inputs, &mut [&mut args.out]) {
            Ok(p) => {
                if args.inputs.paths.is_empty() {
                    args.inputs.paths = p.contracts;
                }
                args.inputs.deny_warnings |= p.deny_warnings;
            }
            Err(e) => {
                eprintln!("{e}\npactum: nothing written");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(ir) = &checked_ir(&args.inputs, color) else {
        return ExitCode::FAILURE;
    };
    let options = emit::manifests::Options {
        mesh: match args.mesh {
            None => emit::manifests::Mesh::None,
            Some(MeshArg::Linkerd) => emit::manifests::Mesh::Linkerd,
            Some(MeshArg::Istio) => emit::manifests::Mesh::Istio,
        },
        namespace: args.namespace.clone(),
        http_port: args.http_port,
        grpc_port: args.grpc_port,
    };
    let files = emit::manifests::files(ir, &options);
    let out = args.out.clone();
    sync_outputs(vec![(out, files)], args.check, || {
        "manifests are out of date; run the same `pactum manifests` command without `--check`"
            .to_string()
    })
}

/// Runs the CLI with the process arguments.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the CLI with `args` (the first is the program's name), as `pactum` would: what it
/// prints goes to this process's stdout and stderr, and a command that reads a project file
/// moves the process into that file's directory. Bad arguments print clap's message and
/// exit the process, as the binary does.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    match cli.command {
        Command::Schema => {
            print!("{}", crate::schema::JSON_SCHEMA);
            ExitCode::SUCCESS
        }
        Command::Check(mut args) => {
            if args.paths.is_empty() || args.project.is_some() {
                match enter_project(&mut args, &mut []) {
                    Ok(p) => {
                        if args.paths.is_empty() {
                            args.paths = p.contracts;
                        }
                        args.deny_warnings |= p.deny_warnings;
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            let outcome = report(&args, color);
            let mut ok = !outcome.failed(args.deny_warnings);
            if let Some(against) = &args.against {
                ok &= against_baseline(&args, against, &outcome);
            }
            exit(ok)
        }
        Command::Diff(args) => diff(&args),
        Command::Generate(args) => generate(args, color),
        Command::New(args) => new(args, color),
        Command::Docs(args) => docs(args, color),
        Command::Manifests(args) => manifests(args, color),
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks, prints diagnostics and a summary to stderr.
fn report(args: &CheckArgs, color: bool) -> crate::Outcome {
    let outcome = crate::check(&args.paths);
    eprint!("{}", outcome.diagnostics.render(&outcome.sources, color));
    let contracts = outcome.sources.files().count();
    let (errors, warnings) = (
        outcome.diagnostics.error_count(),
        outcome.diagnostics.warning_count(),
    );
    let verdict = if outcome.failed(args.deny_warnings) {
        "failed"
    } else {
        "ok"
    };
    eprintln!(
        "pactum: {verdict}: {contracts} contract file(s), {errors} error(s), {warnings} warning(s){}",
        if args.deny_warnings && warnings > 0 {
            " (warnings denied)"
        } else {
            ""
        }
    );
    outcome
}

/// Loads a baseline (path or git revision) for `check --against`.
fn baseline(against: &str, paths: &[PathBuf]) -> Result<crate::Outcome, String> {
    if std::path::Path::new(against).exists() {
        return Ok(crate::check(&[PathBuf::from(against)]));
    }
    let sources = crate::history::contracts_at(against, paths)?;
    if sources.is_empty() {
        return Err(format!("no contracts under the given paths at `{against}`"));
    }
    Ok(crate::check_sources(&sources))
}

fn against_baseline(args: &CheckArgs, against: &str, new: &crate::Outcome) -> bool {
    let old = match baseline(against, &args.paths) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pactum: {e}");
            return false;
        }
    };
    compare(&old, new, args.format, args.deny_warnings, against)
}

fn diff(args: &DiffArgs) -> ExitCode {
    let old = crate::check(std::slice::from_ref(&args.old));
    let new = crate::check(std::slice::from_ref(&args.new));
    let label = args.old.display().to_string();
    exit(compare(&old, &new, args.format, args.deny_warnings, &label))
}

/// Compares two checked sets and prints the report; false when it fails.
fn compare(
    old: &crate::Outcome,
    new: &crate::Outcome,
    format: Format,
    deny_warnings: bool,
    label: &str,
) -> bool {
    let (Some(old_ir), Some(new_ir)) = (&old.ir, &new.ir) else {
        let (which, o) = if old.ir.is_none() {
            ("baseline", old)
        } else {
            ("new", new)
        };
        eprint!("{}", o.diagnostics.render(&o.sources, false));
        eprintln!("pactum: the {which} contracts do not validate; nothing compared");
        return false;
    };
    let report = crate::compat::compare(old_ir, new_ir);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json(&new.sources)).unwrap_or_default()
        ),
        Format::Human => {
            print!("{}", report.render(&new.sources));
            println!(
                "pactum: {} change(s) against {label}: {} breaking; {}",
                report.findings.len(),
                report.breaking(),
                if report.failed(deny_warnings) {
                    "version discipline violated"
                } else {
                    "versions are in order"
                }
            );
        }
    }
    !report.failed(deny_warnings)
}

/// Checks the contracts and prints their diagnostics; the IR when output may be written.
fn checked_ir(args: &CheckArgs, color: bool) -> Option<crate::ir::Ir> {
    let outcome = report(args, color);
    if outcome.failed(args.deny_warnings) {
        eprintln!("pactum: nothing written");
        return None;
    }
    outcome.ir
}

/// The input paths as typed on a command line, for "run this to regenerate" hints.
fn input_paths(args: &CheckArgs) -> String {
    args.paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one `generate` or `docs` run writes, after `pactum.yaml` and the flags are merged.
struct Plan {
    /// The project file read, if any (for the "run this to regenerate" hint).
    project: Option<PathBuf>,
    outputs: BTreeMap<Output, PathBuf>,
    /// Which transports the Rust output holds.
    parts: emit::Parts,
    /// `--project`, contract paths and output flags as the user typed them (each with a
    /// leading space), for the hint.
    typed: String,
    /// The project file's `scaffold:`: the service crate `generate` keeps current too.
    scaffold: Option<project::Scaffold>,
}

/// Reads the project file when the command line leaves something to it: always with
/// `--project`, otherwise when contracts or every output directory are missing. Flags
/// override what the file says; paths given replace its `contracts:`.
fn plan(
    inputs: &mut CheckArgs,
    flags: BTreeMap<Output, PathBuf>,
    wanted: &[Output],
) -> Result<Plan, String> {
    let complete = !inputs.paths.is_empty() && !flags.is_empty();
    if complete && inputs.project.is_none() {
        return Ok(Plan {
            project: None,
            outputs: flags,
            parts: emit::Parts::ALL,
            typed: String::new(),
            scaffold: None,
        });
    }
    let mut typed: String = inputs
        .project
        .iter()
        .map(|p| format!(" --project {}", p.display()))
        .collect();
    typed.extend(inputs.paths.iter().map(|p| format!(" {}", p.display())));
    typed.extend(flags.iter().map(|(o, d)| {
        let flag = if wanted == [Output::Docs] {
            "--out"
        } else {
            o.flag()
        };
        format!(" {flag} {}", d.display())
    }));
    let mut flags = flags;
    let project = enter_project(inputs, &mut flags.values_mut().collect::<Vec<_>>())?;
    let path = project.path.clone();
    let scaffold = project.scaffold.clone();
    if inputs.paths.is_empty() {
        inputs.paths = project.contracts.clone();
    }
    inputs.deny_warnings |= project.deny_warnings;
    let mut outputs: BTreeMap<Output, PathBuf> = project
        .outputs
        .into_iter()
        .filter(|(o, _)| wanted.contains(o))
        .collect();
    outputs.extend(flags);
    if outputs.is_empty() {
        return Err(format!(
            "{}: error: none of the outputs this command writes ({}) is listed\n  help: add one under `outputs:` or pass `{}`",
            path.display(),
            wanted.iter().map(|o| o.key()).collect::<Vec<_>>().join(", "),
            wanted[0].flag()
        ));
    }
    Ok(Plan {
        project: Some(path),
        outputs,
        parts: project.parts,
        typed,
        scaffold,
    })
}

/// The project file named by `--project`, or the nearest `pactum.yaml`.
fn read_project(inputs: &CheckArgs) -> Result<Project, String> {
    let path = match &inputs.project {
        Some(p) => p.clone(),
        None => {
            let cwd = std::env::current_dir().map_err(|e| format!("pactum: {e}"))?;
            Project::find(&cwd).ok_or_else(|| {
                format!(
                    "pactum: the command line does not say what to read and write, and there is no `{}` in this directory or above\n  help: pass contract paths and an output (`pactum generate contracts --out src/generated`), or write a `{}` (README: Project file)",
                    project::FILE_NAME,
                    project::FILE_NAME
                )
            })?
        }
    };
    Project::read(&path).map_err(|e| e.to_string())
}

/// Reads the project file and moves into its directory, so its paths, and the source names
/// in diagnostics and generated headers, are the same from anywhere in the tree. Paths the
/// user typed are made absolute first, so they still mean what they meant.
fn enter_project(inputs: &mut CheckArgs, typed: &mut [&mut PathBuf]) -> Result<Project, String> {
    let project = read_project(inputs)?;
    if !project.root.as_os_str().is_empty() {
        let root = std::path::absolute(&project.root)
            .map_err(|e| format!("pactum: {}: {e}", project.root.display()))?;
        // As seen from the project's directory: relative when inside it, so sources and
        // generated headers name files the same on every machine; absolute otherwise.
        let from_root = |p: &Path| -> Result<PathBuf, String> {
            let abs =
                std::path::absolute(p).map_err(|e| format!("pactum: {}: {e}", p.display()))?;
            Ok(abs
                .strip_prefix(&root)
                .map(Path::to_path_buf)
                .unwrap_or(abs))
        };
        for p in inputs
            .paths
            .iter_mut()
            .chain(typed.iter_mut().map(|p| &mut **p))
        {
            *p = from_root(p)?;
        }
        // `--against` names a directory or a git revision; a directory is re-anchored too.
        if let Some(against) = inputs
            .against
            .as_mut()
            .filter(|a| Path::new(a.as_str()).exists())
        {
            *against = from_root(Path::new(against.as_str()))?
                .display()
                .to_string();
        }
        std::env::set_current_dir(&project.root)
            .map_err(|e| format!("pactum: cannot enter {}: {e}", project.root.display()))?;
    }
    Ok(project)
}

/// The command that regenerates `plan`'s outputs, for stale-check failures: what was typed,
/// without `--check`.
fn regenerate_hint(command: &str, inputs: &CheckArgs, plan: &Plan) -> String {
    match &plan.project {
        Some(p) if plan.typed.is_empty() => {
            format!("run `cargo pactum {command}` (reads {})", p.display())
        }
        Some(_) => format!("run `cargo pactum {command}{}`", plan.typed),
        None => format!(
            "run `pactum {command} {}{}`",
            input_paths(inputs),
            plan.outputs
                .iter()
                .map(|(o, d)| {
                    let flag = if command == "docs" { "--out" } else { o.flag() };
                    format!(" {flag} {}", d.display())
                })
                .collect::<String>()
        ),
    }
}

fn generate(mut args: GenerateArgs, color: bool) -> ExitCode {
    let flags = args.flags();
    write_outputs(
        &mut args.inputs,
        flags,
        &Output::ALL,
        args.check,
        color,
        None,
    )
}

fn docs(mut args: DocsArgs, color: bool) -> ExitCode {
    let flags = args.out.iter().map(|d| (Output::Docs, d.clone())).collect();
    write_outputs(
        &mut args.inputs,
        flags,
        &[Output::Docs],
        args.check,
        color,
        None,
    )
}

/// The `pactum` dependency a new service's workspace names: the released version of this
/// generator, or a local runtime.
fn pactum_dependency(path: Option<&Path>) -> Result<String, String> {
    match path {
        None => Ok(format!("\"{}\"", env!("CARGO_PKG_VERSION"))),
        Some(p) => {
            let abs = std::fs::canonicalize(p)
                .map_err(|e| format!("--pactum-path {}: {e}", p.display()))?;
            if !abs.join("Cargo.toml").is_file() {
                return Err(format!(
                    "--pactum-path {}: no Cargo.toml there\n  help: give the directory of the `pactum` runtime crate (`runtime/` in Pactum's repository)",
                    p.display()
                ));
            }
            // TOML basic strings escape `\` and `"`.
            let text = abs
                .display()
                .to_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            Ok(format!("{{ path = \"{text}\" }}"))
        }
    }
}

/// `pactum new`: checks the contracts, copies them and the project file into `dir`, then
/// generates there as `pactum generate` would, writing the user's files once.
fn new(args: NewArgs, color: bool) -> ExitCode {
    let fail = |e: String| {
        eprintln!("pactum: {e}\npactum: nothing written");
        ExitCode::FAILURE
    };
    if let Err(e) = scaffold::check_target(&args.dir, args.force) {
        return fail(e);
    }
    if let Some(Err(e)) = args.name.as_deref().map(scaffold::check_name) {
        return fail(e);
    }
    let pactum = match pactum_dependency(args.pactum_path.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let inputs = CheckArgs {
        paths: scaffold::contract_set(&args.contract, args.contracts.as_deref()),
        project: None,
        deny_warnings: false,
        against: None,
        format: Format::Human,
    };
    let Some(ir) = checked_ir(&inputs, color) else {
        return ExitCode::FAILURE;
    };
    let served = match scaffold::served(&ir, &args.contract) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let service = served[0].id.service.clone();
    let name = args.name.unwrap_or_else(|| service.replace('_', "-"));
    if let Err(e) = scaffold::check_name(&name) {
        return fail(format!(
            "{e} (it comes from the service's name; pass --name)"
        ));
    }
    let mut spec = emit::scaffold::Spec {
        serves: service,
        name,
        pactum,
        service_dir: PathBuf::from("service"),
    };
    // With --force into a directory that has a project file, it must be this scaffold's.
    let project_path = args.dir.join(project::FILE_NAME);
    let mut outputs: Vec<(Output, PathBuf)> = scaffold::OUTPUTS
        .iter()
        .map(|(o, d)| (*o, PathBuf::from(d)))
        .collect();
    if project_path.exists() {
        let existing = match Project::read(&project_path) {
            Ok(p) => p,
            Err(e) => return fail(e.to_string()),
        };
        match &existing.scaffold {
            Some(s) if s.serves == spec.serves && s.name == spec.name => {
                spec.service_dir = s.dir.clone();
                outputs = existing.outputs.into_iter().collect();
            }
            other => {
                return fail(format!(
                    "{} is not the project file of a scaffold of `{}` named `{}` ({})\n  help: choose another directory; `pactum new --force` only completes a scaffold of the same service",
                    project_path.display(),
                    spec.serves,
                    spec.name,
                    match other {
                        Some(s) => format!("it serves `{}` as `{}`", s.serves, s.name),
                        None => "it has no `scaffold:` section".to_string(),
                    }
                ))
            }
        }
    }
    let contracts = scaffold::closure(&ir, &served);
    match scaffold::in_the_way(&args.dir, &contracts, &spec, &outputs) {
        Ok(theirs) if theirs.is_empty() => {}
        Ok(theirs) => {
            let list: Vec<String> = theirs
                .iter()
                .map(|p| format!("  {}", p.display()))
                .collect();
            return fail(format!(
                "pactum would overwrite files it did not write:\n{}\n  help: move them away, or choose another directory",
                list.join("\n")
            ));
        }
        Err(e) => return fail(e),
    }
    // From here on files are written: a failure says what is there.
    let stopped = |e: String| {
        eprintln!(
            "pactum: {e}\npactum: stopped; what was written so far is in {} (`pactum new --force` there completes it)",
            args.dir.display()
        );
        ExitCode::FAILURE
    };
    let copied = std::fs::create_dir_all(&args.dir)
        .and_then(|()| scaffold::copy_contracts(&args.dir, &contracts));
    let copied = match copied {
        Ok(c) => c,
        Err(e) => return stopped(format!("cannot write to {}: {e}", args.dir.display())),
    };
    if !project_path.exists() {
        if let Err(e) = std::fs::write(&project_path, scaffold::project_file(&spec)) {
            return stopped(format!("cannot write {}: {e}", project_path.display()));
        }
        println!("created: {}", project_path.display());
    }
    for s in copied.iter().filter(|s| s.changed()) {
        println!("created: {}", s.path().display());
    }
    // From here on it is `pactum generate` in the new directory, with every file of the
    // user's written where absent.
    let mut inputs = CheckArgs {
        paths: Vec::new(),
        project: Some(project_path),
        deny_warnings: false,
        against: None,
        format: Format::Human,
    };
    let code = write_outputs(
        &mut inputs,
        BTreeMap::new(),
        &Output::ALL,
        false,
        color,
        Some(&spec),
    );
    if code == ExitCode::SUCCESS {
        println!(
            "\nnext: cd {} && cargo run -p {} -- --help",
            args.dir.display(),
            spec.name
        );
    }
    code
}

/// `generate` and `docs`: plans the outputs, checks the contracts, then writes (or with
/// `check`, compares) every output of `wanted` the plan lists.
fn write_outputs(
    inputs: &mut CheckArgs,
    flags: BTreeMap<Output, PathBuf>,
    wanted: &[Output],
    check: bool,
    color: bool,
    new: Option<&emit::scaffold::Spec>,
) -> ExitCode {
    let plan = match plan(inputs, flags, wanted) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}\npactum: nothing written");
            return ExitCode::FAILURE;
        }
    };
    let Some(ir) = &checked_ir(inputs, color) else {
        return ExitCode::FAILURE;
    };
    let outputs = plan
        .outputs
        .iter()
        .map(|(o, dir)| (dir.clone(), o.files_with(ir, plan.parts)))
        .collect();
    let command = if wanted == [Output::Docs] {
        "docs"
    } else {
        "generate"
    };
    let stale = || {
        format!(
            "{command} output is out of date; {}",
            regenerate_hint(command, inputs, &plan)
        )
    };
    let code = sync_outputs(outputs, check, stale);
    match &plan.scaffold {
        // A check reports every stale file; a write stops at the first failure.
        Some(s) if (check || code == ExitCode::SUCCESS) && wanted.contains(&Output::Rust) => {
            let spec = match new {
                Some(spec) => spec.clone(),
                None => emit::scaffold::Spec {
                    serves: s.serves.clone(),
                    name: s.name.clone(),
                    pactum: String::new(),
                    service_dir: s.dir.clone(),
                },
            };
            let hint = (code == ExitCode::SUCCESS).then_some(stale);
            let scaffolded = sync_scaffold(ir, &spec, check, new.is_some(), hint);
            if code == ExitCode::SUCCESS {
                scaffolded
            } else {
                code
            }
        }
        _ => code,
    }
}

/// The scaffold half of `generate` (and of `new`, with `all_user_files`): the service crate's
/// generated files, any handler or consumer file a new contract version or entry calls for,
/// and the operations that still answer "not implemented".
fn sync_scaffold(
    ir: &crate::ir::Ir,
    spec: &emit::scaffold::Spec,
    check: bool,
    all_user_files: bool,
    stale_hint: Option<impl FnOnce() -> String>,
) -> ExitCode {
    let done = match scaffold::refresh(Path::new(""), ir, spec, !check, all_user_files) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pactum: {e}");
            return ExitCode::FAILURE;
        }
    };
    let changed: Vec<&FileStatus> = done.statuses.iter().filter(|s| s.changed()).collect();
    for p in &done.taken_over {
        println!(
            "kept (no @generated header, so it is yours now): {}",
            p.display()
        );
    }
    for (p, why) in &done.unreadable {
        eprintln!(
            "pactum: warning: cannot read the handlers in {}: {why}",
            p.display()
        );
    }
    print_changes(&changed, check);
    if check {
        if !changed.is_empty() {
            // Said once, by whichever part found something stale first.
            if let Some(hint) = stale_hint {
                eprintln!("pactum: {}", hint());
            }
            return ExitCode::FAILURE;
        }
        println!("up to date: {} scaffold file(s)", done.statuses.len());
    }
    if !done.unhandled.is_empty() {
        println!(
            "\n{} operation(s) have no handler yet and answer 501 / UNIMPLEMENTED:",
            done.unhandled.len()
        );
        for u in &done.unhandled {
            println!(
                "  {}.{}: add `async fn {}` to the `Handlers` impl in {}",
                u.contract,
                u.operation,
                u.method,
                u.file.display()
            );
        }
    }
    if !done.stubs.is_empty() {
        println!(
            "\n{} operation(s) still answer 501 / UNIMPLEMENTED from the stub `pactum new` wrote:",
            done.stubs.len()
        );
        for u in &done.stubs {
            println!("  {}.{} ({})", u.contract, u.operation, u.file.display());
        }
    }
    ExitCode::SUCCESS
}

/// Writes (or with `check`, compares) each directory's files; reports what changed.
/// `stale_hint` says how to regenerate when a check finds stale files.
fn sync_outputs(
    outputs: Vec<(PathBuf, Result<Vec<emit::GeneratedFile>, String>)>,
    check: bool,
    stale_hint: impl FnOnce() -> String,
) -> ExitCode {
    let mut statuses = Vec::new();
    let mut leftovers = Vec::new();
    for (dir, files) in outputs {
        let files = match files {
            Ok(f) => f,
            Err(e) => {
                eprintln!("pactum: {e}");
                return ExitCode::FAILURE;
            }
        };
        match write::sync(&dir, &files, !check) {
            Ok(s) => statuses.extend(s),
            Err(e) => {
                eprintln!("pactum: cannot write to {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
        leftovers.extend(write::stale_files(&dir, &files).unwrap_or_default());
    }
    let changed: Vec<&FileStatus> = statuses.iter().filter(|s| s.changed()).collect();
    print_changes(&changed, check);
    if check {
        for p in &leftovers {
            println!("left over: {}", p.display());
        }
        if changed.is_empty() && leftovers.is_empty() {
            println!("up to date: {} file(s)", statuses.len());
            return ExitCode::SUCCESS;
        }
        eprintln!("pactum: {}", stale_hint());
        return ExitCode::FAILURE;
    }
    for p in &leftovers {
        println!(
            "left over (no longer generated; delete it): {}",
            p.display()
        );
    }
    println!(
        "{} file(s) written, {} unchanged",
        changed.len(),
        statuses.len() - changed.len()
    );
    ExitCode::SUCCESS
}

/// One line per changed file: `missing:`/`stale:` for a check, `created:`/`updated:` for a
/// write.
fn print_changes(changed: &[&FileStatus], check: bool) {
    for s in changed {
        let what = match (s, check) {
            (FileStatus::Created(_), true) => "missing",
            (_, true) => "stale",
            (FileStatus::Created(_), false) => "created",
            (_, false) => "updated",
        };
        println!("{what}: {}", s.path().display());
    }
}
