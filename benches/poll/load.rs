//! Socket loads on loopback, built by child processes of the benchmark binary.
//!
//! - Holders (`svc-NNN`, 120 of them): each listens on 127.0.0.1:PORT and [::1]:PORT and
//!   accepts and keeps every connection (plus an idle 127.0.0.1:PORT+2000); on command it connects to other holders and keeps
//!   ESTABLISHED pairs, or half-closes its side (FIN_WAIT2 here, CLOSE_WAIT at the peer,
//!   both held for ever). Every such socket has an owner in /proc.
//! - TIME_WAIT generators (`twgen-N`): connect to their own listeners from explicit,
//!   never-colliding 4-tuples (127.(20+N).x.y:PORT for IPv4; [::1]:PORT to one of 16 ports
//!   for IPv6), accept, and close both ends: the client end stays in TIME_WAIT for 60 s
//!   and holds no fd.
//!
//! TIME_WAIT expires after 60 s, so the orchestrator records when each batch of 4-tuples
//! was made and, before each measurement, re-makes the batches that would expire during
//! it ([`Load::ensure`]). Connecting an explicitly bound socket over a TIME_WAIT 4-tuple
//! recycles it (tcp_twsk_unique with no `twp`), so a refresh keeps the count constant.
//!
//! Every child gets PR_SET_PDEATHSIG(SIGKILL) and is killed by pid when the [`Load`] drops.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::children::{child_setup, holder, listen, make_time_wait, twgen};
use sockdiag_exporter::source::inet_diag::{Family, StateFilter, TcpState};
use sockdiag_exporter::source::sock_diag::SockDiag;

pub const ROLE_ENV: &str = "SOCKDIAG_BENCH_ROLE";

/// Holder processes ("100+ processes").
pub const HOLDERS: usize = 120;
const HOLDER_PORT_BASE: u16 = 2000;
const TWGEN_PORT_BASE: u16 = 3000;
/// Holder `i` also listens, idle, on 127.0.0.1:HOLDER_PORT_BASE + i + this.
pub(crate) const ADMIN_PORT_OFFSET: u16 = 2000;
/// IPv6 TIME_WAIT 4-tuples share ::1, so they spread over this many listening ports.
pub(crate) const V6_DPORTS: u64 = 16;
/// Explicit source ports of TIME_WAIT generators: [TW_SPORT_BASE, + TW_SPORTS).
pub(crate) const TW_SPORT_BASE: u64 = 5000;
pub(crate) const TW_SPORTS: u64 = 35_000;
/// 4-tuples per TIME_WAIT batch (the unit of refresh).
const TW_BATCH: u64 = 10_000;
/// TIME_WAIT lasts TCP_TIMEWAIT_LEN = 60 s from its creation; count it as 57 s.
const TW_SAFE_LIFE: Duration = Duration::from_secs(57);
/// TIME_WAIT generators: two per family, so both cores work.
const TWGENS: [(Family, u8); 4] = [
    (Family::Ipv4, 0),
    (Family::Ipv4, 1),
    (Family::Ipv6, 2),
    (Family::Ipv6, 3),
];

/// Socket counts a load is built to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// ESTABLISHED pairs between holders (2 sockets each).
    pub established_pairs: u64,
    /// Half-closed pairs between holders: one CLOSE_WAIT and one FIN_WAIT2 each.
    pub close_wait_pairs: u64,
    /// TIME_WAIT sockets (no owner).
    pub time_wait: u64,
}

impl Mix {
    /// `total` sockets: 74% TIME_WAIT, 16% ESTABLISHED, 5% CLOSE_WAIT, 5% FIN_WAIT2, the
    /// listeners; 3/4 IPv4, 1/4 IPv6.
    pub fn mostly_time_wait(total: u64) -> Mix {
        let established_pairs = total * 8 / 100;
        let close_wait_pairs = total * 5 / 100;
        let owned = 2 * (established_pairs + close_wait_pairs) + listeners();
        Mix {
            established_pairs,
            close_wait_pairs,
            time_wait: total.saturating_sub(owned),
        }
    }

    /// `total` sockets, every one held by a process: 80% ESTABLISHED, 10% CLOSE_WAIT,
    /// 10% FIN_WAIT2.
    pub fn all_owned(total: u64) -> Mix {
        let close_wait_pairs = total / 20;
        Mix {
            established_pairs: (total - 2 * close_wait_pairs - listeners()) / 2,
            close_wait_pairs,
            time_wait: 0,
        }
    }

