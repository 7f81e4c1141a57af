//! `batch.json`: the batch as an OpenAI Batch object (docs/bedrock.md#job-statuses), kept current by every step, with
//! batchdrop's own record of the Bedrock jobs beside it. And the completion event's detail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{BedrockModel, Family};
use crate::plan::Chunk;
use crate::results::JobStatus;

/// OpenAI batch statuses (docs/bedrock.md#job-statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
}

impl BatchStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchStatus::Failed | BatchStatus::Completed | BatchStatus::Expired | BatchStatus::Cancelled
        )
    }
}

/// A job that is planned but not yet created (the concurrent-jobs quota was full).
pub const QUEUED: &str = "Queued";

/// docs/bedrock.md#job-statuses: the statuses after which a job never changes.
pub fn is_terminal_job_status(status: &str) -> bool {
    matches!(
        status,
        "Completed" | "PartiallyCompleted" | "Failed" | "Stopped" | "Expired"
    )
}

/// How far along its life a job is, so that two observations of one job merge to the later one: a status
/// never moves back (docs/bedrock.md#job-statuses's lifecycle; terminal statuses rank highest).
pub fn job_status_rank(status: &str) -> u8 {
    match status {
        QUEUED => 0,
        "Submitted" => 1,
        "Validating" => 2,
        "Scheduled" => 3,
        "InProgress" => 4,
        "Stopping" => 5,
        s if is_terminal_job_status(s) => 6,
        _ => 4,
    }
}

