//! Bedrock batch output → OpenAI `output.jsonl` and `errors.jsonl`, in the input file's order
//! (docs/bedrock.md#output-files; docs/formats.md#openai-lines and #results).
//!
//! Bedrock returns records in any order (docs/bedrock.md#output-files), and a job's output is as large as its input. So
//! [`Collector`] reads the output files once, keeping only each record's number, its `modelOutput` or
//! `error`, and the fingerprint of its echoed `modelInput` (not the echo itself), in a
//! [`Sorter`](crate::spill::Sorter): sorted in memory up to a budget, spilled to a bounded number of
//! sorted run files beyond it. [`join`] then walks the record map, the ledger of every input line, in
//! step with the sorted results: each line ends in exactly one place, and memory stays bounded by the
//! budget.
//!
//! Nothing from Bedrock is trusted to belong where its recordId says: an answer whose echoed request
//! differs from the one the record map says was sent is never joined (`mismatched_result`), a
//! `modelOutput` that is not the model family's shape is not an answer (`malformed_model_output`), and
//! a line that came back but cannot be read is said to be so for its record (`unreadable_result`)
//! rather than reported as never returned.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::completion::Usage;
use crate::counts::Counts;
use crate::embeddings;
use crate::error::{serde_message, shown};
use crate::fingerprint::{self, Fingerprint};
use crate::format::openai_output::{
    write_batch_error, write_http_error, write_success, ChatCompletion, EmbeddingOut, EmbeddingsResponse,
    EmbeddingsUsage, HttpError, Ids, Written,
};
use crate::format::{self, titan};
use crate::jsonl::{self, is_blank, Line, Lines, DEFAULT_MAX_LINE_BYTES};
use crate::model::{self, Family, ModelName};
use crate::record_id::RecordId;
use crate::spill::{Sorted, Sorter};
use crate::translate::{MapCounts, MapEmbedding, MapEnd, MapHeader, MapLine, MAP_VERSION, OLDEST_MAP_VERSION};

/// The final status of a Bedrock job, as far as its missing records are concerned (docs/bedrock.md#job-statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobStatus {
    #[value(name = "Completed")]
    Completed,
    #[value(name = "PartiallyCompleted")]
    PartiallyCompleted,
    #[value(name = "Expired")]
    Expired,
    #[value(name = "Stopped")]
    Stopped,
    #[value(name = "Failed")]
    Failed,
}

impl JobStatus {
    /// Reads a terminal Bedrock status name; anything else is `None`.
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "Completed" => JobStatus::Completed,
            "PartiallyCompleted" => JobStatus::PartiallyCompleted,
            "Expired" => JobStatus::Expired,
            "Stopped" => JobStatus::Stopped,
            "Failed" => JobStatus::Failed,
            _ => return None,
        })
    }

    /// The error code and message for a record the job never returned (docs/formats.md#openai-lines).
    pub fn missing(self) -> (&'static str, &'static str) {
        match self {
            JobStatus::Completed => (
                "batch_failed",
                "Bedrock completed the job but returned no result for this request.",
            ),
            JobStatus::PartiallyCompleted => (
                "batch_expired",
                "This request was not processed before the Bedrock job's time ran out (PartiallyCompleted).",
            ),
            JobStatus::Expired => (
                "batch_expired",
                "The Bedrock job expired before it started, so this request never ran.",
            ),
            JobStatus::Stopped => ("batch_cancelled", "The batch was cancelled before this request ran."),
            JobStatus::Failed => (
                "batch_failed",
                "The Bedrock job failed, so this request never ran; batch.json holds Bedrock's message.",
            ),
        }
    }
}

/// What a collected result holds: the first byte of its payload in the sorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Output = 0,
    Error = 1,
    /// The line came back for this record but could not be read; the payload is the message.
    Unreadable = 2,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        [Kind::Output, Kind::Error, Kind::Unreadable]
            .into_iter()
            .find(|k| *k as u8 == b)
    }
}

/// The sorter's key of a result: the record number, then readable results before unreadable ones, so
/// that when a record came back twice, once cut short, the readable copy is the one joined.
fn sort_key(record: u64, kind: Kind) -> u128 {
    (u128::from(record) << 1) | u128::from(kind == Kind::Unreadable)
}

fn record_of(key: u128) -> u64 {
    (key >> 1) as u64
}

/// A result's payload in the sorter: kind, flags (whether the echo had a fingerprint, whether the text
/// is in a file), the fingerprint (little-endian), then the `modelOutput`, `error` or message text, or
/// where that text is ([`Place`]).
const PAYLOAD_HEADER: usize = 10;
const ECHOED: u8 = 1;
const PLACED: u8 = 2;

/// Where a result's text is: in the Bedrock output file `file` (its index in [`Collector::files`]),
/// `len` bytes from byte `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    file: u32,
    offset: u64,
    len: u64,
}

const PLACE_BYTES: usize = 20;

/// A text at least this long is left in its Bedrock output file and read again when joined, rather
/// than copied into the sorter: an embedding or a long answer would otherwise be written to a sorted run
/// and read back, often twice (spill.rs), where reading it again from the file is one read of bytes the
/// page cache usually still holds. Shorter texts cost less to copy than to read again.
const PLACE_FROM_BYTES: usize = 512;

fn encode(buf: &mut Vec<u8>, kind: Kind, echoed: Option<Fingerprint>, text: &[u8]) {
    encode_header(buf, kind, echoed, 0);
    buf.extend_from_slice(text);
}

fn encode_placed(buf: &mut Vec<u8>, kind: Kind, echoed: Option<Fingerprint>, place: Place) {
    encode_header(buf, kind, echoed, PLACED);
    buf.extend_from_slice(&place.file.to_le_bytes());
    buf.extend_from_slice(&place.offset.to_le_bytes());
    buf.extend_from_slice(&place.len.to_le_bytes());
}

fn encode_header(buf: &mut Vec<u8>, kind: Kind, echoed: Option<Fingerprint>, flags: u8) {
    buf.clear();
    buf.push(kind as u8);
    buf.push(flags | if echoed.is_some() { ECHOED } else { 0 });
    buf.extend_from_slice(&echoed.map_or(0, |f| f.0).to_le_bytes());
}

