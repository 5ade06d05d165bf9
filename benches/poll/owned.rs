//! The all-owned loads, where every socket has an owner in /proc:
//!
//! - the ESTABLISHED load (issue 27): every socket ESTABLISHED and held by one of the
//!   holder processes, at each scale beside the mixed load (74% TIME_WAIT, no owner),
//!   because that is what a service node looks like. Measured like the mixed load's first
//!   step: the floor and the steady poll interleaved, the first poll (full /proc scan)
//!   apart, and the poll's peak RSS. Nothing expires in it, so nothing is re-made;
//! - the attribution load (issue 15): 80% ESTABLISHED, 10% CLOSE_WAIT, 10% FIN_WAIT2,
//!   the poll and attribution alone against `ss -tanp`, steady and with 1% new sockets.

use std::fmt::Write as _;

use sockdiag_exporter::source::sock_diag::SockDiag;

use crate::load::{self, Census, Load, Mix, Proc};
use crate::measure;
use crate::report::{
    census_line, count_label, median, mib, ratio, t, wall_cpu, x, Attribution, Sample, Scale, Table,
};
use crate::{hold, peak_rss, run_sample, sample, Options};

/// One all-owned load's figures; `skipped` says why it was not built.
#[derive(Debug, Clone, Default)]
pub struct Owned {
    pub total: u64,
    pub skipped: Option<String>,
    pub census: Census,
    pub build_seconds: f64,
    /// Socket count before and after the measurements (held sockets only: should not move).
    pub before: u64,
    pub after: u64,
    pub floor: Vec<Sample>,
    pub poll: Vec<Sample>,
    pub poll_cold: Sample,
    pub cold_readlinks: u64,
    /// Sockets without an owner after the first poll (exact attribution: 0).
    pub cold_unattributed: u64,
    pub steady_readlinks: u64,
    pub poll_rss_kib: u64,
}

impl Owned {
    /// Steady poll ÷ floor, wall.
    pub fn ratio(&self) -> f64 {
        ratio(median(&self.poll).wall, median(&self.floor).wall)
    }
}

/// Why an all-owned load of `total` sockets cannot be built here, if it cannot: the
/// busiest holder would need more descriptors than a process may have.
pub fn infeasible(total: u64) -> Option<String> {
    let needed = Mix::all_established(total).holder_fds();
    let limit = load::fd_limit();
    (needed + 64 > limit).then(|| {
        format!(
            "not run: its busiest holder needs {needed} fds, the hard limit is {limit} \
             (spread over {} holders)",
            load::HOLDERS
        )
    })
}

/// Builds `total` sockets, all ESTABLISHED and owned, and measures the poll against the
/// floor. Runs inside its own network namespace (see `netns::in_netns`).
pub fn run(total: u64, options: &Options) -> Owned {
    if let Some(reason) = infeasible(total) {
        eprintln!("   {reason}");
        return Owned {
            total,
            skipped: Some(reason),
            ..Owned::default()
        };
    }
    let reps = options.reps;
    let mut sd = SockDiag::open().expect("open sock_diag");
    let (load, census) = build_and_hold(Mix::all_established(total), &mut sd, options);
    let mut floor = Proc::start("floor", &[]);
    let mut poller = Proc::start("poller", &[]);
    let mut owned = Owned {
        total,
        census,
        build_seconds: load.build_seconds,
        before: Census::take(&mut sd).total(),
        ..Owned::default()
    };
    let (cold, extra) = sample(&poller.call("poll"));
    owned.poll_cold = cold;
    owned.cold_readlinks = extra.get(2).copied().unwrap_or(0);
    owned.cold_unattributed = extra.get(3).copied().unwrap_or(0);
    for _ in 0..reps {
        owned.floor.push(sample(&floor.call("floor")).0);
        let (poll, extra) = sample(&poller.call("poll"));
        owned.poll.push(poll);
        owned.steady_readlinks = owned
            .steady_readlinks
            .max(extra.get(2).copied().unwrap_or(0));
    }
    owned.poll_rss_kib = peak_rss(&mut poller);
    owned.after = Census::take(&mut sd).total();
    eprintln!(
        "   {} all owned: poll {:?} (floor {:?}, ×{:.2}), first poll {:?} ({} readlinks)",
        count_label(total),
        median(&owned.poll).wall,
        median(&owned.floor).wall,
        owned.ratio(),
        owned.poll_cold.wall,
        owned.cold_readlinks
    );
    drop((floor, poller, load));
    owned
}

