//! Plain text for a terminal: every string printed by `report` and `report --watch`
//! passes through [`shown`] here, which escapes control characters, and through [`fit`],
//! [`wrap`] or [`Table::render`], which fit it to a width: numbers right-aligned, text
//! columns shortened with `…` (widest first; paths in the middle, so the tail that names
//! the socket stays) when the table would be wider than the terminal. Colour, when asked,
//! only through crossterm's styling, added after the text is made safe.

use std::borrow::Cow;
use std::fmt::Write as _;

use crossterm::style::Stylize;

/// `text` as a terminal may be given it: a name from outside (a process's comm, a UNIX
/// path, a container or namespace name) cannot move the cursor, set the title, clear the
/// screen or forge a line. Control characters (C0 with ESC and newline, DEL, C1) are shown
/// as `\xNN`, Unicode's bidirectional and line-separator controls as `\u{NNNN}`, and a
/// backslash as `\\`, so that a name holding the text `\x1b` cannot pass for an escaped
/// ESC. Everything else, invalid UTF-8 already replaced by U+FFFD, is kept.
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || unsafe_char(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            // Writing to a String cannot fail.
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Characters a terminal acts on instead of drawing: `char::is_control` is C0, DEL and C1;
/// the rest reorder or break lines (the "Trojan Source" characters).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Where a cell too long for its column loses characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The end: names read from the start.
    End,
    /// The middle: a path's tail (the socket's own name, a container id) says the most.
    Middle,
}

/// A column: its header, alignment, and whether (and where) it may be shortened to fit.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub align: Align,
    pub shrink: bool,
    pub cut: Cut,
}

/// A text column that may be shortened.
pub const fn text(header: &'static str) -> Column {
    Column {
        header,
        align: Align::Left,
        shrink: true,
        cut: Cut::End,
    }
}

/// A path column: shortened in the middle, its tail kept.
pub const fn path(header: &'static str) -> Column {
    Column {
        cut: Cut::Middle,
        ..text(header)
    }
}

/// A short text column kept whole (direction, port).
pub const fn word(header: &'static str) -> Column {
    Column {
        header,
        align: Align::Left,
        shrink: false,
        cut: Cut::End,
    }
}

pub const fn number(header: &'static str) -> Column {
    Column {
        header,
        align: Align::Right,
        shrink: false,
        cut: Cut::End,
    }
}

/// Shortest a shrinkable column gets.
const MIN_TEXT: usize = 6;
const GAP: usize = 2;

#[derive(Debug, Clone)]
pub struct Table {
    pub title: String,
    pub columns: Vec<Column>,
    /// Cells, and whether the row is one to look at (shown in colour).
    pub rows: Vec<(Vec<String>, bool)>,
    /// What an empty table says.
    pub empty: &'static str,
    /// Spaces between columns.
    pub gap: usize,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The columns `text` takes once [`shown`].
pub fn columns(text: &str) -> usize {
    chars(&shown(text))
}

/// `text`, [`shown`], cut at its end to `width` characters, with `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    cut(text, width, Cut::End)
}

/// `text`, [`shown`], cut to `width` characters where `how` says, with `…` when cut.
pub fn cut(text: &str, width: usize, how: Cut) -> String {
    shorten(&shown(text), width, how)
}

/// `text`, already shown, cut to `width` characters.
fn shorten(text: &str, width: usize, how: Cut) -> String {
    let length = chars(text);
    if length <= width {
        return text.to_string();
    }
    let kept = width.saturating_sub(1);
    // Paths keep two thirds for their tail.
    let head = match how {
        Cut::End => kept,
        Cut::Middle => kept / 3,
    };
    let mut short: String = text.chars().take(head).collect();
    if width > 0 {
        short.push('…');
    }
    short.extend(text.chars().skip(length - (kept - head)));
    short
}

/// `text`, [`shown`], in lines of at most `width` characters, broken at spaces where it
/// can be (a word longer than a line is broken anywhere); lines after the first are
/// indented by two spaces. For sentences that must be read whole, in a file or a pipe.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    const INDENT: &str = "  ";
    let width = width.max(INDENT.len() + 1);
    let text = shown(text);
    let mut lines = Vec::new();
    let mut line = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            if chars(&line) + 1 + chars(word) <= width {
                line.push(' ');
            } else {
                lines.push(std::mem::replace(&mut line, INDENT.to_string()));
            }
        }
        // A word longer than what is left of the line is broken where the line ends.
        let mut rest = word;
        while chars(&line) + chars(rest) > width {
            let take = width - chars(&line);
            let split = rest.char_indices().nth(take).map_or(rest.len(), |(i, _)| i);
            line.push_str(&rest[..split]);
            rest = &rest[split..];
            lines.push(std::mem::replace(&mut line, INDENT.to_string()));
        }
        line.push_str(rest);
    }
    lines.push(line);
    lines
}

