//! The pipeline steps against mocked AWS SDK clients (aws-smithy-mocks): an in-memory S3 built from mock
//! rules, a scripted Bedrock, and a Step Functions that remembers executions. These test each step's
//! decisions; the end-to-end tests on the local stack test the wire.
//!
//! - `happy_path_*`: submit → polls → finalize for one model, the files and batch.json at each step.
//! - `every_bedrock_status_*`: docs/bedrock.md#job-statuses mapping through check-jobs and finalize, missing-record codes.
//! - `quota_*`, `throttling_*`, `concurrency_*`: jobs stay queued and are created later.
//! - `duplicate_event_*`, `cancel_*`, `all_invalid_*`, `multi_model_*`, `below_minimum_*`, `balanced_*`,
//!   `failure_mode_*`, `config_*`.
//! - `wake_*`: the park and the wake-ups (docs/wake.md): a Bedrock job event or a cancel marker completes
//!   the parked wait, none is lost to a race, and stale, foreign or late ones change nothing.
#![cfg(feature = "aws")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_bedrock::operation::create_model_invocation_job::{
    CreateModelInvocationJobError, CreateModelInvocationJobOutput,
};
use aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput;
use aws_sdk_bedrock::operation::list_model_invocation_jobs::ListModelInvocationJobsOutput;
use aws_sdk_bedrock::operation::stop_model_invocation_job::StopModelInvocationJobOutput;
use aws_sdk_bedrock::types::error::{ServiceQuotaExceededException, ThrottlingException};
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig, ModelInvocationJobS3InputDataConfig,
    ModelInvocationJobS3OutputDataConfig, ModelInvocationJobStatus, ModelInvocationJobSummary,
};
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
use aws_sdk_s3::operation::upload_part::UploadPartOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::error::{NoSuchKey, NotFound};
use aws_sdk_s3::types::Object;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessError, SendTaskSuccessOutput};
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::types::error::{ExecutionAlreadyExists, TaskTimedOut};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use batchdrop::model::{classify, BedrockModel, ModelName};
use batchdrop::pipeline::check::{self, CheckInput};
use batchdrop::pipeline::finalize::{self, Failure, FinalizeInput};
use batchdrop::pipeline::submit::{self, SubmitEvent, Submitted};
use batchdrop::pipeline::wake::{self, JobEvent, Park, Woke};
use batchdrop::pipeline::{fetch_catalogue, Config, Deps};
use batchdrop::status::{BatchDoc, BatchStatus};
use serde_json::{json, Value};

const IN: &str = "in-bucket";
const OUT: &str = "out-bucket";
const CLAUDE: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
const NOVA: &str = "us.amazon.nova-lite-v1:0";
const STATE_MACHINE: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:batchdrop";

type Objects = Arc<Mutex<BTreeMap<(String, String), Vec<u8>>>>;
/// Uploaded parts by (upload id, part number).
type Parts = Arc<Mutex<BTreeMap<(String, i32), Vec<u8>>>>;

/// One Bedrock job as the fake knows it.
#[derive(Debug, Clone)]
struct FakeJob {
    arn: String,
    token: String,
    name: String,
    model: String,
    input_uri: String,
    status: String,
    kms_key: Option<String>,
    timeout_hours: Option<i32>,
    tags: Vec<(String, String)>,
}

#[derive(Default)]
struct BedrockState {
    jobs: Vec<FakeJob>,
    /// Errors the next creates return, in order: "quota", "throttle", "validation".
    create_errors: Vec<&'static str>,
    stops: Vec<String>,
}

struct World {
    objects: Objects,
    bedrock: Arc<Mutex<BedrockState>>,
    executions: Arc<Mutex<Vec<(String, String)>>>,
    /// Task tokens SendTaskSuccess was called with, in order, and whether Step Functions took each.
    sent: Arc<Mutex<Vec<(String, bool)>>>,
    deps: Deps,
    work: tempfile::TempDir,
    /// Turns of each batch's loop so far, as the state machine would pass them.
    polls: Mutex<BTreeMap<String, u32>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fake S3's ETag of a body: changes whenever the content does.
fn etag_of(body: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

/// GetObject calls the fake S3 fails with ServiceUnavailable before it answers again (an S3 brownout).
static SLOW_READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn fake_s3(objects: &Objects) -> aws_sdk_s3::Client {
    let (o1, o2, o3, o4) = (objects.clone(), objects.clone(), objects.clone(), objects.clone());
    // Conditional writes as S3 does them: If-None-Match: * and If-Match: <etag>, else PreconditionFailed.
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_response(move |req| {
        let body = req.body().bytes().map(<[u8]>::to_vec).unwrap_or_default();
        let key = (
            req.bucket().unwrap_or("").to_string(),
            req.key().unwrap_or("").to_string(),
        );
        let mut objects = lock(&o1);
        let current = objects.get(&key).map(|b| etag_of(b));
        let refused = match (req.if_none_match(), req.if_match()) {
            (Some("*"), _) => current.is_some(),
            (_, Some(expected)) => current.as_deref() != Some(expected),
            _ => false,
        };
        if refused {
            let meta = aws_sdk_s3::error::ErrorMetadata::builder()
                .code("PreconditionFailed")
                .message("At least one of the pre-conditions you specified did not hold")
                .build();
            return MockResponse::Error(PutObjectError::generic(meta));
        }
        let etag = etag_of(&body);
        objects.insert(key, body);
        MockResponse::Output(PutObjectOutput::builder().e_tag(etag).build())
    });
    let get = mock!(aws_sdk_s3::Client::get_object).then_compute_response(move |req| {
        if req.key().is_some_and(|k| k.starts_with("results/slow-"))
            && SLOW_READS
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
        {
            let meta = aws_sdk_s3::error::ErrorMetadata::builder()
                .code("ServiceUnavailable")
                .message("Please reduce your request rate.")
                .build();
            return MockResponse::Error(GetObjectError::generic(meta));
        }
        let key = (
            req.bucket().unwrap_or("").to_string(),
            req.key().unwrap_or("").to_string(),
        );
        match lock(&o2).get(&key) {
            Some(body) => MockResponse::Output(
                GetObjectOutput::builder()
                    .e_tag(etag_of(body))
                    .body(ByteStream::from(body.clone()))
                    .build(),
            ),
            None => MockResponse::Error(GetObjectError::NoSuchKey(NoSuchKey::builder().build())),
        }
    });
    let head = mock!(aws_sdk_s3::Client::head_object).then_compute_response(move |req| {
        let key = (
            req.bucket().unwrap_or("").to_string(),
            req.key().unwrap_or("").to_string(),
        );
        if lock(&o3).contains_key(&key) {
            MockResponse::Output(HeadObjectOutput::builder().build())
        } else {
            MockResponse::Error(HeadObjectError::NotFound(NotFound::builder().build()))
        }
    });
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(move |req| {
        let (bucket, prefix) = (req.bucket().unwrap_or(""), req.prefix().unwrap_or(""));
        let contents = lock(&o4)
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix))
            .map(|(_, k)| Object::builder().key(k).build())
            .collect();
        ListObjectsV2Output::builder()
            .set_contents(Some(contents))
            .is_truncated(false)
            .build()
    });
    let parts: Parts = Arc::default();
    let (p1, p2, o5) = (parts.clone(), parts.clone(), objects.clone());
    let create = mock!(aws_sdk_s3::Client::create_multipart_upload).then_compute_output(|req| {
        CreateMultipartUploadOutput::builder()
            .upload_id(format!("upload-{}", req.key().unwrap_or("")))
            .build()
    });
    let part = mock!(aws_sdk_s3::Client::upload_part).then_compute_output(move |req| {
        let body = req.body().bytes().map(<[u8]>::to_vec).unwrap_or_default();
        let number = req.part_number().unwrap_or(0);
        lock(&p1).insert((req.upload_id().unwrap_or("").to_string(), number), body);
        UploadPartOutput::builder().e_tag(format!("etag-{number}")).build()
    });
    let complete = mock!(aws_sdk_s3::Client::complete_multipart_upload).then_compute_output(move |req| {
        let upload = req.upload_id().unwrap_or("").to_string();
        let mut whole = Vec::new();
        let listed = req.multipart_upload().map(|m| m.parts()).unwrap_or_default();
        for p in listed {
            let number = p.part_number().unwrap_or(0);
            assert_eq!(
                p.e_tag(),
                Some(format!("etag-{number}").as_str()),
                "parts are completed with their ETags"
            );
            whole.extend(lock(&p2).remove(&(upload.clone(), number)).unwrap_or_default());
        }
        lock(&o5).insert(
            (
                req.bucket().unwrap_or("").to_string(),
                req.key().unwrap_or("").to_string(),
            ),
            whole,
        );
        CompleteMultipartUploadOutput::builder().build()
    });
    mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&put, &get, &head, &list, &create, &part, &complete]
    )
}

fn input_config(uri: &str) -> ModelInvocationJobInputDataConfig {
    ModelInvocationJobInputDataConfig::S3InputDataConfig(
        ModelInvocationJobS3InputDataConfig::builder()
            .s3_uri(uri)
            .build()
            .expect("uri"),
    )
}

fn output_config() -> ModelInvocationJobOutputDataConfig {
    ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
        ModelInvocationJobS3OutputDataConfig::builder()
            .s3_uri("s3://out-bucket/bedrock/")
            .build()
            .expect("uri"),
    )
}