/// One collected result, read back from the sorter.
struct Collected<'p> {
    kind: Kind,
    /// The fingerprint of the `modelInput` Bedrock echoed, when it echoed one.
    echoed: Option<Fingerprint>,
    text: &'p str,
}

fn corrupt() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a sorted result is corrupt (temporary file damaged?)",
    )
}

/// Reads a payload whose text is in it (a placed one is [`Files::fetch`]ed first).
fn decode(payload: &[u8]) -> io::Result<Collected<'_>> {
    if payload.len() < PAYLOAD_HEADER || payload[1] & !ECHOED != 0 {
        return Err(corrupt());
    }
    let kind = Kind::from_byte(payload[0]).ok_or_else(corrupt)?;
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&payload[2..PAYLOAD_HEADER]);
    let echoed = (payload[1] & ECHOED != 0).then_some(Fingerprint(u64::from_le_bytes(fp)));
    let text = jsonl::utf8(&payload[PAYLOAD_HEADER..]).map_err(|_| corrupt())?;
    Ok(Collected { kind, echoed, text })
}

/// Where a placed payload's text is; `None` for a payload that holds its text.
fn place_of(payload: &[u8]) -> io::Result<Option<Place>> {
    if payload.len() < PAYLOAD_HEADER || payload[1] & PLACED == 0 {
        return Ok(None);
    }
    let place = &payload[PAYLOAD_HEADER..];
    if place.len() != PLACE_BYTES {
        return Err(corrupt());
    }
    let le4 = |b: &[u8]| b.try_into().map(u32::from_le_bytes).map_err(|_| corrupt());
    let le8 = |b: &[u8]| b.try_into().map(u64::from_le_bytes).map_err(|_| corrupt());
    Ok(Some(Place {
        file: le4(&place[..4])?,
        offset: le8(&place[4..12])?,
        len: le8(&place[12..])?,
    }))
}

/// The Bedrock output files whose results' texts were left in them, held open until the join reads them.
#[derive(Default)]
struct Files {
    open: Vec<HeldFile>,
}

struct HeldFile {
    name: String,
    file: File,
    /// Its length and modification time once read: the same at the join, or the file changed meanwhile.
    seen: (u64, Option<SystemTime>),
}

/// How many Bedrock output files are held open at once; the texts of any further ones are copied.
const MAX_HELD_FILES: usize = 256;

/// The read buffer of a held file while it is collected.
const READ_BUFFER: usize = 256 * 1024;

fn stat(file: &File) -> io::Result<(u64, Option<SystemTime>)> {
    let meta = file.metadata()?;
    Ok((meta.len(), meta.modified().ok()))
}

