//! Contracts as they were at a git revision, for `pactum check --against <ref>`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("git {} printed non-UTF-8", args.join(" ")))
}

/// Every `*.yaml`/`*.yml` under `paths` as committed at `rev`, named `<rev>:<path>`.
pub fn contracts_at(rev: &str, paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{rev}^{{commit}}"),
    ])
    .map_err(|_| format!("`{rev}` is neither a path nor a git revision here"))?;
    let mut files = Vec::new();
    for p in paths {
        let listed = git(&[
            "ls-tree",
            "-r",
            "--name-only",
            "--full-name",
            rev,
            "--",
            &p.to_string_lossy(),
        ])?;
        files.extend(
            listed
                .lines()
                .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
                .map(str::to_string),
        );
    }
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|f| {
            let text = git(&["show", &format!("{rev}:{f}")])?;
            Ok((Path::new(&format!("{rev}:{f}")).to_path_buf(), text))
        })
        .collect()
}
