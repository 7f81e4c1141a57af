//! The pipeline steps, written against the AWS SDK clients: [`submit`] (S3 event → jobs and execution),
//! [`check`] (one poll of the state machine's loop) and [`finalize`] (results, final batch.json, event
//! detail). The Lambda crates in `functions/` only build [`Deps`] and call these.

pub mod cancel;
pub mod check;
pub mod finalize;
pub mod jobs;
pub mod queue;
pub mod s3;
pub mod submit;
pub mod wake;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::layout;
use crate::model::{self, BedrockModel, ModelName};
use crate::plan::Limits;
use crate::policy::{Policy, TemperaturePolicy};
use crate::status::{Backoff, BatchDoc};

/// What a step failed on. The variant's name is the Lambda error type, which the state machine's Retry
/// and Catch match on (statemachine/batch.asl.json).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying: throttling, a 5xx, a network failure.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help: configuration, permissions, corrupt state. The batch fails, and says why.
    #[error("{0}")]
    Fatal(String),
}

impl StepError {
    /// The Lambda `errorType` the runtime reports for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            StepError::Transient(_) => "BatchdropTransientError",
            StepError::Fatal(_) => "BatchdropFatalError",
        }
    }
}

/// The Lambda runtime reports the error under this type name, which Retry and Catch match on.
impl From<StepError> for lambda_runtime::Diagnostic {
    fn from(e: StepError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for StepError {
    fn from(e: std::io::Error) -> Self {
        StepError::Fatal(format!("local file: {e}"))
    }
}

impl From<serde_json::Error> for StepError {
    fn from(e: serde_json::Error) -> Self {
        StepError::Fatal(format!("JSON: {e}"))
    }
}

/// Error codes AWS uses for "slow down" and "try again" (docs/bedrock.md#errors and S3's own).
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "InternalServerException",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "SlowDown",
    "RequestTimeout",
    // Step Functions' and AWS's common 500.
    "InternalFailure",
    // DynamoDB's (the job queue, docs/queue.md).
    "InternalServerError",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    // Another transaction is changing the item at this moment.
    "TransactionConflictException",
];

/// Sorts an SDK failure into retryable or not, keeping AWS's code and message for the reader.
pub fn aws_error<E, R>(context: &str, e: SdkError<E, R>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient_kind = matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    );
    let code = e.code().map(str::to_string);
    let message = e.message().map(str::to_string);
    let text = match (&code, &message) {
        (Some(c), Some(m)) => format!("{context}: {c}: {m}"),
        (Some(c), None) => format!("{context}: {c}"),
        _ => format!("{context}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)),
    };
    if transient_kind || code.as_deref().is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
        StepError::Transient(text)
    } else {
        StepError::Fatal(text)
    }
}

/// The deployment's settings, read once at start-up: each one, its stack parameter and its environment
/// variable are in docs/configuration.md#all-parameters.
#[derive(Debug, Clone)]
pub struct Config {
    pub input_bucket: String,
    pub output_bucket: String,
    pub state_machine_arn: Option<String>,
    pub bedrock_role_arn: String,
    pub default_model: BedrockModel,
    pub job_timeout_hours: u32,
    /// Bedrock's quotas. `min_records` is 0 unless the deployment sets one minimum for every model: see
    /// [`Config::limits_for`].
    pub limits: Limits,
    /// Jobs of one model in flight at once: for the whole account when the job queue is on
    /// (`job_queue_table`), else per batch. [`Config::job_quota`] applies `model_job_quotas` over it.
    pub max_concurrent_jobs: usize,
    /// Per-model quotas over `max_concurrent_jobs` (MODEL_JOB_QUOTAS, `model-id=N,model-id=N`).
    pub model_job_quotas: std::collections::BTreeMap<String, usize>,
    /// The account-wide job queue's DynamoDB table (docs/queue.md); unset, each batch keeps to
    /// `max_concurrent_jobs` on its own, as the CLI's tests and a stack without the table do.
    pub job_queue_table: Option<String>,
    /// How long a slot or wait of another batch is trusted before a waiting batch checks that its owner
    /// still runs (seconds).
    pub queue_reclaim_seconds: u64,
    pub backoff: Backoff,
    pub output_kms_key: Option<String>,
    pub policy: Policy,
    /// Local scratch space (Lambda's ephemeral storage).
    pub work_dir: PathBuf,
    /// How long the poll loop rides out S3 or Bedrock failures before the batch fails (seconds).
    pub outage_budget_seconds: u64,
    /// How long a planned job may wait for a Bedrock slot before its records expire (seconds).
    pub queue_timeout_seconds: u64,
    /// On the failure path, how long to wait for stopped jobs to reach Stopped (seconds).
    pub stop_wait_seconds: u64,
    /// The part of one check-jobs invocation spent on work; the rest of its Lambda timeout is margin.
    pub check_budget_seconds: u64,
    /// The check-jobs function's Lambda timeout: an invocation the state machine gave up on may run
    /// that long, so the failure path outwaits it before its last look for jobs.
    pub check_timeout_seconds: u64,
    /// How long submit keeps trying one upload through transient trouble before it fails the event.
    pub submit_retry_seconds: u64,
}