fn fake_bedrock(state: &Arc<Mutex<BedrockState>>) -> aws_sdk_bedrock::Client {
    let (s1, s2, s3) = (state.clone(), state.clone(), state.clone());
    let create = mock!(aws_sdk_bedrock::Client::create_model_invocation_job).then_compute_response(move |req| {
        let mut st = lock(&s1);
        if st.create_errors.first() == Some(&"lost") {
            // Bedrock accepted the job, but its answer never arrived (a lost response).
            st.create_errors.remove(0);
            let token = req.client_request_token().unwrap_or("").to_string();
            if !st.jobs.iter().any(|j| j.token == token) {
                let arn = format!(
                    "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job{:08}",
                    st.jobs.len()
                );
                st.jobs.push(FakeJob {
                    arn,
                    token,
                    name: req.job_name().unwrap_or("").to_string(),
                    model: req.model_id().unwrap_or("").to_string(),
                    input_uri: String::new(),
                    status: "Submitted".into(),
                    kms_key: None,
                    timeout_hours: None,
                    tags: Vec::new(),
                });
            }
            return MockResponse::Error(CreateModelInvocationJobError::InternalServerException(
                aws_sdk_bedrock::types::error::InternalServerException::builder()
                    .message("lost")
                    .build(),
            ));
        }
        if !st.create_errors.is_empty() {
            let kind = st.create_errors.remove(0);
            return MockResponse::Error(match kind {
                "quota" => CreateModelInvocationJobError::ServiceQuotaExceededException(
                    ServiceQuotaExceededException::builder().message("quota").build(),
                ),
                "throttle" => CreateModelInvocationJobError::ThrottlingException(
                    ThrottlingException::builder().message("slow down").build(),
                ),
                // A 5xx before Bedrock created anything: the outcome is unknown to the caller.
                "internal" => CreateModelInvocationJobError::InternalServerException(
                    aws_sdk_bedrock::types::error::InternalServerException::builder()
                        .message("internal")
                        .build(),
                ),
                _ => CreateModelInvocationJobError::ValidationException(
                    aws_sdk_bedrock::types::error::ValidationException::builder()
                        .message("bad request")
                        .build(),
                ),
            });
        }
        let token = req.client_request_token().unwrap_or("").to_string();
        // docs/bedrock.md#idempotency: the same token returns the first job.
        if let Some(j) = st.jobs.iter().find(|j| j.token == token) {
            return MockResponse::Output(
                CreateModelInvocationJobOutput::builder()
                    .job_arn(&j.arn)
                    .build()
                    .expect("arn"),
            );
        }
        let input_uri = match req.input_data_config() {
            Some(ModelInvocationJobInputDataConfig::S3InputDataConfig(c)) => c.s3_uri().to_string(),
            _ => String::new(),
        };
        let arn = format!(
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job{:08}",
            st.jobs.len()
        );
        st.jobs.push(FakeJob {
            arn: arn.clone(),
            token,
            name: req.job_name().unwrap_or("").to_string(),
            model: req.model_id().unwrap_or("").to_string(),
            input_uri,
            status: "Submitted".into(),
            kms_key: match req.output_data_config() {
                Some(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(c)) => {
                    c.s3_encryption_key_id().map(str::to_string)
                }
                _ => None,
            },
            timeout_hours: req.timeout_duration_in_hours(),
            tags: req
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        });
        MockResponse::Output(
            CreateModelInvocationJobOutput::builder()
                .job_arn(arn)
                .build()
                .expect("arn"),
        )
    });
    let get = mock!(aws_sdk_bedrock::Client::get_model_invocation_job).then_compute_output(move |req| {
        let st = lock(&s2);
        let id = req.job_identifier().unwrap_or("");
        let job = st.jobs.iter().find(|j| j.arn == id).cloned().expect("known job");
        GetModelInvocationJobOutput::builder()
            .job_arn(&job.arn)
            .job_name(&job.name)
            .model_id(&job.model)
            .role_arn("arn:aws:iam::123456789012:role/bedrock")
            .status(ModelInvocationJobStatus::from(job.status.as_str()))
            .set_message(Some("the job's message".to_string()).filter(|_| job.status == "Failed"))
            .success_record_count(7)
            .error_record_count(1)
            .submit_time(aws_smithy_types::DateTime::from_secs(0))
            .input_data_config(input_config(&job.input_uri))
            .output_data_config(output_config())
            .build()
            .expect("get output")
    });
    let stop = mock!(aws_sdk_bedrock::Client::stop_model_invocation_job).then_compute_output(move |req| {
        let mut st = lock(&s3);
        let id = req.job_identifier().unwrap_or("").to_string();
        st.stops.push(id.clone());
        if let Some(j) = st.jobs.iter_mut().find(|j| j.arn == id) {
            j.status = "Stopping".into();
        }
        StopModelInvocationJobOutput::builder().build()
    });
    let s4 = state.clone();
    let list = mock!(aws_sdk_bedrock::Client::list_model_invocation_jobs).then_compute_output(move |req| {
        let st = lock(&s4);
        let needle = req.name_contains().unwrap_or("");
        let summaries = st
            .jobs
            .iter()
            .filter(|j| j.name.contains(needle))
            .map(|j| {
                ModelInvocationJobSummary::builder()
                    .job_arn(&j.arn)
                    .job_name(&j.name)
                    .model_id(&j.model)
                    .role_arn("arn:aws:iam::123456789012:role/bedrock")
                    .status(ModelInvocationJobStatus::from(j.status.as_str()))
                    .submit_time(aws_smithy_types::DateTime::from_secs(0))
                    .input_data_config(input_config(&j.input_uri))
                    .output_data_config(output_config())
                    .build()
                    .expect("summary")
            })
            .collect();
        ListModelInvocationJobsOutput::builder()
            .set_invocation_job_summaries(Some(summaries))
            .build()
    });
    mock_client!(aws_sdk_bedrock, RuleMode::MatchAny, [&create, &get, &stop, &list])
}

fn fake_sfn(
    executions: &Arc<Mutex<Vec<(String, String)>>>,
    sent: &Arc<Mutex<Vec<(String, bool)>>>,
) -> aws_sdk_sfn::Client {
    let e = executions.clone();
    let tokens = sent.clone();
    // A token is taken once; a second send to it, or one to a token named "stale…", is refused as Step
    // Functions refuses a task that has ended.
    let send = mock!(aws_sdk_sfn::Client::send_task_success).then_compute_response(move |req| {
        let token = req.task_token().unwrap_or_default().to_string();
        let mut sent = lock(&tokens);
        let taken = !token.starts_with("stale") && !sent.iter().any(|(t, ok)| *t == token && *ok);
        sent.push((token, taken));
        if taken {
            MockResponse::Output(SendTaskSuccessOutput::builder().build())
        } else {
            MockResponse::Error(SendTaskSuccessError::TaskTimedOut(
                TaskTimedOut::builder().message("Task Timed Out").build(),
            ))
        }
    });
    let start = mock!(aws_sdk_sfn::Client::start_execution).then_compute_response(move |req| {
        let mut ex = lock(&e);
        let name = req.name().unwrap_or("None").to_string();
        if ex.iter().any(|(n, _)| *n == name) {
            return MockResponse::Error(StartExecutionError::ExecutionAlreadyExists(
                ExecutionAlreadyExists::builder().build(),
            ));
        }
        ex.push((name.clone(), req.input().unwrap_or("").to_string()));
        MockResponse::Output(
            StartExecutionOutput::builder()
                .execution_arn(format!(
                    "arn:aws:states:us-east-1:123456789012:execution:batchdrop:{name}"
                ))
                .start_date(aws_smithy_types::DateTime::from_secs(0))
                .build()
                .expect("start output"),
        )
    });
    let describe = mock!(aws_sdk_sfn::Client::describe_execution).then_compute_output(|req| {
        DescribeExecutionOutput::builder()
            .execution_arn(req.execution_arn().unwrap_or(""))
            .state_machine_arn(STATE_MACHINE)
            .status(ExecutionStatus::Running)
            .start_date(aws_smithy_types::DateTime::from_secs(0))
            .build()
            .expect("describe output")
    });
    mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start, &describe, &send])
}

fn world_with(vars: &[(&str, &str)]) -> World {
    let work = tempfile::tempdir().expect("temp dir");
    let mut env: BTreeMap<String, String> = [
        ("INPUT_BUCKET", IN),
        ("OUTPUT_BUCKET", OUT),
        ("STATE_MACHINE_ARN", STATE_MACHINE),
        ("BEDROCK_ROLE_ARN", "arn:aws:iam::123456789012:role/bedrock"),
        ("DEFAULT_MODEL", CLAUDE),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("WORK_DIR".into(), work.path().display().to_string());
    for (k, v) in vars {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_vars(|name| env.get(name).cloned()).expect("config");
    let objects: Objects = Arc::default();
    let bedrock: Arc<Mutex<BedrockState>> = Arc::default();
    let executions: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sent: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let deps = Deps {
        s3: fake_s3(&objects),
        bedrock: fake_bedrock(&bedrock),
        sfn: fake_sfn(&executions, &sent),
        // No JOB_QUEUE_TABLE in these settings: the job queue is not used, and the client never called
        // (the end-to-end tests run the queue on moto's DynamoDB).
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .build(),
        ),
        config,
    };
    World {
        objects,
        bedrock,
        executions,
        sent,
        deps,
        work,
        polls: Mutex::default(),
    }
}

fn world() -> World {
    world_with(&[])
}

fn chat(id: &str, extra: Value) -> String {
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("question {id}")}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body}).to_string()
}

fn lines(n: usize, prefix: &str, extra: Value) -> Vec<String> {
    (0..n).map(|i| chat(&format!("{prefix}{i}"), extra.clone())).collect()
}

