//! A scripted [`Transport`] for tests: it answers every dump request with the messages of
//! a real capture (`inet_diag/testdata/loopback-v4-v6.bin`, made by `capture.py` there)
//! that match the request's family and state mask (both families, listeners first, for a
//! TCPDIAG_GETSOCK request), a few messages per datagram, with the request's sequence
//! number and type, then NLMSG_DONE; UNIX and UDP requests get an empty dump. One
//! [`Fault`] can be armed to hit the k-th datagram received after it was armed, on any
//! socket the [`Script`] opened.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP_INTR, NLM_F_MULTIPART};
use netlink_packet_sock_diag::constants::{IPPROTO_UDP, SOCK_DIAG_BY_FAMILY};

use super::frame::testing::nlmsg;
use super::frame::NLMSG_HEADER_LEN;
use super::{Opener, SockDiag, Transport, RECV_BUFFER_BYTES, TCPDIAG_GETSOCK};

/// The datagrams of a real dump of both families: each a native-endian u32 length and
/// the bytes.
pub fn capture() -> Vec<Vec<u8>> {
    super::frame::testing::capture_datagrams(include_bytes!(
        "../inet_diag/testdata/loopback-v4-v6.bin"
    ))
}

/// What goes wrong at the armed datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// recv fails with this errno; the datagram is still there for the next recv (EINTR
    /// consumes nothing).
    Errno(i32),
    /// The datagram carries NLM_F_DUMP_INTR.
    DumpInterrupted,
    /// The datagram is cut 10 bytes short: its last message runs past its end.
    Cut,
    /// The datagram is larger than the receive buffer (recv reports its real length).
    Oversized,
    /// The datagram is replaced by an NLMSG_ERROR carrying this errno.
    KernelError(i32),
}

#[derive(Debug)]
struct State {
    /// Every SOCK_DIAG_BY_FAMILY message of the capture, header included.
    messages: Vec<Vec<u8>>,
    per_datagram: usize,
    /// (datagrams still to deliver before the fault, the fault).
    armed: Option<(usize, Fault)>,
    /// A fault on every datagram.
    always: Option<Fault>,
    opens: usize,
    /// The address family of every dump request sent, in order.
    requests: Vec<u8>,
}

/// The state shared by every transport a script's [`Opener`] makes.
#[derive(Debug, Clone)]
pub struct Script(Arc<Mutex<State>>);

