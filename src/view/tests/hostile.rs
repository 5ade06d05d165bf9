//! Hostile names on a terminal and widths: every name escaped, every line fitted.

use std::sync::Arc;

use super::*;

/// The probe's names: a comm that sets the title and clears the screen, an abstract UNIX
/// name that starts a colour and forges a row, a namespace name with a C1 CSI and a
/// backslash written to pass for an escape.
pub(super) const HOSTILE_COMM: &str = "\u{1b}]0;PWN\u{7}\u{1b}[2J";
const HOSTILE_PATH: &str = "@sock\u{1b}[31m\nphp-fpm  /run/php/fpm.sock";
const HOSTILE_NETNS: &str = "evil\u{9b}2J\\x1b";

/// `snapshot(at, ..)` plus a second namespace named [`HOSTILE_NETNS`] whose php-fpm is
/// named [`HOSTILE_COMM`] and listens on [`HOSTILE_PATH`].
fn hostile(at: u64) -> Snapshot {
    let mut snapshot = snapshot(at, 34, 0);
    let mut evil = snapshot.namespaces[0].clone();
    evil.netns = Arc::from(HOSTILE_NETNS);
    evil.unix.listeners = vec![unix_listener(HOSTILE_PATH, HOSTILE_COMM, 65, 64, 65)];
    for series in &mut evil.tcp.breakdown.ports {
        if &*series.process == "php-fpm" {
            series.process = Arc::from(HOSTILE_COMM);
        }
    }
    snapshot.namespaces.push(evil);
    snapshot
}

#[test]
fn report_printed_control_bytes_from_a_comm_raw() {
    let summary = build(Some(&hostile(1000)), &hostile(1002), &Filter::default());
    let latest = hostile(1002);
    let style = Style {
        width: 100,
        max_rows: 15,
        colour: false,
    };
    for overflow in [Overflow::Wrap, Overflow::Cut] {
        let lines = terminal::page(&summary, &latest, style, overflow, Some(HOSTILE_COMM));
        for line in &lines {
            assert!(
                !line.chars().any(char::is_control),
                "{overflow:?}: a control character reached the terminal: {line:?}"
            );
        }
        assert!(lines.contains(&"\\x1b]0;PWN\\x07\\x1b[2J".to_string()));
    }
    let lines = terminal::page(&summary, &latest, style, Overflow::Wrap, None);
    let text = lines.join("\n");
    let at = lines
        .iter()
        .position(|l| l.starts_with("also: UNIX accept queue full: \\x1b"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        lines[at..at + 2],
        [
            "also: UNIX accept queue full: \\x1b]0;PWN\\x07\\x1b[2J @sock\\x1b[31m\\x0aphp-fpm  \
             /run/php/fpm.sock, 65",
            "  waiting of 64 in netns evil\\x9b2J\\\\x1b",
        ],
        "a finding wrapped, its names escaped"
    );
    let table = |title: &str| -> Vec<&str> {
        text.split("\n\n")
            .find(|t| t.starts_with(title))
            .unwrap()
            .lines()
            .collect()
    };
    assert_eq!(
        table("UNIX listeners")[1..3],
        [
            "netns            process                path                                queue  \
             limit  fill  peak",
            "evil\\x9b2J\\\\x1b  \\x1b]0;PWN\\x07\\x1b[2J  @sock\\x1b[3…fpm  /run/php/fpm.sock     \
             65     64  102%    65",
        ],
        "cut in the middle after escaping: no escape is half a byte long"
    );
    assert_eq!(
        table("CLOSE_WAIT: who holds them")[2],
        "evil\\x9b2J\\\\x1b  \\x1b]0;PWN\\x07\\x1b[2J  inbound    9000       34      +0   +0/s   \
         340 s      0"
    );
    // JSON keeps the true value.
    let json = serde_json::to_value(&summary).unwrap();
    let row = json["unix_listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["netns"] == HOSTILE_NETNS)
        .unwrap();
    assert_eq!(
        (&row["process"], &row["path"]),
        (&HOSTILE_COMM.into(), &HOSTILE_PATH.into())
    );
}

/// Docker's containerd shim socket beside `ns-<inode>` labels.
const CONTAINERD_SHIM: &str =
    "/run/containerd/s/9f3c1e0b7a5d42c8e61f0a9b3d7c5e2f1a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d";

#[test]
fn report_tables_overflowed_100_columns_with_ns_labels_beside_long_unix_paths() {
    let with_shim = |at: u64| {
        let mut snapshot = snapshot(at, 34, 160);
        snapshot.sockets_scanned = 1234;
        let mut shim = snapshot.namespaces[0].clone();
        shim.netns = Arc::from("ns-4026532201");
        shim.unix.listeners = vec![unix_listener(CONTAINERD_SHIM, "containerd-shim", 5, 4, 5)];
        snapshot.namespaces.push(shim);
        snapshot.netns_info.push(NetnsInfo {
            netns: Arc::from("ns-4026532201"),
            ..Default::default()
        });
        snapshot
    };
    let summary = build(Some(&with_shim(1000)), &with_shim(1002), &Filter::default());
    for width in [100, 80] {
        let style = Style {
            width,
            max_rows: 15,
            colour: false,
        };
        let lines = terminal::page(&summary, &with_shim(1002), style, Overflow::Wrap, None);
        for line in &lines {
            assert!(
                line.chars().count() <= width,
                "wider than {width}: {line:?}"
            );
        }
        if width == 100 {
            assert!(lines.contains(
                &"sockdiag_exporter report: 1234 sockets in 2 netns, growth over 2.0 s, \
                  1970-01-01T00:16:42Z"
                    .to_string()
            ));
            let unix = lines.join("\n");
            let unix = unix
                .split("\n\n")
                .find(|t| t.starts_with("UNIX listeners"))
                .unwrap();
            assert_eq!(
                unix.lines().nth(2),
                Some(
                    "ns-4026532201  containerd-shim  /run/containe…6c8d0e2f4a6b8c0d2e4f6a8b0c2d      \
                     5      4  125%     5"
                ),
                "the path cut in the middle, its tail kept:\n{unix}"
            );
        }
    }
}
