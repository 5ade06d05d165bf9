//! `report --watch`: polls every `--interval` and redraws, with growth since the start,
//! until q, Esc or Ctrl-C.
//!
//! On a terminal that takes escape sequences ([`Mode::Screen`]) it redraws in place, like
//! top: raw mode (so q needs no Enter and Ctrl-C arrives as a key) on the alternate screen
//! with the cursor hidden; [`Screen`] puts all three back when it is dropped, on every way
//! out, an error or a panic included. Under `TERM=dumb` or without TERM ([`Mode::Plain`])
//! it sends no escape sequence at all: each refresh is printed below the last after a
//! separator line, q then Enter or Ctrl-C ends it. SIGTERM and SIGHUP (and SIGINT in plain
//! mode) end the watch the same way (within a quarter of a second, exit 128 + the signal)
//! instead of killing the process with the terminal left raw; so does the terminal's
//! hang-up (exit 129), seen by polling its input ([`Input`]).

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::cursor::{Hide, MoveTo, Show};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    self, disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen,
    LeaveAlternateScreen,
};
use crossterm::{execute, queue};
use rustix::event::{PollFd, PollFlags, Timespec};

use super::findings::Thresholds;
use super::summary::{Filter, Summary};
use super::terminal::{self as text, Overflow, Style};
use crate::poll::PollError;
use crate::snapshot::Snapshot;

/// What `--watch` was asked for.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    pub filter: Filter,
    pub thresholds: Thresholds,
}

/// How the refreshes reach the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Redrawn in place on the alternate screen, in raw mode.
    Screen,
    /// Printed one after the other, no escape sequence, the terminal left as it is.
    Plain,
}

impl Mode {
    /// The mode for `term`, the TERM variable.
    pub fn for_term(term: Option<&std::ffi::OsStr>) -> Mode {
        if text::dumb(term) {
            Mode::Plain
        } else {
            Mode::Screen
        }
    }
}

/// How often the key wait looks at the signal flag.
const SIGNAL_CHECK: Duration = Duration::from_millis(250);

/// The terminal in watch mode; dropping it restores the terminal.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Screen> {
        let screen = Screen;
        enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, Hide)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        // Best effort on the way out: there is nowhere left to report a failure.
        let _ = execute!(io::stdout(), Show, LeaveAlternateScreen);
        let _ = disable_raw_mode();
    }
}

fn quits(key: &KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && match key.code {
            KeyCode::Char('q') | KeyCode::Esc => true,
            KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// Runs until a quitting key. `first` is the base of every growth shown; `next` polls
/// again, adding to the notes what the poll says about the picture's completeness.
pub fn run(
    settings: &Settings,
    mode: Mode,
    mut next: impl FnMut(&mut Vec<String>) -> Result<Snapshot, PollError>,
    first: Snapshot,
    mut notes: Vec<String>,
) -> io::Result<ExitCode> {
    let ends = Ends::new(mode)?;
    let _screen = match mode {
        Mode::Screen => Some(Screen::enter()?),
        Mode::Plain => None,
    };
    let started = Instant::now();
    let colour =
        mode == Mode::Screen && text::colour_wanted(true, std::env::var_os("TERM").as_deref());
    let quit = match mode {
        Mode::Screen => "q or Ctrl-C quits",
        Mode::Plain => "q then Enter, or Ctrl-C, quits",
    };
    let mut latest: Option<Snapshot> = None;
    let mut samples = 1u64;
    let mut failure: Option<String> = None;
    loop {
        let current = latest.as_ref().unwrap_or(&first);
        let mut summary = Summary::build(
            Some(&first),
            current,
            None,
            &settings.filter,
            &settings.thresholds,
        );
        summary.notes.splice(0..0, notes.iter().cloned());
        let status = format!(
            "every {} · {} since start · {samples} polls · {quit}{}",
            humantime::format_duration(settings.interval),
            humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
            failure
                .as_ref()
                .map_or_else(String::new, |f| format!(" · last poll failed: {f}")),
        );
        let frame = Frame {
            summary: &summary,
            latest: current,
            status: &status,
            colour,
        };
        frame.draw(mode)?;
        let deadline = Instant::now() + settings.interval;
        if let Some(code) = ends.wait(deadline, &frame, mode)? {
            return Ok(code);
        }
        match next(&mut notes) {
            Ok(snapshot) => {
                latest = Some(snapshot);
                samples += 1;
                failure = None;
            }
            Err(error) => failure = Some(error.to_string()),
        }
    }
}

/// The terminal's input, the one crossterm reads keys from: stdin when it is a terminal,
/// else /dev/tty.
///
/// Once the terminal is gone (an SSH session dropped, a tmux pane killed) it stays readable
/// and reads return 0 or EIO, and crossterm's reader retries at once, forever, its timeout
/// unchecked (crossterm issue 793, in 0.29): the watch would spin a core and never see
/// SIGHUP. So the input is polled here first, and crossterm only reads a live terminal
/// that has input.
enum Input {
    Stdin,
    Tty(File),
}

/// What the terminal's input has.
enum Ready {
    Nothing,
    Input,
    HungUp,
}

impl Input {
    fn open() -> io::Result<Input> {
        if io::stdin().is_terminal() {
            Ok(Input::Stdin)
        } else {
            File::open("/dev/tty").map(Input::Tty)
        }
    }

    fn wait(&self, timeout: Duration) -> io::Result<Ready> {
        let stdin = io::stdin();
        let fd = match self {
            Input::Stdin => stdin.as_fd(),
            Input::Tty(tty) => tty.as_fd(),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        });
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(Ready::Nothing),
            Err(error) => return Err(error.into()),
        }
        let events = fds[0].revents();
        Ok(
            if events.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                Ready::HungUp
            } else if events.contains(PollFlags::IN) {
                Ready::Input
            } else {
                Ready::Nothing
            },
        )
    }
}

