//! What looks wrong, in plain words, from a summary's rows and the thresholds.
//!
//! The kinds follow the incidents of docs/incidents.md: a CLOSE_WAIT leak growing or
//! stale (1, 3, 6), an accept queue full or holding never-accepted CLOSE_WAIT (5), a UNIX
//! listener's queue full (php-fpm behind nginx), a UDP receiver dropping datagrams (7), ephemeral ports toward one destination
//! near the range (2), TIME_WAIT churn on a port (4). Ordered as a person should read
//! them: growing leaks first, fastest first.

use super::rows::{path_text, process_text, Summary};
pub use super::rows::{Finding, FindingKind};

/// When a row becomes a finding. The defaults match the shipped alerts where one exists
/// (grafana/rules/sockdiag-alerts.yml).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// CLOSE_WAIT growth, sockets per second, above which a series is a finding.
    pub close_wait_growth: f64,
    /// TIME_WAIT growth on one port, sockets per second (at 10/s a port holds about 600
    /// TIME_WAIT sockets, the 60 s of TIME_WAIT times the rate).
    pub time_wait_growth: f64,
    /// Accept queue length / backlog at or above which a listener is a finding.
    pub listen_fill: f64,
    /// Ephemeral ports used toward one destination / range size, at or above.
    pub ephemeral_fill: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            close_wait_growth: 0.0,
            time_wait_growth: 10.0,
            listen_fill: 0.9,
            ephemeral_fill: 0.75,
        }
    }
}

/// A rate as people read it: `+12/s`, `+0.5/s`, `-3/s`.
pub fn rate_text(per_second: f64) -> String {
    let sign = if per_second < 0.0 { "-" } else { "+" };
    let magnitude = per_second.abs();
    if magnitude >= 10.0 || magnitude == magnitude.round() {
        format!("{sign}{magnitude:.0}/s")
    } else {
        format!("{sign}{magnitude:.1}/s")
    }
}

/// An age as people read it: `340 s` up to ten minutes, then minutes, then hours.
pub fn age_text(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 600.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// The kernel lets a queue hold one more than its backlog: beyond it, it is full.
fn queue_word(length: u64, limit: u64) -> &'static str {
    if length > limit {
        "full"
    } else {
        "filling"
    }
}

/// Findings as they are found, with a weight that orders those of one kind.
struct Found<'a> {
    found: Vec<(f64, Finding)>,
    /// The namespace is named only where there is more than one to tell apart.
    several: bool,
    thresholds: &'a Thresholds,
}

impl Found<'_> {
    /// `netns` is the row's label (kept in the finding), `name` what the text calls it.
    fn push(&mut self, kind: FindingKind, weight: f64, (netns, name): (&str, &str), text: String) {
        let text = if self.several {
            format!("{text} in netns {name}")
        } else {
            text
        };
        let finding = Finding {
            kind,
            netns: netns.to_string(),
            netns_name: name.to_string(),
            text,
        };
        self.found.push((weight, finding));
    }
}

/// Every finding of `summary`, most urgent first.
pub fn find(summary: &Summary, thresholds: &Thresholds) -> Vec<Finding> {
    let mut found = Found {
        found: Vec::new(),
        several: summary.states.len() > 1,
        thresholds,
    };
    close_wait(summary, &mut found);
    listeners(summary, &mut found);
    unix_listeners(summary, &mut found);
    udp_drops(summary, &mut found);
    ephemeral(summary, &mut found);
    time_wait(summary, &mut found);
    let mut found = found.found;
    found.sort_by(|a, b| a.1.kind.cmp(&b.1.kind).then(b.0.total_cmp(&a.0)));
    found.into_iter().map(|(_, finding)| finding).collect()
}

