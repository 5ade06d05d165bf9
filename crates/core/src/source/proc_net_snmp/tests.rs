use super::*;
use crate::source::kernel_value::MetricKind;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/proc")
}

fn fixture(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A directory of its own under the temporary directory, empty.
fn temp_root(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "sockdiag-proc-net-snmp-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// Values of the capture in tests/fixtures/proc/netstat (see the README there).
const CAPTURED_NETSTAT: NetCounters = NetCounters {
    listen_overflows: Some(15),
    listen_drops: Some(15),
    abort_on_timeout: Some(5),
    abort_on_close: Some(3),
    time_wait_overflow: Some(5),
    active_opens: None,
    passive_opens: None,
    udp_rcvbuf_errors: None,
    udp_in_errors: None,
    udp_no_ports: None,
    udp_sndbuf_errors: None,
    udp_in_csum_errors: None,
    udp6_rcvbuf_errors: None,
    udp6_in_errors: None,
    udp6_no_ports: None,
    udp6_sndbuf_errors: None,
    udp6_in_csum_errors: None,
};

/// Values of the capture in tests/fixtures/proc/snmp.
const CAPTURED_SNMP: NetCounters = NetCounters {
    active_opens: Some(16),
    passive_opens: Some(11),
    listen_overflows: None,
    listen_drops: None,
    abort_on_timeout: None,
    abort_on_close: None,
    time_wait_overflow: None,
    udp_rcvbuf_errors: Some(0),
    udp_in_errors: Some(0),
    udp_no_ports: Some(0),
    udp_sndbuf_errors: Some(0),
    udp_in_csum_errors: Some(0),
    udp6_rcvbuf_errors: None,
    udp6_in_errors: None,
    udp6_no_ports: None,
    udp6_sndbuf_errors: None,
    udp6_in_csum_errors: None,
};

/// The UDP counters a later table may add: rows of `snmp` and `snmp6`, to show that the
/// parsers need nothing beyond the rows.
fn udp_rows() -> [KernelValue; 4] {
    let row = |source, section, name| KernelValue {
        source,
        section,
        name,
        metric: "test_udp",
        help: "UDP.",
        kind: MetricKind::Counter,
    };
    [
        row(KernelSource::Snmp, "Udp", "RcvbufErrors"),
        row(KernelSource::Snmp, "Udp", "InCsumErrors"),
        row(KernelSource::Snmp6, "Udp6", "RcvbufErrors"),
        row(KernelSource::Snmp6, "Udp6", "NoPorts"),
    ]
}

#[test]
fn parses_captured_netstat() {
    assert_eq!(
        parse(KernelSource::Netstat, &fixture("netstat")),
        Ok(CAPTURED_NETSTAT)
    );
}

#[test]
fn parses_captured_snmp_despite_negative_maxconn() {
    assert_eq!(
        parse(KernelSource::Snmp, &fixture("snmp")),
        Ok(CAPTURED_SNMP)
    );
}

#[test]
fn reads_fixture_root() {
    // The UDP rows of snmp and snmp6: every one 0 in the captures.
    let (counters, errors) = read(&fixtures());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        counters,
        NetCounters {
            listen_overflows: Some(15),
            listen_drops: Some(15),
            abort_on_timeout: Some(5),
            abort_on_close: Some(3),
            time_wait_overflow: Some(5),
            active_opens: Some(16),
            passive_opens: Some(11),
            udp_rcvbuf_errors: Some(0),
            udp_in_errors: Some(0),
            udp_no_ports: Some(0),
            udp_sndbuf_errors: Some(0),
            udp_in_csum_errors: Some(0),
            udp6_rcvbuf_errors: Some(0),
            udp6_in_errors: Some(0),
            udp6_no_ports: Some(0),
            udp6_sndbuf_errors: Some(0),
            udp6_in_csum_errors: Some(0),
        }
    );
    assert_eq!(
        counters,
        CAPTURED_NETSTAT
            .or(CAPTURED_SNMP)
            .or(parse(KernelSource::Snmp6, &fixture("snmp6")).unwrap())
    );
    assert_eq!(counters.missing_count(), 0);
    assert_eq!(counters.missing_fields(), Vec::<&str>::new());
}

#[test]
fn field_missing_from_kernel_is_none_and_counted() {
    let netstat = read_file(
        &fixtures().join("netstat-no-tcptimewaitoverflow"),
        KernelSource::Netstat,
    )
    .unwrap();
    let snmp6 = parse(KernelSource::Snmp6, &fixture("snmp6")).unwrap();
    let counters = netstat.or(CAPTURED_SNMP).or(snmp6);
    assert_eq!(
        counters,
        NetCounters {
            time_wait_overflow: None,
            ..read(&fixtures()).0
        }
    );
    assert_eq!(counters.missing_count(), 1);
    assert_eq!(counters.missing_fields(), ["TcpExt.TCPTimeWaitOverflow"]);
}

#[test]
fn absent_section_leaves_every_field_missing() {
    let netstat = parse(KernelSource::Netstat, "").unwrap();
    let counters = netstat.or(parse(KernelSource::Snmp, "").unwrap());
    assert_eq!(counters, NetCounters::default());
    assert_eq!(counters.missing_count(), 17);
}

#[test]
fn tcp_section_does_not_match_tcpext_lines() {
    let text = "TcpExt: ActiveOpens PassiveOpens\nTcpExt: 1 2\n\
                Tcp: PassiveOpens ActiveOpens\nTcp: 4 3\n";
    assert_eq!(
        parse(KernelSource::Snmp, text),
        Ok(NetCounters {
            active_opens: Some(3),
            passive_opens: Some(4),
            ..NetCounters::default()
        })
    );
}

#[test]
fn invalid_wanted_value_is_an_error_with_path_and_text() {
    let dir = fixtures().join("netstat-malformed-listendrops");
    let err = read_file(&dir, KernelSource::Netstat).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Parse {
                error: ParseError::InvalidValue { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "parsing {}/netstat: TcpExt ListenDrops: value \"-1\" is not an unsigned \
             integer: invalid digit found in string",
            dir.display()
        )
    );
}

#[test]
fn missing_value_line_is_an_error_with_path() {
    let dir = fixtures().join("snmp-truncated-tcp");
    assert_eq!(
        read_file(&dir, KernelSource::Snmp).unwrap_err().to_string(),
        format!(
            "parsing {}/snmp: Tcp header line is not followed by a Tcp value line \
             (found end of file)",
            dir.display()
        )
    );
    assert_eq!(
        parse(
            KernelSource::Netstat,
            "TcpExt: ListenDrops\nIpExt: InNoRoutes\nIpExt: 0\n"
        )
        .unwrap_err()
        .to_string(),
        "TcpExt header line is not followed by a TcpExt value line \
         (found \"IpExt: InNoRoutes\")"
    );
}

#[test]
fn field_count_mismatch_is_an_error() {
    let err = parse(
        KernelSource::Netstat,
        "TcpExt: ListenOverflows ListenDrops TW\nTcpExt: 1 2\n",
    );
    assert_eq!(
        err,
        Err(ParseError::FieldCountMismatch {
            section: "TcpExt",
            header_fields: 3,
            value_fields: 2,
            line: "TcpExt: 1 2".to_owned(),
        })
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "TcpExt header line has 3 fields but value line has 2: \"TcpExt: 1 2\""
    );
}

#[test]
fn missing_file_is_its_own_error() {
    // The variant directory has netstat but no snmp or snmp6: netstat's values are still
    // read, and each missing file is an error of its own.
    let dir = fixtures().join("netstat-no-tcptimewaitoverflow");
    let (counters, errors) = read(&dir);
    let [snmp, snmp6] = &errors[..] else {
        panic!("two errors expected: {errors:?}");
    };
    assert!(matches!(snmp, Error::NotFound { .. }), "{snmp:?}");
    assert_eq!(
        (snmp.to_string(), snmp6.to_string()),
        (
            format!("{}/snmp: no such file", dir.display()),
            format!("{}/snmp6: no such file", dir.display())
        )
    );
    assert_eq!(
        counters.missing_fields(),
        [
            "TcpExt.TCPTimeWaitOverflow",
            "Tcp.ActiveOpens",
            "Tcp.PassiveOpens",
            "Udp.RcvbufErrors",
            "Udp.InErrors",
            "Udp.NoPorts",
            "Udp.SndbufErrors",
            "Udp.InCsumErrors",
            "Udp6.RcvbufErrors",
            "Udp6.InErrors",
            "Udp6.NoPorts",
            "Udp6.SndbufErrors",
            "Udp6.InCsumErrors"
        ]
    );
}

#[test]
fn unreadable_file_is_a_read_error() {
    // A regular file used as the root: opening root/snmp fails with ENOTDIR, not ENOENT.
    let root = fixtures().join("snmp");
    let err = read_file(&root, KernelSource::Snmp).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "reading {}/snmp: Not a directory (os error 20)",
            root.display()
        )
    );
}

