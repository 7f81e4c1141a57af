//! The check-jobs step: one turn of the state machine's poll loop (DESIGN.md "The flow").
//!
//! Reads every job's status from Bedrock, creates queued jobs when slots free up, honours a cancel
//! request, keeps batch.json current, and says whether every job is done and how long to wait next.

use aws_sdk_bedrock::operation::create_model_invocation_job::CreateModelInvocationJobError;
use aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobError;
use aws_sdk_bedrock::operation::stop_model_invocation_job::StopModelInvocationJobError;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig, ModelInvocationJobS3InputDataConfig,
    ModelInvocationJobS3OutputDataConfig, S3InputFormat, Tag,
};
use serde::{Deserialize, Serialize};

use super::{aws_error, load_batch, now, s3, save_batch, Deps, StepError};
use crate::layout;
use crate::status::{is_terminal_job_status, BatchDoc, Job, QUEUED};

/// The task's input: the state of the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInput {
    pub batch_id: String,
}

/// The task's output: read by the "All Jobs Done?" choice and the next Wait's `SecondsPath`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutput {
    pub batch_id: String,
    pub all_done: bool,
    pub wait_seconds: u64,
}

pub async fn handle(deps: &Deps, input: CheckInput) -> Result<CheckOutput, StepError> {
    let mut doc = load_batch(deps, &input.batch_id).await?;
    let cancel_key = layout::cancel_key(&doc.id);
    if !doc.bedrock.cancel_requested && s3::exists(&deps.s3, &deps.config.input_bucket, &cancel_key).await? {
        tracing::info!(batch_id = %doc.id, "cancel requested");
        doc.bedrock.cancel_requested = true;
    }
    for i in 0..doc.bedrock.jobs.len() {
        refresh_job(deps, &mut doc.bedrock.jobs[i], doc.bedrock.cancel_requested).await?;
    }
    if doc.bedrock.cancel_requested {
        for job in doc.bedrock.jobs.iter_mut().filter(|j| j.status == QUEUED) {
            job.status = "Stopped".into();
            job.message = Some("The batch was cancelled before this job was created.".into());
        }
    } else {
        create_queued_jobs(deps, &mut doc).await?;
    }
    update_counts(&mut doc);
    let all_done = doc.all_jobs_terminal();
    if !all_done {
        doc.set_status(doc.running_status(), now());
    }
    let wait_seconds = deps.config.backoff.wait(doc.bedrock.polls);
    doc.bedrock.polls = doc.bedrock.polls.saturating_add(1);
    save_batch(deps, &doc).await?;
    Ok(CheckOutput {
        batch_id: doc.id,
        all_done,
        wait_seconds,
    })
}

/// Live request counts: records answered and failed so far, plus the lines rejected at submit.
fn update_counts(doc: &mut BatchDoc) {
    let jobs = &doc.bedrock.jobs;
    doc.request_counts.completed = jobs.iter().filter_map(|j| j.succeeded).sum();
    doc.request_counts.failed = doc.bedrock.rejected + jobs.iter().filter_map(|j| j.failed).sum::<u64>();
}

async fn refresh_job(deps: &Deps, job: &mut Job, cancel: bool) -> Result<(), StepError> {
    let Some(arn) = job.job_arn.clone() else {
        return Ok(());
    };
    if is_terminal_job_status(&job.status) {
        return Ok(());
    }
    let out = match deps
        .bedrock
        .get_model_invocation_job()
        .job_identifier(&arn)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetModelInvocationJobError::ResourceNotFoundException(_))
            ) =>
        {
            job.status = "Failed".into();
            job.message = Some(format!("Bedrock no longer knows job {arn}"));
            return Ok(());
        }
        Err(e) => return Err(aws_error(&format!("GetModelInvocationJob {arn}"), e)),
    };
    if let Some(status) = out.status() {
        job.status = status.as_str().to_string();
    }
    job.message = out.message().map(str::to_string).or(job.message.take());
    let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
    job.processed = count(out.processed_record_count()).or(job.processed);
    job.succeeded = count(out.success_record_count()).or(job.succeeded);
    job.failed = count(out.error_record_count()).or(job.failed);
    if cancel
        && matches!(
            job.status.as_str(),
            "Submitted" | "Validating" | "Scheduled" | "InProgress"
        )
    {
        match deps
            .bedrock
            .stop_model_invocation_job()
            .job_identifier(&arn)
            .send()
            .await
        {
            Ok(_) => job.status = "Stopping".into(),
            // SPEC §1.5: Conflict means the job reached a final state meanwhile; the next poll reads it.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(StopModelInvocationJobError::ConflictException(_))
                ) => {}
            Err(e) => return Err(aws_error(&format!("StopModelInvocationJob {arn}"), e)),
        }
    }
    Ok(())
}

