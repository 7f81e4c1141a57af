//! A stack's batches as its output bucket holds them: `results/<batch-id>/batch.json`, kept current by every
//! step of the pipeline, and the results beside it once the batch has ended; cancel markers go to the input
//! bucket (docs/cli.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::operation::get_object::GetObjectError;

use super::progress::{self, Progress};
use super::{sdk_error, ClientError, Stack};
use crate::layout;
use crate::status::{BatchDoc, BatchStatus, Job};

/// A batch.json as stored, and read.
#[derive(Debug, Clone)]
pub struct Batch {
    pub doc: BatchDoc,
    /// The object as stored, for `--json`.
    pub raw: serde_json::Value,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The batch's batch.json, or `None` when the stack has none (yet).
pub async fn find(stack: &Stack, batch_id: &str) -> Result<Option<Batch>, ClientError> {
    match read(stack, batch_id).await? {
        Some((uri, bytes)) => parse(&uri, &bytes).map(Some),
        None => Ok(None),
    }
}

/// The bytes of a batch's batch.json, and its URI.
async fn read(stack: &Stack, batch_id: &str) -> Result<Option<(String, Vec<u8>)>, ClientError> {
    let key = layout::results_key(batch_id, "batch.json");
    let uri = layout::s3_uri(&stack.output_bucket, &key);
    let reply = match stack
        .s3
        .get_object()
        .bucket(&stack.output_bucket)
        .key(&key)
        .send()
        .await
    {
        Ok(reply) => reply,
        Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => return Ok(None),
        Err(e) => {
            let permission = format!("s3:GetObject on arn:aws:s3:::{}/results/*", stack.output_bucket);
            return Err(sdk_error(&format!("reading {uri}"), &permission, e));
        }
    };
    let bytes = reply
        .body
        .collect()
        .await
        .map_err(|e| ClientError(format!("reading {uri}: {e}")))?
        .into_bytes();
    Ok(Some((uri, bytes.to_vec())))
}

fn parse(uri: &str, bytes: &[u8]) -> Result<Batch, ClientError> {
    let raw: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ClientError(format!("{uri} is not JSON: {e}")))?;
    let doc: BatchDoc = serde_json::from_value(raw.clone())
        .map_err(|e| ClientError(format!("{uri} is not a batch.json this batchdrop reads: {e}")))?;
    Ok(Batch { doc, raw })
}

/// The batch's batch.json; its absence is an error that says what it may mean.
pub async fn get(stack: &Stack, batch_id: &str) -> Result<Batch, ClientError> {
    find(stack, batch_id).await?.ok_or_else(|| not_found(stack, batch_id))
}

fn not_found(stack: &Stack, batch_id: &str) -> ClientError {
    ClientError(format!(
        "no batch {batch_id} in s3://{}/results/: check the id (batchdrop list {}), or, for a file just \
         uploaded, wait: the stack picks it up within seconds (docs/troubleshooting.md)",
        stack.output_bucket, stack.flags
    ))
}

/// What the batch's lines have come to so far, and its progress from 0 to 1.
fn done(doc: &BatchDoc) -> (u64, f64) {
    let c = doc.request_counts;
    let done = c.completed + c.failed;
    let fraction = if doc.status.is_terminal() {
        1.0
    } else if c.total == 0 {
        0.0
    } else {
        done as f64 / c.total as f64
    };
    (done, fraction)
}

/// The time left at the rate Bedrock has answered so far, where its counts allow: the lines rejected before
/// Bedrock are left out of the rate, and nothing is said before a first record is counted.
pub fn time_left(doc: &BatchDoc, now: u64) -> Option<u64> {
    let since = doc.in_progress_at?;
    if doc.status != BatchStatus::InProgress {
        return None;
    }
    let c = doc.request_counts;
    let rejected = doc.bedrock.rejected.min(c.total);
    let answered = (c.completed + c.failed).saturating_sub(rejected);
    let to_answer = c.total - rejected;
    let elapsed = now.saturating_sub(since);
    if answered == 0 || elapsed == 0 || answered >= to_answer {
        return None;
    }
    Some(((to_answer - answered) as f64 * elapsed as f64 / answered as f64).ceil() as u64)
}

