//! The overrun log: a main poll that takes longer than its interval starts an episode,
//! logged once (warn) with where that poll spent its time ([`PollTimings`]); the first
//! poll that fits again ends it (info), with how many polls overran and the longest.
//! In between nothing is logged: at 100 ms intervals a slow host would otherwise log
//! ten lines a second. No kernel interface: it reads the poll's own timings.

use std::time::Duration;

use super::PollTimings;

/// The overrun episode in progress, if any.
#[derive(Debug, Default)]
pub(super) struct Overrun {
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    polls: u32,
    longest: Duration,
}

impl Overrun {
    /// Takes one completed poll that took `took` against `interval`.
    pub(super) fn observe(&mut self, took: Duration, interval: Duration, timings: &PollTimings) {
        if took > interval {
            match &mut self.episode {
                Some(episode) => {
                    episode.polls += 1;
                    episode.longest = episode.longest.max(took);
                }
                None => {
                    tracing::warn!(
                        duration = %whole_ms(took),
                        interval = %whole_ms(interval),
                        spent = %timings,
                        "poll overran its interval; the next starts a full interval after it ends"
                    );
                    self.episode = Some(Episode {
                        polls: 1,
                        longest: took,
                    });
                }
            }
        } else if let Some(episode) = self.episode.take() {
            tracing::info!(
                overran = episode.polls,
                longest = %whole_ms(episode.longest),
                "polls fit their interval again"
            );
        }
    }
}

/// A duration to the millisecond, as humantime writes it (`1s 512ms`).
fn whole_ms(duration: Duration) -> humantime::FormattedDuration {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The log lines written while `body` runs, as the daemon's text format writes them
    /// (without time, colour or target).
    fn logged(body: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::with_default(subscriber, body);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    fn timings(dumps_ms: u64, proc_ms: u64) -> PollTimings {
        PollTimings {
            discovery: Duration::from_millis(3),
            dumps: Duration::from_millis(dumps_ms),
            kernel_files: Duration::from_millis(12),
            proc_scan: Duration::from_millis(proc_ms),
            fold: Duration::from_millis(25),
        }
    }

    #[test]
    fn an_overrun_episode_is_logged_once_at_its_start_and_once_at_its_end() {
        let interval = Duration::from_secs(1);
        let mut overrun = Overrun::default();
        let lines = logged(|| {
            overrun.observe(Duration::from_millis(400), interval, &timings(300, 10));
            overrun.observe(
                Duration::from_micros(1_512_700),
                interval,
                &timings(340, 1_140),
            );
            overrun.observe(Duration::from_millis(4_100), interval, &timings(350, 3_700));
            overrun.observe(Duration::from_millis(2_000), interval, &timings(330, 1_600));
            overrun.observe(interval, interval, &timings(320, 600));
            overrun.observe(Duration::from_millis(300), interval, &timings(290, 0));
        });
        assert_eq!(
            lines,
            [
                " WARN poll overran its interval; the next starts a full interval after it \
                 ends duration=1s 512ms interval=1s spent=discovery 3 ms, dumps 340 ms (kernel \
                 files 12 ms), /proc scan 1140 ms, fold and caps 25 ms",
                " INFO polls fit their interval again overran=3 longest=4s 100ms",
            ]
        );
    }

    #[test]
    fn a_new_episode_after_polls_fit_is_logged_again() {
        let interval = Duration::from_millis(100);
        let mut overrun = Overrun::default();
        let lines = logged(|| {
            overrun.observe(Duration::from_millis(150), interval, &timings(140, 0));
            overrun.observe(Duration::from_millis(50), interval, &timings(40, 0));
            overrun.observe(Duration::from_millis(101), interval, &timings(20, 70));
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[2].contains("duration=101ms interval=100ms"),
            "{lines:?}"
        );
        assert!(lines[2].contains("/proc scan 70 ms"), "{lines:?}");
    }
}
