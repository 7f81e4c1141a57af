//! OpenAI batch input → Bedrock batch input, one line at a time (SPEC §2.1, §4.1, §4.4).
//!
//! [`Translator`] decides each line: accepted (its Bedrock body written) or rejected with a
//! [`LineError`]. [`translate`] drives it over a whole file and hands every outcome to a [`Sink`]: a Bedrock
//! record per accepted line, and for every non-blank line one entry of the record map, the ledger that
//! lets the results step account for each line exactly once.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::error::Category;

use crate::bedrock;
use crate::error::{LineError, Reason, Rejection};
use crate::fingerprint::Fingerprint;
use crate::jsonl::{is_blank, Lines};
use crate::model::{self, BedrockModel, ModelName};
use crate::openai::{raw_str, InputLine, LineHead};
use crate::output::{write_http_error, HttpError, Ids};
use crate::policy::{Policy, CHAT_COMPLETIONS_URL};
use crate::record_id::RecordId;
use crate::request;

/// Counts for one file: what a user reads to decide whether the file is ready.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Non-blank lines: each is a request, accepted or rejected.
    pub lines: u64,
    pub blank_lines: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Accepted lines per Bedrock model that will run them.
    pub accepted_by_model: BTreeMap<String, u64>,
    /// `body.model` values that name no Bedrock model and were ignored (DESIGN.md "Model choice").
    pub ignored_model_names: BTreeMap<String, u64>,
    /// Body fields with no Bedrock meaning that were dropped, per field, counted on accepted lines.
    pub dropped_fields: BTreeMap<String, u64>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// custom_ids are remembered by a 64-bit hash with the line that first used them: about 20 bytes a line,
/// whatever the ids' length. A false "duplicate" needs a 64-bit collision: about one chance in 30 million
/// for a million-line file.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

enum Resolution {
    Group(usize),
    Foreign,
    Unsupported(String),
}

/// A line that passed: its custom_id, and the model group it runs in (`None` when validating without a
/// batch model).
#[derive(Debug)]
pub struct Accepted<'l> {
    pub custom_id: Cow<'l, str>,
    pub group: Option<usize>,
}

/// Decides lines one by one. Holds what must be known across lines: the custom_ids seen so far, the
/// model groups, and the report.
pub struct Translator {
    policy: Policy,
    batch_model: Option<usize>,
    models: Vec<BedrockModel>,
    /// The last `body.model` string met and what it resolved to: files repeat one name on every line.
    last_model: Option<(String, Resolution)>,
    seen: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    report: Report,
}

impl Translator {
    /// `batch_model` is the batch's model (DESIGN.md "Model choice"), used by lines that name none.
    pub fn new(policy: Policy, batch_model: Option<BedrockModel>) -> Self {
        let models: Vec<BedrockModel> = batch_model.into_iter().collect();
        Translator {
            policy,
            batch_model: if models.is_empty() { None } else { Some(0) },
            models,
            last_model: None,
            seen: HashMap::default(),
            report: Report::default(),
        }
    }

