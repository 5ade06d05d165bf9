//! Private network namespaces with their own TCP hash table.
//!
//! A namespace created while `net.ipv4.tcp_child_ehash_entries` is set in its parent gets
//! an established hash of its own (net/ipv4/tcp_ipv4.c, tcp_set_hashinfo), so a dump walks
//! only this namespace's sockets and buckets, whatever the host holds. [`EhashGuard`] sets
//! the host value and restores it when dropped; [`in_netns`] runs a body on a thread that
//! has entered a new namespace (children spawned from that thread live in it too).

use std::process::Command;

const CHILD_EHASH: &str = "/proc/sys/net/ipv4/tcp_child_ehash_entries";

/// Restores the host's tcp_child_ehash_entries when dropped.
pub struct EhashGuard {
    old: String,
}

impl EhashGuard {
    /// Sets tcp_child_ehash_entries in the calling thread's (host) namespace.
    pub fn set(entries: usize) -> EhashGuard {
        let old = std::fs::read_to_string(CHILD_EHASH)
            .unwrap_or_else(|e| panic!("read {CHILD_EHASH}: {e} (kernel 6.1 or later needed)"));
        write(CHILD_EHASH, &entries.to_string());
        EhashGuard {
            old: old.trim().to_string(),
        }
    }
}

impl Drop for EhashGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(CHILD_EHASH, &self.old);
    }
}

/// The hash size for `sockets`: the next power of two, at least 4096.
pub fn ehash_entries(sockets: usize) -> usize {
    sockets.next_power_of_two().max(4096)
}

fn write(path: &str, value: &str) {
    std::fs::write(path, value).unwrap_or_else(|e| panic!("write {value} to {path}: {e}"));
}

/// Writes a sysctl of the calling thread's network namespace (`net.ipv4.x` style key).
pub fn sysctl(key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    write(&path, value);
}

/// Runs `body` on a new thread inside a new network namespace with only `lo` up, tuned
/// for bulk loopback loads. The namespace goes away with the thread and its children.
///
/// The namespace gets a socket hash of `ehash_entries` buckets: the host's
/// tcp_child_ehash_entries is set for the moment of its creation only, so namespaces that
/// other programs create meanwhile keep the host's setting.
pub fn in_netns<T: Send + 'static>(
    ehash_entries: usize,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let guard = EhashGuard::set(ehash_entries);
    let (created, wait_created) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let result = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET);
            let _ = created.send(());
            result.expect("unshare(CLONE_NEWNET): the benchmark must run as root");
            let status = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .expect("run `ip link set lo up` (iproute2)");
            assert!(status.success(), "ip link set lo up failed: {status}");
            // TIME_WAIT is the bulk of the load: no bucket limit (a child hash defaults
            // it to half the hash size), no reuse by ephemeral connects.
            sysctl("net.ipv4.tcp_max_tw_buckets", "8388608");
            sysctl("net.ipv4.tcp_tw_reuse", "0");
            // Holders connect from ephemeral ports 40000-65535; the TIME_WAIT generators
            // bind explicit ports below 40000, listeners sit below 5000.
            sysctl("net.ipv4.ip_local_port_range", "40000 65535");
            sysctl("net.core.somaxconn", "8192");
            sysctl("net.ipv4.tcp_max_syn_backlog", "8192");
            body()
        })
        .expect("spawn netns thread");
    let _ = wait_created.recv();
    drop(guard);
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
