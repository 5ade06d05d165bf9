//! Length caps of the label values taken from outside the exporter: process names,
//! UNIX socket paths, container names. A value longer than its cap is cut at a character
//! boundary and ends in [`MARKER`], so a cut value is still valid UTF-8, is never longer
//! than the cap, and reads as cut. Each kind is capped in one place, where its value is
//! made: process names where the /proc index interns them, UNIX paths where their label
//! is rendered, container names where Docker's config is parsed.

use std::borrow::Cow;

/// Ends a cut value: one character, three bytes, counted within the cap.
pub const MARKER: &str = "…";

/// `process`: comm is at most 15 bytes for a user task; kernel threads' names
/// (`kworker/u8:2-events_unbound`) are longer, up to 64.
pub const PROCESS: usize = 64;

/// `path`: the kernel bounds a bound name at 108 bytes (`sun_path`), but a byte that is
/// not UTF-8 is shown as U+FFFD, three bytes: a path of such bytes renders up to 322.
pub const UNIX_PATH: usize = 128;

/// `container_name` (and any pod or container name a runtime gives): 253 bytes, the
/// longest name Kubernetes accepts (a DNS subdomain), so a valid name is never cut.
pub const CONTAINER_NAME: usize = 253;

/// `value`, or its longest prefix that fits `max` bytes with [`MARKER`] after it.
pub fn cap(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max {
        return Cow::Borrowed(value);
    }
    let mut end = max.saturating_sub(MARKER.len());
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{MARKER}", &value[..end]))
}

/// [`cap`] for an owned value, without a copy when it fits.
pub fn cap_owned(value: String, max: usize) -> String {
    match cap(&value, max) {
        Cow::Borrowed(_) => value,
        Cow::Owned(cut) => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_within_the_cap_are_untouched() {
        assert_eq!(cap("nginx", PROCESS), "nginx");
        let exact = "a".repeat(PROCESS);
        assert!(matches!(cap(&exact, PROCESS), Cow::Borrowed(v) if v == exact));
    }

    #[test]
    fn long_values_end_in_the_marker_within_the_cap() {
        let long = "x".repeat(1000);
        let cut = cap(&long, CONTAINER_NAME);
        assert_eq!(cut.len(), CONTAINER_NAME);
        assert_eq!(cut, format!("{}…", "x".repeat(CONTAINER_NAME - 3)));
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // 'é' is two bytes: the cut point 61 falls inside one.
        let long = "é".repeat(100);
        let cut = cap(&long, PROCESS);
        assert_eq!(cut, format!("{}…", "é".repeat(30)));
        assert!(cut.len() <= PROCESS);
        // Four-byte characters at every offset.
        for prefix in 0..4 {
            let value = format!("{}{}", "a".repeat(prefix), "🦀".repeat(40));
            let cut = cap(&value, UNIX_PATH);
            assert!(
                cut.len() <= UNIX_PATH && cut.len() > UNIX_PATH - 7,
                "{}",
                cut.len()
            );
            assert!(cut.ends_with(MARKER));
        }
    }
}