impl Files {
    /// The payload itself, or for a placed one, its header and the text read from its file into `buf`.
    fn fetch<'p>(&self, payload: &'p [u8], buf: &'p mut Vec<u8>) -> io::Result<&'p [u8]> {
        let Some(place) = place_of(payload)? else {
            return Ok(payload);
        };
        let held = self.open.get(place.file as usize).ok_or_else(corrupt)?;
        let len = usize::try_from(place.len).map_err(|_| corrupt())?;
        buf.clear();
        buf.extend_from_slice(&payload[..PAYLOAD_HEADER]);
        buf[1] &= !PLACED;
        buf.resize(PAYLOAD_HEADER + len, 0);
        read_at(&held.file, &mut buf[PAYLOAD_HEADER..], place.offset).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{}: reading a result again at byte {}: {e}", held.name, place.offset),
            )
        })?;
        Ok(buf)
    }

    /// [`Files::fetch`], into a buffer of its own.
    fn fetch_owned(&self, payload: &[u8]) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        if place_of(payload)?.is_none() {
            buf.extend_from_slice(payload);
        } else {
            self.fetch(payload, &mut buf)?;
        }
        Ok(buf)
    }

    /// Refuses to join texts from a file that changed since it was read: they may be other bytes now.
    fn check_unchanged(&self) -> io::Result<()> {
        for held in &self.open {
            if stat(&held.file)? != held.seen {
                return Err(io::Error::other(format!(
                    "{}: the Bedrock output file changed while its results were read; run again",
                    held.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[derive(Deserialize)]
#[serde(expecting = "a Bedrock output record (an object with recordId and modelOutput or error)")]
struct OutputLine<'a> {
    #[serde(rename = "recordId", borrow, default)]
    record_id: Option<Cow<'a, str>>,
    #[serde(rename = "modelInput", borrow, default)]
    model_input: Option<&'a RawValue>,
    #[serde(rename = "modelOutput", borrow, default)]
    model_output: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Counts from reading Bedrock output files.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct CollectReport {
    pub output_lines: u64,
    /// Readable lines that cannot be tied to a record: no recordId, or a recordId not of ours.
    pub unmatched_lines: u64,
    /// The first few of those, as `file:line: why`.
    pub unmatched_samples: Vec<String>,
    /// Lines that are no readable Bedrock output record: cut short, not UTF-8, a NUL byte, a byte
    /// order mark, not JSON, over the line-length limit, or neither modelOutput nor error.
    pub unreadable_lines: u64,
    /// Of those, the lines whose recordId could still be found: their records get an
    /// `unreadable_result` error line saying so (the others' records are reported as not returned).
    pub unreadable_records: u64,
    /// The first few unreadable lines, as `file:line: why`.
    pub unreadable_samples: Vec<String>,
}

const SAMPLES: usize = 20;
/// The longest sample or quoted value kept, in bytes: a hostile line must not fill the report.
const SAMPLE_BYTES: usize = 300;

/// Adds a `file:line: why` sample while there are fewer than [`SAMPLES`].
fn sample(samples: &mut Vec<String>, name: &str, line: u64, why: &str) {
    if samples.len() < SAMPLES {
        samples.push(shown(&format!("{name}:{line}: {why}"), SAMPLE_BYTES));
    }
}

/// Reads Bedrock output files, keeping each record's result sorted by record number.
pub struct Collector {
    sorter: Sorter,
    report: CollectReport,
    /// The payload being pushed, reused from line to line.
    scratch: Vec<u8>,
    files: Files,
}

/// Where the line being read is: the index of its file in [`Files`] and the offset of its first byte.
#[derive(Clone, Copy)]
struct LineAt<'l> {
    file: u32,
    offset: u64,
    text: &'l str,
}

impl Collector {
    /// `budget` bytes of results are held in memory before a sorted run is spilled to a file in
    /// `spill_dir` (the system temp folder when `None`).
    pub fn new(budget: usize, spill_dir: Option<PathBuf>) -> Self {
        Collector {
            sorter: Sorter::new(budget, spill_dir),
            report: CollectReport::default(),
            scratch: Vec::new(),
            files: Files::default(),
        }
    }

    /// Reads one `*.jsonl.out` file from a stream, copying every result it keeps. `name` is used in
    /// messages only.
    pub fn add<R: BufRead>(&mut self, name: &str, reader: R) -> io::Result<()> {
        self.add_lines(name, Lines::new(reader), None)
    }

    /// Reads one `*.jsonl.out` file, which must stay as it is until [`join`]: long results are left in
    /// it, held open, and read again there (a file that changed meanwhile is refused). `name` is used in
    /// messages only.
    pub fn add_file(&mut self, name: &str, file: File) -> io::Result<()> {
        let index = self.files.open.len();
        if index >= MAX_HELD_FILES {
            return self.add(name, io::BufReader::with_capacity(READ_BUFFER, &file));
        }
        let file_index = u32::try_from(index).map_err(|_| corrupt())?;
        self.add_lines(
            name,
            Lines::new(io::BufReader::with_capacity(READ_BUFFER, &file)),
            Some(file_index),
        )?;
        let seen = stat(&file)?;
        self.files.open.push(HeldFile {
            name: name.to_string(),
            file,
            seen,
        });
        Ok(())
    }

    fn add_lines<R: BufRead>(&mut self, name: &str, mut lines: Lines<R>, file: Option<u32>) -> io::Result<()> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{name}: {e}"));
        while let Some((line_no, offset, line)) = lines.next_at().map_err(named)? {
            match line {
                Line::TooLong { bytes } => {
                    self.report.output_lines += 1;
                    let why = format!("is {bytes} bytes long, over the limit of {DEFAULT_MAX_LINE_BYTES} bytes");
                    self.unreadable(name, line_no, None, &why)?;
                }
                Line::Text(text) if is_blank(text) => {}
                Line::Text(text) => {
                    self.report.output_lines += 1;
                    self.line(name, line_no, text, file.map(|file| (file, offset)))?;
                }
            }
        }
        Ok(())
    }

    pub fn report(&self) -> &CollectReport {
        &self.report
    }

    /// `at`: the held file the line is in, and the line's offset there.
    fn line(&mut self, name: &str, line_no: u64, line: &[u8], at: Option<(u32, u64)>) -> io::Result<()> {
        // serde would read an array as the fields in order: a line must be an object to be a record.
        // Checked as UTF-8 once, here: serde_json reading a `&str` checks no string of it again.
        let starts_an_object = line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let parsed = match jsonl::utf8(line) {
            Ok(text) if starts_an_object => serde_json::from_str::<OutputLine>(text)
                .map(|record| (record, at.map(|(file, offset)| LineAt { file, offset, text })))
                .map_err(Some),
            _ => Err(None),
        };
        match parsed {
            Ok((record, at)) => self.record(name, line_no, record, at),
            Err(e) => {
                let why = unreadable_why(line, e.as_ref());
                self.unreadable(name, line_no, find_record_id(line), &why)
            }
        }
    }

    /// A line that is JSON: tied to its record, or counted as unmatched.
    fn record(&mut self, name: &str, line_no: u64, line: OutputLine<'_>, at: Option<LineAt<'_>>) -> io::Result<()> {
        let Some(id) = line.record_id else {
            return self.unmatched(name, line_no, "has no recordId");
        };
        let Some(record) = RecordId::parse(&id) else {
            let why = format!("recordId {} was not written by batchdrop", shown(&quoted(&id), 60));
            return self.unmatched(name, line_no, &why);
        };
        let echoed = line.model_input.and_then(|raw| Fingerprint::of_json_text(raw.get()));
        match (line.error, line.model_output) {
            // An error wins over a modelOutput, should a record carry both.
            (Some(err), _) => self.push_text(record, Kind::Error, echoed, err.get(), at),
            (None, Some(out)) => self.push_text(record, Kind::Output, echoed, out.get(), at),
            (None, None) => self.unreadable(name, line_no, Some(record), "has neither modelOutput nor error"),
        }
    }

    /// A `modelOutput` or `error`, left in its file when it is long and the file is held.
    fn push_text(
        &mut self,
        record: RecordId,
        kind: Kind,
        echoed: Option<Fingerprint>,
        text: &str,
        at: Option<LineAt<'_>>,
    ) -> io::Result<()> {
        // `text` is borrowed from the line (serde_json's RawValue is a slice of its input).
        let within = |at: &LineAt<'_>| {
            let from = (text.as_ptr() as usize).checked_sub(at.text.as_ptr() as usize)?;
            (from + text.len() <= at.text.len()).then_some(from as u64)
        };
        let place = at.filter(|_| text.len() >= PLACE_FROM_BYTES).and_then(|at| {
            Some(Place {
                file: at.file,
                offset: at.offset + within(&at)?,
                len: text.len() as u64,
            })
        });
        match place {
            Some(place) => {
                encode_placed(&mut self.scratch, kind, echoed, place);
                self.sorter.push(sort_key(record.number(), kind), &self.scratch)
            }
            None => self.push(record, kind, echoed, text.as_bytes()),
        }
    }

    fn push(&mut self, record: RecordId, kind: Kind, echoed: Option<Fingerprint>, text: &[u8]) -> io::Result<()> {
        encode(&mut self.scratch, kind, echoed, text);
        self.sorter.push(sort_key(record.number(), kind), &self.scratch)
    }

    fn unmatched(&mut self, name: &str, line_no: u64, why: &str) -> io::Result<()> {
        self.report.unmatched_lines += 1;
        sample(&mut self.report.unmatched_samples, name, line_no, why);
        Ok(())
    }

    /// A line that came back but cannot be read. When its recordId is known, the record's error line
    /// says so.
    fn unreadable(&mut self, name: &str, line_no: u64, record: Option<RecordId>, why: &str) -> io::Result<()> {
        self.report.unreadable_lines += 1;
        let Some(record) = record else {
            sample(&mut self.report.unreadable_samples, name, line_no, why);
            return Ok(());
        };
        self.report.unreadable_records += 1;
        let shown_why = format!("{why} (recordId {})", record.as_str());
        sample(&mut self.report.unreadable_samples, name, line_no, &shown_why);
        let message = format!(
            "Bedrock's output line {}:{line_no} for this request could not be read: {why}",
            shown(name, SAMPLE_BYTES)
        );
        self.push(record, Kind::Unreadable, None, message.as_bytes())
    }
}

/// A string as a JSON string literal, as messages quote values.
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a line that is not a Bedrock output record is not, precisely enough to find the damage: `e` is
/// serde_json's error, `None` when the line does not start as an object. Bytes are counted from 1, as
/// an editor's columns are.
fn unreadable_why(line: &[u8], e: Option<&serde_json::Error>) -> String {
    if line.starts_with(BOM) {
        return "starts with a byte order mark (U+FEFF): only the first line of a file may".to_string();
    }
    if let Err(u) = std::str::from_utf8(line) {
        return format!("is not valid UTF-8 at byte {}", u.valid_up_to() + 1);
    }
    if let Some(i) = line.iter().position(|b| *b == 0) {
        return format!("contains a NUL byte at byte {}", i + 1);
    }
    let Some(e) = e else {
        return "is not a JSON object: Bedrock writes one object per line".to_string();
    };
    if e.classify() == serde_json::error::Category::Eof {
        return "is cut short: the JSON ends before the object closes".to_string();
    }
    format!(
        "is not a Bedrock output record: {} at byte {}",
        shown(&serde_message(e), SAMPLE_BYTES),
        e.column()
    )
}

/// The recordId of a line that cannot be parsed, found by its bytes: `"recordId"`, optional
/// whitespace, `:`, optional whitespace, then a recordId of ours in quotes. Quotes inside JSON strings
/// are escaped, so the text of a request cannot fake one. `None` when there is none, or two that
/// differ.
fn find_record_id(line: &[u8]) -> Option<RecordId> {
    const KEY: &[u8] = b"\"recordId\"";
    let mut found: Option<RecordId> = None;
    let mut at = 0;
    while let Some(i) = line[at..].windows(KEY.len()).position(|w| w == KEY) {
        at += i + KEY.len();
        if let Some(id) = record_id_value(&line[at..]) {
            match found {
                Some(seen) if seen != id => return None,
                _ => found = Some(id),
            }
        }
    }
    found
}

/// `: "R0123456789"` at the start of `s`, whitespace allowed around the colon.
fn record_id_value(s: &[u8]) -> Option<RecordId> {
    let skip = |s: &[u8]| -> usize {
        s.iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .count()
    };
    let s = &s[skip(s)..];
    let s = s.strip_prefix(b":")?;
    let s = &s[skip(s)..];
    let s = s.strip_prefix(b"\"")?;
    let (id, rest) = s.split_at_checked(11)?;
    if rest.first() != Some(&b'"') {
        return None;
    }
    RecordId::parse(std::str::from_utf8(id).ok()?)
}

#[derive(Deserialize)]
struct RecordError<'a> {
    #[serde(rename = "errorCode", borrow, default)]
    code: Option<&'a RawValue>,
    #[serde(rename = "errorMessage", borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// Counts from writing results: every entry of the record map is in exactly one of `succeeded`,
/// `failed`, `missing` and `rejected`.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ResultsReport {
    pub lines: u64,
    pub succeeded: u64,
    /// Records Bedrock answered with an error, whose output was unusable, unreadable or another
    /// request's.
    pub failed: u64,
    /// Records Bedrock never returned, by error code.
    pub missing: BTreeMap<&'static str, u64>,
    /// Lines rejected before Bedrock, from the record map.
    pub rejected: u64,
    /// Of `failed`: results whose echoed `modelInput` is not the request the record map says was sent
    /// (`mismatched_result` error lines). Never joined: the record map and the Bedrock output are
    /// probably from different batches.
    pub mismatched: u64,
    /// Of `failed`: records whose Bedrock output line came back but could not be read
    /// (`unreadable_result` error lines).
    pub unreadable: u64,
    /// Results joined without proof that they answer their request: the output line echoed no
    /// `modelInput`, or the record map entry has no fingerprint.
    pub unverified: u64,
    /// Extra results for a record already answered: the first was kept.
    pub duplicate_results: u64,
    /// Results whose record number is not in the record map.
    pub unexpected_results: u64,
    pub usage: Usage,
    /// Stop reasons batchdrop does not know, mapped to `stop` (docs/formats.md#finish_reason); bounded, escaped keys.
    pub unknown_stop_reasons: Counts,
}

impl ResultsReport {
    /// Error lines written: everything that did not succeed.
    pub fn error_lines(&self) -> u64 {
        self.failed + self.missing.values().sum::<u64>() + self.rejected
    }
}

/// Options of [`join`].
pub struct JoinOptions<'f> {
    /// `created` of every `chat.completion` (unix seconds): when the results were made.
    pub created: u64,
    /// The final status of the job that ran a record, given the record's job (when planned) and model.
    pub status: &'f dyn Fn(Option<usize>, &str) -> JobStatus,
}

fn bad_map(line: u64, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("record map line {line}: {why}"))
}