impl World {
    fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        lock(&self.objects).insert((bucket.to_string(), key.to_string()), body.to_vec());
    }

    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects).get(&(bucket.to_string(), key.to_string())).cloned()
    }

    fn jsonl(&self, bucket: &str, key: &str) -> Vec<Value> {
        let body = self
            .get(bucket, key)
            .unwrap_or_else(|| panic!("s3://{bucket}/{key} missing"));
        String::from_utf8(body)
            .expect("utf-8")
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }

    /// Every batch.json in the output bucket.
    fn batch_docs(&self) -> Vec<Value> {
        lock(&self.objects)
            .iter()
            .filter(|((bucket, key), _)| bucket == OUT && key.ends_with("/batch.json"))
            .map(|(_, body)| serde_json::from_slice(body).expect("batch.json"))
            .collect()
    }

    fn event(&self, key: &str) -> SubmitEvent {
        SubmitEvent::from_value(s3_event(IN, key, "ObjectCreated:Put"))
    }

    async fn upload_and_submit(&self, key: &str, lines: &[String]) -> Submitted {
        self.put(IN, key, (lines.join("\n") + "\n").as_bytes());
        let mut outcomes = submit::handle(&self.deps, self.event(key)).await.expect("submit");
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    }

    /// Submit, then the loop's first turn, which creates the jobs.
    async fn submit_and_create(&self, key: &str, lines: &[String]) -> (String, usize) {
        let (batch_id, jobs) = started(&self.upload_and_submit(key, lines).await);
        self.check(&batch_id).await;
        (batch_id, jobs)
    }

    fn doc(&self, batch_id: &str) -> BatchDoc {
        let body = self
            .get(OUT, &format!("results/{batch_id}/batch.json"))
            .expect("batch.json");
        serde_json::from_slice(&body).expect("batch doc")
    }

    fn set_status(&self, job: usize, status: &str) {
        lock(&self.bedrock).jobs[job].status = status.to_string();
    }

    async fn check(&self, batch_id: &str) -> check::CheckOutput {
        let polls = {
            let mut p = lock(&self.polls);
            let n = *p.entry(batch_id.to_string()).or_default();
            *p.get_mut(batch_id).expect("poll count") += 1;
            n
        };
        let mut input = CheckInput::new(batch_id);
        input.polls = polls;
        check::handle(&self.deps, input).await.expect("check")
    }

    /// Writes Bedrock's output for a job as Bedrock does (docs/bedrock.md#output-files): `<out>/<job-id>/<file>.out`,
    /// answering every record but those in `skip`, in reverse order, with a manifest beside it.
    fn bedrock_answers(&self, batch_id: &str, job: usize, skip: &[&str]) {
        let fake = lock(&self.bedrock).jobs[job].clone();
        let input_key = fake.input_uri.trim_start_matches(&format!("s3://{IN}/")).to_string();
        let records = self.jsonl(IN, &input_key);
        let job_id = fake.arn.rsplit('/').next().expect("job id").to_string();
        let mut out = Vec::new();
        for rec in records.iter().rev() {
            let id = rec["recordId"].as_str().expect("recordId");
            if skip.contains(&id) {
                continue;
            }
            let output = if fake.model.contains("nova") {
                json!({"output": {"message": {"role": "assistant", "content": [{"text": format!("answer {id}")}]}},
                       "stopReason": "end_turn", "usage": {"inputTokens": 10, "outputTokens": 3, "totalTokens": 13}})
            } else {
                json!({"id": "msg", "type": "message", "role": "assistant", "content": [{"type": "text", "text": format!("answer {id}")}],
                       "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 3}})
            };
            out.push(json!({"recordId": id, "modelInput": rec["modelInput"], "modelOutput": output}).to_string());
        }
        let file = input_key.rsplit('/').next().expect("file name");
        self.put(
            OUT,
            &format!("bedrock/{batch_id}/{job_id}/{file}.out"),
            out.join("\n").as_bytes(),
        );
        self.put(
            OUT,
            &format!("bedrock/{batch_id}/{job_id}/manifest.json.out"),
            b"{\"totalRecordCount\":1}",
        );
    }

    /// The state machine parks the loop with `token` after `polls` turns.
    async fn park(&self, batch_id: &str, token: &str, polls: u32) -> Woke {
        let park = Park {
            batch_id: batch_id.to_string(),
            token: token.to_string(),
            polls,
        };
        wake::handle(&self.deps, json!({ "park": park })).await.expect("park")
    }

    /// Bedrock's EventBridge event for job `job` of the batch, now in `status`.
    async fn job_event(&self, batch_id: &str, job: usize, status: &str) -> Woke {
        let j = &self.doc(batch_id).bedrock.jobs[job];
        let event = JobEvent {
            batch_job_name: j.job_name.clone(),
            batch_job_arn: j.job_arn.clone().expect("a created job"),
            status: status.to_string(),
        };
        self.bedrock_event(&event).await
    }

    async fn bedrock_event(&self, event: &JobEvent) -> Woke {
        let envelope = json!({"version": "0", "source": "aws.bedrock", "detail-type": "Batch Inference Job State Change",
            "detail": {"batchJobName": event.batch_job_name, "batchJobArn": event.batch_job_arn, "status": event.status,
                       "batchModelId": format!("arn:aws:bedrock:us-east-1::foundation-model/{CLAUDE}"), "failureMessage": ""}});
        wake::handle(&self.deps, envelope).await.expect("job event")
    }

    fn sent(&self) -> Vec<(String, bool)> {
        lock(&self.sent).clone()
    }

    async fn finalize(&self, batch_id: &str, failure: Option<Failure>) -> batchdrop::status::EventDetail {
        finalize::handle(&self.deps, FinalizeInput::new(batch_id, failure))
            .await
            .expect("finalize")
    }
}

fn started(outcome: &Submitted) -> (String, usize) {
    match outcome {
        Submitted::Started { batch_id, jobs, .. } => (batch_id.clone(), *jobs),
        other => panic!("not started: {other:?}"),
    }
}

fn custom_ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test]
async fn happy_path_one_model_end_to_end() {
    let w = world();
    let input = lines(150, "r", json!({"max_tokens": 20}));
    let (batch_id, jobs) = started(&w.upload_and_submit("inbox/My Batch.jsonl", &input).await);
    assert_eq!(jobs, 1);
    assert!(batch_id.starts_with("my-batch-"));
    assert!(lock(&w.bedrock).jobs.is_empty(), "submit creates no job: the loop does");
    let doc = w.doc(&batch_id);
    assert!(doc.bedrock.staged);
    assert_eq!(doc.bedrock.jobs[0].status, "Queued");

    // The loop's first turn creates the job, and waits the first backoff.
    let c = w.check(&batch_id).await;
    assert_eq!((c.all_done, c.wait_seconds, c.polls), (false, 60, 1));

    // Staging: the Bedrock input file and the record map; one job created with our names.
    assert_eq!(lock(&w.bedrock).jobs.len(), 1);
    let staged = w.jsonl(IN, &format!("staging/{batch_id}/job-0.jsonl"));
    assert_eq!(staged.len(), 150);
    assert_eq!(staged[0]["recordId"], "R0000000001");
    assert_eq!(staged[0]["modelInput"]["anthropic_version"], "bedrock-2023-05-31");
    let map = w.jsonl(IN, &format!("staging/{batch_id}/record-map.jsonl"));
    assert_eq!(map.len(), 152, "header, 150 entries, trailer");
    assert_eq!(map[1]["job"], 0);
    assert_eq!(
        map[151]["batchdrop_record_map_end"],
        serde_json::json!({"entries": 150, "records": 150})
    );
    let fake = lock(&w.bedrock).jobs.clone();
    assert_eq!(fake.len(), 1);
    assert_eq!(fake[0].name, format!("{batch_id}-job0"));
    assert_eq!(fake[0].token, format!("{batch_id}-0"));
    assert_eq!(fake[0].model, CLAUDE);
    assert_eq!(fake[0].input_uri, format!("s3://{IN}/staging/{batch_id}/job-0.jsonl"));
    assert_eq!(fake[0].timeout_hours, Some(24));
    assert_eq!(fake[0].kms_key, None);
    assert_eq!(fake[0].tags, vec![("batchdrop:batch-id".to_string(), batch_id.clone())]);

    // batch.json and the execution, named after the batch.
    let doc = w.doc(&batch_id);
    assert_eq!(doc.status, BatchStatus::Validating);
    assert_eq!(doc.request_counts.total, 150);
    assert_eq!(doc.input_file_id, format!("s3://{IN}/inbox/My Batch.jsonl"));
    let executions = lock(&w.executions).clone();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].0, batch_id);
    let input: Value = serde_json::from_str(&executions[0].1).expect("execution input");
    assert_eq!(
        input,
        json!({"batch_id": batch_id, "polls": 0, "outage_since": null, "outage_polls": 0, "stop_polls": 0, "failure": null})
    );

    // Polls with backoff until the job completes.
    w.set_status(0, "InProgress");
    let c = w.check(&batch_id).await;
    assert_eq!((c.all_done, c.wait_seconds), (false, 90));
    let live = w.doc(&batch_id);
    assert_eq!(live.status, BatchStatus::InProgress);
    assert_eq!(
        (live.request_counts.completed, live.request_counts.failed),
        (7, 1),
        "live counts from Bedrock"
    );
    let c = w.check(&batch_id).await;
    assert_eq!((c.all_done, c.wait_seconds), (false, 135));
    w.set_status(0, "Completed");
    w.bedrock_answers(&batch_id, 0, &[]);
    let c = w.check(&batch_id).await;
    assert!(c.all_done);

    let detail = w.finalize(&batch_id, None).await;
    assert_eq!(detail.status, BatchStatus::Completed);
    assert_eq!(
        (
            detail.request_counts.total,
            detail.request_counts.completed,
            detail.request_counts.failed
        ),
        (150, 150, 0)
    );
    assert_eq!(detail.usage.input_tokens, 1500);
    assert_eq!(
        detail.output_file,
        format!("s3://{OUT}/results/{batch_id}/output.jsonl")
    );
    let output = w.jsonl(OUT, &format!("results/{batch_id}/output.jsonl"));
    let expected: Vec<String> = (0..150).map(|i| format!("r{i}")).collect();
    assert_eq!(
        custom_ids(&output),
        expected,
        "input order, although Bedrock answered in reverse"
    );
    assert_eq!(
        output[0]["response"]["body"]["choices"][0]["message"]["content"],
        "answer R0000000001"
    );
    assert!(w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl")).is_empty());
    let doc = w.doc(&batch_id);
    assert_eq!(doc.status, BatchStatus::Completed);
    assert!(doc.completed_at.is_some() && doc.finalizing_at.is_some());
    assert_eq!(doc.usage.map(|u| u.output_tokens), Some(450));
}

