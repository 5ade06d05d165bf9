//! Reads and validates a web config file into an [`Active`] config.

use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};

use super::auth::Auth;
use super::files::read_bounded;
use super::schema::{HttpServerConfig, WebConfigFile};
use super::tls::Tls;
use super::{Active, WebConfigError};

/// Response headers a web config may set, with the values allowed (none: any value), as
/// in exporter-toolkit.
const HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Reads `file` and everything it names; the first problem found is the error.
pub fn load(file: &Path) -> Result<Active, WebConfigError> {
    let bytes = read_bounded(file).map_err(|reason| WebConfigError::Read {
        file: file.to_path_buf(),
        reason,
    })?;
    let text = String::from_utf8(bytes).map_err(|source| WebConfigError::Read {
        file: file.to_path_buf(),
        reason: format!("not UTF-8 text: {source}"),
    })?;
    parse(file, &text)
}

/// Validates `text`, the content of `file`; reads only the files the text names
/// (relative to `file`'s directory). The entry of the fuzz target.
pub fn parse(file: &Path, text: &str) -> Result<Active, WebConfigError> {
    // An empty file is an empty mapping: no TLS, no auth, as exporter-toolkit treats it.
    let parsed: WebConfigFile = if text.trim().is_empty() {
        WebConfigFile::default()
    } else {
        serde_norway::from_str(text).map_err(|source| WebConfigError::Parse {
            file: file.to_path_buf(),
            reason: source.to_string(),
        })?
    };
    let invalid = |key: &str, value: &str, reason: String| WebConfigError::Invalid {
        file: file.to_path_buf(),
        key: key.to_string(),
        value: format!("{value:?}"),
        reason,
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let mut watched = vec![file.to_path_buf()];
    let tls = match &parsed.tls_server_config {
        Some(config) => {
            let (tls, files) = Tls::build(config, base, &invalid)?;
            watched.extend(files);
            Some(Arc::new(tls))
        }
        None => None,
    };
    let auth = if parsed.basic_auth_users.is_empty() {
        None
    } else {
        Some(Arc::new(Auth::new(&parsed.basic_auth_users, &invalid)?))
    };
    let headers = headers(&parsed.http_server_config, &invalid)?;
    if parsed.http_server_config.http2 == Some(true) {
        tracing::debug!(file = %file.display(), "http2 requested: served as HTTP/1.1");
    }
    Ok(Active {
        tls,
        auth,
        headers,
        watched,
    })
}

fn headers(
    config: &HttpServerConfig,
    invalid: &dyn Fn(&str, &str, String) -> WebConfigError,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut out = Vec::new();
    for (name, value) in &config.headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = HEADERS.iter().find(|(allowed, _)| allowed == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(invalid(
                &key,
                value,
                format!(
                    "header {name:?} can not be configured; allowed: {}",
                    names.join(", ")
                ),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(invalid(
                &key,
                value,
                format!("expected one of: {}", allowed.join(", ")),
            ));
        }
        let value_parsed = HeaderValue::from_str(value)
            .map_err(|source| invalid(&key, value, format!("not a header value: {source}")))?;
        let name_parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|source| invalid(&key, value, format!("not a header name: {source}")))?;
        out.push((name_parsed, value_parsed));
    }
    Ok(out)
}