/// The header: the map's format and its batch id.
fn read_header<M: BufRead>(lines: &mut Lines<M>) -> io::Result<MapHeader> {
    let Some((_, header)) = lines.next_line()? else {
        return Err(bad_map(1, "the record map is empty"));
    };
    let header: MapHeader = serde_json::from_slice(header)
        .map_err(|e| bad_map(1, format!("not a record map header: {}", serde_message(&e))))?;
    if !(OLDEST_MAP_VERSION..=MAP_VERSION).contains(&header.batchdrop_record_map) {
        return Err(bad_map(
            1,
            format!(
                "record map format {}, but this batchdrop reads format {MAP_VERSION}: translate the input again with this version",
                header.batchdrop_record_map
            ),
        ));
    }
    Ok(header)
}

/// What the walk of the map has seen, to refuse a map that was cut, edited or put together.
#[derive(Default)]
struct MapWalk {
    /// The last map line read (blank ones included).
    map_line: u64,
    last_input_line: u64,
    last_record: u64,
    entries: u64,
    records: u64,
    /// Where the trailer was, and its counts.
    end: Option<(u64, MapCounts)>,
}

impl MapWalk {
    /// Input lines must be strictly increasing: a map listing one twice would give two lines one
    /// `batch_req_` id, and one answer twice.
    fn entry(&mut self, map_line: u64, input_line: u64) -> io::Result<()> {
        if input_line == 0 {
            return Err(bad_map(map_line, "input line 0: input lines are counted from 1"));
        }
        if input_line <= self.last_input_line {
            return Err(bad_map(
                map_line,
                format!("input line {input_line} appears twice (or out of order)"),
            ));
        }
        self.last_input_line = input_line;
        self.entries += 1;
        Ok(())
    }

