//! What the long commands (`push`, `pull`, `upload`) show while they work: a progress bar per
//! layer and a spinner per build (indicatif), and short notes of each step, all on standard
//! error. The bars are drawn only when standard error is a terminal and `--json` is not given;
//! the notes are written unless `--json` is given. Standard output keeps the result alone.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// The bars of one command.
#[derive(Clone)]
pub struct Bars {
    multi: MultiProgress,
    /// Bars are drawn.
    drawn: bool,
    /// Notes are written.
    notes: bool,
}

impl Bars {
    /// Bars for a command: drawn on a terminal without `--json`.
    pub fn new(json: bool) -> Bars {
        let drawn = !json && std::io::stderr().is_terminal();
        Bars::with(drawn, !json)
    }

    /// Nothing drawn, nothing written.
    #[cfg(test)]
    pub fn quiet() -> Bars {
        Bars::with(false, false)
    }

    fn with(drawn: bool, notes: bool) -> Bars {
        let target = if drawn {
            ProgressDrawTarget::stderr_with_hz(8)
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            drawn,
            notes,
        }
    }

    /// A bar of `total` bytes, labelled `label` (a layer's short digest).
    pub fn bytes(&self, label: &str, total: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>14} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        bar
    }

    /// A finished line for a blob that needed no transfer: its label, size and `message`.
    pub fn done(&self, label: &str, total: u64, message: &'static str) {
        let bar = self.multi.add(ProgressBar::new(total));
        if let Ok(style) = ProgressStyle::with_template("{prefix:>14} {msg} ({total_bytes})") {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_owned());
        bar.set_position(total);
        bar.finish_with_message(message);
    }

    /// A spinner for work of unknown length (a build), labelled `label`.
    pub fn spinner(&self, label: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {wide_msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_owned());
        if self.drawn {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        bar
    }

    /// A line about a step, above the bars (unless `--json`).
    pub fn note(&self, text: &str) {
        if !self.notes {
            return;
        }
        if self.drawn {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

/// The short form of a digest people see: its first 12 hex digits.
pub fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// A size for people: `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_sizes_for_people() {
        assert_eq!(short("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(256 << 20), "256.0 MiB");
        let bars = Bars::quiet();
        let bar = bars.bytes("abc", 10);
        bar.inc(5);
        bar.finish_with_message("done");
        bars.done("def", 10, "already there");
        bars.note("not written");
    }
}
