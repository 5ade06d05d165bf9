//! Build-time helpers, run with `cargo run -p xtask -- TASK`. Never shipped.
//!
//! - `man OUTDIR`: the man pages, rendered by clap_mangen from the very command definition
//!   the binary parses (`sockdiag_exporter::cli::command`): `sockdiag_exporter.1` and one
//!   page per subcommand (`sockdiag_exporter-report.1`). deploy/release.sh compresses them
//!   into the Debian package and the tarball.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, out] if task == "man" => match man(PathBuf::from(out)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("xtask man: {error}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo run -p xtask -- man OUTDIR");
            ExitCode::from(2)
        }
    }
}

fn man(out: PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(&out)?;
    clap_mangen::generate_to(sockdiag_exporter::cli::command(), &out)
}