    /// Model groups in order of first use; a group index indexes this slice.
    pub fn models(&self) -> &[BedrockModel] {
        &self.models
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Accepts or rejects one non-blank line. When `body_out` is given and the line has a model, the
    /// Bedrock `modelInput` body is appended to it.
    pub fn line<'l>(
        &mut self,
        line_no: u64,
        line: &'l [u8],
        body_out: Option<&mut Vec<u8>>,
    ) -> Result<Accepted<'l>, LineError> {
        self.report.lines += 1;
        let result = self.decide(line_no, line, body_out);
        match &result {
            Ok(a) => {
                self.report.accepted += 1;
                if let Some(g) = a.group {
                    bump(&mut self.report.accepted_by_model, &self.models[g].id);
                }
            }
            Err(e) => {
                self.report.rejected += 1;
                *self
                    .report
                    .rejected_by_reason
                    .entry(e.rejection.reason.as_str())
                    .or_default() += 1;
            }
        }
        result
    }

    /// Counts a blank line (it is skipped, and reported as such).
    pub fn blank(&mut self) {
        self.report.blank_lines += 1;
    }

    fn decide<'l>(
        &mut self,
        line_no: u64,
        line: &'l [u8],
        body_out: Option<&mut Vec<u8>>,
    ) -> Result<Accepted<'l>, LineError> {
        // serde would read a JSON array as a struct too: only an object is a request.
        if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(not_an_object(line_no, line));
        }
        let parsed: InputLine<'l> = match serde_json::from_slice(line) {
            Ok(p) => p,
            Err(e) => return Err(self.diagnose(line_no, line, e)),
        };
        let fail = |custom_id: Option<&str>, rejection: Rejection| LineError {
            line: line_no,
            custom_id: custom_id.map(str::to_string),
            rejection,
        };

        let custom_id = self.custom_id(line_no, parsed.custom_id).map_err(|r| {
            // A duplicate is named, so its error line carries the custom_id it tried to use.
            let named = parsed
                .custom_id
                .filter(|_| r.reason == Reason::DuplicateCustomId)
                .and_then(raw_str);
            fail(named.as_deref(), r)
        })?;
        let id = Some(custom_id.as_ref());
        match parsed.method.as_deref() {
            Some("POST") => {}
            None => {
                return Err(fail(
                    id,
                    Rejection::new(Reason::Method, "method", "is missing (must be POST)"),
                ))
            }
            Some(m) => {
                return Err(fail(
                    id,
                    Rejection::new(Reason::Method, "method", format!("'{m}' is not POST")),
                ))
            }
        }
        match parsed.url.as_deref() {
            Some(CHAT_COMPLETIONS_URL) => {}
            None => {
                return Err(fail(
                    id,
                    Rejection::new(
                        Reason::Url,
                        "url",
                        format!("is missing (must be {CHAT_COMPLETIONS_URL})"),
                    ),
                ))
            }
            Some(u) => {
                return Err(fail(
                    id,
                    Rejection::new(
                        Reason::Url,
                        "url",
                        format!("'{u}' is not supported; only {CHAT_COMPLETIONS_URL} is"),
                    ),
                ))
            }
        }
        let Some(mut body) = parsed.body else {
            return Err(fail(id, Rejection::new(Reason::MissingBody, "body", "is missing")));
        };
        let group = match body.model.as_deref() {
            None => self.batch_model,
            Some(name) => match self.resolve(name) {
                Resolution::Group(g) => Some(*g),
                Resolution::Foreign => {
                    bump(&mut self.report.ignored_model_names, name);
                    self.batch_model
                }
                Resolution::Unsupported(why) => {
                    return Err(fail(
                        id,
                        Rejection::new(Reason::UnsupportedModel, "body.model", why.clone()),
                    ))
                }
            },
        };
        if group.is_none() && body_out.is_some() {
            return Err(fail(
                id,
                Rejection::new(
                    Reason::NoModel,
                    "body.model",
                    "names no Bedrock model, and the batch has none to run this line on",
                ),
            ));
        }
        let model = group.map(|g| &self.models[g]);
        let dropped = std::mem::take(&mut body.dropped);
        let request = request::build(body, &self.policy, model).map_err(|r| fail(id, r))?;
        if let (Some(out), Some(m)) = (body_out, model) {
            // Writing to a Vec fails only on a serializer bug; it is still reported, never a panic.
            bedrock::write_body(m.family, &request, out).map_err(|e| {
                fail(
                    id,
                    Rejection::new(Reason::InvalidType, "body", format!("could not be written: {e}")),
                )
            })?;
        }
        for name in &dropped {
            bump(&mut self.report.dropped_fields, name);
        }
        Ok(Accepted { custom_id, group })
    }

    /// SPEC §4.1: a custom_id is required, a string, unique in the file. The first line to use one owns
    /// it, whether that line was accepted or not.
    fn custom_id<'l>(
        &mut self,
        line_no: u64,
        raw: Option<&'l serde_json::value::RawValue>,
    ) -> Result<Cow<'l, str>, Rejection> {
        let Some(raw) = raw.filter(|r| r.get() != "null") else {
            return Err(Rejection::new(Reason::MissingCustomId, "custom_id", "is missing"));
        };
        let Some(id) = raw_str(raw) else {
            return Err(Rejection::new(
                Reason::InvalidCustomId,
                "custom_id",
                format!("must be a string, not {}", raw.get()),
            ));
        };
        if id.is_empty() {
            return Err(Rejection::new(Reason::MissingCustomId, "custom_id", "is empty"));
        }
        if id.len() > self.policy.max_custom_id_len {
            return Err(Rejection::new(
                Reason::InvalidCustomId,
                "custom_id",
                format!(
                    "is {} bytes long; the limit is {}",
                    id.len(),
                    self.policy.max_custom_id_len
                ),
            ));
        }
        let key = xxhash_rust::xxh3::xxh3_64(id.as_bytes());
        if let Some(first) = self.seen.get(&key) {
            return Err(Rejection::new(
                Reason::DuplicateCustomId,
                "custom_id",
                format!("is used twice: first on line {first}"),
            ));
        }
        self.seen.insert(key, u32::try_from(line_no).unwrap_or(u32::MAX));
        Ok(id)
    }

    fn resolve(&mut self, name: &str) -> &Resolution {
        let hit = matches!(&self.last_model, Some((last, _)) if last == name);
        if !hit {
            let resolution = match model::classify(name) {
                ModelName::Foreign => Resolution::Foreign,
                ModelName::Unsupported(why) => Resolution::Unsupported(why),
                ModelName::Supported(m) => Resolution::Group(match self.models.iter().position(|g| g.id == m.id) {
                    Some(g) => g,
                    None => {
                        self.models.push(m);
                        self.models.len() - 1
                    }
                }),
            };
            self.last_model = Some((name.to_string(), resolution));
        }
        match &self.last_model {
            Some((_, r)) => r,
            None => &Resolution::Foreign,
        }
    }

    /// The line did not parse: find what is wrong, where, and whose line it is. Only rejected lines pay
    /// for this second look.
    fn diagnose(&mut self, line_no: u64, line: &[u8], err: serde_json::Error) -> LineError {
        let at = |custom_id: Option<String>, rejection| LineError {
            line: line_no,
            custom_id,
            rejection,
        };
        if matches!(err.classify(), Category::Syntax | Category::Eof | Category::Io) {
            let what = strip_position(&err.to_string());
            return at(
                None,
                Rejection::new(
                    Reason::InvalidJson,
                    "",
                    format!("not valid JSON: {what} at column {}", err.column()),
                ),
            );
        }
        // The line is a JSON object with a wrong type somewhere: name its custom_id, then find the field.
        let custom_id = serde_json::from_slice::<LineHead>(line)
            .ok()
            .and_then(|h| h.custom_id)
            .and_then(|raw| raw_str(raw).map(Cow::into_owned));
        if let Some(id) = custom_id.as_deref().filter(|id| !id.is_empty()) {
            let key = xxhash_rust::xxh3::xxh3_64(id.as_bytes());
            if let Some(first) = self.seen.get(&key) {
                return at(
                    custom_id.clone(),
                    Rejection::new(
                        Reason::DuplicateCustomId,
                        "custom_id",
                        format!("is used twice: first on line {first}"),
                    ),
                );
            }
            self.seen.insert(key, u32::try_from(line_no).unwrap_or(u32::MAX));
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        let (field, message) = match serde_path_to_error::deserialize::<_, InputLine>(&mut de) {
            Err(e) => (e.path().to_string(), strip_position(&e.inner().to_string())),
            Ok(_) => (String::new(), strip_position(&err.to_string())),
        };
        let field = if field == "." { String::new() } else { field };
        let reason = match field.split(['.', '[']).next() {
            Some("method") => Reason::Method,
            Some("url") => Reason::Url,
            _ => Reason::InvalidType,
        };
        at(custom_id, Rejection::new(reason, field, message))
    }
}

