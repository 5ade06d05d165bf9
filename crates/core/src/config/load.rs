//! Layers the sources (defaults, file, environment, flags) and reads the merged tree into
//! a [`Config`], collecting every problem on the way.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Value, ValueKind};

use super::error::{ConfigError, ConfigErrors};
use super::keys::{Flags, KEYS};
use super::types::Config;
use super::validate as v;
use super::ENV_PREFIX;

/// A config file larger than this is a mistake (a log, a device), not a configuration.
const MAX_FILE_BYTES: u64 = crate::source::bounded::CONFIG_LIMIT;

impl Config {
    /// Loads the configuration from the flags' file (if any), the process environment
    /// and the flags. Only `SOCKDIAG_` variables are read: any other variable, UTF-8 or
    /// not, is none of our business.
    pub fn load(flags: &Flags) -> Result<Config, ConfigErrors> {
        let (env, errors) = utf8_environment(std::env::vars_os());
        let loaded = Config::load_from(flags, env);
        match (loaded, errors.is_empty()) {
            (Ok(config), true) => Ok(config),
            (Ok(_), false) => Err(ConfigErrors(errors)),
            (Err(ConfigErrors(more)), _) => {
                Err(ConfigErrors(errors.into_iter().chain(more).collect()))
            }
        }
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_from(
        flags: &Flags,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        // Read here rather than by the config crate: it would try `path.toml` when
        // `path` is missing, and report a directory or a FIFO as "not found".
        let text = match &flags.config_file {
            Some(path) => Some(read_file(path).map_err(|error| ConfigErrors(vec![error]))?),
            None => None,
        };
        Config::load_text(flags, text.as_deref(), env)
    }

    /// As [`Config::load_from`], with the text of `flags.config_file` given: reads no
    /// file. The entry of the fuzz target and of the round-trip property test.
    pub fn load_text(
        flags: &Flags,
        text: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let prefix = format!("{ENV_PREFIX}_");
        let mut not_keys = Vec::new();
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(name, _)| match name.strip_prefix(&prefix) {
                None => false,
                Some(rest) if is_plain_key(rest) => true,
                Some(rest) => {
                    not_keys.push(ConfigError::UnknownKey {
                        origin: format!("environment variable {name}"),
                        key: rest.to_lowercase().replace("__", "."),
                    });
                    false
                }
            })
            .collect();
        let mut builder = config::Config::builder();
        if let Some(text) = text {
            let path = flags.config_file.as_deref().unwrap_or(Path::new("config"));
            let table = check_toml(path, text).map_err(|error| ConfigErrors(vec![error]))?;
            let mut keys = Vec::new();
            keys_not_plain(String::new(), &table, &mut keys);
            not_keys.extend(keys.into_iter().map(|key| ConfigError::UnknownKey {
                origin: path.display().to_string(),
                key,
            }));
            builder = builder.add_source(File::from_str(text, FileFormat::Toml));
        }
        // The config crate reads a source's top-level names as path expressions, where
        // `key[N]` grows an array to N elements: `SOCKDIAG_X[99999999999]` panicked
        // (capacity overflow) or exhausted memory. No key of ours is anything but
        // letters, digits and `_`; anything else is an unknown key, never handed on.
        if !not_keys.is_empty() {
            return Err(ConfigErrors(not_keys));
        }
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .source(Some(env)),
        );
        let overrides = flags.overrides();
        for (key, _, value) in &overrides {
            builder = builder
                .set_override(*key, Value::new(None, value.clone()))
                .map_err(|source| ConfigErrors(vec![ConfigError::Load(source.to_string())]))?;
        }
        let merged = builder
            .build()
            .map_err(|source| ConfigErrors(vec![ConfigError::Load(source.to_string())]))?;

        let mut leaves = BTreeMap::new();
        flatten(String::new(), merged.cache, &mut leaves);
        let mut reader = Reader {
            leaves,
            flags: overrides
                .iter()
                .map(|(key, flag, _)| (*key, *flag))
                .collect(),
            file: flags.config_file.clone(),
            errors: Vec::new(),
        };
        let config = reader.config();
        reader.finish()?;
        Ok(config)
    }
}

#[cfg(test)]
pub(super) fn utf8_environment_for_tests(
    vars: Vec<(OsString, OsString)>,
) -> (Vec<(String, String)>, Vec<ConfigError>) {
    utf8_environment(vars)
}

