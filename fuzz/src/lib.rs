//! The fuzz targets of sockdiag_exporter, one `pub fn` each, over the crate's real pure
//! decoders and parsers: the netlink framing with the inet_diag and unix_diag payload
//! decoders (and the UNIX fold), the udp_diag decoder with the UDP fold and drop tracker,
//! `/proc/net/{netstat,snmp,snmp6}`, the sysctls, `/proc/PID/cgroup`, `/proc/PID/uid_map`,
//! Docker's `config.v2.json`, the OCI `config.json` of containerd's and CRI-O's containers,
//! Podman's conmon pid file and command line, the TOML config with its environment, and the
//! web config YAML.
//!
//! `fuzz_targets/*.rs` hand libFuzzer's input to these (`cargo +nightly fuzz run NAME`,
//! or `fuzz/run.sh` for all); the tests below replay every committed corpus file through
//! them on stable Rust, so CI checks the corpus and every past crash in seconds.
//!
//! Each function panics only when the code under test breaks an invariant it states
//! (a panic inside the crate is the finding); bad input must give an error value.

use std::path::Path;
use std::sync::Arc;

use sockdiag_exporter::config::{Config, Flags};
use sockdiag_exporter::fold::listen::ListenSample;
use sockdiag_exporter::fold::owners::{NameId, Owner, Owners};
use sockdiag_exporter::fold::udp::drops::DropTracker;
use sockdiag_exporter::fold::udp::UdpAggregator;
use sockdiag_exporter::fold::unix::UnixAggregator;
use sockdiag_exporter::fold::Settings;
use sockdiag_exporter::source::inet_diag::decode::decode_inet_diag_msg;
use sockdiag_exporter::source::inet_diag::Family;
use sockdiag_exporter::source::kernel_value::{KernelSource, KernelValue, MetricKind};
use sockdiag_exporter::source::proc_net_snmp::NetCounters;
use sockdiag_exporter::source::sock_diag::frame::decode_datagram;
use sockdiag_exporter::source::udp_diag::decode::decode_udp_diag_msg;
use sockdiag_exporter::source::unix_diag::decode::decode_unix_diag_msg;
use sockdiag_exporter::source::unix_diag::Name;
use sockdiag_exporter::source::cgroup::ContainerId;
use sockdiag_exporter::source::runtime::{containerd, crio, podman};
use sockdiag_exporter::source::{
    cgroup, docker, proc_net_snmp, proc_sys_net, sock_diag, userns,
};
use sockdiag_exporter::web_config;

/// A target: takes libFuzzer's input, panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by name: the fuzz target's name is its corpus directory's.
pub const TARGETS: [(&str, Target); 12] = [
    ("sock_diag_inet", sock_diag_inet),
    ("sock_diag_unix", sock_diag_unix),
    ("sock_diag_udp", sock_diag_udp),
    ("proc_net_snmp", proc_net_snmp),
    ("sysctl", sysctl),
    ("cgroup", cgroup),
    ("uid_map", uid_map),
    ("docker_config", docker_config),
    ("runtime_spec", runtime_spec),
    ("podman_conmon", podman_conmon),
    ("config_toml", config_toml),
    ("web_config", web_config),
];

/// The sequence number the datagram's first message carries, so that mutations get past
/// the sequence check as a live dump's replies do.
fn first_sequence(datagram: &[u8]) -> u32 {
    datagram.get(8..12).map_or(0, |seq| {
        u32::from_ne_bytes([seq[0], seq[1], seq[2], seq[3]])
    })
}

/// One inet_diag dump datagram, as `SockDiag::dump` decodes it.
pub fn sock_diag_inet(data: &[u8]) {
    let mut records = 0usize;
    let result = decode_datagram(data, first_sequence(data), &mut |payload, offset| {
        let record = decode_inet_diag_msg(payload, offset)?;
        let v4 = record.family == Family::Ipv4;
        assert_eq!(record.local.is_ipv4(), v4, "{record:?}");
        assert_eq!(record.remote.is_ipv4(), v4, "{record:?}");
        let _ = record.state.label();
        records += 1;
        Ok(())
    });
    if let Err(error) = result {
        let _ = error.to_string();
    }
    assert!(records <= data.len() / sock_diag::frame::NLMSG_HEADER_LEN);
}

/// Owners for the UNIX fold: every fourth inode unowned, the rest owned by one of three
/// processes, some only after the /proc scan.
struct Owned;

impl Owners for Owned {
    fn owner(&self, inode: u32) -> Option<Owner> {
        match inode % 8 {
            0 => Some(Owner::Nobody),
            1 | 2 => None,
            n => Some(Owner::Process(NameId(n % 3))),
        }
    }
    fn settle(&self, inode: u32) -> Owner {
        match inode % 8 {
            1 => Owner::Process(NameId(1)),
            _ => Owner::Unknown,
        }
    }
    fn name(&self, id: NameId) -> Arc<str> {
        Arc::from(format!("proc-{}", id.0))
    }
}

