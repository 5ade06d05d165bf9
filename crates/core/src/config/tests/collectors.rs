//! The collector toggles: `[collectors]`, `SOCKDIAG_COLLECTORS__NAME` and the
//! `--collector.NAME` / `--no-collector.NAME` pair, layered like every other key.

use clap::Parser;

use super::super::*;
use super::file;
use crate::collectors::{CollectorKind, Collectors};

fn flags(args: &[&str]) -> Flags {
    let argv = std::iter::once("sockdiag_exporter").chain(args.iter().copied());
    Flags::try_parse_from(argv).expect("flags parse")
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[test]
fn collector_flag_beats_environment_beats_file() {
    let f = file("[collectors]\nunix = false\nsysctl = false\nnetstat = true\n");
    let path = f.path().to_str().expect("a UTF-8 temp path");
    let flags = flags(&[
        "--config.file",
        path,
        "--collector.unix",
        "--collector.netstat",
    ]);
    let env = env(&[
        ("SOCKDIAG_COLLECTORS__SYSCTL", "true"),
        ("SOCKDIAG_COLLECTORS__NETSTAT", "false"),
    ]);
    let config = Config::load_from(&flags, env).expect("valid");
    let on: Vec<(&str, bool)> = config
        .collectors
        .iter()
        .map(|(kind, on)| (kind.label(), on))
        .collect();
    assert_eq!(
        on,
        [
            ("unix", true),           // flag over file
            ("udp", true),            // default
            ("netstat", true),        // flag over environment
            ("sysctl", true),         // environment over file
            ("listen_sampler", true)  // default
        ]
    );
}

#[test]
fn the_last_of_collector_and_no_collector_wins() {
    let last_off = flags(&["--collector.unix", "--no-collector.unix"]);
    let last_on = flags(&["--no-collector.sysctl", "--collector.sysctl"]);
    let load = |flags: &Flags| {
        Config::load_from(flags, Vec::new())
            .expect("valid")
            .collectors
    };
    assert_eq!(
        load(&last_off),
        Collectors::default().with(CollectorKind::Unix, false)
    );
    assert_eq!(load(&last_on), Collectors::default());
}

#[test]
fn no_collector_flag_turns_off_and_is_named_as_the_origin() {
    let flags = flags(&["--no-collector.listen_sampler"]);
    assert_eq!(
        flags.overrides(),
        vec![(
            "collectors.listen_sampler",
            "--no-collector.listen_sampler",
            config::ValueKind::Boolean(false)
        )]
    );
    let config = Config::load_from(&flags, Vec::new()).expect("valid");
    assert!(!config.collectors.enabled(CollectorKind::ListenSampler));
}

#[test]
fn a_toggle_that_is_not_a_boolean_is_an_error_naming_the_variable() {
    let errors = Config::load_from(
        &Flags::default(),
        env(&[("SOCKDIAG_COLLECTORS__UNIX", "off")]),
    )
    .expect_err("off is not a boolean");
    assert_eq!(
        errors.to_string(),
        "invalid configuration (1 problem):\n  environment variable SOCKDIAG_COLLECTORS__UNIX: \
         `collectors.unix` = \"off\": expected true or false"
    );
}

#[test]
fn an_unknown_collector_is_an_unknown_key() {
    let f = file("[collectors]\ntcp = false\n");
    let flags = Flags {
        config_file: Some(f.path().to_path_buf()),
        ..Flags::default()
    };
    let errors = Config::load_from(&flags, Vec::new()).expect_err("tcp has no toggle");
    assert_eq!(
        errors.to_string(),
        format!(
            "invalid configuration (1 problem):\n  {}: unknown key `collectors.tcp`",
            f.path().display()
        )
    );
    assert!(
        Flags::try_parse_from(["sockdiag_exporter", "--no-collector.tcp"]).is_err(),
        "no flag turns TCP off"
    );
}

#[test]
fn help_lists_both_flags_of_each_collector() {
    let help = <Flags as clap::CommandFactory>::command()
        .render_long_help()
        .to_string();
    for kind in CollectorKind::ALL {
        for flag in [kind.flag(), kind.no_flag()] {
            assert!(help.contains(&format!("--{flag}")), "--{flag} in:\n{help}");
        }
    }
}
