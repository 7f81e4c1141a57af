//! The submit step: an S3 upload into `inbox/` becomes a batch (README, "What runs where").
//!
//! For each object: claim the batch id (batch.json written only if absent), validate and translate every
//! line into per-model files on local disk, plan the jobs (Bedrock's quotas, docs/formats.md), write the
//! Bedrock input files and the record map under `staging/<batch-id>/`, record the plan in batch.json, and
//! start the execution named after the batch id. Submit creates no Bedrock job: the loop does, once the
//! execution watches the batch (docs/reliability.md). S3 delivers events at least once; every step here
//! is idempotent for one object version, and a delivery that crashed half-way is finished by the next.
//! A cancel marker (`cancel/<batch-id>`) comes through here too and stops the batch's jobs at once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::types::ExecutionStatus;
use serde::{Deserialize, Serialize};

use super::cancel::Cancelled;
use super::check::CheckInput;
use super::{aws_error, create_batch, now, read_batch, s3, scratch_dir, update_batch, Deps, StepError};
use crate::error::{LineError, Reason};
use crate::jsonl::Lines;
use crate::layout;
use crate::model::{self, BedrockModel, ModelName};
use crate::plan::{plan_group, Chunk, GroupRecords};
use crate::status::{BatchDoc, Job};
use crate::translate::{self, MapCounts, MapEnd, MapHeader, MapLine, MapRejection, Sink, Translator, MAP_VERSION};

/// At most this much of a key or event name goes into a message (S3 keys are up to 1,024 bytes).
const SHOWN_BYTES: usize = 300;

/// What invokes submit. S3 delivers its event notifications (`Records`) at least once, and a test event
/// (`s3:TestEvent`) when the bucket's notification configuration is written. Anything else is refused with a
/// function error that says what it was, so that Lambda retries it and then keeps it in the failure queue:
/// an event is never dropped in silence.
#[derive(Debug)]
pub enum SubmitEvent {
    /// An S3 event notification, as `aws_lambda_events` reads it.
    Notification(S3Event),
    /// S3's `s3:TestEvent`, sent once when the trigger is set up; nothing to do.
    Test { bucket: String },
    /// Not an event submit can take; the reason names what it is and what to do.
    Refused(String),
}

impl SubmitEvent {
    /// Reads an invocation's payload. Never fails: a payload that is not an S3 notification becomes
    /// `Refused`, which `handle` turns into a function error with that reason.
    pub fn from_value(value: serde_json::Value) -> SubmitEvent {
        let Some(object) = value.as_object() else {
            return SubmitEvent::Refused(format!(
                "submit takes S3 event notifications (a JSON object with \"Records\"); got {}",
                json_kind(&value)
            ));
        };
        if object.contains_key("Records") {
            return match serde_path_to_error::deserialize::<_, S3Event>(value) {
                Ok(event) => SubmitEvent::Notification(event),
                Err(e) => SubmitEvent::Refused(format!(
                    "not an S3 event notification: at {}: {} (an SNS- or SQS-wrapped S3 event is not \
                     supported: point the bucket's notification straight at the function)",
                    e.path(),
                    e.inner()
                )),
            };
        }
        if object.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
            let bucket = object.get("Bucket").and_then(|b| b.as_str()).unwrap_or_default();
            return SubmitEvent::Test {
                bucket: bucket.to_string(),
            };
        }
        if object.get("source").and_then(|s| s.as_str()) == Some("aws.s3") && object.contains_key("detail-type") {
            let what = object.get("detail-type").and_then(|d| d.as_str()).unwrap_or_default();
            return SubmitEvent::Refused(format!(
                "an EventBridge-delivered S3 event (\"{}\"): batchdrop is triggered by the input bucket's S3 \
                 event notifications, which the stack sets up; remove the EventBridge rule that targets this \
                 function (its events would otherwise be taken twice or not at all)",
                crate::error::shown(what, SHOWN_BYTES)
            ));
        }
        let mut keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
        keys.sort_unstable();
        SubmitEvent::Refused(format!(
            "submit takes S3 event notifications (a JSON object with \"Records\"); got an object with keys [{}]",
            crate::error::shown(&keys.join(", "), SHOWN_BYTES)
        ))
    }
}

impl<'de> Deserialize<'de> for SubmitEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(SubmitEvent::from_value)
    }
}