/// A line that is not a JSON object: say what it is, or that it is not JSON at all.
fn not_an_object(line_no: u64, line: &[u8]) -> LineError {
    let rejection = match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
        Err(e) => Rejection::new(
            Reason::InvalidJson,
            "",
            format!(
                "not valid JSON: {} at column {}",
                strip_position(&e.to_string()),
                e.column()
            ),
        ),
        Ok(_) => {
            let kind = match line.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            };
            Rejection::new(
                Reason::NotAnObject,
                "",
                format!("the line is {kind}, not a JSON object"),
            )
        }
    };
    LineError {
        line: line_no,
        custom_id: None,
        rejection,
    }
}

/// serde_json ends messages with " at line 1 column N"; within one JSONL line only the column helps.
/// Its Rust type names are put in words.
fn strip_position(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    message
        .replace("expected u64", "expected a whole number, 0 or more")
        .replace("expected f64", "expected a number")
        .replace("expected a borrowed string", "expected a string")
}

/// Where the outcome of each line goes.
pub trait Sink {
    /// A Bedrock input record (one JSONL line, newline included) for model group `group`, whose
    /// Bedrock model is `model`.
    fn record(&mut self, group: usize, model: &BedrockModel, record: &[u8]) -> io::Result<()>;
    /// One line of the record map (newline included); one per non-blank input line, in input order.
    fn map_entry(&mut self, entry: &[u8]) -> io::Result<()>;
    /// A rejected line: its OpenAI error line (newline included) and the error itself.
    fn rejected(&mut self, error_line: &[u8], error: &LineError) -> io::Result<()>;
}

