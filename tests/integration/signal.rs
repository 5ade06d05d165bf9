//! Issue 22: a leak is never folded away. With the default caps and real sockets, a
//! CLOSE_WAIT leak keeps its port and process among 60 busy services and among 55
//! processes of an unprivileged user; php-fpm's full queue stays visible beside a second
//! listener bound at its path from another mount namespace; 3,000 listeners stay within
//! `max_listeners`, the fullest kept. Each test runs in a private network namespace.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::actor::{Actor, ENV};
use crate::exporter::{Exporter, Scrape};
use crate::load::wait_for;
use crate::netns::{in_netns, output};
use crate::report::{block, report, stdout};
use crate::unix::{self, listener, php_fpm_binary, ss_queue, PhpFpm, TempDir};

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        busy_host_folded_a_close_wait_leak_into_other,
        unprivileged_processes_folded_a_host_leak_into_other,
        a_listener_at_php_fpms_path_from_another_mount_namespace_hid_its_full_queue,
        three_thousand_listeners_stay_within_the_cap_fullest_kept,
    ]
}

/// The leak's series, exactly as exposed in the exporter's own namespace.
const LEAK: &str = "sockdiag_tcp_port_sockets{direction=\"inbound\",port=\"8081\",process=\"leaky-app\",state=\"close_wait\"}";

/// The unprivileged user of the hostile tests.
const NOBODY: u32 = 65534;

/// leaky-app on 127.0.0.1:8081 accepts 20 connections whose clients then close: it never
/// does, and holds 20 CLOSE_WAIT.
fn leak() -> Actor {
    let leaky = Actor::start("leaky-app", "accept-and-hold", &["127.0.0.1:8081", "20"]);
    for _ in 0..20 {
        drop(TcpStream::connect("127.0.0.1:8081").expect("connect to leaky-app"));
    }
    wait_for(|| {
        output("ss", &["-Htan", "state", "close-wait", "( sport = :8081 )"])
            .lines()
            .count()
            == 20
    });
    leaky
}

/// Series count and bytes of a scrape, for the measurements in docs/benchmarks.md.
fn size(scenario: &str, scrape: &Scrape) {
    eprintln!(
        "{scenario}: {} series, {} bytes",
        scrape.samples.len(),
        scrape.text.len()
    );
}

/// Asserts the leak in /metrics and in `report`'s CLOSE_WAIT table.
fn assert_leak_named(scenario: &str) {
    let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
    exporter.wait_for_poll();
    let scrape = exporter.scrape();
    size(scenario, &scrape);
    assert_eq!(scrape.value(LEAK), 20.0);
    drop(exporter);
    let out = report(&["--interval=500ms"]);
    let text = stdout(&out);
    let table = block(&text, "CLOSE_WAIT: who holds them");
    let row: Vec<Vec<&str>> = table
        .lines()
        .map(|line| line.split_whitespace().take(4).collect())
        .filter(|fields: &Vec<&str>| fields.first() == Some(&"leaky-app"))
        .collect();
    assert_eq!(
        row,
        vec![vec!["leaky-app", "inbound", "8081", "20"]],
        "{text}"
    );
}

/// 60 services with 30 loopback connections each (60 sockets a process, more ports and
/// processes than the caps hold) and leaky-app's 20 CLOSE_WAIT: the caps ranked by socket
/// count and folded the leak into `port="other",process="other"`.
fn busy_host_folded_a_close_wait_leak_into_other() {
    in_netns(|| {
        let _services: Vec<Actor> = (0..60)
            .map(|i| {
                let address = format!("127.0.0.1:{}", 9000 + i);
                Actor::start(&format!("svc-{i:02}"), "self-connect", &[&address, "30"])
            })
            .collect();
        let _leaky = leak();
        assert_leak_named("busy host");
    });
}

/// A copy of this test binary that any user can run (the checkout may sit below a
/// directory other users cannot enter), removed when dropped.
struct WorldExe {
    _dir: TempDir,
    path: String,
}

impl WorldExe {
    fn new() -> WorldExe {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("exe");
        let path = dir.path("actor");
        std::fs::copy(std::env::current_exe().expect("own path"), &path).expect("copy");
        for p in [Path::new(&path), Path::new(&dir.path(""))] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        WorldExe { _dir: dir, path }
    }

    /// An actor run as the unprivileged user.
    fn actor(&self, name: &str, role: &str, args: &[&str]) -> Actor {
        let mut command = Command::new(&self.path);
        command
            .env_clear()
            .env(ENV, role)
            .arg(name)
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY);
        Actor::spawn(command)
    }
}

/// 55 processes of an unprivileged user (uid 65534) with 25 loopback connections each
/// outnumbered the host's leak in both the port and the process caps.
fn unprivileged_processes_folded_a_host_leak_into_other() {
    in_netns(|| {
        let exe = WorldExe::new();
        let _hostile: Vec<Actor> = (0..55)
            .map(|i| {
                let address = format!("127.0.0.1:{}", 20000 + i);
                exe.actor(&format!("h{i:02}"), "self-connect", &[&address, "25"])
            })
            .collect();
        let _leaky = leak();
        assert_leak_named("55 unprivileged processes");
    });
}

