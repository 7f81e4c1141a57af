//! Reading JSONL one line at a time, with memory bounded by the longest line.

use std::io::{self, BufRead};

/// The longest line [`Lines::new`] reads: far above any record batchdrop itself writes or Bedrock
/// returns (docs/formats.md, "Limits"), low enough that a runaway line cannot exhaust memory.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 << 20;

/// `line` as text when it is valid UTF-8. Input files are mostly text over many lines, checked once or twice
/// each: the SIMD check is several times std's speed on them, and std's runs only on a failure, to say
/// where the first bad byte is.
pub fn utf8(line: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(line) {
        Ok(text) => Ok(text),
        Err(_) => std::str::from_utf8(line),
    }
}

/// One line as read: its text, or only its length when it is longer than the limit (its bytes were
/// skipped, never held in memory).
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Text(&'a [u8]),
    TooLong { bytes: u64 },
}

/// Yields `(line number, line)` for every line, blank ones included, without the line ending.
/// A UTF-8 byte order mark at the start of the file and `\r\n` endings are accepted. Memory is bounded
/// by the limit: a longer line is skipped to its end and reported by its length.
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    max: usize,
    /// Bytes of input read as lines: where the next line starts.
    consumed: u64,
    /// Bytes of the last line, lent from the reader's buffer, to consume before the next is read.
    lent: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R) -> Self {
        Lines::with_limit(reader, DEFAULT_MAX_LINE_BYTES)
    }

    /// Lines longer than `max` bytes (line ending excluded) are [`Line::TooLong`].
    pub fn with_limit(reader: R, max: usize) -> Self {
        Lines {
            reader,
            buf: Vec::with_capacity(64 * 1024),
            line: 0,
            max,
            consumed: 0,
            lent: 0,
        }
    }

    /// The next line, or `None` at the end of input.
    pub fn next_any(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        Ok(self.next_at()?.map(|(n, _, line)| (n, line)))
    }

    /// The next line with the offset of its first byte in the input (past a byte order mark), or `None`
    /// at the end of input: a part of the line is found again by its offset, without holding a copy.
    pub fn next_at(&mut self) -> io::Result<Option<(u64, u64, Line<'_>)>> {
        // The previous line may still be in the reader's buffer, lent rather than copied.
        self.reader.consume(std::mem::take(&mut self.lent));
        let start = self.consumed;
        // Room for a BOM and a `\r\n` beyond the text; the exact check comes once they are stripped.
        let room = self.max.saturating_add(5);
        // Most lines are whole in the reader's buffer: lent from there, not copied. (fill_buf again,
        // with nothing consumed in between, gives the same bytes without reading.)
        let whole = loop {
            match self.reader.fill_buf() {
                Ok(available) => break memchr::memchr(b'\n', available).map(|i| i + 1).filter(|n| *n <= room),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if let Some(take) = whole {
            self.consumed += take as u64;
            self.lent = take;
            self.line += 1;
            let available = self.reader.fill_buf()?;
            return Ok(Some(text_of(self.line, start, &available[..take], self.max)));
        }
        self.buf.clear();
        let mut total: u64 = 0;
        let mut too_long = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            total += take as u64;
            self.consumed += take as u64;
            if !too_long {
                if self.buf.len() + take > room {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&available[..take]);
                }
            }
            self.reader.consume(take);
            if done {
                break;
            }
        }
        self.line += 1;
        if too_long {
            return Ok(Some((self.line, start, Line::TooLong { bytes: total })));
        }
        Ok(Some(text_of(self.line, start, &self.buf, self.max)))
    }

    /// The next line, or `None` at the end of input; a line over the limit is an `InvalidData` error.
    /// For files batchdrop wrote itself, where such a line means the file is not what it should be.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        let max = self.max;
        match self.next_any()? {
            None => Ok(None),
            Some((n, Line::Text(s))) => Ok(Some((n, s))),
            Some((n, Line::TooLong { bytes })) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {n} is {bytes} bytes long, over the limit of {max}"),
            )),
        }
    }
}

