//! A batch's Bedrock jobs: creating one so that its outcome is never guessed, finding every job of a batch
//! by name (recorded in batch.json or not), reading and stopping them, and merging what was seen into
//! batch.json. check-jobs, the cancel handler and finalize all go through here (docs/reliability.md).

use aws_sdk_bedrock::operation::create_model_invocation_job::CreateModelInvocationJobError;
use aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobError;
use aws_sdk_bedrock::operation::stop_model_invocation_job::StopModelInvocationJobError;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig, ModelInvocationJobS3InputDataConfig,
    ModelInvocationJobS3OutputDataConfig, S3InputFormat, Tag,
};

use super::{aws_error, Deps, StepError};
use crate::status::{is_terminal_job_status, job_status_rank, Job, QUEUED};

/// The tag every job carries, whose value is its batch id.
pub const BATCH_TAG: &str = "batchdrop:batch-id";

/// What a CreateModelInvocationJob came to.
#[derive(Debug)]
pub enum Created {
    /// Bedrock accepted it: the job's ARN.
    Job(String),
    /// Certainly not created: the account's quota for the model is full (ServiceQuotaExceededException).
    Full(String),
    /// Certainly not created, worth trying later: throttling.
    NotYet(String),
    /// Certainly not created, and trying again cannot help (a validation or permission error).
    Refused(String),
    /// The job may or may not exist (a timeout, a lost response, a 5xx, a conflict): find it by name.
    Unknown(String),
}

/// Creates job `job` of batch `batch_id` with its deterministic name and clientRequestToken, so that a
/// repeated create (a retry, a second invocation) names the same job instead of starting another.
pub async fn create(deps: &Deps, batch_id: &str, job: &Job) -> Created {
    let request = match build_create(deps, batch_id, job) {
        Ok(r) => r,
        Err(e) => return Created::Refused(e.to_string()),
    };
    match request.send().await {
        Ok(out) => Created::Job(out.job_arn().to_string()),
        Err(e) => {
            let full = matches!(
                e.as_service_error(),
                Some(CreateModelInvocationJobError::ServiceQuotaExceededException(_))
            );
            let not_yet = matches!(
                e.as_service_error(),
                Some(CreateModelInvocationJobError::ThrottlingException(_))
            );
            let refused = matches!(
                e.as_service_error(),
                Some(
                    CreateModelInvocationJobError::ValidationException(_)
                        | CreateModelInvocationJobError::AccessDeniedException(_)
                        | CreateModelInvocationJobError::ResourceNotFoundException(_)
                )
            );
            let text = aws_error("CreateModelInvocationJob", e).to_string();
            if full {
                Created::Full(text)
            } else if not_yet {
                Created::NotYet(text)
            } else if refused {
                Created::Refused(text)
            } else {
                Created::Unknown(text)
            }
        }
    }
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
    let tag = Tag::builder().key(BATCH_TAG).value(batch_id).build().map_err(invalid)?;
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
        .set_model_invocation_type(invocation_type(job))
        .tags(tag))
}

/// `Converse` for a job whose records are Converse requests, else none (InvokeModel, Bedrock's default): by
/// the family the records were translated for, so that a catalogue changed since the batch was submitted
/// cannot send them as the other kind. Only a job from before the family was kept asks the catalogue.
fn invocation_type(job: &Job) -> Option<aws_sdk_bedrock::types::ModelInvocationType> {
    let family = job.family.or_else(|| match crate::model::classify(&job.model) {
        crate::model::ModelName::Supported(m) => Some(m.family),
        _ => None,
    });
    (family == Some(crate::model::Family::Converse)).then_some(aws_sdk_bedrock::types::ModelInvocationType::Converse)
}

/// One Bedrock job of a batch, as ListModelInvocationJobs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The job's index in the batch, from its name (`<batch-id>-job<index>`).
    pub index: Option<usize>,
    pub name: String,
    pub arn: String,
    pub status: String,
}

