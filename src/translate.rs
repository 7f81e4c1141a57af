//! OpenAI batch input → Bedrock batch input, one line at a time (docs/bedrock.md#input-records; docs/formats.md#openai-lines and #how-openai-requests-are-translated).
//!
//! [`Translator`] decides each line: accepted (its Bedrock body written) or rejected with a
//! [`LineError`]. [`translate`] drives it over a whole file and hands every outcome to a [`Sink`]: a Bedrock
//! record per accepted line, and for every non-blank line one entry of the record map, the ledger that
//! lets the results step account for each line exactly once.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, Seek, SeekFrom, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::counts::Counts;
use crate::embeddings::{self, Encoding};
use crate::error::{cut, without_position, LineError, Reason, Rejection};
use crate::fingerprint::Fingerprint;
use crate::format;
use crate::format::openai_input::{CowStr, InputLine, LineHead};
use crate::format::openai_output::{write_http_error, HttpError, Ids};
use crate::jsonl::{self, is_blank, Line, Lines};
use crate::model::{self, BedrockModel, Family, ModelName};
use crate::policy::{Policy, CHAT_COMPLETIONS_URL, DEFAULT_EMBEDDING_MODEL, EMBEDDINGS_URL, MAX_MODELS_PER_BATCH};
use crate::record_id::RecordId;
use crate::request;
use crate::spill::{Sorted, Sorter};

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
    /// `body.model` values that name no Bedrock model and were ignored (docs/configuration.md#choosing-the-model).
    /// Bounded: the first [`crate::counts::MAX_KEYS`] names, then the others together.
    pub ignored_model_names: Counts,
    /// Body fields with no Bedrock meaning that were dropped, per field, counted on accepted lines.
    pub dropped_fields: Counts,
    /// Accepted lines whose temperature the temperature policy clamped or scaled.
    pub temperature_changed: u64,
    /// Bedrock records written: one per accepted chat line, one per text of an accepted embeddings line.
    pub records: u64,
    /// Per Bedrock model, the output tokens its accepted chat lines may use at most: their max_tokens, summed.
    pub output_tokens_at_most: BTreeMap<String, u64>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// A custom_id's 128-bit hash: a false "duplicate" needs a collision, about one chance in 10^26 for a
/// billion-line file.
fn id_hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

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
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Which lines reuse the custom_id of an earlier line.
enum Duplicates {
    /// Found by a scan of the whole input: later lines in line order, with their first line.
    Scanned(Sorted),
    /// Each claimed id remembered as it comes, with how to go on when the table would outgrow its budget
    /// (no way: lines fed one by one with [`Translator::line`], without [`scan_duplicates`]).
    Live(IdTable, Option<Box<Rescan>>),
    /// The scan that was to take over from a full table failed; [`Translator::take_error`] returns why.
    Failed(Option<io::Error>),
}

/// Something [`scan_duplicates`] can read again from the start, should the ids outgrow memory.
pub trait Rewindable: BufRead + Seek + Send {}

impl<R: BufRead + Seek + Send> Rewindable for R {}

/// What the duplicate check needs to scan the whole input when its table is full: the input, from
/// `start`, the translator's rules for which lines claim an id, and where and in how much memory to sort.
struct Rescan {
    input: Box<dyn Rewindable>,
    start: u64,
    policy: Policy,
    spill_dir: Option<PathBuf>,
    budget: usize,
}

impl Rescan {
    /// Every line after the first to claim its id, in line order, with that first line: the hashes of the
    /// claimed ids are sorted externally (runs spilled to `spill_dir`, the system temp folder when `None`).
    fn run(mut self) -> io::Result<Sorted> {
        self.input.seek(SeekFrom::Start(self.start))?;
        let mut by_id = Sorter::new(self.budget, self.spill_dir.clone());
        let mut lines = Lines::with_limit(&mut self.input, self.policy.max_line_bytes);
        while let Some((n, line)) = lines.next_any()? {
            if let Line::Text(text) = line {
                if let Some(id) = claimed_id(text, &self.policy) {
                    by_id.push(id_hash(&id), &n.to_le_bytes())?;
                }
            }
        }
        // Equal hashes come out in line order: the first owns the id, each later one is a duplicate of it.
        let mut sorted = by_id.finish()?;
        let mut later = Sorter::new(self.budget, self.spill_dir);
        let mut owner: Option<(u128, u64)> = None;
        while let Some((hash, payload)) = sorted.next()? {
            let line = line_number(payload)?;
            match owner {
                Some((h, first)) if h == hash => later.push(u128::from(line), &first.to_le_bytes())?,
                _ => owner = Some((hash, line)),
            }
        }
        later.finish()
    }
}

/// The claimed custom_ids of the lines seen so far, each with the first line that claimed it: a table of
/// open addressing over 96 bits of the ids' 128-bit hashes, 16 bytes a slot and at least a quarter of the
/// slots free, so about 22 bytes an id (a `HashMap` would take 25 bytes a slot over a power of two of
/// slots, up to twice that). A false duplicate needs two of a file's ids to share 96 bits of hash: for a
/// million ids, a chance under 10^-17. Sized by [`scan_duplicates`] for a file's estimated lines, it
/// seldom needs to grow; when it does (or fed lines without an estimate), it doubles when three quarters
/// full.
struct IdTable {
    slots: Vec<Slot>,
    used: usize,
    /// Ids first claimed on a line past `u32::MAX`: later than every one in the table, so looked up last.
    beyond: HashMap<u128, u64, BuildHasherDefault<PassThrough>>,
}

/// One id of [`IdTable`], in one place so that a look-up reads one cache line: the low 64 bits of its
/// hash, the 32 above them, and its first line; line 0 (no line has that number) marks a free slot.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    tag: u32,
    line: u32,
}

/// What one slot of [`IdTable`] takes: 8 + 4 bytes of hash and a 4-byte line number.
const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
const _: () = assert!(SLOT_BYTES == 16, "a slot is 16 bytes, as docs/formats.md says");