    /// `total` sockets, every one ESTABLISHED and held by a process (but the listeners):
    /// what a service node looks like.
    pub fn all_established(total: u64) -> Mix {
        Mix {
            established_pairs: total.saturating_sub(listeners()) / 2,
            close_wait_pairs: 0,
            time_wait: 0,
        }
    }

    /// Descriptors the busiest holder needs for this mix: its own ends of the pairs it
    /// opens and the accepted ends of those opened to it, plus its listeners.
    pub fn holder_fds(&self) -> u64 {
        let pairs = self.established_pairs + self.close_wait_pairs;
        (0..HOLDERS)
            .map(|i| {
                let incoming: u64 = (0..HOLDERS)
                    .flat_map(|from| {
                        holder_targets(from)
                            .into_iter()
                            .enumerate()
                            .filter(move |(_, to)| *to == i)
                            .map(move |(t, _)| split(holder_share(pairs, from), 2, t as u64))
                    })
                    .sum();
                holder_share(pairs, i) + incoming + 3
            })
            .max()
            .unwrap_or(0)
    }
}

/// Holder `i`'s part of `total` pairs it opens: uneven shares (weights 1..10) so that the
/// top-N process ranking means something.
fn holder_share(total: u64, i: usize) -> u64 {
    let weight = |i: u64| 1 + (i * 7) % 10;
    let total_weight: u64 = (0..HOLDERS as u64).map(weight).sum();
    let before: u64 = (0..i as u64).map(weight).sum();
    total * (before + weight(i as u64)) / total_weight - total * before / total_weight
}

/// The holders that holder `i` connects to: half to the next, half to one 11 further.
fn holder_targets(i: usize) -> [usize; 2] {
    [(i + 1) % HOLDERS, (i + 11) % HOLDERS]
}

/// The hard limit of open files a child may raise itself to (see [`child_setup`]).
pub fn fd_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX)
}

/// Listening sockets of a load: three per holder, one IPv4 and 16 IPv6 per generator pair.
pub fn listeners() -> u64 {
    3 * HOLDERS as u64 + 2 + 2 * V6_DPORTS
}

/// Per family, per state counts from one dump, and sockets that should have an owner but
/// have none yet (still in an accept queue).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub counts: [[u64; TcpState::COUNT]; 2],
    pub unaccepted: u64,
}

impl Census {
    pub fn take(sd: &mut SockDiag) -> Census {
        let mut census = Census::default();
        for family in Family::ALL {
            sd.dump(family, StateFilter::All, &mut |r| {
                census.counts[r.family.index()][r.state.index()] += 1;
                if r.inode == 0 && matches!(r.state, TcpState::Established | TcpState::CloseWait) {
                    census.unaccepted += 1;
                }
            })
            .expect("census dump");
        }
        census
    }