#[tokio::test]
async fn every_bedrock_status_maps_and_decides_missing_records() {
    for (status, openai, missing_code) in [
        ("Completed", BatchStatus::Completed, "batch_failed"),
        ("PartiallyCompleted", BatchStatus::Expired, "batch_expired"),
        ("Expired", BatchStatus::Expired, "batch_expired"),
        ("Stopped", BatchStatus::Cancelled, "batch_cancelled"),
        ("Failed", BatchStatus::Failed, "batch_failed"),
    ] {
        let w = world();
        let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(120, "r", json!({}))).await;
        for (running, running_openai) in [
            ("Submitted", BatchStatus::Validating),
            ("Validating", BatchStatus::Validating),
            ("Scheduled", BatchStatus::InProgress),
            ("InProgress", BatchStatus::InProgress),
            ("Stopping", BatchStatus::InProgress),
        ] {
            w.set_status(0, running);
            assert!(!w.check(&batch_id).await.all_done, "{running}");
            assert_eq!(w.doc(&batch_id).status, running_openai, "{running}");
            assert_eq!(w.doc(&batch_id).bedrock.jobs[0].status, running);
        }
        w.set_status(0, status);
        if status != "Expired" && status != "Failed" {
            w.bedrock_answers(&batch_id, 0, &["R0000000003", "R0000000077"]);
        }
        assert!(w.check(&batch_id).await.all_done, "{status}");
        let detail = w.finalize(&batch_id, None).await;
        assert_eq!(detail.status, openai, "{status}");
        let errors = w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl"));
        let output = w.jsonl(OUT, &format!("results/{batch_id}/output.jsonl"));
        assert_eq!(output.len() + errors.len(), 120, "{status}: every line in one place");
        assert!(
            errors.iter().all(|e| e["error"]["code"] == missing_code),
            "{status}: {errors:?}"
        );
        if status == "Failed" {
            assert_eq!(
                w.doc(&batch_id).errors.map(|e| e.data[0].message.clone()),
                Some("job 0 (us.anthropic.claude-3-5-haiku-20241022-v1:0): the job's message".to_string())
            );
        }
    }
}

#[tokio::test]
async fn quota_exceeded_on_create_leaves_the_job_queued() {
    let w = world();
    lock(&w.bedrock).create_errors = vec!["quota"];
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    let doc = w.doc(&batch_id);
    assert_eq!(doc.bedrock.jobs[0].status, "Queued");
    assert_eq!(doc.bedrock.jobs[0].job_arn, None);
    assert_eq!(doc.status, BatchStatus::Validating);
    assert!(lock(&w.bedrock).jobs.is_empty());
    // The next poll creates it.
    let c = w.check(&batch_id).await;
    assert!(!c.all_done);
    assert_eq!(lock(&w.bedrock).jobs.len(), 1);
    assert_eq!(w.doc(&batch_id).bedrock.jobs[0].status, "Submitted");
}

#[tokio::test]
async fn throttling_on_create_leaves_the_job_queued() {
    let w = world();
    // Enough throttles to outlast the SDK's own retries.
    lock(&w.bedrock).create_errors = vec!["throttle"; 5];
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    assert_eq!(w.doc(&batch_id).bedrock.jobs[0].status, "Queued");
    lock(&w.bedrock).create_errors.clear();
    w.check(&batch_id).await;
    assert_eq!(w.doc(&batch_id).bedrock.jobs[0].status, "Submitted");
}

#[tokio::test]
async fn a_refused_job_fails_and_its_records_become_errors() {
    let w = world();
    lock(&w.bedrock).create_errors = vec!["validation"];
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    let doc = w.doc(&batch_id);
    assert_eq!(doc.bedrock.jobs[0].status, "Failed");
    assert!(doc.bedrock.jobs[0]
        .message
        .as_deref()
        .is_some_and(|m| m.contains("ValidationException")));
    assert!(w.check(&batch_id).await.all_done);
    let detail = w.finalize(&batch_id, None).await;
    assert_eq!(detail.status, BatchStatus::Failed);
    assert_eq!(w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl")).len(), 100);
}

#[tokio::test]
async fn concurrency_limit_queues_jobs_until_a_slot_frees() {
    let w = world_with(&[
        ("MAX_CONCURRENT_JOBS", "1"),
        ("MAX_RECORDS_PER_JOB", "100"),
        ("MIN_RECORDS_PER_JOB", "10"),
    ]);
    let (batch_id, jobs) = w.submit_and_create("inbox/f.jsonl", &lines(200, "r", json!({}))).await;
    assert_eq!(jobs, 2);
    assert_eq!(lock(&w.bedrock).jobs.len(), 1);
    w.set_status(0, "InProgress");
    w.check(&batch_id).await;
    assert_eq!(lock(&w.bedrock).jobs.len(), 1, "still one running");
    w.set_status(0, "Completed");
    w.bedrock_answers(&batch_id, 0, &[]);
    let c = w.check(&batch_id).await;
    assert!(!c.all_done);
    assert_eq!(
        lock(&w.bedrock).jobs.len(),
        2,
        "the queued job starts when the first ends"
    );
    w.set_status(1, "Completed");
    w.bedrock_answers(&batch_id, 1, &[]);
    assert!(w.check(&batch_id).await.all_done);
    let detail = w.finalize(&batch_id, None).await;
    assert_eq!(detail.request_counts.completed, 200);
    assert_eq!(detail.bedrock_job_arns.len(), 2);
    let output = w.jsonl(OUT, &format!("results/{batch_id}/output.jsonl"));
    let expected: Vec<String> = (0..200).map(|i| format!("r{i}")).collect();
    assert_eq!(custom_ids(&output), expected);
}

#[tokio::test]
async fn balanced_jobs_when_a_file_exceeds_the_job_limit() {
    let w = world_with(&[("MAX_RECORDS_PER_JOB", "100"), ("MIN_RECORDS_PER_JOB", "10")]);
    let (batch_id, jobs) = started(&w.upload_and_submit("inbox/f.jsonl", &lines(250, "r", json!({}))).await);
    assert_eq!(jobs, 3);
    let sizes: Vec<usize> = (0..3)
        .map(|j| w.jsonl(IN, &format!("staging/{batch_id}/job-{j}.jsonl")).len())
        .collect();
    assert_eq!(sizes, vec![84, 83, 83]);
    let doc = w.doc(&batch_id);
    assert_eq!(
        doc.bedrock.jobs.iter().map(|j| j.records).collect::<Vec<_>>(),
        vec![84, 83, 83]
    );
}

#[tokio::test]
async fn duplicate_event_makes_no_second_batch_job_or_execution() {
    let w = world();
    let input = lines(100, "r", json!({}));
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &input).await;
    let again = submit::handle(&w.deps, w.event("inbox/f.jsonl")).await.expect("submit");
    assert_eq!(
        again,
        vec![Submitted::Duplicate {
            batch_id: batch_id.clone()
        }]
    );
    assert_eq!(lock(&w.bedrock).jobs.len(), 1);
    assert_eq!(lock(&w.executions).len(), 1);

    // A duplicate that arrives before the first finished (no batch.json yet) reuses the same job and
    // execution: deterministic token and execution name.
    lock(&w.objects).remove(&(OUT.to_string(), format!("results/{batch_id}/batch.json")));
    let raced = submit::handle(&w.deps, w.event("inbox/f.jsonl")).await.expect("submit");
    assert!(matches!(&raced[0], Submitted::Started { batch_id: b, .. } if *b == batch_id));
    assert_eq!(lock(&w.executions).len(), 1, "the running execution is the batch's");
    assert!(w.doc(&batch_id).bedrock.execution_arn.is_some());
    // The re-created batch.json has lost the job's ARN: the create with the same token finds the job.
    w.check(&batch_id).await;
    assert_eq!(lock(&w.bedrock).jobs.len(), 1);
    assert!(w.doc(&batch_id).bedrock.jobs[0].job_arn.is_some());
}

#[tokio::test]
async fn cancel_marker_stops_running_jobs_and_cancels_queued_ones() {
    let w = world_with(&[
        ("MAX_CONCURRENT_JOBS", "1"),
        ("MAX_RECORDS_PER_JOB", "100"),
        ("MIN_RECORDS_PER_JOB", "10"),
    ]);
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(200, "r", json!({}))).await;
    w.set_status(0, "InProgress");
    w.put(IN, &format!("cancel/{batch_id}"), b"");
    let c = w.check(&batch_id).await;
    assert!(!c.all_done);
    let doc = w.doc(&batch_id);
    assert_eq!(doc.status, BatchStatus::Cancelling);
    assert_eq!(doc.bedrock.jobs[0].status, "Stopping");
    assert_eq!(doc.bedrock.jobs[1].status, "Stopped");
    assert_eq!(lock(&w.bedrock).stops.len(), 1);
    w.set_status(0, "Stopped");
    w.bedrock_answers(&batch_id, 0, &["R0000000010"]);
    assert!(w.check(&batch_id).await.all_done);
    let detail = w.finalize(&batch_id, None).await;
    assert_eq!(detail.status, BatchStatus::Cancelled);
    let errors = w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl"));
    assert_eq!(errors.len(), 101);
    assert!(errors.iter().all(|e| e["error"]["code"] == "batch_cancelled"));
}

#[tokio::test]
async fn all_invalid_lines_make_a_failed_batch_with_every_line_reported() {
    let w = world();
    let input: Vec<String> = (0..5).map(|i| chat(&format!("bad{i}"), json!({"n": 2}))).collect();
    let outcome = w.upload_and_submit("inbox/f.jsonl", &input).await;
    let (batch_id, jobs) = started(&outcome);
    assert_eq!(jobs, 0);
    assert!(lock(&w.bedrock).jobs.is_empty());
    assert_eq!(
        lock(&w.executions).len(),
        1,
        "the execution still runs, to finalize and announce"
    );
    assert!(w.check(&batch_id).await.all_done);
    let detail = w.finalize(&batch_id, None).await;
    assert_eq!(detail.status, BatchStatus::Failed);
    assert_eq!(detail.request_counts.failed, 5);
    let errors = w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl"));
    assert_eq!(custom_ids(&errors), ["bad0", "bad1", "bad2", "bad3", "bad4"]);
    assert_eq!(errors[0]["response"]["body"]["error"]["code"], "unsupported_n");
}