/// What [`IdTable`] takes per id, at its fullest: a slot and a third.
const LIVE_BYTES_PER_ID: usize = SLOT_BYTES * 4 / 3 + 1;

impl IdTable {
    /// Room for `ids` ids before it grows.
    fn with_room_for(ids: usize) -> IdTable {
        IdTable::with_slots(ids + ids / 3 + 1)
    }

    fn with_slots(slots: usize) -> IdTable {
        IdTable {
            slots: vec![Slot::default(); slots],
            used: 0,
            beyond: HashMap::default(),
        }
    }

    /// A hash as the table keeps it: its low 64 bits, which also place it, and the 32 above them.
    fn split(hash: u128) -> (u64, u32) {
        (hash as u64, (hash >> 64) as u32)
    }

    /// The slot holding `key` and `tag`, or the free slot where they go.
    fn find(&self, key: u64, tag: u32) -> usize {
        let n = self.slots.len();
        // Scaled onto the slots (xxh3's bits are all equally good).
        let mut i = ((u128::from(key) * n as u128) >> 64) as usize;
        loop {
            let slot = &self.slots[i];
            if slot.line == 0 || (slot.key, slot.tag) == (key, tag) {
                return i;
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
    }

    /// The first line of `hash`'s id if an earlier line claimed it; else `line_no` claims it.
    fn first_use(&mut self, line_no: u64, hash: u128) -> Option<u64> {
        let (key, tag) = IdTable::split(hash);
        let i = self.find(key, tag);
        if self.slots[i].line != 0 {
            return Some(u64::from(self.slots[i].line));
        }
        if let Some(first) = self.beyond.get(&hash) {
            return Some(*first);
        }
        match u32::try_from(line_no) {
            Ok(line) if line > 0 => {
                self.slots[i] = Slot { key, tag, line };
                self.used += 1;
            }
            _ => {
                self.beyond.insert(hash, line_no);
            }
        }
        None
    }

    /// At least three quarters full: time to [`IdTable::grow`].
    fn is_full(&self) -> bool {
        self.used * 4 >= self.slots.len() * 3
    }

    /// What the table and its grown copy take together while it grows.
    fn bytes_to_grow(&self) -> usize {
        self.slots.len() * 3 * SLOT_BYTES
    }

    /// Twice the slots, the ids placed again.
    fn grow(&mut self) {
        let old = std::mem::replace(self, IdTable::with_slots(self.slots.len() * 2));
        self.beyond = old.beyond;
        for slot in old.slots.into_iter().filter(|s| s.line > 0) {
            let i = self.find(slot.key, slot.tag);
            self.slots[i] = slot;
            self.used += 1;
        }
    }
}

/// Memory for finding duplicate custom_ids before translation; beyond it, sorted runs go to disk.
pub const SCAN_BUDGET: usize = 16 << 20;

/// Prepares the translator to find every line that reuses the custom_id of an earlier line, in at most
/// `budget` bytes (use [`SCAN_BUDGET`]) whatever the file's size. It takes its own reader of the input,
/// which it may need to read once more.
///
/// It estimates the number of lines from the input's length and a few samples of it. When the ids of that
/// many fit in the budget, the translator remembers them as it meets them, and the input is read by the
/// translation alone. Otherwise, or when the table of ids would outgrow the budget later (the estimate was
/// low), the whole input is read now (or then) and the hashes of its ids sorted externally (runs spilled to
/// `spill_dir`, the system temp folder when `None`), and the translator reads the duplicates back in line
/// order as it meets them. Either way every line gets the same answer.
pub fn scan_duplicates<R: Rewindable + 'static>(
    mut input: R,
    translator: &mut Translator,
    spill_dir: Option<PathBuf>,
    budget: usize,
) -> io::Result<()> {
    let start = input.stream_position()?;
    let fits = budget / LIVE_BYTES_PER_ID;
    let estimate = estimate_lines(&mut input, start)?;
    let rescan = Box::new(Rescan {
        input: Box::new(input),
        start,
        policy: translator.policy().clone(),
        spill_dir,
        budget,
    });
    translator.duplicates = if estimate <= fits {
        Duplicates::Live(IdTable::with_room_for(estimate), Some(rescan))
    } else {
        Duplicates::Scanned(rescan.run()?)
    };
    Ok(())
}

/// Inputs up to this size are counted whole by [`estimate_lines`]; larger ones are sampled.
const COUNTED_WHOLE: u64 = 1 << 20;

/// How many pieces of the input [`estimate_lines`] reads, and their size.
const SAMPLES: u64 = 16;
const SAMPLE_BYTES: usize = 64 << 10;

/// The number of lines of `input` from `start` to its end, a little over (a tenth, plus 64) for a large
/// input, whose line endings are counted in [`SAMPLES`] pieces spread evenly over it. Leaves `input` at
/// `start`. A file of lines of much the same length is estimated within a few percent; any other is
/// still translated right, only with the table grown or the ids sorted (see [`scan_duplicates`]).
fn estimate_lines<R: BufRead + Seek>(input: &mut R, start: u64) -> io::Result<usize> {
    let len = input.seek(SeekFrom::End(0))?.saturating_sub(start);
    input.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0u8; SAMPLE_BYTES];
    let (mut endings, mut read) = (0u64, 0u64);
    if len <= COUNTED_WHOLE {
        let mut unended = false;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            endings += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
            unended = buf[n - 1] != b'\n';
        }
        input.seek(SeekFrom::Start(start))?;
        return Ok(usize::try_from(endings + u64::from(unended)).unwrap_or(usize::MAX));
    }
    let step = len / SAMPLES;
    for i in 0..SAMPLES {
        input.seek(SeekFrom::Start(start + i * step))?;
        let mut filled = 0;
        while filled < buf.len() {
            let n = input.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        endings += memchr::memchr_iter(b'\n', &buf[..filled]).count() as u64;
        read += filled as u64;
    }
    input.seek(SeekFrom::Start(start))?;
    let lines = (u128::from(len) * u128::from(endings + 1) / u128::from(read.max(1))) as u64;
    Ok(usize::try_from(lines + lines / 10 + 64).unwrap_or(usize::MAX))
}

