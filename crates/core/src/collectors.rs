//! The optional collectors, in node_exporter's convention (`--collector.<name>`,
//! `--no-collector.<name>`, `[collectors] <name>` in the TOML): which parts of the poll
//! run, and so which families /metrics carries. TCP is the exporter's reason to exist and
//! has no toggle.
//!
//! One row of [`for_each_collector!`] defines a collector: its variant, its name (the
//! flag's, the key's and the `collector` label's), whether it is on by default, and its
//! help. The enum [`CollectorKind`], the config keys and the flags follow from that row;
//! what the collector does when off is the work its code skips (docs/architecture.md,
//! "Adding a collector toggle").

/// Hands the collector table to `$callback`, after the tokens given: `for_each_collector!(
/// m! { input })` expands to `m! { input @collectors Variant "name" default "help", ... }`.
/// The table's one definition: the enum here, the keys and flags in `config/keys.rs`.
macro_rules! for_each_collector {
    ($callback:ident ! { $($input:tt)* }) => {
        $callback! {
            $($input)*
            @collectors
            Unix "unix" true
                "UNIX sockets (unix_diag dump): the `sockdiag_unix_*` families",
            Udp "udp" true
                "UDP sockets (inet_diag for IPPROTO_UDP with SKMEMINFO): the `sockdiag_udp_sockets`, `_receive_*_bytes` and `_drops_total` families",
            Netstat "netstat" true
                "Kernel TCP and UDP counters (/proc/net/netstat, snmp, snmp6): `sockdiag_tcp_listen_overflows_total`, `sockdiag_udp_rcvbuf_errors_total` and the other counters",
            Sysctl "sysctl" true
                "TCP sysctls (/proc/sys/net): the `sockdiag_sysctl_*` families",
            ListenSampler "listen_sampler" true
                "LISTEN-only sampler between polls for queue peaks (every `listen_poll_interval`); off, a peak is the length at the poll",
        }
    };
}
pub(crate) use for_each_collector;

macro_rules! define_collectors {
    (@collectors $($variant:ident $name:literal $default:literal $help:literal,)*) => {
        /// An optional collector.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CollectorKind {
            $($variant,)*
        }

        impl CollectorKind {
            /// Every optional collector, in the table's order.
            pub const ALL: &'static [CollectorKind] = &[$(CollectorKind::$variant,)*];
            pub const COUNT: usize = CollectorKind::ALL.len();

            /// The name: `--collector.NAME`, `[collectors] NAME`, `collector="NAME"`.
            pub fn label(self) -> &'static str {
                match self {
                    $(CollectorKind::$variant => $name,)*
                }
            }

            /// On unless turned off.
            pub fn default_enabled(self) -> bool {
                match self {
                    $(CollectorKind::$variant => $default,)*
                }
            }

            /// What the collector reads and exports (no final period).
            pub fn help(self) -> &'static str {
                match self {
                    $(CollectorKind::$variant => $help,)*
                }
            }

            /// The flag that turns it on: `collector.NAME` (after `--`).
            pub fn flag(self) -> &'static str {
                match self {
                    $(CollectorKind::$variant => concat!("collector.", $name),)*
                }
            }

            /// The flag that turns it off: `no-collector.NAME` (after `--`).
            pub fn no_flag(self) -> &'static str {
                match self {
                    $(CollectorKind::$variant => concat!("no-collector.", $name),)*
                }
            }

            /// Its configuration key: `collectors.NAME`.
            pub fn key(self) -> &'static str {
                match self {
                    $(CollectorKind::$variant => concat!("collectors.", $name),)*
                }
            }
        }
    };
}

for_each_collector!(define_collectors! {});

/// Which optional collectors are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collectors([bool; CollectorKind::COUNT]);

impl Default for Collectors {
    /// Each collector's default.
    fn default() -> Collectors {
        let mut on = [false; CollectorKind::COUNT];
        for (slot, kind) in on.iter_mut().zip(CollectorKind::ALL) {
            *slot = kind.default_enabled();
        }
        Collectors(on)
    }
}

impl Collectors {
    pub fn enabled(&self, kind: CollectorKind) -> bool {
        self.0[kind as usize]
    }

    pub fn set(&mut self, kind: CollectorKind, on: bool) {
        self.0[kind as usize] = on;
    }

    /// The same set with `kind` turned `on` or off.
    pub fn with(mut self, kind: CollectorKind, on: bool) -> Collectors {
        self.set(kind, on);
        self
    }

    /// Every collector with whether it is on, in the table's order.
    pub fn iter(&self) -> impl Iterator<Item = (CollectorKind, bool)> + '_ {
        CollectorKind::ALL
            .iter()
            .map(move |&kind| (kind, self.enabled(kind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_flags_and_keys_follow_the_row() {
        let kind = CollectorKind::ListenSampler;
        assert_eq!(
            (kind.label(), kind.flag(), kind.no_flag(), kind.key()),
            (
                "listen_sampler",
                "collector.listen_sampler",
                "no-collector.listen_sampler",
                "collectors.listen_sampler"
            )
        );
        assert_eq!(
            CollectorKind::ALL
                .iter()
                .map(|k| k.label())
                .collect::<Vec<_>>(),
            ["unix", "udp", "netstat", "sysctl", "listen_sampler"]
        );
    }

    #[test]
    fn a_set_turns_one_collector_off_and_keeps_the_others() {
        let set = Collectors::default().with(CollectorKind::Sysctl, false);
        let off: Vec<&str> = set
            .iter()
            .filter(|(_, on)| !on)
            .map(|(kind, _)| kind.label())
            .collect();
        assert_eq!(off, ["sysctl"]);
    }
}
