//! The bcrypt worker pool behind basic auth: fair between clients, bounded, and never
//! working for a client that has gone.
//!
//! A bcrypt check pins a core for its whole cost (about 250 ms at cost 12). One queue
//! for every check let 200 wrong passwords from one address delay a scraper's first login
//! by 11 s. So:
//! - each client (an IPv4 address, or an IPv6 /64, which one host can fill) has a queue of
//!   its own, with at most [`QUEUE_PER_CLIENT`] checks waiting: past it the check is
//!   refused at once ([`Busy`], answered 429), so a flood costs memory and time in
//!   proportion to one queue, not to the flood;
//! - one check per client runs at a time, and the clients take turns: a worker takes the
//!   next check from the client whose turn it is. A scraper's first check waits for at
//!   most one check of each other client, and for none while a worker is free;
//! - the workers are as many as the cores the process may use (`available_parallelism`:
//!   the affinity mask and the cgroup CPU quota), so checks never queue for CPU behind
//!   each other;
//! - a check identical to one waiting or running (same user and password) waits for that
//!   one's result instead of queueing a second;
//! - a check whose every waiter is gone (the client disconnected, hyper dropped the
//!   request) is dropped when its turn comes, and pruned from its client's queue when that
//!   client sends another; a check already running finishes (bcrypt cannot be stopped),
//!   which the cost maximum bounds.
//!
//! A known and an unknown user go through the same queue in the same order: the queue
//! never tells which users exist.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

/// Checks a client may have waiting, besides the one running. At cost 12 that is about
/// 2 s of one core's work; a scraper needs one check per credential.
pub const QUEUE_PER_CLIENT: usize = 8;

/// What checks are grouped by: an IPv4 address, or the /64 of an IPv6 address (an
/// IPv4-mapped IPv6 address counts as its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl Client {
    pub fn of(address: IpAddr) -> Client {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Client(IpAddr::V6(prefix.into()))
            }
            v4 => Client(v4),
        }
    }
}

/// The client already has [`QUEUE_PER_CLIENT`] checks waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// One check's outcome, shared by everyone waiting for it: `None` until done.
type Outcome = Arc<watch::Sender<Option<bool>>>;

struct Job {
    key: [u8; 32],
    password: String,
    hash: Arc<str>,
    done: Outcome,
}

impl Job {
    fn abandoned(&self) -> bool {
        self.done.receiver_count() == 0
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    running: bool,
    /// In `State::turns`.
    waiting_turn: bool,
}

#[derive(Default)]
struct State {
    queues: HashMap<Client, Queue>,
    /// Clients with a check waiting and none running, in the order they take turns.
    turns: VecDeque<Client>,
    /// Checks waiting or running, by credential, for deduplication.
    pending: HashMap<[u8; 32], Outcome>,
    workers: usize,
    shutdown: bool,
    #[cfg(test)]
    ran: usize,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; take it even if poisoned.
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The pool; its workers start with the first check and stop when it is dropped.
pub struct Verifier {
    shared: Arc<Shared>,
    max_workers: usize,
}

impl Default for Verifier {
    fn default() -> Verifier {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Verifier::new(cores)
    }
}

impl Verifier {
    pub fn new(max_workers: usize) -> Verifier {
        Verifier {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
            max_workers: max_workers.max(1),
        }
    }

    /// Whether `password` matches `hash`, checked in `client`'s turn; `key` identifies the
    /// credential (identical checks share one run).
    pub async fn verify(
        &self,
        client: Client,
        key: [u8; 32],
        password: String,
        hash: Arc<str>,
    ) -> Result<bool, Busy> {
        let mut outcome = self.enqueue(client, key, password, hash)?;
        // The sender is dropped without a value only when the pool shuts down.
        let verified = match outcome.wait_for(Option::is_some).await {
            Ok(done) => done.unwrap_or(false),
            Err(_shut_down) => false,
        };
        Ok(verified)
    }

