//! Enums whose variants are label values: [`label_enum!`] writes each variant's label once,
//! beside the variant, and derives the enum's `COUNT`, `ALL`, `label()` and `index()` from
//! that one table.
//!
//! Label values are a public contract that dashboards and alerts match on, so they are
//! written out by hand, never derived from a variant's name. Each must be lowercase
//! snake_case and unique within its enum: checked when the enum is compiled.

/// Defines a fieldless enum from a table of `Variant => "label"` rows, with:
/// - `COUNT`, the number of variants (the length of per-variant arrays);
/// - `ALL`, every variant in the order of the rows (the order of exported series);
/// - `label()`, the row's label;
/// - `index()`, the variant's position in `ALL`, to index per-variant arrays.
///
/// A label that is not lowercase snake_case, or written twice, fails the build.
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident => $label:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Number of variants: the length of per-variant arrays.
            pub const COUNT: usize = [$($label),+].len();

            /// Every variant, in the order of its label table.
            pub const ALL: [$name; $name::COUNT] = [$($name::$variant),+];

            /// The label value.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// Index into per-variant arrays (the position in `ALL`).
            pub fn index(self) -> usize {
                self as usize
            }
        }

        const _: () = assert!(
            $crate::label::valid_labels(&[$($label),+]),
            concat!(
                "labels of ",
                stringify!($name),
                " must be lowercase snake_case and unique"
            )
        );
    };
}
pub(crate) use label_enum;

/// True when every label is lowercase snake_case (`[a-z][a-z0-9_]*`, no `__`, no trailing
/// `_`) and none is written twice. `const` so that [`label_enum!`] checks at compile time.
pub const fn valid_labels(labels: &[&str]) -> bool {
    let mut i = 0;
    while i < labels.len() {
        if !is_snake_case(labels[i].as_bytes()) {
            return false;
        }
        let mut j = i + 1;
        while j < labels.len() {
            if bytes_eq(labels[i].as_bytes(), labels[j].as_bytes()) {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const fn is_snake_case(label: &[u8]) -> bool {
    if label.is_empty() || !label[0].is_ascii_lowercase() || label[label.len() - 1] == b'_' {
        return false;
    }
    let mut i = 1;
    while i < label.len() {
        let b = label[i];
        let word = b.is_ascii_lowercase() || b.is_ascii_digit();
        if !(word || (b == b'_' && label[i - 1] != b'_')) {
            return false;
        }
        i += 1;
    }
    true
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    label_enum! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Sample {
            First => "first",
            SecondOne => "second_one",
            Third2 => "third2",
        }
    }

    #[test]
    fn the_table_gives_count_all_label_and_index() {
        assert_eq!(Sample::COUNT, 3);
        assert_eq!(
            Sample::ALL,
            [Sample::First, Sample::SecondOne, Sample::Third2]
        );
        assert_eq!(
            Sample::ALL.map(Sample::label),
            ["first", "second_one", "third2"]
        );
        for (i, sample) in Sample::ALL.into_iter().enumerate() {
            assert_eq!(sample.index(), i);
        }
    }

    #[test]
    fn snake_case_labels_are_valid() {
        assert!(valid_labels(&[
            "established",
            "fin_wait1",
            "listen_dump",
            "x"
        ]));
    }

    #[test]
    fn labels_not_lowercase_snake_case_are_refused() {
        for bad in [
            "",
            "FinWait1",
            "fin-wait",
            "fin wait",
            "_x",
            "x_",
            "fin__wait",
            "1x",
            "é",
        ] {
            assert!(!valid_labels(&[bad]), "{bad:?}");
        }
    }

    #[test]
    fn a_label_written_twice_is_refused() {
        assert!(!valid_labels(&["listen", "established", "listen"]));
    }
}