fn line_number(payload: &[u8]) -> io::Result<u64> {
    payload
        .try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a spilled line number is not 8 bytes"))
}

impl Duplicates {
    /// The first line of the id `line_no` claims, when that is an earlier line.
    fn first_use(&mut self, line_no: u64, id: &str) -> Option<u64> {
        match self {
            Duplicates::Scanned(later) => {
                while later.peek_key().is_some_and(|k| k < u128::from(line_no)) {
                    // A line the scan saw claim an id, but that was not asked about: the lines a table
                    // answered before a scan took over, or (never the case while both read lines with
                    // `claimed_id`'s rule, and harmless if it were) one the rules disagree on.
                    if later.next().is_err() {
                        return None;
                    }
                }
                if later.peek_key() != Some(u128::from(line_no)) {
                    return None;
                }
                match later.next() {
                    Ok(Some((_, first))) => line_number(first).ok(),
                    _ => None,
                }
            }
            Duplicates::Live(seen, rescan) => {
                let first = seen.first_use(line_no, id_hash(id));
                if seen.is_full() {
                    match rescan.take() {
                        // Growing would hold the old and the new table at once, over the budget: the
                        // lines from here on are answered by a scan of the whole input instead. This
                        // line's answer is already known; the table is let go before the scan sorts.
                        Some(scan) if seen.bytes_to_grow() > scan.budget => {
                            *self = Duplicates::Failed(None);
                            *self = match scan.run() {
                                Ok(later) => Duplicates::Scanned(later),
                                Err(e) => Duplicates::Failed(Some(e)),
                            };
                        }
                        kept => {
                            *rescan = kept;
                            seen.grow();
                        }
                    }
                }
                first
            }
            Duplicates::Failed(_) => None,
        }
    }
}

/// How many distinct `body.model` strings a [`Translator`] remembers the resolution of.
const MODEL_NAMES_KEPT: usize = 64;

#[derive(Clone)]
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
    /// The fingerprint of the body written to `body_out`, when one was.
    pub fingerprint: Option<Fingerprint>,
    /// The structured-output tool the line's answer comes in ([`crate::request::Request::structured`]).
    pub structured: Option<String>,
    /// For an embeddings line run on a model: how its records and answer are shaped.
    pub embedding: Option<MapEmbedding>,
    /// For an embeddings line whose bodies were written: where each text's body ends, counted from where
    /// `body_out` was when the line began (empty for a chat line, whose one body is all that was written).
    pub part_ends: Vec<usize>,
    /// The max_tokens a chat line asks (its own, or the default); `None` for embeddings.
    pub max_tokens: Option<u64>,
}

impl Accepted<'_> {
    /// Where each Bedrock record's body lies among the `written` bytes the line wrote to `body_out`, in
    /// order: the whole of them for a chat line, one range per text for an embeddings line.
    pub fn bodies(&self, written: usize) -> Vec<std::ops::Range<usize>> {
        if self.part_ends.is_empty() {
            return std::iter::once(0..written).collect();
        }
        let starts = std::iter::once(0).chain(self.part_ends.iter().copied());
        starts
            .zip(self.part_ends.iter().copied())
            .map(|(from, end)| from..end)
            .collect()
    }
}

/// The endpoint a line posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Embeddings,
}

/// Decides lines one by one. Holds what must be known across lines: the custom_ids seen so far, the
/// model groups, and the report.
pub struct Translator {
    policy: Policy,
    /// The group of chat lines that name no Bedrock model.
    batch_model: Option<usize>,
    /// The group of embeddings lines that name no Bedrock model, once one has come.
    embedding_model: Option<usize>,
    models: Vec<BedrockModel>,
    /// The `body.model` strings met and what each resolved to: a file uses a few names on every line, and
    /// checking a name against Bedrock's model id pattern costs more than the rest of a small line. At
    /// most [`MODEL_NAMES_KEPT`], so that a file of a distinct name per line cannot grow it.
    model_names: HashMap<String, Resolution>,
    duplicates: Duplicates,
    report: Report,
}

impl Translator {
    /// `batch_model` is the batch's model (docs/configuration.md#choosing-the-model), used by lines that name
    /// none: chat lines when it is a chat model, embeddings lines when it is an embeddings model (the others then
    /// use [`DEFAULT_EMBEDDING_MODEL`], or have none).
    pub fn new(policy: Policy, batch_model: Option<BedrockModel>) -> Self {
        let embeds = batch_model.as_ref().is_some_and(|m| m.family == Family::TitanEmbed);
        let models: Vec<BedrockModel> = batch_model.into_iter().collect();
        let first = if models.is_empty() { None } else { Some(0) };
        Translator {
            policy,
            batch_model: if embeds { None } else { first },
            embedding_model: if embeds { first } else { None },
            models,
            model_names: HashMap::new(),
            duplicates: Duplicates::Live(IdTable::with_room_for(1024), None),
            report: Report::default(),
        }
    }

    /// Model groups in order of first use; a group index indexes this slice.
    pub fn models(&self) -> &[BedrockModel] {
        &self.models
    }

    /// Why the duplicate check cannot go on, once: its table was full and the scan that was to take over
    /// failed (the input could not be read again, or the sort's temporary files not written). A caller
    /// that feeds lines one by one asks after each line; [`translate`] does.
    pub fn take_error(&mut self) -> Option<io::Error> {
        match &mut self.duplicates {
            Duplicates::Failed(e) => Some(
                e.take()
                    .unwrap_or_else(|| io::Error::other("the scan for duplicate custom_ids failed earlier")),
            ),
            _ => None,
        }
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
        let result = self.decide(line_no, line, body_out);
        self.count(result.as_ref().map(|a| (a.group, a.max_tokens)));
        result
    }