    fn enqueue(
        &self,
        client: Client,
        key: [u8; 32],
        password: String,
        hash: Arc<str>,
    ) -> Result<watch::Receiver<Option<bool>>, Busy> {
        let mut state = self.shared.lock();
        if let Some(done) = state.pending.get(&key) {
            return Ok(done.subscribe());
        }
        let queue = state.queues.entry(client).or_default();
        let mut pruned = Vec::new();
        queue.jobs.retain(|job| {
            let keep = !job.abandoned();
            if !keep {
                pruned.push(job.key);
            }
            keep
        });
        if queue.jobs.len() >= QUEUE_PER_CLIENT {
            return Err(Busy);
        }
        let (sender, receiver) = watch::channel(None);
        let done = Arc::new(sender);
        queue.jobs.push_back(Job {
            key,
            password,
            hash,
            done: Arc::clone(&done),
        });
        let takes_turn = !queue.running && !queue.waiting_turn;
        if takes_turn {
            queue.waiting_turn = true;
        }
        for key in pruned {
            state.pending.remove(&key);
        }
        state.pending.insert(key, done);
        if takes_turn {
            state.turns.push_back(client);
        }
        if state.workers < self.max_workers {
            state.workers += 1;
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("bcrypt".into())
                .spawn(move || work(&shared));
            if let Err(error) = spawned {
                state.workers -= 1;
                tracing::warn!(%error, "cannot start a bcrypt worker");
            }
        }
        drop(state);
        self.shared.wake.notify_one();
        Ok(receiver)
    }

    #[cfg(test)]
    fn ran(&self) -> usize {
        self.shared.lock().ran
    }

    /// Fills `client`'s queue with checks no worker takes until [`Self::start_workers`].
    #[cfg(test)]
    pub(super) fn fill(&self, client: Client) -> Vec<watch::Receiver<Option<bool>>> {
        self.shared.lock().workers = self.max_workers;
        (0..QUEUE_PER_CLIENT)
            .map(|n| {
                let key = [u8::try_from(n).unwrap_or(0); 32];
                let hash = Arc::from(tests::hash().as_ref());
                self.enqueue(client, key, "x".into(), hash).unwrap()
            })
            .collect()
    }

    /// Lets the next check start workers again (after [`Self::fill`]).
    #[cfg(test)]
    pub(super) fn start_workers(&self) {
        self.shared.lock().workers = 0;
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
    }
}

fn work(shared: &Shared) {
    loop {
        let (client, job) = {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    return;
                }
                if let Some(next) = next_job(&mut state) {
                    break next;
                }
                state = match shared.wake.wait(state) {
                    Ok(state) => state,
                    Err(poisoned) => poisoned.into_inner(),
                };
            }
        };
        let ok = match bcrypt::verify(job.password.as_bytes(), &job.hash) {
            Ok(ok) => ok,
            // Hashes are validated at load: this is a password bcrypt refuses.
            Err(error) => {
                tracing::debug!(%error, "bcrypt check failed");
                false
            }
        };
        let mut state = shared.lock();
        #[cfg(test)]
        {
            state.ran += 1;
        }
        finish(&mut state, client, &job);
        drop(state);
        shared.wake.notify_one();
        job.done.send_replace(Some(ok));
    }
}

/// The next check to run, from the client whose turn it is; abandoned checks on the way
/// are dropped.
fn next_job(state: &mut State) -> Option<(Client, Job)> {
    while let Some(client) = state.turns.pop_front() {
        let Some(queue) = state.queues.get_mut(&client) else {
            continue;
        };
        queue.waiting_turn = false;
        let mut dropped = Vec::new();
        let mut found = None;
        while let Some(job) = queue.jobs.pop_front() {
            if job.abandoned() {
                dropped.push(job.key);
            } else {
                queue.running = true;
                found = Some(job);
                break;
            }
        }
        if found.is_none() && !queue.running {
            state.queues.remove(&client);
        }
        for key in dropped {
            state.pending.remove(&key);
        }
        if let Some(job) = found {
            return Some((client, job));
        }
    }
    None
}

