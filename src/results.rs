//! Bedrock batch output → OpenAI `output.jsonl` and `errors.jsonl`, in the input file's order
//! (SPEC §2.2, §4.2, §6).
//!
//! Bedrock returns records in any order (SPEC §2.2), and a job's output is as large as its input. So
//! [`Collector`] reads the output files once, keeping only each record's number and its `modelOutput` or
//! `error` (not the echoed `modelInput`), sorted in memory up to a budget and spilled to sorted run files
//! beyond it. [`join`] then walks the record map, the ledger of every input line, merging the runs by
//! record number: each line ends in exactly one place, and memory stays bounded by the budget.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::completion::{self, ChatCompletion, Usage};
use crate::jsonl::{is_blank, Lines};
use crate::model::{self, Family, ModelName};
use crate::output::{write_batch_error, write_http_error, write_success, HttpError, Ids};
use crate::record_id::RecordId;
use crate::translate::{MapEnd, MapHeader, MapLine, MAP_VERSION};

/// The final status of a Bedrock job, as far as its missing records are concerned (SPEC §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Completed,
    PartiallyCompleted,
    Expired,
    Stopped,
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

    /// The error code and message for a record the job never returned (SPEC §4.2, §6.4).
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

/// What a Bedrock output line held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Output = 0,
    Error = 1,
}

#[derive(Deserialize)]
struct OutputLine<'a> {
    #[serde(rename = "recordId", borrow, default)]
    record_id: Option<Cow<'a, str>>,
    #[serde(rename = "modelOutput", borrow, default)]
    model_output: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Counts from reading Bedrock output files.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct CollectReport {
    pub output_lines: u64,
    /// Lines that cannot be tied to a record: not JSON, no recordId, or a recordId not of ours.
    pub unmatched_lines: u64,
    /// The first few of those, as `file:line: why`.
    pub unmatched_samples: Vec<String>,
}

const SAMPLES: usize = 20;

/// Reads Bedrock output files, keeping each record's result sorted by record number.
pub struct Collector {
    runs: Runs,
    report: CollectReport,
}

impl Collector {
    /// `budget` bytes of results are held in memory before a sorted run is spilled to a file in
    /// `spill_dir` (the system temp folder when `None`).
    pub fn new(budget: usize, spill_dir: Option<PathBuf>) -> Self {
        Collector {
            runs: Runs::new(budget, spill_dir),
            report: CollectReport::default(),
        }
    }

    /// Reads one `*.jsonl.out` file. `name` is used in messages only.
    pub fn add<R: BufRead>(&mut self, name: &str, reader: R) -> io::Result<()> {
        let mut lines = Lines::new(reader);
        while let Some((line_no, line)) = lines.next_line()? {
            if is_blank(line) {
                continue;
            }
            self.report.output_lines += 1;
            let why = match serde_json::from_slice::<OutputLine>(line) {
                Err(e) => format!("not a Bedrock output record: {e}"),
                Ok(OutputLine { record_id: None, .. }) => "no recordId".to_string(),
                Ok(OutputLine {
                    record_id: Some(id),
                    model_output,
                    error,
                }) => match (RecordId::parse(&id), error, model_output) {
                    (None, _, _) => format!("recordId '{id}' was not written by batchdrop"),
                    // An error wins over a modelOutput, should a record carry both.
                    (Some(n), Some(err), _) => {
                        self.runs.push(n.number(), Kind::Error, err.get().as_bytes())?;
                        continue;
                    }
                    (Some(n), None, Some(out)) => {
                        self.runs.push(n.number(), Kind::Output, out.get().as_bytes())?;
                        continue;
                    }
                    (Some(_), None, None) => format!("record '{id}' has neither modelOutput nor error"),
                },
            };
            self.report.unmatched_lines += 1;
            if self.report.unmatched_samples.len() < SAMPLES {
                self.report.unmatched_samples.push(format!("{name}:{line_no}: {why}"));
            }
        }
        Ok(())
    }

    pub fn report(&self) -> &CollectReport {
        &self.report
    }
}