/// Steady poll ÷ floor for both loads at each scale: the mixed one (74% TIME_WAIT, no
/// owner) and the all-owned ESTABLISHED one.
pub fn steady_table(scales: &[Scale], owned: &[Owned]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Steady poll ÷ floor, both loads (wall / CPU, medians)\n"
    );
    let mut table = Table::new(
        &[
            "sockets",
            "load",
            "floor",
            "steady poll",
            "poll ÷ floor, wall / CPU",
            "first poll (readlinks)",
            "poll peak RSS",
        ]
        .map(String::from),
    );
    let mut totals: Vec<u64> = scales.iter().map(|s| s.total).collect();
    totals.extend(owned.iter().map(|o| o.total));
    totals.sort_unstable();
    totals.dedup();
    for total in totals {
        let label = count_label(total);
        if let Some(s) = scales.iter().find(|s| s.total == total) {
            let (p, f) = (median(&s.poll), median(&s.floor));
            table.row(vec![
                label.clone(),
                "mixed (74% TIME_WAIT)".into(),
                wall_cpu(f),
                wall_cpu(p),
                format!("{} / {}", x(ratio(p.wall, f.wall)), x(ratio(p.cpu, f.cpu))),
                format!("{} ({})", t(s.poll_cold.wall), s.cold_readlinks),
                mib(s.poll_rss_kib),
            ]);
        }
        if let Some(o) = owned.iter().find(|o| o.total == total) {
            let mut cells = vec![label.clone(), "all owned, ESTABLISHED".into()];
            match &o.skipped {
                Some(reason) => cells.extend([
                    reason.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
                None => {
                    let (p, f) = (median(&o.poll), median(&o.floor));
                    cells.extend([
                        wall_cpu(f),
                        wall_cpu(p),
                        format!("{} / {}", x(ratio(p.wall, f.wall)), x(ratio(p.cpu, f.cpu))),
                        format!("{} ({})", t(o.poll_cold.wall), o.cold_readlinks),
                        mib(o.poll_rss_kib),
                    ]);
                }
            }
            table.row(cells);
        }
    }
    out.push_str(&table.text);
    let loads: Vec<String> = owned
        .iter()
        .filter(|o| o.skipped.is_none())
        .map(|o| {
            format!(
                "{}: {}, built in {:.1} s ({} → {} sockets during the measurements)",
                count_label(o.total),
                census_line(&o.census),
                o.build_seconds,
                o.before,
                o.after
            )
        })
        .collect();
    if !loads.is_empty() {
        let _ = writeln!(
            out,
            "\nThe all-owned loads, {} holder processes (and 4 idle TIME_WAIT generators \
             holding listeners): {}.",
            load::HOLDERS,
            loads.join("; ")
        );
    }
    out
}

/// The attribution load's table: the poll and attribution alone against `ss -tanp`.
pub fn attribution_table(a: &Attribution) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Poll with attribution at {} sockets owned by {} processes vs `ss -tanp`\n",
        count_label(a.total),
        a.processes
    );
    let mut table = Table::new(&["".into(), "wall / CPU".into(), "÷ `ss -tanp`".into()]);
    let ssp = median(&a.ssp).wall;
    let line = |table: &mut Table, name: String, s: Sample| {
        table.row(vec![
            name,
            wall_cpu(s),
            format!("{:.1}%", 100.0 * ratio(s.wall, ssp)),
        ]);
    };
    table.row(vec!["load".into(), census_line(&a.census), String::new()]);
    line(&mut table, "`ss -tanp -H`".into(), median(&a.ssp));
    line(&mut table, "`ss -tan -H`".into(), median(&a.ss));
    line(&mut table, "floor (count only)".into(), median(&a.floor));
    line(
        &mut table,
        format!("exporter poll, first ({} readlinks)", a.cold_readlinks),
        a.poll_cold,
    );
    line(
        &mut table,
        "exporter poll, steady, no new sockets".into(),
        median(&a.poll),
    );
    line(
        &mut table,
        format!(
            "exporter poll, steady, {} new sockets per poll ({} readlinks)",
            a.churn_sockets, a.churn_readlinks
        ),
        median(&a.poll_churn),
    );
    line(
        &mut table,
        "attribution alone, first full scan".into(),
        a.attrib_warm,
    );
    line(
        &mut table,
        "attribution alone, steady, no new sockets".into(),
        median(&a.attrib),
    );
    line(
        &mut table,
        format!(
            "attribution alone, steady, {} new sockets ({} readlinks)",
            a.churn_sockets, a.attrib_churn_readlinks
        ),
        median(&a.attrib_churn),
    );
    table.row(vec![
        "poll peak RSS".into(),
        mib(a.poll_rss_kib),
        String::new(),
    ]);
    out.push_str(&table.text);
    out
}