/// After `client`'s check ran: the credential is no longer pending, and the client takes
/// its next turn at the back of the line.
fn finish(state: &mut State, client: Client, job: &Job) {
    if state
        .pending
        .get(&job.key)
        .is_some_and(|done| Arc::ptr_eq(done, &job.done))
    {
        state.pending.remove(&job.key);
    }
    let Some(queue) = state.queues.get_mut(&client) else {
        return;
    };
    queue.running = false;
    if queue.jobs.is_empty() {
        state.queues.remove(&client);
    } else if !queue.waiting_turn {
        queue.waiting_turn = true;
        state.turns.push_back(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> Client {
        Client::of(address.parse().unwrap())
    }

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// A cost-4 hash of "right": the checks below are fast.
    pub(super) fn hash() -> Arc<str> {
        bcrypt::hash("right", 4).unwrap().into()
    }

    #[test]
    fn clients_are_addresses_and_ipv6_slash_64s() {
        assert_eq!(client("10.0.0.1"), client("::ffff:10.0.0.1"));
        assert_ne!(client("10.0.0.1"), client("10.0.0.2"));
        assert_eq!(client("2001:db8:1:2::1"), client("2001:db8:1:2:ffff::9"));
        assert_ne!(client("2001:db8:1:2::1"), client("2001:db8:1:3::1"));
    }

    #[tokio::test]
    async fn checks_answer_right_and_wrong() {
        let pool = Verifier::new(2);
        let a = client("127.0.0.1");
        assert_eq!(
            pool.verify(a, key(1), "right".into(), hash()).await,
            Ok(true)
        );
        assert_eq!(
            pool.verify(a, key(2), "wrong".into(), hash()).await,
            Ok(false)
        );
    }

    /// No worker may run while the queue is filled, so the pool has none until the test
    /// says so: a pool of one worker, held busy by a check whose hash is slow.
    fn held(pool: &Verifier) {
        let mut state = pool.shared.lock();
        state.workers = pool.max_workers;
    }

    #[tokio::test]
    async fn a_client_past_its_queue_is_refused_and_others_are_not() {
        let pool = Verifier::new(1);
        held(&pool);
        let flood = client("127.0.0.2");
        let mut waiting = Vec::new();
        for n in 0..QUEUE_PER_CLIENT as u8 {
            waiting.push(pool.enqueue(flood, key(n), "x".into(), hash()).unwrap());
        }
        assert_eq!(
            pool.enqueue(flood, key(200), "x".into(), hash()).err(),
            Some(Busy)
        );
        let scraper = client("127.0.0.1");
        assert!(pool.enqueue(scraper, key(201), "x".into(), hash()).is_ok());
        // The scraper's turn comes second, not after the flood's queue.
        let state = pool.shared.lock();
        assert_eq!(state.turns, VecDeque::from([flood, scraper]));
    }

    #[tokio::test]
    async fn identical_checks_share_one_run() {
        let pool = Verifier::new(1);
        held(&pool);
        let a = pool.enqueue(client("10.0.0.1"), key(7), "right".into(), hash());
        let b = pool.enqueue(client("10.0.0.2"), key(7), "right".into(), hash());
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        assert_eq!(pool.shared.lock().queues.len(), 1, "one check queued");
        pool.shared.lock().workers = 0;
        // A new check starts the worker.
        let third = pool.verify(client("10.0.0.3"), key(8), "right".into(), hash());
        assert_eq!(third.await, Ok(true));
        assert_eq!(*a.wait_for(Option::is_some).await.unwrap(), Some(true));
        assert_eq!(*b.wait_for(Option::is_some).await.unwrap(), Some(true));
        assert_eq!(pool.ran(), 2);
    }

    #[tokio::test]
    async fn checks_of_disconnected_clients_kept_a_core_busy() {
        let pool = Verifier::new(1);
        held(&pool);
        let gone = client("127.0.0.2");
        for n in 0..QUEUE_PER_CLIENT as u8 {
            drop(pool.enqueue(gone, key(n), "x".into(), hash()).unwrap());
        }
        // The client came back: its abandoned checks no longer fill its queue.
        let again = pool
            .enqueue(gone, key(100), "right".into(), hash())
            .unwrap();
        assert_eq!(pool.shared.lock().queues[&gone].jobs.len(), 1);
        drop(again);
        pool.shared.lock().workers = 0;
        let scraper = pool.verify(client("127.0.0.1"), key(101), "right".into(), hash());
        assert_eq!(scraper.await, Ok(true));
        // The abandoned check's turn came first: had it run, it would be counted.
        assert_eq!(pool.ran(), 1, "only the check someone waited for ran");
        assert!(pool.shared.lock().pending.is_empty());
    }
}