/// Line `line`, read from offset `start` with its ending (`raw`): its text, without a byte order mark
/// (on the first line) or the line ending, and that text's offset; or its length when over `max`.
fn text_of(line: u64, start: u64, raw: &[u8], max: usize) -> (u64, u64, Line<'_>) {
    let (mut s, mut at) = (raw, start);
    if line == 1 {
        if let Some(rest) = s.strip_prefix(b"\xEF\xBB\xBF") {
            (s, at) = (rest, start + 3);
        }
    }
    s = s.strip_suffix(b"\n").unwrap_or(s);
    s = s.strip_suffix(b"\r").unwrap_or(s);
    if s.len() > max {
        return (
            line,
            start,
            Line::TooLong {
                bytes: raw.len() as u64,
            },
        );
    }
    (line, at, Line::Text(s))
}

/// A line holding only whitespace is not a request, and is not counted as one.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_agrees_with_std_and_says_where() {
        let long_ascii = "a".repeat(100);
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            "{\"t\":\"h\u{e9}llo \u{1F600}\"}".as_bytes().to_vec(),
            format!("{long_ascii}\u{e9}{long_ascii}").into_bytes(),
            [long_ascii.as_bytes(), b"\xff", long_ascii.as_bytes()].concat(),
            // A sequence cut short at the end, an overlong form, a surrogate.
            [long_ascii.as_bytes(), b"\xe2\x82"].concat(),
            b"ab\xc0\xafcd".to_vec(),
            b"\xed\xa0\x80".to_vec(),
        ];
        for bytes in cases {
            let (ours, std) = (utf8(&bytes), std::str::from_utf8(&bytes));
            assert_eq!(ours.as_ref().ok(), std.as_ref().ok());
            assert_eq!(ours.err().map(|e| e.valid_up_to()), std.err().map(|e| e.valid_up_to()));
        }
    }

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

    #[test]
    fn each_line_says_where_it_starts() {
        let data = b"\xEF\xBB\xBF{\"a\":1}\r\n\n12345678\n123456789\nxy";
        let mut lines = Lines::with_limit(std::io::BufReader::with_capacity(4, &data[..]), 8);
        let mut got = Vec::new();
        while let Some((n, at, line)) = lines.next_at().unwrap() {
            if let Line::Text(text) = line {
                assert_eq!(&data[at as usize..at as usize + text.len()], text);
            }
            got.push((n, at));
        }
        // Line 4 is over the limit: skipped, and still counted in the offsets after it.
        assert_eq!(got, vec![(1, 3), (2, 12), (3, 13), (4, 22), (5, 32)]);
    }

    fn all(data: &[u8], max: usize) -> Vec<(u64, Line<'static>)> {
        let mut lines = Lines::with_limit(std::io::BufReader::with_capacity(4, data), max);
        let mut got = Vec::new();
        while let Some((n, l)) = lines.next_any().unwrap() {
            got.push((
                n,
                match l {
                    Line::Text(t) => Line::Text(Vec::leak(t.to_vec())),
                    Line::TooLong { bytes } => Line::TooLong { bytes },
                },
            ));
        }
        got
    }

    #[test]
    fn lines_over_the_limit_are_skipped_whole_and_counted() {
        // A 4-byte read buffer: long lines span many reads.
        let data = b"12345\r\n1234567890123\nabc\n123456\n12345";
        assert_eq!(
            all(data, 5),
            vec![
                (1, Line::Text(b"12345")),
                (2, Line::TooLong { bytes: 14 }),
                (3, Line::Text(b"abc")),
                (4, Line::TooLong { bytes: 7 }),
                (5, Line::Text(b"12345")),
            ]
        );
        // The BOM does not count against the first line.
        assert_eq!(all(b"\xEF\xBB\xBF12345\n", 5), vec![(1, Line::Text(b"12345"))]);
        let mut lines = Lines::with_limit(&b"123456\n"[..], 5);
        let err = lines.next_line().expect_err("too long");
        assert_eq!(err.to_string(), "line 1 is 7 bytes long, over the limit of 5");
    }
}