/// Issue 23: a counters file was read whole, however long. Past 64 KiB it is now an error
/// for that file (its values missing and counted), not a cut text parsed as if whole.
#[test]
fn netstat_longer_than_64_kib_is_a_read_error_not_a_cut_text() {
    let root = temp_root("long");
    // A valid file: the TcpExt section after 64 KiB of another section's header.
    let padding = format!("IpExt: {}\n", "InNoRoutes ".repeat(6000));
    let text = format!("{padding}IpExt: 0\n{}", fixture("netstat"));
    assert!(text.len() > 64 << 10);
    std::fs::write(root.join("netstat"), &text).unwrap();
    let err = read_file(&root, KernelSource::Netstat).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}/netstat is larger than 65536 bytes", root.display())
    );
    let (counters, errors) = read(&root);
    assert_eq!(
        errors.len(),
        3,
        "netstat too long, snmp and snmp6 absent: {errors:?}"
    );
    assert_eq!(counters, NetCounters::default());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Issue 23: a counters file that is a symlink to `/dev/zero` was read without end.
#[test]
fn netstat_symlink_to_dev_zero_is_refused_without_reading() {
    let root = temp_root("zero");
    std::os::unix::fs::symlink("/dev/zero", root.join("netstat")).unwrap();
    let err = read_file(&root, KernelSource::Netstat).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}/netstat is not a regular file", root.display())
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Guards the field names against kernel renames: on the kernel running the tests every
/// wanted counter must be found in the calling thread's namespace.
#[test]
fn live_thread_self_has_every_wanted_field() {
    let (counters, errors) = read(Path::new(DEFAULT_ROOT));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(counters.missing_fields(), Vec::<&str>::new());
}

