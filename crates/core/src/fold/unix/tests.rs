use super::*;
use crate::fold::listen::add_unix_to_sample;
use crate::fold::owners::testing::Table;
use crate::source::unix_diag::UnixType;

fn rec(kind: UnixType, state: UnixState, name: &'static [u8], inode: u32) -> Record<'static> {
    Record {
        kind,
        state,
        inode,
        cookie: u64::from(inode),
        name,
        recv_queue: 0,
        send_queue: 0,
    }
}

fn listener(name: &'static [u8], inode: u32, queue: u32, backlog: u32) -> Record<'static> {
    Record {
        recv_queue: queue,
        send_queue: backlog,
        ..rec(UnixType::Stream, UnixState::Listen, name, inode)
    }
}

fn lines(figures: &UnixFigures) -> Vec<String> {
    figures
        .listeners
        .iter()
        .map(|l| {
            format!(
                "{:?} {:?} {}/{} peak {}",
                l.path, l.process, l.length, l.limit, l.peak
            )
        })
        .collect()
}

#[test]
fn counts_every_socket_by_type_and_state() {
    let owners = Table::default();
    let mut a = UnixAggregator::new();
    a.add(
        &rec(UnixType::Stream, UnixState::Established, b"", 1),
        &owners,
    );
    a.add(
        &rec(UnixType::Stream, UnixState::Established, b"", 2),
        &owners,
    );
    a.add(
        &rec(UnixType::Dgram, UnixState::Other, b"/dev/log\0", 3),
        &owners,
    );
    a.add(
        &rec(UnixType::Seqpacket, UnixState::Established, b"", 4),
        &owners,
    );
    let f = a.finish(&owners, &Settings::default(), &ListenSample::default());
    assert_eq!(f.sockets.get(UnixType::Stream, UnixState::Established), 2);
    assert_eq!(f.sockets.get(UnixType::Dgram, UnixState::Other), 1);
    assert_eq!(
        f.sockets.get(UnixType::Seqpacket, UnixState::Established),
        1
    );
    assert_eq!(f.sockets.total(), 4);
    assert_eq!(f.sockets_scanned, 4);
    assert!(
        f.listeners.is_empty(),
        "a bound datagram socket is no listener"
    );
}

#[test]
fn listeners_get_their_owner_name_queue_and_peak() {
    let mut owners = Table::default();
    owners.own(10, "php-fpm8.2");
    owners.own_later(20, "gunicorn");
    let mut a = UnixAggregator::new();
    a.add(&listener(b"/run/php/fpm.sock\0", 10, 3, 64), &owners);
    a.add(&listener(b"\0gunicorn", 20, 0, 128), &owners);
    a.add(&listener(b"/run/gone.sock\0", 30, 1, 5), &owners);
    assert_eq!(a.missing_inodes().len(), 2, "gunicorn and the unowned one");
    let mut peaks = ListenSample::default();
    peaks.unix.insert(20, 9);
    peaks.unix.insert(10, 1);
    let f = a.finish(&owners, &Settings::default(), &peaks);
    assert_eq!(
        lines(&f),
        vec![
            "\"/run/gone.sock\" \"unknown\" 1/5 peak 1",
            // The peak is at least the current length.
            "\"/run/php/fpm.sock\" \"php-fpm8.2\" 3/64 peak 3",
            "\"@gunicorn\" \"gunicorn\" 0/128 peak 9",
        ]
    );
    assert_eq!(f.unattributed, 1);
    assert_eq!(f.folded_paths, 0);
}

#[test]
fn paths_beyond_the_cap_fold_into_other_by_fill_then_sockets() {
    let mut owners = Table::default();
    for inode in 1..=4 {
        owners.own(inode, "app");
    }
    let mut a = UnixAggregator::new();
    // a: idle, 3 accepted connections; b: idle, none; c: 2 queued; d: idle, 1 connection.
    a.add(&listener(b"/a\0", 1, 0, 10), &owners);
    a.add(&listener(b"/b\0", 2, 0, 20), &owners);
    a.add(&listener(b"/c\0", 3, 2, 30), &owners);
    a.add(&listener(b"/d\0", 4, 0, 40), &owners);
    for inode in 100..103 {
        a.add(
            &rec(UnixType::Stream, UnixState::Established, b"/a\0", inode),
            &owners,
        );
    }
    a.add(
        &rec(UnixType::Stream, UnixState::Established, b"/d\0", 103),
        &owners,
    );
    let settings = Settings {
        max_unix_paths: 2,
        ..Settings::default()
    };
    let mut peaks = ListenSample::default();
    peaks.unix.insert(2, 7);
    let f = a.finish(&owners, &settings, &peaks);
    // b ranks first by fill (its peak, 7 of 20), c second (2 of 30); a and d, idle, are
    // summed into other, whatever a's sockets.
    assert_eq!(
        lines(&f),
        vec![
            "\"/b\" \"app\" 0/20 peak 7",
            "\"/c\" \"app\" 2/30 peak 2",
            "\"other\" \"other\" 0/50 peak 0",
        ]
    );
    assert_eq!(f.folded_paths, 2);
    assert_eq!(f.sockets.get(UnixType::Stream, UnixState::Listen), 4);
}

#[test]
fn a_second_listener_at_the_same_path_lowered_the_fill_shown() {
    let mut owners = Table::default();
    owners.own(10, "php-fpm8.2");
    owners.own(11, "a");
    owners.own(12, "php-fpm8.2");
    let path = b"/run/php/php-fpm.sock\0";
    let mut a = UnixAggregator::new();
    // php-fpm's queue is full (limit + 1); a listener of another mount namespace, bound
    // at the same path with a large backlog, is idle.
    a.add(&listener(path, 10, 5, 4), &owners);
    a.add(&listener(path, 11, 0, 4096), &owners);
    let mut peaks = ListenSample::default();
    peaks.unix.insert(11, 3);
    let f = a.finish(&owners, &Settings::default(), &peaks);
    assert_eq!(
        lines(&f),
        vec![
            "\"/run/php/php-fpm.sock\" \"a\" 0/4096 peak 3",
            "\"/run/php/php-fpm.sock\" \"php-fpm8.2\" 5/4 peak 5",
        ]
    );
    // The same, under php-fpm's own name: the fuller one is the series.
    let mut a = UnixAggregator::new();
    a.add(&listener(path, 12, 0, 4096), &owners);
    a.add(&listener(path, 10, 5, 4), &owners);
    let f = a.finish(&owners, &Settings::default(), &ListenSample::default());
    assert_eq!(
        lines(&f),
        vec![
            "\"/run/php/php-fpm.sock\" \"php-fpm8.2\" 5/4 peak 5",
            "\"other\" \"other\" 0/4096 peak 0",
        ]
    );
    assert_eq!((f.folded_paths, f.folded_anomalies), (1, 0));
}

#[test]
fn full_listeners_beyond_the_ceiling_are_counted() {
    let mut owners = Table::default();
    let mut a = UnixAggregator::new();
    // Five full listeners, fill 2 to 6 of 1, and one idle one; a cap of two keeps the
    // four fullest, the ceiling.
    let names: [&'static [u8]; 5] = [b"/s1\0", b"/s2\0", b"/s3\0", b"/s4\0", b"/s5\0"];
    for (inode, name) in (1..=5u32).zip(names) {
        owners.own(inode, "app");
        a.add(&listener(name, inode, inode + 1, 1), &owners);
    }
    owners.own(6, "app");
    a.add(&listener(b"/idle\0", 6, 0, 100), &owners);
    let settings = Settings {
        max_unix_paths: 2,
        ..Settings::default()
    };
    let f = a.finish(&owners, &settings, &ListenSample::default());
    assert_eq!(
        lines(&f),
        vec![
            "\"/s2\" \"app\" 3/1 peak 3",
            "\"/s3\" \"app\" 4/1 peak 4",
            "\"/s4\" \"app\" 5/1 peak 5",
            "\"/s5\" \"app\" 6/1 peak 6",
            "\"other\" \"other\" 2/101 peak 2",
        ]
    );
    assert_eq!((f.folded_paths, f.folded_anomalies), (2, 1));
}

#[test]
fn listen_sample_keeps_the_largest_queue_per_socket() {
    let mut first = ListenSample::default();
    add_unix_to_sample(&mut first, &listener(b"\0x", 1, 4, 8));
    add_unix_to_sample(
        &mut first,
        &rec(UnixType::Stream, UnixState::Established, b"\0x", 2),
    );
    let mut second = ListenSample::default();
    add_unix_to_sample(&mut second, &listener(b"\0x", 1, 2, 8));
    add_unix_to_sample(&mut second, &listener(b"/y\0", 3, 1, 8));
    first.merge_max(second);
    assert_eq!(first.unix.get(&1), Some(&4));
    assert_eq!(first.unix.get(&3), Some(&1));
    assert_eq!(first.unix.len(), 2);
}

fn arb_record() -> impl proptest::strategy::Strategy<Value = Record<'static>> {
    use proptest::prelude::*;
    const NAMES: [&[u8]; 4] = [b"", b"/run/a.sock\0", b"\0b", b"/run/c.sock\0"];
    (
        prop::sample::select(UnixType::ALL.to_vec()),
        prop::sample::select(UnixState::ALL.to_vec()),
        prop::sample::select(NAMES.to_vec()),
        1u32..8,
        0u32..5,
        0u32..130,
    )
        .prop_map(
            |(kind, state, name, inode, recv_queue, send_queue)| Record {
                recv_queue,
                send_queue,
                ..rec(kind, state, name, inode)
            },
        )
}

proptest::proptest! {
    /// The fold of any records equals a naive count of them: sockets per type and state,
    /// per (listener name, owner) the fullest listener, the others summed into `other`,
    /// and the unowned listeners; caps high enough to fold nothing else.
    #[test]
    fn the_fold_equals_a_naive_count(records in proptest::collection::vec(arb_record(), 0..60)) {
        let mut owners = Table::default();
        for inode in 1..5 {
            owners.own(inode, &format!("proc-{inode}"));
        }
        let mut a = UnixAggregator::new();
        for r in &records {
            a.add(r, &owners);
        }
        let settings = Settings {
            max_unix_paths: 1000,
            ..Settings::default()
        };
        let f = a.finish(&owners, &settings, &ListenSample::default());

        let mut sockets = UnixCounts::default();
        for r in &records {
            sockets.add(r.kind, r.state);
        }
        proptest::prop_assert_eq!(&f.sockets, &sockets);
        proptest::prop_assert_eq!(f.sockets_scanned, records.len() as u64);

        type Naive = std::collections::BTreeMap<(String, String), Vec<(u64, u64)>>;
        let mut naive = Naive::new();
        let mut unowned = 0;
        for r in records.iter().filter(|r| r.state == UnixState::Listen) {
            let process = if (1..5).contains(&r.inode) {
                format!("proc-{}", r.inode)
            } else {
                unowned += 1;
                "unknown".to_string()
            };
            naive
                .entry((Name::of(r.name).label(), process))
                .or_default()
                .push((u64::from(r.recv_queue), u64::from(r.send_queue)));
        }
        let (mut want, mut other, mut duplicates) = (Vec::new(), (0, 0), 0);
        for ((path, process), mut queues) in naive {
            // Fullest: length over backlog (a backlog of 0 reads as 1), then length.
            queues.sort_by(|a, b| {
                (u128::from(b.0) * u128::from(a.1.max(1)))
                    .cmp(&(u128::from(a.0) * u128::from(b.1.max(1))))
                    .then(b.0.cmp(&a.0))
            });
            let (length, limit) = queues[0];
            want.push(format!("{path:?} {process:?} {length}/{limit} peak {length}"));
            for (length, limit) in &queues[1..] {
                other = (other.0 + length, other.1 + limit);
                duplicates += 1;
            }
        }
        if duplicates > 0 {
            want.push(format!("\"other\" \"other\" {}/{} peak {}", other.0, other.1, other.0));
        }
        want.sort();
        let mut got = lines(&f);
        got.sort();
        proptest::prop_assert_eq!(got, want);
        proptest::prop_assert_eq!(f.unattributed, unowned);
        proptest::prop_assert_eq!(f.folded_paths, duplicates);
        proptest::prop_assert_eq!(f.folded_anomalies, 0);
    }
}

/// Two abstract names that differ only in bytes that are not UTF-8 render to one label
/// (U+FFFD); before the fix each made its own series with the same label set, which is
/// an invalid exposition. The same holds for names cut to the same prefix at the cap.
#[test]
fn unix_names_with_one_label_became_duplicate_series() {
    let mut owners = Table::default();
    owners.own(1, "app");
    owners.own(2, "app");
    owners.own(3, "zeta");
    owners.own(4, "alpha");
    let mut a = UnixAggregator::new();
    a.add(&listener(b"\0svc\xff", 1, 2, 16), &owners);
    a.add(&listener(b"\0svc\xfe", 2, 1, 16), &owners);
    // Two 107-byte abstract names of invalid bytes, apart only past the cap.
    let mut long_a = vec![0u8];
    long_a.extend([0xffu8; 106]);
    long_a.push(b'a');
    let mut long_b = long_a.clone();
    *long_b.last_mut().unwrap() = b'b';
    let (long_a, long_b): (&'static [u8], &'static [u8]) = (long_a.leak(), long_b.leak());
    a.add(&listener(long_a, 3, 0, 8), &owners);
    a.add(&listener(long_b, 4, 5, 8), &owners);
    let f = a.finish(&owners, &Settings::default(), &ListenSample::default());
    let cut = format!("@{}…", "\u{fffd}".repeat(41));
    // One series per (path, process) label set, never a sum: the fuller of app's two
    // listeners is shown, the other goes to `other`; alpha and zeta keep a series each.
    assert_eq!(
        lines(&f),
        vec![
            format!("{:?} \"app\" 2/16 peak 2", "@svc\u{fffd}"),
            format!("{cut:?} \"alpha\" 5/8 peak 5"),
            format!("{cut:?} \"zeta\" 0/8 peak 0"),
            "\"other\" \"other\" 1/16 peak 1".to_string(),
        ]
    );
}