#[tokio::test]
async fn multi_model_file_runs_one_job_per_model() {
    let w = world();
    let mut input = Vec::new();
    for i in 0..220 {
        let model = if i % 2 == 0 { json!({}) } else { json!({"model": NOVA}) };
        input.push(chat(&format!("r{i}"), model));
    }
    let (batch_id, jobs) = w.submit_and_create("inbox/f.jsonl", &input).await;
    assert_eq!(jobs, 2);
    let fake = lock(&w.bedrock).jobs.clone();
    assert_eq!(
        fake.iter().map(|j| j.model.as_str()).collect::<Vec<_>>(),
        vec![CLAUDE, NOVA]
    );
    let nova_file = w.jsonl(IN, &format!("staging/{batch_id}/job-1.jsonl"));
    assert_eq!(nova_file.len(), 110);
    assert_eq!(nova_file[0]["modelInput"]["schemaVersion"], "messages-v1");
    for j in 0..2 {
        w.set_status(j, "Completed");
        w.bedrock_answers(&batch_id, j, &[]);
    }
    assert!(w.check(&batch_id).await.all_done);
    w.finalize(&batch_id, None).await;
    let output = w.jsonl(OUT, &format!("results/{batch_id}/output.jsonl"));
    assert_eq!(output.len(), 220);
    assert_eq!(output[0]["response"]["body"]["model"], CLAUDE);
    assert_eq!(output[1]["response"]["body"]["model"], NOVA);
}

#[tokio::test]
async fn below_minimum_model_group_is_rejected_line_by_line() {
    let w = world();
    let mut input = lines(100, "c", json!({}));
    input.extend(lines(7, "n", json!({"model": NOVA})));
    let (batch_id, jobs) = w.submit_and_create("inbox/f.jsonl", &input).await;
    assert_eq!(jobs, 1);
    let doc = w.doc(&batch_id);
    assert_eq!(doc.bedrock.rejected, 7);
    let message = &doc.errors.as_ref().expect("errors").data[0].message;
    assert_eq!(
        message,
        "us.amazon.nova-lite-v1:0 needs at least 100 records per Bedrock batch job, and this file has 7 for it"
    );
    w.set_status(0, "Completed");
    w.bedrock_answers(&batch_id, 0, &[]);
    w.check(&batch_id).await;
    let detail = w.finalize(&batch_id, None).await;
    assert_eq!(
        (detail.request_counts.completed, detail.request_counts.failed),
        (100, 7)
    );
    let errors = w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl"));
    assert_eq!(errors.len(), 7);
    assert_eq!(errors[0]["custom_id"], "n0");
    assert_eq!(errors[0]["response"]["body"]["error"]["code"], "below_bedrock_minimum");
    assert_eq!(
        errors[0]["response"]["body"]["error"]["message"],
        format!("line 101, custom_id \"n0\": {message}")
    );
}

#[tokio::test]
async fn folder_names_the_batch_model() {
    let w = world();
    let (batch_id, _) = w
        .submit_and_create(&format!("inbox/{NOVA}/f.jsonl"), &lines(100, "r", json!({})))
        .await;
    assert_eq!(lock(&w.bedrock).jobs[0].model, NOVA);
    assert!(batch_id.starts_with("f-"));
    assert_eq!(w.doc(&batch_id).model.as_deref(), Some(NOVA));
}

#[tokio::test]
async fn a_folder_naming_an_unusable_model_rejects_each_line_and_says_why() {
    let w = world();
    let key = "inbox/amazon.nova-canvas-v1:0/f.jsonl";
    let (batch_id, jobs) = started(&w.upload_and_submit(key, &lines(100, "r", json!({}))).await);
    assert_eq!(jobs, 0);
    let doc = w.doc(&batch_id);
    assert_eq!(doc.model, None);
    assert!(doc.errors.expect("errors").data[0]
        .message
        .contains("is not in batchdrop's model catalogue"));
    w.check(&batch_id).await;
    let detail = w.finalize(&batch_id, None).await;
    assert_eq!(detail.status, BatchStatus::Failed);
    let errors = w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl"));
    assert_eq!(errors.len(), 100);
    assert_eq!(errors[0]["response"]["body"]["error"]["code"], "no_model");
}

/// docs/formats.md "Embeddings": a folder may name an embeddings model; its embeddings lines run on it, fanned out
/// one record per text in one job, and chat lines are refused with a message that says why.
#[tokio::test]
async fn a_folder_naming_an_embeddings_model_runs_embeddings_lines() {
    let w = world();
    let mut input: Vec<String> = (0..50)
        .map(|i| {
            json!({"custom_id": format!("e{i}"), "method": "POST", "url": "/v1/embeddings",
                "body": {"model": "text-embedding-3-large", "input": ["one", "two"]}})
            .to_string()
        })
        .collect();
    input.push(chat("chat", json!({})));
    let key = "inbox/amazon.titan-embed-text-v2:0/f.jsonl";
    let (batch_id, _) = w.submit_and_create(key, &input).await;
    {
        let bedrock = lock(&w.bedrock);
        assert_eq!(bedrock.jobs.len(), 1);
        assert_eq!(bedrock.jobs[0].model, "amazon.titan-embed-text-v2:0");
    }
    let map = w.jsonl(IN, &format!("staging/{batch_id}/record-map.jsonl"));
    assert_eq!(map.last().expect("trailer")["batchdrop_record_map_end"]["records"], 100);
    assert_eq!(map[1]["embedding"]["parts"], 2);
    assert_eq!(map[2]["recordId"], "R0000000003");
    assert_eq!(map[51]["rejected"]["code"], "no_model");
    assert!(map[51]["rejected"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("is an embeddings model")));
}

/// An embeddings group below Bedrock's minimum is rejected line by line: the batch counts its lines, not its
/// records, and the map's trailer loses its records.
#[tokio::test]
async fn a_rejected_embeddings_group_counts_lines_not_texts() {
    let w = world();
    let mut input = lines(100, "r", json!({}));
    for i in 0..12 {
        input.push(
            json!({"custom_id": format!("e{i}"), "method": "POST", "url": "/v1/embeddings",
                "body": {"input": ["a", "b", "c", "d", "e"]}})
            .to_string(),
        );
    }
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &input).await;
    let doc = w.doc(&batch_id);
    assert_eq!((doc.request_counts.total, doc.request_counts.failed), (112, 12));
    assert_eq!(doc.bedrock.rejected, 12);
    let map = w.jsonl(IN, &format!("staging/{batch_id}/record-map.jsonl"));
    assert_eq!(
        map.last().expect("trailer")["batchdrop_record_map_end"],
        json!({"entries": 112, "records": 100})
    );
    assert_eq!(map[101]["rejected"]["code"], "below_bedrock_minimum");
    assert!(map[101].get("embedding").is_none(), "{}", map[101]);
}

#[tokio::test]
async fn failure_mode_accounts_for_every_line_and_stops_jobs() {
    let w = world();
    let mut input = lines(100, "r", json!({}));
    input.push(chat("bad", json!({"stream": true})));
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &input).await;
    w.set_status(0, "InProgress");
    w.check(&batch_id).await;
    let failure = Failure {
        error: "BatchdropFatalError".into(),
        cause: "GetModelInvocationJob: AccessDeniedException: no".into(),
    };
    let detail = w.finalize(&batch_id, Some(failure)).await;
    assert_eq!(detail.status, BatchStatus::Failed);
    assert!(detail
        .error
        .as_deref()
        .is_some_and(|e| e.contains("AccessDeniedException")));
    assert_eq!(lock(&w.bedrock).stops.len(), 1, "the running job is stopped");
    let errors = w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl"));
    assert_eq!(errors.len(), 101);
    assert_eq!(
        errors.iter().filter(|e| e["error"]["code"] == "batch_failed").count(),
        100
    );
    assert_eq!(w.doc(&batch_id).status, BatchStatus::Failed);
}

#[tokio::test]
async fn large_files_go_up_in_multipart_uploads_with_the_kms_key_and_timeout() {
    let w = world_with(&[("OUTPUT_KMS_KEY_ID", "alias/batchdrop"), ("JOB_TIMEOUT_HOURS", "72")]);
    // About 12 MB of Bedrock input: more than one 8 MiB part.
    let long = "word ".repeat(20_000);
    let input: Vec<String> = (0..120)
        .map(|i| {
            chat(
                &format!("r{i}"),
                json!({"messages": [{"role": "user", "content": long}]}),
            )
        })
        .collect();
    let (batch_id, _) = w.submit_and_create("inbox/big.jsonl", &input).await;
    let size = w
        .get(IN, &format!("staging/{batch_id}/job-0.jsonl"))
        .map_or(0, |b| b.len());
    assert!(
        size > batchdrop::pipeline::s3::PART_SIZE,
        "{size} bytes: a multipart upload"
    );
    let staged = w.jsonl(IN, &format!("staging/{batch_id}/job-0.jsonl"));
    assert_eq!(staged.len(), 120);
    assert_eq!(staged[119]["recordId"], "R0000000120");
    let fake = lock(&w.bedrock).jobs[0].clone();
    assert_eq!(fake.kms_key.as_deref(), Some("alias/batchdrop"));
    assert_eq!(fake.timeout_hours, Some(72));
    assert_eq!(w.doc(&batch_id).completion_window, "72h");
}

#[tokio::test]
async fn non_inbox_keys_are_ignored() {
    let w = world();
    w.put(IN, "staging/x.jsonl", b"{}");
    let out = submit::handle(&w.deps, w.event("staging/x.jsonl"))
        .await
        .expect("submit");
    assert!(matches!(&out[0], Submitted::Ignored { .. }));
    assert!(lock(&w.executions).is_empty());
    drop(w.work);
}

/// docs/models.md#fields (`min_records`): the planner takes each model's minimum from the catalogue, unless the
/// deployment sets one for every model.
#[test]
fn the_minimum_records_per_job_comes_from_the_catalogue_unless_set() {
    let config = |min: &str| {
        let vars: BTreeMap<&str, &str> = [
            ("INPUT_BUCKET", "a"),
            ("OUTPUT_BUCKET", "b"),
            ("BEDROCK_ROLE_ARN", "r"),
            ("DEFAULT_MODEL", CLAUDE),
            ("MIN_RECORDS_PER_JOB", min),
        ]
        .into_iter()
        .collect();
        Config::from_vars(|n| vars.get(n).map(|v| v.to_string())).expect("config")
    };
    let ModelName::Supported(claude) = classify(CLAUDE) else {
        panic!("{CLAUDE}")
    };
    // A model whose catalogue entry says 50 (as Llama 4 Scout's quota is).
    let entry: &'static batchdrop::catalogue::Entry = Box::leak(Box::new(batchdrop::catalogue::Entry {
        min_records: 50,
        ..claude.entry.clone()
    }));
    let scout = BedrockModel {
        entry,
        ..claude.clone()
    };
    for unset in ["", "0"] {
        assert_eq!(config(unset).limits_for(&claude).min_records, 100);
        assert_eq!(config(unset).limits_for(&scout).min_records, 50);
    }
    assert_eq!(config("10").limits_for(&scout).min_records, 10);
    assert_eq!(config("10").limits_for(&claude).max_records_per_job, 50_000);
}

