//! The kernel values the exporter reads per network namespace, MIB counters and sysctls,
//! each described once: a row of a table (where the kernel keeps it, and the metric it
//! becomes) that the reader parses by, the snapshot stores by and the metrics encoder
//! writes by.
//!
//! A table is a `kernel_values!` invocation: it defines the struct that holds one
//! namespace's values, a field per row, and the struct's `TABLE` of [`KernelValue`] rows in
//! field order. [`super::proc_net_snmp::NetCounters`] and
//! [`super::proc_sys_net::NetSysctls`] are the two tables.

use std::fmt;

use crate::label::label_enum;

label_enum! {
    /// The file a kernel value is read from, and how that file is laid out; the `source`
    /// label of `sockdiag_kernel_values_missing`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum KernelSource {
        /// `/proc/thread-self/net/netstat`: a header line and a value line per section.
        Netstat => "netstat",
        /// `/proc/thread-self/net/snmp`: laid out as `netstat`.
        Snmp => "snmp",
        /// `/proc/thread-self/net/snmp6`: one `<section><name> <value>` line per value.
        Snmp6 => "snmp6",
        /// `/proc/sys/net/<section>/<name>`: one file per value.
        Sysctl => "sysctl",
    }
}

impl KernelSource {
    /// The file's name under `/proc/thread-self/net`, which is also its label; `None` for
    /// sysctls, a file each.
    pub fn net_file(self) -> Option<&'static str> {
        (self != KernelSource::Sysctl).then(|| self.label())
    }
}

/// How the metrics encoder writes a row's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A kernel counter: only grows (until the namespace goes); written with `_total`.
    Counter,
    /// A setting or level.
    Gauge,
}

/// One kernel value, where the kernel keeps it and the metric family it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelValue {
    pub source: KernelSource,
    /// The section (`TcpExt`, `Tcp`, `Udp6`), or a sysctl's directory (`ipv4`, `core`).
    pub section: &'static str,
    /// The kernel's name within the section (`ListenOverflows`), or the sysctl's file name.
    pub name: &'static str,
    /// The family name, without the `_total` the encoder adds to counters.
    pub metric: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
}

impl fmt::Display for KernelValue {
    /// How logs and missing-value lists name it: `TcpExt.ListenOverflows`,
    /// `ipv4/tcp_fin_timeout`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = match self.source {
            KernelSource::Sysctl => '/',
            _ => '.',
        };
        write!(f, "{}{separator}{}", self.section, self.name)
    }
}

/// Defines a table of kernel values: a struct with an `Option<u64>` field per row (`None`
/// when the kernel does not have the value, or its file could not be read), and on it:
/// - `TABLE`, the rows in field order: the order of exported families;
/// - `values()` and `slots_mut()`, the fields in that order, for readers and encoders;
/// - `reads(source)`, whether a row is in that source;
/// - `missing_rows()`, the rows whose value is `None`.
///
/// A row reads `field: Source "Section" "Name", Kind "metric_name", "HELP text";`. Fields
/// in an `extra { ... }` block after the struct's are pasted into it as they are: values
/// with a structure of their own, which their reader parses and counts by hand.
macro_rules! kernel_values {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $source:ident $section:literal $kernel_name:literal,
                    $kind:ident $metric:literal,
                    $help:literal;
            )+
        }
        $(extra { $($extra:tt)* })?
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[doc = $doc])* pub $field: Option<u64>,)+
            $($($extra)*)?
        }

        impl $name {
            /// Number of rows.
            pub const LEN: usize = [$(stringify!($field)),+].len();

            /// One row per field, in field order.
            pub const TABLE: [$crate::source::kernel_value::KernelValue; $name::LEN] = [$(
                $crate::source::kernel_value::KernelValue {
                    source: $crate::source::kernel_value::KernelSource::$source,
                    section: $section,
                    name: $kernel_name,
                    metric: $metric,
                    help: $help,
                    kind: $crate::source::kernel_value::MetricKind::$kind,
                },
            )+];

            /// The values, in the order of `TABLE`.
            pub fn values(&self) -> [Option<u64>; $name::LEN] {
                [$(self.$field),+]
            }

            /// The fields, in the order of `TABLE`.
            pub fn slots_mut(&mut self) -> [&mut Option<u64>; $name::LEN] {
                [$(&mut self.$field),+]
            }

            /// True when a row of the table is in `source`'s file.
            pub fn reads(source: $crate::source::kernel_value::KernelSource) -> bool {
                $name::TABLE.iter().any(|row| row.source == source)
            }

            /// The rows whose value is `None`.
            pub fn missing_rows(
                &self,
            ) -> impl Iterator<Item = &'static $crate::source::kernel_value::KernelValue> {
                let table: &'static [$crate::source::kernel_value::KernelValue] = &$name::TABLE;
                table
                    .iter()
                    .zip(self.values())
                    .filter_map(|(row, value)| value.is_none().then_some(row))
            }
        }
    };
}
pub(crate) use kernel_values;

#[cfg(test)]
mod tests {
    use super::*;

    kernel_values! {
        #[derive(Debug, Default, PartialEq, Eq)]
        pub struct Sample {
            /// A counter.
            drops: Netstat "TcpExt" "ListenDrops", Counter "sample_drops", "Drops.";
            fin_timeout: Sysctl "ipv4" "tcp_fin_timeout", Gauge "sample_fin", "Seconds.";
        }
        extra {
            pub other: Option<bool>,
        }
    }

    #[test]
    fn the_table_follows_the_fields() {
        assert_eq!(Sample::LEN, 2);
        assert_eq!(
            Sample::TABLE[1],
            KernelValue {
                source: KernelSource::Sysctl,
                section: "ipv4",
                name: "tcp_fin_timeout",
                metric: "sample_fin",
                help: "Seconds.",
                kind: MetricKind::Gauge,
            }
        );
        let mut sample = Sample::default();
        *sample.slots_mut()[1] = Some(60);
        assert_eq!(
            sample,
            Sample {
                drops: None,
                fin_timeout: Some(60),
                other: None,
            }
        );
        assert_eq!(sample.values(), [None, Some(60)]);
        assert!(Sample::reads(KernelSource::Netstat) && Sample::reads(KernelSource::Sysctl));
        assert!(!Sample::reads(KernelSource::Snmp));
        let missing: Vec<String> = sample.missing_rows().map(|row| row.to_string()).collect();
        assert_eq!(missing, ["TcpExt.ListenDrops"]);
    }

    #[test]
    fn sysctls_are_named_by_path_and_counters_by_section() {
        let names = Sample::TABLE.map(|row| row.to_string());
        assert_eq!(names, ["TcpExt.ListenDrops", "ipv4/tcp_fin_timeout"]);
    }
}