/// One record-map line (README, "The record map"): one per non-blank input line, in input order.
#[derive(Debug, Serialize, Deserialize)]
pub struct MapLine<'a> {
    pub line: u64,
    #[serde(borrow, default)]
    pub custom_id: Option<Cow<'a, str>>,
    #[serde(rename = "recordId", borrow, default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Cow<'a, str>>,
    /// The index of the Bedrock job that runs the record, once jobs are planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<usize>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<MapRejection<'a>>,
    /// The [`Fingerprint`] of the `modelInput` sent, as 16 hex digits: Bedrock echoes `modelInput`, so
    /// the results step can check that an answer belongs to this record.
    #[serde(rename = "fp", borrow, default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Cow<'a, str>>,
}

/// Why a line was rejected before Bedrock: the code, field and message of its error line.
#[derive(Debug, Serialize, Deserialize)]
pub struct MapRejection<'a> {
    #[serde(borrow)]
    pub code: Cow<'a, str>,
    #[serde(borrow, default)]
    pub param: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

impl<'a> MapLine<'a> {
    /// The entry of a rejected line.
    pub fn rejected(error: &'a LineError) -> Self {
        MapLine {
            line: error.line,
            custom_id: error.custom_id.as_deref().map(Cow::Borrowed),
            record_id: None,
            model: None,
            job: None,
            fingerprint: None,
            rejected: Some(MapRejection {
                code: Cow::Borrowed(error.rejection.reason.as_str()),
                param: Some(Cow::Borrowed(error.rejection.field.as_str())).filter(|f| !f.is_empty()),
                message: Cow::Owned(error.to_string()),
            }),
        }
    }
}

/// The first line of every record map: its format version and the batch it belongs to.
#[derive(Serialize, Deserialize)]
pub struct MapHeader {
    pub batchdrop_record_map: u32,
    pub batch_id: String,
}

/// The last line of every record map: how many entries (non-blank input lines) and records (accepted
/// lines) it holds, so that a map cut short at a line boundary is refused rather than read as complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEnd {
    pub batchdrop_record_map_end: MapCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapCounts {
    pub entries: u64,
    pub records: u64,
}

