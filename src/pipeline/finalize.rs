//! The finalize step: Bedrock's output back to OpenAI files, the final batch.json, and the detail of the
//! completion event. In failure mode (the state machine's Catch) it still accounts for every line. It
//! saves `finalizing` first and is safe to run again: the same files, the same ids, and a batch that is
//! already terminal only returns its detail (docs/reliability.md).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};

use serde::{Deserialize, Serialize};

use super::{jobs, load_batch, now, s3, scratch_dir, update_batch, Config, Deps, StepError};
use crate::layout;
use crate::results::{self, CollectReport, Collector, JobStatus, JoinOptions, ResultsReport};
use crate::status::{BatchDoc, BatchStatus, BatchUsage, CachedTokens, EventDetail};

/// The task's input. `failure` is what the state machine's Catch caught (`{"Error", "Cause"}`);
/// `mark_only` (with `finalize_failure`) is the last resort when finalize cannot run even in failure mode:
/// batch.json is only marked failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeInput {
    pub batch_id: String,
    #[serde(default)]
    pub failure: Option<Failure>,
    #[serde(default)]
    pub finalize_failure: Option<Failure>,
    #[serde(default)]
    pub mark_only: bool,
}

impl FinalizeInput {
    pub fn new(batch_id: &str, failure: Option<Failure>) -> FinalizeInput {
        FinalizeInput {
            batch_id: batch_id.to_string(),
            failure,
            finalize_failure: None,
            mark_only: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(rename = "Error", default)]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl Failure {
    /// One line: the error name and the function's own message when the cause is a Lambda error.
    pub fn text(&self) -> String {
        super::check::failure_text(Some(&serde_json::json!({"Error": self.error, "Cause": self.cause})))
    }
}

/// How often finalize asks Bedrock to stop a job before it leaves it to the alarm.
const STOP_ATTEMPTS: u32 = 3;

/// In-memory budget for sorting results before spilling to local files.
const SORT_BUDGET: usize = 64 << 20;

pub async fn handle(deps: &Deps, input: FinalizeInput) -> Result<EventDetail, StepError> {
    // Boxed: the step's future is deep enough to exceed the compiler's layout depth inside the runtime's.
    Box::pin(finalize(deps, input)).await
}

async fn finalize(deps: &Deps, input: FinalizeInput) -> Result<EventDetail, StepError> {
    if input.mark_only {
        return mark_failed(deps, &input).await;
    }
    let config = &deps.config;
    let stored = load_batch(deps, &input.batch_id).await?.doc;
    let batch_id = stored.id.clone();
    if stored.status.is_terminal() {
        // Run again after it finished (a retry whose first answer was lost): the same detail, nothing
        // rewritten.
        return Ok(detail_of(config, &stored));
    }
    let failed_run = input.failure.is_some();
    let why = input
        .failure
        .as_ref()
        .map(|f| format!("the batch failed: {}", f.text()));

    // Every job Bedrock has for the batch, recorded or not, is accounted for before the output is read.
    let found = jobs::find(deps, &batch_id).await?;
    let mut seen = stored.bedrock.jobs.clone();
    for stranger in jobs::merge_found(&mut seen, &found) {
        tracing::error!(%batch_id, job = %stranger.arn, "a Bedrock job of this batch that batch.json does not list: stopping it");
        if jobs::stoppable(&stranger.status) {
            jobs::stop_arn(deps, &stranger.arn).await?;
        }
    }
    for job in seen.iter_mut().filter(|j| j.is_active()) {
        match jobs::refresh(deps, job).await {
            Ok(()) => {}
            // In failure mode the failure may be this very read: go on with the listing's status.
            Err(e) if failed_run => {
                tracing::warn!(%batch_id, job = job.index, error = %e, "could not read job");
            }
            Err(e) => return Err(e),
        }
    }
    if failed_run {
        // Jobs still running would bill for results nobody collects.
        for job in seen.iter_mut().filter(|j| j.is_active()) {
            for attempt in 1..=STOP_ATTEMPTS {
                if jobs::stop(deps, &batch_id, job).await.is_ok() || attempt == STOP_ATTEMPTS {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt))).await;
            }
        }
    } else if let Some(job) = seen.iter().find(|j| j.is_active()) {
        return Err(StepError::Transient(format!(
            "job {} ({}) is still {}: finalize waits for it",
            job.index,
            job.job_arn.as_deref().unwrap_or("?"),
            job.status
        )));
    }
    let now = now();
    let doc = update_batch(deps, &batch_id, |d| {
        jobs::merge_seen(&mut d.bedrock.jobs, &seen);
        if let Some(why) = &why {
            d.bedrock.failure.get_or_insert_with(|| why.clone());
            add_error_once(d, "batch_failed", why);
        }
        d.set_status(crate::status::BatchStatus::Finalizing, now);
    })
    .await?;
    if doc.status.is_terminal() {
        return Ok(detail_of(config, &doc));
    }
    // The results' `created` is the moment finalizing began: a re-run writes the same files.
    let created = doc.finalizing_at.unwrap_or(now);