/// The index in a job name of this batch, or `None` for a name of another batch.
pub fn job_index(batch_id: &str, name: &str) -> Option<usize> {
    name.strip_prefix(batch_id)?.strip_prefix("-job")?.parse().ok()
}

/// Every Bedrock job of the batch, found by name: the batch id is in each job's name, and the hash in the
/// id keeps other batches' jobs out (a job of another batch whose name merely contains it is skipped).
pub async fn find(deps: &Deps, batch_id: &str) -> Result<Vec<Found>, StepError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    // Bounded: 1000 jobs a page, and a batch never has more than a few hundred jobs.
    for _ in 0..100 {
        let page = deps
            .bedrock
            .list_model_invocation_jobs()
            .name_contains(batch_id)
            .max_results(1000)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| aws_error(&format!("ListModelInvocationJobs nameContains={batch_id}"), e))?;
        for job in page.invocation_job_summaries() {
            if let Some(index) = job_index(batch_id, job.job_name()) {
                found.push(Found {
                    index: Some(index),
                    name: job.job_name().to_string(),
                    arn: job.job_arn().to_string(),
                    status: job
                        .status()
                        .map_or_else(|| "Submitted".to_string(), |s| s.as_str().to_string()),
                });
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(found);
        }
    }
    Err(StepError::Transient(format!(
        "ListModelInvocationJobs nameContains={batch_id}: more pages than a batch can have"
    )))
}

/// Merges what [`find`] saw into the batch's jobs: an ARN the batch did not know is recorded (a create
/// whose answer was lost), and a status moves forward only. Returns the jobs Bedrock has that batch.json
/// has no entry for (a corrupt or foreign document): the caller still stops them.
pub fn merge_found(jobs: &mut [Job], found: &[Found]) -> Vec<Found> {
    let mut strangers = Vec::new();
    for f in found {
        match f.index.and_then(|i| jobs.get_mut(i)) {
            Some(job) if job.job_arn.is_none() => {
                // A job the batch did not know exists: whatever was decided about it unborn (cancelled or
                // expired while queued) gives way to what Bedrock says it is.
                job.job_arn = Some(f.arn.clone());
                job.create_unknown = false;
                job.status = f.status.clone();
            }
            Some(job) if job.job_arn.as_deref() == Some(f.arn.as_str()) => {
                if advances(&job.status, &f.status) {
                    job.status = f.status.clone();
                }
            }
            _ => strangers.push(f.clone()),
        }
    }
    strangers
}

/// Whether a job at status `from` may move to `to`.
pub fn advances(from: &str, to: &str) -> bool {
    !is_terminal_job_status(from) && job_status_rank(to) > job_status_rank(from)
}

/// Reads one job's status and counts from Bedrock into `job`.
pub async fn refresh(deps: &Deps, job: &mut Job) -> Result<(), StepError> {
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
        if advances(&job.status, status.as_str()) || job.status == status.as_str() {
            job.status = status.as_str().to_string();
        }
    }
    job.message = out.message().map(str::to_string).or(job.message.take());
    let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
    job.processed = count(out.processed_record_count()).or(job.processed);
    job.succeeded = count(out.success_record_count()).or(job.succeeded);
    job.failed = count(out.error_record_count()).or(job.failed);
    Ok(())
}

/// Statuses in which Bedrock may still be working and a stop takes effect (docs/bedrock.md#listing-and-stopping-jobs).
pub fn stoppable(status: &str) -> bool {
    matches!(status, "Submitted" | "Validating" | "Scheduled" | "InProgress")
}

/// Asks Bedrock to stop a job; a failure is logged (the JobStopFailures alarm counts these lines), kept
/// on the job, and returned so that the caller tries again on its next turn.
pub async fn stop(deps: &Deps, batch_id: &str, job: &mut Job) -> Result<(), StepError> {
    let Some(arn) = job.job_arn.clone() else {
        return Ok(());
    };
    if !stoppable(&job.status) {
        return Ok(());
    }
    match stop_arn(deps, &arn).await {
        Ok(()) => {
            job.status = "Stopping".into();
            job.stop_error = None;
            Ok(())
        }
        Err(e) => {
            tracing::error!(%batch_id, job = job.index, %arn, error = %e, "could not stop job");
            job.stop_error = Some(e.to_string());
            Err(e)
        }
    }
}