    /// An entry's records: `count` of them from `first` on.
    fn records(&mut self, map_line: u64, first: u64, count: u64) -> io::Result<()> {
        if first <= self.last_record {
            return Err(bad_map(
                map_line,
                format!(
                    "recordId {} appears twice (or out of order)",
                    RecordId::new(first).as_str()
                ),
            ));
        }
        let last = first.saturating_add(count.saturating_sub(1));
        if count == 0 || last > RecordId::MAX {
            return Err(bad_map(
                map_line,
                format!(
                    "an entry of {count} records from recordId {}",
                    RecordId::new(first).as_str()
                ),
            ));
        }
        self.last_record = last;
        self.records += count;
        Ok(())
    }

    /// The trailer must be there, and hold the counts read.
    fn finish(&self) -> io::Result<()> {
        let Some((at, counts)) = self.end else {
            return Err(bad_map(
                self.map_line + 1,
                "the record map has no last line ({\"batchdrop_record_map_end\":…}): it was cut short, so \
                 lines would be lost; copy it again from where translate wrote it",
            ));
        };
        if counts.entries != self.entries || counts.records != self.records {
            return Err(bad_map(
                at,
                format!(
                    "the record map says it holds {} entries ({} records) but {} entries ({} records) were read: \
                     lines were lost or added",
                    counts.entries, counts.records, self.entries, self.records
                ),
            ));
        }
        Ok(())
    }
}

/// The family of each model named in a map that does not say it (written before the family was kept), from
/// the model catalogue; the last one remembered (maps run model by model).
#[derive(Default)]
struct Families {
    last: Option<(String, Family)>,
}

impl Families {
    fn of(&mut self, map_line: u64, model_id: &str) -> io::Result<Family> {
        if let Some((id, family)) = &self.last {
            if id == model_id {
                return Ok(*family);
            }
        }
        match model::classify(model_id) {
            ModelName::Supported(m) => {
                self.last = Some((model_id.to_string(), m.family));
                Ok(m.family)
            }
            other => {
                let why = match other {
                    ModelName::Unsupported(why) => shown(&why, SAMPLE_BYTES),
                    _ => "not a Bedrock model id".to_string(),
                };
                Err(bad_map(
                    map_line,
                    format!(
                        "{} is not a model batchdrop translates for ({why}); if the input was translated with a \
                         model catalogue file of your own (--models FILE or {}), give results the same file",
                        shown(&quoted(model_id), SAMPLE_BYTES),
                        crate::catalogue::ENV_VAR
                    ),
                ))
            }
        }
    }
}

/// An accepted map entry, checked.
struct Accepted<'e> {
    record: RecordId,
    model: &'e str,
    custom_id: &'e str,
    family: Family,
    /// The fingerprint of the `modelInput` sent, when the map has it.
    sent: Option<Fingerprint>,
    /// The structured-output tool whose input is the answer.
    structured: Option<&'e str>,
    /// An embeddings line: its records and the answer's shape.
    embedding: Option<MapEmbedding>,
}

fn accepted<'e>(map_line: u64, entry: &'e MapLine<'_>, families: &mut Families) -> io::Result<Accepted<'e>> {
    let (Some(record_id), Some(model), Some(custom_id)) = (
        entry.record_id.as_deref(),
        entry.model.as_deref(),
        entry.custom_id.as_deref(),
    ) else {
        return Err(bad_map(
            map_line,
            "an accepted entry needs recordId, model and custom_id",
        ));
    };
    let Some(record) = RecordId::parse(record_id) else {
        return Err(bad_map(
            map_line,
            format!("{} is not a batchdrop recordId", shown(&quoted(record_id), 60)),
        ));
    };
    let sent = match entry.fingerprint.as_deref() {
        None => None,
        Some(hex) => Some(
            Fingerprint::from_hex(hex)
                .ok_or_else(|| bad_map(map_line, format!("fp {} is not 16 hex digits", shown(&quoted(hex), 60))))?,
        ),
    };
    // As translated; only a map from before the family was kept asks the catalogue.
    let family = match entry.family {
        Some(family) => family,
        None => families.of(map_line, model)?,
    };
    if let Some(e) = entry.embedding.filter(|e| e.parts as usize > embeddings::MAX_INPUTS) {
        return Err(bad_map(
            map_line,
            format!(
                "an embeddings entry of {} records, but a line has at most {}",
                e.parts,
                embeddings::MAX_INPUTS
            ),
        ));
    }
    if (family == Family::TitanEmbed) != entry.embedding.is_some() {
        return Err(bad_map(
            map_line,
            format!(
                "{} {} an embeddings model, but the entry {} embedding",
                shown(&quoted(model), SAMPLE_BYTES),
                if family == Family::TitanEmbed { "is" } else { "is not" },
                if entry.embedding.is_some() { "has an" } else { "has no" }
            ),
        ));
    }
    Ok(Accepted {
        record,
        model,
        custom_id,
        family,
        sent,
        structured: entry.structured.as_deref(),
        embedding: entry.embedding,
    })
}

