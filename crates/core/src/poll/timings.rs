//! Where a main poll spent its wall time, by stage, for the daemon's overrun log: a poll
//! that takes longer than its interval says which stage took it. No kernel interface of
//! its own: the collector times its stages with a monotonic clock.

use std::fmt;
use std::time::Duration;

/// Wall time of each stage of one poll ([`super::Collector::poll`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollTimings {
    /// Which namespaces, their labels and containers (`/proc`, runtime state files).
    pub discovery: Duration,
    /// Every namespace's recipe, the namespaces' threads included: wall time of the
    /// slowest path through them.
    pub dumps: Duration,
    /// Of the recipes, reading the kernel counter and sysctl files, summed over the
    /// namespaces (they run on several threads at once, so this can exceed `dumps`' share).
    pub kernel_files: Duration,
    /// The /proc index: the revalidation before the dumps and the scan for new owners.
    pub proc_scan: Duration,
    /// The owners' fold into series, the caps and the namespace cap.
    pub fold: Duration,
}

impl fmt::Display for PollTimings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "discovery {}, dumps {} (kernel files {}), /proc scan {}, fold and caps {}",
            Millis(self.discovery),
            Millis(self.dumps),
            Millis(self.kernel_files),
            Millis(self.proc_scan),
            Millis(self.fold),
        )
    }
}

/// A duration in whole milliseconds, rounded down: a log line, not a measurement.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_read_stage_by_stage_in_milliseconds() {
        let timings = PollTimings {
            discovery: Duration::from_micros(2_900),
            dumps: Duration::from_millis(812),
            kernel_files: Duration::from_millis(31),
            proc_scan: Duration::from_millis(1_204),
            fold: Duration::from_micros(40_500),
        };
        assert_eq!(
            timings.to_string(),
            "discovery 2 ms, dumps 812 ms (kernel files 31 ms), /proc scan 1204 ms, fold and caps 40 ms"
        );
    }
}
