//! Helper processes with their own names. The integration binary re-executes itself with
//! SOCKDIAG_TEST_ACTOR=<role> (see `main`); the child renames itself (prctl PR_SET_NAME,
//! what /proc/PID/comm shows), plays its role on loopback, prints `ready` and then obeys
//! one-line commands on stdin until stdin closes. `Actor` starts one from the calling
//! thread, so inside that thread's network namespace, and kills it by pid when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::load;

pub const ENV: &str = "SOCKDIAG_TEST_ACTOR";

pub struct Actor {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Actor {
    /// Starts `role` (see `run`) as a process named `name` and waits for `ready`.
    pub fn start(name: &str, role: &str, args: &[&str]) -> Actor {
        let mut command = Command::new(std::env::current_exe().expect("own path"));
        command.env_clear().env(ENV, role).arg(name).args(args);
        Actor::spawn(command)
    }

    /// Starts `role` as uid and gid 65534 in a network namespace of its own, made through
    /// a user namespace of its own (`unshare -Urn`, loopback up): what any user without
    /// privileges can do. `bin` is a copy of this binary that user may execute.
    pub fn start_in_user_netns(
        bin: &std::path::Path,
        name: &str,
        role: &str,
        args: &[&str],
    ) -> Actor {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("unshare");
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env(ENV, role)
            .args([
                "-Urn",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
            ])
            .arg(bin)
            .arg(name)
            .args(args)
            .uid(65534)
            .gid(65534);
        Actor::spawn(command)
    }

    /// Starts a prepared command that runs an actor (a wrapper that execs `exe` with
    /// [`ENV`] set, say) and waits for `ready`. The command's pid must be the actor's:
    /// wrappers exec, they do not fork.
    pub fn spawn(mut command: Command) -> Actor {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_past_text_busy(&mut command);
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("actor stdout"));
        let mut actor = Actor {
            child,
            stdin,
            stdout,
        };
        actor.expect_line("ready");
        actor
    }

