//! `report --watch`: polls every `--interval` and redraws in place, like top, with growth
//! since the start, until q, Esc or Ctrl-C.
//!
//! The terminal goes into raw mode (so q needs no Enter and Ctrl-C arrives as a key) on
//! the alternate screen with the cursor hidden; [`Screen`] puts all three back when it is
//! dropped, on every way out, an error or a panic included. SIGTERM and SIGHUP end the
//! watch the same way (within a quarter of a second, exit 143 or 129) instead of killing
//! the process with the terminal left raw.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::cursor::{Hide, MoveTo, Show};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::style::Stylize;
use crossterm::terminal::{
    self, disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen,
    LeaveAlternateScreen,
};
use crossterm::{execute, queue};

use super::report::{colour_wanted, header, poll, ReportArgs};
use super::summary::Summary;
use super::terminal::{self as text, Style};
use crate::poll::Collector;
use crate::snapshot::Snapshot;

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

/// Runs until a quitting key. `first` is the base of every growth shown.
pub fn run(
    args: &ReportArgs,
    collector: &mut Collector,
    first: Snapshot,
    mut notes: Vec<String>,
) -> io::Result<ExitCode> {
    // The number of the signal that asks us to stop, 0 while none has.
    let stop = Arc::new(AtomicUsize::new(0));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        let number = usize::try_from(signal).unwrap_or_default();
        signal_hook::flag::register_usize(signal, Arc::clone(&stop), number)?;
    }
    let _screen = Screen::enter()?;
    let started = Instant::now();
    let (filter, thresholds) = (args.filter(), args.thresholds());
    let colour = colour_wanted(true);
    let mut latest: Option<Snapshot> = None;
    let mut samples = 1u64;
    let mut failure: Option<String> = None;
    loop {
        let current = latest.as_ref().unwrap_or(&first);
        let mut summary = Summary::build(Some(&first), current, None, &filter, &thresholds);
        summary.notes.splice(0..0, notes.iter().cloned());
        let status = format!(
            "every {} · {} since start · {samples} polls · q or Ctrl-C quits{}",
            humantime::format_duration(args.interval),
            humantime::format_duration(std::time::Duration::from_secs(started.elapsed().as_secs())),
            failure
                .as_ref()
                .map_or_else(String::new, |f| format!(" · last poll failed: {f}")),
        );
        draw(&summary, current, &status, colour)?;
        let deadline = Instant::now() + args.interval;
        loop {
            let signal = stop.load(Ordering::Relaxed);
            if signal != 0 {
                return Ok(crate::exit::signalled(signal));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Short waits, so that a signal is noticed soon.
            if !event::poll(left.min(SIGNAL_CHECK))? {
                continue;
            }
            match event::read()? {
                Event::Key(key) if quits(&key) => return Ok(ExitCode::SUCCESS),
                Event::Resize(..) => draw(&summary, current, &status, colour)?,
                _ => {}
            }
        }
        match poll(collector, &mut notes) {
            Ok(snapshot) => {
                latest = Some(snapshot);
                samples += 1;
                failure = None;
            }
            Err(error) => failure = Some(error.to_string()),
        }
    }
}

/// Redraws the whole screen in place, line by line (no clear-all, so no flicker), cut to
/// the terminal's size.
fn draw(summary: &Summary, latest: &Snapshot, status: &str, colour: bool) -> io::Result<()> {
    let (columns, rows) = terminal::size()?;
    let (width, height) = (usize::from(columns), usize::from(rows));
    let mut lines = text::findings(summary, colour, width);
    let status = super::table::fit(status, width);
    lines.push(if colour {
        status.dim().to_string()
    } else {
        status
    });
    lines.push(super::table::fit(&header(latest, summary, false), width));
    lines.push(String::new());
    lines.extend(text::tables(
        summary,
        Style {
            width,
            max_rows: 10,
            colour,
        },
    ));
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
