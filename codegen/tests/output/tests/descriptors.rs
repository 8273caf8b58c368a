//! Every generated `grpc::FILE_DESCRIPTOR_SET` (what server reflection serves) says what
//! protoc says of the emitted `.proto`: the same messages, fields, numbers, JSON names, map
//! entries, proto3 `optional` oneofs, reserved ranges, deprecations and methods. protoc is
//! Python's grpcio-tools (`python3 -m pip install grpcio-tools`).

use pactum_test_output::generated::{adversarial, features, resilience};
use std::path::Path;
use std::process::Command;

#[test]
fn each_descriptor_set_equals_protocs_descriptor_of_the_emitted_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("pactum-descriptors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sets = [
        ("adversarial", adversarial::v1::grpc::FILE_DESCRIPTOR_SET),
        ("features", features::v1::grpc::FILE_DESCRIPTOR_SET),
        ("resilience", resilience::v1::grpc::FILE_DESCRIPTOR_SET),
    ];
    let mut paths = Vec::new();
    for (name, bytes) in sets {
        let path = dir.join(format!("{name}.pb"));
        std::fs::write(&path, bytes).unwrap();
        paths.push(path);
    }
    let script = root.join("../../../scripts/grpc_interop.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("descriptors")
        .arg(root.join("proto"))
        .args(&paths)
        .output()
        .expect("python3 runs");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "this test needs grpcio-tools (python3 -m pip install grpcio-tools):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["mismatches"],
        serde_json::json!([]),
        "{}",
        v["mismatches"]
    );
    // Each set carries its own file and the files it imports: nothing was compared vacuously.
    let files = v["files"].as_array().unwrap();
    for name in [
        "adversarial.v1.proto",
        "common.v3.proto",
        "features.v1.proto",
        "resilience.v1.proto",
        "google/protobuf/timestamp.proto",
    ] {
        assert!(files.iter().any(|f| f == name), "{name} not in {v}");
    }
}
