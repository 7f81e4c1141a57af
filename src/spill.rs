//! An external sort of `(key, payload)` entries with bounded memory and a bounded number of open files.
//!
//! Entries are held in memory up to a budget, then sorted and written to a temporary *run* file. A
//! run per budget would mean one open file per few MiB of input, and `Too many open files` once the
//! input is large enough (8 GB of Bedrock output at 8 MiB per run is a thousand files). So whenever
//! [`FAN_IN`] runs exist, the newest ones are merged into one: at most `FAN_IN` runs plus the one
//! being written are ever open, whatever the input size, and [`Sorter::finish`] merges at most
//! `FAN_IN - 1` runs and the in-memory one.
//!
//! Runs are merged by levels, as a log-structured store does: a run made of merged runs has a higher
//! level than the runs it came from, and a merge takes the newest runs of the lowest level. So each
//! entry is rewritten only a few times (once per level), not once per merge. Only adjacent runs are
//! ever merged, and ties go to the earlier run, so the sort is stable: entries with equal keys come
//! out in the order they were pushed.
//!
//! A run file is a sequence of entries, each the key (16 bytes, little-endian), the payload length
//! (8 bytes, little-endian) and the payload. The files are anonymous temporary files: they vanish when
//! closed, even if the process is killed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

/// Never more than this many run files are open at once (plus the one a merge writes).
pub const FAN_IN: usize = 64;

/// The read buffer of each run during a merge: `FAN_IN` of them stay well under 8 MiB.
const READ_BUFFER: usize = 64 * 1024;

/// One entry held in memory: its key and where its payload is in the arena.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u128,
    start: usize,
    len: usize,
}

/// What an entry costs in memory beyond its payload: counted in the budget, so that millions of
/// empty payloads spill too.
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

/// A sorted run on disk; `level` is 0 for a run spilled from memory, one more than the highest of its
/// parts for a merged run.
struct Run {
    file: File,
    level: u32,
}

/// Collects entries; [`Sorter::finish`] gives them back in key order.
pub struct Sorter {
    budget: usize,
    dir: Option<PathBuf>,
    arena: Vec<u8>,
    index: Vec<Entry>,
    /// Oldest first; levels never increase from one run to the next.
    runs: Vec<Run>,
}

impl Sorter {
    /// `budget` bytes held in memory before a sorted run is spilled to a temp file in `dir` (system temp when None).
    pub fn new(budget: usize, dir: Option<PathBuf>) -> Sorter {
        Sorter {
            budget,
            dir,
            arena: Vec::new(),
            index: Vec::new(),
            runs: Vec::new(),
        }
    }

    pub fn push(&mut self, key: u128, payload: &[u8]) -> io::Result<()> {
        let held = self.arena.len() + self.index.len() * ENTRY_BYTES;
        if !self.index.is_empty() && held + payload.len() + ENTRY_BYTES > self.budget {
            self.spill()?;
        }
        self.index.push(Entry {
            key,
            start: self.arena.len(),
            len: payload.len(),
        });
        self.arena.extend_from_slice(payload);
        Ok(())
    }

    /// Everything pushed, in key order; equal keys in push order (stable).
    pub fn finish(mut self) -> io::Result<Sorted> {
        self.index.sort_by_key(|e| e.key);
        let mut sources: Vec<Source> = self.runs.into_iter().map(|r| Source::disk(r.file)).collect();
        sources.push(Source::Memory {
            arena: self.arena,
            index: self.index,
            at: 0,
        });
        Sorted::new(sources)
    }

    pub fn runs_on_disk(&self) -> usize {
        self.runs.len()
    }

    /// Writes the in-memory entries as a sorted run, then merges runs while there are [`FAN_IN`].
    fn spill(&mut self) -> io::Result<()> {
        // Stable: entries of one key keep their push order.
        self.index.sort_by_key(|e| e.key);
        let mut w = RunWriter::create(&self.dir)?;
        for e in &self.index {
            w.write(e.key, &self.arena[e.start..e.start + e.len])?;
        }
        self.runs.push(Run {
            file: w.finish()?,
            level: 0,
        });
        self.index.clear();
        self.arena.clear();
        self.arena.shrink_to(self.budget);
        while self.runs.len() >= FAN_IN {
            self.merge_newest()?;
        }
        Ok(())
    }

