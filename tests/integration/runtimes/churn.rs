//! Real containers coming and going while the exporter polls every second: Docker and
//! Podman containers started and removed in a loop for 60 s, at most 25 of each alive at
//! once. No poll may fail, and no scrape may show a name of a container removed before
//! the poll that produced it began.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::containers::{Container, Program};
use super::{exporter, parse_labels, rig, tag};
use crate::netns::in_netns;

const RUN_FOR: Duration = Duration::from_secs(60);
const ALIVE_PER_RUNTIME: usize = 25;
/// At least this many containers started and removed in all.
const AT_LEAST: usize = 50;
/// A scrape shows a poll that began at most this long before it: one interval, and the
/// poll's own time.
const POLL_AGE: Duration = Duration::from_secs(3);

/// When each container was removed, by name; `None` while it runs.
type Ledger = Arc<Mutex<BTreeMap<String, Option<Instant>>>>;

/// Starts and removes containers of one runtime until `stop`.
fn churn(runtime: &'static str, prefix: String, ledger: Ledger, stop: Arc<AtomicBool>) -> usize {
    let mut alive: Vec<Container> = Vec::new();
    let mut started = 0;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("{prefix}-{runtime}-{started}");
        ledger.lock().unwrap().insert(name.clone(), None);
        alive.push(match runtime {
            "docker" => Container::docker(&name, Program::Sleep, &[]),
            _ => Container::podman(&name, Program::Sleep),
        });
        started += 1;
        if alive.len() > ALIVE_PER_RUNTIME || started % 3 == 0 {
            let mut oldest = alive.remove(0);
            oldest.remove();
            ledger
                .lock()
                .unwrap()
                .insert(oldest.name.clone(), Some(Instant::now()));
        }
    }
    for mut container in alive {
        container.remove();
        ledger
            .lock()
            .unwrap()
            .insert(container.name.clone(), Some(Instant::now()));
    }
    started
}

pub fn fifty_containers_churning_for_60_s_leave_no_poll_error_and_no_stale_name() {
    rig::ensure();
    let _exclusive = rig::errors_exclusive();
    let prefix = format!("sockdiag-it-churn-{}", tag());
    let ledger: Ledger = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = ["docker", "podman"]
        .into_iter()
        .map(|runtime| {
            let (prefix, ledger, stop) = (prefix.clone(), ledger.clone(), stop.clone());
            std::thread::spawn(move || churn(runtime, prefix, ledger, stop))
        })
        .collect();
    let checked = {
        let (prefix, ledger, stop) = (prefix.clone(), ledger.clone(), stop.clone());
        in_netns(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                watch(&prefix, &ledger, &stop)
            }));
            stop.store(true, Ordering::Relaxed);
            result
        })
    };
    let started: usize = workers
        .into_iter()
        .map(|w| w.join().expect("churn thread"))
        .sum();
    let (scrapes, named) = checked.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    eprintln!(
        "churn: {started} containers started and removed, {scrapes} scrapes, {named} named series"
    );
    assert!(
        started >= AT_LEAST,
        "only {started} containers started in {RUN_FOR:?}"
    );
    assert!(scrapes >= 30, "only {scrapes} scrapes");
    assert!(named > 0, "no churned container was ever named");
}

/// Scrapes every second for [`RUN_FOR`], checking each; then stops the workers and, once
/// they have removed everything, checks that no name of theirs is left. Returns the
/// scrapes made and how many named series of churned containers they showed.
fn watch(prefix: &str, ledger: &Ledger, stop: &AtomicBool) -> (usize, usize) {
    let mut exporter = exporter(&[]);
    let began = Instant::now();
    let (mut scrapes, mut named) = (0, 0);
    while began.elapsed() < RUN_FOR {
        std::thread::sleep(Duration::from_secs(1));
        let at = Instant::now();
        let all = exporter.scrape_all();
        scrapes += 1;
        let errors = all.family("sockdiag_poll_errors_total");
        assert!(
            errors.values().all(|&v| v == 0.0),
            "poll errors: {errors:?}"
        );
        let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
        for labels in info_rows(&all) {
            let name = &labels["container_name"];
            if !name.starts_with(prefix) {
                continue;
            }
            named += 1;
            match ledger.get(name) {
                None => panic!("{name} named, never started"),
                Some(Some(removed)) => assert!(
                    at.duration_since(*removed) < POLL_AGE,
                    "{name} still named {:?} after its removal",
                    at.duration_since(*removed)
                ),
                Some(None) => {}
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    rig::wait_until(
        "every churned container removed",
        Duration::from_secs(120),
        || {
            let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
            ledger.values().all(Option::is_some)
        },
    );
    exporter.wait_for_fresh_poll();
    let left: Vec<String> = info_rows(&exporter.scrape_all())
        .into_iter()
        .map(|labels| labels["container_name"].clone())
        .filter(|name| name.starts_with(prefix))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    (scrapes, named)
}

fn info_rows(scrape: &crate::exporter::Scrape) -> Vec<BTreeMap<String, String>> {
    scrape
        .family("sockdiag_netns_info")
        .keys()
        .map(|labels| parse_labels(labels.trim_start_matches('{').trim_end_matches('}')))
        .collect()
}