impl From<S3Event> for SubmitEvent {
    fn from(event: S3Event) -> Self {
        SubmitEvent::Notification(event)
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// One uploaded object of a notification, its key decoded.
#[derive(Debug, Clone)]
pub struct Upload {
    pub event_name: Option<String>,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub e_tag: Option<String>,
    pub sequencer: Option<String>,
}

impl Upload {
    /// The object a record names. A record without a bucket name or key, or whose key does not decode to
    /// UTF-8, names no object: an error, never a guess.
    pub fn from_record(index: usize, record: &S3EventRecord) -> Result<Upload, StepError> {
        let object = &record.s3.object;
        let bucket = record.s3.bucket.name.as_deref().filter(|b| !b.is_empty());
        let (Some(bucket), Some(raw_key)) = (bucket, object.key.as_deref()) else {
            return Err(StepError::Fatal(format!(
                "S3 event record {index} names no object (s3.bucket.name and s3.object.key are required)"
            )));
        };
        let key = decode_key(raw_key).map_err(|why| {
            StepError::Fatal(format!(
                "S3 event record {index}: object key \"{}\" {why}",
                crate::error::shown(raw_key, SHOWN_BYTES)
            ))
        })?;
        Ok(Upload {
            event_name: record.event_name.clone(),
            bucket: bucket.to_string(),
            key,
            version_id: object.version_id.clone().filter(|v| !v.is_empty()),
            e_tag: object.e_tag.clone().filter(|v| !v.is_empty()),
            sequencer: object.sequencer.clone().filter(|v| !v.is_empty()),
        })
    }
}

/// What submit did with one S3 record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Submitted {
    /// A new batch, claimed, staged and running (or one a crashed earlier delivery left half done, now
    /// finished).
    Started {
        batch_id: String,
        jobs: usize,
        accepted: u64,
        rejected: u64,
    },
    /// The batch of this object version exists already, or another delivery of the same event is
    /// submitting it right now: nothing was done again.
    Duplicate { batch_id: String },
    /// A cancel marker: the batch is flagged and its running jobs were asked to stop.
    Cancelling { batch_id: String, stopping: usize },
    /// A cancel marker for a batch that has ended or does not exist.
    CancelIgnored { batch_id: String, why: String },
    /// Not a file for batchdrop (outside `inbox/`, not `.jsonl`, not a created object).
    Ignored { key: String, why: String },
    /// S3's test event, sent when the bucket's trigger is configured.
    TestEvent { bucket: String },
}

/// S3 event keys are URL-encoded as a form value: `+` for a space, `%XX` for every other byte outside
/// `A-Za-z0-9` and a few marks, a UTF-8 character as its bytes (`é` is `%C3%A9`). A `%` not followed by two
/// hex digits is kept as it is. The decoded bytes must be UTF-8, as S3 keys are.
pub fn decode_key(key: &str) -> Result<String, String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|e| {
        format!(
            "does not decode to UTF-8 (byte {} of the decoded key)",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Handles every record of an S3 event. A record that names no object fails the invocation (before any
/// record is acted on), as does any event that is not an S3 notification: Lambda retries it, then keeps it
/// in the failure queue with the reason.
pub async fn handle(deps: &Deps, event: SubmitEvent) -> Result<Vec<Submitted>, StepError> {
    let event = match event {
        SubmitEvent::Notification(event) => event,
        SubmitEvent::Test { bucket } => {
            tracing::info!(%bucket, "S3 test event: the trigger is set up");
            return Ok(vec![Submitted::TestEvent { bucket }]);
        }
        SubmitEvent::Refused(why) => {
            tracing::error!(%why, "not an event submit can take");
            return Err(StepError::Fatal(why));
        }
    };
    let uploads = event
        .records
        .iter()
        .enumerate()
        .map(|(i, record)| Upload::from_record(i, record))
        .collect::<Result<Vec<_>, _>>()?;
    let mut outcomes = Vec::with_capacity(uploads.len());
    for upload in &uploads {
        outcomes.push(submit_riding_out(deps, upload).await?);
    }
    Ok(outcomes)
}

/// One record, tried again on transient trouble (throttling, 5xx, timeouts) for up to
/// `SUBMIT_RETRY_SECONDS`: Lambda retries a failed S3 event only twice, and a batch whose claim is written
/// must not be left unstaged by a short S3 brownout. Each try picks up where the last one stopped.
async fn submit_riding_out(deps: &Deps, upload: &Upload) -> Result<Submitted, StepError> {
    let started = std::time::Instant::now();
    let budget = std::time::Duration::from_secs(deps.config.submit_retry_seconds);
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        // Boxed: the step's future is deep enough to exceed the compiler's layout depth inside the runtime's.
        match Box::pin(submit_object(deps, upload)).await {
            Err(StepError::Transient(why)) if started.elapsed() + delay < budget => {
                tracing::warn!(key = %upload.key, error = %why, "transient trouble: trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

async fn submit_object(deps: &Deps, upload: &Upload) -> Result<Submitted, StepError> {
    let bucket = &upload.bucket;
    let key = upload.key.clone();
    if let Some(event) = upload
        .event_name
        .as_deref()
        .filter(|e| !e.starts_with("ObjectCreated:"))
    {
        return Ok(Submitted::Ignored {
            key,
            why: format!("{} is not an upload", crate::error::shown(event, SHOWN_BYTES)),
        });
    }
    if let Some(batch_id) = layout::cancelled_batch(&key) {
        return cancel_batch(deps, batch_id).await;
    }
    if !key.starts_with(layout::INBOX_PREFIX) || !key.ends_with(layout::INBOX_SUFFIX) {
        return Ok(Submitted::Ignored {
            key,
            why: format!(
                "only {}…{} objects are batches",
                layout::INBOX_PREFIX,
                layout::INBOX_SUFFIX
            ),
        });
    }
    let version = layout::upload_version(
        upload.version_id.as_deref(),
        upload.e_tag.as_deref(),
        upload.sequencer.as_deref(),
    );
    let batch_id = layout::batch_id(bucket, &key, version);
    let config = &deps.config;
    let (batch_model, model_note) = folder_model(&key, &config.default_model);

    // The batch exists before anything is staged or any job created: claim its id atomically. A failed
    // read is an error (Lambda retries the event), never taken for "no batch".
    let existing = read_batch(deps, &batch_id).await?;
    let staged = match &existing {
        Some(s) if s.doc.status.is_terminal() || s.doc.bedrock.execution_arn.is_some() => {
            tracing::info!(%batch_id, %key, "duplicate event: the batch exists already");
            return Ok(Submitted::Duplicate { batch_id });
        }
        Some(s) => {
            tracing::info!(%batch_id, %key, staged = s.doc.bedrock.staged, "resuming a batch an earlier delivery left unfinished");
            s.doc.bedrock.staged.then(|| s.doc.clone())
        }
        None => {
            let mut doc = BatchDoc::new(
                &batch_id,
                &layout::s3_uri(bucket, &key),
                now(),
                config.job_timeout_hours,
            );
            doc.model = batch_model.as_ref().map(|m| m.id.clone());
            doc.metadata.insert("source_key".into(), key.clone());
            doc.metadata.insert("source_version".into(), version.to_string());
            let claim = claim_token();
            doc.bedrock.claim = Some(claim.clone());
            // A refused claim is another delivery's, unless it is this one's whose answer was lost (the
            // write went through, the SDK retried it, and the retry found the object).
            if !create_batch(deps, &doc).await?
                && read_batch(deps, &batch_id).await?.and_then(|s| s.doc.bedrock.claim) != Some(claim)
            {
                tracing::info!(%batch_id, %key, "duplicate event: another delivery claimed the batch first");
                return Ok(Submitted::Duplicate { batch_id });
            }
            None
        }
    };
    let doc = match staged {
        Some(doc) => doc,
        None => stage(deps, upload, &key, &batch_id, batch_model, model_note).await?,
    };

    let execution_arn = start_execution(deps, &batch_id).await?;
    let doc_after = update_batch(deps, &batch_id, |d| {
        if d.bedrock.execution_arn.is_none() {
            d.bedrock.execution_arn = Some(execution_arn.clone());
        }
    })
    .await?;
    let jobs = doc_after.bedrock.jobs.len();
    let rejected = doc.bedrock.rejected;
    let accepted = doc.request_counts.total.saturating_sub(rejected);
    tracing::info!(%batch_id, jobs, accepted, rejected, "batch submitted");
    Ok(Submitted::Started {
        batch_id,
        jobs,
        accepted,
        rejected,
    })
}

async fn cancel_batch(deps: &Deps, batch_id: &str) -> Result<Submitted, StepError> {
    Ok(match super::cancel::cancel(deps, batch_id).await? {
        Cancelled::Cancelling { batch_id, stopping } => Submitted::Cancelling { batch_id, stopping },
        Cancelled::Finished { batch_id } => Submitted::CancelIgnored {
            batch_id,
            why: "the batch has ended already".into(),
        },
        Cancelled::Unknown { batch_id } => Submitted::CancelIgnored {
            batch_id,
            why: "no batch has this id".into(),
        },
    })
}

/// Validates and translates every line, plans the jobs, writes the record map and every Bedrock input
/// file, then records the plan in batch.json (`staged`). Running it twice for one object version writes
/// the same files: translation and planning depend on the input alone.
async fn stage(
    deps: &Deps,
    upload: &Upload,
    key: &str,
    batch_id: &str,
    batch_model: Option<BedrockModel>,
    model_note: Option<String>,
) -> Result<BatchDoc, StepError> {
    let config = &deps.config;
    let bucket = &upload.bucket;
    let dir = scratch_dir(config, batch_id, "submit")?;
    let input = dir.join("input.jsonl");
    s3::download(&deps.s3, bucket, key, upload.version_id.as_deref(), &input).await?;

    let mut translator = Translator::new(config.policy.clone(), batch_model);
    translate::scan_duplicates(
        BufReader::with_capacity(256 * 1024, File::open(&input)?),
        &mut translator,
        Some(dir.clone()),
        translate::SCAN_BUDGET,
    )?;
    let mut sink = LocalSink::new(&dir)?;
    let report = translate::translate(
        BufReader::new(File::open(&input)?),
        &mut translator,
        batch_id,
        &mut sink,
    )?;
    let models = translator.models().to_vec();
    let groups = sink.finish()?;

    // Plan each model group; a group that cannot run has its lines rejected, each saying why.
    let mut jobs = Vec::new();
    let mut assignment: HashMap<String, GroupPlan> = HashMap::new();
    for (g, model) in models.iter().enumerate() {
        let Some(group) = groups.get(g).and_then(Option::as_ref) else {
            continue;
        };
        match plan_group(
            &model.id,
            &group.records.sizes,
            &group.records.continues_line,
            &config.limits_for(model),
        ) {
            Ok(chunks) => {
                let first_job = jobs.len();
                for chunk in &chunks {
                    let index = jobs.len();
                    jobs.push(Job::from_chunk(
                        index,
                        model,
                        chunk,
                        (
                            layout::job_name(batch_id, index),
                            layout::client_request_token(batch_id, index),
                        ),
                        (
                            layout::s3_uri(&config.input_bucket, &layout::job_input_key(batch_id, index)),
                            layout::s3_uri(&config.output_bucket, &layout::bedrock_output_prefix(batch_id)),
                        ),
                    ));
                }
                assignment.insert(
                    model.id.clone(),
                    GroupPlan::Jobs {
                        first_job,
                        chunks,
                        seen: 0,
                    },
                );
            }
            Err(why) => {
                assignment.insert(model.id.clone(), GroupPlan::Rejected(why.to_string()));
            }
        }
    }

    // The final record map, with each record's job, uploaded before any job can start.
    let map_path = dir.join("record-map.jsonl");
    let below_minimum = rewrite_map(&sink.map_path, &map_path, &mut assignment)?;
    s3::upload(
        &deps.s3,
        &config.input_bucket,
        &layout::record_map_key(batch_id),
        &map_path,
        "application/jsonl",
    )
    .await?;

    // One Bedrock input file per job, cut from the model's local file.
    for (g, model) in models.iter().enumerate() {
        let (Some(group), Some(GroupPlan::Jobs { first_job, chunks, .. })) =
            (groups.get(g).and_then(Option::as_ref), assignment.get(&model.id))
        else {
            continue;
        };
        let mut records = Lines::new(BufReader::new(File::open(&group.path)?));
        for (i, chunk) in chunks.iter().enumerate() {
            let index = first_job + i;
            let path = dir.join(format!("job-{index}.jsonl"));
            let mut out = BufWriter::new(File::create(&path)?);
            for _ in 0..chunk.records {
                let Some((_, line)) = records.next_line()? else {
                    return Err(StepError::Fatal(format!(
                        "{}: fewer records than planned",
                        group.path.display()
                    )));
                };
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            drop(out);
            let key = layout::job_input_key(batch_id, index);
            s3::upload(&deps.s3, &config.input_bucket, &key, &path, "application/jsonl").await?;
            std::fs::remove_file(&path)?;
        }
    }

    let mut errors: Vec<(String, String)> = Vec::new();
    if let Some(note) = &model_note {
        errors.push(("unsupported_model".into(), note.clone()));
    }
    for (g, model) in models.iter().enumerate() {
        if let Some(GroupPlan::Rejected(why)) = assignment.get(&model.id) {
            if groups.get(g).is_some_and(Option::is_some) {
                errors.push((Reason::BelowMinimum.as_str().to_string(), why.clone()));
            }
        }
    }
    let rejected = report.rejected + below_minimum.lines;
    let now = now();
    let doc = update_batch(deps, batch_id, |d| {
        if d.bedrock.staged || d.status.is_terminal() {
            return;
        }
        d.request_counts.total = report.lines;
        d.request_counts.failed = rejected;
        d.bedrock.rejected = rejected;
        for (code, message) in &errors {
            d.add_error(code, message);
        }
        d.bedrock.jobs = jobs.clone();
        d.bedrock.staged = true;
        let status = d.running_status();
        d.set_status(status, now);
    })
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(doc)
}

/// docs/configuration.md#choosing-the-model: the folder names the batch model when it names a Bedrock model. A folder
/// naming a model batchdrop cannot use leaves the batch without a model (each line says so) rather than
/// silently running another one.
fn folder_model(key: &str, default: &BedrockModel) -> (Option<BedrockModel>, Option<String>) {
    match layout::folder_model(key).map(model::classify) {
        Some(ModelName::Supported(m)) => (Some(m), None),
        Some(ModelName::Unsupported(why)) => (
            None,
            Some(format!("the folder names a model batchdrop cannot use: {why}")),
        ),
        Some(ModelName::Foreign) | None => (Some(default.clone()), None),
    }
}

/// Starts the batch's execution, named after the batch id: a second start of the same batch is refused,
/// never run twice (and without a name moto names every execution "None"). When an execution of that name
/// exists already, it is the batch's if it still runs; one that has ended while batch.json is not terminal
/// (stopped by hand, timed out) is followed by a fresh one, `<batch-id>-r<n>`, that picks the batch up
/// where batch.json left it.
async fn start_execution(deps: &Deps, batch_id: &str) -> Result<String, StepError> {
    let Some(machine) = &deps.config.state_machine_arn else {
        return Err(StepError::Fatal("STATE_MACHINE_ARN is not set".into()));
    };
    let input = serde_json::to_string(&CheckInput::new(batch_id))?;
    for generation in 1..=MAX_EXECUTIONS {
        let name = if generation == 1 {
            batch_id.to_string()
        } else {
            format!("{batch_id}-r{generation}")
        };
        match deps
            .sfn
            .start_execution()
            .state_machine_arn(machine)
            .name(&name)
            .input(&input)
            .send()
            .await
        {
            Ok(out) => return Ok(out.execution_arn().to_string()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(StartExecutionError::ExecutionAlreadyExists(_))
                ) =>
            {
                let arn = format!("{}:{name}", machine.replacen(":stateMachine:", ":execution:", 1));
                let described = deps
                    .sfn
                    .describe_execution()
                    .execution_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| aws_error(&format!("DescribeExecution {arn}"), e))?;
                if *described.status() == ExecutionStatus::Running {
                    return Ok(arn);
                }
                let doc = super::load_batch(deps, batch_id).await?.doc;
                if doc.status.is_terminal() {
                    return Ok(doc.bedrock.execution_arn.unwrap_or(arn));
                }
                tracing::warn!(%batch_id, execution = %arn, status = described.status().as_str(), "the batch's execution ended before the batch did: starting another");
            }
            Err(e) => return Err(aws_error("StartExecution", e)),
        }
    }
    Err(StepError::Fatal(format!(
        "batch {batch_id}: {MAX_EXECUTIONS} executions ended before the batch did"
    )))
}

/// A token no other submit invocation has: the process, the time and a counter.
fn claim_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Executions one batch may have: the first, and the ones started after an execution ended early.
const MAX_EXECUTIONS: u32 = 5;

/// Where a model group's records go.
enum GroupPlan {
    Jobs {
        first_job: usize,
        chunks: Vec<Chunk>,
        seen: usize,
    },
    Rejected(String),
}

/// One model group's records on local disk, and each record's size and whether it continues the line
/// of the record before (for planning: a line's records stay in one job).
struct Group {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    records: GroupRecords,
}

/// Translation output on local disk: Lambda's ephemeral storage holds what memory must not.
struct LocalSink {
    dir: PathBuf,
    groups: Vec<Option<Group>>,
    map_path: PathBuf,
    map: BufWriter<File>,
}

impl LocalSink {
    fn new(dir: &Path) -> io::Result<Self> {
        let map_path = dir.join("record-map.raw.jsonl");
        Ok(LocalSink {
            dir: dir.to_path_buf(),
            groups: Vec::new(),
            map: BufWriter::new(File::create(&map_path)?),
            map_path,
        })
    }

    fn finish(&mut self) -> io::Result<Vec<Option<Group>>> {
        self.map.flush()?;
        let mut groups = std::mem::take(&mut self.groups);
        for g in groups.iter_mut().flatten() {
            if let Some(mut w) = g.writer.take() {
                w.flush()?;
            }
        }
        Ok(groups)
    }
}

impl Sink for LocalSink {
    fn record(&mut self, group: usize, _: &BedrockModel, record: &[u8], continues_line: bool) -> io::Result<()> {
        if self.groups.len() <= group {
            self.groups.resize_with(group + 1, || None);
        }
        if self.groups[group].is_none() {
            let path = self.dir.join(format!("group-{group}.jsonl"));
            self.groups[group] = Some(Group {
                writer: Some(BufWriter::new(File::create(&path)?)),
                path,
                records: GroupRecords::default(),
            });
        }
        if let Some(g) = &mut self.groups[group] {
            g.records.push(record.len() as u64, continues_line);
            if let Some(w) = &mut g.writer {
                w.write_all(record)?;
            }
        }
        Ok(())
    }
    fn map_entry(&mut self, entry: &[u8]) -> io::Result<()> {
        self.map.write_all(entry)
    }
    fn rejected(&mut self, _: &[u8], _: &LineError) -> io::Result<()> {
        Ok(())
    }
}

/// What [`rewrite_map`] turned into rejections: input lines, and the Bedrock records they had (an embeddings
/// line has one per text).
#[derive(Default)]
struct Rejected {
    lines: u64,
    records: u64,
}

/// Copies the record map, giving each accepted record its job, and turning the records of a group that
/// cannot run into rejections. Returns how many were rejected that way.
fn rewrite_map(from: &Path, to: &Path, plans: &mut HashMap<String, GroupPlan>) -> Result<Rejected, StepError> {
    let mut lines = Lines::new(BufReader::new(File::open(from)?));
    let mut out = BufWriter::new(File::create(to)?);
    let mut rejected = Rejected::default();
    let Some((_, header)) = lines.next_line()? else {
        return Err(StepError::Fatal("the record map has no header".into()));
    };
    let header: MapHeader = serde_json::from_slice(header)?;
    debug_assert_eq!(header.batchdrop_record_map, MAP_VERSION);
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    while let Some((_, line)) = lines.next_line()? {
        if let Some(end) = MapEnd::parse(line) {
            let counts = end?;
            serde_json::to_writer(
                &mut out,
                &MapEnd {
                    batchdrop_record_map_end: MapCounts {
                        records: counts.records.saturating_sub(rejected.records),
                        ..counts
                    },
                },
            )?;
            out.write_all(b"\n")?;
            break;
        }
        let mut entry: MapLine = serde_json::from_slice(line)?;
        let records = entry.embedding.map_or(1, |e| e.parts as usize);
        if let Some(model) = entry.model.as_deref() {
            match plans.get_mut(model) {
                Some(GroupPlan::Jobs {
                    first_job,
                    chunks,
                    seen,
                }) => {
                    let mut start = 0;
                    for (i, chunk) in chunks.iter().enumerate() {
                        if *seen < start + chunk.records {
                            entry.job = Some(*first_job + i);
                            break;
                        }
                        start += chunk.records;
                    }
                    *seen += records;
                }
                Some(GroupPlan::Rejected(why)) => {
                    rejected.lines += 1;
                    rejected.records += records as u64;
                    let message = match entry.custom_id.as_deref() {
                        Some(id) => format!("line {}, custom_id {}: {why}", entry.line, serde_json::Value::from(id)),
                        None => format!("line {}: {why}", entry.line),
                    };
                    entry.record_id = None;
                    entry.model = None;
                    entry.fingerprint = None;
                    entry.structured = None;
                    entry.embedding = None;
                    entry.rejected = Some(MapRejection {
                        code: Cow::Borrowed(Reason::BelowMinimum.as_str()),
                        param: None,
                        message: Cow::Owned(message),
                    });
                }
                None => {
                    return Err(StepError::Fatal(format!(
                        "record map line {}: model {model} was not planned",
                        entry.line
                    )))
                }
            }
        }
        serde_json::to_writer(&mut out, &entry)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(rejected)
}
