//! The targets of the report: issue 27's, one row per target and scale that this harness
//! measures, each with the figure, the limit and a verdict (met, missed, or not run when
//! its scale or step was not part of this run), then the targets of earlier issues that
//! still hold. The churn targets are benches/soak.sh's (docs/reliability.md).

use std::fmt::Write as _;
use std::time::Duration;

use crate::many::NsScenario;
use crate::many_report;
use crate::owned::Owned;
use crate::report::{count_label, median, mib, ratio, t, x, Attribution, Scale, Table};
use crate::Options;

/// What one run measured, for the targets.
pub struct Figures<'a> {
    pub scales: &'a [Scale],
    pub owned: &'a [Owned],
    pub attribution: Option<&'a Attribution>,
    pub namespaces: &'a [NsScenario],
    pub pods: Option<&'a NsScenario>,
}

/// A target of an earlier issue: its verdicts per scale or scenario.
pub struct Check {
    pub name: String,
    pub cells: Vec<String>,
    pub met: Option<bool>,
}

pub fn verdict(ok: bool, text: String) -> (bool, String) {
    (ok, format!("{text} {}", if ok { "✅" } else { "❌" }))
}

/// One row of issue 27's targets.
struct Row {
    target: String,
    figure: String,
    limit: String,
    /// None: not run (the figure says why).
    met: Option<bool>,
}

impl Row {
    fn judged(target: String, figure: String, limit: String, met: bool) -> Row {
        Row {
            target,
            figure,
            limit,
            met: Some(met),
        }
    }

    fn not_run(target: String, why: &str, limit: String) -> Row {
        Row {
            target,
            figure: why.to_string(),
            limit,
            met: None,
        }
    }
}

const STEADY_LIMIT: f64 = 1.10;
const FIRST_POLL_LIMIT: Duration = Duration::from_secs(1);
const SCRAPE_P99_LIMIT: Duration = Duration::from_millis(5);
const BINARY_RSS_LIMIT_KIB: u64 = 16 * 1024;
const BIG: u64 = 1_100_000;

pub fn section(options: &Options, figures: &Figures) -> String {
    let mut rows = Vec::new();
    steady_rows(figures, &mut rows);
    first_poll_row(figures, &mut rows);
    scrape_rows(options, figures, &mut rows);
    namespace_row(figures, &mut rows);
    memory_rows(options, figures, &mut rows);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Targets (issue 27)\n\n\
         Each measured in this run, on one load; \"not run\" when its scale or step was not \
         part of it. The churn targets are `benches/soak.sh`'s (docs/reliability.md).\n"
    );
    let mut table = Table::new(&["target", "measured", "limit", "verdict"].map(String::from));
    for row in rows {
        table.row(vec![
            row.target,
            row.figure,
            row.limit,
            match row.met {
                None => "not run".into(),
                Some(_) if options.smoke => "not judged (smoke variant)".into(),
                Some(true) => "met".into(),
                Some(false) => "**missed**".into(),
            },
        ]);
    }
    out.push_str(&table.text);

    let _ = writeln!(out, "\n### Earlier targets\n");
    let mut table = Table::new(&["target", "measured", "verdict"].map(String::from));
    for check in earlier(figures) {
        let measured = if check.cells.is_empty() {
            "its scale or step not run".to_string()
        } else {
            check.cells.join("; ")
        };
        table.row(vec![
            check.name,
            measured,
            match check.met {
                _ if options.smoke => "not judged (smoke variant)".into(),
                Some(true) => "met".into(),
                Some(false) => "**missed**".into(),
                None => "not run".into(),
            },
        ]);
    }
    out.push_str(&table.text);
    out
}

/// Steady poll ≤ 1.10× the floor at 100k and 1.1M, on both loads.
fn steady_rows(f: &Figures, rows: &mut Vec<Row>) {
    let limit = format!("≤ {STEADY_LIMIT:.2}× (wall)");
    for total in [100_000, BIG] {
        let name = |load: &str| format!("steady poll ÷ floor, {} {load}", count_label(total));
        match f.scales.iter().find(|s| s.total == total) {
            Some(s) => rows.push(steady(
                name("mixed load"),
                median(&s.poll),
                median(&s.floor),
                &limit,
            )),
            None => rows.push(Row::not_run(
                name("mixed load"),
                "scale not run",
                limit.clone(),
            )),
        }
        match f.owned.iter().find(|o| o.total == total) {
            Some(o) if o.skipped.is_none() => rows.push(steady(
                name("all owned"),
                median(&o.poll),
                median(&o.floor),
                &limit,
            )),
            Some(o) => rows.push(Row::not_run(
                name("all owned"),
                o.skipped.as_deref().unwrap_or_default(),
                limit.clone(),
            )),
            None => rows.push(Row::not_run(
                name("all owned"),
                "scale not run",
                limit.clone(),
            )),
        }
    }
}

