//! Integration tests: the real exporter binary against real sockets, each test in a
//! private network namespace of its own (see `netns`). Needs root: run as another user
//! (`cargo test` by a developer), each test is skipped with one line saying what it needs
//! root for ([`NEEDS_ROOT`]) instead of panicking. tests/run.sh runs them all as root.
//!
//! A libtest-mimic harness rather than #[test]: the binary also serves as the helper
//! processes the tests start (see `actor`), which a #[test] binary cannot do.

mod actor;
mod breakdown;
mod cgroups;
mod collectors;
mod containers;
mod crowds;
mod exporter;
mod faults;
mod hardening;
mod lifecycle;
mod limits;
mod load;
mod namespaces;
mod netns;
mod owners;
mod pki;
mod report;
mod report_output;
mod runtimes;
mod signal;
mod signals;
mod states;
mod udp;
mod unix;
mod web;
mod web_hostile;

use libtest_mimic::{Arguments, Completion, Trial};

/// Turns plain functions into trials named after them; a panic fails the trial. Without
/// root a trial is skipped (reported `ignored`, with the reason) and its function never
/// runs.
#[macro_export]
macro_rules! trials {
    ($($test:path),* $(,)?) => {
        vec![$(libtest_mimic::Trial::ignorable_test(stringify!($test), || {
            if let Some(skipped) = $crate::without_root(module_path!()) {
                return Ok(skipped);
            }
            $test();
            Ok(libtest_mimic::Completion::Completed)
        })),*]
    };
}

/// What the tests of each module need root for, beyond the private network namespace
/// every test makes (unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN).
const NEEDS_ROOT: &[(&str, &str)] = &[
    ("containers", "network namespaces, cgroups"),
    ("crowds", "network namespaces, cgroups"),
    ("faults", "network namespaces, cgroups"),
    ("namespaces", "network namespaces, cgroups, ip netns"),
    ("breakdown", "network namespaces, setuid"),
    ("hardening", "network namespaces, setuid"),
];

/// `None` as root: the test runs. Otherwise the skip of a test of `module` (its
/// `module_path!()`), with its one line: "skipped: needs root (network namespaces)".
pub fn without_root(module: &str) -> Option<Completion> {
    if nix::unistd::geteuid().is_root() {
        return None;
    }
    let module = module.rsplit("::").next().unwrap_or(module);
    let needs = NEEDS_ROOT
        .iter()
        .find(|(name, _)| *name == module)
        .map_or("network namespaces", |(_, needs)| needs);
    Some(Completion::ignored_with(format!(
        "skipped: needs root ({needs})"
    )))
}

fn main() {
    if let Ok(role) = std::env::var(actor::ENV) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        actor::run(&role, &args);
        return;
    }
    let args = Arguments::from_args();
    let tests: Vec<Trial> = [
        states::tests(),
        lifecycle::tests(),
        breakdown::tests(),
        signals::tests(),
        namespaces::tests(),
        containers::tests(),
        crowds::tests(),
        owners::tests(),
        unix::tests(),
        udp::tests(),
        hardening::tests(),
        limits::tests(),
        web::tests(),
        web_hostile::tests(),
        report::tests(),
        report_output::tests(),
        signal::tests(),
        faults::tests(),
        collectors::tests(),
        runtimes::tests(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let conclusion = libtest_mimic::run(&args, tests);
    // The daemons, images and cgroups the runtime tests' rig made, if any test used it.
    runtimes::teardown();
    conclusion.exit();
}