pub fn status_word(status: BatchStatus) -> &'static str {
    match status {
        BatchStatus::Validating => "validating",
        BatchStatus::Failed => "failed",
        BatchStatus::InProgress => "in_progress",
        BatchStatus::Finalizing => "finalizing",
        BatchStatus::Completed => "completed",
        BatchStatus::Expired => "expired",
        BatchStatus::Cancelling => "cancelling",
        BatchStatus::Cancelled => "cancelled",
    }
}

fn job_line(job: &Job) -> String {
    let counts = match (job.processed, job.succeeded, job.failed) {
        (Some(p), s, f) => format!(
            ", {} of {} records done ({} ok, {} failed)",
            progress::count(p),
            progress::count(job.records),
            progress::count(s.unwrap_or(0)),
            progress::count(f.unwrap_or(0))
        ),
        _ => format!(", {} records", progress::count(job.records)),
    };
    let message = job.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    let place = job
        .queue_position
        .map(|p| format!(", place {p} in the model's job queue"))
        .unwrap_or_default();
    format!(
        "  job {} {} {}{place}{counts}{message}",
        job.index, job.model, job.status
    )
}

/// What `status` shows of a batch: its state and counts, a bar on a terminal, and each Bedrock job.
pub fn frame(doc: &BatchDoc, now: u64, terminal: bool) -> Vec<String> {
    let c = doc.request_counts;
    let (done, fraction) = done(doc);
    let end = [doc.completed_at, doc.failed_at, doc.expired_at, doc.cancelled_at]
        .into_iter()
        .flatten()
        .max()
        .filter(|_| doc.status.is_terminal());
    let elapsed = progress::duration(end.unwrap_or(now).saturating_sub(doc.created_at));
    let left = time_left(doc, now)
        .map(|s| format!(", about {} left", progress::duration(s)))
        .unwrap_or_default();
    let mut lines = vec![format!(
        "batch {}: {}, {} {elapsed}{left}",
        doc.id,
        status_word(doc.status),
        if end.is_some() { "took" } else { "for" }
    )];
    let rejected = if doc.bedrock.rejected > 0 {
        format!(
            " ({} of them rejected before Bedrock)",
            progress::count(doc.bedrock.rejected)
        )
    } else {
        String::new()
    };
    if c.total == 0 && !doc.status.is_terminal() {
        lines.push("its lines are being read and checked".to_string());
        lines.extend(doc.bedrock.jobs.iter().map(job_line));
        return lines;
    }
    let counts = format!(
        "{} lines: {} answered, {} failed{rejected}",
        progress::count(c.total),
        progress::count(c.completed),
        progress::count(c.failed)
    );
    if terminal {
        lines.push(format!("{} {counts}", progress::bar(fraction, 30)));
    } else {
        lines.push(format!("{} of {counts}", progress::count(done)));
    }
    lines.extend(doc.bedrock.jobs.iter().map(job_line));
    lines
}

/// The lines that end a followed batch: where its results are, and why it failed if it did.
pub fn summary(doc: &BatchDoc, flags: &str) -> Vec<String> {
    let mut lines = frame(doc, now(), false);
    for e in doc.errors.iter().flat_map(|e| &e.data) {
        lines.push(format!("  error {}: {}", e.code, e.message));
    }
    if let Some(failure) = &doc.bedrock.failure {
        lines.push(format!("  failure: {failure}"));
    }
    if doc.status.is_terminal() {
        for uri in [&doc.output_file_id, &doc.error_file_id].into_iter().flatten() {
            lines.push(format!("  {uri}"));
        }
        lines.push(
            format!("download them: batchdrop fetch {} {flags}", doc.id)
                .trim_end()
                .to_string(),
        );
    }
    lines
}

/// How long `follow` waits for a batch.json to appear before it says the stack has not picked the file up.
pub const APPEAR_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads of batch.json in a row that may fail while following before `follow` gives up.
const FOLLOW_FAILURES: u32 = 5;