    fn count(&mut self, outcome: Result<(Option<usize>, Option<u64>), &LineError>) {
        self.report.lines += 1;
        match outcome {
            Ok((group, max_tokens)) => {
                self.report.accepted += 1;
                if let Some(g) = group {
                    let model = &self.models[g].id;
                    bump(&mut self.report.accepted_by_model, model);
                    if let Some(t) = max_tokens {
                        match self.report.output_tokens_at_most.get_mut(model) {
                            Some(sum) => *sum = sum.saturating_add(t),
                            None => {
                                self.report.output_tokens_at_most.insert(model.clone(), t);
                            }
                        }
                    }
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
        let line = match jsonl::utf8(line) {
            Ok(text) => text,
            Err(e) => return Err(not_utf8(line_no, line, &e)),
        };
        // serde would read a JSON array as a struct too: only an object is a request.
        if line.bytes().find(|b| !b.is_ascii_whitespace()) != Some(b'{') {
            return Err(not_an_object(line_no, line.as_bytes()));
        }
        let parsed: InputLine<'l> = match serde_json::from_str(line) {
            Ok(p) => p,
            Err(e) => return Err(self.diagnose(line_no, line, e)),
        };
        let fail = |custom_id: Option<&str>, rejection: Rejection| LineError {
            line: line_no,
            custom_id: custom_id.map(str::to_string),
            rejection,
        };

        let custom_id = match check_custom_id(parsed.custom_id, &self.policy) {
            Ok(id) => id,
            Err((rejection, shown)) => return Err(fail(shown.as_deref(), rejection)),
        };
        if let Some(r) = self.duplicate(line_no, &custom_id) {
            // A duplicate is named, so its error line carries the custom_id it tried to use.
            return Err(fail(Some(&custom_id), r));
        }
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
        let endpoint = match parsed.url.as_deref() {
            Some(CHAT_COMPLETIONS_URL) => Endpoint::Chat,
            Some(EMBEDDINGS_URL) => Endpoint::Embeddings,
            None => {
                return Err(fail(
                    id,
                    Rejection::new(
                        Reason::Url,
                        "url",
                        format!("is missing (must be {CHAT_COMPLETIONS_URL} or {EMBEDDINGS_URL})"),
                    ),
                ))
            }
            Some(u) => {
                return Err(fail(
                    id,
                    Rejection::new(
                        Reason::Url,
                        "url",
                        format!("'{u}' is not supported; only {CHAT_COMPLETIONS_URL} and {EMBEDDINGS_URL} are"),
                    ),
                ))
            }
        };
        let Some(mut body) = parsed.body else {
            return Err(fail(id, Rejection::new(Reason::MissingBody, "body", "is missing")));
        };
        let group = match body.model.as_deref() {
            None => self.default_group(endpoint),
            Some(name) => match self.resolve(name) {
                Resolution::Group(g) => Some(g),
                Resolution::Foreign => {
                    self.report.ignored_model_names.bump(name);
                    self.default_group(endpoint)
                }
                Resolution::Unsupported(why) => {
                    return Err(fail(id, Rejection::new(Reason::UnsupportedModel, "body.model", why)))
                }
            },
        };
        if group.is_none() && body_out.is_some() {
            let why = match (endpoint, self.embedding_model) {
                (Endpoint::Chat, Some(g)) if self.batch_model.is_none() => format!(
                    "names no Bedrock chat model, and the batch's model, {}, is an embeddings model",
                    self.models[g].id
                ),
                _ => "names no Bedrock model, and the batch has none to run this line on".to_string(),
            };
            return Err(fail(id, Rejection::new(Reason::NoModel, "body.model", why)));
        }
        let model = group.map(|g| &self.models[g]);
        if let Some(m) = model {
            let embeds = m.family == Family::TitanEmbed;
            let why = match endpoint {
                Endpoint::Chat if embeds => Some(format!(
                    "'{}' is an embeddings model; a {CHAT_COMPLETIONS_URL} line needs a chat model",
                    m.id
                )),
                Endpoint::Embeddings if !embeds => Some(format!(
                    "'{}' is a chat model; a {EMBEDDINGS_URL} line needs an embeddings model, such as \
                     {DEFAULT_EMBEDDING_MODEL}",
                    m.id
                )),
                _ => None,
            };
            if let Some(why) = why {
                return Err(fail(id, Rejection::new(Reason::UnsupportedModel, "body.model", why)));
            }
        }
        let dropped = std::mem::take(&mut body.dropped);
        // The other endpoint's fields mean nothing here: dropped, and counted with the unknown ones.
        let foreign = match endpoint {
            Endpoint::Chat => body.embedding_fields(),
            Endpoint::Embeddings => body.chat_fields(),
        };
        if endpoint == Endpoint::Embeddings {
            let request = embeddings::build(body, model).map_err(|r| fail(id, r))?;
            let mut accepted = Accepted {
                custom_id,
                group,
                fingerprint: None,
                structured: None,
                embedding: None,
                part_ends: Vec::new(),
                max_tokens: None,
            };
            if let (Some(out), Some(_), Some(dimensions)) = (body_out, model, request.dimensions) {
                let (ends, fingerprint) = request.write_bodies(dimensions, out);
                self.report.records += ends.len() as u64;
                accepted.part_ends = ends;
                accepted.fingerprint = Some(fingerprint);
                accepted.embedding = Some(MapEmbedding {
                    parts: request.inputs.len() as u32,
                    dimensions,
                    base64: request.encoding == Encoding::Base64,
                });
            }
            self.count_dropped(&dropped, &foreign);
            return Ok(accepted);
        }
        let request = request::build(body, &self.policy, model).map_err(|r| fail(id, r))?;
        let mut fingerprint = None;
        if let (Some(out), Some(m)) = (body_out, model) {
            self.report.records += 1;
            // Writing to a Vec fails only on a serializer bug; it is still reported, never a panic.
            let written = format::write_body(m.family, &request, out).map_err(|e| {
                fail(
                    id,
                    Rejection::new(Reason::InvalidType, "body", format!("could not be written: {e}")),
                )
            })?;
            fingerprint = Some(written);
        }
        self.count_dropped(&dropped, &foreign);
        self.report.temperature_changed += u64::from(request.temperature_changed);
        Ok(Accepted {
            custom_id,
            group,
            fingerprint,
            structured: request.structured.map(Cow::into_owned),
            embedding: None,
            part_ends: Vec::new(),
            max_tokens: Some(request.max_tokens),
        })
    }

    /// Counts the body fields an accepted line had no use for: unknown ones, and the other endpoint's.
    fn count_dropped(&mut self, unknown: &[Cow<'_, str>], foreign: &[&str]) {
        for name in unknown.iter().map(|n| n.as_ref()).chain(foreign.iter().copied()) {
            self.report.dropped_fields.bump(name);
        }
    }

    /// The group of a line that names no Bedrock model: the batch's chat model for a chat line; for an
    /// embeddings line the batch's model when it embeds, else [`DEFAULT_EMBEDDING_MODEL`], added as a group
    /// when first needed.
    fn default_group(&mut self, endpoint: Endpoint) -> Option<usize> {
        match endpoint {
            Endpoint::Chat => self.batch_model,
            Endpoint::Embeddings => {
                if self.embedding_model.is_none() {
                    if let Resolution::Group(g) = self.resolve(DEFAULT_EMBEDDING_MODEL) {
                        self.embedding_model = Some(g);
                    }
                }
                self.embedding_model
            }
        }
    }

    /// docs/formats.md#openai-lines: a custom_id is unique in the file. The first line to claim one owns it, whether that
    /// line was accepted or not (see [`claimed_id`]); `Some` when `line_no` reuses an owned id.
    fn duplicate(&mut self, line_no: u64, id: &str) -> Option<Rejection> {
        let first = self.duplicates.first_use(line_no, id)?;
        Some(Rejection::new(
            Reason::DuplicateCustomId,
            "custom_id",
            format!("is used twice: first on line {first}"),
        ))
    }

    fn resolve(&mut self, name: &str) -> Resolution {
        if let Some(known) = self.model_names.get(name) {
            return known.clone();
        }
        let resolution = match model::classify(name) {
            ModelName::Foreign => Resolution::Foreign,
            ModelName::Unsupported(why) => Resolution::Unsupported(why),
            ModelName::Supported(m) => match self.models.iter().position(|g| g.id == m.id) {
                Some(g) => Resolution::Group(g),
                None if self.models.len() >= MAX_MODELS_PER_BATCH => Resolution::Unsupported(format!(
                    "'{}' would be model number {} of this file; a batch runs on at most \
                     {MAX_MODELS_PER_BATCH} Bedrock models",
                    m.id,
                    MAX_MODELS_PER_BATCH + 1
                )),
                None => {
                    self.models.push(m);
                    Resolution::Group(self.models.len() - 1)
                }
            },
        };
        if self.model_names.len() < MODEL_NAMES_KEPT {
            self.model_names.insert(name.to_string(), resolution.clone());
        }
        resolution
    }

    /// The line did not parse: find what is wrong, where, and whose line it is. Only rejected lines pay
    /// for this second look.
    fn diagnose(&mut self, line_no: u64, line: &str, err: serde_json::Error) -> LineError {
        // Name the line's custom_id when its head can be read: skipping a value (serde_json's
        // ignore_value) checks neither number ranges nor escapes, so `1e400` elsewhere does not hide it.
        let head = serde_json::from_str::<LineHead>(line).ok();
        let custom_id = match head.map(|h| check_custom_id(h.custom_id, &self.policy)) {
            Some(Ok(id)) => {
                if let Some(r) = self.duplicate(line_no, &id) {
                    return LineError {
                        line: line_no,
                        custom_id: Some(id.into_owned()),
                        rejection: r,
                    };
                }
                Some(id.into_owned())
            }
            Some(Err((_, shown))) => shown,
            None => None,
        };
        let mut de = serde_json::Deserializer::from_str(line);
        let (field, message) = match serde_path_to_error::deserialize::<_, InputLine>(&mut de) {
            Err(e) => (e.path().to_string(), strip_position(&e.inner().to_string())),
            Ok(_) => (String::new(), strip_position(&err.to_string())),
        };
        let field = if field == "." || field == "?" {
            String::new()
        } else {
            field
        };
        let syntax = matches!(err.classify(), Category::Syntax | Category::Eof | Category::Io);
        let reason = match field.split(['.', '[']).next() {
            _ if field == "body.max_tokens" || field == "body.max_completion_tokens" => Reason::MaxTokens,
            _ if syntax => Reason::InvalidJson,
            Some("method") => Reason::Method,
            Some("url") => Reason::Url,
            _ => Reason::InvalidType,
        };
        let message = if syntax && reason == Reason::InvalidJson {
            format!("not valid JSON: {message} at column {}", err.column())
        } else {
            message
        };
        LineError {
            line: line_no,
            custom_id,
            rejection: Rejection::new(reason, field, message),
        }
    }

    /// A line longer than [`Policy::max_line_bytes`]: rejected unread (its bytes were skipped).
    pub fn too_long(&mut self, line_no: u64, bytes: u64) -> LineError {
        let error = LineError {
            line: line_no,
            custom_id: None,
            rejection: Rejection::new(
                Reason::LineTooLong,
                "",
                format!(
                    "the line is {bytes} bytes long; batchdrop reads lines of at most {} bytes \
                     (docs/formats.md, \"Limits\")",
                    self.policy.max_line_bytes
                ),
            ),
        };
        self.count(Err(&error));
        error
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// What a custom_id is, checked (docs/formats.md#openai-lines: required, a string; ours: at most
/// [`Policy::max_custom_id_len`] bytes). A bad one comes with what its error line should echo: scalars as
/// given (a number as its JSON text, so the user can find the line), cut to the length limit; nothing for
/// an object or an array.
fn check_custom_id<'l>(
    raw: Option<&'l RawValue>,
    policy: &Policy,
) -> Result<Cow<'l, str>, (Rejection, Option<String>)> {
    let invalid = |message: String, shown: Option<String>| {
        Err((Rejection::new(Reason::InvalidCustomId, "custom_id", message), shown))
    };
    let limit = policy.max_custom_id_len;
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Err((Rejection::new(Reason::MissingCustomId, "custom_id", "is missing"), None));
    };
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<CowStr>(text) {
            Ok(CowStr(id)) if id.is_empty() => {
                Err((Rejection::new(Reason::MissingCustomId, "custom_id", "is empty"), None))
            }
            Ok(CowStr(id)) if id.len() > limit => invalid(
                format!("is {} bytes long; the limit is {limit}", id.len()),
                Some(cut(&id, limit)),
            ),
            Ok(CowStr(id)) => Ok(id),
            Err(e) => invalid(
                match strip_position(&e.to_string()) {
                    why if why.contains("surrogate") || why.contains("hex escape") => {
                        "is not valid Unicode: it holds a \\u escape of half a surrogate pair (such as \\ud800) \
                         without its other half"
                            .to_string()
                    }
                    why => format!("is not a valid JSON string: {why}"),
                },
                Some(cut(&text[1..text.len().saturating_sub(1)], limit)),
            ),
        },
        Some(b'{') => invalid("must be a string, not an object".into(), None),
        Some(b'[') => invalid("must be a string, not an array".into(), None),
        Some(b't' | b'f') => invalid(format!("must be a string, not the boolean {text}"), Some(text.into())),
        _ => invalid(
            format!("must be a string, not the number {}", cut(text, 40)),
            Some(cut(text, limit)),
        ),
    }
}

/// The custom_id a line claims, if any: the first line to claim an id owns it, and every later line
/// that claims it is a duplicate. A line claims its id when it is UTF-8, a JSON object whose head reads,
/// and its custom_id is valid. One rule for the scan before translation and for lines fed one by one.
pub fn claimed_id<'l>(line: &'l [u8], policy: &Policy) -> Option<Cow<'l, str>> {
    let line = jsonl::utf8(line).ok()?;
    if line.bytes().find(|b| !b.is_ascii_whitespace()) != Some(b'{') {
        return None;
    }
    let head: LineHead<'l> = serde_json::from_str(line).ok()?;
    check_custom_id(head.custom_id, policy).ok()
}

