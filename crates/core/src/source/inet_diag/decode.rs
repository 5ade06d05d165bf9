//! Pure decoder of one inet_diag message payload: a struct inet_diag_msg
//! (include/uapi/linux/inet_diag.h), decoded in place into a [`Record`]. The netlink
//! framing around it is [`crate::source::sock_diag::frame`]'s.
//!
//! Only the fixed inet_diag_msg header is read, at its fixed offsets (checked against
//! netlink-packet-sock-diag's `InetResponseHeader::parse` on a real capture); the request
//! asks for no attributes, and any that arrive are skipped by length. See
//! docs/architecture.md for why attribute parsing is left out.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_sock_diag::inet::InetResponseBuffer;

use super::state::{Family, TcpState};
use crate::source::sock_diag::DecodeError;

/// Size of struct inet_diag_msg.
pub const INET_DIAG_MSG_LEN: usize = std::mem::size_of::<InetResponseBuffer>();

/// One socket as inet_diag reports it. Borrowed by the visitor for the duration of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub family: Family,
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// LISTEN: connections waiting in the accept queue. Others: unread bytes.
    pub recv_queue: u32,
    /// LISTEN: the backlog. Others: unsent bytes.
    pub send_queue: u32,
    pub uid: u32,
    /// 0 when no file owns the socket: TIME_WAIT, orphaned, or still in an accept queue.
    pub inode: u32,
    /// The kernel's unique socket cookie (sock_gen_cookie), stable for the socket's life.
    pub cookie: u64,
}