/// One unix_diag dump datagram, as `SockDiag::dump_unix` decodes it, folded as the main
/// poll folds it (a cap of 2 paths, so that folding into `other` runs too).
pub fn sock_diag_unix(data: &[u8]) {
    let mut aggregator = UnixAggregator::new();
    let mut records = 0u64;
    let result = decode_datagram(data, first_sequence(data), &mut |payload, offset| {
        let record = decode_unix_diag_msg(payload, offset)?;
        let _ = Name::of(record.name).label();
        aggregator.add(&record, &Owned);
        records += 1;
        Ok(())
    });
    if let Err(error) = result {
        let _ = error.to_string();
    }
    let settings = Settings {
        max_unix_paths: 2,
        ..Settings::default()
    };
    let figures = aggregator.finish(&Owned, &settings, &ListenSample::default());
    assert_eq!(figures.sockets.total(), records);
    assert_eq!(figures.sockets_scanned, records);
    // Full listeners are kept beyond the cap up to its ceiling, twice the cap.
    assert!(
        figures.listeners.len() <= 2 * 2 + 1,
        "2 paths, 2 more full ones, and other"
    );
}

/// One udp_diag dump datagram, as `SockDiag::dump_udp` decodes it, folded twice as two
/// main polls fold it (a cap of 2 ports, so that the anomaly ceiling and `other` run):
/// every drop counter of the second poll is at least what it was in the first.
pub fn sock_diag_udp(data: &[u8]) {
    let mut tracker = DropTracker::new(64);
    let mut previous: Vec<(String, u64)> = Vec::new();
    let settings = Settings {
        max_ports: 2,
        ..Settings::default()
    };
    for _ in 0..2 {
        let mut aggregator = UdpAggregator::new(None);
        let mut records = 0u64;
        let result = decode_datagram(data, first_sequence(data), &mut |payload, offset| {
            let record = decode_udp_diag_msg(payload, offset)?;
            assert_eq!(
                record.local.is_ipv4(),
                record.remote.is_ipv4(),
                "{record:?}"
            );
            aggregator.add(&record, &Owned);
            records += 1;
            Ok(())
        });
        if let Err(error) = result {
            let _ = error.to_string();
        }
        tracker.begin_poll(std::time::Instant::now());
        let figures = aggregator.finish(1, &Owned, &settings, &mut tracker);
        tracker.end_poll(&[]);
        assert_eq!(figures.total(), records);
        assert!(
            figures.series.len() <= 10,
            "per direction: 4 kept and other"
        );
        for (labels, drops) in &previous {
            let now = figures
                .drops
                .iter()
                .find(|s| &format!("{:?}{}{}", s.direction, s.port, s.process) == labels)
                .map(|s| s.drops);
            assert!(
                now.is_some_and(|now| now >= *drops),
                "{labels} went from {drops} to {now:?}"
            );
        }
        previous = figures
            .drops
            .iter()
            .map(|s| (format!("{:?}{}{}", s.direction, s.port, s.process), s.drops))
            .collect();
    }
}