impl Config {
    /// The quotas the planner applies to `model`'s records: the deployment's minimum records per job when it
    /// sets one (MIN_RECORDS_PER_JOB above 0), else the model's own from the catalogue (docs/models.md).
    pub fn limits_for(&self, model: &BedrockModel) -> Limits {
        self.limits.for_model(model)
    }

    /// The number of jobs of `model` that may be submitted or in progress at once.
    pub fn job_quota(&self, model: &str) -> usize {
        self.model_job_quotas
            .get(model)
            .copied()
            .unwrap_or(self.max_concurrent_jobs)
    }

    /// The longest a batch can last from its claim to its last job's end: every job waits the whole
    /// queue window, then runs to Bedrock's timeout, through the longest outage and the stop wait.
    pub fn longest_batch_seconds(&self) -> u64 {
        self.queue_timeout_seconds
            + u64::from(self.job_timeout_hours) * 3600
            + self.outage_budget_seconds
            + self.stop_wait_seconds
    }
}

/// A missing or malformed setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the settings through `var` (the process environment in Lambda, a map in tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError(format!("{name} is not set")))
        };
        fn number<T: std::str::FromStr>(
            var: &dyn Fn(&str) -> Option<String>,
            name: &str,
            default: T,
        ) -> Result<T, ConfigError> {
            match var(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| ConfigError(format!("{name}={v} is not a valid number"))),
            }
        }
        let var_ref: &dyn Fn(&str) -> Option<String> = &var;
        let model_name = required("DEFAULT_MODEL")?;
        let default_model = match model::classify(&model_name) {
            ModelName::Supported(m) => m,
            ModelName::Unsupported(why) => return Err(ConfigError(format!("DEFAULT_MODEL: {why}"))),
            ModelName::Foreign => {
                return Err(ConfigError(format!(
                    "DEFAULT_MODEL: '{model_name}' is not a Bedrock model"
                )))
            }
        };
        let defaults = Limits::default();
        let limits = Limits {
            // 0 (the default): each model's minimum from the catalogue.
            min_records: number(var_ref, "MIN_RECORDS_PER_JOB", 0)?,
            max_records_per_file: number(var_ref, "MAX_RECORDS_PER_FILE", defaults.max_records_per_file)?,
            max_records_per_job: number(var_ref, "MAX_RECORDS_PER_JOB", defaults.max_records_per_job)?,
            max_file_bytes: number(var_ref, "MAX_FILE_BYTES", defaults.max_file_bytes)?,
            max_job_bytes: number(var_ref, "MAX_JOB_BYTES", defaults.max_job_bytes)?,
        };
        let backoff_default = Backoff::default();
        let backoff = Backoff {
            initial: number(var_ref, "POLL_INITIAL_SECONDS", backoff_default.initial)?,
            factor: number(var_ref, "POLL_FACTOR", backoff_default.factor)?,
            max: number(var_ref, "POLL_MAX_SECONDS", backoff_default.max)?,
        };
        let job_timeout_hours = number(var_ref, "JOB_TIMEOUT_HOURS", 24u32)?;
        if !(24..=168).contains(&job_timeout_hours) {
            return Err(ConfigError(format!(
                "JOB_TIMEOUT_HOURS={job_timeout_hours} is outside 24-168 (Bedrock's timeoutDurationInHours)"
            )));
        }
        let outage_budget_hours = number(var_ref, "OUTAGE_BUDGET_HOURS", 6u64)?;
        let queue_timeout_hours = number(var_ref, "QUEUE_TIMEOUT_HOURS", 24u64)?;
        let stop_wait_minutes = number(var_ref, "STOP_WAIT_MINUTES", 120u64)?;
        for (name, value, range) in [
            ("OUTAGE_BUDGET_HOURS", outage_budget_hours, 1..=48),
            ("QUEUE_TIMEOUT_HOURS", queue_timeout_hours, 1..=168),
            ("STOP_WAIT_MINUTES", stop_wait_minutes, 5..=1440),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError(format!(
                    "{name}={value} is outside {}-{}",
                    range.start(),
                    range.end()
                )));
            }
        }
        let check_timeout_seconds = number(var_ref, "CHECK_JOBS_TIMEOUT_SECONDS", 300u64)?.max(1);
        let check_budget_seconds =
            number(var_ref, "CHECK_BUDGET_SECONDS", check_timeout_seconds / 2)?.clamp(1, check_timeout_seconds);
        let default_max_tokens = number(var_ref, "DEFAULT_MAX_TOKENS", Policy::default().default_max_tokens)?;
        crate::request::check_max_tokens(default_max_tokens, None)
            .map_err(|why| ConfigError(format!("DEFAULT_MAX_TOKENS {why}")))?;
        let temperature = match var("TEMPERATURE_POLICY").filter(|v| !v.is_empty()) {
            None => TemperaturePolicy::default(),
            Some(v) => {
                TemperaturePolicy::parse(&v).map_err(|why| ConfigError(format!("TEMPERATURE_POLICY is {why}")))?
            }
        };
        let config = Config {
            input_bucket: required("INPUT_BUCKET")?,
            output_bucket: required("OUTPUT_BUCKET")?,
            state_machine_arn: var("STATE_MACHINE_ARN").filter(|v| !v.is_empty()),
            bedrock_role_arn: required("BEDROCK_ROLE_ARN")?,
            default_model,
            job_timeout_hours,
            limits,
            max_concurrent_jobs: number(var_ref, "MAX_CONCURRENT_JOBS", 20usize)?.max(1),
            model_job_quotas: parse_model_quotas(var("MODEL_JOB_QUOTAS").as_deref().unwrap_or(""))?,
            job_queue_table: var("JOB_QUEUE_TABLE").filter(|v| !v.is_empty()),
            queue_reclaim_seconds: number(var_ref, "QUEUE_RECLAIM_SECONDS", 300u64)?.max(1),
            backoff,
            output_kms_key: var("OUTPUT_KMS_KEY_ID").filter(|v| !v.is_empty()),
            policy: Policy {
                default_max_tokens,
                temperature,
                ..Policy::default()
            },
            work_dir: PathBuf::from(
                var("WORK_DIR")
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "/tmp".to_string()),
            ),
            outage_budget_seconds: outage_budget_hours * 3600,
            queue_timeout_seconds: queue_timeout_hours * 3600,
            stop_wait_seconds: stop_wait_minutes * 60,
            check_budget_seconds,
            check_timeout_seconds,
            submit_retry_seconds: number(var_ref, "SUBMIT_RETRY_SECONDS", 300u64)?,
        };
        // finalize reads the record map and the staged files when the last job is done: staging/ must
        // outlive the longest batch, with a day to spare (docs/reliability.md, "Bounds").
        if let Some(days) = var("STAGING_RETENTION_DAYS").filter(|v| !v.is_empty()) {
            let days: u64 = days
                .parse()
                .map_err(|_| ConfigError(format!("STAGING_RETENTION_DAYS={days} is not a valid number")))?;
            let needed = config.longest_batch_seconds() + 86_400;
            if days * 86_400 < needed {
                return Err(ConfigError(format!(
                    "STAGING_RETENTION_DAYS={days} is shorter than the longest possible batch plus a day \
                     ({} days: QUEUE_TIMEOUT_HOURS + JOB_TIMEOUT_HOURS + OUTAGE_BUDGET_HOURS + STOP_WAIT_MINUTES); \
                     staged files would expire before finalize reads them",
                    needed.div_ceil(86_400)
                )));
            }
        }
        Ok(config)
    }
}