/// A line that is not UTF-8 (JSON must be): say where.
fn not_utf8(line_no: u64, line: &[u8], e: &std::str::Utf8Error) -> LineError {
    let at = e.valid_up_to();
    LineError {
        line: line_no,
        custom_id: None,
        rejection: Rejection::new(
            Reason::InvalidJson,
            "",
            format!(
                "the line is not valid UTF-8: byte 0x{:02x} at column {} (JSON text must be UTF-8)",
                line.get(at).copied().unwrap_or(0),
                at + 1
            ),
        ),
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
    without_position(message)
        .replace("expected u64", "expected a whole number, 0 or more")
        .replace("expected f64", "expected a number")
        .replace("expected a borrowed string", "expected a string")
}

/// Where the outcome of each line goes.
pub trait Sink {
    /// A Bedrock input record (one JSONL line, newline included) for model group `group`, whose
    /// Bedrock model is `model`. `continues_line` when it is not the first record of its input line (an
    /// embeddings line has one record per text): a job must hold all of a line's records.
    fn record(&mut self, group: usize, model: &BedrockModel, record: &[u8], continues_line: bool) -> io::Result<()>;
    /// One line of the record map (newline included); one per non-blank input line, in input order.
    fn map_entry(&mut self, entry: &[u8]) -> io::Result<()>;
    /// A rejected line: its OpenAI error line (newline included) and the error itself.
    fn rejected(&mut self, error_line: &[u8], error: &LineError) -> io::Result<()>;
}

/// One record-map line (docs/formats.md#the-record-map): one per non-blank input line, in input order.
#[derive(Debug, Serialize, Deserialize)]
pub struct MapLine<'a> {
    pub line: u64,
    #[serde(borrow, default)]
    pub custom_id: Option<Cow<'a, str>>,
    #[serde(rename = "recordId", borrow, default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Cow<'a, str>>,
    /// The family `model` was translated for: the results step reads the answers so, without asking the
    /// model catalogue again (which may have changed since). Maps written before it was kept lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// The index of the Bedrock job that runs the record, once jobs are planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<usize>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<MapRejection<'a>>,
    /// The [`Fingerprint`] of the `modelInput` sent, as 16 hex digits: Bedrock echoes `modelInput`, so
    /// the results step can check that an answer belongs to this record.
    #[serde(rename = "fp", borrow, default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Cow<'a, str>>,
    /// The tool whose input is the answer, for a line that asked for structured output (docs/formats.md,
    /// "Structured output").
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub structured: Option<Cow<'a, str>>,
    /// For an embeddings line: its records (from `recordId` on, one per text) and the answer's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<MapEmbedding>,
}

