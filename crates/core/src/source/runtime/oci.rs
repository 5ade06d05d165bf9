//! The `annotations` of an OCI runtime spec (`config.json` of a bundle), the one part of
//! it that says which Kubernetes pod a container belongs to. containerd's CRI plugin and
//! CRI-O write the pod's name, namespace and UID there, each under its own keys.

use std::collections::BTreeMap;

/// The part of an OCI runtime spec we read; runtimes write many more fields.
#[derive(Debug, serde::Deserialize)]
struct Spec {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// The annotations in the text of an OCI `config.json`; empty when it has none. The spec
/// says annotation values are strings: any other value is an error.
pub fn parse_annotations(text: &str) -> Result<BTreeMap<String, String>, serde_json::Error> {
    let spec: Spec = serde_json::from_str(text)?;
    Ok(spec.annotations.unwrap_or_default())
}

/// The value of `key`, when present and not empty.
pub fn non_empty<'a>(annotations: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    annotations
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_among_other_fields() {
        let text = r#"{"ociVersion":"1.0.2","process":{"args":["sleep"]},
            "annotations":{"a":"1","b":""},"linux":{"cgroupsPath":"/x"}}"#;
        let annotations = parse_annotations(text).unwrap();
        assert_eq!(non_empty(&annotations, "a"), Some("1"));
        assert_eq!(non_empty(&annotations, "b"), None);
        assert_eq!(non_empty(&annotations, "c"), None);
    }

    #[test]
    fn no_or_null_annotations_are_empty() {
        assert!(parse_annotations(r#"{"ociVersion":"1.0.2"}"#)
            .unwrap()
            .is_empty());
        assert!(parse_annotations(r#"{"annotations":null}"#)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_specs_are_errors() {
        let errors: Vec<String> = [
            r#"{"annotations":{"a":1}}"#,
            r#"{"annotations":["a"]}"#,
            r#"{"annotations":{"a":"1"}"#,
            "",
            "42",
        ]
        .iter()
        .map(|text| parse_annotations(text).unwrap_err().to_string())
        .collect();
        assert_eq!(
            errors,
            [
                "invalid type: integer `1`, expected a string at line 1 column 21",
                "invalid type: sequence, expected a map at line 1 column 15",
                "EOF while parsing an object at line 1 column 24",
                "EOF while parsing a value at line 1 column 0",
                "invalid type: integer `42`, expected struct Spec at line 1 column 2",
            ]
        );
    }
}
