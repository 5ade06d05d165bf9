//! The kernel sources, one module each: a thin reader that does the I/O and a pure parser
//! that turns what it read into typed records or values.
//!
//! - [`inet_diag`]: TCP sockets through netlink sock_diag (NETLINK_SOCK_DIAG, inet_diag);
//! - [`udp_diag`]: UDP sockets and their drops through the same socket (inet_diag, SKMEMINFO);
//! - [`proc_fd`]: socket owners from `/proc/PID/fd` links, `comm` and `stat`;
//! - [`proc_net_snmp`]: MIB counters from `/proc/thread-self/net/{netstat,snmp,snmp6}`;
//! - [`proc_sys_net`]: sysctls from `/proc/sys/net`;
//! - [`kernel_value`]: the row type of those two modules' tables (each counter and sysctl
//!   described once), and [`proc_file`]: the bounded read they share;
//! - [`netns`]: which network namespaces exist, and entering them (`/proc/*/ns/net`,
//!   `/run/netns`, `/run/docker/netns`, setns);
//! - [`cgroup`]: the container and pod of a process (`/proc/PID/cgroup`);
//! - [`docker`]: a container's name (`config.v2.json` under Docker's data root);
//! - [`runtime`]: container and pod names from containerd's, CRI-O's and Podman's state;
//! - [`state_cache`]: those runtimes' state files remembered between polls by identity;
//! - [`userns`]: whether root or a user made a namespace (`/proc/PID/ns/user`, `uid_map`).
//!
//! [`bounded`] is the one way any of them reads a file: a size limit and a regular-file
//! check (and, under a runtime's data root, an open that cannot leave it).
//! [`label_cap`] holds the length caps of the label values they take from outside.
//!
//! Every source that reads a per-namespace file does so from the calling thread, so that
//! a thread that entered a network namespace reads that namespace.

pub mod bounded;
pub mod cgroup;
pub mod docker;
pub mod inet_diag;
pub mod kernel_value;
pub mod label_cap;
pub mod netns;
pub mod proc_fd;
pub mod proc_file;
pub mod proc_net_snmp;
pub mod proc_sys_net;
pub mod runtime;
pub mod sock_diag;
pub mod state_cache;
pub mod udp_diag;
pub mod unix_diag;
pub mod userns;