    /// The actor's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a command and waits for its `done`.
    pub fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("actor stdin");
        writeln!(stdin, "{command}").expect("write to actor");
        stdin.flush().unwrap();
        self.expect_line("done");
    }

    fn expect_line(&mut self, want: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read actor stdout");
        assert_eq!(line.trim_end(), want, "actor {} said", self.child.id());
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Entry point of an actor process: `args` is [name, role args...].
pub fn run(role: &str, args: &[String]) {
    let name = &args[0];
    nix::sys::prctl::set_name(&std::ffi::CString::new(name.as_str()).unwrap())
        .expect("prctl(PR_SET_NAME)");
    let arg = |i: usize| args[i].as_str();
    let mut held_streams: Vec<TcpStream> = Vec::new();
    let mut held_listeners: Vec<TcpListener> = Vec::new();
    match role {
        // Accepts N connections on ADDR and never closes or reads them (incidents 1, 6).
        "accept-and-hold" => {
            let listener = TcpListener::bind(arg(1)).expect("bind");
            let n: usize = arg(2).parse().unwrap();
            announce();
            for _ in 0..n {
                held_streams.push(listener.accept().expect("accept").0);
            }
            held_listeners.push(listener);
        }
        // Accepts N connections on ADDR and closes each at once (a MySQL load balancer
        // closing idle connections, incident 3).
        "accept-and-close" => {
            let listener = TcpListener::bind(arg(1)).expect("bind");
            let n: usize = arg(2).parse().unwrap();
            announce();
            for _ in 0..n {
                drop(listener.accept().expect("accept"));
            }
            held_listeners.push(listener);
        }
        // Connects N times to ADDR and never reads or closes (a leaking client pool).
        "connect-and-hold" => {
            let address: SocketAddr = arg(1).parse().unwrap();
            for _ in 0..arg(2).parse::<usize>().unwrap() {
                held_streams.push(TcpStream::connect(address).expect("connect"));
            }
            announce();
        }
        // Listens with backlog B and accepts only when told (incident 5; queue peaks).
        "listen-no-accept" => {
            let listener = load::listen(arg(1).parse().unwrap(), arg(2).parse().unwrap());
            listener.set_nonblocking(true).unwrap();
            announce();
            let mut stdin = BufReader::new(std::io::stdin());
            let mut line = String::new();
            while stdin.read_line(&mut line).unwrap_or(0) > 0 {
                if line.trim() == "accept-all" {
                    while let Ok((stream, _)) = listener.accept() {
                        drop(stream);
                    }
                }
                println!("done");
                line.clear();
            }
            return;
        }
        // Connects N times to its own listener on ADDR and holds both ends: a service and
        // its clients in one process.
        "self-connect" => {
            let listener = TcpListener::bind(arg(1)).expect("bind");
            for _ in 0..arg(2).parse::<usize>().unwrap() {
                held_streams.push(TcpStream::connect(arg(1)).expect("connect"));
                held_streams.push(listener.accept().expect("accept").0);
            }
            held_listeners.push(listener);
            announce();
        }
        // Listens on COUNT ports from FIRST on 127.0.0.1 with BACKLOG, never accepting.
        "listen-many" => {
            let first: u16 = arg(1).parse().unwrap();
            let count: u16 = arg(2).parse().unwrap();
            for port in first..first + count {
                let address = SocketAddr::from(([127, 0, 0, 1], port));
                held_listeners.push(load::listen(address, arg(3).parse().unwrap()));
            }
            announce();
        }
        // Listens on each ADDR given and accepts and holds everything.
        "sink" => {
            let listeners: Vec<TcpListener> = args[1..]
                .iter()
                .map(|a| {
                    let l = TcpListener::bind(a.as_str()).expect("bind");
                    l.set_nonblocking(true).unwrap();
                    l
                })
                .collect();
            announce();
            std::thread::spawn(move || loop {
                for l in &listeners {
                    while let Ok((s, _)) = l.accept() {
                        std::mem::forget(s);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            });
        }
        // Listens on each UNIX stream NAME=BACKLOG given (`@name`: abstract) and never
        // accepts: the queues fill with the connections the test makes.
        "unix-listen" => {
            let listeners: Vec<socket2::Socket> = args[1..]
                .iter()
                .map(|spec| {
                    let (name, backlog) = spec.split_once('=').expect("NAME=BACKLOG");
                    crate::unix::listen(name, backlog.parse().unwrap())
                })
                .collect();
            announce();
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
            drop(listeners);
            return;
        }
        // Listens on ADDR, connects E + C times to itself and accepts them all, then closes
        // the client end of the last C: E established pairs (2E sockets) and C server
        // sockets in CLOSE_WAIT, all held. A pod, a busy service or a hostile user's pile.
        "pile" => {
            let listener = TcpListener::bind(arg(1)).expect("bind");
            let address = listener.local_addr().unwrap();
            let established: usize = arg(2).parse().unwrap();
            let close_wait: usize = arg(3).parse().unwrap();
            for i in 0..established + close_wait {
                let client = TcpStream::connect(address).expect("connect");
                held_streams.push(listener.accept().expect("accept").0);
                if i < established {
                    held_streams.push(client);
                }
            }
            held_listeners.push(listener);
            announce();
        }
        // Inside a container started by a runtime (no stdin to wait on): listens on ADDR,
        // connects N clients and closes them, never closing what it accepted, so N
        // sockets sit in CLOSE_WAIT; then holds them until killed.
        "close-wait-leak" => {
            let listener = TcpListener::bind(arg(1)).expect("bind");
            let address = listener.local_addr().unwrap();
            for _ in 0..arg(2).parse::<usize>().unwrap() {
                drop(TcpStream::connect(address).expect("connect"));
                held_streams.push(listener.accept().expect("accept").0);
            }
            announce();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        // A UDP receiver on ADDR with SO_RCVBUF B (0: the default); MODE `hold` never
        // reads (its queue fills and the kernel drops), `read` reads everything. With a
        // fourth argument `until-killed` (inside a container started by a runtime, with
        // no stdin to wait on) it holds the socket until killed.
        "udp-recv" => {
            let socket = crate::udp::bind(arg(1).parse().unwrap(), arg(2).parse().unwrap());
            if arg(3) == "read" {
                let socket = std::net::UdpSocket::from(socket);
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 2048];
                    loop {
                        if let Err(error) = socket.recv(&mut buffer) {
                            panic!("udp-recv: {error}");
                        }
                    }
                });
            } else {
                std::mem::forget(socket);
            }
            announce();
            if args.get(4).map(String::as_str) == Some("until-killed") {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        }
        other => panic!("unknown actor role {other}"),
    }
    // Hold everything until the test closes stdin (or kills us).
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(held_streams);
    drop(held_listeners);
}

fn announce() {
    println!("ready");
    std::io::stdout().flush().unwrap();
}

/// Spawns `command`, again while the kernel answers ETXTBSY: an executable a test has just
/// written (a world-executable copy of this binary) stays "busy" while a child that another
/// test thread forked meanwhile still holds the inherited write fd, until that child execs
/// (CI failed once on it). Any other error fails the test at once.
fn spawn_past_text_busy(command: &mut Command) -> std::process::Child {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(error) if error.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result.expect("spawn actor"),
        }
    }
}