#[test]
fn udp_rows_of_snmp_and_snmp6_need_no_code() {
    let rows = udp_rows();
    let snmp = "Tcp: ActiveOpens\nTcp: 1\n\
                Udp: InDatagrams RcvbufErrors InCsumErrors\nUdp: 7 3 2\n\
                UdpLite: InDatagrams RcvbufErrors InCsumErrors\nUdpLite: 9 9 9\n";
    assert_eq!(
        parse_rows(KernelSource::Snmp, snmp, &rows),
        Ok(vec![Some(3), Some(2), None, None])
    );
    // Udp6 before Udp6's lookalikes, names padded with spaces and a tab as the kernel does.
    let snmp6 = "Ip6InReceives                   \t1\n\
                 Udp6InDatagrams                 \t5\n\
                 Udp6NoPorts                     \t4\n\
                 Udp6RcvbufErrors                \t6\n\
                 UdpLite6RcvbufErrors            \t9\n";
    assert_eq!(
        parse_rows(KernelSource::Snmp6, snmp6, &rows),
        Ok(vec![None, None, Some(6), Some(4)])
    );
}

#[test]
fn captured_snmp6_has_the_udp6_fields() {
    let values = parse_rows(KernelSource::Snmp6, &fixture("snmp6"), &udp_rows()).unwrap();
    assert_eq!(values, [None, None, Some(0), Some(0)]);
}

#[test]
fn snmp6_line_without_exactly_one_value_is_an_error() {
    let rows = udp_rows();
    for line in ["Udp6NoPorts", "Udp6NoPorts 1 2"] {
        assert_eq!(
            parse_rows(KernelSource::Snmp6, line, &rows)
                .unwrap_err()
                .to_string(),
            format!("Udp6NoPorts line does not hold one value: {line:?}")
        );
    }
    assert_eq!(
        parse_rows(KernelSource::Snmp6, "Udp6NoPorts -1\n", &rows)
            .unwrap_err()
            .to_string(),
        "Udp6 NoPorts: value \"-1\" is not an unsigned integer: invalid digit found in string"
    );
}

