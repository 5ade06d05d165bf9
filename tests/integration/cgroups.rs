//! Cgroups named like containers' (`system.slice/docker-<id>.scope`, kubepods slices), for
//! the namespace tests and for benches/netns.rs, which includes this file. They are made
//! under the cgroup v2 root on a unified host, else in the v1 `pids` hierarchy (where a
//! process's line names the container like any v1 line), and removed, children first,
//! when the [`Cgroups`] drops: stop the processes in them before that.

use std::path::{Path, PathBuf};

/// The cgroup directories one test or bench created.
#[derive(Default)]
pub struct Cgroups {
    /// Parents before children.
    created: Vec<PathBuf>,
}

impl Cgroups {
    /// Where container cgroups go on this machine.
    pub fn base() -> PathBuf {
        const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
        let statfs = rustix::fs::statfs("/sys/fs/cgroup").expect("statfs /sys/fs/cgroup");
        if statfs.f_type as i64 == CGROUP2_SUPER_MAGIC {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            PathBuf::from("/sys/fs/cgroup/pids")
        }
    }

    /// Creates `relative` under [`Cgroups::base`] (and the missing levels above it) and
    /// moves process `pid` into it.
    pub fn move_into(&mut self, relative: &Path, pid: u32) {
        let cgroup = Cgroups::base().join(relative);
        let missing: Vec<PathBuf> = cgroup
            .ancestors()
            .take_while(|dir| !dir.exists())
            .map(Path::to_path_buf)
            .collect();
        for dir in missing.into_iter().rev() {
            std::fs::create_dir(&dir)
                .unwrap_or_else(|e| panic!("create cgroup {}: {e}", dir.display()));
            self.created.push(dir);
        }
        std::fs::write(cgroup.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", cgroup.display()));
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            if let Err(e) = std::fs::remove_dir(dir) {
                eprintln!("cleanup: rmdir {}: {e}", dir.display());
            }
        }
    }
}

/// 64 random hex digits (two kernel UUIDs), so that runs never share a container id.
pub fn random_container_id() -> String {
    (0..2)
        .map(|_| {
            std::fs::read_to_string("/proc/sys/kernel/random/uuid")
                .expect("read a random uuid")
                .trim()
                .replace('-', "")
        })
        .collect()
}