impl Script {
    /// Replays the capture, `per_datagram` messages a datagram.
    pub fn new(per_datagram: usize) -> Script {
        let mut messages = Vec::new();
        for datagram in capture() {
            let mut offset = 0;
            while offset + NLMSG_HEADER_LEN <= datagram.len() {
                let length =
                    u32::from_ne_bytes(datagram[offset..offset + 4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(datagram[offset + 4..offset + 6].try_into().unwrap());
                if kind == SOCK_DIAG_BY_FAMILY {
                    messages.push(datagram[offset..offset + length].to_vec());
                }
                offset += (length + 3) & !3;
            }
        }
        Script(Arc::new(Mutex::new(State {
            messages,
            per_datagram: per_datagram.max(1),
            armed: None,
            always: None,
            opens: 0,
            requests: Vec::new(),
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault hits the datagram received `after` datagrams from now (0: the next).
    pub fn arm(&self, after: usize, fault: Fault) {
        self.state().armed = Some((after, fault));
    }

    /// `fault` hits every datagram from now on.
    pub fn always(&self, fault: Fault) {
        self.state().always = Some(fault);
    }

    /// True when an armed fault has not fired yet.
    pub fn armed(&self) -> bool {
        self.state().armed.is_some()
    }

    /// Sockets opened so far.
    pub fn opens(&self) -> usize {
        self.state().opens
    }

    /// The address family (`AF_INET`, `AF_INET6`, `AF_UNIX`; `AF_UNSPEC` for the TCP dump
    /// of both families) of every dump request sent so far, in order.
    pub fn requests(&self) -> Vec<u8> {
        self.state().requests.clone()
    }

    /// The captured payloads (without their netlink header).
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        let state = self.state();
        state
            .messages
            .iter()
            .map(|m| m[NLMSG_HEADER_LEN..].to_vec())
            .collect()
    }

    /// Opens [`SockDiag`]s over this script.
    pub fn opener(&self) -> Opener {
        let script = self.clone();
        Opener::new(move || {
            script.state().opens += 1;
            Ok(SockDiag::over(Box::new(Scripted {
                script: script.clone(),
                pending: VecDeque::new(),
            })))
        })
    }
}

/// One socket of a [`Script`].
struct Scripted {
    script: Script,
    /// The rest of the current dump's reply.
    pending: VecDeque<Vec<u8>>,
}

impl Transport for Scripted {
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        let seq = u32::from_ne_bytes(request[8..12].try_into().expect("nlmsg_seq"));
        let kind = u16::from_ne_bytes(request[4..6].try_into().expect("nlmsg_type"));
        let body = &request[NLMSG_HEADER_LEN..];
        // TCPDIAG_GETSOCK (struct inet_diag_req): both families, states at byte 52, the
        // listeners first as the kernel sends them. Else inet_diag_req_v2 or
        // unix_diag_req: family at 0, protocol at 1, states at 4.
        let compat = kind == TCPDIAG_GETSOCK;
        let (family, states) = match compat {
            true => (0, u32::from_ne_bytes(body[52..56].try_into().unwrap())),
            false => (body[0], u32::from_ne_bytes(body[4..8].try_into().unwrap())),
        };
        // The capture is TCP's: a UDP request (inet_diag_req_v2's protocol) finds no socket.
        let udp = !compat && i32::from(family) != libc::AF_UNIX && body[1] == IPPROTO_UDP;
        let mut state = self.script.state();
        state.requests.push(family);
        let mut matching: Vec<&Vec<u8>> = state
            .messages
            .iter()
            .filter(|m| {
                let payload = &m[NLMSG_HEADER_LEN..];
                i32::from(family) != libc::AF_UNIX
                    && !udp
                    && (compat || payload[0] == family)
                    && states & (1 << payload[1]) != 0
            })
            .collect();
        if compat {
            // TCP_LISTEN is 10; a stable sort keeps the capture's order otherwise.
            matching.sort_by_key(|m| m[NLMSG_HEADER_LEN + 1] != 10);
        }
        self.pending.clear();
        for chunk in matching.chunks(state.per_datagram) {
            let mut datagram = Vec::new();
            for message in chunk {
                let mut message = message.to_vec();
                // A reply carries its request's type.
                message[4..6].copy_from_slice(&kind.to_ne_bytes());
                message[6..8].copy_from_slice(&NLM_F_MULTIPART.to_ne_bytes());
                message[8..12].copy_from_slice(&seq.to_ne_bytes());
                datagram.extend(message);
            }
            self.pending.push_back(datagram);
        }
        self.pending
            .push_back(nlmsg(NLMSG_DONE, NLM_F_MULTIPART, seq, &0i32.to_ne_bytes()));
        Ok(())
    }

    fn recv(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        let fault = {
            let mut state = self.script.state();
            match state.armed {
                Some((0, fault)) => {
                    state.armed = None;
                    Some(fault)
                }
                Some((after, fault)) => {
                    state.armed = Some((after - 1, fault));
                    None
                }
                None => state.always,
            }
        };
        if let Some(Fault::Errno(errno)) = fault {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let mut datagram = self
            .pending
            .pop_front()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EAGAIN))?;
        let seq = u32::from_ne_bytes(datagram[8..12].try_into().unwrap());
        match fault {
            Some(Fault::DumpInterrupted) => {
                let flags = u16::from_ne_bytes(datagram[6..8].try_into().unwrap());
                datagram[6..8].copy_from_slice(&(flags | NLM_F_DUMP_INTR).to_ne_bytes());
            }
            Some(Fault::Cut) => datagram.truncate(datagram.len() - 10),
            Some(Fault::Oversized) => datagram.resize(RECV_BUFFER_BYTES + 4096, 0),
            Some(Fault::KernelError(errno)) => {
                // struct nlmsgerr: the negative errno, then the request's header.
                let mut payload = (-errno).to_ne_bytes().to_vec();
                payload.extend_from_slice(&[0; NLMSG_HEADER_LEN]);
                datagram = nlmsg(NLMSG_ERROR, 0, seq, &payload);
            }
            Some(Fault::Errno(_)) | None => {}
        }
        let fits = datagram.len().min(buffer.capacity());
        buffer.extend_from_slice(&datagram[..fits]);
        Ok(datagram.len())
    }
}