/// Whether a followed batch may not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appear {
    /// Just uploaded: its batch.json comes once the stack has picked the file up, within [`APPEAR_TIMEOUT`].
    Soon,
    /// Known already: no batch.json means no such batch.
    Already,
}

/// Follows a batch until it ends, showing its progress; returns its last batch.json.
pub async fn follow(
    stack: &Stack,
    batch_id: &str,
    every: Duration,
    appear: Appear,
    progress: &mut Progress,
) -> Result<Batch, ClientError> {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        let found = match find(stack, batch_id).await {
            Ok(found) => {
                failures = 0;
                found
            }
            // A read that failed (after the SDK's own retries) does not end a wait of hours at once.
            Err(e) if failures < FOLLOW_FAILURES => {
                failures += 1;
                progress.note(&format!("{e}; trying again ({failures} of {FOLLOW_FAILURES})"));
                tokio::time::sleep(every.max(Duration::from_secs(2 << failures.min(5)))).await;
                continue;
            }
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        match found {
            Some(batch) => {
                progress.show(frame(&batch.doc, now(), progress.is_terminal()));
                if batch.doc.status.is_terminal() {
                    progress.finish();
                    return Ok(batch);
                }
            }
            None if appear == Appear::Already => {
                progress.finish();
                return Err(not_found(stack, batch_id));
            }
            None if started.elapsed() > APPEAR_TIMEOUT => {
                progress.finish();
                return Err(ClientError(format!(
                    "no batch.json for {batch_id} after {} s: the stack has not picked the file up. See the \
                     submit function's log and the submit failure queue (docs/troubleshooting.md)",
                    APPEAR_TIMEOUT.as_secs()
                )));
            }
            None => progress.show(vec![format!(
                "batch {batch_id}: waiting for the stack to pick the file up ({} s)",
                started.elapsed().as_secs()
            )]),
        }
        tokio::time::sleep(every).await;
    }
}

/// The batches most recently changed, newest first by creation.
pub async fn list(stack: &Stack, limit: usize) -> Result<Vec<Batch>, ClientError> {
    let bucket = &stack.output_bucket;
    let permission = format!("s3:ListBucket on arn:aws:s3:::{bucket} (prefix results/)");
    let mut pages = stack
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("results/")
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error(&format!("listing s3://{bucket}/results/"), &permission, e))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let Some(id) = key.strip_prefix("results/").and_then(|k| k.strip_suffix("/batch.json")) else {
                continue;
            };
            if !id.contains('/') {
                let modified = object.last_modified().map_or(0, |t| t.secs());
                found.push((modified, id.to_string()));
            }
        }
    }
    found.sort_by(|a, b| b.cmp(a));
    if limit > 0 {
        found.truncate(limit);
    }
    let mut batches = Vec::with_capacity(found.len());
    for (_, id) in found {
        // A batch deleted meanwhile is left out; one whose batch.json cannot be read is named, and left out.
        if let Some((uri, bytes)) = read(stack, &id).await? {
            match parse(&uri, &bytes) {
                Ok(batch) => batches.push(batch),
                Err(e) => eprintln!("batchdrop: left out of the list: {e}"),
            }
        }
    }
    batches.sort_by(|a, b| b.doc.created_at.cmp(&a.doc.created_at).then(b.doc.id.cmp(&a.doc.id)));
    Ok(batches)
}

/// One line of `list`.
pub fn list_line(doc: &BatchDoc) -> String {
    let c = doc.request_counts;
    let source = doc.metadata.get("source_key").map(String::as_str).unwrap_or("");
    format!(
        "{}  {:<11}  {:>9} lines  {:>9} answered  {:>9} failed  {}",
        doc.id,
        status_word(doc.status),
        progress::count(c.total),
        progress::count(c.completed),
        progress::count(c.failed),
        source
    )
}

/// What `fetch` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fetched {
    pub batch_id: String,
    pub output: PathBuf,
    pub output_lines: u64,
    pub errors: PathBuf,
    pub error_lines: u64,
    pub batch_json: PathBuf,
}