fn steady(
    target: String,
    poll: crate::report::Sample,
    floor: crate::report::Sample,
    limit: &str,
) -> Row {
    let r = ratio(poll.wall, floor.wall);
    Row::judged(
        target,
        format!(
            "{} (poll {} ÷ floor {}; CPU {})",
            x(r),
            t(poll.wall),
            t(floor.wall),
            x(ratio(poll.cpu, floor.cpu))
        ),
        limit.to_string(),
        r <= STEADY_LIMIT,
    )
}

/// First poll at 1.1M ≤ 1.0 s, with exact attribution.
fn first_poll_row(f: &Figures, rows: &mut Vec<Row>) {
    let target = "first poll at 1.1M (mixed load), exact attribution".to_string();
    let limit = format!("≤ {}, 0 sockets unattributed", t(FIRST_POLL_LIMIT));
    rows.push(match f.scales.iter().find(|s| s.total == BIG) {
        Some(s) => Row::judged(
            target,
            format!(
                "{} ({} readlinks, {} unattributed)",
                t(s.poll_cold.wall),
                s.cold_readlinks,
                s.cold_unattributed
            ),
            limit,
            s.poll_cold.wall <= FIRST_POLL_LIMIT && s.cold_unattributed == 0,
        ),
        None => Row::not_run(target, "scale not run", limit),
    });
}

/// Scrape p99 ≤ 5 ms for 32 scrapers while polls run back to back, at every scale.
fn scrape_rows(options: &Options, f: &Figures, rows: &mut Vec<Row>) {
    let limit = format!("≤ {}", t(SCRAPE_P99_LIMIT));
    let mut totals = vec![10_000, 100_000, BIG];
    totals.extend(f.scales.iter().map(|s| s.total));
    totals.sort_unstable();
    totals.dedup();
    for total in totals {
        let target = format!(
            "scrape p99, 32 concurrent scrapers, polls back to back, {}",
            count_label(total)
        );
        let scale = f.scales.iter().find(|s| s.total == total);
        rows.push(match scale.and_then(|s| s.scrape.as_ref()) {
            Some(c) => Row::judged(
                target,
                format!(
                    "{} ({} scrapes, {} failed, {} series)",
                    t(c.latency.p99),
                    c.latency.samples,
                    c.latency.failed,
                    c.series
                ),
                limit.clone(),
                c.latency.p99 <= SCRAPE_P99_LIMIT && c.latency.failed == 0,
            ),
            None if scale.is_some() && options.quick => {
                Row::not_run(target, "not run (--quick)", limit.clone())
            }
            None => Row::not_run(target, "scale not run", limit.clone()),
        });
    }
}

/// 200 × 2k: poll CPU ≤ 1.2× the summed floors' CPU + 100 µs per namespace.
fn namespace_row(f: &Figures, rows: &mut Vec<Row>) {
    let target = "200 namespaces × 2k: poll CPU".to_string();
    let limit = "≤ 1.2 × summed floors' CPU + 100 µs × namespaces".to_string();
    let scenario = f
        .namespaces
        .iter()
        .find(|s| s.namespaces == 200 && s.mix.total() == 2_000);
    rows.push(match scenario {
        Some(s) => {
            let (p, floors) = (median(&s.poll), median(&s.floor_sum));
            let budget = many_report::budget(floors.cpu, s.poll_namespaces);
            Row::judged(
                target,
                format!(
                    "{} of {} ({} floors, {} namespaces; {} of the floors)",
                    t(p.cpu),
                    t(budget),
                    t(floors.cpu),
                    s.poll_namespaces,
                    x(ratio(p.cpu, floors.cpu))
                ),
                limit,
                p.cpu <= budget,
            )
        }
        None => Row::not_run(target, "scenario not run", limit),
    });
}

