//! Integration tests: the real exporter binary against real sockets, each test in a
//! private network namespace of its own (see `netns`). Needs root.
//!
//! A libtest-mimic harness rather than #[test]: the binary also serves as the helper
//! processes the tests start (see `actor`), which a #[test] binary cannot do.

mod actor;
mod breakdown;
mod cgroups;
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
mod signal;
mod signals;
mod states;
mod udp;
mod unix;
mod web;
mod web_hostile;

use libtest_mimic::{Arguments, Trial};

/// Turns plain functions into trials named after them; a panic fails the trial.
#[macro_export]
macro_rules! trials {
    ($($test:path),* $(,)?) => {
        vec![$(libtest_mimic::Trial::test(stringify!($test), || {
            $test();
            Ok(())
        })),*]
    };
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
    ]
    .into_iter()
    .flatten()
    .collect();
    libtest_mimic::run(&args, tests).exit();
}