impl Table {
    pub fn new(title: impl Into<String>, columns: Vec<Column>, empty: &'static str) -> Table {
        Table {
            title: title.into(),
            columns,
            rows: Vec::new(),
            empty,
            gap: GAP,
        }
    }

    pub fn row(&mut self, cells: Vec<String>, hot: bool) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push((cells, hot));
    }

    /// Column widths that fit `width`, when shortening text columns can make them fit.
    fn widths(&self, width: usize) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.rows
                    .iter()
                    .map(|(cells, _)| columns(&cells[i]))
                    .max()
                    .unwrap_or(0)
                    .max(chars(c.header))
            })
            .collect();
        let total = |w: &[usize]| w.iter().sum::<usize>() + self.gap * w.len().saturating_sub(1);
        while total(&widths) > width {
            let widest = (0..widths.len())
                .filter(|&i| self.columns[i].shrink && widths[i] > MIN_TEXT)
                .max_by_key(|&i| (widths[i], std::cmp::Reverse(i)));
            match widest {
                Some(i) => widths[i] -= 1,
                None => break,
            }
        }
        widths
    }

    /// The table as lines of at most `width` characters (when it can be made to fit), at
    /// most `max_rows` rows, then a line saying how many were left out.
    pub fn render(&self, width: usize, max_rows: usize, colour: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let title = fit(&self.title, width);
        let title = if colour {
            title.bold().to_string()
        } else {
            title
        };
        lines.push(title);
        if self.rows.is_empty() {
            lines.push(fit(&format!("  {}", self.empty), width));
            return lines;
        }
        let widths = self.widths(width);
        let line = |cells: Vec<String>| -> String {
            let padded: Vec<String> = cells
                .iter()
                .zip(&self.columns)
                .zip(&widths)
                .map(|((cell, column), &w)| {
                    let cell = cut(cell, w, column.cut);
                    match column.align {
                        Align::Left => format!("{cell:<w$}"),
                        Align::Right => format!("{cell:>w$}"),
                    }
                })
                .collect();
            let line = padded.join(&" ".repeat(self.gap));
            // Narrower than its numbers and headers: the end goes, marked.
            shorten(line.trim_end(), width, Cut::End)
        };
        let header = line(self.columns.iter().map(|c| c.header.to_string()).collect());
        lines.push(if colour {
            header.dim().to_string()
        } else {
            header
        });
        for (cells, hot) in self.rows.iter().take(max_rows) {
            let text = line(cells.clone());
            lines.push(if colour && *hot {
                text.red().to_string()
            } else {
                text
            });
        }
        if self.rows.len() > max_rows {
            let more = format!(
                "  … {} more rows (--json shows every row)",
                self.rows.len() - max_rows
            );
            lines.push(fit(&more, width));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_shrink_to_fit_and_numbers_stay_whole() {
        let mut table = Table::new(
            "T",
            vec![text("process"), word("port"), number("sockets")],
            "none",
        );
        table.row(
            vec![
                "a-very-long-process-name".into(),
                "8080".into(),
                "12".into(),
            ],
            false,
        );
        table.row(vec!["php".into(), "9000".into(), "3".into()], true);
        assert_eq!(
            table.render(100, 10, false),
            vec![
                "T",
                "process                   port  sockets",
                "a-very-long-process-name  8080       12",
                "php                       9000        3",
            ]
        );
        assert_eq!(
            table.render(24, 1, false),
            vec![
                "T",
                "process    port  sockets",
                "a-very-l…  8080       12",
                "  … 1 more rows (--json…",
            ]
        );
    }

    #[test]
    fn shown_escapes_controls_bidi_and_the_backslash() {
        assert!(matches!(
            shown("php-fpm é 漢"),
            Cow::Borrowed("php-fpm é 漢")
        ));
        assert_eq!(
            shown("\u{1b}]0;PWN\u{7}\u{1b}[2J"),
            "\\x1b]0;PWN\\x07\\x1b[2J"
        );
        assert_eq!(
            shown("a\nb\r\t\u{0}\u{7f}\u{85}\u{9b}"),
            "a\\x0ab\\x0d\\x09\\x00\\x7f\\x85\\x9b"
        );
        assert_eq!(
            shown("\\x1b"),
            "\\\\x1b",
            "a name holding the text \\x1b does not read as an escaped ESC"
        );
        assert_eq!(shown("abc\u{202e}fed\u{2066}"), "abc\\u{202e}fed\\u{2066}");
    }

    #[test]
    fn paths_are_cut_in_the_middle_and_names_at_the_end() {
        let path = "/run/containerd/s/9f3c1e0b7a5d42c8e61f0a9b3d7c5e2f";
        assert_eq!(cut(path, 19, Cut::Middle), "/run/c…0a9b3d7c5e2f");
        assert_eq!(cut(path, 19, Cut::Middle).chars().count(), 19);
        assert_eq!(cut(path, 19, Cut::End), "/run/containerd/s/…");
        assert_eq!(cut(path, 1, Cut::Middle), "…");
        assert_eq!(cut(path, 0, Cut::End), "");
        assert_eq!(
            cut("\u{1b}[2J", 6, Cut::End),
            "\\x1b[…",
            "escaped before it is cut"
        );
    }

    #[test]
    fn wrap_breaks_at_spaces_and_long_words_anywhere() {
        assert_eq!(
            wrap("UNIX accept queue full: php-fpm /run/php/fpm.sock", 24),
            [
                "UNIX accept queue full:",
                "  php-fpm",
                "  /run/php/fpm.sock"
            ]
        );
        assert_eq!(
            wrap("full: /a/very/long/path/name done", 12),
            ["full:", "  /a/very/lo", "  ng/path/na", "  me done"]
        );
        assert_eq!(wrap("short", 100), ["short"]);
        assert_eq!(wrap("bell\u{7}", 100), ["bell\\x07"]);
    }

    /// `shown` undone: each escape back to its character.
    fn unshown(text: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('\\') {
            out.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let (c, used) = if let Some(tail) = rest.strip_prefix('\\') {
                ('\\', rest.len() - tail.len())
            } else if let Some(hex) = rest.strip_prefix('x') {
                (char::from(u8::from_str_radix(hex.get(..2)?, 16).ok()?), 3)
            } else {
                let end = rest.find('}')?;
                let code = u32::from_str_radix(rest.strip_prefix("u{")?.get(..end - 2)?, 16);
                (char::from_u32(code.ok()?)?, end + 1)
            };
            out.push(c);
            rest = &rest[used..];
        }
        out.push_str(rest);
        Some(out)
    }

    proptest::proptest! {
        /// Whatever a name holds, no character a terminal acts on gets through, every
        /// line fits its width, and the escaping can be undone: no two names look alike.
        #[test]
        fn no_control_character_reaches_the_terminal(
            name in "(?s)[\\x00-\\x{a0}\\\\\\x{202a}-\\x{202e}\\x{2066}-\\x{2069}a-z/@ é漢]{0,40}",
            width in 0usize..60,
        ) {
            let safe = shown(&name);
            proptest::prop_assert!(!safe.chars().any(unsafe_char), "{:?}", safe);
            proptest::prop_assert_eq!(unshown(&safe), Some(name.clone()));
            for how in [Cut::End, Cut::Middle] {
                let short = cut(&name, width, how);
                proptest::prop_assert!(short.chars().count() <= width);
                proptest::prop_assert!(!short.chars().any(unsafe_char));
            }
            for line in wrap(&name, width) {
                proptest::prop_assert!(line.chars().count() <= width.max(3), "{:?}", line);
                proptest::prop_assert!(!line.chars().any(unsafe_char));
            }
            let mut table = Table::new(name.clone(), vec![text("process"), path("path"), number("n")], "none");
            table.row(vec![name.clone(), name.clone(), "12".into()], false);
            table.row(vec!["php".into(), "/run/a.sock".into(), "3".into()], false);
            for line in table.render(width, 1, false) {
                proptest::prop_assert!(line.chars().count() <= width, "{:?}", line);
                proptest::prop_assert!(!line.chars().any(unsafe_char));
            }
        }
    }

    #[test]
    fn empty_table_says_so() {
        let table = Table::new("T", vec![number("n")], "nothing in CLOSE_WAIT");
        assert_eq!(
            table.render(100, 5, false),
            vec!["T", "  nothing in CLOSE_WAIT"]
        );
    }
}