fn close_wait(summary: &Summary, found: &mut Found) {
    for row in &summary.close_wait {
        let who = format!(
            "{} :{} {}",
            process_text(&row.process),
            row.port,
            row.direction
        );
        let oldest = age_text(row.oldest_seconds);
        match row.growth {
            Some(g) if g.sockets > 0 && g.per_second > found.thresholds.close_wait_growth => found
                .push(
                    FindingKind::CloseWaitGrowing,
                    g.per_second,
                    (&row.netns, &row.netns_name),
                    format!(
                        "CLOSE_WAIT growing: {who}, {}, {} sockets, oldest {oldest}",
                        rate_text(g.per_second),
                        row.sockets,
                    ),
                ),
            _ if row.stale > 0 => found.push(
                FindingKind::CloseWaitStale,
                row.stale as f64,
                (&row.netns, &row.netns_name),
                format!(
                    "CLOSE_WAIT stale: {who}, {} of {} never closed, oldest {oldest}",
                    row.stale, row.sockets,
                ),
            ),
            _ => {}
        }
    }
}

fn listeners(summary: &Summary, found: &mut Found) {
    for row in &summary.listeners {
        let unaccepted = if row.unaccepted_close_wait > 0 {
            format!(
                ", {} never accepted in CLOSE_WAIT",
                row.unaccepted_close_wait
            )
        } else {
            String::new()
        };
        let at = format!(
            "{} {}:{}",
            process_text(&row.process),
            row.address,
            row.port
        );
        if row.fill >= found.thresholds.listen_fill {
            found.push(
                FindingKind::ListenQueueFull,
                row.fill,
                (&row.netns, &row.netns_name),
                format!(
                    "accept queue {}: {at}, {} waiting of {}{unaccepted}",
                    queue_word(row.length, row.limit),
                    row.length,
                    row.limit,
                ),
            );
        } else if row.unaccepted_close_wait > 0 {
            found.push(
                FindingKind::UnacceptedCloseWait,
                row.unaccepted_close_wait as f64,
                (&row.netns, &row.netns_name),
                format!("clients gave up waiting: {at}{unaccepted}"),
            );
        }
    }
}

fn unix_listeners(summary: &Summary, found: &mut Found) {
    for row in &summary.unix_listeners {
        if row.fill >= found.thresholds.listen_fill {
            found.push(
                FindingKind::UnixListenQueueFull,
                row.fill,
                (&row.netns, &row.netns_name),
                format!(
                    "UNIX accept queue {}: {} {}, {} waiting of {}",
                    queue_word(row.length, row.limit),
                    process_text(&row.process),
                    path_text(&row.path),
                    row.length,
                    row.limit,
                ),
            );
        }
    }
}

/// A UDP series that dropped since the base poll; without a base, one that ever dropped.
fn udp_drops(summary: &Summary, found: &mut Found) {
    for row in &summary.udp_drops {
        let dropped = row.growth.unwrap_or(row.drops);
        if dropped == 0 {
            continue;
        }
        let direction = if row.direction == "outbound" {
            " outbound"
        } else {
            ""
        };
        found.push(
            FindingKind::UdpDrops,
            dropped as f64,
            (&row.netns, &row.netns_name),
            format!(
                "UDP drops: {} :{}{direction} dropped {dropped} datagrams, queue {} of {} bytes",
                process_text(&row.process),
                row.port,
                row.queue_bytes,
                row.buffer_bytes,
            ),
        );
    }
}

fn ephemeral(summary: &Summary, found: &mut Found) {
    for row in &summary.ephemeral {
        let (Some(fill), Some(range)) = (row.fill, row.range) else {
            continue;
        };
        if fill >= found.thresholds.ephemeral_fill {
            found.push(
                FindingKind::EphemeralPorts,
                fill,
                (&row.netns, &row.netns_name),
                format!(
                    "ephemeral ports running out: {}:{} holds {} of {} ({:.0}%)",
                    row.remote_address,
                    row.remote_port,
                    row.used,
                    range,
                    fill * 100.0,
                ),
            );
        }
    }
}

fn time_wait(summary: &Summary, found: &mut Found) {
    for row in &summary.time_wait {
        let Some(g) = row.growth else { continue };
        if g.per_second > found.thresholds.time_wait_growth {
            found.push(
                FindingKind::TimeWaitGrowing,
                g.per_second,
                (&row.netns, &row.netns_name),
                format!(
                    "TIME_WAIT growing: :{} {}, {}, {} sockets",
                    row.port,
                    row.direction,
                    rate_text(g.per_second),
                    row.sockets,
                ),
            );
        }
    }
}