/// Creates queued jobs while the batch has fewer than the concurrency limit running per model. A full
/// account quota (ServiceQuotaExceededException) or throttling leaves the job queued for the next poll;
/// a request Bedrock refuses outright fails that job, and its records become error lines.
pub async fn create_queued_jobs(deps: &Deps, doc: &mut BatchDoc) -> Result<(), StepError> {
    let config = &deps.config;
    let mut quota_full: Vec<String> = Vec::new();
    for i in 0..doc.bedrock.jobs.len() {
        let job = &doc.bedrock.jobs[i];
        if job.status != QUEUED || quota_full.contains(&job.model) {
            continue;
        }
        let active = doc
            .bedrock
            .jobs
            .iter()
            .filter(|j| j.model == job.model && j.job_arn.is_some() && !is_terminal_job_status(&j.status))
            .count();
        if active >= config.max_concurrent_jobs {
            continue;
        }
        let request = build_create(deps, &doc.id, job)?;
        let job = &mut doc.bedrock.jobs[i];
        match request.send().await {
            Ok(out) => {
                job.job_arn = Some(out.job_arn().to_string());
                job.status = "Submitted".into();
                tracing::info!(batch_id = %doc.id, job = job.index, arn = out.job_arn(), "job created");
            }
            Err(e) => {
                let service = e.as_service_error();
                if matches!(
                    service,
                    Some(CreateModelInvocationJobError::ServiceQuotaExceededException(_))
                        | Some(CreateModelInvocationJobError::ThrottlingException(_))
                        | Some(CreateModelInvocationJobError::InternalServerException(_))
                ) || service.is_none()
                {
                    tracing::warn!(batch_id = %doc.id, job = job.index, error = %aws_sdk_bedrock::error::DisplayErrorContext(&e), "job stays queued");
                    quota_full.push(job.model.clone());
                    continue;
                }
                let err = aws_error("CreateModelInvocationJob", e);
                tracing::error!(batch_id = %doc.id, job = job.index, error = %err, "job refused");
                job.status = "Failed".into();
                job.message = Some(err.to_string());
            }
        }
    }
    Ok(())
}

type CreateRequest =
    aws_sdk_bedrock::operation::create_model_invocation_job::builders::CreateModelInvocationJobFluentBuilder;

fn build_create(deps: &Deps, batch_id: &str, job: &Job) -> Result<CreateRequest, StepError> {
    let config = &deps.config;
    let invalid =
        |e: aws_sdk_bedrock::error::BuildError| StepError::Fatal(format!("CreateModelInvocationJob request: {e}"));
    let input = ModelInvocationJobS3InputDataConfig::builder()
        .s3_uri(&job.input_uri)
        .s3_input_format(S3InputFormat::Jsonl)
        .build()
        .map_err(invalid)?;
    let output = ModelInvocationJobS3OutputDataConfig::builder()
        .s3_uri(&job.output_uri)
        .set_s3_encryption_key_id(config.output_kms_key.clone())
        .build()
        .map_err(invalid)?;
    let tag = Tag::builder()
        .key("batchdrop:batch-id")
        .value(batch_id)
        .build()
        .map_err(invalid)?;
    Ok(deps
        .bedrock
        .create_model_invocation_job()
        .job_name(&job.job_name)
        .client_request_token(&job.client_request_token)
        .role_arn(&config.bedrock_role_arn)
        .model_id(&job.model)
        .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(input))
        .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(output))
        .timeout_duration_in_hours(i32::try_from(config.job_timeout_hours).unwrap_or(24))
        .tags(tag))
}
