//! Drift checks: config.example.toml and the README's tables against the key table
//! (`keys.rs`). `UPDATE_DOCS=1 cargo test -p sockdiag-core readme` rewrites the README's
//! tables from the table; the example file's prose is written by hand.

use std::collections::{BTreeMap, BTreeSet};

use super::super::*;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read(file: &str) -> String {
    let path = format!("{ROOT}/{file}");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The leaf keys of a TOML table, as `section.key`.
fn leaf_keys(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
    for (name, value) in table {
        let key = match prefix {
            "" => name.clone(),
            prefix => format!("{prefix}.{name}"),
        };
        match value {
            toml::Value::Table(inner) => leaf_keys(&key, inner, out),
            _ => {
                out.insert(key);
            }
        }
    }
}

fn defined() -> BTreeSet<String> {
    KEYS.iter().map(|key| key.name.to_string()).collect()
}

#[test]
fn keys_flags_and_environment_variables_are_unique() {
    let names: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
    let envs: BTreeSet<String> = KEYS.iter().map(Key::env_name).collect();
    let flags: Vec<&str> = KEYS
        .iter()
        .filter_map(|key| key.flag.as_ref())
        .map(|f| f.long)
        .collect();
    assert_eq!(
        defined().len(),
        names.len(),
        "a key is defined twice: {names:?}"
    );
    assert_eq!(
        envs.len(),
        names.len(),
        "two keys share an environment variable"
    );
    let unique: BTreeSet<&str> = flags.iter().copied().collect();
    assert_eq!(
        unique.len(),
        flags.len(),
        "a flag is defined twice: {flags:?}"
    );
}

#[test]
fn example_file_sets_every_key_and_no_other() {
    let table: toml::Table = read("config.example.toml")
        .parse()
        .expect("config.example.toml is TOML");
    let mut found = BTreeSet::new();
    leaf_keys("", &table, &mut found);
    let defined = defined();
    let missing: Vec<&String> = defined.difference(&found).collect();
    let unknown: Vec<&String> = found.difference(&defined).collect();
    assert_eq!(
        (missing, unknown),
        (Vec::<&String>::new(), Vec::<&String>::new()),
        "(keys missing from config.example.toml, keys it sets that keys.rs does not define)"
    );
}

/// The flags the example file's comments name (`Flag: --name`).
fn flags_named_in(text: &str) -> BTreeSet<String> {
    text.split("Flag: --")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect::<String>()
        })
        .collect()
}

#[test]
fn example_file_names_each_flag_of_the_keys() {
    let named = flags_named_in(&read("config.example.toml"));
    let flags: BTreeSet<String> = KEYS
        .iter()
        .filter_map(|key| key.flag.as_ref())
        .map(|flag| flag.long.to_string())
        .collect();
    assert_eq!(named, flags, "`Flag: --...` in config.example.toml");
}

/// The defaults as the docs show them ([`Key::default_toml`]), as one TOML file.
fn defaults_file() -> String {
    let mut sections: BTreeMap<&str, String> = BTreeMap::new();
    for key in KEYS {
        let (section, leaf) = key.name.rsplit_once('.').unwrap_or(("", key.name));
        let lines = sections.entry(section).or_default();
        lines.push_str(&format!("{leaf} = {}\n", key.default_toml()));
    }
    sections
        .into_iter()
        .map(|(section, lines)| match section {
            "" => lines,
            section => format!("[{section}]\n{lines}"),
        })
        .collect()
}

#[test]
fn defaults_as_the_docs_write_them_load_to_the_defaults() {
    let text = defaults_file();
    let flags = Flags {
        config_file: Some("defaults.toml".into()),
        ..Flags::default()
    };
    let loaded = Config::load_text(&flags, Some(&text), Vec::new());
    assert_eq!(loaded, Ok(Config::default()), "{text}");
}

/// A table cell: `|` would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// README "Configuration": one row per key.
fn keys_table() -> String {
    let mut out = String::from("| Key | Default | What |\n|---|---|---|\n");
    for key in KEYS {
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            key.name,
            cell(&key.default_toml()),
            cell(key.help)
        ));
    }
    out
}

/// A key's default as a flag's value is written: no TOML quotes, list items one by one.
fn flag_default(key: &Key) -> String {
    let text = format!("value = {}", key.default_toml());
    let table: toml::Table = text.parse().expect("a default written as TOML is TOML");
    let bare = |value: &toml::Value| match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => panic!("{}: no flag form for {other:?}", key.name),
    };
    match &table["value"] {
        toml::Value::String(text) if text.is_empty() => "none".to_string(),
        toml::Value::Array(items) => items.iter().map(bare).collect::<Vec<_>>().join(", "),
        value => bare(value),
    }
}

/// README "Flags": `--config.file`, the keys' flags in table order, `--help`.
fn flags_table() -> String {
    let mut out = String::from(
        "| Flag | Default | Config key |\n|---|---|---|\n\
         | `--config.file=PATH` | none: embedded defaults | |\n",
    );
    for key in KEYS {
        let Some(flag) = &key.flag else { continue };
        if flag.negatable {
            out.push_str(&format!(
                "| `--[no-]{}` | `{}` | `{}` |\n",
                flag.long,
                cell(&flag_default(key)),
                key.name
            ));
            continue;
        }
        out.push_str(&format!(
            "| `--{}={}`{} | `{}` | `{}` |\n",
            flag.long,
            cell(flag.value_name),
            if flag.repeatable { " (repeatable)" } else { "" },
            cell(&flag_default(key)),
            key.name
        ));
    }
    out.push_str("| `--version`, `--help` | | |\n");
    out
}

/// The lines between `<!-- NAME: generated ... -->` and `<!-- /NAME -->`, and where they
/// are in `text`.
fn region(text: &str, name: &str) -> std::ops::Range<usize> {
    let open = format!("<!-- {name}: generated");
    let close = format!("<!-- /{name} -->");
    let start = text
        .find(&open)
        .and_then(|at| text[at..].find('\n').map(|end| at + end + 1))
        .unwrap_or_else(|| panic!("README.md has no `{open}` line"));
    let end = text[start..]
        .find(&close)
        .map(|at| start + at)
        .unwrap_or_else(|| panic!("README.md has no `{close}` line"));
    start..end
}

#[test]
fn readme_tables_are_the_key_table() {
    let text = read("README.md");
    let mut updated = text.clone();
    for (name, table) in [
        ("config-flags", flags_table()),
        ("config-keys", keys_table()),
    ] {
        let range = region(&updated, name);
        if std::env::var_os("UPDATE_DOCS").is_some() {
            updated.replace_range(range, &table);
            continue;
        }
        assert_eq!(
            updated[range].to_string(),
            table,
            "README.md's {name} table differs from crates/core/src/config/keys.rs: \
             UPDATE_DOCS=1 cargo test -p sockdiag-core readme rewrites it"
        );
    }
    if updated != text {
        std::fs::write(format!("{ROOT}/README.md"), updated).expect("write README.md");
    }
}
