//! Reading JSONL one line at a time, with memory bounded by the longest line.

use std::io::{self, BufRead};

/// Yields `(line number, line)` for every line, blank ones included, without the line ending.
/// A UTF-8 byte order mark at the start of the file and `\r\n` endings are accepted.
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: Vec::with_capacity(64 * 1024),
            line: 0,
        }
    }

    /// The next line, or `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        self.buf.clear();
        if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        self.line += 1;
        let mut s: &[u8] = &self.buf;
        if self.line == 1 {
            s = s.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(s);
        }
        s = s.strip_suffix(b"\n").unwrap_or(s);
        s = s.strip_suffix(b"\r").unwrap_or(s);
        Ok(Some((self.line, s)))
    }
}

/// A line holding only whitespace is not a request, and is not counted as one.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lines_strips_bom_and_crlf() {
        let data = b"\xEF\xBB\xBF{\"a\":1}\r\n\n  \n{\"b\":2}";
        let mut lines = Lines::new(&data[..]);
        let mut got = Vec::new();
        while let Some((n, l)) = lines.next_line().unwrap() {
            got.push((n, l.to_vec(), is_blank(l)));
        }
        assert_eq!(
            got,
            vec![
                (1, b"{\"a\":1}".to_vec(), false),
                (2, b"".to_vec(), true),
                (3, b"  ".to_vec(), true),
                (4, b"{\"b\":2}".to_vec(), false),
            ]
        );
    }
}
