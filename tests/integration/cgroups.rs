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

/// A tag unique to this process and call, for names of namespaces and directories.
pub fn unique_tag() -> String {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Writes `<data_root>/containers/<id>/config.v2.json` naming container `id` `name`, as
/// Docker does.
pub fn write_docker_config(data_root: &Path, id: &str, name: &str) {
    let config = data_root.join("containers").join(id).join("config.v2.json");
    std::fs::create_dir_all(config.parent().unwrap()).expect("create docker data root");
    std::fs::write(
        &config,
        format!(r#"{{"ID":"{id}","Name":"/{name}","Driver":"overlay2"}}"#),
    )
    .expect("write config.v2.json");
}
