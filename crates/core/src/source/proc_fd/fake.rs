//! A fake /proc for tests: `PID/{comm,stat,fd/N -> target}` in a temporary directory,
//! removed on drop.

use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// A fake /proc: PID/{comm,stat,fd/N -> target}.
pub struct FakeProc(pub PathBuf);

impl FakeProc {
    pub fn new(tag: &str) -> FakeProc {
        let root = std::env::temp_dir().join(format!("sockdiag-proc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        FakeProc(root)
    }
    pub fn process(&self, pid: u32, comm: &str, start: u64) {
        let dir = self.0.join(pid.to_string());
        std::fs::create_dir_all(dir.join("fd")).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(
            dir.join("stat"),
            format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0"),
        )
        .unwrap();
    }
    pub fn fd(&self, pid: u32, fd: u32, target: &str) {
        let path = self.0.join(pid.to_string()).join("fd").join(fd.to_string());
        let _ = std::fs::remove_file(&path);
        symlink(target, path).unwrap();
    }
    pub fn close(&self, pid: u32, fd: u32) {
        std::fs::remove_file(self.0.join(pid.to_string()).join("fd").join(fd.to_string())).unwrap();
    }
    /// `thread-self` -> the real `/proc/thread-self`, so that discovery and entering see
    /// the calling thread's own network namespace through this root.
    pub fn with_thread_self(self) -> FakeProc {
        symlink("/proc/thread-self", self.0.join("thread-self")).unwrap();
        self
    }
    pub fn exit(&self, pid: u32) {
        std::fs::remove_dir_all(self.0.join(pid.to_string())).unwrap();
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
