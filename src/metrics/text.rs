//! Text format 0.0.4 from the OpenMetrics text prometheus-client writes.

use std::fmt::Write;

/// Rewrites OpenMetrics text (as prometheus-client writes it, without `# EOF`) into text
/// format 0.0.4: a counter family's HELP and TYPE name its `_total` sample, and `# UNIT`
/// and `# EOF` lines, unknown to 0.0.4 parsers, are dropped.
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 256);
    let mut pending_help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# HELP ") {
            if let Some(help) = pending_help.replace(line) {
                let _ = writeln!(out, "{help}");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, ""));
            let help = pending_help.take();
            if kind == "counter" {
                if let Some(help) = help {
                    let text = help
                        .strip_prefix("# HELP ")
                        .and_then(|h| h.strip_prefix(name))
                        .unwrap_or("");
                    let _ = writeln!(out, "# HELP {name}_total{text}");
                }
                let _ = writeln!(out, "# TYPE {name}_total counter");
            } else {
                if let Some(help) = help {
                    let _ = writeln!(out, "{help}");
                }
                let _ = writeln!(out, "{line}");
            }
            continue;
        }
        if let Some(help) = pending_help.take() {
            let _ = writeln!(out, "{help}");
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(help) = pending_help {
        let _ = writeln!(out, "{help}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_text_004;

    #[test]
    fn counter_families_are_renamed_for_text_004() {
        let om = "# HELP sockdiag_poll_errors Polls that failed.\n# TYPE sockdiag_poll_errors counter\nsockdiag_poll_errors_total{stage=\"dump\"} 2\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n# EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP sockdiag_poll_errors_total Polls that failed.\n# TYPE sockdiag_poll_errors_total counter\nsockdiag_poll_errors_total{stage=\"dump\"} 2\n# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n"
        );
    }
}