/// docs/bedrock.md#job-statuses's mapping of one Bedrock job status to OpenAI's; "Queued" is ours (not yet created).
pub fn openai_status(bedrock: &str) -> BatchStatus {
    match bedrock {
        "Submitted" | "Validating" | QUEUED => BatchStatus::Validating,
        "Scheduled" | "InProgress" => BatchStatus::InProgress,
        "Completed" => BatchStatus::Completed,
        // PartiallyCompleted: "not all records processed in time", which is what OpenAI's expired means.
        "PartiallyCompleted" | "Expired" => BatchStatus::Expired,
        "Failed" => BatchStatus::Failed,
        "Stopping" => BatchStatus::Cancelling,
        "Stopped" => BatchStatus::Cancelled,
        _ => BatchStatus::InProgress,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedTokens {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasoningTokens {
    pub reasoning_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchUsage {
    pub input_tokens: u64,
    pub input_tokens_details: CachedTokens,
    pub output_tokens: u64,
    pub output_tokens_details: ReasoningTokens,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    pub line: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchErrors {
    pub object: String,
    pub data: Vec<BatchError>,
}

/// One Bedrock job of the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub index: usize,
    pub model: String,
    /// The family the job's records were translated for: its invocation type (Converse or InvokeModel)
    /// follows from it, not from the model catalogue at the time the job is created. batch.json written
    /// before it was kept lacks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    pub records: u64,
    /// The input lines of the job's records, when fewer than its records (an embeddings line has one record per
    /// text): the live request counts scale Bedrock's record counts to lines with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    pub bytes: u64,
    pub input_uri: String,
    pub output_uri: String,
    pub job_name: String,
    pub client_request_token: String,
    /// Set once Bedrock accepted the job.
    pub job_arn: Option<String>,
    /// A Bedrock status (docs/bedrock.md#job-statuses), or [`QUEUED`].
    pub status: String,
    /// Bedrock's message when the job failed.
    pub message: Option<String>,
    pub processed: Option<u64>,
    pub succeeded: Option<u64>,
    pub failed: Option<u64>,
    /// A create was sent but its outcome is unknown (timeout, 5xx, conflict): the job may exist. The next
    /// poll finds it by name before anything else is decided about it (docs/reliability.md).
    #[serde(default)]
    pub create_unknown: bool,
    /// The last StopModelInvocationJob failure, kept until a stop succeeds.
    #[serde(default)]
    pub stop_error: Option<String>,
    /// While the job waits for a slot in the account-wide job queue: its place in its model's queue, across
    /// every batch of the stack (1: next to start) (docs/queue.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
}

impl Job {
    pub fn from_chunk(
        index: usize,
        model: &BedrockModel,
        chunk: &Chunk,
        names: (String, String),
        uris: (String, String),
    ) -> Job {
        Job {
            index,
            model: model.id.clone(),
            family: Some(model.family),
            records: chunk.records as u64,
            lines: (chunk.lines != chunk.records).then_some(chunk.lines as u64),
            bytes: chunk.bytes,
            input_uri: uris.0,
            output_uri: uris.1,
            job_name: names.0,
            client_request_token: names.1,
            job_arn: None,
            status: QUEUED.to_string(),
            message: None,
            processed: None,
            succeeded: None,
            failed: None,
            create_unknown: false,
            stop_error: None,
            queue_position: None,
        }
    }

    /// Whether Bedrock may still be working on the job: created and not terminal.
    pub fn is_active(&self) -> bool {
        self.job_arn.is_some() && !is_terminal_job_status(&self.status)
    }

    /// The job's 12-character id, the last part of its ARN (docs/bedrock.md#creating-a-job).
    pub fn job_id(&self) -> Option<&str> {
        self.job_arn.as_deref().and_then(|a| a.rsplit('/').next())
    }

    /// The final status as far as missing records go; a job that never started counts as stopped when
    /// the batch was cancelled, and failed otherwise.
    pub fn final_status(&self) -> JobStatus {
        JobStatus::parse(&self.status).unwrap_or(JobStatus::Failed)
    }
}

/// batchdrop's own part of batch.json: what OpenAI's object has no room for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bedrock {
    pub jobs: Vec<Job>,
    /// Lines rejected before Bedrock.
    pub rejected: u64,
    pub cancel_requested: bool,
    pub execution_arn: Option<String>,
    /// The poll count, so that a restarted execution keeps its backoff.
    pub polls: u32,
    /// Who claimed the batch id: a token of the submit invocation that wrote the first batch.json, so that
    /// a claim whose answer was lost is recognised as its own.
    #[serde(default)]
    pub claim: Option<String>,
    /// Submit has written every Bedrock input file and the record map: the jobs may be created.
    #[serde(default)]
    pub staged: bool,
    /// Why the batch is failing, once the state machine took its failure path.
    #[serde(default)]
    pub failure: Option<String>,
    /// When the failure path began stopping the batch's jobs (unix seconds).
    #[serde(default)]
    pub stopping_since: Option<u64>,
    /// The poll loop's wake-up: its parked wait's task token and the wake-ups asked for (docs/wake.md).
    #[serde(default)]
    pub wake: Wake,
}

/// What wakes the poll loop between two checks (docs/wake.md). Every change is a conditional write of
/// batch.json, so a wake-up asked for while a check runs or before the loop parks is never lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    /// The task token of the loop's latest parked wait. It may be stale (the wait timed out or was woken
    /// already): sending to it is then refused, which is harmless.
    #[serde(default)]
    pub token: Option<String>,
    /// Wake-ups asked for so far: Bedrock job events of this batch and cancel markers.
    #[serde(default)]
    pub requests: u64,
    /// `requests` as the latest check found it when it began: anything above came after that check read
    /// Bedrock, so the next park wakes at once.
    #[serde(default)]
    pub seen: u64,
}

/// `results/<batch-id>/batch.json` (docs/bedrock.md#job-statuses), with `bedrock` added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchDoc {
    pub id: String,
    pub object: String,
    pub endpoint: String,
    pub input_file_id: String,
    pub completion_window: String,
    pub status: BatchStatus,
    pub created_at: u64,
    pub model: Option<String>,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub in_progress_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub finalizing_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub failed_at: Option<u64>,
    pub expired_at: Option<u64>,
    pub cancelling_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub request_counts: RequestCounts,
    pub usage: Option<BatchUsage>,
    pub errors: Option<BatchErrors>,
    pub metadata: BTreeMap<String, String>,
    pub bedrock: Bedrock,
}

impl BatchDoc {
    pub fn new(id: &str, input_uri: &str, created_at: u64, timeout_hours: u32) -> BatchDoc {
        BatchDoc {
            id: id.to_string(),
            object: "batch".to_string(),
            endpoint: crate::policy::CHAT_COMPLETIONS_URL.to_string(),
            input_file_id: input_uri.to_string(),
            completion_window: format!("{timeout_hours}h"),
            status: BatchStatus::Validating,
            created_at,
            model: None,
            output_file_id: None,
            error_file_id: None,
            in_progress_at: None,
            expires_at: Some(created_at + u64::from(timeout_hours) * 3600),
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            request_counts: RequestCounts::default(),
            usage: None,
            errors: None,
            metadata: BTreeMap::new(),
            bedrock: Bedrock::default(),
        }
    }

    /// Moves to `status`, stamping its `*_at` time the first time it is reached. A terminal status is
    /// final: nothing moves a batch back from it (docs/reliability.md, "batch.json").
    pub fn set_status(&mut self, status: BatchStatus, now: u64) {
        if self.status.is_terminal() {
            return;
        }
        let stamp = match status {
            BatchStatus::InProgress => &mut self.in_progress_at,
            BatchStatus::Finalizing => &mut self.finalizing_at,
            BatchStatus::Completed => &mut self.completed_at,
            BatchStatus::Failed => &mut self.failed_at,
            BatchStatus::Expired => &mut self.expired_at,
            BatchStatus::Cancelling => &mut self.cancelling_at,
            BatchStatus::Cancelled => &mut self.cancelled_at,
            BatchStatus::Validating => {
                self.status = status;
                return;
            }
        };
        stamp.get_or_insert(now);
        self.status = status;
    }

    /// The status while jobs run: cancelling once a cancel is asked, validating until a job is past
    /// validation, in progress after.
    pub fn running_status(&self) -> BatchStatus {
        if self.bedrock.cancel_requested {
            return BatchStatus::Cancelling;
        }
        let jobs = &self.bedrock.jobs;
        if jobs.iter().all(|j| openai_status(&j.status) == BatchStatus::Validating) {
            BatchStatus::Validating
        } else {
            BatchStatus::InProgress
        }
    }

    /// The final status once every job is terminal (docs/bedrock.md#job-statuses, for a batch of several jobs).
    pub fn final_status(&self, failed_run: bool) -> BatchStatus {
        let jobs = &self.bedrock.jobs;
        let any = |s: &[&str]| jobs.iter().any(|j| s.contains(&j.status.as_str()));
        if failed_run || jobs.is_empty() || jobs.iter().all(|j| j.status == "Failed") {
            BatchStatus::Failed
        } else if self.bedrock.cancel_requested || any(&["Stopped"]) {
            BatchStatus::Cancelled
        } else if any(&["Expired", "PartiallyCompleted"]) {
            BatchStatus::Expired
        } else {
            BatchStatus::Completed
        }
    }

    pub fn all_jobs_terminal(&self) -> bool {
        self.bedrock.jobs.iter().all(|j| is_terminal_job_status(&j.status))
    }

    pub fn add_error(&mut self, code: &str, message: &str) {
        self.errors
            .get_or_insert_with(|| BatchErrors {
                object: "list".to_string(),
                data: Vec::new(),
            })
            .data
            .push(BatchError {
                code: code.to_string(),
                message: message.to_string(),
                param: None,
                line: None,
            });
    }
}

/// The poll schedule: `initial`, then times `factor` each poll, never above `max` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    pub initial: u64,
    pub factor: f64,
    pub max: u64,
}

