//! Records what the binary was built from (src/build_info): the git revision and branch,
//! the build date, the compiler version and the target.
//!
//! - revision: BUILD_GIT_REVISION when set (container builds without .git), else
//!   `git rev-parse`, else "unknown"; branch likewise with BUILD_GIT_BRANCH;
//! - build date: SOURCE_DATE_EPOCH when set (reproducible builds: deploy/release.sh sets it
//!   to the commit time), else now;
//! - rustc version: `$RUSTC --version`; target: cargo's TARGET.
//!
//! The variable names must stay outside the exporter's SOCKDIAG_ configuration prefix:
//! cargo also exports `rustc-env` variables to the programs it runs (`cargo run`,
//! `cargo test`), and the exporter rejects unknown SOCKDIAG_* variables.
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/build_info/date.rs"]
mod date;

fn main() {
    for var in [
        "BUILD_GIT_REVISION",
        "BUILD_GIT_BRANCH",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // In a worktree .git is a file: ask git where HEAD and the refs live. Watching a path
    // that does not exist makes cargo rebuild every time (a container context has no .git).
    let watched = [
        git(&["rev-parse", "--git-path", "HEAD"]).map(PathBuf::from),
        git(&["rev-parse", "--git-common-dir"]).map(|dir| Path::new(&dir).join("refs/heads")),
    ];
    for path in watched.into_iter().flatten().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let revision = from_env("BUILD_GIT_REVISION")
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let branch = from_env("BUILD_GIT_BRANCH")
        .or_else(|| git(&["rev-parse", "--abbrev-ref", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let epoch = match from_env("SOURCE_DATE_EPOCH") {
        Some(value) => value.parse::<u64>().unwrap_or_else(|_| {
            panic!("SOURCE_DATE_EPOCH={value:?} is not a Unix time in seconds")
        }),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = run(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=BUILD_GIT_REVISION={revision}");
    println!("cargo:rustc-env=BUILD_GIT_BRANCH={branch}");
    println!("cargo:rustc-env=BUILD_DATE={}", date::rfc3339(epoch));
    println!("cargo:rustc-env=BUILD_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=BUILD_TARGET={target}");
}

fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn git(args: &[&str]) -> Option<String> {
    run("git", args)
}

/// The trimmed stdout of a command that succeeded with some output.
fn run(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