/// StopModelInvocationJob; a job that already reached a final state (ConflictException) counts as done.
pub async fn stop_arn(deps: &Deps, arn: &str) -> Result<(), StepError> {
    match deps
        .bedrock
        .stop_model_invocation_job()
        .job_identifier(arn)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(StopModelInvocationJobError::ConflictException(_))
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(aws_error(&format!("StopModelInvocationJob {arn}"), e)),
    }
}

/// Merges one invocation's view of the jobs (`seen`) into the jobs of a freshly read batch.json
/// (`stored`): ARNs are added, never replaced; statuses only move forward; counts and messages follow
/// the later status. A status decided for a job no one created (cancelled or expired while queued) is
/// not applied over a job that someone else created meanwhile.
pub fn merge_seen(stored: &mut [Job], seen: &[Job]) {
    for (s, o) in stored.iter_mut().zip(seen) {
        if s.job_arn.is_none() {
            if let Some(arn) = &o.job_arn {
                // The job exists after all (created by a writer that lost the race): its status is the one
                // seen with its ARN, not one decided while it seemed unborn.
                s.job_arn = Some(arn.clone());
                s.status = o.status.clone();
                s.message = o.message.clone();
            }
        }
        let decided_unborn = o.job_arn.is_none() && s.job_arn.is_some();
        if !decided_unborn && advances(&s.status, &o.status) {
            s.status = o.status.clone();
            if o.message.is_some() {
                s.message = o.message.clone();
            }
        }
        s.processed = o.processed.or(s.processed);
        s.succeeded = o.succeeded.or(s.succeeded);
        s.failed = o.failed.or(s.failed);
        // This writer settled (or raised) the question from the stored value it started with.
        s.create_unknown = s.job_arn.is_none() && s.status == QUEUED && o.create_unknown;
        if o.stop_error.is_some() || o.status == "Stopping" {
            s.stop_error = o.stop_error.clone();
        }
        // The place as this writer last read the queue; none once the job left it.
        s.queue_position = if s.job_arn.is_none() && s.status == QUEUED {
            o.queue_position
        } else {
            None
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{classify, BedrockModel, Family, ModelName};
    use crate::plan::Chunk;
    use aws_sdk_bedrock::types::ModelInvocationType;

    fn model(id: &str) -> BedrockModel {
        match classify(id) {
            ModelName::Supported(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn job(of: &BedrockModel) -> Job {
        let chunk = Chunk {
            start: 0,
            records: 100,
            bytes: 1,
            lines: 100,
        };
        Job::from_chunk(0, of, &chunk, ("n".into(), "t".into()), ("i".into(), "o".into()))
    }

    #[test]
    fn the_invocation_type_follows_the_family_the_records_were_translated_for() {
        const LLAMA: &str = "meta.llama3-1-8b-instruct-v1:0";
        const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";
        let (llama, claude) = (model(LLAMA), model(CLAUDE));
        assert_eq!((llama.family, claude.family), (Family::Converse, Family::Claude));

        // A catalogue that has since dropped the model, or runs it the other way, changes nothing.
        let mut converse_job = job(&llama);
        converse_job.model = "example.model-no-catalogue-knows-v1:0".into();
        assert_eq!(invocation_type(&converse_job), Some(ModelInvocationType::Converse));
        let mut claude_job = job(&claude);
        claude_job.model = LLAMA.into();
        assert_eq!(invocation_type(&claude_job), None);

        // A job stored before the family was kept goes by the catalogue.
        let mut old = job(&llama);
        old.family = None;
        assert_eq!(invocation_type(&old), Some(ModelInvocationType::Converse));
        old.model = CLAUDE.into();
        assert_eq!(invocation_type(&old), None);
    }
}
