//! Processes (moto, the emulator), SDK clients and test data for the integration tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_bedrock::config::retry::RetryConfig;
use aws_sdk_bedrock::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig, ModelInvocationJobS3InputDataConfig,
    ModelInvocationJobS3OutputDataConfig, ModelInvocationJobStatus,
};
use serde_json::{json, Value};

pub const REGION: &str = "us-east-1";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/BedrockBatchRole";
pub const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";
pub const NOVA: &str = "amazon.nova-lite-v1:0";

pub struct Moto {
    pub endpoint: String,
}

static MOTO: OnceLock<Option<Moto>> = OnceLock::new();
static MOTO_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn stop_moto() {
    let pid = MOTO_PID.swap(0, Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) on the PID of the server this process started; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn start_moto(path: std::ffi::OsString) -> Moto {
    for _ in 0..3 {
        let port = free_port();
        let mut child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start MOTO_SERVER={path:?}: {e}"));
        let pid = i32::try_from(child.id()).expect("pid fits in i32");
        if MOTO_PID.swap(pid, Ordering::SeqCst) == 0 {
            // SAFETY: registers a plain extern "C" function with no captured state.
            unsafe {
                libc::atexit(stop_moto);
            }
        }
        if wait_for_port(port, &mut child, Duration::from_secs(60)) {
            return Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
            };
        }
        let _ = child.kill();
        let _ = child.wait();
        MOTO_PID.store(-1, Ordering::SeqCst);
    }
    panic!("moto_server did not start");
}

/// The shared moto server, or `None` (with a notice) when `MOTO_SERVER` is not set.
pub fn moto() -> Option<&'static Moto> {
    let moto = MOTO
        .get_or_init(|| {
            std::env::var_os("MOTO_SERVER")
                .filter(|p| !p.is_empty())
                .map(start_moto)
        })
        .as_ref();
    if moto.is_none() {
        // Written to the stderr handle, not with eprintln!, so that libtest's capture does not hide it; once.
        static NOTICE: std::sync::Once = std::sync::Once::new();
        NOTICE.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED bedrock-emulator integration tests: set MOTO_SERVER to the moto_server executable \
                 (PyPI moto[server]==5.2.5)"
            );
        });
    }
    moto
}

/// One emulator process, killed when dropped.
pub struct Emulator {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub endpoint: String,
}

