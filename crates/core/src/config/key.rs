//! What defines one configuration key, and the `config_keys!` macro that turns the table
//! of [`super::keys`] into the command-line [`Flags`](super::Flags), the loader's
//! [`KEYS`](super::KEYS) and the flags' overrides.
//!
//! A key's TOML name, its environment variable ([`env_name`]), its flag if it has one, its
//! help text and its parser are written once, in that table. Its default is its field in
//! [`Config::default`]; [`ToToml`] writes that value back as TOML for the docs table and
//! the drift checks.

use std::path::PathBuf;
use std::time::Duration;

use config::{Value, ValueKind};

use super::load::env_name;
use super::types::{Config, ListenAddress, LogFormat, LogLevel};
use crate::poll::Scope;

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// The TOML name: `key`, or `section.key` for a key in a table.
    pub name: &'static str,
    /// What the key sets: the docs table's text, and the flag's help.
    pub help: &'static str,
    /// The command-line flag that overrides the key, if any.
    pub flag: Option<Flag>,
    /// Validates a value and stores it in the configuration; the error is the reason.
    pub(super) set: fn(&mut Config, &Value) -> Result<(), String>,
    /// The key's value in a configuration, written as TOML.
    pub(super) show: fn(&Config) -> String,
}

/// A flag that overrides a key.
#[derive(Debug)]
pub struct Flag {
    /// The name after `--`.
    pub long: &'static str,
    /// The placeholder `--help` shows for the value.
    pub value_name: &'static str,
    /// Given once per list item (`--web.listen-address A --web.listen-address B`).
    pub repeatable: bool,
    /// A switch with no value, `--NAME` or `--no-NAME`: a collector's toggle.
    pub negatable: bool,
}

impl Key {
    /// The environment variable that sets the key.
    pub fn env_name(&self) -> String {
        env_name(self.name)
    }

    /// The key's default, written as TOML.
    pub fn default_toml(&self) -> String {
        (self.show)(&Config::default())
    }
}

/// A flag field of [`Flags`](super::Flags): a single value, or a list given by repeating
/// the flag.
pub(super) trait FlagValue {
    const REPEATABLE: bool;
    /// The value as the config crate holds it, if the flag was given.
    fn value(&self) -> Option<ValueKind>;
}

impl FlagValue for Option<String> {
    const REPEATABLE: bool = false;
    fn value(&self) -> Option<ValueKind> {
        self.clone().map(ValueKind::String)
    }
}

impl FlagValue for Vec<String> {
    const REPEATABLE: bool = true;
    fn value(&self) -> Option<ValueKind> {
        if self.is_empty() {
            return None;
        }
        let items = self.iter().map(|item| Value::new(None, item.clone()));
        Some(ValueKind::Array(items.collect()))
    }
}

/// A configuration value written as TOML, as config.example.toml writes it; the key's
/// parser reads it back to the same value (a drift check loads every default so).
pub(super) trait ToToml {
    fn to_toml(&self) -> String;
}

fn quoted(text: impl ToString) -> String {
    format!("{:?}", text.to_string())
}

fn array<T>(items: &[T], item: impl Fn(&T) -> String) -> String {
    let items: Vec<String> = items.iter().map(item).collect();
    format!("[{}]", items.join(", "))
}