/// Sorted runs of `(record number, kind, payload)`: the current one in memory, earlier ones on disk.
struct Runs {
    budget: usize,
    spill_dir: Option<PathBuf>,
    arena: Vec<u8>,
    /// (record number, kind, start, len) into `arena`.
    index: Vec<(u64, Kind, usize, usize)>,
    files: Vec<File>,
}

impl Runs {
    fn new(budget: usize, spill_dir: Option<PathBuf>) -> Self {
        Runs {
            budget,
            spill_dir,
            arena: Vec::new(),
            index: Vec::new(),
            files: Vec::new(),
        }
    }

    fn push(&mut self, n: u64, kind: Kind, payload: &[u8]) -> io::Result<()> {
        if !self.index.is_empty() && self.arena.len() + payload.len() > self.budget {
            self.spill()?;
        }
        self.index.push((n, kind, self.arena.len(), payload.len()));
        self.arena.extend_from_slice(payload);
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        // Stable sort: of two results for one record, the first read stays first.
        self.index.sort_by_key(|e| e.0);
        let file = match &self.spill_dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        let mut w = BufWriter::new(file);
        for &(n, kind, start, len) in &self.index {
            w.write_all(&n.to_le_bytes())?;
            w.write_all(&[kind as u8])?;
            w.write_all(&(len as u64).to_le_bytes())?;
            w.write_all(&self.arena[start..start + len])?;
        }
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        self.files.push(file);
        self.index.clear();
        self.arena.clear();
        self.arena.shrink_to(self.budget);
        Ok(())
    }

    fn into_merge(mut self) -> io::Result<Merge> {
        self.index.sort_by_key(|e| e.0);
        let mut sources: Vec<Source> = self
            .files
            .into_iter()
            .map(|f| Source::Disk {
                reader: BufReader::with_capacity(64 * 1024, f),
                payload: Vec::new(),
            })
            .collect();
        sources.push(Source::Memory {
            arena: self.arena,
            index: self.index,
            at: 0,
        });
        let mut merge = Merge {
            heads: vec![None; sources.len()],
            sources,
            heap: BinaryHeap::new(),
        };
        for i in 0..merge.sources.len() {
            merge.advance(i)?;
        }
        Ok(merge)
    }
}

enum Source {
    Disk {
        reader: BufReader<File>,
        payload: Vec<u8>,
    },
    Memory {
        arena: Vec<u8>,
        index: Vec<(u64, Kind, usize, usize)>,
        at: usize,
    },
}

/// A k-way merge of the runs by record number; ties go to the earlier run.
struct Merge {
    sources: Vec<Source>,
    heads: Vec<Option<(u64, Kind)>>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

impl Merge {
    /// Loads the next entry of source `i` (its payload stays in the source).
    fn advance(&mut self, i: usize) -> io::Result<()> {
        let head = match &mut self.sources[i] {
            Source::Memory { index, at, .. } => {
                let h = index.get(*at).map(|e| (e.0, e.1));
                *at += 1;
                h
            }
            Source::Disk { reader, payload } => {
                let mut n = [0u8; 8];
                match reader.read_exact(&mut n) {
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
                    Err(e) => return Err(e),
                    Ok(()) => {
                        let mut kind = [0u8; 1];
                        let mut len = [0u8; 8];
                        reader.read_exact(&mut kind)?;
                        reader.read_exact(&mut len)?;
                        let len = usize::try_from(u64::from_le_bytes(len)).map_err(io::Error::other)?;
                        payload.clear();
                        payload.resize(len, 0);
                        reader.read_exact(payload)?;
                        let kind = if kind[0] == Kind::Error as u8 {
                            Kind::Error
                        } else {
                            Kind::Output
                        };
                        Some((u64::from_le_bytes(n), kind))
                    }
                }
            }
        };
        self.heads[i] = head;
        if let Some((n, _)) = head {
            self.heap.push(Reverse((n, i)));
        }
        Ok(())
    }

    fn peek(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((n, _))| *n)
    }

