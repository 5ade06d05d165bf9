//! Builds known socket populations on loopback inside the caller's network namespace.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::netns;

/// Keeps every socket of a load open until dropped.
#[derive(Default)]
pub struct Load {
    streams: Vec<TcpStream>,
    listeners: Vec<TcpListener>,
    raw: Vec<Socket>,
}

impl Load {
    pub fn keep_stream(&mut self, s: TcpStream) {
        self.streams.push(s);
    }
    pub fn keep_listener(&mut self, l: TcpListener) {
        self.listeners.push(l);
    }
    pub fn keep_raw(&mut self, s: Socket) {
        self.raw.push(s);
    }
}

/// A listener with an explicit backlog.
pub fn listen(address: SocketAddr, backlog: i32) -> TcpListener {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&address.into())
        .unwrap_or_else(|e| panic!("bind {address}: {e}"));
    socket.listen(backlog).expect("listen");
    socket.into()
}

/// A non-blocking connect left in flight (SYN_SENT while the peer drops its SYNs).
pub fn connect_in_flight(address: SocketAddr) -> Socket {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None).expect("socket");
    socket.set_nonblocking(true).unwrap();
    match socket.connect(&address.into()) {
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) => {}
        other => panic!("expected EINPROGRESS connecting to {address}, got {other:?}"),
    }
    socket
}

fn libc_einprogress() -> i32 {
    nix::errno::Errno::EINPROGRESS as i32
}

/// Expected socket counts: (family label, state label) -> count.
pub type Counts = BTreeMap<(&'static str, &'static str), u64>;

/// The mixed population of the per-state test, on `ip`, listeners on `port` and
/// `port + 1`: LISTEN 2, ESTABLISHED 3 pairs + 1 queued pair, CLOSE_WAIT 2 and their
/// FIN_WAIT2 peers, TIME_WAIT 4, SYN_SENT 2.
pub fn mixed(load: &mut Load, ip: IpAddr, port: u16, counts: &mut Counts) {
    let family = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
    let address = SocketAddr::new(ip, port);
    let listener = listen(address, 128);
    for _ in 0..3 {
        load.keep_stream(TcpStream::connect(address).expect("connect"));
        load.keep_stream(listener.accept().expect("accept").0);
    }
    for _ in 0..2 {
        // The server half-closes and keeps its fd: it waits in FIN_WAIT2 for ever, the
        // client that never closes sits in CLOSE_WAIT.
        load.keep_stream(TcpStream::connect(address).expect("connect"));
        let (server, _) = listener.accept().expect("accept");
        server.shutdown(Shutdown::Write).expect("shutdown");
        load.keep_stream(server);
    }
    for _ in 0..4 {
        // The client closes first, so it is the one left in TIME_WAIT.
        let client = TcpStream::connect(address).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        drop(client);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).expect("read to EOF");
        drop(server);
    }
    load.keep_listener(listener);

    // Backlog 0 admits one connection to the accept queue; later SYNs are dropped, so
    // those clients stay in SYN_SENT.
    let full_address = SocketAddr::new(ip, port + 1);
    let full = listen(full_address, 0);
    load.keep_stream(TcpStream::connect(full_address).expect("connect to full listener"));
    wait_for(|| {
        ss_counts()
            .get(&(family, "established"))
            .copied()
            .unwrap_or(0)
            >= 8
    });
    for _ in 0..2 {
        load.keep_raw(connect_in_flight(full_address));
    }
    load.keep_listener(full);

    for (state, n) in [
        ("listen", 2),
        ("established", 8),
        ("close_wait", 2),
        ("fin_wait2", 2),
        ("time_wait", 4),
        ("syn_sent", 2),
    ] {
        *counts.entry((family, state)).or_default() += n;
    }
}

/// `ss -tan` of the calling thread's namespace, counted by family and state.
pub fn ss_counts() -> Counts {
    let mut counts = Counts::new();
    for (flag, family) in [("-4", "ipv4"), ("-6", "ipv6")] {
        for line in netns::output("ss", &["-H", "-tan", flag]).lines() {
            let Some(state) = line.split_whitespace().next() else {
                continue;
            };
            *counts.entry((family, ss_state(state))).or_default() += 1;
        }
    }
    counts
}

fn ss_state(ss: &str) -> &'static str {
    match ss {
        "ESTAB" => "established",
        "SYN-SENT" => "syn_sent",
        "SYN-RECV" => "syn_recv",
        "FIN-WAIT-1" => "fin_wait1",
        "FIN-WAIT-2" => "fin_wait2",
        "TIME-WAIT" => "time_wait",
        "UNCONN" => "close",
        "CLOSE-WAIT" => "close_wait",
        "LAST-ACK" => "last_ack",
        "LISTEN" => "listen",
        "CLOSING" => "closing",
        other => panic!("unexpected ss state {other}"),
    }
}

/// Polls `ready` every 20 ms for up to 5 s.
pub fn wait_for(mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
