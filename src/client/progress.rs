//! Progress on standard error, as a person sees it: on a terminal one frame redrawn in place (a bar, counts,
//! time left); in a log or a pipe, a plain line each time something changes, never a control character.

use std::io::{self, IsTerminal, Write};

/// Where progress goes, and what was shown last.
pub struct Progress {
    terminal: bool,
    /// The terminal's width in columns, when known: longer lines are cut short, as a line that wraps would
    /// take two rows and the redraw would leave the old frame on screen.
    width: Option<usize>,
    /// Lines of the frame on screen (terminal) or the frame last printed (plain).
    shown: Vec<String>,
    out: Box<dyn Write + Send>,
}

impl Progress {
    /// Progress on standard error, redrawn in place when it is a terminal.
    pub fn stderr() -> Progress {
        let terminal = io::stderr().is_terminal();
        let mut progress = Progress::to(Box::new(io::stderr()), terminal);
        progress.width = terminal.then(stderr_width).flatten();
        progress
    }

    pub fn to(out: Box<dyn Write + Send>, terminal: bool) -> Progress {
        Progress {
            terminal,
            width: None,
            shown: Vec::new(),
            out,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Shows a frame: on a terminal it replaces the frame on screen; otherwise its lines are printed when they
    /// differ from the last frame's. A failure to write progress never fails the command.
    pub fn show(&mut self, frame: Vec<String>) {
        let frame = match self.width {
            Some(width) => frame.into_iter().map(|line| cut(line, width)).collect(),
            None => frame,
        };
        if frame == self.shown {
            return;
        }
        let mut text = if self.terminal { self.clear() } else { String::new() };
        if self.terminal {
            text.push_str(&frame.join("\n"));
        } else {
            for line in &frame {
                text.push_str(line);
                text.push('\n');
            }
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
        self.shown = frame;
    }

    /// What takes a terminal's cursor back to the first line of the frame on screen and clears from there down.
    fn clear(&self) -> String {
        self.clear_lines(self.shown.len())
    }

    fn clear_lines(&self, lines: usize) -> String {
        match lines {
            0 => String::new(),
            1 => "\r\x1b[J".to_string(),
            n => format!("\r\x1b[{}A\x1b[J", n - 1),
        }
    }

    /// Leaves the last frame on screen and moves below it.
    pub fn finish(&mut self) {
        if self.terminal && !self.shown.is_empty() {
            let _ = self.out.write_all(b"\n");
            let _ = self.out.flush();
        }
        self.shown.clear();
    }

    /// A line of its own above the frame (a note), the frame drawn again below it on a terminal.
    pub fn note(&mut self, line: &str) {
        let frame = std::mem::take(&mut self.shown);
        let clear = if self.terminal {
            self.clear_lines(frame.len())
        } else {
            String::new()
        };
        let _ = writeln!(self.out, "{clear}{line}");
        if self.terminal {
            self.show(frame);
        }
    }
}

/// A line of at most `width - 1` characters (the last column left free: some terminals wrap on it).
fn cut(line: String, width: usize) -> String {
    let room = width.saturating_sub(1).max(1);
    match line.char_indices().nth(room) {
        Some((end, _)) => format!("{}…", &line[..line[..end].char_indices().last().map_or(0, |(i, _)| i)]),
        None => line,
    }
}

/// The width of the terminal on standard error, in columns.
fn stderr_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ writes one winsize into the struct it is given, and nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let done = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
    (done == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// `[#####-----]  50%`, `width` characters between the brackets.
pub fn bar(fraction: f64, width: usize) -> String {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (fraction * width as f64).floor() as usize;
    format!(
        "[{}{}] {:>3}%",
        "#".repeat(filled),
        "-".repeat(width - filled),
        (fraction * 100.0).floor() as u64
    )
}

/// 1234 → `1.2 kB`, in powers of 1000 as S3's console shows sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `45s`, `3m 05s`, `2h 07m`, `3d 04h`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// 1234567 → `1,234,567`, as the offline commands' reports print counts.
pub use crate::counts::grouped as count;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn text(s: &Shared) -> String {
        String::from_utf8(s.0.lock().map(|v| v.clone()).unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn plain_progress_prints_changed_frames_once_and_no_control_characters() {
        let out = Shared::default();
        let mut p = Progress::to(Box::new(out.clone()), false);
        p.show(vec!["a 10%".into()]);
        p.show(vec!["a 10%".into()]);
        p.show(vec!["a 20%".into(), "job0 InProgress".into()]);
        p.note("a note");
        p.finish();
        assert_eq!(text(&out), "a 10%\na 20%\njob0 InProgress\na note\n");
    }

    #[test]
    fn a_terminal_frame_is_redrawn_in_place() {
        let out = Shared::default();
        let mut p = Progress::to(Box::new(out.clone()), true);
        p.show(vec!["one".into(), "two".into()]);
        p.show(vec!["three".into()]);
        p.finish();
        assert_eq!(text(&out), "one\ntwo\r\x1b[1A\x1b[Jthree\n");
        let out = Shared::default();
        let mut p = Progress::to(Box::new(out.clone()), true);
        p.show(vec!["bar".into()]);
        p.note("note");
        p.finish();
        assert_eq!(text(&out), "bar\r\x1b[Jnote\nbar\n");
    }

    #[test]
    fn lines_are_cut_to_the_terminals_width() {
        let out = Shared::default();
        let mut p = Progress::to(Box::new(out.clone()), true);
        p.width = Some(8);
        p.show(vec!["short".into(), "a line too long é".into()]);
        assert_eq!(text(&out), "short\na line…");
        assert_eq!(cut("1234567".into(), 8), "1234567");
        assert_eq!(cut("é".repeat(20), 4), "éé…");
    }

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(bar(0.5, 10), "[#####-----]  50%");
        assert_eq!(bar(f64::NAN, 4), "[----]   0%");
        assert_eq!(bar(1.5, 4), "[####] 100%");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(12_345_678), "12.3 MB");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(185), "3m 05s");
        assert_eq!(duration(7_620), "2h 07m");
    }
}
