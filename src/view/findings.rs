//! What looks wrong, in plain words, from a summary's rows and the thresholds.
//!
//! The kinds follow the incidents of docs/incidents.md: a CLOSE_WAIT leak growing or
//! stale (1, 3, 6), an accept queue full or holding never-accepted CLOSE_WAIT (5), a UNIX
//! listener's queue full (php-fpm behind nginx), ephemeral ports toward one destination
//! near the range (2), TIME_WAIT churn on a port (4). Ordered as a person should read
//! them: growing leaks first, fastest first.

use serde::Serialize;

use super::summary::{path_text, process_text, Summary};

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

/// The kind of a finding: the `kind` field of the JSON schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    CloseWaitGrowing,
    ListenQueueFull,
    UnixListenQueueFull,
    UnacceptedCloseWait,
    CloseWaitStale,
    EphemeralPorts,
    TimeWaitGrowing,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub netns: String,
    /// One line for a person, e.g. "CLOSE_WAIT growing: php-fpm :9000 inbound, +12/s,
    /// oldest 340 s".
    pub text: String,
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

/// Every finding of `summary`, most urgent first.
pub fn find(summary: &Summary, thresholds: &Thresholds) -> Vec<Finding> {
    // The namespace is named only where there is more than one to tell apart.
    let several = summary.states.len() > 1;
    let place = |netns: &str| {
        if several {
            format!(" in netns {netns}")
        } else {
            String::new()
        }
    };
    let mut found: Vec<(FindingKind, f64, Finding)> = Vec::new();
    let mut push = |kind, weight: f64, netns: &str, text: String| {
        found.push((
            kind,
            weight,
            Finding {
                kind,
                netns: netns.to_string(),
                text,
            },
        ));
    };
    for row in &summary.close_wait {
        let who = format!(
            "{} :{} {}",
            process_text(&row.process),
            row.port,
            row.direction
        );
        match row.growth {
            Some(g) if g.sockets > 0 && g.per_second > thresholds.close_wait_growth => push(
                FindingKind::CloseWaitGrowing,
                g.per_second,
                &row.netns,
                format!(
                    "CLOSE_WAIT growing: {who}, {}, {} sockets, oldest {}{}",
                    rate_text(g.per_second),
                    row.sockets,
                    age_text(row.oldest_seconds),
                    place(&row.netns)
                ),
            ),
            _ if row.stale > 0 => push(
                FindingKind::CloseWaitStale,
                row.stale as f64,
                &row.netns,
                format!(
                    "CLOSE_WAIT stale: {who}, {} of {} never closed, oldest {}{}",
                    row.stale,
                    row.sockets,
                    age_text(row.oldest_seconds),
                    place(&row.netns)
                ),
            ),
            _ => {}
        }
    }
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
        if row.fill >= thresholds.listen_fill {
            push(
                FindingKind::ListenQueueFull,
                row.fill,
                &row.netns,
                format!(
                    "accept queue {}: {at}, {} waiting of {}{unaccepted}{}",
                    queue_word(row.length, row.limit),
                    row.length,
                    row.limit,
                    place(&row.netns)
                ),
            );
        } else if row.unaccepted_close_wait > 0 {
            push(
                FindingKind::UnacceptedCloseWait,
                row.unaccepted_close_wait as f64,
                &row.netns,
                format!(
                    "clients gave up waiting: {at}{unaccepted}{}",
                    place(&row.netns)
                ),
            );
        }
    }
    for row in &summary.unix_listeners {
        if row.fill >= thresholds.listen_fill {
            push(
                FindingKind::UnixListenQueueFull,
                row.fill,
                &row.netns,
                format!(
                    "UNIX accept queue {}: {} {}, {} waiting of {}{}",
                    queue_word(row.length, row.limit),
                    process_text(&row.process),
                    path_text(&row.path),
                    row.length,
                    row.limit,
                    place(&row.netns)
                ),
            );
        }
    }
    for row in &summary.ephemeral {
        if let (Some(fill), Some(range)) = (row.fill, row.range) {
            if fill >= thresholds.ephemeral_fill {
                push(
                    FindingKind::EphemeralPorts,
                    fill,
                    &row.netns,
                    format!(
                        "ephemeral ports running out: {}:{} holds {} of {} ({:.0}%){}",
                        row.remote_address,
                        row.remote_port,
                        row.used,
                        range,
                        fill * 100.0,
                        place(&row.netns)
                    ),
                );
            }
        }
    }
    for row in &summary.time_wait {
        if let Some(g) = row.growth {
            if g.per_second > thresholds.time_wait_growth {
                push(
                    FindingKind::TimeWaitGrowing,
                    g.per_second,
                    &row.netns,
                    format!(
                        "TIME_WAIT growing: :{} {}, {}, {} sockets{}",
                        row.port,
                        row.direction,
                        rate_text(g.per_second),
                        row.sockets,
                        place(&row.netns)
                    ),
                );
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    found.into_iter().map(|(_, _, finding)| finding).collect()
}
