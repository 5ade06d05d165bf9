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
//!   next check from the client whose turn it is;
//! - two lanes. A client with one check (a scraper logging in) is in the first lane, whose
//!   workers run at normal priority, as many as the cores the process may use
//!   (`available_parallelism`: the affinity mask and the cgroup CPU quota). A client that
//!   sends a check while another of its checks waits or runs has a backlog: its checks
//!   move to the backlog lane, whose workers run at nice 19, and the worker running its
//!   current check is lowered to nice 19 too. So a flood's checks take only the CPU that
//!   first logins, polls and scrapes leave, and a scraper's first check waits for none of
//!   them. The lanes have up to that many workers each;
//! - a check identical to one waiting or running (same user and password) waits for that
//!   one's result instead of queueing a second;
//! - a check whose every waiter is gone (the client disconnected, hyper dropped the
//!   request) is dropped when its turn comes, and pruned from its client's queue when that
//!   client sends another; a check already running finishes (bcrypt cannot be stopped),
//!   which the cost maximum bounds.
//!
//! A known and an unknown user go through the same queue in the same order: the queue
//! never tells which users exist. A client leaves the backlog lane once it has nothing
//! waiting or running.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

/// Checks a client may have waiting, besides the one running. At cost 12 that is about
/// 2 s of one core's work; a scraper needs one check per credential.
pub const QUEUE_PER_CLIENT: usize = 8;

/// The nice value of the backlog lane's workers: the lowest priority.
const BACKLOG_NICE: i32 = 19;

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

/// Which workers take a client's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    First = 0,
    Backlog = 1,
}

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
    /// The worker running this client's check.
    running: Option<usize>,
    /// In `State::turns` of its lane.
    waiting_turn: bool,
    /// Sent a check while another waited or ran; until the queue is empty and idle.
    backlog: bool,
}

impl Queue {
    fn lane(&self) -> Lane {
        if self.backlog {
            Lane::Backlog
        } else {
            Lane::First
        }
    }
}

struct Worker {
    lane: Lane,
    /// The worker thread's id, once it has started: lowering a running check's priority
    /// needs it.
    tid: Option<rustix::thread::Pid>,
}

#[derive(Default)]
struct State {
    queues: HashMap<Client, Queue>,
    /// Per lane, the clients with a check waiting and none running, in turn order.
    turns: [VecDeque<Client>; 2],
    /// Checks waiting or running, by credential, for deduplication.
    pending: HashMap<[u8; 32], Outcome>,
    workers: HashMap<usize, Worker>,
    next_worker: usize,
    /// Per lane: workers, and workers waiting for a check.
    count: [usize; 2],
    idle: [usize; 2],
    shutdown: bool,
    #[cfg(test)]
    ran: usize,
}

struct Shared {
    state: Mutex<State>,
    /// Per lane.
    wake: [Condvar; 2],
    max_workers: usize,
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

/// The pool; its workers start with the first checks and stop when it is dropped.
pub struct Verifier {
    shared: Arc<Shared>,
}

impl Default for Verifier {
    fn default() -> Verifier {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Verifier::new(cores)
    }
}

impl Verifier {
    /// A pool with up to `max_workers` workers per lane.
    pub fn new(max_workers: usize) -> Verifier {
        Verifier {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: [Condvar::new(), Condvar::new()],
                max_workers: max_workers.max(1),
            }),
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
        let busy_before = queue.running.is_some() || !queue.jobs.is_empty();
        queue.jobs.push_back(Job {
            key,
            password,
            hash,
            done: Arc::clone(&done),
        });
        let joins_backlog = busy_before && !queue.backlog;
        queue.backlog |= busy_before;
        let lane = queue.lane();
        let running = queue.running;
        // A client with a check running takes its next turn when that one finishes.
        let moves_turn = joins_backlog && queue.waiting_turn;
        let takes_turn = running.is_none() && (!queue.waiting_turn || moves_turn);
        if running.is_none() {
            queue.waiting_turn = true;
        }
        for key in pruned {
            state.pending.remove(&key);
        }
        state.pending.insert(key, done);
        if moves_turn {
            state.turns[Lane::First as usize].retain(|c| *c != client);
        }
        if takes_turn {
            state.turns[lane as usize].push_back(client);
        }
        if let (true, Some(worker)) = (joins_backlog, running) {
            demote(&mut state, worker);
        }
        self.ensure_worker(&mut state, lane);
        drop(state);
        self.shared.wake[lane as usize].notify_one();
        Ok(receiver)
    }