#[test]
fn snmp6_field_absent_is_none() {
    let values = parse_rows(KernelSource::Snmp6, "Udp6InDatagrams 1\n", &udp_rows());
    assert_eq!(values, Ok(vec![None; 4]));
}

/// The two lines of `section` with `fields` (name, value) in the order of `keys`
/// (a random sort key per field).
fn render_section(section: &str, fields: &[(String, String)], keys: &[u32]) -> String {
    let mut order: Vec<usize> = (0..fields.len()).collect();
    order.sort_by_key(|&i| (keys.get(i).copied().unwrap_or(0), i));
    let names: Vec<&str> = order.iter().map(|&i| fields[i].0.as_str()).collect();
    let values: Vec<&str> = order.iter().map(|&i| fields[i].1.as_str()).collect();
    format!(
        "{section}: {}\n{section}: {}\n",
        names.join(" "),
        values.join(" ")
    )
}

/// A whole `source` file holding the table's rows of `source` with `values` (a value per
/// table row), present when `Some`, among other fields (some negative, as
/// `Tcp: MaxConn -1`) and sections: before each wanted section, one whose name starts like
/// it, which must not match.
fn render(source: KernelSource, values: &[Option<u64>], others: &[i64], keys: &[u32]) -> String {
    const OTHER_NAMES: [&str; 4] = ["SyncookiesSent", "MaxConn", "TCPFastRetrans", "RtoMin"];
    let rows: Vec<(&KernelValue, Option<u64>)> = NetCounters::TABLE
        .iter()
        .zip(values.iter().copied())
        .filter(|(row, _)| row.source == source)
        .collect();
    let mut sections: Vec<&str> = rows.iter().map(|(row, _)| row.section).collect();
    sections.dedup();
    let mut text = String::from("Ip: Forwarding InReceives\nIp: 1 42\n");
    for section in sections {
        let mut fields: Vec<(String, String)> = rows
            .iter()
            .filter(|(row, _)| row.section == section)
            .filter_map(|(row, value)| Some((row.name.to_string(), (*value)?.to_string())))
            .collect();
        fields.extend(
            OTHER_NAMES
                .iter()
                .zip(others)
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        let lookalike = format!("{section}Ext");
        text += &render_section(&lookalike, &[("ListenDrops".into(), "9".into())], &[]);
        text += &render_section(section, &fields, keys);
    }
    text + "IpExt: InNoRoutes\nIpExt: 0\n"
}

/// `values` (a value per table row) where the row is in `source`'s file, else `None`.
fn counters_of(source: KernelSource, values: &[Option<u64>]) -> NetCounters {
    let mut counters = NetCounters::default();
    for ((row, slot), value) in NetCounters::TABLE
        .iter()
        .zip(counters.slots_mut())
        .zip(values)
    {
        if row.source == source {
            *slot = *value;
        }
    }
    counters
}

fn arb_file() -> impl proptest::strategy::Strategy<Value = (Vec<Option<u64>>, Vec<i64>, Vec<u32>)> {
    use proptest::prelude::*;
    (
        proptest::collection::vec(any::<Option<u64>>(), NetCounters::LEN),
        proptest::collection::vec(any::<i64>(), 0..4),
        proptest::collection::vec(any::<u32>(), NetCounters::LEN + 4),
    )
}

proptest::proptest! {
    /// parse(netstat, render(x)) == x: any values, any field order, wanted fields
    /// missing or not, among other fields and sections.
    #[test]
    fn netstat_parse_of_render_is_the_counters((values, others, keys) in arb_file()) {
        // A "TcpExtExt" lookalike comes first; "TcpExt" still matches exactly.
        let text = render(KernelSource::Netstat, &values, &others, &keys);
        let counters = counters_of(KernelSource::Netstat, &values);
        proptest::prop_assert_eq!(parse(KernelSource::Netstat, &text), Ok(counters), "{}", text);
    }

    /// parse(snmp, render(x)) == x, with a `TcpExt` section before `Tcp`.
    #[test]
    fn snmp_parse_of_render_is_the_counters((values, others, keys) in arb_file()) {
        let text = render(KernelSource::Snmp, &values, &others, &keys);
        let counters = counters_of(KernelSource::Snmp, &values);
        proptest::prop_assert_eq!(parse(KernelSource::Snmp, &text), Ok(counters), "{}", text);
    }
}
