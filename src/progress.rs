//! A progress line on stderr for long runs over many files.
//!
//! Shown only when stderr is a terminal, and only once the run is long
//! enough to need one: more than [`MANY_FILES`] files, or more than a
//! second. Redrawn in place with `\r` at most every 100 ms, and cleared
//! (line erased) when the run ends, so that messages printed afterwards
//! start on a clean line. Never written to a pipe or file.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// From this many files on, a run shows progress right away.
pub const MANY_FILES: usize = 50;
const AFTER: Duration = Duration::from_secs(1);
const EVERY: Duration = Duration::from_millis(100);

/// The progress of one run.
pub struct Progress {
    enabled: bool,
    start: Instant,
    last: Option<Instant>,
    total: usize,
    shown: bool,
}

impl Progress {
    /// Progress over `total` files; silent unless stderr is a terminal and
    /// there is more than one file.
    pub fn new(total: usize) -> Progress {
        Progress {
            enabled: total > 1 && std::io::stderr().is_terminal(),
            start: Instant::now(),
            last: None,
            total,
            shown: false,
        }
    }

    fn due(&self) -> bool {
        self.enabled
            && (self.total > MANY_FILES || self.start.elapsed() >= AFTER)
            && self.last.is_none_or(|t| t.elapsed() >= EVERY)
    }

    /// `what done/total` (e.g. `reading 37/200`), when it is time to redraw.
    pub fn files(&mut self, what: &str, done: usize) {
        if self.due() {
            let total = self.total;
            self.draw(&format!("{what} {done}/{total} files"));
        }
    }

    fn draw(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2Kksec: {text}");
        let _ = err.flush();
        self.last = Some(Instant::now());
        self.shown = true;
    }

    /// Erases the line, if anything was drawn.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
