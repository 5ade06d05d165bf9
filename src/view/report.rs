//! `sockdiag_exporter report`: two polls `--interval` apart with the daemon's own
//! [`Collector`] (same namespaces, caps and labels), printed as tables or JSON; `--watch`
//! keeps polling (module [`super::watch`]).
//!
//! Exit codes (README): 0 done (and, with `--check`, nothing above the thresholds),
//! 1 a finding above the thresholds with `--check`, 2 a malformed command line, 73 the
//! output could not be written, 74 a poll failed (netlink or /proc), 78 a configuration
//! error.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::findings::Thresholds;
use super::summary::{Filter, Summary};
use super::table::shown;
use super::terminal::{self, Overflow, Style};
use super::watch::{self, Mode};
use crate::exit;
use crate::poll::{Collector, PollError, PollNotes, PollerConfig};
use crate::snapshot::Snapshot;
use crate::source::inet_diag::TcpState;

/// The longest `--interval`: growth over longer reads as a trend, and a watch this slow
/// looks hung.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Rows per table in the one-shot report.
const MAX_ROWS: usize = 15;

/// Options of `report`. `--config.file`, `--namespaces` and `--log.level` are the
/// exporter's own flags and apply here too.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Time between the two polls (growth per second is measured over it); with --watch,
    /// between refreshes.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = interval)]
    pub interval: Duration,
    /// Print the summary as JSON (schema in docs/report.md) instead of tables.
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Refresh in place until q or Ctrl-C, with growth since the start.
    #[arg(long)]
    pub watch: bool,
    /// Exit 1 when a finding is above the thresholds, 0 otherwise.
    #[arg(long, conflicts_with = "watch")]
    pub check: bool,
    /// Only these network namespaces (the `netns` label; repeatable or comma-separated).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub netns: Vec<String>,
    /// Only these states (`close_wait`, `time_wait`, ...; repeatable or comma-separated).
    #[arg(long, value_name = "STATE", value_delimiter = ',', value_parser = state)]
    pub state: Vec<TcpState>,
    /// Only these ports (repeatable or comma-separated); UNIX listeners, having none, are
    /// left out.
    #[arg(long, value_name = "PORT", value_delimiter = ',')]
    pub port: Vec<u16>,
    /// Only these processes (the `process` label, i.e. comm; repeatable or comma-separated).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub process: Vec<String>,
    /// Finding: CLOSE_WAIT growing faster than this many sockets per second.
    #[arg(long, value_name = "RATE", default_value_t = Thresholds::default().close_wait_growth, value_parser = non_negative)]
    pub close_wait_growth: f64,
    /// Finding: TIME_WAIT on one port growing faster than this many sockets per second.
    #[arg(long, value_name = "RATE", default_value_t = Thresholds::default().time_wait_growth, value_parser = non_negative)]
    pub time_wait_growth: f64,
    /// Finding: an accept queue, TCP or UNIX, at least this full (queue / limit).
    #[arg(long, value_name = "RATIO", default_value_t = Thresholds::default().listen_fill, value_parser = non_negative)]
    pub listen_fill: f64,
    /// Finding: ephemeral ports toward one destination at least this share of the range.
    #[arg(long, value_name = "RATIO", default_value_t = Thresholds::default().ephemeral_fill, value_parser = non_negative)]
    pub ephemeral_fill: f64,
}

fn interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text)
        .map_err(|e| format!("not a duration ({e}); write e.g. \"2s\" or \"500ms\""))?;
    if interval < Duration::from_millis(100) {
        return Err("must be at least 100ms".to_string());
    }
    if interval > MAX_INTERVAL {
        return Err("must be at most 1h".to_string());
    }
    Ok(interval)
}

fn state(text: &str) -> Result<TcpState, String> {
    TcpState::ALL
        .into_iter()
        .find(|s| s.label() == text)
        .ok_or_else(|| {
            let labels: Vec<&str> = TcpState::ALL.iter().map(|s| s.label()).collect();
            format!("expected one of {}", labels.join(", "))
        })
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value >= 0.0 && value.is_finite() => Ok(value),
        Ok(_) => Err("must be a number at least 0".to_string()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

impl ReportArgs {
    pub fn filter(&self) -> Filter {
        Filter {
            netns: self.netns.clone(),
            states: self.state.clone(),
            ports: self.port.clone(),
            processes: self.process.clone(),
        }
    }

    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            close_wait_growth: self.close_wait_growth,
            time_wait_growth: self.time_wait_growth,
            listen_fill: self.listen_fill,
            ephemeral_fill: self.ephemeral_fill,
        }
    }

    fn watch(&self) -> watch::Settings {
        watch::Settings {
            interval: self.interval,
            filter: self.filter(),
            thresholds: self.thresholds(),
        }
    }
}