impl Default for Backoff {
    /// One minute, growing by half each poll, at most an hour: Bedrock's job events wake the loop at once
    /// (docs/wake.md), so this schedule is the backstop for an event that is lost.
    fn default() -> Self {
        Backoff {
            initial: 60,
            factor: 1.5,
            max: 3600,
        }
    }
}

impl Backoff {
    /// The wait before poll number `poll` (0-based).
    pub fn wait(&self, poll: u32) -> u64 {
        let grown = self.initial as f64 * self.factor.max(1.0).powi(poll.min(1000) as i32);
        (grown.min(self.max as f64).round() as u64).max(1)
    }
}

/// The detail of the `Batch Completed` / `Batch Failed` events (docs/events.md#the-detail; its schema is
/// infra/events/batch-event.schema.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDetail {
    pub batch_id: String,
    pub status: BatchStatus,
    pub input_file: String,
    pub request_counts: RequestCounts,
    pub usage: BatchUsage,
    pub output_file: String,
    pub error_file: String,
    pub batch_file: String,
    pub bedrock_job_arns: Vec<String>,
    /// Why the batch failed, when it did.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_follows_docs_bedrock_job_statuses() {
        for (bedrock, openai) in [
            ("Submitted", BatchStatus::Validating),
            ("Validating", BatchStatus::Validating),
            ("Scheduled", BatchStatus::InProgress),
            ("InProgress", BatchStatus::InProgress),
            ("Completed", BatchStatus::Completed),
            ("PartiallyCompleted", BatchStatus::Expired),
            ("Failed", BatchStatus::Failed),
            ("Stopping", BatchStatus::Cancelling),
            ("Stopped", BatchStatus::Cancelled),
            ("Expired", BatchStatus::Expired),
        ] {
            assert_eq!(openai_status(bedrock), openai, "{bedrock}");
        }
    }

    #[test]
    fn backoff_grows_to_its_maximum() {
        let b = Backoff::default();
        let waits: Vec<u64> = (0..4).map(|p| b.wait(p)).collect();
        assert_eq!(waits, vec![60, 90, 135, 203]);
        assert_eq!(b.wait(50), 3600);
        assert_eq!(b.wait(u32::MAX), 3600);
    }

    fn doc_with(statuses: &[&str]) -> BatchDoc {
        let model = match crate::model::classify("anthropic.claude-3-haiku-20240307-v1:0") {
            crate::model::ModelName::Supported(m) => m,
            other => panic!("{other:?}"),
        };
        let mut d = BatchDoc::new("b", "s3://in/inbox/f.jsonl", 0, 24);
        for (i, s) in statuses.iter().enumerate() {
            let chunk = Chunk {
                start: 0,
                records: 1,
                bytes: 1,
                lines: 1,
            };
            let mut j = Job::from_chunk(i, &model, &chunk, ("n".into(), "t".into()), ("i".into(), "o".into()));
            j.status = s.to_string();
            d.bedrock.jobs.push(j);
        }
        d
    }

    #[test]
    fn final_status_of_several_jobs() {
        assert_eq!(doc_with(&[]).final_status(false), BatchStatus::Failed);
        assert_eq!(
            doc_with(&["Completed", "Completed"]).final_status(false),
            BatchStatus::Completed
        );
        assert_eq!(
            doc_with(&["Completed", "Failed"]).final_status(false),
            BatchStatus::Completed
        );
        assert_eq!(doc_with(&["Failed", "Failed"]).final_status(false), BatchStatus::Failed);
        assert_eq!(
            doc_with(&["Completed", "PartiallyCompleted"]).final_status(false),
            BatchStatus::Expired
        );
        assert_eq!(
            doc_with(&["Stopped", "Completed"]).final_status(false),
            BatchStatus::Cancelled
        );
        assert_eq!(doc_with(&["Completed"]).final_status(true), BatchStatus::Failed);
        assert_eq!(
            doc_with(&["Queued", "InProgress"]).running_status(),
            BatchStatus::InProgress
        );
        assert_eq!(
            doc_with(&["Queued", "Validating"]).running_status(),
            BatchStatus::Validating
        );
    }
}