/// docs/models.md "Adding a model": a deployment's own catalogue file, in the input bucket, is fetched and checked
/// at start-up; a missing or broken one stops the function with a message naming it.
#[tokio::test]
async fn a_deployments_catalogue_file_is_fetched_and_checked() {
    let w = world();
    let entry = r#"{"models": [{"id": "anthropic.claude-opus-4-6", "name": "Claude Opus 4.6", "family": "claude",
        "invocation": "InvokeModel", "max_output_tokens": 128000, "accepts": ["system", "tools"],
        "temperature_with_top_p": false, "prices": null}]}"#;
    w.put(IN, "config/models.json", entry.as_bytes());
    w.put(IN, "config/broken.json", b"{\"models\": [{\"id\": \"x\"}]}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = fetch_catalogue(&w.deps.s3, IN, "config/models.json", dir.path())
        .await
        .expect("fetched");
    let catalogue = batchdrop::catalogue::Catalogue::with_file(&path).expect("a catalogue");
    let found = catalogue
        .lookup("anthropic.claude-opus-4-6-v1:0")
        .map(|e| e.max_output_tokens);
    assert_eq!(found, Some(Some(128_000)));
    let missing = fetch_catalogue(&w.deps.s3, IN, "config/none.json", dir.path())
        .await
        .err()
        .unwrap_or_default();
    assert!(
        missing.starts_with(
            "MODEL_CATALOGUE_KEY: the model catalogue file s3://in-bucket/config/none.json cannot be read"
        ),
        "{missing}"
    );
    let broken = fetch_catalogue(&w.deps.s3, IN, "config/broken.json", dir.path())
        .await
        .err()
        .unwrap_or_default();
    assert!(
        broken.contains("config/broken.json is not valid") && broken.contains("models[0]"),
        "{broken}"
    );
}

#[test]
fn config_rejects_bad_values_and_names_them() {
    let base = |extra: (&str, &str)| {
        let vars: BTreeMap<&str, &str> = [
            ("INPUT_BUCKET", "a"),
            ("OUTPUT_BUCKET", "b"),
            ("BEDROCK_ROLE_ARN", "r"),
            ("DEFAULT_MODEL", CLAUDE),
            extra,
        ]
        .into_iter()
        .collect();
        Config::from_vars(|n| vars.get(n).map(|v| v.to_string())).map_err(|e| e.to_string())
    };
    assert!(base(("X", "")).is_ok());
    assert_eq!(
        base(("JOB_TIMEOUT_HOURS", "12")).err().as_deref(),
        Some("configuration: JOB_TIMEOUT_HOURS=12 is outside 24-168 (Bedrock's timeoutDurationInHours)")
    );
    assert_eq!(
        base(("MAX_CONCURRENT_JOBS", "many")).err().as_deref(),
        Some("configuration: MAX_CONCURRENT_JOBS=many is not a valid number")
    );
    assert!(base(("DEFAULT_MODEL", "gpt-4o")).is_err());
    // Staged files must outlive the longest batch: 24 h queue + 24 h job + 6 h outage + 2 h stop + a day.
    assert!(base(("STAGING_RETENTION_DAYS", "4")).is_ok());
    let short = base(("STAGING_RETENTION_DAYS", "3")).err().unwrap_or_default();
    assert!(
        short.contains("STAGING_RETENTION_DAYS=3 is shorter than the longest possible batch plus a day (4 days"),
        "{short}"
    );
    assert_eq!(
        base(("OUTAGE_BUDGET_HOURS", "0")).err().as_deref(),
        Some("configuration: OUTAGE_BUDGET_HOURS=0 is outside 1-48")
    );
    let policy = |v| base(("TEMPERATURE_POLICY", v)).map(|c| c.policy.temperature);
    assert_eq!(policy(""), Ok(batchdrop::policy::TemperaturePolicy::Reject));
    assert_eq!(policy("scale"), Ok(batchdrop::policy::TemperaturePolicy::Scale));
    assert_eq!(
        policy("halve").err().as_deref(),
        Some("configuration: TEMPERATURE_POLICY is 'halve', not one of reject, clamp, scale")
    );
    // docs/configuration.md#modeljobquotas: per-model quotas over MAX_CONCURRENT_JOBS.
    let quotas = base((
        "MODEL_JOB_QUOTAS",
        " us.amazon.nova-lite-v1:0=5, anthropic.claude-3-haiku-20240307-v1:0=50 ",
    ))
    .expect("quotas");
    assert_eq!(
        (
            quotas.job_quota("us.amazon.nova-lite-v1:0"),
            quotas.job_quota("anthropic.claude-3-haiku-20240307-v1:0"),
            quotas.job_quota(CLAUDE)
        ),
        (5, 50, 20)
    );
    assert_eq!(
        base(("MODEL_JOB_QUOTAS", "us.amazon.nova-lite-v1:0=0"))
            .err()
            .as_deref(),
        Some("configuration: MODEL_JOB_QUOTAS: 'us.amazon.nova-lite-v1:0=0' is not model-id=N with N at least 1")
    );
    assert_eq!(
        base(("MODEL_JOB_QUOTAS", "not a model=3")).err().as_deref(),
        Some("configuration: MODEL_JOB_QUOTAS: 'not a model' is not a Bedrock model id")
    );
}

#[test]
fn step_errors_become_the_lambda_error_types_the_state_machine_retries_on() {
    use batchdrop::pipeline::StepError;
    let transient: lambda_runtime::Diagnostic = StepError::Transient("slow down".into()).into();
    let fatal: lambda_runtime::Diagnostic = StepError::Fatal("denied".into()).into();
    assert_eq!(
        (transient.error_type.as_str(), transient.error_message.as_str()),
        ("BatchdropTransientError", "slow down")
    );
    assert_eq!(fatal.error_type, "BatchdropFatalError");
}

/// A key encoded as S3 encodes it in event notifications: a form value, `+` for a space, `%XX` for each
/// byte outside `A-Za-z0-9` and `-_.*` (so `/` too, and each byte of a UTF-8 character).
fn s3_encoded(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// An S3 event notification for one object, with every field of AWS's record structure.
fn s3_event(bucket: &str, key: &str, event_name: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z", "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "192.0.2.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "inbox",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": s3_encoded(key), "size": 1024, "eTag": "abc123", "versionId": "v1",
                "sequencer": "0055AED6DCD90281E5"}}
    }]})
}

#[test]
fn s3_event_keys_are_url_decoded() {
    assert_eq!(
        submit::decode_key("inbox/my+file%3A1.jsonl").as_deref(),
        Ok("inbox/my file:1.jsonl")
    );
    assert_eq!(
        submit::decode_key("inbox/caf%C3%A9.jsonl").as_deref(),
        Ok("inbox/café.jsonl")
    );
    assert_eq!(
        submit::decode_key("inbox/100%.jsonl").as_deref(),
        Ok("inbox/100%.jsonl")
    );
    assert_eq!(submit::decode_key("inbox/a%2").as_deref(), Ok("inbox/a%2"));
    // A sign is not a hex digit, though from_str_radix would take it.
    assert_eq!(submit::decode_key("inbox/%+1.jsonl").as_deref(), Ok("inbox/% 1.jsonl"));
    assert_eq!(
        submit::decode_key("inbox%2Fx%2B%25.jsonl").as_deref(),
        Ok("inbox/x+%.jsonl")
    );
    let bad = submit::decode_key("inbox/%FF.jsonl").expect_err("not UTF-8");
    assert!(bad.contains("UTF-8") && bad.contains("byte 6"), "{bad}");
}

#[test]
fn keys_round_trip_through_s3_encoding() {
    for key in [
        "inbox/plain.jsonl",
        "inbox/with space+plus.jsonl",
        "inbox/ünï 😀 ∑.jsonl",
        "inbox/a%20b&c=d?.jsonl",
        "inbox/us.anthropic.claude-3-5-haiku-20241022-v1:0/f.jsonl",
    ] {
        assert_eq!(submit::decode_key(&s3_encoded(key)).as_deref(), Ok(key), "{key}");
    }
}

#[tokio::test]
async fn a_key_with_spaces_and_unicode_becomes_its_batch() {
    let w = world();
    let key = "inbox/my batch ü+é.jsonl";
    match w.upload_and_submit(key, &lines(100, "u", json!({}))).await {
        Submitted::Started { accepted, .. } => assert_eq!(accepted, 100),
        other => panic!("{other:?}"),
    }
    let doc = w.batch_docs().into_iter().next().expect("batch.json");
    assert_eq!(doc["metadata"]["source_key"], key);
    drop(w.work);
}

#[tokio::test]
async fn s3_test_event_is_answered_without_error() {
    let w = world();
    let event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-01-01T00:00:00.000Z",
        "Bucket": IN, "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"});
    let out = submit::handle(&w.deps, SubmitEvent::from_value(event))
        .await
        .expect("test event");
    assert_eq!(out, vec![Submitted::TestEvent { bucket: IN.to_string() }]);
    assert!(lock(&w.executions).is_empty());
    drop(w.work);
}

