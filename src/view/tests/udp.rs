//! The UDP rows of the views: the "UDP receivers dropping" table, the `udp_drops` finding
//! and rows, and their names escaped on a terminal.

use std::sync::Arc;

use super::super::findings::{Finding, FindingKind};
use super::super::summary::Filter;
use super::super::terminal::{self, Overflow, Style};
use super::hostile::HOSTILE_COMM;
use super::{build, snapshot};
use crate::snapshot::*;

/// `snapshot(at, 10, 100)` with a statsd sink on 8125 that dropped `drops` datagrams
/// (queue 7680 of 8192 bytes) and a reader on 8126 that never dropped; `process` owns the
/// sink.
fn with_udp(at: u64, drops: u64, process: &str) -> Snapshot {
    let mut snapshot = snapshot(at, 10, 100);
    let udp = |port: u16, process: &str, queue_bytes: u64, buffer_bytes: u64| UdpSeries {
        direction: Direction::Inbound,
        port: PortLabel::Port(port),
        process: Arc::from(process),
        sockets: 1,
        queue_bytes,
        buffer_bytes,
        drops_growth: 0,
    };
    let dropped = |port: u16, process: &str, drops: u64| UdpDropSeries {
        direction: Direction::Inbound,
        port: PortLabel::Port(port),
        process: Arc::from(process),
        drops,
    };
    snapshot.namespaces[0].udp = UdpFigures {
        sockets: [2, 0],
        series: vec![
            udp(8125, process, 7680, 8192),
            udp(8126, "udp-reader", 0, 212_992),
        ],
        drops: vec![
            dropped(8125, process, drops),
            dropped(8126, "udp-reader", 0),
        ],
        sockets_scanned: 2,
        ..Default::default()
    };
    snapshot
}

#[test]
fn udp_receivers_dropping_are_a_finding_and_a_table() {
    let summary = build(
        Some(&with_udp(1000, 10, "udp-sink")),
        &with_udp(1002, 1004, "udp-sink"),
        &Filter::default(),
    );
    let udp: Vec<&Finding> = summary
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::UdpDrops)
        .collect();
    assert_eq!(udp.len(), 1);
    assert_eq!(
        udp[0].text,
        "UDP drops: udp-sink :8125 dropped 994 datagrams, queue 7680 of 8192 bytes"
    );
    let lines = terminal::tables(
        &summary,
        Style {
            width: 100,
            max_rows: 15,
            colour: false,
        },
    );
    let text = lines.join("\n");
    assert_eq!(
        text.split("\n\n")
            .find(|t| t.starts_with("UDP receivers dropping"))
            .unwrap(),
        "UDP receivers dropping (datagrams dropped; queue of buffer, bytes)\n\
         process   direction  port  dropped  growth  queue  buffer\n\
         udp-sink  inbound    8125     1004    +994   7680    8192"
    );
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["udp_drops"][0]["growth"], 994);
    assert_eq!(
        json["udp_drops"].as_array().unwrap().len(),
        1,
        "the reader never dropped"
    );

    // Quiet since the base poll: a row, no finding.
    let quiet = build(
        Some(&with_udp(1000, 1004, "udp-sink")),
        &with_udp(1002, 1004, "udp-sink"),
        &Filter::default(),
    );
    assert!(quiet
        .findings
        .iter()
        .all(|f| f.kind != FindingKind::UdpDrops));
    assert_eq!(quiet.udp_drops[0].growth, Some(0));
}

#[test]
fn udp_drop_names_reach_the_terminal_escaped() {
    let summary = build(
        Some(&with_udp(1000, 10, HOSTILE_COMM)),
        &with_udp(1002, 1004, HOSTILE_COMM),
        &Filter::default(),
    );
    let latest = with_udp(1002, 1004, HOSTILE_COMM);
    let style = Style {
        width: 200,
        max_rows: 15,
        colour: false,
    };
    let lines = terminal::page(&summary, &latest, style, Overflow::Wrap, None);
    for line in &lines {
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    assert!(
        lines.contains(
            &"also: UDP drops: \\x1b]0;PWN\\x07\\x1b[2J :8125 dropped 994 datagrams, queue 7680 of 8192 bytes"
                .to_string()
        ),
        "{lines:#?}"
    );
}

#[test]
fn udp_drop_rows_showed_a_containers_id_where_other_tables_show_its_name() {
    let in_container = |at: u64| {
        let mut snapshot = with_udp(at, 1004, "udp-sink");
        let mut container = snapshot.namespaces[0].clone();
        container.netns = Arc::from("3f2a1b4c5d6e");
        container.full = false;
        snapshot.namespaces.push(container);
        snapshot.netns_info.push(NetnsInfo {
            netns: Arc::from("3f2a1b4c5d6e"),
            container_name: "statsd".into(),
            ..Default::default()
        });
        snapshot
    };
    let summary = build(
        Some(&in_container(1000)),
        &in_container(1002),
        &Filter::default(),
    );
    let names: Vec<(&str, &str)> = summary
        .udp_drops
        .iter()
        .map(|r| (r.netns.as_str(), r.netns_name.as_str()))
        .collect();
    // Equal drops: by label.
    assert_eq!(names, [("3f2a1b4c5d6e", "statsd"), ("host", "host")]);
    let lines = terminal::tables(
        &summary,
        Style {
            width: 100,
            max_rows: 15,
            colour: false,
        },
    );
    let text = lines.join("\n");
    assert_eq!(
        text.split("\n\n")
            .find(|t| t.starts_with("UDP receivers dropping"))
            .unwrap(),
        "UDP receivers dropping (datagrams dropped; queue of buffer, bytes)\n\
         netns   process   direction  port  dropped  growth  queue  buffer\n\
         statsd  udp-sink  inbound    8125     1004      +0   7680    8192\n\
         host    udp-sink  inbound    8125     1004      +0   7680    8192"
    );
}
