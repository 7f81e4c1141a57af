//! The finalize step: Bedrock's output back to OpenAI files, the final batch.json, and the detail of the
//! completion event. In failure mode (the state machine's Catch) it still accounts for every line.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};

use serde::{Deserialize, Serialize};

use super::{aws_error, load_batch, now, s3, save_batch, scratch_dir, Deps, StepError};
use crate::layout;
use crate::results::{self, Collector, JobStatus, JoinOptions};
use crate::status::{is_terminal_job_status, BatchUsage, CachedTokens, EventDetail};

/// The task's input. `failure` is what the state machine's Catch caught (`{"Error", "Cause"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeInput {
    pub batch_id: String,
    #[serde(default)]
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(rename = "Error", default)]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// In-memory budget for sorting results before spilling to local files.
const SORT_BUDGET: usize = 64 << 20;

pub async fn handle(deps: &Deps, input: FinalizeInput) -> Result<EventDetail, StepError> {
    let config = &deps.config;
    let mut doc = load_batch(deps, &input.batch_id).await?;
    let batch_id = doc.id.clone();
    let failed_run = input.failure.is_some();
    if let Some(f) = &input.failure {
        let why = format!("the batch failed: {}: {}", f.error, f.cause);
        tracing::error!(%batch_id, %why, "finalizing a failed batch");
        doc.add_error("batch_failed", &why);
        // Jobs still running would bill for results nobody collects: stop them, best effort.
        for job in doc
            .bedrock
            .jobs
            .iter_mut()
            .filter(|j| !is_terminal_job_status(&j.status))
        {
            if let Some(arn) = &job.job_arn {
                if let Err(e) = deps
                    .bedrock
                    .stop_model_invocation_job()
                    .job_identifier(arn)
                    .send()
                    .await
                {
                    tracing::warn!(%batch_id, job = job.index, error = %aws_error("StopModelInvocationJob", e), "could not stop job");
                }
            }
            job.status = "Failed".into();
            job.message.get_or_insert_with(|| why.clone());
        }
    }
    doc.set_status(crate::status::BatchStatus::Finalizing, now());

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
    let prefix = layout::bedrock_output_prefix(&batch_id);
    for job in &doc.bedrock.jobs {
        let Some(job_id) = job.job_id() else { continue };
        // SPEC §2.2: `<out>/<job-id>/<input file>.jsonl.out`; manifest.json.out is not a record file.
        let keys = s3::list(
            &deps.s3,
            &config.output_bucket,
            &format!("{prefix}{job_id}/"),
            ".jsonl.out",
        )
        .await?;
        for key in keys {
            let local = dir.join("bedrock-output.jsonl");
            s3::download(&deps.s3, &config.output_bucket, &key, None, &local).await?;
            collector.add(&key, BufReader::new(File::open(&local)?))?;
            std::fs::remove_file(&local)?;
        }
    }
    let collected = collector.report().clone();
    if collected.unmatched_lines > 0 {
        tracing::warn!(%batch_id, lines = collected.unmatched_lines, samples = ?collected.unmatched_samples, "Bedrock output lines tied to no record");
    }

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
            created: now(),
            status: &status_of,
        },
        &mut output,
        &mut errors,
    )?;
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

    if !failed_run {
        let failures: Vec<String> = doc
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
            doc.add_error("bedrock_job_failed", &message);
        }
    }
    doc.output_file_id = Some(layout::s3_uri(&config.output_bucket, &output_key));
    doc.error_file_id = Some(layout::s3_uri(&config.output_bucket, &errors_key));
    doc.request_counts.total = report.lines;
    doc.request_counts.completed = report.succeeded;
    doc.request_counts.failed = report.error_lines();
    let usage = BatchUsage {
        input_tokens: report.usage.prompt_tokens,
        input_tokens_details: CachedTokens {
            cached_tokens: report.usage.cached_tokens,
        },
        output_tokens: report.usage.completion_tokens,
        output_tokens_details: Default::default(),
        total_tokens: report.usage.total_tokens,
    };
    doc.usage = Some(usage);
    let status = doc.final_status(failed_run);
    doc.set_status(status, now());
    save_batch(deps, &doc).await?;
    let _ = std::fs::remove_dir_all(&dir);
    tracing::info!(%batch_id, ?status, succeeded = report.succeeded, errors = report.error_lines(), "batch finalized");

    Ok(EventDetail {
        batch_id: batch_id.clone(),
        status,
        input_file: doc.input_file_id.clone(),
        request_counts: doc.request_counts,
        usage,
        output_file: layout::s3_uri(&config.output_bucket, &output_key),
        error_file: layout::s3_uri(&config.output_bucket, &errors_key),
        batch_file: layout::s3_uri(&config.output_bucket, &layout::results_key(&batch_id, "batch.json")),
        bedrock_job_arns: doc.bedrock.jobs.iter().filter_map(|j| j.job_arn.clone()).collect(),
        error: doc
            .errors
            .as_ref()
            .and_then(|e| e.data.first())
            .map(|e| e.message.clone())
            .filter(|_| failed_run || status == crate::status::BatchStatus::Failed),
    })
}
