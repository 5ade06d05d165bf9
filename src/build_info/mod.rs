//! What this binary was built from: version, source revision and branch, build date,
//! compiler and target. build.rs records them at compile time (the date from
//! SOURCE_DATE_EPOCH when it is set, so two builds of one commit are identical); they
//! appear in `--version`, in `sockdiag_build_info` and on the landing page.

pub mod date;

#[cfg(test)]
mod tests;

/// The build facts, as `sockdiag_build_info` labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The package version (Cargo.toml).
    pub version: &'static str,
    /// The git commit, 12 hex digits; BUILD_GIT_REVISION when set (a container build
    /// context has no .git), else "unknown" outside a checkout.
    pub revision: &'static str,
    /// The git branch ("HEAD" on a detached checkout); BUILD_GIT_BRANCH when set.
    pub branch: &'static str,
    /// RFC 3339 UTC: SOURCE_DATE_EPOCH when set, else when build.rs last ran.
    pub build_date: &'static str,
    /// The compiler's version, e.g. `1.85.0`.
    pub rustc_version: &'static str,
    /// The target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub target: &'static str,
}

impl BuildInfo {
    /// This binary's build.
    pub const CURRENT: BuildInfo = BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        revision: env!("BUILD_GIT_REVISION"),
        branch: env!("BUILD_GIT_BRANCH"),
        build_date: env!("BUILD_DATE"),
        rustc_version: env!("BUILD_RUSTC_VERSION"),
        target: env!("BUILD_TARGET"),
    };
}

/// What `--version` prints after the program name, in node_exporter's layout.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (branch: ",
    env!("BUILD_GIT_BRANCH"),
    ", revision: ",
    env!("BUILD_GIT_REVISION"),
    ")\n  build date:    ",
    env!("BUILD_DATE"),
    "\n  rustc version: ",
    env!("BUILD_RUSTC_VERSION"),
    "\n  target:        ",
    env!("BUILD_TARGET"),
);