    /// Merges the newest runs of the lowest level into one run of the next level (with the level
    /// above when the lowest has a single run, so that every merge removes at least one file).
    fn merge_newest(&mut self) -> io::Result<()> {
        let from = merge_start(&self.runs);
        let parts = self.runs.split_off(from);
        let level = parts.iter().map(|r| r.level).max().unwrap_or(0) + 1;
        let mut merged = Sorted::new(parts.into_iter().map(|r| Source::disk(r.file)).collect())?;
        let mut w = RunWriter::create(&self.dir)?;
        while let Some((key, payload)) = merged.next()? {
            w.write(key, payload)?;
        }
        drop(merged);
        self.runs.push(Run {
            file: w.finish()?,
            level,
        });
        Ok(())
    }
}

/// Where the runs to merge begin: the newest runs that share the lowest level, extended to the next
/// level's runs until there are at least two.
fn merge_start(runs: &[Run]) -> usize {
    let mut from = runs.len();
    while from > 0 {
        let level = runs[from - 1].level;
        while from > 0 && runs[from - 1].level == level {
            from -= 1;
        }
        if runs.len() - from >= 2 {
            break;
        }
    }
    from
}

/// Writes one run file, buffered; hands it back rewound for reading.
struct RunWriter {
    out: BufWriter<File>,
}

impl RunWriter {
    fn create(dir: &Option<PathBuf>) -> io::Result<RunWriter> {
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("could not create a temporary sort file in {}: {e}", dir.display()),
                )
            })?,
            None => tempfile::tempfile().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("could not create a temporary sort file in the system temp folder: {e}"),
                )
            })?,
        };
        Ok(RunWriter {
            out: BufWriter::with_capacity(READ_BUFFER, file),
        })
    }

    fn write(&mut self, key: u128, payload: &[u8]) -> io::Result<()> {
        self.out.write_all(&key.to_le_bytes())?;
        self.out.write_all(&(payload.len() as u64).to_le_bytes())?;
        self.out.write_all(payload)
    }

    fn finish(self) -> io::Result<File> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        Ok(file)
    }
}

/// One input of a merge, with its current head loaded.
enum Source {
    Disk {
        reader: BufReader<File>,
        payload: Vec<u8>,
    },
    Memory {
        arena: Vec<u8>,
        index: Vec<Entry>,
        /// The index of the head entry.
        at: usize,
    },
}

impl Source {
    fn disk(file: File) -> Source {
        Source::Disk {
            reader: BufReader::with_capacity(READ_BUFFER, file),
            payload: Vec::new(),
        }
    }

    /// Loads the next head (its payload into the source's buffer for a disk run); its key, or `None`
    /// at the end. `first` is true for the first head of a memory source, which is already in place.
    fn advance(&mut self, first: bool) -> io::Result<Option<u128>> {
        match self {
            Source::Memory { index, at, .. } => {
                if !first {
                    *at += 1;
                }
                Ok(index.get(*at).map(|e| e.key))
            }
            Source::Disk { reader, payload } => read_entry(reader, payload),
        }
    }
}

/// Reads one run entry into `payload`; `None` at the end of the run.
fn read_entry(reader: &mut BufReader<File>, payload: &mut Vec<u8>) -> io::Result<Option<u128>> {
    if reader.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let cut = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(e.kind(), "a temporary sort file is cut short: was the disk full?")
        } else {
            e
        }
    };
    let mut key = [0u8; 16];
    let mut len = [0u8; 8];
    reader.read_exact(&mut key).map_err(cut)?;
    reader.read_exact(&mut len).map_err(cut)?;
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(io::Error::other)?;
    payload.clear();
    payload.resize(len, 0);
    reader.read_exact(payload).map_err(cut)?;
    Ok(Some(u128::from_le_bytes(key)))
}

/// The merge of every run: entries in key order, ties to the earlier run.
pub struct Sorted {
    sources: Vec<Source>,
    /// The head key of every source that has one, with the source's index: the smallest pair first,
    /// so that of equal keys the earlier run wins.
    heap: BinaryHeap<Reverse<(u128, usize)>>,
    /// The payload handed out by the last [`Sorted::next`].
    current: Vec<u8>,
}

