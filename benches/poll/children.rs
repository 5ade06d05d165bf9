//! The child side of the socket loads (see [`crate::load`]): roles `holder` and `twgen`,
//! and the helpers every child process of the bench uses (set-up, listeners).

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::load::{ADMIN_PORT_OFFSET, TW_SPORTS, TW_SPORT_BASE, V6_DPORTS};

/// Common set-up of every child: name, die with the parent, fd limit at its maximum.
pub fn child_setup(name: &str) {
    nix::sys::prctl::set_name(&std::ffi::CString::new(name).expect("name")).expect("prctl name");
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).expect("pdeathsig");
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

pub fn listen(address: SocketAddr, nonblocking: bool) -> TcpListener {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    if address.is_ipv6() {
        socket.set_only_v6(true).expect("IPV6_V6ONLY");
    }
    socket
        .bind(&address.into())
        .unwrap_or_else(|e| panic!("bind {address}: {e}"));
    socket.listen(4096).expect("listen");
    socket.set_nonblocking(nonblocking).expect("nonblocking");
    socket.into()
}

pub fn loopback(family: &str) -> IpAddr {
    match family {
        "4" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "6" => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => panic!("family {other}"),
    }
}

/// Role `holder NAME PORT`.
pub fn holder(args: &[String]) {
    child_setup(&args[0]);
    let port: u16 = args[1].parse().expect("port");
    for family in ["4", "6"] {
        let listener = listen(SocketAddr::new(loopback(family), port), false);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            loop {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                        panic!("holder out of fds with {} held", held.len())
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
    }
    // An idle admin port, as services have: listeners are series of their own.
    let _admin = listen(
        SocketAddr::new(loopback("4"), port + ADMIN_PORT_OFFSET),
        false,
    );
    println!("ready");
    let mut held: Vec<TcpStream> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["connect", family, port, established, close_wait] => {
                let address = SocketAddr::new(loopback(family), port.parse().expect("port"));
                let established: u64 = established.parse().expect("count");
                let close_wait: u64 = close_wait.parse().expect("count");
                for i in 0..established + close_wait {
                    let stream = TcpStream::connect(address)
                        .unwrap_or_else(|e| panic!("{} connect {address}: {e}", args[0]));
                    if i >= established {
                        // Our side goes to FIN_WAIT2 and stays (we keep the fd); the peer,
                        // which never closes, sits in CLOSE_WAIT.
                        stream.shutdown(Shutdown::Write).expect("shutdown");
                    }
                    held.push(stream);
                }
                println!("done");
            }
            _ => panic!("holder: unknown command {line:?}"),
        }
    }
}

/// Role `twgen FAMILY INDEX BASE_PORT`.
pub fn twgen(args: &[String]) {
    let family = args[0].as_str();
    let index: u8 = args[1].parse().expect("index");
    let base: u16 = args[2].parse().expect("port");
    child_setup(&format!("twgen-{index}"));
    let ip = loopback(family);
    let listeners: Vec<TcpListener> = if family == "4" {
        vec![listen(SocketAddr::new(ip, base), false)]
    } else {
        (0..V6_DPORTS as u16)
            .map(|j| listen(SocketAddr::new(ip, base + 1 + j), false))
            .collect()
    };
    // 4-tuple number c -> (source, listener index).
    let tuple = |c: u64| -> (SocketAddr, usize) {
        let slot = c / TW_SPORTS;
        let port = (TW_SPORT_BASE + c % TW_SPORTS) as u16;
        if family == "4" {
            let host = slot + 1;
            let source = Ipv4Addr::new(127, 20 + index, (host >> 8) as u8, host as u8);
            (SocketAddr::new(IpAddr::V4(source), port), 0)
        } else {
            (SocketAddr::new(ip, port), (slot % V6_DPORTS) as usize)
        }
    };
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["make", from, to] = words.as_slice() else {
            panic!("twgen: unknown command {line:?}");
        };
        let from: u64 = from.parse().expect("from");
        let to: u64 = to.parse().expect("to");
        let (made, failed) = make_time_wait(&listeners, &tuple, from, to);
        println!("done {made} {failed}");
    }
}

/// Makes (or re-makes) the TIME_WAIT 4-tuples [from, to): `tuple` gives each one's source
/// and the index of its listener in `listeners`. Returns (made, failed connects).
pub fn make_time_wait(
    listeners: &[TcpListener],
    tuple: &dyn Fn(u64) -> (SocketAddr, usize),
    from: u64,
    to: u64,
) -> (u64, u64) {
    let (mut made, mut failed) = (0u64, 0u64);
    let mut c = from;
    while c < to {
        let end = (c + 128).min(to);
        let mut clients = Vec::with_capacity(128);
        for n in c..end {
            let (source, listener) = tuple(n);
            let socket =
                Socket::new(Domain::for_address(source), Type::STREAM, None).expect("socket");
            socket.set_reuse_address(true).expect("SO_REUSEADDR");
            let destination = listeners[listener].local_addr().expect("address");
            match socket
                .bind(&source.into())
                .and_then(|()| socket.connect(&destination.into()))
            {
                Ok(()) => clients.push((socket, listener)),
                Err(_) => failed += 1,
            }
        }
        let mut servers = Vec::with_capacity(clients.len());
        for (_, listener) in &clients {
            servers.push(listeners[*listener].accept().expect("accept").0);
        }
        // The client closes first, so the client end is the one left in TIME_WAIT.
        made += clients.len() as u64;
        drop(clients);
        drop(servers);
        c = end;
    }
    (made, failed)
}