/// Keeps the `SOCKDIAG_` variables; one of them that is not UTF-8 is an error.
fn utf8_environment(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> (Vec<(String, String)>, Vec<ConfigError>) {
    let prefix = format!("{ENV_PREFIX}_");
    let mut env = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in vars {
        if !name.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => env.push((name, value)),
            (name, value) => errors.push(ConfigError::NotUtf8 {
                name: name.unwrap_or_else(|n| n.to_string_lossy().into_owned()),
                value: format!(
                    "{:?}",
                    value.unwrap_or_else(|v| v.to_string_lossy().into_owned())
                ),
            }),
        }
    }
    (env, errors)
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    let fail = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    // Checked before opening: opening a FIFO would block until a writer comes.
    let kind = std::fs::metadata(path)
        .map_err(|source| fail(format!("cannot read the config file: {source}")))?
        .file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        Some("a socket")
    };
    if let Some(what) = what {
        return Err(fail(format!("not a regular file ({what})")));
    }
    let file = std::fs::File::open(path)
        .map_err(|source| fail(format!("cannot read the config file: {source}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| fail(format!("cannot read the config file: {source}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!(
            "larger than {MAX_FILE_BYTES} bytes: not a config file"
        )));
    }
    String::from_utf8(bytes).map_err(|source| fail(format!("not UTF-8 text: {source}")))
}

/// A key name as ours are spelt: letters, digits and `_` (an environment variable's
/// `__`, the section separator, included).
fn is_plain_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The keys of `table` and of the tables in it, as `section.key`, whose name is not
/// plain (see [`is_plain_key`]).
fn keys_not_plain(prefix: String, table: &toml::Table, out: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if !is_plain_key(name) {
            out.push(key);
        } else if let toml::Value::Table(inner) = value {
            keys_not_plain(key, inner, out);
        }
    }
}

/// Parses the file as TOML first, for an error that names the key: the config crate
/// reports a number too large for TOML with neither key nor line.
fn check_toml(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    let error = match text.parse::<toml::Table>() {
        Ok(table) => return Ok(table),
        Err(error) => error,
    };
    let message = error.message().trim_end().to_string();
    let key = error.span().and_then(|span| {
        let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_number = text[..span.start].matches('\n').count() + 1;
        let line = text[start..].lines().next().unwrap_or("");
        Some((line.split_once('=')?.0.trim().to_string(), line_number))
    });
    Err(ConfigError::File {
        path: path.display().to_string(),
        reason: match key {
            Some((key, line)) if !key.is_empty() => format!("line {line}: `{key}`: {message}"),
            _ => message,
        },
    })
}

/// Takes known keys out of the merged tree; whatever is left is unknown.
struct Reader {
    leaves: BTreeMap<String, Value>,
    flags: BTreeMap<&'static str, &'static str>,
    file: Option<PathBuf>,
    errors: Vec<ConfigError>,
}

impl Reader {
    /// The defaults, with every key found in the tree parsed over them. A value that
    /// fails leaves the default and adds a problem.
    fn config(&mut self) -> Config {
        let mut config = Config::default();
        for key in KEYS {
            let Some(value) = self.leaves.remove(key.name) else {
                continue;
            };
            if let Err(reason) = (key.set)(&mut config, &value) {
                self.errors.push(ConfigError::Invalid {
                    origin: self.origin(key.name, &value),
                    key: key.name.to_string(),
                    value: v::render(&value),
                    reason,
                });
            }
        }
        config
    }

    fn origin(&self, key: &str, value: &Value) -> String {
        if let Some(flag) = self.flags.get(key) {
            return format!("flag {flag}");
        }
        match (value.origin(), &self.file) {
            (Some("the environment"), _) => format!("environment variable {}", env_name(key)),
            // The file is read as a string, so its values carry no origin of their own.
            (_, Some(file)) => file.display().to_string(),
            (Some(origin), None) => origin.to_string(),
            (None, None) => "configuration".to_string(),
        }
    }

    fn finish(mut self) -> Result<(), ConfigErrors> {
        let unknown = std::mem::take(&mut self.leaves);
        for (key, value) in unknown {
            self.errors.push(ConfigError::UnknownKey {
                origin: self.origin(&key, &value),
                key,
            });
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// The environment variable that sets `key`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}_{}", key.replace('.', "__").to_uppercase())
}

fn flatten(prefix: String, value: Value, out: &mut BTreeMap<String, Value>) {
    if let ValueKind::Table(table) = &value.kind {
        for (name, child) in table.clone() {
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            flatten(key, child, out);
        }
        return;
    }
    out.insert(prefix, value);
}
