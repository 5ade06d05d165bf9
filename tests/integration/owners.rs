//! Owner names stay true as processes change (issue 16, item 4): a socket inherited by a
//! child is named after the child from the poll after its parent exits, and a holder that
//! renames itself (prctl, exec) shows its new name from the next poll, although no new
//! socket asks for a /proc scan. And a socket opened on the fd number of a file the index
//! has read (issue 27) is `pending` for one poll, then named.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockdiag_exporter::poll::{Collector, PollerConfig, Scope};

use crate::exporter::Exporter;
use crate::netns::in_netns;

/// A listener on 127.0.0.1:8090 made by a process named `parent`, which forks a child
/// that keeps it (renaming itself `child`); each obeys lines on its stdin: the parent
/// `exit`, the child `rename NAME`.
const SCRIPT: &str = r#"
import os, socket, sys, time
def name(n):
    with open('/proc/self/comm', 'w') as f:
        f.write(n)
name('parent')
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8090))
s.listen(8)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    name('child')
    os.close(w)
    cmds = os.fdopen(r)
    # One write each: the parent writes to the same pipe.
    os.write(1, b'child %d\n' % os.getpid())
    for line in cmds:
        if line.startswith('rename '):
            name(line.split()[1])
    time.sleep(600)
os.close(r)
os.write(1, b'parent %d\n' % os.getpid())
for line in sys.stdin:
    if line.strip() == 'exit':
        os.write(w, b'')
        sys.exit(0)
    os.write(w, line.encode())
"#;

struct Family {
    parent: Child,
    child_pid: i32,
}

impl Family {
    fn start() -> Family {
        let mut parent = Command::new("python3")
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut out = BufReader::new(parent.stdout.take().unwrap());
        let mut child_pid = 0;
        let mut said = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            out.read_line(&mut line).expect("read python3");
            if let Some(pid) = line.strip_prefix("child ") {
                child_pid = pid.trim().parse().unwrap();
            }
            said.push(line);
        }
        assert!(child_pid > 0, "the child reported its pid: {said:?}");
        Family { parent, child_pid }
    }

    fn tell_parent(&mut self, line: &str) {
        let stdin = self.parent.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        let _ = self.parent.kill();
        let _ = self.parent.wait();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn listener_owner(exporter: &Exporter) -> Vec<String> {
    exporter
        .scrape()
        .family("sockdiag_tcp_listen_queue_limit")
        .into_keys()
        .filter(|labels| labels.contains("port=\"8090\""))
        .collect()
}

fn owner_name_follows_parent_exit_and_rename_from_the_next_poll() {
    in_netns(|| {
        let mut family = Family::start();
        let mut exporter = Exporter::start(10120, &["--poll.interval=200ms"]);
        exporter.wait_for_poll();
        let listener = |process: &str| {
            vec![format!(
                "{{address=\"127.0.0.1\",port=\"8090\",process=\"{process}\"}}"
            )]
        };
        assert_eq!(listener_owner(&exporter), listener("parent"), "lowest pid");
        // The child renames itself while its parent still owns the socket.
        family.tell_parent("rename worker");
        std::thread::sleep(Duration::from_millis(100));
        family.tell_parent("exit");
        let _ = family.parent.wait();
        exporter.wait_for_fresh_poll();
        assert_eq!(listener_owner(&exporter), listener("worker"));
    });
}

/// A process named `slot-holder` that holds /dev/null on fd 50 and, told `swap`, puts a
/// listener on 127.0.0.1:8091 in its place (dup2 onto fd 50: the slot the /proc index
/// read as a file now holds a socket, and no other fd number is new).
const SLOT_SCRIPT: &str = r#"
import os, socket, sys
with open('/proc/self/comm', 'w') as f:
    f.write('slot-holder')
null = os.open('/dev/null', os.O_RDONLY)
os.dup2(null, 50)
os.close(null)
sys.stdout.write('ready\n'); sys.stdout.flush()
for line in sys.stdin:
    if line.strip() == 'swap':
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', 8091))
        s.listen(8)
        os.dup2(s.fileno(), 50)
        os.close(s.detach())
        sys.stdout.write('swapped\n'); sys.stdout.flush()
"#;

/// The process of [`SLOT_SCRIPT`], seen through a /proc root that shows it alone (its
/// `stat`, `comm`, `fd` and `ns` linked to the real ones), so that the index's scans read
/// this test's process only; stopped and removed on drop.
struct SlotHolder {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    root: std::path::PathBuf,
}

impl SlotHolder {
    fn start() -> SlotHolder {
        let mut child = Command::new("python3")
            .args(["-c", SLOT_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let out = BufReader::new(child.stdout.take().unwrap());
        let root =
            std::env::temp_dir().join(format!("sockdiag-it-slot-{}", crate::cgroups::unique_tag()));
        let pid = child.id();
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/proc/thread-self", root.join("thread-self")).unwrap();
        for name in ["ns", "stat", "comm", "fd"] {
            std::os::unix::fs::symlink(format!("/proc/{pid}/{name}"), dir.join(name)).unwrap();
        }
        let mut holder = SlotHolder { child, out, root };
        holder.expect("ready");
        holder
    }

    fn expect(&mut self, said: &str) {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read python3");
        assert_eq!(line.trim(), said);
    }

    fn swap(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "swap").unwrap();
        stdin.flush().unwrap();
        self.expect("swapped");
    }
}

impl Drop for SlotHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// (process label, pending, full passes) of the listener on port 8091 after one poll.
fn poll_listener(collector: &mut Collector) -> (Vec<String>, u64, u32) {
    let (snapshot, notes) = collector.poll().expect("poll");
    let process = snapshot
        .namespaces
        .iter()
        .flat_map(|ns| &ns.tcp.breakdown.listeners)
        .filter(|l| l.port == 8091)
        .map(|l| l.process.to_string())
        .collect();
    (process, snapshot.owners.pending, notes.scan.full_passes)
}

fn socket_in_a_reused_fd_slot_is_pending_one_poll_then_named() {
    in_netns(|| {
        let mut holder = SlotHolder::start();
        let mut config = PollerConfig::new(Duration::from_secs(1), None);
        config.scope = Scope::Own;
        config.sources.proc_root = holder.root.clone();
        config.sources.bind_roots = Vec::new();
        let mut collector = Collector::new(&config, Default::default(), Default::default());
        assert_eq!(
            poll_listener(&mut collector),
            (vec![], 0, 1),
            "the first poll: its warm-up reads fd 50 as a file"
        );
        holder.swap();
        assert_eq!(
            poll_listener(&mut collector),
            (vec!["pending".to_string()], 1, 0),
            "phase 1 reads no new slot; no full pass for a socket first missed"
        );
        assert_eq!(
            poll_listener(&mut collector),
            (vec!["slot-holder".to_string()], 0, 1),
            "still missed: the full pass names it"
        );
        assert_eq!(
            poll_listener(&mut collector),
            (vec!["slot-holder".to_string()], 0, 0)
        );
    });
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        owner_name_follows_parent_exit_and_rename_from_the_next_poll,
        socket_in_a_reused_fd_slot_is_pending_one_poll_then_named,
    ]
}