    let dir = scratch_dir(config, &batch_id, "finalize")?;
    let map = dir.join("record-map.jsonl");
    s3::download(
        &deps.s3,
        &config.input_bucket,
        &layout::record_map_key(&batch_id),
        None,
        &map,
    )
    .await?;
    let mut collector = Collector::new(SORT_BUDGET, Some(dir.clone()));
    // Kept until the join, which reads the long results again from them.
    let mut downloaded = Vec::new();
    let prefix = layout::bedrock_output_prefix(&batch_id);
    for job in &doc.bedrock.jobs {
        let Some(job_id) = job.job_id() else { continue };
        // `<out>/<job-id>/<input file>.jsonl.out`; manifest.json.out is not a record file.
        let keys = s3::list(
            &deps.s3,
            &config.output_bucket,
            &format!("{prefix}{job_id}/"),
            ".jsonl.out",
        )
        .await?;
        for key in keys {
            let local = dir.join(format!("bedrock-output-{}.jsonl", downloaded.len()));
            s3::download(&deps.s3, &config.output_bucket, &key, None, &local).await?;
            collector.add_file(&key, File::open(&local)?)?;
            downloaded.push(local);
        }
    }
    warn_collected(&batch_id, collector.report());

    let (output_path, errors_path) = (dir.join("output.jsonl"), dir.join("errors.jsonl"));
    let mut output = BufWriter::new(File::create(&output_path)?);
    let mut errors = BufWriter::new(File::create(&errors_path)?);
    let jobs = &doc.bedrock.jobs;
    let status_of = |job: Option<usize>, _: &str| {
        job.and_then(|j| jobs.get(j)).map_or(JobStatus::Failed, |j| {
            if failed_run {
                JobStatus::Failed
            } else {
                j.final_status()
            }
        })
    };
    let report = results::join(
        BufReader::new(File::open(&map)?),
        collector,
        &JoinOptions {
            created,
            status: &status_of,
        },
        &mut output,
        &mut errors,
    )?;
    for local in &downloaded {
        std::fs::remove_file(local)?;
    }
    output.flush()?;
    errors.flush()?;
    drop((output, errors));
    let output_key = layout::results_key(&batch_id, "output.jsonl");
    let errors_key = layout::results_key(&batch_id, "errors.jsonl");
    s3::upload(
        &deps.s3,
        &config.output_bucket,
        &output_key,
        &output_path,
        "application/jsonl",
    )
    .await?;
    s3::upload(
        &deps.s3,
        &config.output_bucket,
        &errors_key,
        &errors_path,
        "application/jsonl",
    )
    .await?;

    let usage = BatchUsage {
        input_tokens: report.usage.prompt_tokens,
        input_tokens_details: CachedTokens {
            cached_tokens: report.usage.cached_tokens,
        },
        output_tokens: report.usage.completion_tokens,
        output_tokens_details: Default::default(),
        total_tokens: report.usage.total_tokens,
    };
    let now = super::now();
    let doc = update_batch(deps, &batch_id, |d| {
        if d.status.is_terminal() {
            return;
        }
        if !failed_run {
            let failures: Vec<String> = d
                .bedrock
                .jobs
                .iter()
                .filter(|j| j.status == "Failed")
                .filter_map(|j| {
                    j.message
                        .as_ref()
                        .map(|m| format!("job {} ({}): {m}", j.index, j.model))
                })
                .collect();
            for message in failures {
                add_error_once(d, "bedrock_job_failed", &message);
            }
        }
        d.output_file_id = Some(layout::s3_uri(&config.output_bucket, &output_key));
        d.error_file_id = Some(layout::s3_uri(&config.output_bucket, &errors_key));
        d.request_counts.total = report.lines;
        d.request_counts.completed = report.succeeded;
        d.request_counts.failed = report.error_lines();
        d.usage = Some(usage);
        let status = d.final_status(failed_run);
        d.set_status(status, now);
    })
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    warn_joined(&batch_id, &report);
    tracing::info!(%batch_id, status = ?doc.status, succeeded = report.succeeded, errors = report.error_lines(), "batch finalized");
    Ok(detail_of(config, &doc))
}

