//! `pactum_codegen::Builder`, in process and as a real build script.

use pactum_codegen::Builder;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SHOP: &str = "pactum: 1\nservice: shop\nversion: 1.0.0\nowner: team-shop\nevents:\n  ItemSold: { version: 1, delivery: pubsub, fields: { sku: string } }\n";

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn writes_per_contract_files_and_an_index_only_when_changed() {
    let dir = scratch("builder_in_process");
    fs::create_dir_all(dir.join("contracts")).unwrap();
    fs::write(dir.join("contracts/shop.yaml"), SHOP).unwrap();
    let out = dir.join("out");
    let build = || {
        Builder::new()
            .contracts(dir.join("contracts"))
            .out_dir(&out)
            .cargo_metadata(false)
            .compile()
            .unwrap()
    };
    let files = build();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["shop_v1.rs", "pactum.rs"]);
    let index = fs::read_to_string(out.join("pactum.rs")).unwrap();
    assert!(index.contains("pub mod shop"));
    assert!(index.contains("shop_v1.rs\");"), "{index}");
    let before = fs::metadata(out.join("shop_v1.rs"))
        .unwrap()
        .modified()
        .unwrap();
    build();
    assert_eq!(
        fs::metadata(out.join("shop_v1.rs"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
}

#[test]
fn compact_layout_is_valid_rust_too() {
    let dir = scratch("builder_compact");
    fs::write(dir.join("shop.yaml"), SHOP).unwrap();
    let files = Builder::new()
        .contracts(dir.join("shop.yaml"))
        .out_dir(dir.join("out"))
        .pretty(false)
        .cargo_metadata(false)
        .compile()
        .unwrap();
    let compact = fs::read_to_string(&files[0]).unwrap();
    assert!(
        compact.lines().count() < 10,
        "a long line of tokens per section"
    );
    syn::parse_file(&compact).expect("compact output parses as Rust");
}

#[test]
fn transports_can_be_left_out() {
    let dir = scratch("builder_parts");
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
    let orders = |rest: bool, grpc: bool, messaging: bool| {
        let out = dir.join(format!("out-{rest}-{grpc}-{messaging}"));
        Builder::new()
            .contracts(&contracts)
            .out_dir(&out)
            .rest(rest)
            .grpc(grpc)
            .messaging(messaging)
            .cargo_metadata(false)
            .compile()
            .unwrap();
        let text = fs::read_to_string(out.join("orders_v1.rs")).unwrap();
        syn::parse_file(&text).expect("output parses as Rust");
        text
    };
    let all = orders(true, true, true);
    let grpc_only = orders(false, true, false);
    let rest_only = orders(true, false, false);
    let has = |text: &str, item: &str| text.lines().any(|l| l.starts_with(item));
    for item in ["pub mod rest", "pub mod grpc", "pub mod events"] {
        assert!(has(&all, item), "{item} missing from the full build");
    }
    // Types, errors, operation facts, event types and the `Service` trait stay in every build.
    for text in [&grpc_only, &rest_only] {
        for item in [
            "pub struct Order ",
            "pub mod operations",
            "pub struct OrderPlaced",
            "pub trait Service",
        ] {
            assert!(has(text, item), "{item} missing");
        }
        assert!(!has(text, "pub mod events"));
    }
    assert!(has(&grpc_only, "pub mod grpc") && !has(&grpc_only, "pub mod rest"));
    assert!(!has(&rest_only, "pub mod grpc") && has(&rest_only, "pub mod rest"));
}

#[test]
fn contract_errors_are_readable_build_failures() {
    let dir = scratch("builder_errors");
    fs::write(dir.join("shop.yaml"), SHOP.replace("ItemSold", "SellItem")).unwrap();
    let err = Builder::new()
        .contracts(dir.join("shop.yaml"))
        .out_dir(dir.join("out"))
        .cargo_metadata(false)
        .compile()
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("shop.yaml:6:3: error[E0210]: event `SellItem`"),
        "{text}"
    );
    assert!(text.contains("help: did you mean `ItemSold`?"), "{text}");
    assert!(
        text.contains("1 error(s) in contracts; nothing generated"),
        "{text}"
    );
    assert!(!dir.join("out").exists(), "nothing written on error");
}

/// A crate whose build.rs uses the Builder, built with the real cargo.
fn fixture() -> PathBuf {
    let dir = scratch("build_fixture");
    let codegen = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::create_dir_all(dir.join("contracts")).unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"pactum-build-fixture\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[build-dependencies]\npactum-codegen = {{ path = {:?}, default-features = false }}\n",
            codegen.display().to_string()
        ),
    )
    .unwrap();
    // The workspace lockfile pins the same versions, so the build works offline.
    fs::copy(
        codegen.parent().unwrap().join("Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    fs::write(
        dir.join("build.rs"),
        "fn main() -> Result<(), pactum_codegen::builder::Error> {\n    pactum_codegen::Builder::new().contracts(\"contracts\").compile()?;\n    Ok(())\n}\n",
    )
    .unwrap();
    fs::write(
        dir.join("src/lib.rs"),
        "pub const GENERATED: &str = include_str!(concat!(env!(\"OUT_DIR\"), \"/shop_v1.rs\"));\n",
    )
    .unwrap();
    fs::write(dir.join("contracts/shop.yaml"), SHOP).unwrap();
    dir
}

fn cargo_build(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "-v"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("runs cargo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn script_ran(log: &str) -> bool {
    log.lines().any(|l| {
        l.contains("Running")
            && l.contains("pactum-build-fixture")
            && l.contains("build-script-build")
    })
}

#[test]
fn build_script_reruns_only_when_a_contract_changes() {
    let dir = fixture();
    let (ok, first) = cargo_build(&dir);
    assert!(ok, "{first}");
    assert!(script_ran(&first), "first build runs the script:\n{first}");

    let (ok, second) = cargo_build(&dir);
    assert!(ok, "{second}");
    assert!(
        !script_ran(&second),
        "nothing changed, the script must not rerun:\n{second}"
    );
    assert!(second.contains("Fresh pactum-build-fixture"), "{second}");

    // Editing a contract reruns it; adding a file to the directory does too.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(
        dir.join("contracts/shop.yaml"),
        SHOP.replace("sku: string", "sku: string, qty: u32"),
    )
    .unwrap();
    let (ok, third) = cargo_build(&dir);
    assert!(ok && script_ran(&third), "{third}");
    let generated = fs::read_dir(dir.join("target/debug/build"))
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.unwrap().path().join("out/shop_v1.rs")).ok())
        .next()
        .expect("generated file in OUT_DIR");
    assert!(generated.contains("pub qty: u32"));

    fs::write(
        dir.join("contracts/shop.yaml"),
        SHOP.replace("ItemSold", "SellItem"),
    )
    .unwrap();
    let (ok, broken) = cargo_build(&dir);
    assert!(!ok);
    assert!(
        broken.contains(
            "contracts/shop.yaml:6:3: error[E0210]: event `SellItem` does not read as a fact"
        ),
        "{broken}"
    );
}