/// Downloads a finished batch's output.jsonl and errors.jsonl (and its batch.json) into `dir`, and checks their
/// line counts against batch.json's request counts.
pub async fn fetch(stack: &Stack, batch_id: &str, dir: &Path) -> Result<Fetched, ClientError> {
    let batch = get(stack, batch_id).await?;
    let doc = &batch.doc;
    if !doc.status.is_terminal() {
        return Err(ClientError(format!(
            "batch {batch_id} is {}: its results are written when it ends. Follow it with batchdrop status \
             {batch_id} --watch {}",
            status_word(doc.status),
            stack.flags
        )));
    }
    let (Some(output_uri), Some(errors_uri)) = (&doc.output_file_id, &doc.error_file_id) else {
        return Err(ClientError(format!(
            "batch {batch_id} ended {} without results files; its batch.json says why: batchdrop status {batch_id} {}",
            status_word(doc.status),
            stack.flags
        )));
    };
    std::fs::create_dir_all(dir).map_err(|e| ClientError(format!("{}: {e}", dir.display())))?;
    let (output, errors, batch_json) = (
        dir.join("output.jsonl"),
        dir.join("errors.jsonl"),
        dir.join("batch.json"),
    );
    // Everything is downloaded and checked under temporary names first: a failed fetch leaves an earlier one's
    // files as they were.
    let (output_temp, output_lines) = download(stack, output_uri, dir).await?;
    let (errors_temp, error_lines) = download(stack, errors_uri, dir).await?;
    let c = doc.request_counts;
    let mismatch = |uri: &str, lines: u64, expected: u64, what: &str| {
        ClientError(format!(
            "{uri}: {lines} lines, but batch.json counts {expected} {what}: the file changed since the batch ended, \
             or the download was cut short; run fetch again (nothing was written)"
        ))
    };
    if output_lines != c.completed {
        return Err(mismatch(output_uri, output_lines, c.completed, "answered"));
    }
    if error_lines != c.failed {
        return Err(mismatch(errors_uri, error_lines, c.failed, "failed"));
    }
    let named = |path: &Path, e: std::io::Error| ClientError(format!("{}: {e}", path.display()));
    let mut batch_temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| named(dir, e))?;
    let pretty = serde_json::to_vec_pretty(&batch.raw).map_err(|e| ClientError(e.to_string()))?;
    batch_temp
        .write_all(&[pretty.as_slice(), b"\n"].concat())
        .map_err(|e| named(&batch_json, e))?;
    for (temp, path) in [
        (output_temp, &output),
        (errors_temp, &errors),
        (batch_temp, &batch_json),
    ] {
        temp.persist(path).map_err(|e| named(path, e.error))?;
    }
    Ok(Fetched {
        batch_id: batch_id.to_string(),
        output,
        output_lines,
        errors,
        error_lines,
        batch_json,
    })
}

/// Streams `s3://bucket/key` into a temporary file in `dir` and counts its lines.
async fn download(stack: &Stack, uri: &str, dir: &Path) -> Result<(tempfile::NamedTempFile, u64), ClientError> {
    let (bucket, key) = uri
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .ok_or_else(|| ClientError(format!("batch.json names {uri}, which is not an s3:// URI")))?;
    let permission = format!("s3:GetObject on arn:aws:s3:::{bucket}/results/*");
    let reply = stack
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("downloading {uri}"), &permission, e))?;
    let named = |e: std::io::Error| ClientError(format!("{}: {e}", dir.display()));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(named)?;
    let mut body = reply.body;
    let (mut lines, mut last) = (0u64, b'\n');
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ClientError(format!("downloading {uri}: {e}")))?;
        lines += memchr::memchr_iter(b'\n', &chunk).count() as u64;
        if let Some(&b) = chunk.last() {
            last = b;
        }
        temp.write_all(&chunk).map_err(named)?;
    }
    if last != b'\n' {
        lines += 1;
    }
    temp.as_file().sync_all().map_err(named)?;
    Ok((temp, lines))
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The marker is in place: the stack stops the batch's jobs.
    Requested,
    /// The batch had ended already.
    Ended(BatchStatus),
}

