//! Pure decoder of one unix_diag message payload: a struct unix_diag_msg
//! (include/uapi/linux/unix_diag.h) and the attributes after it, decoded in place into a
//! [`Record`] that borrows the receive buffer. The netlink framing around it is
//! [`crate::source::sock_diag::frame`]'s.
//!
//! ```text
//! struct unix_diag_msg {          16 bytes, host-endian
//!     __u8  udiag_family;         AF_UNIX
//!     __u8  udiag_type;           SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
//!     __u8  udiag_state;          TCP_LISTEN, TCP_ESTABLISHED, TCP_CLOSE
//!     __u8  pad;
//!     __u32 udiag_ino;
//!     __u32 udiag_cookie[2];
//! };
//! then netlink attributes (struct nlattr: __u16 nla_len, __u16 nla_type; data padded
//! to 4 bytes):
//!   UNIX_DIAG_NAME  (0): the sun_path bytes of the bound address; a leading NUL marks an
//!                        abstract name; a path carries its terminating NUL.
//!   UNIX_DIAG_RQLEN (4): struct unix_diag_rqlen { __u32 udiag_rqueue, udiag_wqueue; }
//!                        LISTEN: connections in the accept queue and the backlog;
//!                        others: bytes queued to read and to send.
//! ```
//! Any other attribute is skipped by length. A missing RQLEN is an error: the request
//! always asks for it, and a listener without it would export a wrong zero.

use netlink_packet_sock_diag::constants::{AF_UNIX, UNIX_DIAG_NAME, UNIX_DIAG_RQLEN};

use super::{UnixState, UnixType};
use crate::source::label_cap;
use crate::source::sock_diag::frame::for_each_attribute;
use crate::source::sock_diag::DecodeError;

/// Size of struct unix_diag_msg.
pub const UNIX_DIAG_MSG_LEN: usize = 16;

/// One UNIX socket as unix_diag reports it, borrowing the receive buffer for the
/// duration of the visitor's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: UnixType,
    pub state: UnixState,
    /// The socket's inode, as in `/proc/PID/fd` links.
    pub inode: u32,
    /// The kernel's unique socket cookie, low word first (as `ss` prints it).
    pub cookie: u64,
    /// The bound name as the kernel gives it (empty: unnamed); see [`Name`].
    pub name: &'a [u8],
    /// LISTEN: connections waiting to be accepted. Others: unread bytes.
    pub recv_queue: u32,
    /// LISTEN: the backlog. Others: bytes not yet read by the peer.
    pub send_queue: u32,
}