#[tokio::test]
async fn events_that_are_not_s3_notifications_fail_loudly() {
    let w = world();
    let eventbridge = json!({"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
        "source": "aws.s3", "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{IN}")],
        "detail": {"version": "0", "bucket": {"name": IN}, "object": {"key": "inbox/f.jsonl", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184"},
            "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject"}});
    let sqs_wrapped = json!({"Records": [{"messageId": "1", "body": "{}", "eventSource": "aws:sqs"}]});
    let record_without_key = {
        let mut e = s3_event(IN, "inbox/f.jsonl", "ObjectCreated:Put");
        e["Records"][0]["s3"]["object"]
            .as_object_mut()
            .expect("object")
            .remove("key");
        e
    };
    let bad_key = {
        let mut e = s3_event(IN, "inbox/f.jsonl", "ObjectCreated:Put");
        e["Records"][0]["s3"]["object"]["key"] = json!("inbox/%C3.jsonl");
        e
    };
    let cases = [
        (eventbridge, "EventBridge-delivered S3 event (\"Object Created\")"),
        (sqs_wrapped, "not an S3 event notification: at Records[0]"),
        (json!({"hello": "world"}), "got an object with keys [hello]"),
        (json!([1, 2]), "got an array"),
        (record_without_key, "S3 event record 0 names no object"),
        (bad_key, "object key \"inbox/%C3.jsonl\" does not decode to UTF-8"),
    ];
    for (event, expected) in cases {
        use batchdrop::pipeline::StepError;
        let err = submit::handle(&w.deps, SubmitEvent::from_value(event))
            .await
            .expect_err(expected);
        assert!(matches!(err, StepError::Fatal(_)), "{err:?}");
        assert!(err.to_string().contains(expected), "{expected:?} not in {err}");
    }
    assert!(lock(&w.executions).is_empty());
    assert!(w.batch_docs().is_empty(), "nothing was claimed");
    drop(w.work);
}

#[tokio::test]
async fn events_other_than_object_created_are_ignored() {
    let w = world();
    w.put(IN, "inbox/f.jsonl", b"{}");
    let out = submit::handle(
        &w.deps,
        SubmitEvent::from_value(s3_event(IN, "inbox/f.jsonl", "ObjectRemoved:Delete")),
    )
    .await
    .expect("submit");
    assert!(
        matches!(&out[0], Submitted::Ignored { why, .. } if why.contains("ObjectRemoved:Delete")),
        "{out:?}"
    );
    assert!(lock(&w.executions).is_empty());
    drop(w.work);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_settled_by_finding_the_job() {
    let w = world();
    // Every attempt the SDK makes reaches Bedrock, and every answer is lost.
    lock(&w.bedrock).create_errors = vec!["lost"; 3];
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    let doc = w.doc(&batch_id);
    assert_eq!(doc.bedrock.jobs[0].job_arn, None);
    assert!(
        doc.bedrock.jobs[0].create_unknown,
        "the outcome is unknown, not assumed"
    );
    assert_eq!(lock(&w.bedrock).jobs.len(), 1, "the job exists at Bedrock");
    // The next turn finds it by name before anything else.
    w.check(&batch_id).await;
    let doc = w.doc(&batch_id);
    let fake = lock(&w.bedrock).jobs.clone();
    assert_eq!(fake.len(), 1, "no second job");
    assert_eq!(doc.bedrock.jobs[0].job_arn.as_deref(), Some(fake[0].arn.as_str()));
    assert!(!doc.bedrock.jobs[0].create_unknown);
}

#[tokio::test]
async fn cancel_of_a_job_whose_create_was_lost_stops_the_real_job() {
    let w = world();
    lock(&w.bedrock).create_errors = vec!["lost"; 3];
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    w.put(IN, &format!("cancel/{batch_id}"), b"");
    w.check(&batch_id).await;
    let doc = w.doc(&batch_id);
    assert_eq!(
        doc.bedrock.jobs[0].status, "Stopping",
        "found and stopped, not marked Stopped"
    );
    assert_eq!(lock(&w.bedrock).stops.len(), 1);
}

#[tokio::test]
async fn a_cancel_marker_event_stops_jobs_at_once() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    w.set_status(0, "InProgress");
    let key = format!("cancel/{batch_id}");
    w.put(IN, &key, b"");
    let out = submit::handle(&w.deps, w.event(&key)).await.expect("cancel");
    assert_eq!(
        out,
        vec![Submitted::Cancelling {
            batch_id: batch_id.clone(),
            stopping: 1
        }]
    );
    assert_eq!(lock(&w.bedrock).stops.len(), 1);
    let doc = w.doc(&batch_id);
    assert!(doc.bedrock.cancel_requested);
    assert_eq!(doc.status, BatchStatus::Cancelling);
    // A marker for a batch that does not exist changes nothing.
    let out = submit::handle(&w.deps, w.event("cancel/nope-0000000000000000"))
        .await
        .expect("cancel");
    assert!(matches!(&out[0], Submitted::CancelIgnored { .. }));
}

#[tokio::test]
async fn a_terminal_batch_never_goes_back_and_finalize_runs_again_harmlessly() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    w.set_status(0, "Completed");
    w.bedrock_answers(&batch_id, 0, &[]);
    assert!(w.check(&batch_id).await.all_done);
    let first = w.finalize(&batch_id, None).await;
    let output = w.get(OUT, &format!("results/{batch_id}/output.jsonl"));
    let doc = w.doc(&batch_id);
    assert_eq!(doc.status, BatchStatus::Completed);
    // A duplicate event, a late turn of the loop and a second finalize change nothing.
    let again = submit::handle(&w.deps, w.event("inbox/f.jsonl")).await.expect("submit");
    assert!(matches!(&again[0], Submitted::Duplicate { .. }));
    assert!(w.check(&batch_id).await.all_done);
    assert_eq!(w.finalize(&batch_id, None).await, first);
    assert_eq!(w.doc(&batch_id), doc);
    assert_eq!(w.get(OUT, &format!("results/{batch_id}/output.jsonl")), output);
}

#[tokio::test]
async fn finalize_saves_finalizing_first_and_a_rerun_writes_the_same_files() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    w.set_status(0, "Completed");
    w.bedrock_answers(&batch_id, 0, &[]);
    w.check(&batch_id).await;
    w.finalize(&batch_id, None).await;
    let output = w.get(OUT, &format!("results/{batch_id}/output.jsonl"));
    // As if the first finalize had died after its first write: batch.json back to finalizing.
    let mut doc = w.doc(&batch_id);
    assert!(doc.finalizing_at.is_some());
    doc.status = BatchStatus::Finalizing;
    doc.completed_at = None;
    w.put(
        OUT,
        &format!("results/{batch_id}/batch.json"),
        &serde_json::to_vec(&doc).expect("json"),
    );
    w.finalize(&batch_id, None).await;
    assert_eq!(
        w.get(OUT, &format!("results/{batch_id}/output.jsonl")),
        output,
        "same ids, same created"
    );
    assert_eq!(w.doc(&batch_id).status, BatchStatus::Completed);
}

#[tokio::test]
async fn the_failure_path_finds_and_stops_every_job_then_waits_for_stopped() {
    let w = world_with(&[("CHECK_JOBS_TIMEOUT_SECONDS", "1")]);
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    w.set_status(0, "InProgress");
    // batch.json lost the job's ARN (the create's answer was lost, say): the stop path lists Bedrock.
    let mut doc = w.doc(&batch_id);
    doc.bedrock.jobs[0].job_arn = None;
    w.put(
        OUT,
        &format!("results/{batch_id}/batch.json"),
        &serde_json::to_vec(&doc).expect("json"),
    );
    let failure = json!({"Error": "BatchdropFatalError", "Cause": "{\"errorType\":\"BatchdropFatalError\",\"errorMessage\":\"denied\"}"});
    let mut input = CheckInput::new(&batch_id);
    input.failure = Some(failure.clone());
    let out = check::handle(&w.deps, input.clone()).await.expect("stop turn");
    assert!(!out.all_done, "the job is Stopping, not Stopped");
    assert_eq!(out.failure, Some(failure));
    assert_eq!(lock(&w.bedrock).stops.len(), 1);
    let doc = w.doc(&batch_id);
    assert!(doc.bedrock.jobs[0].job_arn.is_some(), "found by name");
    assert_eq!(doc.bedrock.failure.as_deref(), Some("BatchdropFatalError: denied"));
    w.set_status(0, "Stopped");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let out = check::handle(&w.deps, CheckInput { polls: 1, ..input })
        .await
        .expect("stop turn");
    assert!(out.all_done);
    assert_eq!(w.doc(&batch_id).bedrock.jobs[0].status, "Stopped");
}

#[tokio::test]
async fn jobs_that_wait_past_the_queue_window_expire_without_being_created() {
    let w = world_with(&[("QUEUE_TIMEOUT_HOURS", "1")]);
    lock(&w.bedrock).create_errors = vec!["quota"];
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    let mut doc = w.doc(&batch_id);
    doc.created_at -= 2 * 3600;
    w.put(
        OUT,
        &format!("results/{batch_id}/batch.json"),
        &serde_json::to_vec(&doc).expect("json"),
    );
    assert!(w.check(&batch_id).await.all_done);
    assert!(lock(&w.bedrock).jobs.is_empty());
    let detail = w.finalize(&batch_id, None).await;
    assert_eq!(detail.status, BatchStatus::Expired);
    let errors = w.jsonl(OUT, &format!("results/{batch_id}/errors.jsonl"));
    assert_eq!(errors.len(), 100);
    assert!(errors.iter().all(|e| e["error"]["code"] == "batch_expired"));
}

#[tokio::test]
async fn a_batch_that_outlives_every_bound_fails_instead_of_polling_forever() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    let mut input = CheckInput::new(&batch_id);
    input.polls = check::POLL_BUDGET;
    let err = check::handle(&w.deps, input).await.expect_err("over budget");
    assert_eq!(err.error_type(), "BatchdropFatalError");
    assert!(err.to_string().contains("longer than any batch can last"), "{err}");
}

#[tokio::test]
async fn a_missing_batch_document_is_fatal_but_an_outage_is_ridden_out() {
    let w = world_with(&[("OUTAGE_BUDGET_HOURS", "1")]);
    // No batch.json at all: nothing to wait for.
    let err = check::handle(&w.deps, CheckInput::new("gone-0000000000000000"))
        .await
        .expect_err("missing");
    assert_eq!(err.error_type(), "BatchdropFatalError");
    // The outage budget: an outage that began long ago fails the batch, with the last error.
    let since = batchdrop::pipeline::now() - 3601;
    let out = check::handle(
        &w.deps,
        CheckInput {
            outage_since: Some(since),
            ..CheckInput::new("gone-0000000000000000")
        },
    )
    .await;
    assert!(out.is_err());
}

