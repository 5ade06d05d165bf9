//! Plain text tables that fit a width: numbers right-aligned, text columns shortened with
//! `…` (widest first) when the table would be wider than the terminal. Colour, when
//! asked, only through crossterm's styling.

use crossterm::style::Stylize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A column: its header, alignment, and whether it may be shortened to fit.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub align: Align,
    pub shrink: bool,
}

/// A text column that may be shortened.
pub const fn text(header: &'static str) -> Column {
    Column {
        header,
        align: Align::Left,
        shrink: true,
    }
}

/// A short text column kept whole (direction, port).
pub const fn word(header: &'static str) -> Column {
    Column {
        header,
        align: Align::Left,
        shrink: false,
    }
}

pub const fn number(header: &'static str) -> Column {
    Column {
        header,
        align: Align::Right,
        shrink: false,
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

/// `cell` cut to `width` characters, with `…` when cut.
pub fn fit(cell: &str, width: usize) -> String {
    if chars(cell) <= width {
        return cell.to_string();
    }
    let mut short: String = cell.chars().take(width.saturating_sub(1)).collect();
    short.push('…');
    short
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
                    .map(|(cells, _)| chars(&cells[i]))
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
        let title = if colour {
            self.title.as_str().bold().to_string()
        } else {
            self.title.clone()
        };
        lines.push(title);
        if self.rows.is_empty() {
            lines.push(format!("  {}", self.empty));
            return lines;
        }
        let widths = self.widths(width);
        let line = |cells: Vec<String>| -> String {
            let padded: Vec<String> = cells
                .iter()
                .zip(&self.columns)
                .zip(&widths)
                .map(|((cell, column), &w)| {
                    let cell = fit(cell, w);
                    match column.align {
                        Align::Left => format!("{cell:<w$}"),
                        Align::Right => format!("{cell:>w$}"),
                    }
                })
                .collect();
            padded.join(&" ".repeat(self.gap)).trim_end().to_string()
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
            lines.push(format!(
                "  … {} more rows (--json shows every row)",
                self.rows.len() - max_rows
            ));
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
                "  … 1 more rows (--json shows every row)",
            ]
        );
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