/// What the record map keeps of an embeddings line (docs/formats.md, "Embeddings").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapEmbedding {
    /// How many records (texts) the line has; they are numbered one after another from its `recordId`.
    pub parts: u32,
    /// The length of every vector asked for.
    pub dimensions: u32,
    /// The answer's vectors in base64 rather than as numbers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
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
            family: None,
            job: None,
            fingerprint: None,
            structured: None,
            embedding: None,
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

/// The record map format this code writes. Version 2 added the trailer and the fingerprints, version 3 the
/// embeddings lines of several records.
pub const MAP_VERSION: u32 = 3;

/// The oldest record map format this code still reads: a version 2 map is a version 3 map without embeddings.
pub const OLDEST_MAP_VERSION: u32 = 2;

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

    let mut lines = Lines::with_limit(input, translator.policy().max_line_bytes);
    let mut record = Vec::with_capacity(64 * 1024);
    let mut part = Vec::new();
    let mut scratch = Vec::with_capacity(1024);
    let mut next_record = RecordId::FIRST;
    while let Some((line_no, line)) = lines.next_any()? {
        let line = match line {
            Line::Text(text) => text,
            Line::TooLong { bytes } => {
                let error = translator.too_long(line_no, bytes);
                scratch.clear();
                write_rejected(&mut scratch, &ids, &error, sink)?;
                continue;
            }
        };
        if is_blank(line) {
            translator.blank();
            continue;
        }
        start_record(&mut record, next_record);
        let body_start = record.len();
        scratch.clear();
        let decided = translator.line(line_no, line, Some(&mut record));
        if let Some(e) = translator.take_error() {
            return Err(e);
        }
        match decided {
            Ok(accepted) => {
                let Some(group) = accepted.group else {
                    return Err(io::Error::other("a line was accepted without a model"));
                };
                debug_assert!(record.len() > body_start);
                let model = &translator.models()[group];
                let first_record = next_record;
                if accepted.part_ends.is_empty() {
                    record.extend_from_slice(RECORD_END);
                    sink.record(group, model, &record, false)?;
                    next_record = next_record.next();
                } else {
                    // One record per text, numbered one after another, each with its own body.
                    let bodies = &record[body_start..];
                    for (i, body) in accepted.bodies(bodies.len()).into_iter().enumerate() {
                        start_record(&mut part, next_record);
                        part.extend_from_slice(&bodies[body]);
                        part.extend_from_slice(RECORD_END);
                        sink.record(group, model, &part, i > 0)?;
                        next_record = next_record.next();
                    }
                }
                serde_json::to_writer(
                    &mut scratch,
                    &MapLine {
                        line: line_no,
                        custom_id: Some(Cow::Borrowed(&accepted.custom_id)),
                        record_id: Some(Cow::Borrowed(first_record.as_str())),
                        model: Some(Cow::Borrowed(&model.id)),
                        family: Some(model.family),
                        job: None,
                        rejected: None,
                        fingerprint: accepted.fingerprint.map(|f| Cow::Owned(f.to_hex())),
                        structured: accepted.structured.as_deref().map(Cow::Borrowed),
                        embedding: accepted.embedding,
                    },
                )?;
                scratch.push(b'\n');
                sink.map_entry(&scratch)?;
            }
            Err(error) => write_rejected(&mut scratch, &ids, &error, sink)?,
        }
    }
    let report = translator.report();
    let mut end = serde_json::to_vec(&MapEnd {
        batchdrop_record_map_end: MapCounts {
            entries: report.lines,
            records: report.records,
        },
    })?;
    end.push(b'\n');
    sink.map_entry(&end)?;
    Ok(report.clone())
}