macro_rules! integer_to_toml {
    ($($integer:ty),*) => {$(
        impl ToToml for $integer {
            fn to_toml(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

integer_to_toml!(u16, u32, u64, usize);

/// Always with a decimal point (`1.0`, not `1`), as TOML writes a float.
impl ToToml for f64 {
    fn to_toml(&self) -> String {
        format!("{self:?}")
    }
}

impl ToToml for bool {
    fn to_toml(&self) -> String {
        self.to_string()
    }
}

impl ToToml for String {
    fn to_toml(&self) -> String {
        quoted(self)
    }
}

impl ToToml for Duration {
    fn to_toml(&self) -> String {
        quoted(humantime::format_duration(*self))
    }
}

/// `listen_poll_interval`: none is written "0s", which turns the sampler off.
impl ToToml for Option<Duration> {
    fn to_toml(&self) -> String {
        self.unwrap_or(Duration::ZERO).to_toml()
    }
}

impl ToToml for PathBuf {
    fn to_toml(&self) -> String {
        quoted(self.display())
    }
}

/// `web.config_file`: none is written as the empty string.
impl ToToml for Option<PathBuf> {
    fn to_toml(&self) -> String {
        self.as_ref().map_or_else(|| quoted(""), ToToml::to_toml)
    }
}

impl ToToml for Vec<PathBuf> {
    fn to_toml(&self) -> String {
        array(self, ToToml::to_toml)
    }
}

/// Port lists: a single port as a number, a range as `"LOW-HIGH"`.
impl ToToml for Vec<(u16, u16)> {
    fn to_toml(&self) -> String {
        array(self, |&(low, high)| match low == high {
            true => low.to_string(),
            false => quoted(format!("{low}-{high}")),
        })
    }
}

impl ToToml for Vec<ListenAddress> {
    fn to_toml(&self) -> String {
        array(self, |address| quoted(address))
    }
}

impl ToToml for Scope {
    fn to_toml(&self) -> String {
        quoted(match self {
            Scope::All => "all",
            Scope::Own => "own",
        })
    }
}

impl ToToml for LogLevel {
    fn to_toml(&self) -> String {
        quoted(self.as_str())
    }
}

impl ToToml for LogFormat {
    fn to_toml(&self) -> String {
        quoted(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Turns the key table into `Flags` (the clap flags, in table order), `Flags::overrides`
/// and `KEYS` (in table order: the order problems are reported in). One entry:
///
/// ```text
/// "section.key" {
///     field: path.in.config,            // the Config field the key sets
///     parse: validate::function,        // &Value -> Result<field type, reason>
///     help: "What it sets",             // no final period
///     flag: flags_field: Option<String> = "section.flag-name" "VALUE",   // optional
/// }
/// ```
///
/// A flag's field is `Option<String>`, or `Vec<String>` for a flag given once per list
/// item; its help is the key's, followed by "Overrides `section.key`".
///
/// The table is handed over by `for_each_collector!`, which appends the collectors after
/// `@collectors`: each becomes the key `collectors.NAME` (a boolean) and the flag pair
/// `--collector.NAME` / `--no-collector.NAME` ([`CollectorFlags`]), after the other keys.
///
/// [`CollectorFlags`]: super::collector_flags::CollectorFlags
macro_rules! config_keys {
    (@flag) => { None };
    (@flag $long:literal $value_name:literal $flag_ty:ty) => {
        Some($crate::config::key::Flag {
            long: $long,
            value_name: $value_name,
            repeatable: <$flag_ty as $crate::config::key::FlagValue>::REPEATABLE,
            negatable: false,
        })
    };
    ($(
        $key:literal {
            field: $($field:ident).+,
            parse: $parse:expr,
            help: $help:literal,
            $(flag: $flag_field:ident: $flag_ty:ty = $long:literal $value_name:literal,)?
        }
    )*
    @collectors $($variant:ident $collector:literal $default:literal $collector_help:literal,)*
    ) => {
        /// Command-line flags. Names follow the Prometheus exporters'
        /// (`--web.listen-address`). Every flag but `--config.file` overrides one config
        /// key; they are generated from the key table.
        #[derive(Debug, Clone, Default, clap::Parser)]
        #[command(name = "sockdiag_exporter", version, about, long_about = None)]
        pub struct Flags {
            /// TOML configuration file. Without one the exporter runs on its embedded defaults.
            #[arg(long = "config.file", value_name = "PATH")]
            pub config_file: Option<std::path::PathBuf>,
            $($(
                #[arg(
                    long = $long,
                    value_name = $value_name,
                    help = concat!($help, ". Overrides `", $key, "`"),
                )]
                pub $flag_field: $flag_ty,
            )?)*
            #[command(flatten)]
            pub collectors: $crate::config::collector_flags::CollectorFlags,
        }

        impl Flags {
            /// (config key, flag name, value) for every flag given.
            pub(super) fn overrides(&self) -> Vec<(&'static str, &'static str, config::ValueKind)> {
                let mut out = Vec::new();
                $($(
                    if let Some(value) =
                        $crate::config::key::FlagValue::value(&self.$flag_field)
                    {
                        out.push(($key, concat!("--", $long), value));
                    }
                )?)*
                $(
                    let kind = $crate::collectors::CollectorKind::$variant;
                    if let Some(on) = self.collectors.get(kind) {
                        let flag = match on {
                            true => concat!("--collector.", $collector),
                            false => concat!("--no-collector.", $collector),
                        };
                        out.push((kind.key(), flag, config::ValueKind::Boolean(on)));
                    }
                )*
                out
            }
        }

        /// Every configuration key, in the order their problems are reported.
        pub const KEYS: &[$crate::config::key::Key] = &[$(
            $crate::config::key::Key {
                name: $key,
                help: $help,
                flag: config_keys!(@flag $($long $value_name $flag_ty)?),
                set: |c, value| {
                    c.$($field).+ = ($parse)(value)?;
                    Ok(())
                },
                show: |c| $crate::config::key::ToToml::to_toml(&c.$($field).+),
            },
        )* $(
            $crate::config::key::Key {
                name: concat!("collectors.", $collector),
                help: $collector_help,
                flag: Some($crate::config::key::Flag {
                    long: concat!("collector.", $collector),
                    value_name: "",
                    repeatable: false,
                    negatable: true,
                }),
                set: |c, value| {
                    let on = $crate::config::validate::boolean(value)?;
                    c.collectors.set($crate::collectors::CollectorKind::$variant, on);
                    Ok(())
                },
                show: |c| $crate::config::key::ToToml::to_toml(
                    &c.collectors.enabled($crate::collectors::CollectorKind::$variant),
                ),
            },
        )*];
    };
}

pub(super) use config_keys;