/// The attribution load (100k by default): all owned, 10% CLOSE_WAIT and 10% FIN_WAIT2,
/// measured against `ss -tanp`, steady and with 1% new sockets per poll.
pub fn run_attribution(total: u64, options: &Options) -> Attribution {
    let reps = options.reps;
    let mut sd = SockDiag::open().expect("open sock_diag");
    let (mut load, census) = build_and_hold(Mix::all_owned(total), &mut sd, options);
    let mut floor = Proc::start("floor", &[]);
    let mut poller = Proc::start("poller", &[]);
    let mut attrib = Proc::start("attrib", &[]);
    let mut result = Attribution {
        total,
        census,
        processes: load.pids().len(),
        ..Attribution::default()
    };
    for _ in 0..reps {
        let run = measure::run_program("ss", &["-tanp", "-H"]);
        result.ssp.push(run_sample(run));
        result
            .ss
            .push(run_sample(measure::run_program("ss", &["-tan", "-H"])));
        result.floor.push(sample(&floor.call("floor")).0);
    }
    let (cold, extra) = sample(&poller.call("poll"));
    result.poll_cold = cold;
    result.cold_readlinks = extra.get(2).copied().unwrap_or(0);
    result.attrib_warm = sample(&attrib.call("warm")).0;
    for _ in 0..reps {
        result.poll.push(sample(&poller.call("poll")).0);
        result.attrib.push(sample(&attrib.call("steady")).0);
    }
    // Churn: 1% new sockets (0.5% new pairs) between polls.
    let new_pairs = (total / 200).max(1);
    result.churn_sockets = 2 * new_pairs;
    for _ in 0..reps {
        load.churn(new_pairs, &mut sd);
        let (poll, extra) = sample(&poller.call("poll"));
        result.poll_churn.push(poll);
        result.churn_readlinks = result
            .churn_readlinks
            .max(extra.get(2).copied().unwrap_or(0));
        let (steady, extra) = sample(&attrib.call("steady"));
        result.attrib_churn.push(steady);
        result.attrib_churn_readlinks = result
            .attrib_churn_readlinks
            .max(extra.get(1).copied().unwrap_or(0));
    }
    result.poll_rss_kib = peak_rss(&mut poller);
    drop((floor, poller, attrib));
    result
}

/// Builds `mix` in a new load, says how long it took, and holds it for `--hold` (profiling).
fn build_and_hold(mix: Mix, sd: &mut SockDiag, options: &Options) -> (Load, Census) {
    let mut load = Load::start();
    let census = load.build(mix, sd);
    eprintln!(
        "   built {} sockets in {:.1} s",
        census.total(),
        load.build_seconds
    );
    hold(&mut load, options.hold);
    (load, census)
}