/// Peak RSS at 1.1M ≤ 1.25 × the 10k figure + 8 MiB (a process that only polls), and the
/// exporter binary's peak RSS at 1.1M ≤ 16 MiB (after the scrape test).
fn memory_rows(options: &Options, f: &Figures, rows: &mut Vec<Row>) {
    let target = "poll peak RSS at 1.1M (a process that only polls)".to_string();
    let small = f.scales.iter().find(|s| s.total == 10_000);
    let big = f.scales.iter().find(|s| s.total == BIG);
    rows.push(match (small, big) {
        (Some(small), Some(big)) => {
            let limit = small.poll_rss_kib * 5 / 4 + 8 * 1024;
            Row::judged(
                target,
                mib(big.poll_rss_kib),
                format!(
                    "≤ 1.25 × {} (10k) + 8 MiB = {}",
                    mib(small.poll_rss_kib),
                    mib(limit)
                ),
                big.poll_rss_kib <= limit,
            )
        }
        _ => Row::not_run(
            target,
            "needs the 10k and 1.1M scales",
            "≤ 1.25 × the 10k figure + 8 MiB".into(),
        ),
    });
    let target = "exporter binary's peak RSS at 1.1M (after the scrape test)".to_string();
    let limit = format!("≤ {}", mib(BINARY_RSS_LIMIT_KIB));
    rows.push(match big.map(|s| s.scrape.as_ref()) {
        Some(Some(c)) => Row::judged(
            target,
            mib(c.exporter_rss_kib),
            limit,
            c.exporter_rss_kib <= BINARY_RSS_LIMIT_KIB,
        ),
        Some(None) if options.quick => Row::not_run(target, "not run (--quick)", limit),
        _ => Row::not_run(target, "scale not run", limit),
    });
}

/// The targets of earlier issues that issue 27 did not restate.
fn earlier(f: &Figures) -> Vec<Check> {
    let mut checks = Vec::new();
    let biggest: Vec<&Scale> = f.scales.iter().filter(|s| s.total >= 1_000_000).collect();
    let all: Vec<&Scale> = f.scales.iter().collect();
    let per = |check: &dyn Fn(&Scale) -> (bool, String), set: &[&Scale]| {
        let results: Vec<(bool, String)> = set.iter().map(|s| check(s)).collect();
        let met = (!results.is_empty()).then(|| results.iter().all(|(ok, _)| *ok));
        let cells = set
            .iter()
            .zip(results)
            .map(|(s, (_, text))| format!("{}: {text}", count_label(s.total)))
            .collect();
        (cells, met)
    };
    let (cells, met) = per(
        &|s| verdict(s.poll_rss_kib <= 16 * 1024, mib(s.poll_rss_kib)),
        &biggest,
    );
    checks.push(Check {
        name: "poll peak RSS ≤ 16 MiB at 1.1M".into(),
        cells,
        met,
    });
    let (cells, met) = per(
        &|s| {
            let w = median(&s.listen).wall;
            verdict(w <= Duration::from_millis(1), t(w))
        },
        &biggest,
    );
    checks.push(Check {
        name: "LISTEN-only sample ≤ 1 ms at 1.1M".into(),
        cells,
        met,
    });
    let measured: Vec<&Scale> = all.into_iter().filter(|s| !s.ssp.is_empty()).collect();
    let (mut cells, mut met) = per(
        &|s| {
            let r = ratio(median(&s.attrib).wall, median(&s.ssp).wall);
            verdict(r <= 0.10, format!("{:.1}%", 100.0 * r))
        },
        &measured,
    );
    if let Some(a) = f.attribution {
        for (label, samples) in [("no new sockets", &a.attrib), ("1% new", &a.attrib_churn)] {
            let r = ratio(median(samples).wall, median(&a.ssp).wall);
            let (ok, text) = verdict(r <= 0.10, format!("{:.1}%", 100.0 * r));
            cells.push(format!(
                "{} all owned, {label}: {text}",
                count_label(a.total)
            ));
            met = Some(met.unwrap_or(true) && ok);
        }
    }
    checks.push(Check {
        name: "attribution in steady state ≤ 10% of one `ss -tanp`".into(),
        cells,
        met,
    });
    checks.extend(many_report::checks(f.namespaces, f.pods));
    checks
}