#[tokio::test]
async fn outage_turns_are_ridden_out_and_count_against_the_poll_budgets() {
    let w = world();
    let (batch_id, _) = w
        .submit_and_create("inbox/slow.jsonl", &lines(100, "r", json!({})))
        .await;
    assert!(batch_id.starts_with("slow-"));
    // S3 answers 503 ServiceUnavailable to every read of batch.json for a while: the turn waits instead of failing.
    SLOW_READS.store(1000, std::sync::atomic::Ordering::SeqCst);
    let out = check::handle(&w.deps, CheckInput::new(&batch_id))
        .await
        .expect("ridden out");
    assert!(!out.all_done);
    assert!(out.outage_since.is_some() && out.outage_polls == 1);
    assert!(
        out.last_error
            .as_deref()
            .is_some_and(|e| e.contains("ServiceUnavailable")),
        "{out:?}"
    );
    // Still failing on the poll budget's last turn: the batch fails instead of waiting again.
    let mut input = CheckInput::new(&batch_id);
    input.outage_since = out.outage_since;
    input.outage_polls = 3;
    input.polls = check::POLL_BUDGET - 1;
    let err = check::handle(&w.deps, input.clone()).await.expect_err("over budget");
    assert_eq!(err.error_type(), "BatchdropFatalError");
    assert!(err.to_string().contains("ServiceUnavailable"), "{err}");
    // The stop loop counts its own turns: a failure late in a long batch still gets its stop turns.
    input.failure = Some(json!({"Error": "BatchdropFatalError", "Cause": "x"}));
    let out = check::handle(&w.deps, input.clone())
        .await
        .expect("stop turn ridden out");
    assert_eq!(
        (out.all_done, out.stop_polls, out.polls),
        (false, 1, check::POLL_BUDGET - 1)
    );
    input.stop_polls = check::STOP_POLL_BUDGET - 1;
    let out = check::handle(&w.deps, input).await.expect("stop loop gives up");
    assert!(
        out.all_done,
        "the stop loop's budget is spent: finalize delivers what it can"
    );
    // Once S3 answers again, the loop goes on.
    SLOW_READS.store(0, std::sync::atomic::Ordering::SeqCst);
    let out = check::handle(&w.deps, CheckInput::new(&batch_id)).await.expect("turn");
    assert_eq!((out.outage_since, out.outage_polls), (None, 0));
}

#[tokio::test]
async fn a_create_with_an_unknown_outcome_that_never_took_effect_is_made_again() {
    let w = world();
    lock(&w.bedrock).create_errors = vec!["internal"; 3];
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    assert!(w.doc(&batch_id).bedrock.jobs[0].create_unknown);
    assert!(lock(&w.bedrock).jobs.is_empty());
    // Bedrock answers again; the next turn looks for the job, finds nothing, and creates it (same token).
    lock(&w.bedrock).create_errors.clear();
    w.check(&batch_id).await;
    let doc = w.doc(&batch_id);
    assert_eq!(lock(&w.bedrock).jobs.len(), 1);
    assert!(doc.bedrock.jobs[0].job_arn.is_some());
    assert!(!doc.bedrock.jobs[0].create_unknown);
}

#[tokio::test]
async fn a_job_created_by_a_racing_writer_is_not_hidden_by_a_decision_made_while_it_seemed_unborn() {
    use batchdrop::pipeline::jobs::merge_seen;
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(100, "r", json!({}))).await;
    let doc = w.doc(&batch_id);
    // One writer cancelled the queued job (no ARN then); another, racing, had created it.
    let mut stored = doc.bedrock.jobs.clone();
    stored[0].job_arn = None;
    stored[0].status = "Stopped".into();
    let seen = doc.bedrock.jobs.clone();
    merge_seen(&mut stored, &seen);
    assert_eq!(stored[0].job_arn, seen[0].job_arn);
    assert_eq!(stored[0].status, "Submitted", "still active, so the next turn stops it");
    assert!(stored[0].is_active());
}

#[tokio::test]
async fn wake_a_job_event_completes_the_parked_wait_at_once() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(120, "r", json!({}))).await;
    assert!(matches!(w.park(&batch_id, "t1", 1).await, Woke::Parked { .. }));
    assert_eq!(w.doc(&batch_id).bedrock.wake.token.as_deref(), Some("t1"));
    w.set_status(0, "Completed");
    assert!(matches!(
        w.job_event(&batch_id, 0, "Completed").await,
        Woke::Woken { .. }
    ));
    assert_eq!(w.sent(), [("t1".to_string(), true)]);
    // A duplicate of the event finds the token taken: counted, nothing else.
    assert!(matches!(
        w.job_event(&batch_id, 0, "Completed").await,
        Woke::Counted { .. }
    ));
    // The woken check answers done; its record of the wake-ups lets the next park wait.
    assert!(w.check(&batch_id).await.all_done);
    let doc = w.doc(&batch_id);
    assert_eq!(doc.bedrock.wake.requests, 2);
    assert_eq!(doc.bedrock.wake.seen, 2);
}

#[tokio::test]
async fn wake_an_event_before_the_park_is_not_lost() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(120, "r", json!({}))).await;
    // The job ends after the check read Bedrock, before the loop parked: no token yet.
    assert!(matches!(
        w.job_event(&batch_id, 0, "Completed").await,
        Woke::Counted { .. }
    ));
    assert!(w.sent().is_empty());
    // The park finds a wake-up the latest check did not answer, and lets the loop go at once.
    assert!(matches!(w.park(&batch_id, "t1", 1).await, Woke::Woken { .. }));
    assert_eq!(w.sent(), [("t1".to_string(), true)]);
    // After a check has begun since that wake-up, the next park waits.
    w.check(&batch_id).await;
    assert!(matches!(w.park(&batch_id, "t2", 2).await, Woke::Parked { .. }));
    assert_eq!(w.sent().len(), 1);
}

#[tokio::test]
async fn wake_events_of_other_jobs_stacks_and_finished_batches_are_ignored() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(120, "r", json!({}))).await;
    w.park(&batch_id, "t1", 1).await;
    let doc = w.doc(&batch_id);
    let ours = &doc.bedrock.jobs[0];
    let arn = ours.job_arn.clone().expect("created");
    let event = |name: &str, arn: &str| JobEvent {
        batch_job_name: name.to_string(),
        batch_job_arn: arn.to_string(),
        status: "Completed".to_string(),
    };
    for (name, arn) in [
        // Another tool's job: not named as batchdrop names its jobs.
        ("my-own-job", arn.as_str()),
        // Another stack's batch: no such batch.json in this deployment.
        ("other-0123456789abcdef-job0", arn.as_str()),
        // A job of this batch's name but not the job batch.json lists.
        (
            ours.job_name.as_str(),
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/zzzzzzzzzzzz",
        ),
        // A job index the batch does not have.
        (&format!("{batch_id}-job7"), arn.as_str()),
    ] {
        let woke = w.bedrock_event(&event(name, arn)).await;
        assert!(matches!(woke, Woke::Ignored { .. }), "{name}: {woke:?}");
    }
    // A Bedrock event of another kind, and input that is neither.
    let other = json!({"source": "aws.bedrock", "detail-type": "Model Customization Job State Change", "detail": {}});
    assert!(matches!(wake::handle(&w.deps, other).await, Ok(Woke::Ignored { .. })));
    assert!(wake::handle(&w.deps, json!({"hello": 1})).await.is_err());
    assert!(w.sent().is_empty());
    assert_eq!(w.doc(&batch_id).bedrock.wake.requests, 0);

    // Once the batch has ended, its jobs' late events change nothing, and a park lets go at once.
    w.set_status(0, "Completed");
    w.bedrock_answers(&batch_id, 0, &[]);
    assert!(w.check(&batch_id).await.all_done);
    w.finalize(&batch_id, None).await;
    let before = w.doc(&batch_id);
    assert!(matches!(
        w.job_event(&batch_id, 0, "Completed").await,
        Woke::Ignored { .. }
    ));
    assert_eq!(w.doc(&batch_id), before);
    assert!(matches!(w.park(&batch_id, "t9", 3).await, Woke::Woken { .. }));
}

#[tokio::test]
async fn wake_a_stale_token_is_harmless() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(120, "r", json!({}))).await;
    // The parked wait timed out before the event came: Step Functions refuses its token.
    w.park(&batch_id, "stale-t1", 1).await;
    let woke = w.job_event(&batch_id, 0, "Completed").await;
    assert!(matches!(woke, Woke::Counted { .. }), "{woke:?}");
    assert_eq!(w.sent(), [("stale-t1".to_string(), false)]);
    // The check that the timeout led to began before the wake-up: the next park lets the loop go.
    assert!(matches!(w.park(&batch_id, "t2", 2).await, Woke::Woken { .. }));
}

#[tokio::test]
async fn wake_a_cancel_marker_wakes_the_loop() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(120, "r", json!({}))).await;
    w.set_status(0, "InProgress");
    w.park(&batch_id, "t1", 1).await;
    let key = format!("cancel/{batch_id}");
    w.put(IN, &key, b"");
    submit::handle(&w.deps, w.event(&key)).await.expect("cancel");
    assert_eq!(w.sent(), [("t1".to_string(), true)]);
    assert!(w.doc(&batch_id).bedrock.cancel_requested);
}

#[tokio::test]
async fn wake_past_half_the_poll_budget_the_loop_only_polls() {
    let w = world();
    let (batch_id, _) = w.submit_and_create("inbox/f.jsonl", &lines(120, "r", json!({}))).await;
    let woke = w.park(&batch_id, "t1", wake::WAKE_POLL_LIMIT).await;
    assert!(matches!(woke, Woke::Parked { .. }), "{woke:?}");
    assert_eq!(w.doc(&batch_id).bedrock.wake.token, None);
    w.job_event(&batch_id, 0, "Completed").await;
    assert!(w.sent().is_empty());
}