/// Whether this kernel lets the unprivileged user make a user namespace.
fn user_namespaces_allowed() -> bool {
    Command::new("unshare")
        .args(["-Ur", "true"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .is_ok_and(|status| status.success())
}

/// php-fpm (Debian's) with one worker busy and a full queue (5 waiting, backlog 4); a
/// second listener bound at the same path by uid 65534 in a mount namespace of its own
/// (`unshare -Urm`, a tmpfs over the directory), backlog 4096, comm `a`. The two were
/// summed into one series, `length 5, limit 4100, process="a"`, and `report` said
/// nothing looked wrong.
fn a_listener_at_php_fpms_path_from_another_mount_namespace_hid_its_full_queue() {
    if !user_namespaces_allowed() {
        eprintln!("skipped: this kernel does not let uid {NOBODY} create user namespaces");
        return;
    }
    let binary = php_fpm_binary();
    let comm: String = binary
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    in_netns(move || {
        let exe = WorldExe::new();
        let dir = TempDir::new("collision");
        let socket = dir.path("php-fpm.sock");
        let config = dir.path("php-fpm.conf");
        std::fs::write(
            &config,
            format!(
                "[global]\npid = {pid}\nerror_log = {log}\ndaemonize = no\n\n\
                 [www]\nuser = root\ngroup = root\nlisten = {socket}\nlisten.backlog = 4\n\
                 pm = static\npm.max_children = 1\n",
                pid = dir.path("php-fpm.pid"),
                log = dir.path("php-fpm.log"),
            ),
        )
        .unwrap();
        let fpm = PhpFpm::start(&binary, &config);
        wait_for(|| ss_queue(&socket) == Some(0));
        // The worker accepts one connection and waits for its request; five more fill
        // the queue (the kernel holds backlog + 1).
        let mut clients = vec![unix::connect(&socket)];
        wait_for(|| ss_queue(&socket) == Some(0));
        clients.extend((0..5).map(|_| unix::connect(&socket)));
        wait_for(|| ss_queue(&socket) == Some(5));
        let hostile = hostile_listener(&exe.path, Path::new(&dir.path("")), &socket);

        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        let fpm_series = listener(&socket, &comm);
        let hostile_series = listener(&socket, "a");
        for (family, fpm_value, hostile_value) in [
            ("sockdiag_unix_listen_queue_length", 5.0, 0.0),
            ("sockdiag_unix_listen_queue_limit", 4.0, 4096.0),
        ] {
            assert_eq!(scrape.value(&format!("{family}{fpm_series}")), fpm_value);
            assert_eq!(
                scrape.value(&format!("{family}{hostile_series}")),
                hostile_value
            );
        }
        drop(exporter);
        let text = stdout(&report(&["--interval=500ms"]));
        let finding = format!("UNIX accept queue full: {comm} {socket}, 5 waiting of 4");
        assert!(text.contains(&finding), "no {finding:?} in:\n{text}");
        drop(hostile);
        drop(clients);
        drop(fpm);
    });
}

/// uid 65534 in a user and mount namespace of its own, a tmpfs over `dir`, listening at
/// `socket` (inside `dir`) with backlog 4096 as process `a`.
fn hostile_listener(exe: &str, dir: &Path, socket: &str) -> Actor {
    let script = format!(
        "mount -t tmpfs tmpfs '{}' && exec '{exe}' a '{socket}=4096'",
        dir.display()
    );
    let mut command = Command::new("unshare");
    command
        .args(["-Urm", "sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env(ENV, "unix-listen")
        .uid(NOBODY)
        .gid(NOBODY);
    Actor::spawn(command)
}

/// Recv-Q of the TCP listener on 127.0.0.1:`port`.
fn ss_listen_queue(port: u16) -> Option<u64> {
    let filter = format!("( sport = :{port} )");
    output("ss", &["-Hltn", &filter])
        .lines()
        .next()
        .map(|line| {
            line.split_whitespace()
                .nth(1)
                .expect("Recv-Q")
                .parse()
                .expect("a number")
        })
}

/// 3,000 idle listeners on distinct ports gave 9,000 series; three full ones among
/// them must stay.
fn three_thousand_listeners_stay_within_the_cap_fullest_kept() {
    in_netns(|| {
        let _many = Actor::start("many", "listen-many", &["20000", "3000", "128"]);
        let mut full = Vec::new();
        let mut clients = Vec::new();
        for port in 8090..8093u16 {
            let address = format!("127.0.0.1:{port}");
            full.push(Actor::start(
                "full-server",
                "listen-no-accept",
                &[&address, "2"],
            ));
            for _ in 0..3 {
                clients.push(TcpStream::connect(&address).expect("connect"));
            }
            wait_for(|| ss_listen_queue(port) == Some(3));
        }
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        size("3,000 listeners", &scrape);
        assert_eq!(scrape.family("sockdiag_tcp_listen_queue_length").len(), 100);
        for port in 8090..8093 {
            let series =
                format!("{{address=\"127.0.0.1\",port=\"{port}\",process=\"full-server\"}}");
            assert_eq!(
                scrape.value(&format!("sockdiag_tcp_listen_queue_length{series}")),
                3.0
            );
            assert_eq!(
                scrape.value(&format!("sockdiag_tcp_listen_queue_limit{series}")),
                2.0
            );
        }
        // 3,000 + 3 + the exporter's own listener, 100 kept.
        assert_eq!(
            scrape.value("sockdiag_folded_label_values{label=\"listener\"}"),
            2904.0
        );
        assert_eq!(
            scrape.value("sockdiag_folded_anomalies{kind=\"listener\"}"),
            0.0
        );
        drop(clients);
    });
}
