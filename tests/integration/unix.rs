//! UNIX stream listeners (issue 12): php-fpm from Debian with a saturated pool, listeners
//! of the tests' own on path-bound and abstract names, one in a second namespace (through
//! the per-namespace recipe), and the `max_unix_paths` cap. Every socket lives in a private network namespace (abstract
//! names are per namespace; path-bound ones sit in a temporary directory of the test).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockdiag_exporter::fold::close_wait::CloseWaitTracker;
use sockdiag_exporter::fold::listen::ListenSample;
use sockdiag_exporter::fold::Settings;
use sockdiag_exporter::poll::namespace;
use sockdiag_exporter::snapshot::UnixListenerSeries;
use sockdiag_exporter::source::netns::HomeNetns;
use sockdiag_exporter::source::proc_fd::ProcIndex;
use sockdiag_exporter::source::sock_diag::SockDiag;
use sockdiag_exporter::source::unix_diag::{UnixFilter, UnixState, UnixType};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::actor::Actor;
use crate::exporter::Exporter;
use crate::load::wait_for;
use crate::netns::{in_netns, output};

/// A UNIX address: `@name` is abstract, anything else a path.
fn address(name: &str) -> SockAddr {
    let bytes = match name.strip_prefix('@') {
        Some(abstract_name) => [&[0u8][..], abstract_name.as_bytes()].concat(),
        None => name.as_bytes().to_vec(),
    };
    SockAddr::unix(OsStr::from_bytes(&bytes)).expect("UNIX address")
}

/// A UNIX stream listener on `name` with `backlog`, never accepting.
pub fn listen(name: &str, backlog: i32) -> Socket {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).expect("UNIX socket");
    socket.bind(&address(name)).expect("bind UNIX socket");
    socket.listen(backlog).expect("listen");
    socket
}

/// A client connected to `name`: it waits in the listener's accept queue.
pub fn connect(name: &str) -> Socket {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).expect("UNIX socket");
    socket.connect(&address(name)).expect("connect UNIX socket");
    socket
}

/// `ss -Hxl` of the calling thread's namespace: Recv-Q (the queue) of the listener `name`.
pub fn ss_queue(name: &str) -> Option<u64> {
    output("ss", &["-Hxl"]).lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(4) == Some(&name)).then(|| fields[2].parse().expect("Recv-Q"))
    })
}

/// `ss -Hxa` of the calling thread's namespace, counted by the exporter's
/// (socket_type, state) labels.
fn ss_unix_counts() -> BTreeMap<(&'static str, &'static str), u64> {
    let mut counts = BTreeMap::new();
    for line in output("ss", &["-Hxa"]).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let kind = match fields[0] {
            "u_str" => "stream",
            "u_seq" => "seqpacket",
            "u_dgr" => "dgram",
            other => panic!("ss -xa netid {other}"),
        };
        let state = match fields[1] {
            "LISTEN" => "listen",
            "ESTAB" => "established",
            _ => "other",
        };
        *counts.entry((kind, state)).or_default() += 1;
    }
    counts
}

/// A directory of the test's own under /tmp, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A directory of its own for each call: two tests running at once with the same
    /// `name` (two `WorldExe`s) must not remove each other's files.
    pub fn new(name: &str) -> TempDir {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "sockdiag-unix-{name}-{}-{call}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("utf-8 path").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn listener(path: &str, process: &str) -> String {
    format!("{{path=\"{path}\",process=\"{process}\"}}")
}

/// Debian's php-fpm binary, `php-fpmX.Y` (tests/run.sh installs package php-fpm).
pub fn php_fpm_binary() -> PathBuf {
    std::fs::read_dir("/usr/sbin")
        .expect("read /usr/sbin")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.strip_prefix("php-fpm")
                .is_some_and(|version| version.contains('.'))
        })
        .max()
        .expect("no /usr/sbin/php-fpmX.Y: install Debian's php-fpm (tests/run.sh does)")
}