/// Logs the Bedrock output lines that are tied to no record or cannot be read. They do not fail the
/// batch: a record whose line is unreadable gets an `unreadable_result` error line.
fn warn_collected(batch_id: &str, collected: &CollectReport) {
    if collected.unmatched_lines > 0 {
        tracing::warn!(%batch_id, lines = collected.unmatched_lines, samples = ?collected.unmatched_samples, "Bedrock output lines tied to no record");
    }
    if collected.unreadable_lines > 0 {
        tracing::warn!(%batch_id, lines = collected.unreadable_lines, records = collected.unreadable_records, samples = ?collected.unreadable_samples, "Bedrock output lines that could not be read");
    }
}

/// Logs what the join refused or could not prove. A mismatch does not fail the batch (its records are
/// `mismatched_result` error lines), but it means the record map and Bedrock's output disagree: worth
/// a look.
fn warn_joined(batch_id: &str, report: &ResultsReport) {
    if report.mismatched > 0 {
        tracing::warn!(%batch_id, records = report.mismatched, "Bedrock results that echo another request than the record map's: written as mismatched_result error lines");
    }
    if report.unreadable > 0 {
        tracing::warn!(%batch_id, records = report.unreadable, "records whose Bedrock output line could not be read: written as unreadable_result error lines");
    }
    if report.unverified > 0 {
        tracing::warn!(%batch_id, records = report.unverified, "results joined without a modelInput fingerprint to check them against");
    }
    if report.unexpected_results > 0 || report.duplicate_results > 0 {
        tracing::warn!(%batch_id, unexpected = report.unexpected_results, duplicates = report.duplicate_results, "Bedrock results for records not in the map, or for records already answered (ignored)");
    }
    if !report.unknown_stop_reasons.is_empty() {
        tracing::warn!(%batch_id, reasons = ?report.unknown_stop_reasons, "stop reasons batchdrop does not know (finish_reason stop)");
    }
}

/// The last resort of the failure path: batch.json ends failed, saying why, even though no results could
/// be written.
async fn mark_failed(deps: &Deps, input: &FinalizeInput) -> Result<EventDetail, StepError> {
    let failure = input.failure.as_ref().map(Failure::text).unwrap_or_default();
    let finalize_failure = input.finalize_failure.as_ref().map(Failure::text).unwrap_or_default();
    let now = now();
    let doc = update_batch(deps, &input.batch_id, |d| {
        if d.status.is_terminal() {
            return;
        }
        add_error_once(d, "batch_failed", &format!("the batch failed: {failure}"));
        add_error_once(
            d,
            "finalize_failed",
            &format!("no results could be written: {finalize_failure}"),
        );
        d.set_status(BatchStatus::Failed, now);
    })
    .await?;
    Ok(detail_of(&deps.config, &doc))
}

fn add_error_once(doc: &mut BatchDoc, code: &str, message: &str) {
    let known = doc
        .errors
        .as_ref()
        .is_some_and(|e| e.data.iter().any(|x| x.code == code && x.message == message));
    if !known {
        doc.add_error(code, message);
    }
}

/// The completion event's detail, from batch.json.
fn detail_of(config: &Config, doc: &BatchDoc) -> EventDetail {
    let uri = |name: &str| layout::s3_uri(&config.output_bucket, &layout::results_key(&doc.id, name));
    EventDetail {
        batch_id: doc.id.clone(),
        status: doc.status,
        input_file: doc.input_file_id.clone(),
        request_counts: doc.request_counts,
        usage: doc.usage.unwrap_or_default(),
        output_file: uri("output.jsonl"),
        error_file: uri("errors.jsonl"),
        batch_file: uri("batch.json"),
        bedrock_job_arns: doc.bedrock.jobs.iter().filter_map(|j| j.job_arn.clone()).collect(),
        error: doc
            .errors
            .as_ref()
            .and_then(|e| e.data.first())
            .map(|e| e.message.clone())
            .filter(|_| doc.status == BatchStatus::Failed),
    }
}