/// Writes `output` and `errors` from the record map and the collected results, in input order.
pub fn join<M: BufRead, O: Write, E: Write>(
    map: M,
    collector: Collector,
    options: &JoinOptions<'_>,
    output: &mut O,
    errors: &mut E,
) -> io::Result<ResultsReport> {
    let mut lines = Lines::new(map);
    let header = read_header(&mut lines)?;
    let ids = Ids::new(&header.batch_id);
    let Collector { sorter, files, .. } = collector;
    files.check_unchanged()?;
    let mut results = sorter.finish()?;
    let mut fetched = Vec::new();
    let mut report = ResultsReport::default();
    let mut families = Families::default();
    let mut walk = MapWalk {
        map_line: 1,
        ..MapWalk::default()
    };

    while let Some((map_line, entry)) = lines.next_line()? {
        walk.map_line = map_line;
        if is_blank(entry) {
            continue;
        }
        if let Some((at, _)) = walk.end {
            return Err(bad_map(
                map_line,
                format!("an entry after the record map's last line (line {at}): lines were added to it"),
            ));
        }
        if let Some(counts) = MapEnd::parse(entry) {
            let counts =
                counts.map_err(|e| bad_map(map_line, format!("not a record map trailer: {}", serde_message(&e))))?;
            walk.end = Some((map_line, counts));
            continue;
        }
        let entry: MapLine = serde_json::from_slice(entry)
            .map_err(|e| bad_map(map_line, format!("not a record map entry: {}", serde_message(&e))))?;
        walk.entry(map_line, entry.line)?;
        report.lines += 1;
        if let Some(rej) = &entry.rejected {
            report.rejected += 1;
            write_http_error(
                errors,
                &ids,
                entry.line,
                entry.custom_id.as_deref(),
                &HttpError {
                    status: 400,
                    message: &rej.message,
                    param: rej.param.as_deref().filter(|p| !p.is_empty()),
                    code: Some(&rej.code),
                },
            )?;
            continue;
        }
        let accepted = accepted(map_line, &entry, &mut families)?;
        let count = accepted.embedding.map_or(1, |e| u64::from(e.parts));
        walk.records(map_line, accepted.record.number(), count)?;
        let ctx = Ctx {
            ids: &ids,
            line: entry.line,
            job: entry.job,
            accepted,
            created: options.created,
            files: &files,
        };
        ctx.join(&mut results, &mut fetched, options, output, errors, &mut report)?;
    }
    walk.finish()?;
    while results.next()?.is_some() {
        report.unexpected_results += 1;
    }
    Ok(report)
}

/// One accepted record being joined with its result.
struct Ctx<'c> {
    ids: &'c Ids,
    /// The input line, and the Bedrock job that ran it (when planned).
    line: u64,
    job: Option<usize>,
    accepted: Accepted<'c>,
    created: u64,
    /// Where the long results are.
    files: &'c Files,
}

