//! Turns one raw value of the merged tree into a typed one, or a reason it cannot.
//! Each function names what it expected; the caller adds origin, key and value.

use std::path::PathBuf;
use std::time::Duration;

use config::{Value, ValueKind};

use super::types::{ListenAddress, LogFormat, LogLevel};
use crate::poll::Scope;

/// Upper bound of `poll_interval`: beyond a day the exporter would, for practical
/// purposes, never poll again.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Upper bound of `web.max_requests`: far above any useful value, far below the limit of
/// the semaphore that enforces it.
pub const MAX_REQUESTS: u64 = 100_000;
/// Upper bound of `web.max_connections`: the exporter is one process with at most a few
/// thousand file descriptors to spend on clients.
pub const MAX_CONNECTIONS: u64 = 65_536;

pub(super) fn render(value: &Value) -> String {
    match &value.kind {
        ValueKind::String(s) => format!("{s:?}"),
        ValueKind::Array(items) => {
            let items: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        _ => value.to_string(),
    }
}

pub(super) fn string(value: &Value) -> Result<&str, String> {
    match &value.kind {
        ValueKind::String(s) => Ok(s),
        _ => Err("expected a string".to_string()),
    }
}

/// A duration within `[minimum, maximum]`.
pub(super) fn duration(
    value: &Value,
    minimum: Duration,
    maximum: Duration,
) -> Result<Duration, String> {
    let text = string(value)
        .map_err(|_| "expected a duration string such as \"15s\" or \"500ms\"".to_string())?;
    let parsed = humantime::parse_duration(text).map_err(|source| {
        format!("not a duration ({source}); write e.g. \"15s\", \"500ms\" or \"1m\"")
    })?;
    if parsed < minimum {
        return Err(format!(
            "must be at least {}",
            humantime::format_duration(minimum)
        ));
    }
    if parsed > maximum {
        return Err(format!(
            "must be at most {}",
            humantime::format_duration(maximum)
        ));
    }
    Ok(parsed)
}

pub(super) fn integer(value: &Value) -> Result<u64, String> {
    match &value.kind {
        ValueKind::I64(n) if *n >= 0 => Ok(*n as u64),
        ValueKind::U64(n) => Ok(*n),
        ValueKind::I128(n) if *n >= 0 && *n <= u64::MAX as i128 => Ok(*n as u64),
        ValueKind::U128(n) if *n <= u64::MAX as u128 => Ok(*n as u64),
        ValueKind::String(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|source| format!("expected a non-negative integer: {source}")),
        _ => Err("expected a non-negative integer".to_string()),
    }
}

/// An integer in `[0, maximum]`.
pub(super) fn at_most(value: &Value, maximum: u64) -> Result<usize, String> {
    match integer(value)? {
        n if n > maximum => Err(format!("must be at most {maximum}")),
        n => usize::try_from(n).map_err(|source| source.to_string()),
    }
}

pub(super) fn positive(value: &Value) -> Result<usize, String> {
    match integer(value)? {
        0 => Err("must be at least 1".to_string()),
        n => usize::try_from(n).map_err(|source| source.to_string()),
    }
}

/// A list of ports and inclusive ranges: `[3306, "8000-8100"]`, or from an environment
/// variable the same comma-separated: `3306,8000-8100`.
pub(super) fn port_ranges(value: &Value) -> Result<Vec<(u16, u16)>, String> {
    let items: Vec<String> = match &value.kind {
        ValueKind::Array(items) => items
            .iter()
            .map(|item| match &item.kind {
                ValueKind::String(s) => Ok(s.trim().to_string()),
                _ => integer(item)
                    .map(|n| n.to_string())
                    .map_err(|_| format!("{}: not a port", render(item))),
            })
            .collect::<Result<_, _>>()?,
        ValueKind::String(list) if list.trim().is_empty() => Vec::new(),
        ValueKind::String(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        _ => return Err("expected a list of ports or \"LOW-HIGH\" ranges".to_string()),
    };
    items
        .iter()
        .map(|text| {
            let (low, high) = text.split_once('-').unwrap_or((text, text));
            let port = |p: &str| {
                p.trim()
                    .parse::<u16>()
                    .map_err(|source| format!("{text:?}: not a port or range ({source})"))
            };
            let (low, high) = (port(low)?, port(high)?);
            if low > high {
                return Err(format!("{text:?}: range starts above its end"));
            }
            Ok((low, high))
        })
        .collect()
}

pub(super) fn listen_addresses(value: &Value) -> Result<Vec<ListenAddress>, String> {
    // An environment variable holds the list comma-separated.
    let items: Vec<&str> = match &value.kind {
        ValueKind::Array(items) => items.iter().map(string).collect::<Result<_, _>>()?,
        ValueKind::String(list) => list.split(',').collect(),
        _ => return Err("expected a list of addresses".to_string()),
    };
    if items.is_empty() {
        return Err("at least one address is needed".to_string());
    }
    items
        .iter()
        .map(|item| ListenAddress::parse(item.trim()).map_err(|e| format!("{item:?}: {e}")))
        .collect()
}

/// A literal path: the router must never read it as a pattern (`:x`, `*x`, `{x}`).
pub(super) fn telemetry_path(value: &Value) -> Result<String, String> {
    let path = string(value)?;
    if !path.starts_with('/') || path.len() < 2 {
        return Err("must start with / and name a path, e.g. \"/metrics\"".to_string());
    }
    if path.starts_with("/-/") {
        return Err("/-/ is reserved for /-/healthy and /-/ready".to_string());
    }
    if path == "/api/summary" {
        return Err("/api/summary is the landing page's data".to_string());
    }
    if let Some(bad) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '.' | '_' | '~')))
    {
        return Err(format!(
            "{bad:?} is not allowed: a path is literal, made of letters, digits and / - . _ ~"
        ));
    }
    if path.contains("//") || path.ends_with('/') {
        return Err("no empty segment: no \"//\" and no trailing /".to_string());
    }
    Ok(path.to_string())
}

