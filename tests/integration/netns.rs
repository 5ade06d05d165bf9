//! Private network namespaces for tests.
//!
//! Each test runs its body on a fresh thread that calls unshare(CLONE_NEWNET) and brings
//! up `lo`: every socket the body opens, and every process it spawns (children inherit
//! the spawning thread's namespace), lives in that namespace and never on the host's
//! network. The namespace disappears when the thread and its children are gone.

use std::path::Path;
use std::process::Command;

/// Runs `body` in a new network namespace with only loopback up.
pub fn in_netns<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): the integration tests must run as root");
        let status = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("run `ip link set lo up` (iproute2)");
        assert!(status.success(), "ip link set lo up failed: {status}");
        body()
    });
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs `body` on a thread that entered the network namespace at `path` (a bind mount, or
/// `/proc/PID/ns/net` of a container's process), so that the processes and sockets it
/// makes live there; returns the namespace inode too.
pub fn in_netns_file<T: Send + 'static>(
    path: &Path,
    body: impl FnOnce() -> T + Send + 'static,
) -> (u64, T) {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open the namespace file");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        (crate::exporter::own_netns_inode(), body())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Runs a command inside the calling thread's namespace and returns its stdout.
pub fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}
