//! Records the source revision for `sockdiag_build_info{revision}`: BUILD_GIT_REVISION
//! when set (container builds without .git), else `git rev-parse`, else "unknown".
//!
//! The name must stay outside the exporter's SOCKDIAG_ configuration prefix: cargo also
//! exports `rustc-env` variables to the programs it runs (`cargo run`, `cargo test`),
//! and the exporter rejects unknown SOCKDIAG_* variables.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_GIT_REVISION");
    // Watching a path that does not exist makes cargo rebuild every time (a container
    // build context has no .git).
    if std::path::Path::new(".git/HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        println!("cargo:rerun-if-changed=.git/refs/heads");
    }
    let revision = std::env::var("BUILD_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8(out.stdout).ok())
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BUILD_GIT_REVISION={revision}");
}