/// MODEL_JOB_QUOTAS: `model-id=N` pairs separated by commas (spaces allowed), each N at least 1.
fn parse_model_quotas(text: &str) -> Result<std::collections::BTreeMap<String, usize>, ConfigError> {
    let mut quotas = std::collections::BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || {
            ConfigError(format!(
                "MODEL_JOB_QUOTAS: '{pair}' is not model-id=N with N at least 1"
            ))
        };
        let (model, quota) = pair.rsplit_once('=').ok_or_else(bad)?;
        let quota: usize = quota.trim().parse().map_err(|_| bad())?;
        if quota == 0 || model.trim().is_empty() {
            return Err(bad());
        }
        if !crate::model::is_valid_model_id(model.trim()) {
            return Err(ConfigError(format!(
                "MODEL_JOB_QUOTAS: '{}' is not a Bedrock model id",
                model.trim()
            )));
        }
        quotas.insert(model.trim().to_string(), quota);
    }
    Ok(quotas)
}

/// Clients and settings, built once in `main` and lent to every invocation.
pub struct Deps {
    pub s3: aws_sdk_s3::Client,
    pub bedrock: aws_sdk_bedrock::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub config: Config,
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// batch.json as read, with the ETag that a conditional write of it names.
#[derive(Debug, Clone)]
pub struct Stored {
    pub doc: BatchDoc,
    pub etag: Option<String>,
}

/// Reads `results/<batch-id>/batch.json`: `None` only when S3 says there is no such object; every other
/// failure is an error (a failed read is never taken for "no batch").
pub async fn read_batch(deps: &Deps, batch_id: &str) -> Result<Option<Stored>, StepError> {
    let key = layout::results_key(batch_id, "batch.json");
    let Some((bytes, etag)) = s3::get_bytes(&deps.s3, &deps.config.output_bucket, &key).await? else {
        return Ok(None);
    };
    let doc = serde_json::from_slice(&bytes).map_err(|e| {
        StepError::Fatal(format!(
            "s3://{}/{key} is not a batch document: {e}",
            deps.config.output_bucket
        ))
    })?;
    Ok(Some(Stored { doc, etag }))
}

/// Reads batch.json, which must exist.
pub async fn load_batch(deps: &Deps, batch_id: &str) -> Result<Stored, StepError> {
    read_batch(deps, batch_id).await?.ok_or_else(|| {
        StepError::Fatal(format!(
            "s3://{}/{} does not exist",
            deps.config.output_bucket,
            layout::results_key(batch_id, "batch.json")
        ))
    })
}

/// Claims a batch id: writes its first batch.json only if none exists (`If-None-Match: *`). `false`
/// when another delivery of the same event claimed it first.
pub async fn create_batch(deps: &Deps, doc: &BatchDoc) -> Result<bool, StepError> {
    Ok(put_batch(deps, doc, s3::Precondition::Absent).await?.is_some())
}

/// A conditional write of batch.json: its new ETag, or `None` when the condition did not hold.
async fn put_batch(deps: &Deps, doc: &BatchDoc, condition: s3::Precondition<'_>) -> Result<Option<String>, StepError> {
    let body = serde_json::to_vec_pretty(doc)?;
    let key = layout::results_key(&doc.id, "batch.json");
    s3::put_if(
        &deps.s3,
        &deps.config.output_bucket,
        &key,
        body,
        "application/json",
        condition,
    )
    .await
}

/// How often [`update_batch`] re-reads and re-applies after losing a race before it reports trouble.
const UPDATE_ATTEMPTS: u32 = 12;

/// Changes batch.json by `change`, written only over the version read (`If-Match` on its ETag); a lost
/// race re-reads the document and applies `change` again, so concurrent writers (a retried submit, a
/// cancel, a check-jobs invocation the state machine gave up on) never overwrite each other. A terminal
/// batch keeps its status ([`BatchDoc::set_status`]). Returns the document as written (or as found, when
/// `change` changed nothing).
pub async fn update_batch(
    deps: &Deps,
    batch_id: &str,
    mut change: impl FnMut(&mut BatchDoc),
) -> Result<BatchDoc, StepError> {
    let key = layout::results_key(batch_id, "batch.json");
    for attempt in 0..UPDATE_ATTEMPTS {
        let Stored { mut doc, etag } = load_batch(deps, batch_id).await?;
        let before = doc.clone();
        change(&mut doc);
        if doc == before {
            return Ok(doc);
        }
        let Some(etag) = etag else {
            return Err(StepError::Transient(format!(
                "s3://{}/{key} came back without an ETag",
                deps.config.output_bucket
            )));
        };
        if put_batch(deps, &doc, s3::Precondition::Matches(&etag)).await?.is_some() {
            return Ok(doc);
        }
        tracing::info!(%batch_id, attempt, "batch.json changed meanwhile: reading it again");
        tokio::time::sleep(std::time::Duration::from_millis(20 + jitter(u64::from(attempt) * 40))).await;
    }
    Err(StepError::Transient(format!(
        "s3://{}/{key} kept changing under {UPDATE_ATTEMPTS} attempts to update it",
        deps.config.output_bucket
    )))
}

/// A pseudo-random delay below `max_ms` milliseconds, so that racing writers spread out.
fn jitter(max_ms: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) % max_ms.max(1)
}