/// One poll, with what it says about the picture's completeness added to `notes`.
pub fn poll(collector: &mut Collector, notes: &mut Vec<String>) -> Result<Snapshot, PollError> {
    let (snapshot, poll_notes) = collector.poll()?;
    note(&poll_notes, notes);
    Ok(snapshot)
}

fn note(poll: &PollNotes, notes: &mut Vec<String>) {
    let mut add = |text: String| {
        if !notes.contains(&text) {
            notes.push(text);
        }
    };
    if let Some(missing) = &poll.missing_privileges {
        add(format!(
            "only our own network namespace was sampled: {missing}; run as root (or with \
             CAP_SYS_ADMIN and CAP_SYS_PTRACE) to see the others, or pass --namespaces=own"
        ));
    }
    if let Some(error) = &poll.discovery_error {
        add(format!(
            "namespace discovery failed, only ours was sampled: {error}"
        ));
    }
    for error in &poll.netns_errors {
        add(format!("dropped from the poll: {error}"));
    }
    if let Some(error) = &poll.proc_index_error {
        add(format!("owners unknown: {error}"));
    }
}

/// Runs `report`. `config` is the daemon's poller configuration.
pub fn run(args: &ReportArgs, config: &PollerConfig) -> ExitCode {
    let on_terminal = std::io::stdout().is_terminal();
    if args.watch && !on_terminal {
        eprintln!("sockdiag_exporter report: --watch needs a terminal on stdout");
        return ExitCode::from(exit::CONFIG);
    }
    let mut collector = Collector::new(config, Default::default(), Default::default());
    let mut notes = Vec::new();
    let first = match poll(&mut collector, &mut notes) {
        Ok(first) => first,
        Err(error) => return sampling_failed(&error),
    };
    if args.watch {
        let mode = Mode::for_term(std::env::var_os("TERM").as_deref());
        let next = |notes: &mut Vec<String>| poll(&mut collector, notes);
        return match watch::run(&args.watch(), mode, next, first, notes) {
            Ok(code) => code,
            Err(error) => output_failed("the terminal failed", &error),
        };
    }
    // The interval is the gap between the polls; growth is measured between their ends.
    std::thread::sleep(args.interval);
    let second = match poll(&mut collector, &mut notes) {
        Ok(second) => second,
        Err(error) => return sampling_failed(&error),
    };
    let mut summary = Summary::build(
        Some(&first),
        &second,
        None,
        &args.filter(),
        &args.thresholds(),
    );
    summary.notes.splice(0..0, notes);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        super::json::write(&mut out, &summary)
    } else {
        let width = crossterm::terminal::size()
            .ok()
            .filter(|(columns, _)| on_terminal && *columns > 0)
            .map_or(terminal::DEFAULT_WIDTH, |(columns, _)| usize::from(columns));
        let style = Style {
            width,
            max_rows: MAX_ROWS,
            colour: terminal::colour_wanted(on_terminal, std::env::var_os("TERM").as_deref()),
        };
        // Findings are sentences: wrapped, not cut, so a file gets them whole.
        let lines = terminal::page(&summary, &second, style, Overflow::Wrap, None);
        writeln!(out, "{}", lines.join("\n"))
    };
    if let Err(error) = written.and_then(|()| out.flush()) {
        return output_failed("cannot write to stdout", &error);
    }
    if args.check && !summary.findings.is_empty() {
        ExitCode::from(exit::FINDING)
    } else {
        ExitCode::SUCCESS
    }
}

fn sampling_failed(error: &PollError) -> ExitCode {
    let error = error.to_string();
    eprintln!("sockdiag_exporter report: poll failed: {}", shown(&error));
    ExitCode::from(exit::SAMPLING)
}

/// A closed pipe (`| head`) or a full disk: said once, with its own code, so a script
/// does not take a cut report for a whole one.
fn output_failed(what: &str, error: &std::io::Error) -> ExitCode {
    eprintln!("sockdiag_exporter report: {what}: {error}");
    ExitCode::from(exit::OUTPUT)
}