/// What ends the watch, checked between two refreshes.
struct Ends {
    /// The number of the signal that asks us to stop, 0 while none has.
    stop: Arc<AtomicUsize>,
    /// Set by SIGWINCH: crossterm's resize event is not read while no key is pressed.
    resized: Arc<AtomicBool>,
    input: Input,
}

impl Ends {
    fn new(mode: Mode) -> io::Result<Ends> {
        let stop = Arc::new(AtomicUsize::new(0));
        let mut signals = vec![signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP];
        if mode == Mode::Plain {
            // Not in raw mode, Ctrl-C is SIGINT: a clean end too.
            signals.push(signal_hook::consts::SIGINT);
        }
        for signal in signals {
            let number = usize::try_from(signal).unwrap_or_default();
            signal_hook::flag::register_usize(signal, Arc::clone(&stop), number)?;
        }
        let resized = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGWINCH, Arc::clone(&resized))?;
        Ok(Ends {
            stop,
            resized,
            input: Input::open()?,
        })
    }

    /// Waits for `deadline`, redrawing `frame` on a resize: the exit code when a key, a
    /// signal or the terminal's hang-up ends the watch first.
    fn wait(&self, deadline: Instant, frame: &Frame, mode: Mode) -> io::Result<Option<ExitCode>> {
        loop {
            let signal = self.stop.load(Ordering::Relaxed);
            if signal != 0 {
                return Ok(Some(crate::exit::signalled(signal)));
            }
            if self.resized.swap(false, Ordering::Relaxed) && mode == Mode::Screen {
                frame.draw(mode)?;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Short waits, so that a signal is noticed soon.
            match self.input.wait(left.min(SIGNAL_CHECK))? {
                Ready::Nothing => continue,
                // SIGHUP is on its way, or was not sent (the terminal was revoked): the
                // same end either way.
                Ready::HungUp => {
                    return Ok(Some(crate::exit::signalled(
                        usize::try_from(signal_hook::consts::SIGHUP).unwrap_or_default(),
                    )))
                }
                Ready::Input => {}
            }
            if !event::poll(Duration::ZERO)? {
                continue;
            }
            if let Event::Key(key) = event::read()? {
                if quits(&key) {
                    return Ok(Some(ExitCode::SUCCESS));
                }
            }
        }
    }
}

/// One refresh.
struct Frame<'a> {
    summary: &'a Summary,
    latest: &'a Snapshot,
    status: &'a str,
    colour: bool,
}

impl Frame<'_> {
    fn draw(&self, mode: Mode) -> io::Result<()> {
        let (columns, rows) = terminal::size().unwrap_or((0, 0));
        let width = match usize::from(columns) {
            // Some dumb terminals answer 0 columns.
            0 => text::DEFAULT_WIDTH,
            columns => columns,
        };
        let lines = text::page(
            self.summary,
            self.latest,
            Style {
                width,
                max_rows: 10,
                colour: self.colour,
            },
            Overflow::Cut,
            Some(self.status),
        );
        match mode {
            Mode::Screen => redraw(&lines, usize::from(rows)),
            Mode::Plain => {
                let mut out = io::stdout().lock();
                writeln!(out, "{}", "-".repeat(width))?;
                writeln!(out, "{}", lines.join("\n"))?;
                out.flush()
            }
        }
    }
}

/// Redraws the whole screen in place, line by line (no clear-all, so no flicker), cut to
/// the terminal's `height`.
fn redraw(lines: &[String], height: usize) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for (row, line) in lines.iter().take(height).enumerate() {
        let row = u16::try_from(row).unwrap_or(u16::MAX);
        queue!(out, MoveTo(0, row), Clear(ClearType::CurrentLine))?;
        write!(out, "{line}")?;
    }
    let drawn = u16::try_from(lines.len().min(height)).unwrap_or(u16::MAX);
    queue!(out, MoveTo(0, drawn), Clear(ClearType::FromCursorDown))?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_sent_alternate_screen_sequences_under_term_dumb() {
        assert_eq!(Mode::for_term(Some("dumb".as_ref())), Mode::Plain);
        assert_eq!(Mode::for_term(Some("".as_ref())), Mode::Plain);
        assert_eq!(Mode::for_term(None), Mode::Plain);
        assert_eq!(
            Mode::for_term(Some("xterm-256color".as_ref())),
            Mode::Screen
        );
        assert_eq!(Mode::for_term(Some("screen".as_ref())), Mode::Screen);
        assert_eq!(Mode::for_term(Some("linux".as_ref())), Mode::Screen);
    }
}