    pub fn state(&self, state: TcpState) -> u64 {
        self.counts[0][state.index()] + self.counts[1][state.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn family(&self, family: Family) -> u64 {
        self.counts[family.index()].iter().sum()
    }
}

/// A child process speaking the line protocol: commands on stdin, `ready`/`done ...` on
/// stdout.
pub struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// Starts this binary in `role` with `args` and waits for `ready`.
    pub fn start(role: &str, args: &[String]) -> Proc {
        let mut proc = Proc::spawn(role, args);
        let line = proc.read_line();
        assert_eq!(line, "ready", "{role} {args:?} said {line:?}");
        proc
    }

    /// Starts this binary in `role` with `args`; the caller reads its first lines.
    pub fn spawn(role: &str, args: &[String]) -> Proc {
        Proc::spawn_program(&std::env::current_exe().expect("own path"), role, args)
    }

    /// Starts `program` (this bench, or another build of it) in `role` with `args`.
    pub fn spawn_program(program: &std::path::Path, role: &str, args: &[String]) -> Proc {
        let mut child = Command::new(program)
            .env(ROLE_ENV, role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {role}: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Proc {
            child,
            stdin,
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write command");
        self.stdin.flush().expect("flush command");
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read child");
        assert!(n > 0, "child {} exited", self.child.id());
        line.trim_end().to_string()
    }

    /// Sends `command` and returns the words after `done`.
    pub fn call(&mut self, command: &str) -> Vec<String> {
        self.send(command);
        self.expect_done(command)
    }

    pub fn expect_done(&mut self, command: &str) -> Vec<String> {
        let line = self.read_line();
        let mut words = line.split_whitespace().map(str::to_string);
        assert_eq!(
            words.next().as_deref(),
            Some("done"),
            "{command:?}: child said {line:?}"
        );
        words.collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy)]
struct Batch {
    from: u64,
    to: u64,
    started: Instant,
}

struct Twgen {
    proc: Proc,
    next: u64,
    batches: Vec<Batch>,
    failed: u64,
}

impl Twgen {
    /// Makes (or re-makes) TIME_WAIT 4-tuples [from, to).
    fn make(&mut self, from: u64, to: u64) -> Batch {
        let started = Instant::now();
        let words = self.proc.call(&format!("make {from} {to}"));
        self.failed += words.get(1).and_then(|w| w.parse().ok()).unwrap_or(0);
        Batch { from, to, started }
    }
}

/// A running load: the holders, the generators, and what they were asked to build.
pub struct Load {
    holders: Vec<Proc>,
    twgens: Vec<Twgen>,
    mix: Mix,
    pub build_seconds: f64,
    /// TIME_WAIT 4-tuples made so far and the time it took (the refresh rate).
    made: u64,
    making: Duration,
}

impl Load {
    /// Starts the processes; nothing is connected yet.
    pub fn start() -> Load {
        let holders = (0..HOLDERS)
            .map(|i| {
                Proc::start(
                    "holder",
                    &[
                        format!("svc-{i:03}"),
                        (HOLDER_PORT_BASE + i as u16).to_string(),
                    ],
                )
            })
            .collect();
        let twgens = TWGENS
            .iter()
            .map(|(family, index)| Twgen {
                proc: Proc::start(
                    "twgen",
                    &[
                        family_arg(*family).to_string(),
                        index.to_string(),
                        (TWGEN_PORT_BASE + 20 * u16::from(*index)).to_string(),
                    ],
                ),
                next: 0,
                batches: Vec::new(),
                failed: 0,
            })
            .collect();
        Load {
            holders,
            twgens,
            mix: Mix {
                established_pairs: 0,
                close_wait_pairs: 0,
                time_wait: 0,
            },
            build_seconds: 0.0,
            made: 0,
            making: Duration::ZERO,
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.holders
            .iter()
            .map(Proc::pid)
            .chain(self.twgens.iter().map(|t| t.proc.pid()))
            .collect()
    }

    /// Grows the load to `mix` (never shrinks it) and waits until the kernel shows it.
    pub fn build(&mut self, mix: Mix, sd: &mut SockDiag) -> Census {
        let started = Instant::now();
        self.connect_holders(
            mix.established_pairs - self.mix.established_pairs,
            mix.close_wait_pairs - self.mix.close_wait_pairs,
        );
        self.add_time_wait(mix.time_wait.saturating_sub(self.mix.time_wait));
        self.mix = mix;
        let census = self.settle(sd);
        self.build_seconds = started.elapsed().as_secs_f64();
        census
    }

    /// Opens `new_pairs` more ESTABLISHED pairs (attribution churn).
    pub fn churn(&mut self, new_pairs: u64, sd: &mut SockDiag) -> Census {
        self.connect_holders(new_pairs, 0);
        self.mix.established_pairs += new_pairs;
        self.settle(sd)
    }

    fn connect_holders(&mut self, established: u64, close_wait: u64) {
        if established == 0 && close_wait == 0 {
            return;
        }
        let share = holder_share;
        let mut commands = vec![Vec::new(); HOLDERS];
        for (i, holder_commands) in commands.iter_mut().enumerate() {
            let est = share(established, i);
            let cw = share(close_wait, i);
            // Half to the next holder, half to one 11 further; 1/4 of each over IPv6.
            let targets = holder_targets(i);
            let mut parts = Vec::new();
            for (t, target) in targets.iter().enumerate() {
                let est_t = split(est, 2, t as u64);
                let cw_t = split(cw, 2, t as u64);
                let port = HOLDER_PORT_BASE + *target as u16;
                let (est6, cw6) = (est_t / 4, cw_t / 4);
                parts.push(format!("connect 4 {port} {} {}", est_t - est6, cw_t - cw6));
                parts.push(format!("connect 6 {port} {est6} {cw6}"));
            }
            *holder_commands = parts;
        }
        // Every holder works at once: send each its commands, then collect the answers.
        for (holder, parts) in self.holders.iter_mut().zip(&commands) {
            for part in parts {
                holder.send(part);
            }
        }
        for (holder, parts) in self.holders.iter_mut().zip(&commands) {
            for part in parts {
                holder.expect_done(part);
            }
        }
    }

    fn add_time_wait(&mut self, count: u64) {
        if count == 0 {
            return;
        }
        // Three quarters IPv4 over generators 0 and 1, one quarter IPv6 over 2 and 3.
        let v6 = count / 4;
        let shares = [
            split(count - v6, 2, 0),
            split(count - v6, 2, 1),
            split(v6, 2, 0),
            split(v6, 2, 1),
        ];
        let started = Instant::now();
        std::thread::scope(|scope| {
            for (twgen, share) in self.twgens.iter_mut().zip(shares) {
                scope.spawn(move || {
                    let end = twgen.next + share;
                    while twgen.next < end {
                        let to = (twgen.next + TW_BATCH).min(end);
                        let batch = twgen.make(twgen.next, to);
                        twgen.batches.push(batch);
                        twgen.next = to;
                    }
                });
            }
        });
        self.made += count;
        self.making += started.elapsed();
    }

    /// Before a measurement of at most `budget`: re-makes every TIME_WAIT batch that
    /// could expire before it ends, counting the time the re-making itself takes (at the
    /// rate measured so far). One pass: a step too long for that (budget plus refresh
    /// beyond the 57 s a batch is sure to live) runs anyway and its drift is reported.
    /// Returns the number of 4-tuples re-made.
    pub fn ensure(&mut self, budget: Duration) -> u64 {
        let rate = self.made as f64 / self.making.as_secs_f64().max(1e-3);
        let now = Instant::now();
        let mut deadline = now + budget;
        // The at-risk set grows with the time its own refresh takes: iterate to a fixpoint.
        for _ in 0..4 {
            let at_risk: u64 = self
                .twgens
                .iter()
                .flat_map(|t| &t.batches)
                .filter(|b| b.started + TW_SAFE_LIFE < deadline)
                .map(|b| b.to - b.from)
                .sum();
            // Generators work in parallel; count them as one at the aggregate rate.
            deadline = now + budget + Duration::from_secs_f64(at_risk as f64 / rate.max(1.0));
        }
        let started = Instant::now();
        let counts: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .twgens
                .iter_mut()
                .map(|twgen| {
                    scope.spawn(move || {
                        let mut n = 0;
                        for i in 0..twgen.batches.len() {
                            let old = twgen.batches[i];
                            if old.started + TW_SAFE_LIFE < deadline {
                                twgen.batches[i] = twgen.make(old.from, old.to);
                                n += old.to - old.from;
                            }
                        }
                        n
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("refresh"))
                .collect()
        });
        let refreshed = counts.iter().sum::<u64>();
        if refreshed > 0 {
            self.made += refreshed;
            self.making += started.elapsed();
        }
        refreshed
    }

    /// TIME_WAIT connects that failed (a 4-tuple still in use): should stay 0.
    pub fn failed_connects(&self) -> u64 {
        self.twgens.iter().map(|t| t.failed).sum()
    }

    /// Waits until every held socket is accepted and the counts are those of the mix.
    fn settle(&mut self, sd: &mut SockDiag) -> Census {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let census = Census::take(sd);
            let ok = census.unaccepted == 0
                && census.state(TcpState::Established) == 2 * self.mix.established_pairs
                && census.state(TcpState::CloseWait) == self.mix.close_wait_pairs
                && census.state(TcpState::FinWait2) == self.mix.close_wait_pairs
                && census.state(TcpState::Listen) == listeners()
                && census.state(TcpState::TimeWait) * 100 >= self.mix.time_wait * 99;
            if ok {
                return census;
            }
            assert!(
                Instant::now() < deadline,
                "load did not settle to {:?} (failed TIME_WAIT connects: {}): {census:?}",
                self.mix,
                self.failed_connects()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `i`-th of `parts` near-equal parts of `n`.
fn split(n: u64, parts: u64, i: u64) -> u64 {
    n * (i + 1) / parts - n * i / parts
}

fn family_arg(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "4",
        Family::Ipv6 => "6",
    }
}