/// php-fpm in the foreground in the calling thread's namespace, stopped by its pid.
pub struct PhpFpm(Child);

impl PhpFpm {
    pub fn start(binary: &Path, config: &str) -> PhpFpm {
        // -R: we are root; -n: no php.ini, so the host's PHP setup does not matter.
        let child = Command::new(binary)
            .args(["-R", "-n", "-F", "-y", config])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start php-fpm");
        PhpFpm(child)
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; it is the master we started.
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// One FastCGI record (version 1, request id 1, no padding).
fn fcgi_record(kind: u8, content: &[u8]) -> Vec<u8> {
    let length = u16::try_from(content.len()).expect("short record");
    let mut record = vec![1, kind, 0, 1];
    record.extend_from_slice(&length.to_be_bytes());
    record.extend_from_slice(&[0, 0]);
    record.extend_from_slice(content);
    record
}

/// A FastCGI responder request for `script`, its response read to the end (php-fpm
/// closes the connection after a request without FCGI_KEEP_CONN).
fn fastcgi_get(socket: &str, script: &str) -> String {
    let mut params = Vec::new();
    for (name, value) in [("SCRIPT_FILENAME", script), ("REQUEST_METHOD", "GET")] {
        // Lengths below 128 take one byte each.
        params.push(name.len() as u8);
        params.push(value.len() as u8);
        params.extend_from_slice(name.as_bytes());
        params.extend_from_slice(value.as_bytes());
    }
    let mut request = fcgi_record(1, &[0, 1, 0, 0, 0, 0, 0, 0]); // BEGIN_REQUEST, RESPONDER
    request.extend(fcgi_record(4, &params)); // PARAMS
    request.extend(fcgi_record(4, &[])); // end of PARAMS
    request.extend(fcgi_record(5, &[])); // empty STDIN
    let mut stream: std::os::unix::net::UnixStream = connect(socket).into();
    stream.write_all(&request).expect("send FastCGI request");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read FastCGI response");
    String::from_utf8_lossy(&response).into_owned()
}

/// Incident 1 after its fix: nginx -> php-fpm on a UNIX socket. Two workers, five
/// requests that each wait for a file the test creates: three wait in the accept queue
/// until then, and the queue drains at once after.
fn php_fpm_saturated_pool_queue_limit_process_and_peak() {
    let binary = php_fpm_binary();
    let comm: String = binary
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    in_netns(move || {
        let dir = TempDir::new("php-fpm");
        let socket = dir.path("php-fpm.sock");
        let script = dir.path("slow.php");
        let go = dir.path("go");
        std::fs::write(
            &script,
            format!(
                "<?php while (!file_exists('{go}')) {{ clearstatcache(); usleep(50000); }} echo \"served\";\n"
            ),
        )
        .unwrap();
        let config = dir.path("php-fpm.conf");
        std::fs::write(
            &config,
            format!(
                "[global]\npid = {pid}\nerror_log = {log}\ndaemonize = no\n\n\
                 [www]\nuser = root\ngroup = root\nlisten = {socket}\nlisten.backlog = 64\n\
                 pm = static\npm.max_children = 2\n",
                pid = dir.path("php-fpm.pid"),
                log = dir.path("php-fpm.log"),
            ),
        )
        .unwrap();
        let fpm = PhpFpm::start(&binary, &config);
        wait_for(|| ss_queue(&socket) == Some(0));
        let requests: Vec<_> = (0..5)
            .map(|_| {
                let (socket, script) = (socket.clone(), script.clone());
                std::thread::spawn(move || fastcgi_get(&socket, &script))
            })
            .collect();
        // Both workers busy, three requests waiting.
        wait_for(|| ss_queue(&socket) == Some(3));
        // Polls 8 s apart; the listener sampler every second (the default) in between.
        let mut exporter = Exporter::start(10120, &["--poll.interval=8s"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        let series = listener(&socket, &comm);
        assert_eq!(
            scrape.value(&format!("sockdiag_unix_listen_queue_length{series}")),
            3.0
        );
        assert_eq!(
            scrape.value(&format!("sockdiag_unix_listen_queue_limit{series}")),
            64.0
        );
        assert_eq!(
            scrape.value(&format!("sockdiag_unix_listen_queue_peak{series}")),
            3.0
        );

        // Samples of the full queue after that poll (about two, at 1 s), then the requests
        // go through and the queue drains; the next poll, 8 s after the first, shows it
        // empty and keeps the peak the sampler saw in between.
        std::thread::sleep(Duration::from_millis(2500));
        std::fs::write(&go, "").unwrap();
        wait_for(|| ss_queue(&socket) == Some(0));
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.value(&format!("sockdiag_unix_listen_queue_length{series}")),
            0.0
        );
        assert_eq!(
            scrape.value(&format!("sockdiag_unix_listen_queue_peak{series}")),
            3.0
        );
        for request in requests {
            let response = request.join().expect("FastCGI client");
            assert!(response.contains("served"), "php-fpm answered {response:?}");
        }
        drop(exporter);
        drop(fpm);
    });
}

/// A listener of our own on a path and on an abstract name; the type and state counts
/// match what `ss -xa` sees in the same namespace.
fn path_and_abstract_listeners_and_socket_counts() {
    in_netns(|| {
        let dir = TempDir::new("own");
        let path = dir.path("app.sock");
        let _server = Actor::start(
            "unix-server",
            "unix-listen",
            &[&format!("{path}=5"), "@sockdiag-abstract=7"],
        );
        let mut clients: Vec<Socket> = (0..3).map(|_| connect(&path)).collect();
        clients.push(connect("@sockdiag-abstract"));
        wait_for(|| ss_queue(&path) == Some(3) && ss_queue("@sockdiag-abstract") == Some(1));
        let mut exporter = Exporter::start(10120, &["--poll.interval=1h"]);
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.lines("sockdiag_unix_listen_queue_length"),
            vec![
                format!("{} 3", listener(&path, "unix-server")),
                format!("{} 1", listener("@sockdiag-abstract", "unix-server")),
            ]
        );
        assert_eq!(
            scrape.lines("sockdiag_unix_listen_queue_limit"),
            vec![
                format!("{} 5", listener(&path, "unix-server")),
                format!("{} 7", listener("@sockdiag-abstract", "unix-server")),
            ]
        );
        let ss = ss_unix_counts();
        assert_eq!(ss.get(&("stream", "listen")), Some(&2));
        let mut expected: Vec<String> = [
            ("stream", "listen"),
            ("stream", "established"),
            ("stream", "other"),
            ("seqpacket", "listen"),
            ("seqpacket", "established"),
            ("seqpacket", "other"),
            ("dgram", "established"),
            ("dgram", "other"),
        ]
        .iter()
        .map(|key| {
            format!(
                "{{socket_type=\"{}\",state=\"{}\"}} {}",
                key.0,
                key.1,
                ss.get(key).copied().unwrap_or(0)
            )
        })
        .collect();
        expected.sort();
        assert_eq!(scrape.lines("sockdiag_unix_sockets"), expected);
        assert_eq!(scrape.value("sockdiag_unattributed_sockets"), 0.0);
        drop(clients);
    });
}

/// A listener in a second namespace, through what the collector runs for every namespace
/// but its own: enter it on a thread, open a sock_diag socket there, run the recipe, find
/// the owner in the host-wide /proc index, fold. (The exporter with --namespaces=all would
/// dump every namespace of the host, which on a busy host takes longer than the test.)
fn unix_listener_in_a_second_namespace() {
    in_netns(|| {
        let (server, clients, inode) = in_netns(|| {
            let server = Actor::start("second-server", "unix-listen", &["@sockdiag-second=9"]);
            let clients: Vec<Socket> = (0..2).map(|_| connect("@sockdiag-second")).collect();
            wait_for(|| ss_queue("@sockdiag-second") == Some(2));
            let inode = std::fs::metadata(format!("/proc/{}/ns/net", server.pid()))
                .expect("stat the server's namespace")
                .ino();
            (server, clients, inode)
        });
        let enter = PathBuf::from(format!("/proc/{}/ns/net", server.pid()));
        let home = HomeNetns::open(Path::new("/proc")).expect("hold our namespace");
        let mut index = ProcIndex::new("/proc");
        index.begin_poll();
        let close_wait = Mutex::new(CloseWaitTracker::new(16));
        let settings = Settings::default().for_namespace(false);
        let dump = home
            .run_in(&enter, inode, || {
                let mut sock_diag = SockDiag::open()?;
                namespace::dump(
                    &mut sock_diag,
                    inode,
                    &index,
                    &close_wait,
                    &settings,
                    Default::default(),
                    None,
                )
            })
            .expect("enter the second namespace")
            .expect("dump the second namespace");
        let missing = dump.unix.missing_inodes();
        assert_eq!(missing.len(), 1, "the listener's owner is not cached yet");
        index.sweep();
        index.resolve(&missing).expect("scan /proc");
        let figures = dump
            .unix
            .finish(&index, &settings, &ListenSample::default());
        assert_eq!(
            figures.listeners,
            vec![UnixListenerSeries {
                path: Arc::from("@sockdiag-second"),
                process: Arc::from("second-server"),
                length: 2,
                limit: 9,
                peak: 2,
            }]
        );
        assert_eq!(figures.sockets.get(UnixType::Stream, UnixState::Listen), 1);
        // Abstract names are per namespace: ours has no such listener.
        assert_eq!(ss_queue("@sockdiag-second"), None);
        let mut own = SockDiag::open().expect("sock_diag in our namespace");
        let mut listeners = 0;
        own.dump_unix(UnixFilter::Listen, &mut |_| listeners += 1)
            .expect("dump our namespace");
        assert_eq!(listeners, 0);
        drop(clients);
        drop(server);
    });
}

/// Beyond max_unix_paths, the names with the shortest queues are summed into
/// path="other" and counted.
fn unix_paths_beyond_the_cap_fold_into_other() {
    in_netns(|| {
        let dir = TempDir::new("cap");
        let busy = dir.path("busy.sock");
        let _server = Actor::start(
            "unix-server",
            "unix-listen",
            &[&format!("{busy}=4"), "@idle-a=8", "@idle-b=16"],
        );
        let clients: Vec<Socket> = (0..2).map(|_| connect(&busy)).collect();
        wait_for(|| ss_queue(&busy) == Some(2));
        let mut exporter = Exporter::start_with(10120, &["--poll.interval=1h"], |c| {
            c.env("SOCKDIAG_MAX_UNIX_PATHS", "1");
        });
        exporter.wait_for_poll();
        let scrape = exporter.scrape();
        assert_eq!(
            scrape.lines("sockdiag_unix_listen_queue_limit"),
            vec![
                format!("{} 4", listener(&busy, "unix-server")),
                format!("{} 24", listener("other", "other")),
            ]
        );
        assert_eq!(
            scrape.lines("sockdiag_unix_listen_queue_length"),
            vec![
                format!("{} 2", listener(&busy, "unix-server")),
                format!("{} 0", listener("other", "other")),
            ]
        );
        assert_eq!(
            scrape.value("sockdiag_folded_label_values{label=\"path\"}"),
            2.0
        );
        drop(clients);
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        php_fpm_saturated_pool_queue_limit_process_and_peak,
        path_and_abstract_listeners_and_socket_counts,
        unix_listener_in_a_second_namespace,
        unix_paths_beyond_the_cap_fold_into_other,
    ]
}
