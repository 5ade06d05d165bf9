//! The many-namespace part of the report: a table of the scenarios and their targets
//! (issue 10: poll ≤ 1.2× the summed floors plus 100 µs per namespace, and a node with
//! 200 pods under 10,000 series; issue 15: 200 × 2k at ≤ 1.2× the summed floors).

use std::fmt::Write as _;
use std::time::Duration;

use crate::many::NsScenario;
use crate::report::{count_label, median, mib, ratio, t, wall_cpu, x, Table, POLL_RSS_ROW};
use crate::targets::{verdict, Check};

/// Series of a node that holds only the bench's namespaces: every series but those of
/// other namespaces that exist on this shared machine, the host's kept.
fn node_series(s: &NsScenario) -> u64 {
    s.series.total - s.series.foreign + s.series.host
}

/// The poll's budget: 1.2× the summed floors plus 100 µs per namespace it sampled.
pub fn budget(floors: Duration, namespaces: u64) -> Duration {
    floors.mul_f64(1.2) + Duration::from_micros(100) * namespaces as u32
}

pub fn tables(namespaces: &[NsScenario], pods: Option<&NsScenario>) -> String {
    let all: Vec<&NsScenario> = namespaces.iter().chain(pods).collect();
    if all.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(out, "\n### Many network namespaces\n");
    let mut header = vec![String::new()];
    header.extend(all.iter().map(|s| s.name.clone()));
    let mut table = Table::new(&header);
    let row = |table: &mut Table, name: &str, f: &dyn Fn(&NsScenario) -> String| {
        let mut cells = vec![name.to_string()];
        cells.extend(all.iter().map(|s| f(s)));
        table.row(cells);
    };
    row(&mut table, "each namespace holds", &|s| {
        format!(
            "{} sockets: 4 LISTEN, {} ESTAB, {} CW, {} FW2, {} TW",
            s.mix.total(),
            2 * s.mix.established_pairs,
            s.mix.close_wait_pairs,
            s.mix.close_wait_pairs,
            s.mix.time_wait
        )
    });
    row(
        &mut table,
        "sockets in the bench's namespaces (first – last floor)",
        &|s| format!("{} – {}", s.sockets_before, s.sockets_after),
    );
    row(
        &mut table,
        "other namespaces on the host, sampled too (their sockets)",
        &|s| format!("{} ({})", s.foreign_namespaces, s.foreign_sockets),
    );
    row(
        &mut table,
        "build; TIME_WAIT re-made before measuring",
        &|s| {
            format!(
                "{:.1} s; {:.1} s ({} failed connects)",
                s.build_seconds, s.refresh_seconds, s.failed_connects
            )
        },
    );
    row(
        &mut table,
        "floor of one bench namespace: min / median / max",
        &|s| {
            let mut v = s.ns_floors.clone();
            v.sort();
            match (v.first(), v.last()) {
                (Some(min), Some(max)) => {
                    format!("{} / {} / {}", t(*min), t(v[(v.len() - 1) / 2]), t(*max))
                }
                _ => "–".into(),
            }
        },
    );
    row(
        &mut table,
        "summed floors, every sampled namespace (one after the other)",
        &|s| wall_cpu(median(&s.floor_sum)),
    );
    row(
        &mut table,
        "**exporter poll**, `Scope::All` (steady)",
        &|s| format!("**{}**", wall_cpu(median(&s.poll))),
    );
    row(&mut table, "exporter poll, first (full /proc scan)", &|s| {
        format!("{} ({} readlinks)", wall_cpu(s.poll_cold), s.cold_readlinks)
    });
    row(&mut table, "namespaces / sockets the poll sampled", &|s| {
        format!("{} / {}", s.poll_namespaces, s.poll_sockets)
    });
    row(&mut table, "poll ÷ summed floors, wall / CPU", &|s| {
        let (p, f) = (median(&s.poll), median(&s.floor_sum));
        format!("{} / {}", x(ratio(p.wall, f.wall)), x(ratio(p.cpu, f.cpu)))
    });
    row(
        &mut table,
        "budget: 1.2 × summed floors + 100 µs × namespaces, wall / CPU",
        &|s| {
            let f = median(&s.floor_sum);
            format!(
                "{} / {}",
                t(budget(f.wall, s.poll_namespaces)),
                t(budget(f.cpu, s.poll_namespaces))
            )
        },
    );
    row(&mut table, POLL_RSS_ROW, &|s| {
        format!("**{}**", mib(s.poll_rss_kib))
    });
    row(
        &mut table,
        "series per scrape (bytes): all / without other namespaces",
        &|s| {
            format!(
                "{} ({} kB) / {}",
                s.series.total,
                s.series.bytes / 1000,
                node_series(s)
            )
        },
    );
    row(
        &mut table,
        "series of bench namespaces and `other` / host / without `netns`",
        &|s| {
            format!(
                "{} / {} / {}",
                s.series.bench, s.series.host, s.series.global
            )
        },
    );
    row(&mut table, "largest families (series)", &|s| {
        s.series
            .families
            .iter()
            .take(4)
            .map(|(name, n)| format!("`{name}` {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    out.push_str(&table.text);
    out
}

pub fn checks(namespaces: &[NsScenario], pods: Option<&NsScenario>) -> Vec<Check> {
    let mut checks = Vec::new();
    if !namespaces.is_empty() {
        let mut met = true;
        let cells = namespaces
            .iter()
            .map(|s| {
                let (p, f) = (median(&s.poll), median(&s.floor_sum));
                let (bw, bc) = (
                    budget(f.wall, s.poll_namespaces),
                    budget(f.cpu, s.poll_namespaces),
                );
                let (ok, text) = verdict(
                    p.wall <= bw && p.cpu <= bc,
                    format!(
                        "wall {} of {}, CPU {} of {}",
                        t(p.wall),
                        t(bw),
                        t(p.cpu),
                        t(bc)
                    ),
                );
                met &= ok;
                format!("{}: {text}", s.name)
            })
            .collect();
        checks.push(Check {
            name: "namespaces: poll ≤ 1.2× summed floors + 100 µs per namespace".into(),
            cells,
            met: Some(met),
        });
    }
    if let Some(s) = namespaces
        .iter()
        .find(|s| s.namespaces == 200 && s.mix.total() == 2_000)
    {
        let (p, f) = (median(&s.poll), median(&s.floor_sum));
        let (rw, rc) = (ratio(p.wall, f.wall), ratio(p.cpu, f.cpu));
        let (ok, text) = verdict(
            rw <= 1.2 && rc <= 1.2,
            format!("wall {}, CPU {}", x(rw), x(rc)),
        );
        checks.push(Check {
            name: "200 × 2k: poll ≤ 1.2× the summed floors".into(),
            cells: vec![text],
            met: Some(ok),
        });
    }
    if let Some(s) = pods {
        let n = node_series(s);
        let (ok, text) = verdict(
            n < 10_000,
            format!(
                "{} series ({} namespaces{})",
                n,
                s.namespaces,
                s.series
                    .families
                    .first()
                    .map(|(name, k)| format!("; largest family `{name}`: {k}"))
                    .unwrap_or_default()
            ),
        );
        checks.push(Check {
            name: format!(
                "a node with {} pods, defaults: < 10,000 series",
                count_label(s.namespaces as u64)
            ),
            cells: vec![text],
            met: Some(ok),
        });
    }
    checks
}