impl Ctx<'_> {
    /// Writes the record's line from its first result (or as missing), passing over the results of
    /// records before it (not in the map) and after its first (duplicates).
    /// `fetched` holds a result read again from its file, reused from record to record.
    fn join<O: Write, E: Write>(
        &self,
        results: &mut Sorted,
        fetched: &mut Vec<u8>,
        options: &JoinOptions<'_>,
        output: &mut O,
        errors: &mut E,
        report: &mut ResultsReport,
    ) -> io::Result<()> {
        if let Some(embedding) = self.accepted.embedding {
            return self.join_embedding(embedding, results, options, output, errors, report);
        }
        let record = self.accepted.record.number();
        skip_before(results, record, report)?;
        match results.peek_key() {
            Some(k) if record_of(k) == record => {
                if let Some((_, payload)) = results.next()? {
                    let payload = self.files.fetch(payload, fetched)?;
                    self.write(decode(payload)?, output, errors, report)?;
                }
            }
            _ => self.missing(options, errors, report)?,
        }
        skip_duplicates(results, record, report)
    }

    fn missing<E: Write>(
        &self,
        options: &JoinOptions<'_>,
        errors: &mut E,
        report: &mut ResultsReport,
    ) -> io::Result<()> {
        let (code, message) = (options.status)(self.job, self.accepted.model).missing();
        *report.missing.entry(code).or_default() += 1;
        write_batch_error(errors, self.ids, self.line, self.accepted.custom_id, code, message)
    }

    /// An embeddings line: the results of its records, one per text, joined into one answer. The line fails
    /// as a whole when any of them is missing, an error, or unusable, and says which text.
    fn join_embedding<O: Write, E: Write>(
        &self,
        embedding: MapEmbedding,
        results: &mut Sorted,
        options: &JoinOptions<'_>,
        output: &mut O,
        errors: &mut E,
        report: &mut ResultsReport,
    ) -> io::Result<()> {
        let first = self.accepted.record.number();
        // Each part's payload, copied (or read again): the sorter lends one payload at a time.
        let mut payloads: Vec<Option<Vec<u8>>> = Vec::with_capacity(embedding.parts as usize);
        for i in 0..u64::from(embedding.parts) {
            let record = first + i;
            skip_before(results, record, report)?;
            let mut payload = None;
            if results.peek_key().is_some_and(|k| record_of(k) == record) {
                if let Some((_, p)) = results.next()? {
                    payload = Some(self.files.fetch_owned(p)?);
                }
            }
            skip_duplicates(results, record, report)?;
            payloads.push(payload);
        }
        if payloads.iter().any(Option::is_none) {
            return self.missing(options, errors, report);
        }
        let mut parts = Vec::with_capacity(payloads.len());
        for payload in payloads.iter().flatten() {
            parts.push(decode(payload)?);
        }
        if self.refused(&parts, errors, report)? {
            return Ok(());
        }
        let mut data = Vec::with_capacity(parts.len());
        let mut tokens: u64 = 0;
        for (i, part) in parts.iter().enumerate() {
            let written = titan::read(part.text, embedding.dimensions).and_then(|v| {
                tokens = tokens.saturating_add(v.tokens);
                if embedding.base64 {
                    titan::to_base64(v.raw).map(Written::Base64)
                } else {
                    Ok(Written::Float(v.raw))
                }
            });
            match written {
                Ok(w) => data.push(EmbeddingOut {
                    object: "embedding",
                    index: i,
                    embedding: w,
                }),
                Err(unusable) => {
                    let message = format!("{}{}", which_part(parts.len(), i), unusable.message);
                    return self.fail(errors, report, 500, Some(unusable.code), &message);
                }
            }
        }
        report.succeeded += 1;
        report.usage.add(&Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
            ..Usage::default()
        });
        let body = EmbeddingsResponse {
            object: "list",
            data,
            model: self.accepted.model,
            usage: EmbeddingsUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        };
        write_success(output, self.ids, self.line, self.accepted.custom_id, body)
    }

    /// Writes the record's line from its result: the answer, or an error line saying why not.
    fn write<O: Write, E: Write>(
        &self,
        result: Collected<'_>,
        output: &mut O,
        errors: &mut E,
        report: &mut ResultsReport,
    ) -> io::Result<()> {
        if self.refused(std::slice::from_ref(&result), errors, report)? {
            return Ok(());
        }
        let read = format::read(self.accepted.family, result.text);
        match read.and_then(|c| match self.accepted.structured {
            Some(tool) => c.into_structured(tool),
            None => Ok(c),
        }) {
            Err(unusable) => self.fail(errors, report, 500, Some(unusable.code), &unusable.message),
            Ok(c) => {
                if let Some(stop) = &c.unknown_stop_reason {
                    report.unknown_stop_reasons.bump(stop);
                }
                report.succeeded += 1;
                report.usage.add(&c.usage);
                let id = self.ids.completion_id(self.line);
                let body = ChatCompletion {
                    id: &id,
                    created: self.created,
                    model: self.accepted.model,
                    completion: &c,
                };
                write_success(output, self.ids, self.line, self.accepted.custom_id, body)
            }
        }
    }

    /// Writes the error line of a record whose results (one per record of its line, in order) are not all
    /// answers to its own request: a result that came back unreadable, an echo whose fingerprint is not that of
    /// the request sent (for a line of several records, of all of them together), or a Bedrock record error, in
    /// that order. `true` when it wrote one; otherwise the results are counted as verified or not, and are the
    /// line's to read.
    fn refused<E: Write>(
        &self,
        parts: &[Collected<'_>],
        errors: &mut E,
        report: &mut ResultsReport,
    ) -> io::Result<bool> {
        if let Some((i, part)) = parts.iter().enumerate().find(|(_, p)| p.kind == Kind::Unreadable) {
            report.unreadable += 1;
            let message = format!("{}{}", which_part(parts.len(), i), part.text);
            self.fail(errors, report, 500, Some("unreadable_result"), &message)?;
            return Ok(true);
        }
        let echoed: Option<Vec<Fingerprint>> = parts.iter().map(|p| p.echoed).collect();
        match (self.accepted.sent, echoed.map(fingerprint::combined)) {
            (Some(sent), Some(echoed)) if sent != echoed => {
                report.mismatched += 1;
                self.fail(errors, report, 500, Some("mismatched_result"), &self.mismatch())?;
                return Ok(true);
            }
            (Some(_), Some(_)) => {}
            _ => report.unverified += 1,
        }
        if let Some((i, part)) = parts.iter().enumerate().find(|(_, p)| p.kind == Kind::Error) {
            let (status, message) = record_error(part.text);
            let message = format!("{}{message}", which_part(parts.len(), i));
            self.fail(errors, report, status, None, &message)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn mismatch(&self) -> String {
        format!(
            "Bedrock's result for recordId {} echoes a different request than line {} (custom_id {}) sent, so the \
             record map and the Bedrock output are probably from different batches; the result was not used.",
            self.accepted.record.as_str(),
            self.line,
            shown(&quoted(self.accepted.custom_id), SAMPLE_BYTES)
        )
    }

    fn fail<E: Write>(
        &self,
        errors: &mut E,
        report: &mut ResultsReport,
        status: u16,
        code: Option<&str>,
        message: &str,
    ) -> io::Result<()> {
        report.failed += 1;
        write_http_error(
            errors,
            self.ids,
            self.line,
            Some(self.accepted.custom_id),
            &HttpError {
                status,
                message,
                param: None,
                code,
            },
        )
    }
}

/// How a message names the text `i` of a line of `parts` records: not at all when there is one.
fn which_part(parts: usize, i: usize) -> String {
    if parts > 1 {
        format!("input[{i}]: ")
    } else {
        String::new()
    }
}

/// Passes over results of records before `record`: not in the map.
fn skip_before(results: &mut Sorted, record: u64, report: &mut ResultsReport) -> io::Result<()> {
    while results.peek_key().is_some_and(|k| record_of(k) < record) {
        results.next()?;
        report.unexpected_results += 1;
    }
    Ok(())
}

/// Passes over further results of `record`, once its first was taken.
fn skip_duplicates(results: &mut Sorted, record: u64, report: &mut ResultsReport) -> io::Result<()> {
    while results.peek_key().is_some_and(|k| record_of(k) == record) {
        results.next()?;
        report.duplicate_results += 1;
    }
    Ok(())
}

/// The status and message of a Bedrock record error. docs/formats.md#openai-lines: errorCode may be a number or a string;
/// anything not an HTTP error status is 500.
fn record_error(text: &str) -> (u16, String) {
    let err: RecordError = serde_json::from_str(text).unwrap_or(RecordError {
        code: None,
        message: None,
    });
    let status = err
        .code
        .and_then(|c| c.get().trim_matches('"').parse::<u16>().ok())
        .filter(|s| (400..600).contains(s))
        .unwrap_or(500);
    let message = err.message.map_or_else(
        || "Bedrock reported an error for this request.".to_string(),
        Cow::into_owned,
    );
    (status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why serde_json and then [`unreadable_why`] refuse `line`.
    fn why(line: &[u8]) -> String {
        let mut c = Collector::new(1 << 20, None);
        // On line 2: a byte order mark on line 1 is the file's, and is dropped.
        c.add("f", &[b"\n", line].concat()[..]).unwrap();
        let r = c.report();
        assert_eq!(r.unreadable_lines, 1, "{r:?}");
        let sample = r.unreadable_samples[0].trim_start_matches("f:2: ");
        sample.split(" (recordId ").next().unwrap_or(sample).to_string()
    }

    #[test]
    fn unreadable_lines_are_named_precisely() {
        assert_eq!(
            why(b"{\"recordId\":\"R0000000001\",\"mod"),
            "is cut short: the JSON ends before the object closes"
        );
        assert_eq!(why(b"{\"recordId\":\"R\xff\"}"), "is not valid UTF-8 at byte 15");
        assert_eq!(why(b"{\"a\"\0:1}"), "contains a NUL byte at byte 5");
        assert_eq!(
            why(b"\xEF\xBB\xBF{\"recordId\":\"R0000000001\"}"),
            "starts with a byte order mark (U+FEFF): only the first line of a file may"
        );
        assert_eq!(
            why(b"{\"recordId\":\"R0000000001\",,}"),
            "is not a Bedrock output record: key must be a string at byte 27"
        );
        // serde alone would take an array for the record's fields in order.
        assert_eq!(
            why(b"[\"R0000000001\",{},{}]"),
            "is not a JSON object: Bedrock writes one object per line"
        );
        assert_eq!(
            why(b"garbage"),
            "is not a JSON object: Bedrock writes one object per line"
        );
        assert_eq!(
            why(b"{\"recordId\":7}"),
            "is not a Bedrock output record: invalid type: integer `7`, expected a string at byte 13"
        );
    }

    #[test]
    fn a_record_id_is_found_in_bytes_serde_refuses() {
        let id = |line: &[u8]| find_record_id(line).map(RecordId::number);
        assert_eq!(
            id(b"{\"recordId\" :\n \"R0000000042\",\"modelOutput\":{\"cont"),
            Some(42)
        );
        assert_eq!(id(b"{\"modelOutput\":{}, \"recordId\":\"R0000000007\"\xff}"), Some(7));
        // An id the request's text mentions is escaped there, so it is not taken for the line's own.
        assert_eq!(
            id(b"{\"modelInput\":{\"text\":\"\\\"recordId\\\":\\\"R0000000009\\\"\"},\"mod"),
            None
        );
        // Not ours, cut, or two that disagree.
        assert_eq!(id(b"{\"recordId\":\"R000000004\"}"), None);
        assert_eq!(id(b"{\"recordId\":\"R00000000"), None);
        assert_eq!(id(b"{\"recordId\":\"R0000000001\",\"recordId\":\"R0000000002\"}"), None);
        assert_eq!(
            id(b"{\"recordId\":\"R0000000001\",\"recordId\":\"R0000000001\"}"),
            Some(1)
        );
    }

    #[test]
    fn readable_results_sort_before_unreadable_ones_of_their_record() {
        assert!(sort_key(5, Kind::Output) < sort_key(5, Kind::Unreadable));
        assert!(sort_key(5, Kind::Unreadable) < sort_key(6, Kind::Error));
        assert_eq!(sort_key(5, Kind::Error), sort_key(5, Kind::Output));
        assert_eq!(record_of(sort_key(RecordId::MAX, Kind::Unreadable)), RecordId::MAX);
    }

    #[test]
    fn payloads_round_trip() {
        let mut buf = Vec::new();
        for (kind, fp) in [
            (Kind::Output, Some(Fingerprint(u64::MAX))),
            (Kind::Error, None),
            (Kind::Unreadable, Some(Fingerprint(0))),
        ] {
            encode(&mut buf, kind, fp, "{\"é\":1}".as_bytes());
            let c = decode(&buf).unwrap();
            assert_eq!((c.kind, c.echoed, c.text), (kind, fp, "{\"é\":1}"));
        }
        assert!(decode(&[9; PAYLOAD_HEADER]).is_err());
        assert!(decode(&[0; 3]).is_err());
        // A placed payload says where its text is, and is never read as a text itself.
        let place = Place {
            file: 7,
            offset: u64::MAX - 1,
            len: 513,
        };
        encode_placed(&mut buf, Kind::Error, Some(Fingerprint(3)), place);
        assert_eq!(place_of(&buf).unwrap(), Some(place));
        assert!(decode(&buf).is_err());
        assert!(place_of(&buf[..buf.len() - 1]).is_err());
        encode(&mut buf, Kind::Output, None, b"{}");
        assert_eq!(place_of(&buf).unwrap(), None);
    }

    #[test]
    fn samples_are_escaped_and_bounded() {
        let mut c = Collector::new(1 << 20, None);
        // The recordId holds an escape sequence (written as a JSON escape) and is long.
        let long = format!("{{\"recordId\":\"\\u001b[2J{}\"}}\n", "x".repeat(100_000));
        let lines = long.repeat(SAMPLES + 5);
        c.add("out\u{7}.jsonl.out", lines.as_bytes()).unwrap();
        let r = c.report();
        assert_eq!(r.unmatched_lines, SAMPLES as u64 + 5);
        assert_eq!(r.unmatched_samples.len(), SAMPLES);
        for s in &r.unmatched_samples {
            assert!(s.len() <= SAMPLE_BYTES + '…'.len_utf8(), "{} bytes", s.len());
            assert!(!s.contains('\u{1b}') && !s.contains('\u{7}'), "{s}");
        }
    }
}
