use super::date::rfc3339;
use super::{BuildInfo, LONG_VERSION};

#[test]
fn rfc3339_formats_the_epoch_leap_days_and_century_rules() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    // 2000 is a leap year (divisible by 400), 2100 is not (by 100 only).
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(951_868_799), "2000-02-29T23:59:59Z");
    assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
}

#[test]
fn current_build_date_is_rfc3339_utc() {
    let date = BuildInfo::CURRENT.build_date.as_bytes();
    assert_eq!(date.len(), 20, "{}", BuildInfo::CURRENT.build_date);
    for (i, c) in date.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-'),
            10 => assert_eq!(*c, b'T'),
            13 | 16 => assert_eq!(*c, b':'),
            19 => assert_eq!(*c, b'Z'),
            _ => assert!(c.is_ascii_digit(), "{}", BuildInfo::CURRENT.build_date),
        }
    }
}

#[test]
fn long_version_carries_every_build_fact() {
    let build = BuildInfo::CURRENT;
    let first = LONG_VERSION.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "{} (branch: {}, revision: {})",
            build.version, build.branch, build.revision
        )
    );
    assert!(LONG_VERSION.contains(&format!("build date:    {}\n", build.build_date)));
    assert!(LONG_VERSION.contains(&format!("rustc version: {}\n", build.rustc_version)));
    assert!(LONG_VERSION.ends_with(&format!("target:        {}", build.target)));
    assert!(build.target.split('-').count() >= 3, "{}", build.target);
}
