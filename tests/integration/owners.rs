//! Owner names stay true as processes change (issue 16, item 4): a socket inherited by a
//! child is named after the child from the poll after its parent exits, and a holder that
//! renames itself (prctl, exec) shows its new name from the next poll, although no new
//! socket asks for a /proc scan.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![owner_name_follows_parent_exit_and_rename_from_the_next_poll]
}