/// Bytes as the text a reader would get; not UTF-8 is a read error there, so lossy here
/// still reaches the parser with every other byte as it was.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// `/proc/thread-self/net/netstat`, `snmp` and `snmp6`: the same text through the parser of
/// every file, with the counters' table and with UDP rows of both layouts (rows a table may
/// add without new code).
pub fn proc_net_snmp(data: &[u8]) {
    let text = text(data);
    let mut counters = NetCounters::default();
    for source in KernelSource::ALL {
        match proc_net_snmp::parse(source, &text) {
            Ok(values) => {
                // A file's parse sets only the rows of that file.
                for (row, value) in NetCounters::TABLE.iter().zip(values.values()) {
                    assert!(
                        row.source == source || value.is_none(),
                        "{row} from {source:?}"
                    );
                }
                counters = counters.or(values);
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
        match proc_net_snmp::parse_rows(source, &text, &UDP_ROWS) {
            Ok(values) => {
                assert_eq!(values.len(), UDP_ROWS.len());
                for (row, value) in UDP_ROWS.iter().zip(values) {
                    assert!(
                        row.source == source || value.is_none(),
                        "{row} from {source:?}"
                    );
                }
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
    assert_eq!(counters.missing_fields().len(), counters.missing_count());
}

/// UDP counters of `snmp` and `snmp6`, for [`proc_net_snmp`].
const UDP_ROWS: [KernelValue; 4] = [
    udp_row(KernelSource::Snmp, "Udp", "RcvbufErrors"),
    udp_row(KernelSource::Snmp, "Udp", "InErrors"),
    udp_row(KernelSource::Snmp6, "Udp6", "RcvbufErrors"),
    udp_row(KernelSource::Snmp6, "Udp6", "InErrors"),
];

const fn udp_row(source: KernelSource, section: &'static str, name: &'static str) -> KernelValue {
    KernelValue {
        source,
        section,
        name,
        metric: "fuzz_udp",
        help: "UDP.",
        kind: MetricKind::Counter,
    }
}

/// A sysctl file: as a single integer and as `ip_local_port_range`.
pub fn sysctl(data: &[u8]) {
    let text = text(data);
    let path = Path::new("/proc/sys/net/ipv4/ip_local_port_range");
    if let Err(error) = proc_sys_net::parse_u64(path, &text) {
        let _ = error.to_string();
    }
    match proc_sys_net::parse_port_range(path, &text) {
        Ok(range) => {
            assert!(range.start() <= range.end());
            assert!((1..=65536).contains(&range.size()));
            assert!(range.contains(range.start()) && range.contains(range.end()));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// A `/proc/PID/uid_map` file: root's only when a line maps host uid 0.
pub fn uid_map(data: &[u8]) {
    let text = text(data);
    if userns::owner_of_map(&text) == userns::Owner::Root {
        assert!(
            text.lines()
                .any(|line| line.split_ascii_whitespace().nth(1) == Some("0")),
            "{text:?}"
        );
    }
}

/// A `/proc/PID/cgroup` file, and the same text as one cgroup path.
pub fn cgroup(data: &[u8]) {
    let text = text(data);
    for container in [cgroup::parse(&text), cgroup::parse_path(&text)]
        .into_iter()
        .flatten()
    {
        let id = container.id.as_str();
        assert_eq!(id.len(), 64);
        assert!(id.starts_with(container.id.short()));
        let _ = container.runtime.map(|r| r.as_str());
        if let Some(uid) = &container.pod_uid {
            assert!(uid.len() == 36 || uid.len() == 32, "{uid:?}");
        }
    }
}

/// A Docker `config.v2.json`.
pub fn docker_config(data: &[u8]) {
    match docker::parse_config(&text(data)) {
        Ok(Some(name)) => {
            assert!(!name.is_empty());
            assert!(name.len() <= sockdiag_exporter::source::label_cap::CONTAINER_NAME);
        }
        Ok(None) => {}
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// An OCI `config.json`, as containerd's and CRI-O's readers parse it.
pub fn runtime_spec(data: &[u8]) {
    let text = text(data);
    for parsed in [containerd::parse(&text), crio::parse(&text)] {
        match parsed {
            Ok(names) => {
                for name in [&names.pod_name, &names.pod_namespace, &names.pod_uid] {
                    assert!(name.as_ref().is_none_or(|n| !n.is_empty()), "{names:?}");
                }
                // A pod's namespace is never named after one of its containers.
                assert_eq!(names.container_name, None);
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
}

/// The container id Podman's conmon is asked about in [`podman_conmon`].
const CONMON_ID: &str = "a7e829961b44e1bdd2a7591833fd07cfbede52807db110689943a49b2798c21e";

/// Podman's `conmon.pid` and conmon's `/proc/PID/cmdline`: the whole input as each.
pub fn podman_conmon(data: &[u8]) {
    let _ = podman::parse_pid(&text(data));
    let id = ContainerId::parse(CONMON_ID).expect("64 hex");
    if let Some(name) = podman::parse_cmdline(data, &id) {
        assert!(!name.is_empty());
        assert!(!name.contains('\0'));
        // A name comes only with the id it must come with.
        let id = CONMON_ID.as_bytes();
        assert!(data.windows(id.len()).any(|w| w == id));
    }
}

/// The TOML config file and `SOCKDIAG_` environment variables: the input's text up to
/// the first NUL is the file, then each NUL-separated `NAME=VALUE` is the variable
/// `SOCKDIAG_NAME` (for example `POLL_INTERVAL=5s`, `WEB__MAX_REQUESTS=3`).
pub fn config_toml(data: &[u8]) {
    let text = text(data);
    let mut parts = text.split('\0');
    let file = parts.next().unwrap_or("");
    let env: Vec<(String, String)> = parts
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (format!("SOCKDIAG_{name}"), value.to_string())
        })
        .collect();
    let flags = Flags {
        config_file: Some("fuzz.toml".into()),
        ..Flags::default()
    };
    match Config::load_text(&flags, Some(file), env) {
        Ok(config) => assert!(!config.web.listen_addresses.is_empty()),
        Err(errors) => {
            assert!(!errors.0.is_empty());
            let _ = errors.to_string();
        }
    }
}

/// The web config YAML. The file sits in a directory that does not exist, so a file it
/// names fails to open (one failed open per name) and nothing else on disk is read;
/// inline `cert` and `key` reach the TLS setup.
pub fn web_config(data: &[u8]) {
    let file = Path::new("/nonexistent/sockdiag-exporter-fuzz/web.yml");
    if let Err(error) = web_config::parse(file, &text(data)) {
        let _ = error.to_string();
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::TARGETS;

    fn corpus(target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
    }

    /// Replays every committed corpus file (the seeds, what fuzzing kept, and every crash
    /// input found) through its target: none may panic.
    #[test]
    fn every_corpus_file_replays_without_a_panic() {
        for (target, run) in TARGETS {
            let dir = corpus(target);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|entry| entry.expect("corpus entry").path())
                .collect();
            files.sort();
            assert!(
                files.len() >= 3,
                "{}: {} files, expected a seeded corpus",
                dir.display(),
                files.len()
            );
            for file in files {
                let data = std::fs::read(&file).expect("corpus file");
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{target}: {} panicked", file.display());
            }
        }
    }
}