    /// Hands the smallest entry to `f`, then moves past it.
    fn pop<T>(&mut self, f: impl FnOnce(u64, Kind, &[u8]) -> T) -> io::Result<Option<T>> {
        let Some(Reverse((n, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let kind = self.heads[i].map_or(Kind::Output, |h| h.1);
        let value = match &self.sources[i] {
            Source::Memory { arena, index, at } => {
                let (_, _, start, len) = index[*at - 1];
                f(n, kind, &arena[start..start + len])
            }
            Source::Disk { payload, .. } => f(n, kind, payload),
        };
        self.advance(i)?;
        Ok(Some(value))
    }
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
    /// Records Bedrock answered with an error, or whose output was unusable.
    pub failed: u64,
    /// Records Bedrock never returned, by error code.
    pub missing: BTreeMap<&'static str, u64>,
    /// Lines rejected before Bedrock, from the record map.
    pub rejected: u64,
    /// Extra results for a record already answered: the first was kept.
    pub duplicate_results: u64,
    /// Results whose record number is not in the record map.
    pub unexpected_results: u64,
    pub usage: Usage,
    /// Stop reasons batchdrop does not know, mapped to `stop` (SPEC §6.1).
    pub unknown_stop_reasons: BTreeMap<String, u64>,
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

/// The map line a missing trailer would have been on: the header, then one line per entry.
fn lines_read(report: &ResultsReport) -> u64 {
    report.lines + 2
}

fn bad_map(line: u64, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("record map line {line}: {why}"))
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
    let Some((_, header)) = lines.next_line()? else {
        return Err(bad_map(1, "the record map is empty"));
    };
    let header: MapHeader =
        serde_json::from_slice(header).map_err(|e| bad_map(1, format!("not a record map header: {e}")))?;
    if header.batchdrop_record_map != MAP_VERSION {
        return Err(bad_map(
            1,
            format!("format {} is not {MAP_VERSION}", header.batchdrop_record_map),
        ));
    }
    let ids = Ids::new(&header.batch_id);
    let mut merge = collector.runs.into_merge()?;
    let mut report = ResultsReport::default();
    let mut family_cache: Option<(String, Family)> = None;
    let mut last_record = 0u64;
    let mut records = 0u64;
    let mut end = None;

    while let Some((map_line, entry)) = lines.next_line()? {
        if is_blank(entry) {
            continue;
        }
        if end.is_some() {
            return Err(bad_map(map_line, "an entry after the record map's last line"));
        }
        if let Some(counts) = MapEnd::parse(entry) {
            end = Some((map_line, counts.map_err(|e| bad_map(map_line, e))?));
            continue;
        }
        let entry: MapLine = serde_json::from_slice(entry).map_err(|e| bad_map(map_line, e))?;
        report.lines += 1;
        let custom_id = entry.custom_id.as_deref();
        if let Some(rej) = &entry.rejected {
            report.rejected += 1;
            write_http_error(
                errors,
                &ids,
                entry.line,
                custom_id,
                &HttpError {
                    status: 400,
                    message: &rej.message,
                    param: rej.param.as_deref().filter(|p| !p.is_empty()),
                    code: Some(&rej.code),
                },
            )?;
            continue;
        }
        let (Some(record_id), Some(model_id), Some(custom_id)) =
            (entry.record_id.as_deref(), entry.model.as_deref(), custom_id)
        else {
            return Err(bad_map(
                map_line,
                "an accepted entry needs recordId, model and custom_id",
            ));
        };
        let Some(record) = RecordId::parse(record_id).map(RecordId::number) else {
            return Err(bad_map(map_line, format!("'{record_id}' is not a batchdrop recordId")));
        };
        if record <= last_record {
            return Err(bad_map(map_line, "recordIds are not in increasing order"));
        }
        last_record = record;
        records += 1;
        let family = match &family_cache {
            Some((id, f)) if id == model_id => *f,
            _ => match model::classify(model_id) {
                ModelName::Supported(m) => {
                    family_cache = Some((m.id, m.family));
                    m.family
                }
                _ => {
                    return Err(bad_map(
                        map_line,
                        format!("'{model_id}' is not a model batchdrop translates for"),
                    ))
                }
            },
        };

        while merge.peek().is_some_and(|n| n < record) {
            merge.pop(|_, _, _| ())?;
            report.unexpected_results += 1;
        }
        let ctx = Ctx {
            ids: &ids,
            line: entry.line,
            custom_id,
            model: model_id,
            family,
            created: options.created,
        };
        let found = if merge.peek() == Some(record) {
            merge.pop(|_, kind, payload| ctx.write(kind, payload, output, errors, &mut report))?
        } else {
            None
        };
        match found {
            Some(written) => written?,
            None => {
                let (code, message) = (options.status)(entry.job, model_id).missing();
                *report.missing.entry(code).or_default() += 1;
                write_batch_error(errors, &ids, entry.line, custom_id, code, message)?;
            }
        }
        while merge.peek() == Some(record) {
            merge.pop(|_, _, _| ())?;
            report.duplicate_results += 1;
        }
    }
    match end {
        None => {
            return Err(bad_map(
                lines_read(&report),
                "the record map has no last line: it was cut short, so lines would be lost",
            ))
        }
        Some((at, counts)) if counts.entries != report.lines || counts.records != records => {
            return Err(bad_map(
                at,
                format!(
                    "the record map says it holds {} entries ({} records) but {} entries ({records} records) were read",
                    counts.entries, counts.records, report.lines
                ),
            ))
        }
        Some(_) => {}
    }
    while merge.pop(|_, _, _| ())?.is_some() {
        report.unexpected_results += 1;
    }
    Ok(report)
}

struct Ctx<'c> {
    ids: &'c Ids,
    line: u64,
    custom_id: &'c str,
    model: &'c str,
    family: Family,
    created: u64,
}

impl Ctx<'_> {
    fn write<O: Write, E: Write>(
        &self,
        kind: Kind,
        payload: &[u8],
        output: &mut O,
        errors: &mut E,
        report: &mut ResultsReport,
    ) -> io::Result<()> {
        let raw: Result<&RawValue, _> = std::str::from_utf8(payload)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(s).map_err(|e| e.to_string()));
        let raw = match raw {
            Ok(r) => r,
            Err(why) => {
                return self.fail(
                    errors,
                    report,
                    500,
                    &format!("Bedrock's result could not be read: {why}"),
                )
            }
        };
        if kind == Kind::Error {
            // SPEC §6.4: errorCode may be a number or a string.
            let err: RecordError = serde_json::from_str(raw.get()).unwrap_or(RecordError {
                code: None,
                message: None,
            });
            let status = err
                .code
                .and_then(|c| c.get().trim_matches('"').parse::<u16>().ok())
                .filter(|s| (400..600).contains(s))
                .unwrap_or(500);
            let message = err
                .message
                .as_deref()
                .unwrap_or("Bedrock reported an error for this request.");
            return self.fail(errors, report, status, message);
        }
        match completion::read(self.family, raw) {
            Err(unusable) => self.fail(errors, report, 500, &unusable.0),
            Ok(c) => {
                if let Some(stop) = &c.unknown_stop_reason {
                    *report.unknown_stop_reasons.entry(stop.clone()).or_default() += 1;
                }
                report.succeeded += 1;
                report.usage.add(&c.usage);
                let id = self.ids.completion_id(self.line);
                let body = ChatCompletion {
                    id: &id,
                    created: self.created,
                    model: self.model,
                    completion: &c,
                };
                write_success(output, self.ids, self.line, self.custom_id, body)
            }
        }
    }

    fn fail<E: Write>(&self, errors: &mut E, report: &mut ResultsReport, status: u16, message: &str) -> io::Result<()> {
        report.failed += 1;
        write_http_error(
            errors,
            self.ids,
            self.line,
            Some(self.custom_id),
            &HttpError {
                status,
                message,
                param: None,
                code: None,
            },
        )
    }
}