impl Sorted {
    fn new(mut sources: Vec<Source>) -> io::Result<Sorted> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some(key) = source.advance(true)? {
                heap.push(Reverse((key, i)));
            }
        }
        Ok(Sorted {
            sources,
            heap,
            current: Vec::new(),
        })
    }

    pub fn peek_key(&self) -> Option<u128> {
        self.heap.peek().map(|Reverse((key, _))| *key)
    }

    /// The next entry; the payload slice is valid until the next call.
    #[allow(clippy::should_implement_trait)] // it lends its payload, which an Iterator cannot
    pub fn next(&mut self) -> io::Result<Option<(u128, &[u8])>> {
        let Some(Reverse((key, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let source = &mut self.sources[i];
        match source {
            // The disk head's buffer becomes the current payload, and the old one takes the next head.
            Source::Disk { payload, .. } => std::mem::swap(payload, &mut self.current),
            Source::Memory { arena, index, at } => {
                let e = index[*at];
                self.current.clear();
                self.current.extend_from_slice(&arena[e.start..e.start + e.len]);
            }
        }
        if let Some(next) = source.advance(false)? {
            self.heap.push(Reverse((next, i)));
        }
        Ok(Some((key, &self.current)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes every entry, checking the open-file bound as it goes, and reads them all back.
    fn sort(budget: usize, entries: &[(u128, Vec<u8>)]) -> (Vec<(u128, Vec<u8>)>, usize) {
        let mut sorter = Sorter::new(budget, None);
        let mut most_runs = 0;
        for (key, payload) in entries {
            sorter.push(*key, payload).unwrap();
            most_runs = most_runs.max(sorter.runs_on_disk());
        }
        let mut sorted = sorter.finish().unwrap();
        let mut out = Vec::new();
        loop {
            let peeked = sorted.peek_key();
            let Some((key, payload)) = sorted.next().unwrap() else {
                assert_eq!(peeked, None);
                break;
            };
            assert_eq!(peeked, Some(key));
            out.push((key, payload.to_vec()));
        }
        (out, most_runs)
    }

    /// The expected order: a stable sort by key.
    fn stable_sorted(entries: &[(u128, Vec<u8>)]) -> Vec<(u128, Vec<u8>)> {
        let mut want = entries.to_vec();
        want.sort_by_key(|e| e.0);
        want
    }

    #[test]
    fn many_levels_stay_sorted_stable_and_within_fan_in() {
        // 16 bytes hold no entry at all: every entry is a run of its own, 10,000 runs, merged in levels.
        let entries: Vec<(u128, Vec<u8>)> = (0..10_000u32)
            .map(|i| {
                let key = u128::from(i.wrapping_mul(7919) % 997) << 64;
                (key, i.to_le_bytes().to_vec())
            })
            .collect();
        let (out, most_runs) = sort(16, &entries);
        assert!(most_runs < FAN_IN, "{most_runs} runs on disk at once");
        assert_eq!(out, stable_sorted(&entries));
    }

    #[test]
    fn empty_and_large_payloads_survive() {
        let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let entries = vec![
            (5, Vec::new()),
            (u128::MAX, large.clone()),
            (0, Vec::new()),
            (5, b"x".to_vec()),
            (1, large),
            (5, Vec::new()),
        ];
        for budget in [0, 16, 1 << 30] {
            let (out, _) = sort(budget, &entries);
            assert_eq!(out, stable_sorted(&entries), "budget {budget}");
        }
    }

    #[test]
    fn empty_payloads_count_against_the_budget() {
        let mut sorter = Sorter::new(1024, None);
        for i in 0..1000 {
            sorter.push(i, b"").unwrap();
        }
        assert!(sorter.runs_on_disk() > 0, "1000 entries held in a 1 KiB budget");
    }

    #[test]
    fn nothing_pushed_gives_nothing() {
        let mut sorted = Sorter::new(0, None).finish().unwrap();
        assert_eq!(sorted.peek_key(), None);
        assert!(sorted.next().unwrap().is_none());
    }

    #[test]
    fn merges_take_the_newest_runs_of_the_lowest_level() {
        let runs = |levels: &[u32]| -> Vec<Run> {
            levels
                .iter()
                .map(|&level| Run {
                    file: tempfile::tempfile().unwrap(),
                    level,
                })
                .collect()
        };
        assert_eq!(merge_start(&runs(&[0, 0, 0])), 0);
        assert_eq!(merge_start(&runs(&[2, 1, 1, 0, 0])), 3);
        // A lone run of the lowest level is merged with the level above it.
        assert_eq!(merge_start(&runs(&[2, 1, 1, 0])), 1);
        assert_eq!(merge_start(&runs(&[3, 2, 1, 0])), 2);
    }

    #[test]
    fn a_cut_run_file_is_an_error() {
        let mut w = RunWriter::create(&None).unwrap();
        w.write(1, b"hello").unwrap();
        let file = w.finish().unwrap();
        file.set_len(20).unwrap();
        let mut reader = BufReader::new(file);
        let err = read_entry(&mut reader, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
    }
}