/// A scratch folder for one batch, emptied first: a warm Lambda may have run this batch before.
pub fn scratch_dir(config: &Config, batch_id: &str, step: &str) -> Result<PathBuf, StepError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TURN: AtomicU64 = AtomicU64::new(0);
    // One folder per invocation: two invocations for one batch (a duplicated event, a retry racing the
    // invocation it replaces) never share one, even where they share a disk (the local stack).
    let name = format!(
        "batchdrop-{step}-{batch_id}-{}-{}",
        std::process::id(),
        TURN.fetch_add(1, Ordering::Relaxed)
    );
    let dir = config.work_dir.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A step as a Lambda function (each `functions/<name>/src/main.rs`): the settings read and the clients built
/// once at start-up, then every invocation's payload handed to `step` with them. A [`StepError`] becomes the
/// Lambda error type BatchdropTransientError or BatchdropFatalError, which the state machine retries or
/// catches.
pub async fn serve<E, O, F, Fut>(step: F) -> Result<(), lambda_runtime::Error>
where
    E: serde::de::DeserializeOwned,
    O: serde::Serialize,
    F: Fn(&'static Deps, E) -> Fut,
    Fut: std::future::Future<Output = Result<O, StepError>>,
{
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = aws_config::load_from_env().await;
    // The deployment's own catalogue comes first: every model id in the settings is looked up in it.
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(key) = env(MODEL_CATALOGUE_KEY) {
        let bucket = env("INPUT_BUCKET").ok_or_else(|| ConfigError("INPUT_BUCKET is not set".into()))?;
        let dir = PathBuf::from(env("WORK_DIR").unwrap_or_else(|| "/tmp".to_string()));
        let path = fetch_catalogue(&aws_sdk_s3::Client::new(&sdk), &bucket, &key, &dir)
            .await
            .map_err(ConfigError)?;
        crate::catalogue::init(Some(&path)).map_err(ConfigError)?;
    }
    let config = Config::from_vars(|name| std::env::var(name).ok())?;
    // Built once and kept for the life of the process, which is the life of the Lambda sandbox.
    let deps: &'static Deps = Box::leak(Box::new(Deps::new(&sdk, config)));
    lambda_runtime::run(lambda_runtime::service_fn(|event: lambda_runtime::LambdaEvent<E>| {
        step(deps, event.payload)
    }))
    .await
}

/// The setting that names a model catalogue file of the deployment's own in the input bucket (docs/models.md,
/// "Adding a model"); unset, the functions use the built-in catalogue.
pub const MODEL_CATALOGUE_KEY: &str = "MODEL_CATALOGUE_KEY";

/// Downloads the deployment's model catalogue file `s3://bucket/key` into `dir` and checks it, before anything
/// reads a model fact; returns where it is. Every function reads the same file once, at start-up, so a change
/// to it reaches new function instances only (docs/models.md).
pub async fn fetch_catalogue(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, dir: &Path) -> Result<PathBuf, String> {
    let what = format!("{MODEL_CATALOGUE_KEY}: the model catalogue file s3://{bucket}/{key}");
    std::fs::create_dir_all(dir).map_err(|e| format!("{what}: cannot make {}: {e}", dir.display()))?;
    let path = dir.join("batchdrop-models.json");
    s3::download(s3, bucket, key, None, &path)
        .await
        .map_err(|e| format!("{what} cannot be read: {e}"))?;
    crate::catalogue::Catalogue::with_file(&path).map_err(|why| format!("{what} is not valid: {why}"))?;
    Ok(path)
}

impl Deps {
    /// Clients from one SDK configuration. Endpoints come from the environment as the SDK reads them
    /// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_BEDROCK`, …), which is how the local stack points them at
    /// 127.0.0.1.
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Deps {
        Deps {
            s3: aws_sdk_s3::Client::new(sdk),
            bedrock: aws_sdk_bedrock::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            config,
        }
    }
}
