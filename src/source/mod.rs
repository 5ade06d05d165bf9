//! Kernel and userspace sources, one module each: a pure parser of what the source says and
//! a thin reader that does the I/O.

pub mod cgroup;
pub mod docker;
pub mod netns;