/// A socket's bound name, read from the raw `UNIX_DIAG_NAME` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name<'a> {
    Unnamed,
    /// A filesystem path, without its terminating NUL.
    Path(&'a [u8]),
    /// An abstract name, without its leading NUL.
    Abstract(&'a [u8]),
}

impl<'a> Name<'a> {
    pub fn of(raw: &'a [u8]) -> Name<'a> {
        match raw.split_first() {
            None => Name::Unnamed,
            Some((0, rest)) => Name::Abstract(rest),
            Some(_) => {
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                Name::Path(&raw[..end])
            }
        }
    }

    /// The `path` label: the path; `@name` for an abstract name with each NUL in it shown
    /// as `@` (as `ss` shows it); empty when unnamed. Bytes that are not UTF-8 become
    /// U+FFFD, and the label is cut to [`label_cap::UNIX_PATH`] bytes. So two names can
    /// share a label: the fold sums them into one series.
    pub fn label(self) -> String {
        label_cap::cap_owned(self.full_label(), label_cap::UNIX_PATH)
    }

    fn full_label(self) -> String {
        match self {
            Name::Unnamed => String::new(),
            Name::Path(path) => String::from_utf8_lossy(path).into_owned(),
            Name::Abstract(name) => {
                let mut label = String::with_capacity(name.len() + 1);
                label.push('@');
                for chunk in name.split(|&b| b == 0).enumerate() {
                    if chunk.0 > 0 {
                        label.push('@');
                    }
                    label.push_str(&String::from_utf8_lossy(chunk.1));
                }
                label
            }
        }
    }
}

fn malformed(offset: usize, reason: String) -> DecodeError {
    DecodeError::Malformed {
        kind: "unix_diag",
        offset,
        reason,
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Decodes the payload of the message at `offset` of its datagram.
pub fn decode_unix_diag_msg(payload: &[u8], offset: usize) -> Result<Record<'_>, DecodeError> {
    if payload.len() < UNIX_DIAG_MSG_LEN {
        return Err(DecodeError::ShortReply {
            kind: "unix_diag",
            offset,
            need: UNIX_DIAG_MSG_LEN,
            have: payload.len(),
        });
    }
    if payload[0] != AF_UNIX {
        return Err(malformed(
            offset,
            format!("udiag_family is {}, not AF_UNIX", payload[0]),
        ));
    }
    let mut record = Record {
        kind: UnixType::from_kernel(payload[1]),
        state: UnixState::from_kernel(payload[2]),
        inode: u32_at(payload, 4),
        cookie: (u64::from(u32_at(payload, 12)) << 32) | u64::from(u32_at(payload, 8)),
        name: &[],
        recv_queue: 0,
        send_queue: 0,
    };
    let mut rqlen = false;
    for_each_attribute(payload, UNIX_DIAG_MSG_LEN, &mut |kind, data| {
        match kind {
            UNIX_DIAG_NAME => record.name = data,
            UNIX_DIAG_RQLEN => {
                if data.len() != 8 {
                    return Err(format!(
                        "UNIX_DIAG_RQLEN has {} bytes of data, expected 8",
                        data.len()
                    ));
                }
                record.recv_queue = u32_at(data, 0);
                record.send_queue = u32_at(data, 4);
                rqlen = true;
            }
            _ => {}
        }
        Ok(())
    })
    .map_err(|reason| malformed(offset, reason))?;
    if !rqlen {
        return Err(malformed(
            offset,
            format!("socket {} came without UNIX_DIAG_RQLEN", record.inode),
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::sock_diag::frame::testing::{attribute, capture_datagrams, nlmsg};
    use crate::source::sock_diag::frame::{decode_datagram, Progress};
    use netlink_packet_core::NLMSG_DONE;
    use netlink_packet_sock_diag::constants::SOCK_DIAG_BY_FAMILY;

    /// struct unix_diag_msg, host-endian, as unix_diag_fill writes it.
    fn header(kind: u8, state: u8, inode: u32) -> Vec<u8> {
        let mut m = vec![
            1, // udiag_family = AF_UNIX
            kind, state, 0, // udiag_type, udiag_state, pad
        ];
        m.extend_from_slice(&inode.to_ne_bytes()); // udiag_ino
        m.extend_from_slice(&0x0000_2a2au32.to_ne_bytes()); // udiag_cookie[0]
        m.extend_from_slice(&0x0000_0003u32.to_ne_bytes()); // udiag_cookie[1]
        m
    }

    fn rqlen(rqueue: u32, wqueue: u32) -> Vec<u8> {
        let mut data = rqueue.to_ne_bytes().to_vec();
        data.extend_from_slice(&wqueue.to_ne_bytes());
        attribute(UNIX_DIAG_RQLEN, &data)
    }

    /// php-fpm's listener: SOCK_STREAM (1), TCP_LISTEN (10), bound to a path (the kernel
    /// includes the terminating NUL), 3 connections waiting of a backlog of 64.
    fn php_fpm_listener() -> Vec<u8> {
        let mut m = header(1, 10, 4711);
        m.extend(attribute(UNIX_DIAG_NAME, b"/run/php/php-fpm.sock\0"));
        m.extend(rqlen(3, 64));
        m
    }

    fn collect(datagram: &[u8], seq: u32) -> (Result<Progress, DecodeError>, Vec<String>) {
        let mut seen = Vec::new();
        let result = decode_datagram(datagram, seq, &mut |payload: &[u8], offset| {
            let r = decode_unix_diag_msg(payload, offset)?;
            seen.push(format!(
                "{} {} ino={} cookie={:#x} name={:?} q={}/{}",
                r.kind.label(),
                r.state.label(),
                r.inode,
                r.cookie,
                Name::of(r.name).label(),
                r.recv_queue,
                r.send_queue
            ));
            Ok(())
        });
        (result, seen)
    }

    #[test]
    fn decodes_a_path_bound_listener() {
        let mut datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 5, &php_fpm_listener());
        datagram.extend(nlmsg(NLMSG_DONE, 2, 5, &0i32.to_ne_bytes()));
        let (result, seen) = collect(&datagram, 5);
        assert_eq!(result, Ok(Progress::Done));
        assert_eq!(
            seen,
            vec!["stream listen ino=4711 cookie=0x300002a2a name=\"/run/php/php-fpm.sock\" q=3/64"]
        );
    }

    #[test]
    fn decodes_abstract_unnamed_and_every_type() {
        // An abstract seqpacket listener whose name holds a NUL: shown as ss shows it.
        let mut abstract_listener = header(5, 10, 1);
        abstract_listener.extend(attribute(UNIX_DIAG_NAME, b"\0gunicorn\0x"));
        abstract_listener.extend(rqlen(0, 128));
        // A connected client: no name attribute at all, 12 bytes unread.
        let mut client = header(1, 1, 2);
        client.extend(rqlen(12, 0));
        // An unconnected datagram socket (TCP_CLOSE), RQLEN before NAME.
        let mut dgram = header(2, 7, 3);
        dgram.extend(rqlen(0, 0));
        dgram.extend(attribute(UNIX_DIAG_NAME, b"/dev/log\0"));
        // A type the exporter does not know, and an attribute it does not ask for
        // (UNIX_DIAG_SHUTDOWN, 1 byte padded): both tolerated.
        let mut odd = header(9, 1, 4);
        odd.extend(attribute(6, &[3]));
        odd.extend(rqlen(0, 0));
        let mut datagram = Vec::new();
        for m in [abstract_listener, client, dgram, odd] {
            datagram.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &m));
        }
        let (result, seen) = collect(&datagram, 1);
        assert_eq!(result, Ok(Progress::More));
        assert_eq!(
            seen,
            vec![
                "seqpacket listen ino=1 cookie=0x300002a2a name=\"@gunicorn@x\" q=0/128",
                "stream established ino=2 cookie=0x300002a2a name=\"\" q=12/0",
                "dgram other ino=3 cookie=0x300002a2a name=\"/dev/log\" q=0/0",
                "other established ino=4 cookie=0x300002a2a name=\"\" q=0/0",
            ]
        );
    }

    #[test]
    fn names_keep_paths_and_abstract_names_apart() {
        assert_eq!(Name::of(b"sock\0"), Name::Path(b"sock"));
        assert_eq!(Name::of(b"\0sock"), Name::Abstract(b"sock"));
        assert_eq!(Name::of(b""), Name::Unnamed);
        assert_eq!(Name::of(b"/tmp/\xff.sock\0").label(), "/tmp/\u{fffd}.sock");
        assert_eq!(Name::of(b"\0").label(), "@");
    }

    #[test]
    fn unix_path_label_of_bytes_not_utf8_grew_past_the_cap() {
        // The longest name the kernel gives (108 bytes, sun_path), all ASCII: never cut.
        let mut longest = vec![b'/'];
        longest.extend([b'p'; 106]);
        longest.push(0);
        assert_eq!(Name::of(&longest).label().len(), 107);
        // 107 bytes that are not UTF-8 render as 321 bytes of U+FFFD: cut, with the marker.
        let mut hostile = vec![0u8];
        hostile.extend([0xffu8; 107]);
        let label = Name::of(&hostile).label();
        assert_eq!(label.len(), 127);
        assert_eq!(label, format!("@{}…", "\u{fffd}".repeat(41)));
    }

    #[test]
    fn shorter_than_unix_diag_msg_is_an_error() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &php_fpm_listener()[..12]);
        assert_eq!(
            collect(&datagram, 1).0.unwrap_err().to_string(),
            "unix_diag reply at offset 0 is 12 bytes, shorter than unix_diag_msg (16 bytes)"
        );
    }

    #[test]
    fn truncated_attribute_is_an_error() {
        // The message ends in the middle of the RQLEN attribute: its length says 12.
        let listener = php_fpm_listener();
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &listener[..listener.len() - 4]);
        assert_eq!(
            collect(&datagram, 1).0.unwrap_err().to_string(),
            "malformed unix_diag_msg at offset 0: attribute 4 at byte 44 has length 12, 8 bytes left"
        );
    }

    #[test]
    fn attribute_length_below_its_header_is_an_error() {
        let mut m = header(1, 10, 1);
        m.extend_from_slice(&[2, 0, 4, 0]); // nla_len 2 < 4: would never advance
        m.extend(rqlen(0, 0));
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &m);
        assert_eq!(
            collect(&datagram, 1).0.unwrap_err().to_string(),
            "malformed unix_diag_msg at offset 0: attribute 4 at byte 16 has length 2, 16 bytes left"
        );
    }

    #[test]
    fn stray_bytes_after_the_attributes_are_an_error() {
        let mut m = php_fpm_listener();
        m.extend_from_slice(&[0, 0]);
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &m);
        assert_eq!(
            collect(&datagram, 1).0.unwrap_err().to_string(),
            "malformed unix_diag_msg at offset 0: 2 stray bytes after the attributes at byte 56"
        );
    }

    #[test]
    fn rqlen_of_the_wrong_size_is_an_error() {
        let mut m = header(1, 10, 1);
        m.extend(attribute(UNIX_DIAG_RQLEN, &[1, 0, 0, 0]));
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &m);
        assert_eq!(
            collect(&datagram, 1).0.unwrap_err().to_string(),
            "malformed unix_diag_msg at offset 0: UNIX_DIAG_RQLEN has 4 bytes of data, expected 8"
        );
    }

    #[test]
    fn missing_rqlen_is_an_error_not_a_zero() {
        let mut m = header(1, 10, 77);
        m.extend(attribute(UNIX_DIAG_NAME, b"/run/a.sock\0"));
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &m);
        assert_eq!(
            collect(&datagram, 1).0.unwrap_err().to_string(),
            "malformed unix_diag_msg at offset 0: socket 77 came without UNIX_DIAG_RQLEN"
        );
    }

    #[test]
    fn another_family_is_an_error() {
        let mut m = php_fpm_listener();
        m[0] = 2; // AF_INET in a unix dump
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &m);
        assert_eq!(
            collect(&datagram, 1).0.unwrap_err().to_string(),
            "malformed unix_diag_msg at offset 0: udiag_family is 2, not AF_UNIX"
        );
    }

    /// The datagrams of a real dump (testdata/capture.py).
    fn capture() -> Vec<Vec<u8>> {
        capture_datagrams(include_bytes!("testdata/loopback-unix.bin"))
    }

    #[test]
    fn a_real_capture_decodes_to_its_sockets() {
        // Two dumps of the same sockets: NAME | RQLEN, then every show flag.
        let mut dumps: Vec<Vec<String>> = Vec::new();
        let mut current = Vec::new();
        for datagram in capture() {
            let seq = u32::from_ne_bytes(datagram[8..12].try_into().expect("nlmsg_seq"));
            let (result, seen) = collect(&datagram, seq);
            current.extend(seen);
            match result {
                Ok(Progress::Done) => dumps.push(std::mem::take(&mut current)),
                Ok(Progress::More) => {}
                Err(error) => panic!("capture: {error}"),
            }
        }
        assert_eq!(dumps.len(), 2);
        assert_eq!(dumps[0], dumps[1], "the extra attributes are skipped");
        let count = |prefix: &str| dumps[0].iter().filter(|s| s.starts_with(prefix)).count();
        assert_eq!(dumps[0].len(), 11);
        assert_eq!(count("stream established"), 7);
        assert_eq!(count("dgram established"), 2);
        let named = |name: &str| {
            dumps[0]
                .iter()
                .filter(|s| s.contains(&format!("name={name:?}")))
                .count()
        };
        // The listener and the two connections it accepted carry its name.
        assert_eq!(named("@sockdiag-capture/php-fpm"), 3);
        let listeners: Vec<&String> = dumps[0].iter().filter(|s| s.contains(" listen ")).collect();
        assert_eq!(listeners.len(), 2);
        assert!(
            listeners[0].starts_with("stream listen")
                && listeners[0].ends_with("name=\"@sockdiag-capture/php-fpm\" q=1/8"),
            "one connection waits in the accept queue of 8: {}",
            listeners[0]
        );
        assert!(
            listeners[1].starts_with("seqpacket listen")
                && listeners[1].ends_with("name=\"@sockdiag-capture@gunicorn\" q=0/4"),
            "{}",
            listeners[1]
        );
        assert_eq!(
            dumps[0].iter().filter(|s| s.ends_with(" q=100/0")).count(),
            1,
            "the server end holding 100 unread bytes"
        );
    }

    /// The bytes unix_diag_fill writes for `record`: the inverse of the decoder. Unknown
    /// attributes (`extra`: type and data) go first; NAME comes before or after RQLEN;
    /// an empty name is sent as no NAME attribute, as the kernel does for unbound sockets.
    fn encode(record: &Record<'_>, rqlen_first: bool, extra: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let kind = match record.kind {
            UnixType::Stream => 1,
            UnixType::Dgram => 2,
            UnixType::Seqpacket => 5,
            UnixType::Other => 3,
        };
        let state = match record.state {
            UnixState::Listen => 10,
            UnixState::Established => 1,
            UnixState::Other => 7,
        };
        let mut m = vec![1, kind, state, 0];
        m.extend_from_slice(&record.inode.to_ne_bytes());
        m.extend_from_slice(&(record.cookie as u32).to_ne_bytes());
        m.extend_from_slice(&((record.cookie >> 32) as u32).to_ne_bytes());
        for (kind, data) in extra {
            m.extend(attribute(*kind, data));
        }
        let name = (!record.name.is_empty()).then(|| attribute(UNIX_DIAG_NAME, record.name));
        let queues = rqlen(record.recv_queue, record.send_queue);
        if rqlen_first {
            m.extend(queues);
            m.extend(name.unwrap_or_default());
        } else {
            m.extend(name.unwrap_or_default());
            m.extend(queues);
        }
        m
    }

    proptest::proptest! {
        /// decode(encode(x)) == x for any socket, whatever the order of its attributes
        /// and whatever unknown attributes come with it, framed in a datagram.
        #[test]
        fn decode_of_encode_is_the_record(
            kind in proptest::sample::select(UnixType::ALL.to_vec()),
            state in proptest::sample::select(UnixState::ALL.to_vec()),
            (inode, cookie, recv_queue, send_queue) in proptest::prelude::any::<(u32, u64, u32, u32)>(),
            name in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..108),
            rqlen_first in proptest::prelude::any::<bool>(),
            extra in proptest::collection::vec(
                (1u16..4, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..9)),
                0..3,
            ),
        ) {
            let record = Record { kind, state, inode, cookie, name: &name, recv_queue, send_queue };
            let payload = encode(&record, rqlen_first, &extra);
            proptest::prop_assert_eq!(decode_unix_diag_msg(&payload, 0), Ok(record));
            let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 9, &payload);
            let mut decoded = Vec::new();
            let framed = decode_datagram(&datagram, 9, &mut |payload: &[u8], offset| {
                let r = decode_unix_diag_msg(payload, offset)?;
                decoded.push((r.kind, r.state, r.inode, r.cookie, r.name.to_vec(), r.recv_queue, r.send_queue));
                Ok(())
            });
            proptest::prop_assert_eq!(framed, Ok(Progress::More));
            proptest::prop_assert_eq!(
                decoded,
                vec![(kind, state, inode, cookie, name.clone(), recv_queue, send_queue)]
            );
        }
    }
}