    /// Starts a worker in `lane` if none is free there and the lane has room.
    fn ensure_worker(&self, state: &mut State, lane: Lane) {
        let at = lane as usize;
        if state.idle[at] > 0 || state.count[at] >= self.shared.max_workers {
            return;
        }
        let id = state.next_worker;
        state.next_worker += 1;
        state.count[at] += 1;
        state.workers.insert(id, Worker { lane, tid: None });
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("bcrypt".into())
            .spawn(move || work(&shared, id));
        if let Err(error) = spawned {
            state.count[at] -= 1;
            state.workers.remove(&id);
            tracing::warn!(%error, "cannot start a bcrypt worker");
        }
    }

    #[cfg(test)]
    fn ran(&self) -> usize {
        self.shared.lock().ran
    }

    /// Fills `client`'s queue with checks no worker takes until [`Self::start_workers`].
    #[cfg(test)]
    pub(super) fn fill(&self, client: Client) -> Vec<watch::Receiver<Option<bool>>> {
        self.shared.lock().count = [self.shared.max_workers; 2];
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
        self.shared.lock().count = [0; 2];
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        for wake in &self.shared.wake {
            wake.notify_all();
        }
    }
}

/// Moves a worker running a check of a client that now has a backlog to the backlog lane,
/// lowering its priority (for good: raising it again needs a privilege).
fn demote(state: &mut State, id: usize) {
    let Some(worker) = state.workers.get_mut(&id) else {
        return;
    };
    if worker.lane == Lane::Backlog {
        return;
    }
    worker.lane = Lane::Backlog;
    let tid = worker.tid;
    state.count[Lane::First as usize] -= 1;
    state.count[Lane::Backlog as usize] += 1;
    if let Some(tid) = tid {
        lower_priority(Some(tid));
    }
}

fn lower_priority(tid: Option<rustix::thread::Pid>) {
    // On Linux a thread id names the one thread.
    if let Err(error) = rustix::process::setpriority_process(tid, BACKLOG_NICE) {
        tracing::debug!(%error, "cannot lower a bcrypt worker's priority");
    }
}

fn work(shared: &Shared, id: usize) {
    let tid = rustix::thread::gettid();
    let mut lane = {
        let mut state = shared.lock();
        let Some(worker) = state.workers.get_mut(&id) else {
            return;
        };
        worker.tid = Some(tid);
        worker.lane
    };
    if lane == Lane::Backlog {
        lower_priority(None);
    }
    while let Some((client, job)) = next(shared, id, &mut lane) {
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
        let requeued = finish(&mut state, client, &job);
        drop(state);
        if let Some(lane) = requeued {
            shared.wake[lane as usize].notify_one();
        }
        job.done.send_replace(Some(ok));
    }
}

