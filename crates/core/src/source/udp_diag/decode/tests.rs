use super::*;
use crate::source::sock_diag::frame::testing::{attribute, capture_datagrams, nlmsg};
use crate::source::sock_diag::frame::{decode_datagram, Progress};
use netlink_packet_core::NLMSG_DONE;
use netlink_packet_sock_diag::constants::SOCK_DIAG_BY_FAMILY;

/// The capture made by testdata/capture.py; its `ss -uamnOH` is testdata/loopback-udp.ss.txt.
fn capture() -> Vec<Vec<u8>> {
    capture_datagrams(include_bytes!("../testdata/loopback-udp.bin"))
}

/// An inet_diag_msg for 127.0.0.1:8125, unconnected (TCP_CLOSE), inode 4242, cookie
/// 0x2_0000_0011.
fn header() -> Vec<u8> {
    let mut m = vec![2, 7, 0, 0, 0x1f, 0xbd, 0, 0]; // AF_INET, TCP_CLOSE, 8125, 0
    m.extend_from_slice(&[127, 0, 0, 1]);
    m.extend_from_slice(&[0; 12]);
    m.extend_from_slice(&[0; 16]); // no remote
    m.extend_from_slice(&0u32.to_ne_bytes()); // idiag_if
    m.extend_from_slice(&0x11u32.to_ne_bytes()); // cookie low
    m.extend_from_slice(&0x2u32.to_ne_bytes()); // cookie high
    m.extend_from_slice(&0u32.to_ne_bytes()); // expires
    m.extend_from_slice(&7488u32.to_ne_bytes()); // rqueue
    m.extend_from_slice(&0u32.to_ne_bytes()); // wqueue
    m.extend_from_slice(&1000u32.to_ne_bytes()); // uid
    m.extend_from_slice(&4242u32.to_ne_bytes()); // inode
    assert_eq!(m.len(), INET_DIAG_MSG_LEN);
    m
}

/// SK_MEMINFO_VARS words: r, rb, t, tb, f, w, o, bl, d.
fn meminfo(words: &[u32]) -> Vec<u8> {
    let data: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    attribute(INET_DIAG_SKMEMINFO, &data)
}

fn sink() -> Vec<u8> {
    let mut m = header();
    m.extend(meminfo(&[7488, 8192, 0, 212_992, 704, 0, 0, 0, 991]));
    m
}

fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
    decode_udp_diag_msg(payload, 0)
}

fn reason(result: Result<Record, DecodeError>) -> String {
    result.expect_err("malformed").to_string()
}

#[test]
fn decodes_header_and_skmeminfo() {
    assert_eq!(
        decode(&sink()),
        Ok(Record {
            family: Family::Ipv4,
            connected: false,
            local: "127.0.0.1:8125".parse().unwrap(),
            remote: "0.0.0.0:0".parse().unwrap(),
            uid: 1000,
            inode: 4242,
            cookie: 0x2_0000_0011,
            queue_bytes: 7488,
            buffer_bytes: 8192,
            drops: 991,
        })
    );
}

#[test]
fn connected_socket_is_established() {
    let mut payload = sink();
    payload[1] = TCP_ESTABLISHED;
    assert!(decode(&payload).unwrap().connected);
}

#[test]
fn other_attributes_are_skipped_around_skmeminfo() {
    let mut payload = header();
    payload.extend(attribute(8, &[1])); // INET_DIAG_SHUTDOWN, 1 byte of data, padded
    payload.extend(meminfo(&[1, 2, 3, 4, 5, 6, 7, 8, 9]));
    payload.extend(attribute(15, &[0; 4])); // INET_DIAG_MARK
    let record = decode(&payload).unwrap();
    assert_eq!(
        (record.queue_bytes, record.buffer_bytes, record.drops),
        (1, 2, 9)
    );
}