/// The size of the Bedrock input record around a `modelInput` body of `body` bytes, newline included: what
/// [`translate`] writes for it and the job planner counts.
pub fn record_bytes(body: usize) -> u64 {
    (RECORD_HEAD.len() + RecordId::FIRST.as_bytes().len() + RECORD_MID.len() + body + RECORD_END.len()) as u64
}

const RECORD_HEAD: &[u8] = b"{\"recordId\":\"";
const RECORD_MID: &[u8] = b"\",\"modelInput\":";
const RECORD_END: &[u8] = b"}\n";

/// Starts the Bedrock input record `id` in `record`, up to its `modelInput` body.
fn start_record(record: &mut Vec<u8>, id: RecordId) {
    record.clear();
    record.extend_from_slice(RECORD_HEAD);
    record.extend_from_slice(id.as_bytes());
    record.extend_from_slice(RECORD_MID);
}

/// A rejected line's map entry and error line, through `scratch`.
fn write_rejected<S: Sink>(scratch: &mut Vec<u8>, ids: &Ids, error: &LineError, sink: &mut S) -> io::Result<()> {
    serde_json::to_writer(&mut *scratch, &MapLine::rejected(error))?;
    scratch.push(b'\n');
    sink.map_entry(scratch)?;
    scratch.clear();
    write_rejection(scratch, ids, error)?;
    sink.rejected(scratch, error)
}

