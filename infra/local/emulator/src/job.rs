//! A batch-inference job as the emulator stores it, and its wire shape (docs/bedrock.md#job-statuses, the Get response and the List
//! summary share it).

use serde::{Deserialize, Serialize};

use crate::clock::{self, Millis};

/// `ModelInvocationJobStatus`, spelled as in the service model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    Submitted,
    InProgress,
    Completed,
    Failed,
    Stopping,
    Stopped,
    PartiallyCompleted,
    Expired,
    Validating,
    Scheduled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 10] = [
        Self::Submitted,
        Self::InProgress,
        Self::Completed,
        Self::Failed,
        Self::Stopping,
        Self::Stopped,
        Self::PartiallyCompleted,
        Self::Expired,
        Self::Validating,
        Self::Scheduled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "Submitted",
            Self::InProgress => "InProgress",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::PartiallyCompleted => "PartiallyCompleted",
            Self::Expired => "Expired",
            Self::Validating => "Validating",
            Self::Scheduled => "Scheduled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The groupings of docs/bedrock.md#job-statuses.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::PartiallyCompleted | Self::Failed | Self::Stopped | Self::Expired
        )
    }

    /// The statuses counted against the concurrent-jobs quota (docs/bedrock.md#quotas: "in-progress and submitted").
    pub fn counts_against_concurrency(self) -> bool {
        matches!(
            self,
            Self::Submitted | Self::Validating | Self::Scheduled | Self::InProgress
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct S3InputDataConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_input_format: Option<String>,
    pub s3_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket_owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputDataConfig {
    pub s3_input_data_config: S3InputDataConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct S3OutputDataConfig {
    pub s3_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_encryption_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket_owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputDataConfig {
    pub s3_output_data_config: S3OutputDataConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VpcConfig {
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// `modelInvocationType`; `InvokeModel` when omitted (docs/bedrock.md#creating-a-job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InvocationType {
    InvokeModel,
    Converse,
}

/// A CreateModelInvocationJob request that passed validation. Its JSON form (without the token) is the
/// fingerprint that idempotency compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub job_name: String,
    pub role_arn: String,
    #[serde(skip)]
    pub client_request_token: Option<String>,
    pub model_id: String,
    pub input_data_config: InputDataConfig,
    pub output_data_config: OutputDataConfig,
    pub vpc_config: Option<VpcConfig>,
    pub timeout_duration_in_hours: Option<u32>,
    pub tags: Vec<Tag>,
    pub model_invocation_type: Option<InvocationType>,
}

/// The four record counters of the Get response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub total: u64,
    pub processed: u64,
    pub success: u64,
    pub error: u64,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub arn: String,
    /// Creation order, the tie-breaker for sorting and the anchor of list pagination.
    pub seq: u64,
    pub request: CreateRequest,
    pub status: JobStatus,
    pub message: Option<String>,
    pub submit_time: Millis,
    pub last_modified_time: Millis,
    pub end_time: Option<Millis>,
    pub timeout_hours: u32,
    /// Set once Validating has counted the records.
    pub counters: Option<Counters>,
}

impl Job {
    pub fn expiration_time(&self) -> Millis {
        self.submit_time + i64::from(self.timeout_hours) * 3_600_000
    }

    pub fn invocation_type(&self) -> InvocationType {
        self.request
            .model_invocation_type
            .unwrap_or(InvocationType::InvokeModel)
    }

    /// The Get response body, which is also the List summary item (docs/bedrock.md#job-statuses and #listing-and-stopping-jobs).
    pub fn to_wire(&self) -> JobWire<'_> {
        let r = &self.request;
        JobWire {
            job_arn: &self.arn,
            job_name: &r.job_name,
            model_id: &r.model_id,
            client_request_token: r.client_request_token.as_deref(),
            role_arn: &r.role_arn,
            status: self.status,
            message: self.message.as_deref(),
            submit_time: clock::format(self.submit_time),
            last_modified_time: clock::format(self.last_modified_time),
            end_time: self.end_time.map(clock::format),
            input_data_config: &r.input_data_config,
            output_data_config: &r.output_data_config,
            vpc_config: r.vpc_config.as_ref(),
            timeout_duration_in_hours: self.timeout_hours,
            job_expiration_time: clock::format(self.expiration_time()),
            model_invocation_type: self.invocation_type(),
            total_record_count: self.counters.map(|c| c.total),
            processed_record_count: self.counters.map(|c| c.processed),
            success_record_count: self.counters.map(|c| c.success),
            error_record_count: self.counters.map(|c| c.error),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobWire<'a> {
    pub job_arn: &'a str,
    pub job_name: &'a str,
    pub model_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<&'a str>,
    pub role_arn: &'a str,
    pub status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    pub submit_time: String,
    pub last_modified_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub input_data_config: &'a InputDataConfig,
    pub output_data_config: &'a OutputDataConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<&'a VpcConfig>,
    pub timeout_duration_in_hours: u32,
    pub job_expiration_time: String,
    pub model_invocation_type: InvocationType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_record_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_record_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_record_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_record_count: Option<u64>,
}
