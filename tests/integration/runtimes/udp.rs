//! A UDP receiver inside a real Docker container (issue 26): SO_RCVBUF 4096, never reading,
//! flooded on the container's own loopback. The exporter, sampling every namespace,
//! shows its drops, queue and buffer under the container's `netns` label exactly as
//! `ss -uam` reads them in the container's namespace, after a flood before it started and
//! after one while it runs.

use std::path::{Path, PathBuf};

use super::containers::{Container, Program, UDP_SINK, UDP_SINK_ADDRESS};
use super::{exporter, info, rig, tag};
use crate::netns::{in_netns, in_netns_file};
use crate::udp::{figures, flood, ss_of, Skmem};

/// Sends `n` datagrams to the receiver from inside the container's namespace (its
/// loopback), then reads `ss -uam` there: the receiver's figures.
fn flood_in(netns: &Path, n: usize) -> Skmem {
    in_netns_file(netns, move || {
        flood(UDP_SINK_ADDRESS.parse().unwrap(), n, None);
        ss_of(UDP_SINK_ADDRESS)
    })
    .1
}

pub fn docker_udp_receiver_drops_equal_ss_in_the_container() {
    rig::ensure();
    let name = format!("sockdiag-it-udp-{}", tag());
    let container = Container::docker(&name, Program::UdpSink, &[]);
    let netns = PathBuf::from(format!("/proc/{}/ns/net", container.pid));
    let inode = container.netns_inode();
    let first = flood_in(&netns, 1000);
    assert!(first.d > 900, "the sink drops most of the flood: {first:?}");
    in_netns(move || {
        let mut exporter = exporter(&[]);
        let all = exporter.scrape_all();
        let info = info(&all, inode).expect("info of the Docker container's namespace");
        assert_eq!(info["netns"], container.id[..12]);
        assert_eq!(info["container_name"], name);
        assert_eq!(info["runtime"], "docker");
        let scrape = all.only_netns(inode);
        assert_eq!(figures(&scrape, 8125, UDP_SINK), first);
        // The flood's sender is closed: the receiver is the namespace's only UDP socket.
        assert_eq!(
            scrape.lines("sockdiag_udp_drops_total"),
            vec![format!(
                "{{direction=\"inbound\",port=\"8125\",process=\"{UDP_SINK}\"}} {}",
                first.d
            )]
        );
        assert_eq!(
            scrape.lines("sockdiag_udp_sockets"),
            vec!["{family=\"ipv4\"} 1"]
        );

        // 1,000 more while the exporter runs.
        let second = flood_in(&netns, 1000);
        assert!(second.d >= first.d + 900, "{second:?} after {first:?}");
        exporter.wait_for_fresh_poll();
        let scrape = exporter.scrape_all().only_netns(inode);
        assert_eq!(figures(&scrape, 8125, UDP_SINK), second);
        drop(container);
    });
}
