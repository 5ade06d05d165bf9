//! `report --json`: serde_json's pretty output, with every control character escaped.
//!
//! JSON only requires escaping below U+0020, so serde_json writes DEL and the C1 controls
//! (U+0080 to U+009F, which some terminals obey, U+009B being CSI) as they are. `report
//! --json` is often read on a terminal, so they are written as `\u00NN` too: the same
//! string to any JSON parser, nothing a terminal acts on.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

/// [`PrettyFormatter`], escaping DEL and C1 as well.
#[derive(Default)]
struct Escaping(PrettyFormatter<'static>);

/// `value` as pretty JSON, with a final newline.
pub fn write(out: &mut impl io::Write, value: &impl Serialize) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, Escaping::default());
    value.serialize(&mut serializer).map_err(io::Error::from)?;
    writeln!(out)
}

impl Formatter for Escaping {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json already escaped everything below U+0020, '"' and '\'.
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|(_, c)| c.is_control()) {
            writer.write_all(&rest.as_bytes()[..at])?;
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_wrote_c1_controls_and_del_raw() {
        let name = "a\u{1b}]0;PWN\u{7}\u{9b}2J\u{7f}\\\"é";
        let mut out = Vec::new();
        write(&mut out, &serde_json::json!({ "process": name, "n": [1] })).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\n  \"n\": [\n    1\n  ],\n  \"process\": \"a\\u001b]0;PWN\\u0007\\u009b2J\\u007f\\\\\\\"é\"\n}\n"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["process"], name, "the true value");
        assert_eq!(
            text,
            format!("{}\n", serde_json::to_string_pretty(&back).unwrap())
                .replace("\u{9b}", "\\u009b")
                .replace("\u{7f}", "\\u007f"),
            "otherwise serde_json's pretty output"
        );
    }
}
