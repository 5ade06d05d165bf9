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
    peaks.unix.insert(Box::from(&b"\0gunicorn"[..]), 9);
    peaks.unix.insert(Box::from(&b"/run/php/fpm.sock\0"[..]), 1);
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
fn paths_beyond_the_cap_fold_into_other_by_queue_then_sockets() {
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
    peaks.unix.insert(Box::from(&b"/b\0"[..]), 7);
    let f = a.finish(&owners, &settings, &peaks);
    // c ranks first by queue, a second by sockets; b and d are summed into other.
    assert_eq!(
        lines(&f),
        vec![
            "\"/a\" \"app\" 0/10 peak 0",
            "\"/c\" \"app\" 2/30 peak 2",
            "\"other\" \"other\" 0/60 peak 7",
        ]
    );
    assert_eq!(f.folded_paths, 2);
    assert_eq!(f.sockets.get(UnixType::Stream, UnixState::Listen), 4);
}

#[test]
fn listen_sample_keeps_the_largest_queue_per_name() {
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
    assert_eq!(first.unix.get(&b"\0x"[..]), Some(&4));
    assert_eq!(first.unix.get(&b"/y\0"[..]), Some(&1));
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
    /// and per listener name the summed queue and backlog, the lowest owner's name and
    /// the unowned listeners; caps high enough to fold nothing.
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

        type Naive = std::collections::BTreeMap<String, (Vec<String>, u64, u64)>;
        let mut naive = Naive::new();
        let mut unowned = 0;
        for r in records.iter().filter(|r| r.state == UnixState::Listen) {
            let process = if (1..5).contains(&r.inode) {
                format!("proc-{}", r.inode)
            } else {
                unowned += 1;
                "unknown".to_string()
            };
            let entry = naive.entry(Name::of(r.name).label()).or_default();
            entry.0.push(process);
            entry.1 += u64::from(r.recv_queue);
            entry.2 += u64::from(r.send_queue);
        }
        let want: Vec<String> = naive
            .into_iter()
            .map(|(path, (processes, length, limit))| {
                let process = processes.into_iter().min().expect("a listener");
                format!("{path:?} {process:?} {length}/{limit} peak {length}")
            })
            .collect();
        proptest::prop_assert_eq!(lines(&f), want);
        proptest::prop_assert_eq!(f.unattributed, unowned);
        proptest::prop_assert_eq!(f.folded_paths, 0);
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
    assert_eq!(
        lines(&f),
        vec![
            format!("{:?} \"app\" 3/32 peak 3", "@svc\u{fffd}"),
            format!("{cut:?} \"alpha\" 5/16 peak 5"),
        ]
    );
}