/// The OpenAI error line of a rejected input line: status 400, never sent to Bedrock (docs/formats.md#openai-lines).
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

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn id_table_grows_and_keeps_every_first_line() {
        // Room for 2 ids, then 10,000, with no scan to take over: it must grow many times and lose none.
        let mut live = Duplicates::Live(IdTable::with_room_for(2), None);
        for line in 1..=10_000u64 {
            assert_eq!(live.first_use(line, &format!("id-{line}")), None);
        }
        for line in 1..=10_000u64 {
            let again = 10_000 + line;
            assert_eq!(live.first_use(again, &format!("id-{line}")), Some(line));
        }
        let Duplicates::Live(table, _) = live else {
            panic!("no scan, so the table stays")
        };
        assert!(table.slots.len() >= 10_000 * 4 / 3);
        assert_eq!(table.used, 10_000);
    }

    #[test]
    fn id_table_sized_for_its_ids_is_not_full() {
        let mut table = IdTable::with_room_for(1_000);
        let slots = table.slots.len();
        for line in 1..=1_000u64 {
            table.first_use(line, id_hash(&line.to_string()));
            assert!(!table.is_full(), "line {line}");
        }
        assert_eq!(table.slots.len(), slots);
    }

    #[test]
    fn id_table_takes_lines_past_u32() {
        let mut table = IdTable::with_room_for(4);
        let far = u64::from(u32::MAX) + 7;
        assert_eq!(table.first_use(3, id_hash("a")), None);
        assert_eq!(table.first_use(far, id_hash("b")), None);
        assert_eq!(table.first_use(far + 1, id_hash("a")), Some(3));
        assert_eq!(table.first_use(far + 2, id_hash("b")), Some(far));
    }

    #[test]
    fn a_small_input_is_counted_whole_and_left_where_it_started() {
        for (text, lines) in [
            ("", 0),
            ("a", 1),
            ("a\n", 1),
            ("a\nb", 2),
            ("\n\n\n", 3),
            ("a\n\nb\n", 3),
        ] {
            let mut input = Cursor::new(format!("skip\n{text}"));
            assert_eq!(estimate_lines(&mut input, 5).expect("in memory"), lines, "{text:?}");
            assert_eq!(input.position(), 5);
        }
        // Past one read's worth.
        let text = "x\n".repeat(100_000) + "y";
        assert_eq!(estimate_lines(&mut Cursor::new(text), 0).expect("in memory"), 100_001);
    }

    #[test]
    fn a_large_input_of_like_lines_is_estimated_a_little_over() {
        // 5 MB of lines from 40 to 199 bytes, in a fixed pseudo-random order.
        let mut text = String::new();
        let (mut lines, mut x) = (0usize, 7u64);
        while text.len() < 5_000_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            text.push_str(&"z".repeat(40 + (x >> 33) as usize % 160));
            text.push('\n');
            lines += 1;
        }
        let mut input = Cursor::new(text);
        let estimate = estimate_lines(&mut input, 0).expect("in memory");
        assert_eq!(input.position(), 0);
        assert!(
            estimate >= lines && estimate <= lines + lines / 5 + 64,
            "{estimate} for {lines} lines"
        );
    }

    fn chat_line(id: &str) -> String {
        format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{{"messages":[{{"role":"user","content":"hi"}}]}}}}"#
        )
    }

    /// A file of 200 lines whose ids repeat near and far, and the first line of each, as a table of every
    /// id finds them.
    fn repeating_ids() -> (Vec<String>, String, Vec<Option<u64>>) {
        let ids: Vec<String> = (0..200u64).map(|n| format!("id-{}", (n * 37) % 120)).collect();
        let input = ids.iter().map(|id| chat_line(id)).collect::<Vec<_>>().join("\n");
        let mut all = Duplicates::Live(IdTable::with_room_for(1), None);
        let firsts = ids.iter().zip(1u64..).map(|(id, n)| all.first_use(n, id)).collect();
        (ids, input, firsts)
    }

    fn rescan(input: Cursor<Vec<u8>>, budget: usize, dir: &tempfile::TempDir) -> Option<Box<Rescan>> {
        Some(Box::new(Rescan {
            input: Box::new(input),
            start: 0,
            policy: Policy::default(),
            spill_dir: Some(dir.path().to_path_buf()),
            budget,
        }))
    }

    #[test]
    fn the_scan_keeps_ids_in_memory_only_when_they_fit() {
        let ids = ["a", "b", "a", "c", "b"];
        let input = ids.map(chat_line).join("\n");
        // A budget for 5 ids keeps them; a budget for 4 does not, and the ids are sorted instead.
        for (budget, live) in [(5 * LIVE_BYTES_PER_ID, true), (4 * LIVE_BYTES_PER_ID, false)] {
            let mut t = Translator::new(Policy::default(), None);
            let dir = tempfile::tempdir().expect("temp dir");
            let reader = Cursor::new(input.clone().into_bytes());
            scan_duplicates(reader, &mut t, Some(dir.path().to_path_buf()), budget).expect("scan");
            assert_eq!(matches!(t.duplicates, Duplicates::Live(..)), live, "budget {budget}");
            let firsts: Vec<Option<u64>> = (1..=5u64)
                .map(|n| t.duplicates.first_use(n, ids[n as usize - 1]))
                .collect();
            assert_eq!(firsts, [None, None, Some(1), None, Some(2)], "budget {budget}");
        }
    }

    #[test]
    fn a_table_that_would_outgrow_its_budget_hands_over_to_a_scan_with_the_same_answers() {
        let (ids, input, expected) = repeating_ids();
        // Room for 8 ids in 11 slots at first, full at the 9th; each growth doubles the slots and needs three
        // times the old ones while it copies. The budgets let it grow no time, once or three times before a
        // scan takes over, at line 9, 17 or 66 (the first 120 ids are all new), or never.
        for (budget, takes_over) in [
            (0, Some(9)),
            (3 * 11 * SLOT_BYTES, Some(17)),
            (3 * 44 * SLOT_BYTES, Some(66)),
            (usize::MAX, None),
        ] {
            let dir = tempfile::tempdir().expect("temp dir");
            let reader = Cursor::new(input.clone().into_bytes());
            let mut d = Duplicates::Live(IdTable::with_room_for(8), rescan(reader, budget, &dir));
            let mut handed_over = None;
            let firsts: Vec<Option<u64>> = ids
                .iter()
                .zip(1u64..)
                .map(|(id, n)| {
                    let first = d.first_use(n, id);
                    if handed_over.is_none() && matches!(d, Duplicates::Scanned(_)) {
                        handed_over = Some(n);
                    }
                    first
                })
                .collect();
            assert_eq!(firsts, expected, "budget {budget}");
            assert_eq!(handed_over, takes_over, "budget {budget}");
        }
    }

    /// A reader that cannot seek: the input of a scan that cannot start again.
    struct FailsToSeek(Cursor<Vec<u8>>);

    impl io::Read for FailsToSeek {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl BufRead for FailsToSeek {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            self.0.fill_buf()
        }
        fn consume(&mut self, n: usize) {
            self.0.consume(n)
        }
    }

    impl Seek for FailsToSeek {
        fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
            Err(io::Error::other("the disk went away"))
        }
    }

    struct Nowhere;

    impl Sink for Nowhere {
        fn record(&mut self, _: usize, _: &BedrockModel, _: &[u8], _: bool) -> io::Result<()> {
            Ok(())
        }
        fn map_entry(&mut self, _: &[u8]) -> io::Result<()> {
            Ok(())
        }
        fn rejected(&mut self, _: &[u8], _: &LineError) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_scan_that_cannot_take_over_stops_the_translation_with_its_error() {
        let (_, input, _) = repeating_ids();
        let model::ModelName::Supported(claude) = model::classify("anthropic.claude-3-haiku-20240307-v1:0") else {
            panic!("the catalogue knows Claude 3 Haiku");
        };
        let mut t = Translator::new(Policy::default(), Some(claude));
        // A table full after 8 ids, no budget to grow it, and a file that cannot be read again.
        let unreadable = FailsToSeek(Cursor::new(input.clone().into_bytes()));
        t.duplicates = Duplicates::Live(
            IdTable::with_room_for(8),
            Some(Box::new(Rescan {
                input: Box::new(unreadable),
                start: 0,
                policy: Policy::default(),
                spill_dir: None,
                budget: 0,
            })),
        );
        let err = translate(Cursor::new(input), &mut t, "b", &mut Nowhere).expect_err("the scan fails");
        assert_eq!(err.to_string(), "the disk went away");
    }
}