/// Asks the stack to cancel a batch: a marker object at `cancel/<batch-id>` in the input bucket.
pub async fn cancel(stack: &Stack, batch_id: &str) -> Result<CancelOutcome, ClientError> {
    let batch = get(stack, batch_id).await?;
    if batch.doc.status.is_terminal() {
        return Ok(CancelOutcome::Ended(batch.doc.status));
    }
    let key = layout::cancel_key(batch_id);
    let uri = layout::s3_uri(&stack.input_bucket, &key);
    stack
        .s3
        .put_object()
        .bucket(&stack.input_bucket)
        .key(&key)
        .body(Vec::new().into())
        .send()
        .await
        .map_err(|e| {
            let permission = format!("s3:PutObject on arn:aws:s3:::{}/cancel/*", stack.input_bucket);
            sdk_error(&format!("writing the cancel marker {uri}"), &permission, e)
        })?;
    Ok(CancelOutcome::Requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::RequestCounts;

    fn doc(status: BatchStatus, total: u64, completed: u64, failed: u64) -> BatchDoc {
        let mut d = BatchDoc::new("b-1", "s3://in/inbox/b.jsonl", 1_000, 24);
        d.status = status;
        d.in_progress_at = Some(1_100);
        d.request_counts = RequestCounts {
            total,
            completed,
            failed,
        };
        d
    }

    #[test]
    fn time_left_is_at_bedrocks_rate_so_far_without_the_rejected_lines() {
        let mut d = doc(BatchStatus::InProgress, 1_000, 200, 110);
        d.bedrock.rejected = 100;
        // 210 answered by Bedrock in 100 s; 690 to go.
        assert_eq!(time_left(&d, 1_200), Some(329));
        assert_eq!(
            time_left(&doc(BatchStatus::InProgress, 100, 0, 0), 1_200),
            None,
            "no rate yet"
        );
        assert_eq!(time_left(&doc(BatchStatus::Completed, 100, 100, 0), 1_200), None);
    }

    #[test]
    fn a_frame_shows_the_state_counts_and_jobs() {
        let mut d = doc(BatchStatus::InProgress, 1_000, 500, 0);
        d.bedrock.jobs.push(Job {
            processed: Some(500),
            succeeded: Some(500),
            failed: Some(0),
            status: "InProgress".into(),
            ..serde_json::from_value(serde_json::json!({
                "index": 0, "model": "m", "records": 1000, "bytes": 1, "input_uri": "", "output_uri": "",
                "job_name": "", "client_request_token": "", "job_arn": null, "status": "", "message": null,
                "processed": null, "succeeded": null, "failed": null
            }))
            .unwrap()
        });
        let terminal = frame(&d, 1_200, true);
        assert_eq!(terminal[0], "batch b-1: in_progress, for 3m 20s, about 1m 40s left");
        assert_eq!(
            terminal[1],
            "[###############---------------]  50% 1,000 lines: 500 answered, 0 failed"
        );
        assert_eq!(
            terminal[2],
            "  job 0 m InProgress, 500 of 1,000 records done (500 ok, 0 failed)"
        );
        let mut waiting = d.bedrock.jobs[0].clone();
        waiting.status = "Queued".into();
        (waiting.processed, waiting.succeeded, waiting.failed) = (None, None, None);
        waiting.queue_position = Some(7);
        assert_eq!(
            job_line(&waiting),
            "  job 0 m Queued, place 7 in the model's job queue, 1,000 records"
        );
        let plain = frame(&d, 1_200, false);
        assert_eq!(
            frame(&doc(BatchStatus::Validating, 0, 0, 0), 1_003, false),
            ["batch b-1: validating, for 3s", "its lines are being read and checked"]
        );
        assert_eq!(plain[1], "500 of 1,000 lines: 500 answered, 0 failed");
        let mut ended = doc(BatchStatus::Completed, 10, 10, 0);
        ended.completed_at = Some(1_065);
        assert_eq!(frame(&ended, 9_999, false)[0], "batch b-1: completed, took 1m 05s");
    }
}