impl Emulator {
    pub fn start(moto: &Moto, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bedrock-emulator"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BEDROCK_EMULATOR_")) {
            cmd.env_remove(k);
        }
        cmd.env("BEDROCK_EMULATOR_PORT", "0")
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", REGION)
            .env_remove("AWS_PROFILE")
            .env(
                "RUST_LOG",
                std::env::var("EMULATOR_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start bedrock-emulator");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the emulator's address");
        let Some(endpoint) = line
            .trim()
            .strip_prefix("bedrock-emulator listening on ")
            .map(String::from)
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the emulator did not start: {line:?}");
        };
        Self {
            child,
            _stdout: stdout,
            endpoint,
        }
    }

    /// Admin API call; panics unless it answers 200.
    pub fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let r = http(&self.endpoint, method, path, Some(&body.to_string()));
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        serde_json::from_str(&r.body).expect("admin JSON")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a test needs: the emulator, a Bedrock client without retries, an S3 client, a fresh bucket.
pub struct Env {
    pub emulator: Emulator,
    pub bedrock: aws_sdk_bedrock::Client,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

impl Env {
    /// Creates job `name` of `model` reading `s3://<bucket>/<key>` and writing under `out/`; its ARN.
    pub async fn start_job(&self, name: &str, model: &str, key: &str) -> String {
        create(
            &self.bedrock,
            name,
            model,
            &format!("s3://{}/{key}", self.bucket),
            &format!("s3://{}/out/", self.bucket),
        )
        .send()
        .await
        .expect("create")
        .job_arn
    }
}

pub async fn setup(test: &str, env: &[(&str, &str)]) -> Option<Env> {
    let moto = moto()?;
    let emulator = Emulator::start(moto, env);
    let bedrock = bedrock(&emulator.endpoint, RetryConfig::disabled());
    let s3 = s3(&moto.endpoint);
    let bucket = format!("{}-{}", test.replace('_', "-"), std::process::id());
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    Some(Env {
        emulator,
        bedrock,
        s3,
        bucket,
    })
}

pub fn bedrock(endpoint: &str, retry: RetryConfig) -> aws_sdk_bedrock::Client {
    let config = aws_sdk_bedrock::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .build();
    aws_sdk_bedrock::Client::from_conf(config)
}

pub fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A bare HTTP/1.1 request, for what the SDK hides (headers, raw paths, malformed bodies, the admin API).
pub fn http(endpoint: &str, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
    let host = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect to the emulator");
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    read_response(stream)
}

/// One call on an AWS JSON protocol (EventBridge `AWSEvents.*`, SQS `AmazonSQS.*`) to moto, with the credential
/// scope moto routes by (it checks no signature); panics unless it answers 200.
pub fn aws_json(endpoint: &str, service: &str, target: &str, body: &Value) -> Value {
    let host = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect to moto");
    let body = body.to_string();
    let version = if service == "sqs" { "1.0" } else { "1.1" };
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: {target}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20240101/{REGION}/{service}/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Type: application/x-amz-json-{version}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let r = read_response(stream);
    assert_eq!(r.status, 200, "{target}: {}", r.body);
    serde_json::from_str(&r.body).expect("JSON answer")
}

fn read_response(mut stream: TcpStream) -> HttpResponse {
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn input_config(uri: &str) -> ModelInvocationJobInputDataConfig {
    ModelInvocationJobInputDataConfig::S3InputDataConfig(
        ModelInvocationJobS3InputDataConfig::builder()
            .s3_uri(uri)
            .build()
            .expect("input config"),
    )
}

pub fn output_config(uri: &str) -> ModelInvocationJobOutputDataConfig {
    ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
        ModelInvocationJobS3OutputDataConfig::builder()
            .s3_uri(uri)
            .build()
            .expect("output config"),
    )
}

/// A create request with every required member set; tests adjust it.
pub fn create(
    client: &aws_sdk_bedrock::Client,
    name: &str,
    model: &str,
    input: &str,
    output: &str,
) -> aws_sdk_bedrock::operation::create_model_invocation_job::builders::CreateModelInvocationJobFluentBuilder {
    client
        .create_model_invocation_job()
        .job_name(name)
        .role_arn(ROLE)
        .model_id(model)
        .input_data_config(input_config(input))
        .output_data_config(output_config(output))
}

pub fn job_id(arn: &str) -> &str {
    arn.rsplit('/').next().expect("job id")
}

/// Polls until the job is terminal; returns the last Get and every status seen, in order, without repeats.
pub async fn wait_terminal(
    client: &aws_sdk_bedrock::Client,
    arn: &str,
    timeout: Duration,
) -> (GetModelInvocationJobOutput, Vec<ModelInvocationJobStatus>) {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<ModelInvocationJobStatus> = Vec::new();
    loop {
        let job = client
            .get_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await
            .expect("get job");
        let status = job.status().cloned().expect("status");
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if is_terminal(&status) {
            return (job, seen);
        }
        assert!(
            Instant::now() < deadline,
            "job {arn} still {status:?} after {timeout:?}; saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn is_terminal(s: &ModelInvocationJobStatus) -> bool {
    use ModelInvocationJobStatus as S;
    matches!(
        s,
        S::Completed | S::PartiallyCompleted | S::Failed | S::Stopped | S::Expired
    )
}

pub async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.into()))
        .send()
        .await
        .expect("put object");
}

pub async fn get_text(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let obj = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e:?}"));
    let bytes = obj.body.collect().await.expect("body").into_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf8")
}

pub async fn lines(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<Value> {
    get_text(s3, bucket, key)
        .await
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list objects");
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    keys.sort();
    keys
}

/// A JSONL file of `(recordId, modelInput)` records.
pub fn jsonl(records: &[(String, Value)]) -> String {
    records
        .iter()
        .map(|(id, input)| json!({"recordId": id, "modelInput": input}).to_string() + "\n")
        .collect()
}

pub fn claude_text(prompt: &str, max_tokens: u64) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    })
}

pub fn claude_tools(prompt: &str) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": prompt}],
        "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"]
        }}],
        "tool_choice": {"type": "auto"}
    })
}

pub fn nova_text(prompt: &str, max_tokens: u64) -> Value {
    json!({
        "schemaVersion": "messages-v1",
        "system": [{"text": "You are terse."}],
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": 0.5}
    })
}

pub fn nova_tools(prompt: &str) -> Value {
    json!({
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "lookup", "description": "Look up an order", "inputSchema": {"json": {
                "type": "object", "properties": {"order_id": {"type": "string"}, "count": {"type": "integer"}},
                "required": ["order_id", "count"]}}}}],
            "toolChoice": {"any": {}}
        }
    })
}

/// `n` Claude text records `R0000000000`…
pub fn claude_records(n: usize) -> Vec<(String, Value)> {
    (0..n)
        .map(|i| (format!("R{i:010}"), claude_text(&format!("Question {i}"), 200)))
        .collect()
}