/// Waits for this worker's next check; `None` when the worker is to stop (shutdown, or
/// its lane has more workers than allowed after a demotion).
fn next(shared: &Shared, id: usize, lane: &mut Lane) -> Option<(Client, Job)> {
    let mut state = shared.lock();
    loop {
        // A demotion moves a worker while it runs a check.
        *lane = state.workers.get(&id).map_or(Lane::Backlog, |w| w.lane);
        let at = *lane as usize;
        if state.shutdown || state.count[at] > shared.max_workers {
            state.count[at] -= 1;
            state.workers.remove(&id);
            return None;
        }
        if let Some(next) = next_job(&mut state, *lane, id) {
            return Some(next);
        }
        state.idle[at] += 1;
        state = match shared.wake[at].wait(state) {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.idle[at] -= 1;
    }
}

/// The next check to run in `lane`, from the client whose turn it is; abandoned checks on
/// the way are dropped.
fn next_job(state: &mut State, lane: Lane, worker: usize) -> Option<(Client, Job)> {
    while let Some(client) = state.turns[lane as usize].pop_front() {
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
                queue.running = Some(worker);
                found = Some(job);
                break;
            }
        }
        if found.is_none() && queue.running.is_none() {
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
/// its next turn at the back of its lane's line (which lane, returned).
fn finish(state: &mut State, client: Client, job: &Job) -> Option<Lane> {
    if state
        .pending
        .get(&job.key)
        .is_some_and(|done| Arc::ptr_eq(done, &job.done))
    {
        state.pending.remove(&job.key);
    }
    let queue = state.queues.get_mut(&client)?;
    queue.running = None;
    if queue.jobs.is_empty() {
        state.queues.remove(&client);
        return None;
    }
    let lane = queue.lane();
    if !queue.waiting_turn {
        queue.waiting_turn = true;
        state.turns[lane as usize].push_back(client);
    }
    Some(lane)
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

    /// No worker starts until the test says so (`start_workers`).
    fn held(pool: &Verifier) {
        pool.shared.lock().count = [pool.shared.max_workers; 2];
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
        // The scraper's turn is first in the first lane; the flood's is in the backlog lane.
        let state = pool.shared.lock();
        assert_eq!(state.turns[Lane::First as usize], VecDeque::from([scraper]));
        assert_eq!(state.turns[Lane::Backlog as usize], VecDeque::from([flood]));
    }

    #[tokio::test]
    async fn identical_checks_share_one_run() {
        let pool = Verifier::new(1);
        held(&pool);
        let a = pool.enqueue(client("10.0.0.1"), key(7), "right".into(), hash());
        let b = pool.enqueue(client("10.0.0.2"), key(7), "right".into(), hash());
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        assert_eq!(pool.shared.lock().queues.len(), 1, "one check queued");
        pool.start_workers();
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
        let left = client("127.0.0.3");
        drop(pool.enqueue(left, key(101), "x".into(), hash()).unwrap());
        pool.start_workers();
        let scraper = pool.verify(client("127.0.0.1"), key(102), "right".into(), hash());
        assert_eq!(scraper.await, Ok(true));
        // The abandoned check's turn came first: had it run, it would be counted.
        assert_eq!(pool.ran(), 1, "only the check someone waited for ran");
        assert!(!pool.shared.lock().pending.contains_key(&key(101)));
    }

    /// A client that sends a second check while its first runs moves to the backlog lane,
    /// and the worker running its check drops to nice 19.
    #[tokio::test]
    async fn a_clients_running_check_is_lowered_when_it_sends_more() {
        let pool = Verifier::new(1);
        let flood = client("127.0.0.2");
        let slow: Arc<str> = bcrypt::hash("right", 12).unwrap().into();
        let first = pool.enqueue(flood, key(1), "x".into(), Arc::clone(&slow));
        let _first = first.unwrap();
        let running_tid = || {
            let state = pool.shared.lock();
            let running = state.queues.get(&flood).and_then(|q| q.running);
            running.and_then(|id| state.workers.get(&id)?.tid)
        };
        let tid = loop {
            if let Some(tid) = running_tid() {
                break tid;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        };
        let nice = || rustix::process::getpriority_process(Some(tid)).unwrap();
        assert!(
            nice() < BACKLOG_NICE,
            "the first lane runs at the process's priority"
        );
        let _second = pool.enqueue(flood, key(2), "x".into(), slow).unwrap();
        assert_eq!(nice(), BACKLOG_NICE);
        let state = pool.shared.lock();
        assert_eq!(state.count, [0, 1]);
        assert!(state.queues[&flood].backlog);
    }
}