#[test]
fn a_longer_skmeminfo_from_a_later_kernel_is_read_by_its_first_words() {
    let mut payload = header();
    payload.extend(meminfo(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
    assert_eq!(decode(&payload).unwrap().drops, 9);
}

#[test]
fn missing_skmeminfo_is_an_error() {
    assert_eq!(
        reason(decode(&header())),
        "malformed udp_diag_msg at offset 0: socket 4242 (cookie 0x200000011) came without INET_DIAG_SKMEMINFO"
    );
}

#[test]
fn short_skmeminfo_is_an_error() {
    let mut payload = header();
    payload.extend(meminfo(&[1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(
        reason(decode(&payload)),
        "malformed udp_diag_msg at offset 0: INET_DIAG_SKMEMINFO has 32 bytes of data, expected at least 36"
    );
}

#[test]
fn truncated_skmeminfo_is_an_error() {
    let mut payload = sink();
    payload.truncate(payload.len() - 6);
    assert_eq!(
        reason(decode(&payload)),
        "malformed udp_diag_msg at offset 0: attribute 7 at byte 72 has length 40, 34 bytes left"
    );
}

#[test]
fn attribute_length_below_its_header_is_an_error() {
    let mut payload = header();
    payload.extend_from_slice(&[2, 0, 7, 0]);
    assert_eq!(
        reason(decode(&payload)),
        "malformed udp_diag_msg at offset 0: attribute 7 at byte 72 has length 2, 4 bytes left"
    );
}

#[test]
fn stray_bytes_after_the_attributes_are_an_error() {
    let mut payload = sink();
    payload.extend_from_slice(&[0, 0]);
    assert_eq!(
        reason(decode(&payload)),
        "malformed udp_diag_msg at offset 0: 2 stray bytes after the attributes at byte 112"
    );
}

#[test]
fn reply_shorter_than_inet_diag_msg_is_an_error() {
    assert_eq!(
        reason(decode(&sink()[..50])),
        "udp_diag reply at offset 0 is 50 bytes, shorter than udp_diag_msg (72 bytes)"
    );
}

#[test]
fn unknown_family_is_malformed() {
    let mut payload = sink();
    payload[0] = 1;
    assert_eq!(
        reason(decode(&payload)),
        "malformed udp_diag_msg at offset 0: unknown address family 1"
    );
}

#[test]
fn every_truncation_of_a_framed_reply_fails_cleanly() {
    let mut datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 3, &sink());
    datagram.extend(nlmsg(NLMSG_DONE, 2, 3, &0i32.to_ne_bytes()));
    for cut in 0..datagram.len() {
        let result = decode_datagram(&datagram[..cut], 3, &mut |payload: &[u8], offset| {
            decode_udp_diag_msg(payload, offset).map(drop)
        });
        assert!(
            result != Ok(Progress::Done),
            "cut at {cut} cannot end the dump"
        );
    }
}

/// The values of testdata/loopback-udp.ss.txt, the capture's `ss -uamnOH`:
/// (local, connected, r, rb, d).
#[test]
fn a_real_capture_decodes_to_what_ss_showed() {
    let mut records = Vec::new();
    let mut done = 0;
    for datagram in capture() {
        let seq = u32::from_ne_bytes(datagram[8..12].try_into().expect("nlmsg_seq"));
        match decode_datagram(&datagram, seq, &mut |payload: &[u8], offset| {
            records.push(decode_udp_diag_msg(payload, offset)?);
            Ok(())
        }) {
            Ok(Progress::Done) => done += 1,
            Ok(Progress::More) => {}
            Err(error) => panic!("capture: {error}"),
        }
    }
    assert_eq!(done, 2, "one dump per family");
    let mut seen: Vec<(String, bool, u32, u32, u32)> = records
        .iter()
        .filter(|r| !r.connected)
        .map(|r| {
            (
                r.local.to_string(),
                r.connected,
                r.queue_bytes,
                r.buffer_bytes,
                r.drops,
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("127.0.0.1:8125".into(), false, 7488, 8192, 991),
            ("127.0.0.1:8126".into(), false, 2496, 212_992, 0),
            ("[::1]:8125".into(), false, 7488, 8192, 991),
            ("[::1]:8126".into(), false, 2496, 212_992, 0),
        ]
    );
    let clients: Vec<&Record> = records.iter().filter(|r| r.connected).collect();
    assert_eq!(clients.len(), 2);
    for client in clients {
        assert_eq!(client.remote.port(), 8126);
        assert_eq!((client.queue_bytes, client.drops), (0, 0));
        assert_ne!(client.inode, 0);
    }
}