pub(super) fn file_path(value: &Value) -> Result<Option<PathBuf>, String> {
    match string(value)? {
        "" => Ok(None),
        path => Ok(Some(PathBuf::from(path))),
    }
}

pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match &value.kind {
        ValueKind::Boolean(b) => Ok(*b),
        ValueKind::String(s) if s == "true" => Ok(true),
        ValueKind::String(s) if s == "false" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

pub(super) fn log_level(value: &Value) -> Result<LogLevel, String> {
    match string(value)? {
        "error" => Ok(LogLevel::Error),
        "warn" => Ok(LogLevel::Warn),
        "info" => Ok(LogLevel::Info),
        "debug" => Ok(LogLevel::Debug),
        "trace" => Ok(LogLevel::Trace),
        _ => Err("expected one of error, warn, info, debug, trace".to_string()),
    }
}

pub(super) fn log_format(value: &Value) -> Result<LogFormat, String> {
    match string(value)? {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".to_string()),
    }
}

pub(super) fn scope(value: &Value) -> Result<Scope, String> {
    match string(value)? {
        "all" => Ok(Scope::All),
        "own" => Ok(Scope::Own),
        other => Err(format!("{other:?} is not all or own")),
    }
}

pub(super) fn absolute_path(value: &Value) -> Result<PathBuf, String> {
    let path = PathBuf::from(string(value)?);
    if !path.is_absolute() {
        return Err("must be an absolute path".to_string());
    }
    Ok(path)
}

/// A list of absolute paths; an environment variable holds it comma-separated.
pub(super) fn absolute_paths(value: &Value) -> Result<Vec<PathBuf>, String> {
    let texts: Vec<String> = match &value.kind {
        ValueKind::Array(items) => items
            .iter()
            .map(|item| string(item).map(str::to_string))
            .collect::<Result<_, _>>()?,
        ValueKind::String(list) if list.trim().is_empty() => Vec::new(),
        ValueKind::String(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        _ => return Err("expected a list of absolute paths".to_string()),
    };
    texts
        .into_iter()
        .map(|text| {
            let path = PathBuf::from(&text);
            if path.is_absolute() {
                Ok(path)
            } else {
                Err(format!("{text:?} is not an absolute path"))
            }
        })
        .collect()
}