impl MapEnd {
    /// The trailer, if `line` is one (it starts with its key, as written by [`translate`]).
    pub fn parse(line: &[u8]) -> Option<Result<MapCounts, serde_json::Error>> {
        line.starts_with(b"{\"batchdrop_record_map_end\"")
            .then(|| serde_json::from_slice::<MapEnd>(line).map(|e| e.batchdrop_record_map_end))
    }
}

/// The record map format this code writes and reads. Version 2 added the trailer and the fingerprints.
pub const MAP_VERSION: u32 = 2;

/// Translates a whole file. `batch_id` seeds the ids of error lines (see [`Ids`]). Returns the report.
pub fn translate<R: BufRead, S: Sink>(
    input: R,
    translator: &mut Translator,
    batch_id: &str,
    sink: &mut S,
) -> io::Result<Report> {
    let ids = Ids::new(batch_id);
    let mut header = serde_json::to_vec(&MapHeader {
        batchdrop_record_map: MAP_VERSION,
        batch_id: batch_id.to_string(),
    })?;
    header.push(b'\n');
    sink.map_entry(&header)?;

    let mut lines = Lines::new(input);
    let mut record = Vec::with_capacity(64 * 1024);
    let mut scratch = Vec::with_capacity(1024);
    let mut next_record = RecordId::FIRST;
    while let Some((line_no, line)) = lines.next_line()? {
        if is_blank(line) {
            translator.blank();
            continue;
        }
        record.clear();
        record.extend_from_slice(b"{\"recordId\":\"");
        record.extend_from_slice(next_record.as_bytes());
        record.extend_from_slice(b"\",\"modelInput\":");
        let body_start = record.len();
        scratch.clear();
        match translator.line(line_no, line, Some(&mut record)) {
            Ok(accepted) => {
                let Some(group) = accepted.group else {
                    return Err(io::Error::other("a line was accepted without a model"));
                };
                debug_assert!(record.len() > body_start);
                let fingerprint = Fingerprint::of_json(&record[body_start..]).map(Fingerprint::to_hex);
                record.extend_from_slice(b"}\n");
                let model = &translator.models()[group];
                sink.record(group, model, &record)?;
                let model = &model.id;
                serde_json::to_writer(
                    &mut scratch,
                    &MapLine {
                        line: line_no,
                        custom_id: Some(Cow::Borrowed(&accepted.custom_id)),
                        record_id: Some(Cow::Borrowed(next_record.as_str())),
                        model: Some(Cow::Borrowed(model)),
                        job: None,
                        rejected: None,
                        fingerprint: fingerprint.map(Cow::Owned),
                    },
                )?;
                scratch.push(b'\n');
                sink.map_entry(&scratch)?;
                next_record = next_record.next();
            }
            Err(error) => {
                serde_json::to_writer(&mut scratch, &MapLine::rejected(&error))?;
                scratch.push(b'\n');
                sink.map_entry(&scratch)?;
                scratch.clear();
                write_rejection(&mut scratch, &ids, &error)?;
                sink.rejected(&scratch, &error)?;
            }
        }
    }
    let report = translator.report();
    let mut end = serde_json::to_vec(&MapEnd {
        batchdrop_record_map_end: MapCounts {
            entries: report.lines,
            records: report.accepted,
        },
    })?;
    end.push(b'\n');
    sink.map_entry(&end)?;
    Ok(report.clone())
}

/// The OpenAI error line of a rejected input line: status 400, never sent to Bedrock (SPEC §6.4).
pub fn write_rejection<W: Write>(out: &mut W, ids: &Ids, error: &LineError) -> io::Result<()> {
    let message = error.to_string();
    write_http_error(
        out,
        ids,
        error.line,
        error.custom_id.as_deref(),
        &HttpError {
            status: 400,
            message: &message,
            param: Some(error.rejection.field.as_str()).filter(|f| !f.is_empty()),
            code: Some(error.rejection.reason.as_str()),
        },
    )
}