/// Reads struct inet_diag_msg at its fixed offsets (include/uapi/linux/inet_diag.h):
/// family 0, state 1, ports 4 and 6 (big-endian), addresses 8 and 24 (network order; the
/// first 4 bytes for IPv4), cookie 44 (two host-endian words, low first), queues 56 and
/// 60, uid 64, inode 68 (host-endian). This is what netlink-packet-sock-diag's
/// `InetResponseHeader::parse` reads, without building its intermediate header and
/// socket id for every socket of the dump: about a tenth of a poll at 100k sockets. The
/// tests check it against the crate's parse on real dump captures.
pub fn decode_inet_diag_msg(payload: &[u8], offset: usize) -> Result<Record, DecodeError> {
    let Some(msg) = payload.first_chunk::<INET_DIAG_MSG_LEN>() else {
        return Err(DecodeError::ShortReply {
            kind: "inet_diag",
            offset,
            need: INET_DIAG_MSG_LEN,
            have: payload.len(),
        });
    };
    let u32_at = |at: usize| u32::from_ne_bytes([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]]);
    let port_at = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]);
    let (family, local, remote) = match i32::from(msg[0]) {
        libc::AF_INET => {
            let v4 = |at: usize| IpAddr::from([msg[at], msg[at + 1], msg[at + 2], msg[at + 3]]);
            (Family::Ipv4, v4(8), v4(24))
        }
        libc::AF_INET6 => {
            let v6 = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&msg[at..at + 16]);
                IpAddr::from(octets)
            };
            (Family::Ipv6, v6(8), v6(24))
        }
        family => {
            return Err(DecodeError::Malformed {
                kind: "inet_diag",
                offset,
                reason: format!("unknown address family {family}"),
            })
        }
    };
    Ok(Record {
        family,
        state: TcpState::from_kernel(msg[1]),
        local: SocketAddr::new(local, port_at(4)),
        remote: SocketAddr::new(remote, port_at(6)),
        recv_queue: u32_at(56),
        send_queue: u32_at(60),
        uid: u32_at(64),
        inode: u32_at(68),
        cookie: (u64::from(u32_at(48)) << 32) | u64::from(u32_at(44)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::sock_diag::frame::testing::nlmsg;
    use crate::source::sock_diag::frame::{decode_datagram, Progress};
    use crate::source::sock_diag::script::capture;
    use netlink_packet_core::NLMSG_DONE;
    use netlink_packet_sock_diag::constants::SOCK_DIAG_BY_FAMILY;
    /// An inet_diag_msg for 10.1.2.3:8080 <- 10.9.8.7:51000, ESTABLISHED, as the kernel
    /// lays it out (ports and addresses big-endian, everything else host-endian).
    fn ipv4_established() -> Vec<u8> {
        let mut m = vec![
            2, // idiag_family = AF_INET
            1, // idiag_state = TCP_ESTABLISHED
            2, // idiag_timer = keepalive
            0, // idiag_retrans
            0x1f, 0x90, // id.idiag_sport = 8080 (be16)
            0xc7, 0x38, // id.idiag_dport = 51000 (be16)
        ];
        m.extend_from_slice(&[10, 1, 2, 3]); // id.idiag_src[0]
        m.extend_from_slice(&[0; 12]); // id.idiag_src[1..4]
        m.extend_from_slice(&[10, 9, 8, 7]); // id.idiag_dst[0]
        m.extend_from_slice(&[0; 12]); // id.idiag_dst[1..4]
        m.extend_from_slice(&0u32.to_ne_bytes()); // id.idiag_if
        m.extend_from_slice(&0x0000_1234u32.to_ne_bytes()); // id.idiag_cookie[0]
        m.extend_from_slice(&0x0000_0001u32.to_ne_bytes()); // id.idiag_cookie[1]
        m.extend_from_slice(&7_200_000u32.to_ne_bytes()); // idiag_expires (ms)
        m.extend_from_slice(&46u32.to_ne_bytes()); // idiag_rqueue
        m.extend_from_slice(&3u32.to_ne_bytes()); // idiag_wqueue
        m.extend_from_slice(&1000u32.to_ne_bytes()); // idiag_uid
        m.extend_from_slice(&987_654u32.to_ne_bytes()); // idiag_inode
        assert_eq!(m.len(), INET_DIAG_MSG_LEN);
        m
    }

    /// An inet_diag_msg for [2001:db8::1]:443 <- [2001:db8::2]:40000, CLOSE_WAIT.
    fn ipv6_close_wait() -> Vec<u8> {
        let mut m = vec![10, 8, 0, 0, 0x01, 0xbb, 0x9c, 0x40]; // AF_INET6, CLOSE_WAIT, 443, 40000
        m.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        m.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        m.extend_from_slice(&0u32.to_ne_bytes()); // idiag_if
        m.extend_from_slice(&[0xff; 8]); // cookie
        m.extend_from_slice(&0u32.to_ne_bytes()); // expires
        m.extend_from_slice(&1u32.to_ne_bytes()); // rqueue: the FIN counts
        m.extend_from_slice(&0u32.to_ne_bytes()); // wqueue
        m.extend_from_slice(&33u32.to_ne_bytes()); // uid
        m.extend_from_slice(&5555u32.to_ne_bytes()); // inode
        m
    }

    /// TIME_WAIT as inet_twsk_diag_fill writes it: timer 3, no queues, uid 0, inode 0.
    fn ipv4_time_wait() -> Vec<u8> {
        let mut m = vec![2, 6, 3, 0, 0x9c, 0x40, 0x0c, 0xea]; // AF_INET, TIME_WAIT, 40000 -> 3306
        m.extend_from_slice(&[127, 0, 0, 1]);
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[127, 0, 0, 2]);
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[0; 4 + 8]); // if, cookie
        m.extend_from_slice(&59_000u32.to_ne_bytes()); // time left
        m.extend_from_slice(&[0; 16]); // rqueue, wqueue, uid, inode
        m
    }

    fn collect(datagram: &[u8], seq: u32) -> (Result<Progress, DecodeError>, Vec<Record>) {
        let mut records = Vec::new();
        let result = decode_datagram(datagram, seq, &mut |payload: &[u8], offset| {
            records.push(decode_inet_diag_msg(payload, offset)?);
            Ok(())
        });
        (result, records)
    }

    #[test]
    fn decodes_ipv4_inet_diag_msg() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 7, &ipv4_established());
        let (result, records) = collect(&datagram, 7);
        assert_eq!(result, Ok(Progress::More));
        assert_eq!(
            records,
            vec![Record {
                family: Family::Ipv4,
                state: TcpState::Established,
                local: "10.1.2.3:8080".parse().unwrap(),
                remote: "10.9.8.7:51000".parse().unwrap(),
                recv_queue: 46,
                send_queue: 3,
                uid: 1000,
                inode: 987_654,
                cookie: 0x1_0000_1234,
            }]
        );
    }

    #[test]
    fn decodes_ipv6_inet_diag_msg() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &ipv6_close_wait());
        let (result, records) = collect(&datagram, 1);
        assert_eq!(result, Ok(Progress::More));
        assert_eq!(records.len(), 1);
        let r = records[0];
        assert_eq!(r.family, Family::Ipv6);
        assert_eq!(r.state, TcpState::CloseWait);
        assert_eq!(r.local, "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(r.remote, "[2001:db8::2]:40000".parse().unwrap());
        assert_eq!(
            (r.recv_queue, r.send_queue, r.uid, r.inode),
            (1, 0, 33, 5555)
        );
        assert_eq!(r.cookie, u64::MAX);
    }

    #[test]
    fn decodes_time_wait_reply_without_owner() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &ipv4_time_wait());
        let (_, records) = collect(&datagram, 1);
        assert_eq!(records[0].state, TcpState::TimeWait);
        assert_eq!(records[0].inode, 0);
        assert_eq!(records[0].remote, "127.0.0.2:3306".parse().unwrap());
    }

    #[test]
    fn several_messages_then_done() {
        let mut datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 3, &ipv4_established());
        datagram.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 2, 3, &ipv4_time_wait()));
        datagram.extend(nlmsg(NLMSG_DONE, 2, 3, &0i32.to_ne_bytes()));
        let (result, records) = collect(&datagram, 3);
        assert_eq!(result, Ok(Progress::Done));
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn attributes_after_the_header_are_skipped() {
        let mut payload = ipv4_established();
        payload.extend_from_slice(&[8, 0, 8, 0, 1, 0, 0, 0]); // one NLA (INET_DIAG_SHUTDOWN)
        let mut datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 3, &payload);
        datagram.extend(nlmsg(NLMSG_DONE, 2, 3, &0i32.to_ne_bytes()));
        let (result, records) = collect(&datagram, 3);
        assert_eq!(result, Ok(Progress::Done));
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn reply_shorter_than_inet_diag_msg_is_an_error() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &ipv4_established()[..40]);
        let (result, _) = collect(&datagram, 1);
        assert_eq!(
            result.unwrap_err().to_string(),
            "inet_diag reply at offset 0 is 40 bytes, shorter than inet_diag_msg (72 bytes)"
        );
    }

    #[test]
    fn unknown_state_is_counted_not_fatal() {
        let mut payload = ipv4_established();
        payload[1] = 42;
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &payload);
        let (result, records) = collect(&datagram, 1);
        assert_eq!(result, Ok(Progress::More));
        assert_eq!(records[0].state, TcpState::Unknown);
    }

    #[test]
    fn unknown_family_is_malformed() {
        let mut payload = ipv4_established();
        payload[0] = 1; // AF_UNIX
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &payload);
        let (result, _) = collect(&datagram, 1);
        assert!(matches!(
            result,
            Err(DecodeError::Malformed {
                kind: "inet_diag",
                offset: 0,
                ..
            })
        ));
    }

    /// The crate's parse of the same payload, as the decoder did before reading fixed
    /// offsets: the reference the fixed offsets are checked against.
    fn decode_with_crate(payload: &[u8]) -> Record {
        use netlink_packet_core::Parseable;
        use netlink_packet_sock_diag::inet::InetResponseHeader;
        let header = InetResponseHeader::parse(payload).expect("the crate parses it");
        let id = &header.socket_id;
        let low = u32::from_ne_bytes(id.cookie[..4].try_into().expect("4 bytes"));
        let high = u32::from_ne_bytes(id.cookie[4..].try_into().expect("4 bytes"));
        Record {
            family: match id.source_address {
                IpAddr::V4(_) => Family::Ipv4,
                IpAddr::V6(_) => Family::Ipv6,
            },
            state: TcpState::from_kernel(header.state),
            local: SocketAddr::new(id.source_address, id.source_port),
            remote: SocketAddr::new(id.destination_address, id.destination_port),
            recv_queue: header.recv_queue,
            send_queue: header.send_queue,
            uid: header.uid,
            inode: header.inode,
            cookie: (u64::from(high) << 32) | u64::from(low),
        }
    }

    /// Every SOCK_DIAG_BY_FAMILY payload of a datagram, copied out.
    fn payloads(datagram: &[u8]) -> Vec<Vec<u8>> {
        let seq = u32::from_ne_bytes(datagram[8..12].try_into().expect("nlmsg_seq"));
        let mut out = Vec::new();
        decode_datagram(datagram, seq, &mut |payload: &[u8], _| {
            out.push(payload.to_vec());
            Ok(())
        })
        .expect("the capture frames");
        out
    }

    #[test]
    fn fixed_offsets_match_the_crate_parse_on_a_real_capture() {
        let mut compared = 0;
        for datagram in capture() {
            for payload in payloads(&datagram) {
                assert_eq!(
                    decode_inet_diag_msg(&payload, 0),
                    Ok(decode_with_crate(&payload)),
                    "payload {payload:02x?}"
                );
                compared += 1;
            }
        }
        assert_eq!(compared, 20, "every record of the capture");
    }

    #[test]
    fn a_real_capture_decodes_to_its_sockets() {
        let mut records = Vec::new();
        let mut done = 0;
        for datagram in capture() {
            let seq = u32::from_ne_bytes(datagram[8..12].try_into().expect("nlmsg_seq"));
            let decoded = decode_datagram(&datagram, seq, &mut |payload: &[u8], offset| {
                records.push(decode_inet_diag_msg(payload, offset)?);
                Ok(())
            });
            match decoded {
                Ok(Progress::Done) => done += 1,
                Ok(Progress::More) => {}
                Err(error) => panic!("capture: {error}"),
            }
        }
        assert_eq!(done, 2, "one dump per family");
        let count = |family: Family, state: TcpState| {
            records
                .iter()
                .filter(|r| r.family == family && r.state == state)
                .count()
        };
        for family in Family::ALL {
            assert_eq!(count(family, TcpState::Listen), 1);
            assert_eq!(count(family, TcpState::TimeWait), 3);
            assert_eq!(count(family, TcpState::CloseWait), 1);
            assert_eq!(count(family, TcpState::FinWait2), 1);
            // The data pair, the half-closed pair's acceptor side is CLOSE_WAIT, and the
            // connection still in the accept queue (both ends).
            assert_eq!(count(family, TcpState::Established), 4);
        }
        let listener = records
            .iter()
            .find(|r| r.family == Family::Ipv6 && r.state == TcpState::Listen)
            .expect("IPv6 listener");
        assert_eq!(listener.local, "[::1]:8080".parse().unwrap());
        assert_eq!(
            listener.recv_queue, 1,
            "one connection waits to be accepted"
        );
        let unread = records
            .iter()
            .find(|r| r.family == Family::Ipv4 && r.recv_queue == 1000)
            .expect("the server end holding 1000 unread bytes");
        assert_eq!(unread.state, TcpState::Established);
        assert_eq!(unread.local, "127.0.0.1:8080".parse().unwrap());
        assert_ne!(unread.inode, 0);
        assert!(records
            .iter()
            .filter(|r| r.state == TcpState::TimeWait)
            .all(|r| r.inode == 0 && r.cookie != 0));
    }

    /// The bytes the kernel writes for `record` (include/uapi/linux/inet_diag.h): the
    /// inverse of the decoder, for the property below.
    fn encode(record: &Record) -> Vec<u8> {
        let mut m = vec![0u8; INET_DIAG_MSG_LEN];
        m[0] = match record.family {
            Family::Ipv4 => libc::AF_INET as u8,
            Family::Ipv6 => libc::AF_INET6 as u8,
        };
        m[1] = TcpState::ALL
            .iter()
            .position(|s| *s == record.state)
            .map_or(0, |i| i as u8 + 1);
        m[4..6].copy_from_slice(&record.local.port().to_be_bytes());
        m[6..8].copy_from_slice(&record.remote.port().to_be_bytes());
        for (at, address) in [(8, record.local.ip()), (24, record.remote.ip())] {
            match address {
                IpAddr::V4(v4) => m[at..at + 4].copy_from_slice(&v4.octets()),
                IpAddr::V6(v6) => m[at..at + 16].copy_from_slice(&v6.octets()),
            }
        }
        m[44..48].copy_from_slice(&(record.cookie as u32).to_ne_bytes());
        m[48..52].copy_from_slice(&((record.cookie >> 32) as u32).to_ne_bytes());
        m[56..60].copy_from_slice(&record.recv_queue.to_ne_bytes());
        m[60..64].copy_from_slice(&record.send_queue.to_ne_bytes());
        m[64..68].copy_from_slice(&record.uid.to_ne_bytes());
        m[68..72].copy_from_slice(&record.inode.to_ne_bytes());
        m
    }

    fn arb_record() -> impl proptest::strategy::Strategy<Value = Record> {
        use proptest::prelude::*;
        let addresses = prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(a, b)| (
                Family::Ipv4,
                IpAddr::from(a),
                IpAddr::from(b)
            )),
            (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(a, b)| (
                Family::Ipv6,
                IpAddr::from(a),
                IpAddr::from(b)
            )),
        ];
        (
            addresses,
            0..TcpState::COUNT,
            any::<(u16, u16, u32, u32, u32, u32, u64)>(),
        )
            .prop_map(
                |((family, local, remote), state, (lport, rport, rq, wq, uid, inode, cookie))| {
                    Record {
                        family,
                        state: TcpState::ALL[state],
                        local: SocketAddr::new(local, lport),
                        remote: SocketAddr::new(remote, rport),
                        recv_queue: rq,
                        send_queue: wq,
                        uid,
                        inode,
                        cookie,
                    }
                },
            )
    }

    proptest::proptest! {
        /// decode(encode(x)) == x, and the crate's parse agrees on every such payload: the
        /// fixed offsets hold for any socket, not only the captured ones.
        #[test]
        fn decode_of_encode_is_the_record_and_the_crate_agrees(record in arb_record()) {
            let payload = encode(&record);
            proptest::prop_assert_eq!(decode_inet_diag_msg(&payload, 0), Ok(record));
            proptest::prop_assert_eq!(decode_with_crate(&payload), record);
        }
    }
}
