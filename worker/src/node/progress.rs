//! Progress of hashing a large weights file at start: a bar redrawn in place when stderr is a
//! terminal, a log line every 10% otherwise (a service's journal should not fill with bars).

use std::io::{IsTerminal, Write};

use tracing::info;

/// Width of the bar, in characters.
const WIDTH: usize = 30;

/// A bar `pct` percent full: `[#########.....................]`.
pub fn bar(pct: u64, width: usize) -> String {
    let filled = usize::try_from(pct.min(100)).unwrap_or(100) * width / 100;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// Shows the progress of one job.
#[derive(Debug)]
pub struct Progress {
    label: String,
    terminal: bool,
    last_pct: Option<u64>,
}

impl Progress {
    /// Progress of `label` (what is being done), on a bar if stderr is a terminal.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            terminal: std::io::stderr().is_terminal(),
            last_pct: None,
        }
    }

    /// `done` of `total` bytes are through.
    pub fn update(&mut self, done: u64, total: u64) {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let step = if self.terminal { pct } else { pct / 10 * 10 };
        if self.last_pct == Some(step) {
            return;
        }
        self.last_pct = Some(step);
        let mib = total.div_ceil(1 << 20);
        if self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r{} {} {pct:>3}% of {mib} MiB",
                self.label,
                bar(pct, WIDTH)
            );
            if done >= total {
                let _ = writeln!(err);
            }
        } else {
            info!(target: "worker::node", "{}: {pct}% of {mib} MiB", self.label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_percentage() {
        assert_eq!(bar(0, 10), "[..........]");
        assert_eq!(bar(55, 10), "[#####.....]");
        assert_eq!(bar(100, 10), "[##########]");
        assert_eq!(bar(250, 10), "[##########]", "never past full");
    }
}
