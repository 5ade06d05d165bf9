//! Memory and time of the CLOSE_WAIT age tracker at N tracked sockets (default 100,000):
//! `cargo bench --bench close_wait -- [N]`. Prints the RSS growth of this process while
//! the tracker fills, per tracked socket, and the time of one steady poll's observations.
//! The results are written down in docs/benchmarks.md.

use std::time::{Duration, Instant};

use sockdiag_exporter::fold::close_wait::CloseWaitTracker;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn main() {
    // `cargo bench` passes `--bench`; the first numeric argument is the socket count.
    let sockets: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(100_000);
    let before = rss_kib();
    let mut tracker = CloseWaitTracker::new(usize::MAX);
    let start = Instant::now();
    let mut steady = Duration::ZERO;
    for poll in 0..5u64 {
        tracker.begin_poll(start + Duration::from_secs(15 * poll));
        let began = Instant::now();
        for socket in 0..sockets {
            // Cookies are sparse 64-bit numbers; spread them like the kernel's.
            std::hint::black_box(tracker.observe((1, socket.wrapping_mul(0x9E37_79B9_7F4A_7C15))));
        }
        tracker.end_poll(&[]);
        if poll > 0 {
            steady = steady.max(began.elapsed());
        }
    }
    let grown = rss_kib().saturating_sub(before);
    println!(
        "close_wait tracker: {} sockets tracked, RSS +{:.1} MiB ({:.1} bytes per socket), \
         slowest steady poll of observations {:.1} ms ({:.0} ns per socket)",
        tracker.len(),
        grown as f64 / 1024.0,
        grown as f64 * 1024.0 / sockets as f64,
        steady.as_secs_f64() * 1e3,
        steady.as_secs_f64() * 1e9 / sockets as f64,
    );
}
