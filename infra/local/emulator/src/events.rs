//! Bedrock's job state-change events. On AWS every status change of a batch job is published, best effort, to the
//! account's default EventBridge bus: source `aws.bedrock`, detail-type `Batch Inference Job State Change`, the job
//! ARN as the one resource, and a detail naming the job, its model (always as a foundation-model ARN, whatever id
//! the job was created with), the new status and, for a failed job, the failure message; no record counts. With
//! `BEDROCK_EMULATOR_EVENTS_URL` set the emulator sends the same event to that EventBridge endpoint (moto locally)
//! on every status change it makes; unset, it sends nothing.
//!
//! The request is PutEvents on the JSON 1.1 wire, written here over a plain TCP connection: one small POST per
//! event does not justify an SDK crate, and the endpoints this talks to are local plain HTTP. It carries a SigV4
//! credential scope (service `events`, the emulator's region) with a dummy signature: moto and the fault proxy read
//! the service and region from the scope and never check the signature.
//!
//! Sending never holds up a job: the status change only decides what to send (under the store lock, so that the
//! fault decisions follow the order of the changes) and spawns the sends. A send that fails (refused connection,
//! an error answer, a refused entry, no answer within [`SEND_TIMEOUT`]) is logged and counted, never retried.
//!
//! Event faults (`POST /_emulator/events`): a drop rate and a duplicate rate, drawn per event from a seeded
//! generator, so that one seed and one sequence of status changes give the same drops and duplicates every time.
//! A dropped event is never sent; a duplicated one is sent twice at once, as two PutEvents calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clock::{self, Millis};
use crate::ids::SplitMix64;
use crate::job::{Job, JobStatus};

pub const SOURCE: &str = "aws.bedrock";
pub const DETAIL_TYPE: &str = "Batch Inference Job State Change";
/// A send with no complete answer by then counts as failed (a hung endpoint must not pile up connections).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// More than any PutEvents answer; a longer one is cut off and then fails to parse.
const MAX_REPLY_BYTES: u64 = 1 << 20;
/// The geography prefixes of cross-Region inference profile ids (`us.anthropic.claude-…`).
const PROFILE_GEOGRAPHIES: &[&str] = &["us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"];

/// The EventBridge endpoint of `BEDROCK_EMULATOR_EVENTS_URL`, and the access key its credential scope names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, what the connection goes to and what `Host` says.
    pub authority: String,
    pub path: String,
    pub access_key: String,
}

impl Endpoint {
    /// `http://host[:port][/path]`; the port defaults to 80 and the path to `/`.
    pub fn parse(url: &str, access_key: Option<String>) -> Result<Self, String> {
        let rest = url
            .trim()
            .strip_prefix("http://")
            .ok_or("must be an http:// URL (events go out over plain HTTP)")?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        if authority.is_empty() {
            return Err("has no host".into());
        }
        let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        }) && !authority.ends_with(']');
        Ok(Self {
            authority: if has_port {
                authority.to_string()
            } else {
                format!("{authority}:80")
            },
            path: path.to_string(),
            access_key: access_key.filter(|k| !k.is_empty()).unwrap_or_else(|| "test".into()),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// The model as the event names it: a foundation-model ARN, also for a job created with a bare model id or a
/// cross-Region inference profile (id or ARN), whose geography prefix goes.
pub fn foundation_model_arn(region: &str, model_id: &str) -> String {
    if model_id.starts_with("arn:") && model_id.contains(":foundation-model/") {
        return model_id.to_string();
    }
    let id = if model_id.starts_with("arn:") {
        model_id.rsplit_once('/').map_or(model_id, |(_, id)| id)
    } else {
        model_id
    };
    let id = match id.split_once('.') {
        Some((geography, rest)) if PROFILE_GEOGRAPHIES.contains(&geography) => rest,
        _ => id,
    };
    format!("arn:aws:bedrock:{region}::foundation-model/{id}")
}

/// The event's `detail`, in Bedrock's field order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail<'a> {
    pub version: &'static str,
    pub account_id: &'a str,
    pub batch_job_name: &'a str,
    pub batch_job_arn: &'a str,
    pub batch_model_id: String,
    pub status: &'static str,
    /// Empty unless the job failed.
    pub failure_message: &'a str,
    pub creation_time: String,
}

impl<'a> Detail<'a> {
    pub fn of(job: &'a Job, region: &str, account_id: &'a str) -> Self {
        let failure_message = match job.status {
            JobStatus::Failed => job.message.as_deref().unwrap_or_default(),
            _ => "",
        };
        Self {
            version: "0.0",
            account_id,
            batch_job_name: &job.request.job_name,
            batch_job_arn: &job.arn,
            batch_model_id: foundation_model_arn(region, &job.request.model_id),
            status: job.status.as_str(),
            failure_message,
            creation_time: clock::format_console(job.submit_time),
        }
    }
}

/// One PutEvents entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry<'a> {
    source: &'static str,
    detail_type: &'static str,
    /// EventBridge takes the detail as a JSON string.
    detail: String,
    resources: [&'a str; 1],
    event_bus_name: &'static str,
    /// When the status changed: the event's `time` (epoch seconds, as the JSON protocols send timestamps).
    time: f64,
}

/// The whole PutEvents request (head and body) announcing the job's current status.
pub fn put_events_request(job: &Job, endpoint: &Endpoint, region: &str, account_id: &str) -> Vec<u8> {
    let detail = serde_json::to_string(&Detail::of(job, region, account_id)).unwrap_or_else(|_| "{}".into());
    let entry = Entry {
        source: SOURCE,
        detail_type: DETAIL_TYPE,
        detail,
        resources: [&job.arn],
        event_bus_name: "default",
        time: job.last_modified_time as f64 / 1000.0,
    };
    let body = serde_json::to_vec(&serde_json::json!({ "Entries": [entry] })).unwrap_or_default();
    let date = amz_date(clock::now());
    let day = &date[..8];
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: AWSEvents.PutEvents\r\nX-Amz-Date: {date}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={key}/{day}/{region}/events/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={signature}\r\n\
         User-Agent: bedrock-emulator/{version}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n",
        path = endpoint.path,
        host = endpoint.authority,
        key = endpoint.access_key,
        signature = "0".repeat(64),
        version = env!("CARGO_PKG_VERSION"),
        length = body.len(),
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// SigV4's `X-Amz-Date`: `20240828T224753Z`.
fn amz_date(ms: Millis) -> String {
    let iso = clock::format(ms);
    let basic: String = iso[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    basic + "Z"
}

/// Whether EventBridge took the entry, from its raw HTTP answer.
pub fn check_reply(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("the answer is not an HTTP response")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the answer has no status line")?;
    let chunked = head.split("\r\n").skip(1).any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked { dechunk(body)? } else { body.to_string() };
    if status != 200 {
        let shown: String = body.chars().take(300).collect();
        return Err(format!("HTTP {status}: {shown}"));
    }
    let reply: Value = serde_json::from_str(&body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    match reply.get("FailedEntryCount").and_then(Value::as_u64) {
        Some(0) => Ok(()),
        Some(_) => Err(format!("EventBridge refused the entry: {}", reply["Entries"])),
        None => Err(format!("not a PutEvents answer: {reply}")),
    }
}

/// A chunked body's data (the local endpoints answer with a length, but a proxy may re-chunk).
fn dechunk(mut body: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (line, rest) = body.split_once("\r\n").ok_or("a chunked body ended early")?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
            .map_err(|_| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let data = rest.get(..size).ok_or("a chunked body ended early")?;
        out.push_str(data);
        body = rest.get(size..).unwrap_or_default().trim_start_matches("\r\n");
    }
}

async fn send(endpoint: &Endpoint, request: &[u8]) -> Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(&endpoint.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", endpoint.authority))?;
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut raw = Vec::new();
        stream
            .take(MAX_REPLY_BYTES)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        check_reply(&raw)
    };
    tokio::time::timeout(SEND_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", SEND_TIMEOUT.as_secs())))
}

/// The body of `POST /_emulator/events`: any subset; the generator restarts from `seed` (the given one, else
/// the current one) on every change, so that a test that sets its rates gets the same decisions every run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    pub drop: Option<f64>,
    pub duplicate: Option<f64>,
    pub seed: Option<u64>,
}

#[derive(Debug, Clone)]
struct Switch {
    drop: f64,
    duplicate: f64,
    seed: u64,
    rng: SplitMix64,
}

impl Switch {
    fn new(seed: u64) -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            seed,
            rng: SplitMix64::new(seed),
        }
    }

    fn apply(&mut self, p: &FaultsPatch) -> Result<(), String> {
        for (name, rate) in [("drop", p.drop), ("duplicate", p.duplicate)] {
            if rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                return Err(format!("{name} must be a rate within 0..=1"));
            }
        }
        self.drop = p.drop.unwrap_or(self.drop);
        self.duplicate = p.duplicate.unwrap_or(self.duplicate);
        self.seed = p.seed.unwrap_or(self.seed);
        self.rng = SplitMix64::new(self.seed);
        Ok(())
    }

    /// How many copies of the next event go out: 0 (dropped), 1, or 2 (duplicated). Two draws per event
    /// whatever the rates, so that the duplicate decisions do not shift when only the drop rate changes.
    fn copies(&mut self) -> u8 {
        let dropped = unit(&mut self.rng) < self.drop;
        let duplicated = unit(&mut self.rng) < self.duplicate;
        match (dropped, duplicated) {
            (true, _) => 0,
            (false, true) => 2,
            (false, false) => 1,
        }
    }
}

/// Uniform in `0..1`.
fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone, Copy)]
enum Count {
    Delivered,
    Dropped,
    Duplicated,
    Failed,
}

/// Shared with the send tasks. A reset starts a new epoch: a send begun before it no longer counts.
#[derive(Debug, Default)]
struct Counters {
    epoch: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn add(&self, epoch: u64, count: Count) {
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        let counter = match count {
            Count::Delivered => &self.delivered,
            Count::Dropped => &self.dropped,
            Count::Duplicated => &self.duplicated,
            Count::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for c in [&self.delivered, &self.dropped, &self.duplicated, &self.failed] {
            c.store(0, Ordering::SeqCst);
        }
    }
}

/// `GET /_emulator/events`: where events go, the fault rates, and what happened to the events so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// `false` when `BEDROCK_EMULATOR_EVENTS_URL` is unset: nothing is sent or counted.
    pub enabled: bool,
    pub url: Option<String>,
    pub drop: f64,
    pub duplicate: f64,
    pub seed: u64,
    /// Copies EventBridge accepted (a duplicated event counts two).
    pub delivered: u64,
    /// Events never sent (drop rate).
    pub dropped: u64,
    /// Events sent twice (duplicate rate).
    pub duplicated: u64,
    /// Copies whose send failed: no connection, an error answer, a refused entry, or no answer in time.
    pub failed: u64,
}

/// The events of one emulator: where they go, the fault switch and the counters.
#[derive(Debug)]
pub struct Events {
    endpoint: Option<Arc<Endpoint>>,
    region: String,
    account_id: String,
    switch: Mutex<Switch>,
    counters: Arc<Counters>,
}

/// The seed of the event faults until a `POST /_emulator/events` names one.
pub const DEFAULT_SEED: u64 = 0;

impl Events {
    pub fn new(endpoint: Option<Endpoint>, region: &str, account_id: &str) -> Self {
        Self {
            endpoint: endpoint.map(Arc::new),
            region: region.to_string(),
            account_id: account_id.to_string(),
            switch: Mutex::new(Switch::new(DEFAULT_SEED)),
            counters: Arc::default(),
        }
    }

    fn switch(&self) -> std::sync::MutexGuard<'_, Switch> {
        self.switch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The job has just changed status: decide the event's fate and spawn its sends. Called with the store
    /// locked, right after the change; it never waits on the network.
    pub fn job_changed(&self, job: &Job) {
        let Some(endpoint) = self.endpoint.clone() else {
            return;
        };
        let copies = self.switch().copies();
        let epoch = self.counters.epoch.load(Ordering::SeqCst);
        let status = job.status.as_str();
        if copies == 0 {
            self.counters.add(epoch, Count::Dropped);
            tracing::info!(job = %job.id, status, "event dropped (event fault)");
            return;
        }
        if copies == 2 {
            self.counters.add(epoch, Count::Duplicated);
            tracing::info!(job = %job.id, status, "event sent twice (event fault)");
        }
        let request: Arc<[u8]> = put_events_request(job, &endpoint, &self.region, &self.account_id).into();
        for _ in 0..copies {
            let (endpoint, request, counters) = (endpoint.clone(), request.clone(), self.counters.clone());
            let job_id = job.id.clone();
            tokio::spawn(async move {
                match send(&endpoint, &request).await {
                    Ok(()) => {
                        counters.add(epoch, Count::Delivered);
                        tracing::debug!(job = %job_id, status, "event delivered");
                    }
                    Err(error) => {
                        counters.add(epoch, Count::Failed);
                        tracing::warn!(job = %job_id, status, %error, "event not delivered (not retried)");
                    }
                }
            });
        }
    }

    pub fn configure(&self, patch: &FaultsPatch) -> Result<(), String> {
        self.switch().apply(patch)
    }

    /// Rates back to none, the generator to the default seed, the counters to zero.
    pub fn reset(&self) {
        *self.switch() = Switch::new(DEFAULT_SEED);
        self.counters.reset();
    }

    pub fn stats(&self) -> Stats {
        let switch = self.switch().clone();
        let c = &self.counters;
        Stats {
            enabled: self.endpoint.is_some(),
            url: self.endpoint.as_ref().map(|e| e.url()),
            drop: switch.drop,
            duplicate: switch.duplicate,
            seed: switch.seed,
            delivered: c.delivered.load(Ordering::SeqCst),
            dropped: c.dropped.load(Ordering::SeqCst),
            duplicated: c.duplicated.load(Ordering::SeqCst),
            failed: c.failed.load(Ordering::SeqCst),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validate::create_request;

    fn job(status: JobStatus, model_id: &str) -> Job {
        let request = create_request(&json!({
            "jobName": "input.jsonl-01-job1",
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "modelId": model_id,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bucket/in.jsonl"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bucket/out/"}}
        }))
        .expect("valid");
        Job {
            id: "abcdefghwxyz".into(),
            arn: "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz".into(),
            seq: 1,
            request,
            status,
            message: Some("The input is not JSONL.".into()),
            submit_time: 1_724_885_273_123,
            last_modified_time: 1_724_885_910_500,
            end_time: None,
            timeout_hours: 24,
            counters: None,
        }
    }

    #[test]
    fn parses_the_endpoint() {
        let e = Endpoint::parse("http://127.0.0.1:5057", None).expect("valid");
        assert_eq!(
            (e.authority.as_str(), e.path.as_str(), e.access_key.as_str()),
            ("127.0.0.1:5057", "/", "test")
        );
        let e = Endpoint::parse("http://events.local/bus", Some("AKID".into())).expect("valid");
        assert_eq!(
            (e.authority.as_str(), e.path.as_str(), e.access_key.as_str()),
            ("events.local:80", "/bus", "AKID")
        );
        assert!(Endpoint::parse("https://events.us-east-1.amazonaws.com", None).is_err());
        assert!(Endpoint::parse("http:///", None).is_err());
    }

    #[test]
    fn the_model_is_always_a_foundation_model_arn() {
        let arn = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0";
        for id in [
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
            arn,
        ] {
            assert_eq!(foundation_model_arn("us-east-1", id), arn, "{id}");
        }
        assert_eq!(
            foundation_model_arn("eu-west-1", "amazon.nova-lite-v1:0"),
            "arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-lite-v1:0"
        );
    }

    #[test]
    fn the_request_is_put_events_with_the_bedrock_detail() {
        let endpoint = Endpoint::parse("http://127.0.0.1:5057", None).expect("valid");
        let raw = put_events_request(
            &job(JobStatus::Failed, "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            &endpoint,
            "us-east-1",
            "123456789012",
        );
        let text = String::from_utf8(raw).expect("utf8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("POST / HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nX-Amz-Target: AWSEvents.PutEvents\r\n"), "{head}");
        assert!(
            head.contains("\r\nContent-Type: application/x-amz-json-1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("/us-east-1/events/aws4_request, "), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
            "{head}"
        );
        let body: Value = serde_json::from_str(body).expect("JSON");
        let entry = &body["Entries"][0];
        assert_eq!(body["Entries"].as_array().map(Vec::len), Some(1));
        assert_eq!(entry["Source"], "aws.bedrock");
        assert_eq!(entry["DetailType"], "Batch Inference Job State Change");
        assert_eq!(entry["EventBusName"], "default");
        assert_eq!(entry["Resources"], json!([job(JobStatus::Failed, "x").arn]));
        assert_eq!(entry["Time"], json!(1_724_885_910.5));
        let detail_text = entry["Detail"].as_str().expect("Detail is a JSON string");
        let keys = [
            "version",
            "accountId",
            "batchJobName",
            "batchJobArn",
            "batchModelId",
            "status",
            "failureMessage",
            "creationTime",
        ];
        let positions: Vec<Option<usize>> = keys.iter().map(|k| detail_text.find(&format!("\"{k}\":"))).collect();
        assert!(
            positions.windows(2).all(|w| matches!(w, [Some(a), Some(b)] if a < b)),
            "Bedrock's field order: {detail_text}"
        );
        let detail: Value = serde_json::from_str(detail_text).expect("detail JSON");
        assert_eq!(
            detail,
            json!({
                "version": "0.0",
                "accountId": "123456789012",
                "batchJobName": "input.jsonl-01-job1",
                "batchJobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz",
                "batchModelId": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
                "status": "Failed",
                "failureMessage": "The input is not JSONL.",
                "creationTime": "Aug 28, 2024, 10:47:53 PM"
            })
        );
        let completed = job(JobStatus::Completed, "amazon.nova-lite-v1:0");
        let detail = Detail::of(&completed, "us-east-1", "123456789012");
        assert_eq!(detail.failure_message, "", "only a failed job carries its message");
    }

    #[test]
    fn reads_the_answer() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n{\"FailedEntryCount\": 0, \"Entries\": [{\"EventId\": \"e-1\"}]}";
        assert_eq!(check_reply(ok), Ok(()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"FailedEntryCou\r\nf\r\nnt\": 0, \"E\": 1}\r\n0\r\n\r\n";
        assert_eq!(check_reply(chunked), Ok(()));
        let refused =
            b"HTTP/1.1 200 OK\r\n\r\n{\"FailedEntryCount\": 1, \"Entries\": [{\"ErrorCode\": \"InvalidArgument\"}]}";
        assert!(check_reply(refused).is_err_and(|e| e.contains("InvalidArgument")));
        let error = b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"__type\": \"InternalException\"}";
        assert!(check_reply(error).is_err_and(|e| e.starts_with("HTTP 500")));
        assert!(check_reply(b"").is_err());
    }

    #[test]
    fn the_switch_is_seeded_and_exact_at_the_ends() {
        let decide = |drop: f64, duplicate: f64, seed: u64| {
            let mut s = Switch::new(DEFAULT_SEED);
            s.apply(&FaultsPatch {
                drop: Some(drop),
                duplicate: Some(duplicate),
                seed: Some(seed),
            })
            .expect("valid rates");
            (0..200).map(|_| s.copies()).collect::<Vec<u8>>()
        };
        assert_eq!(decide(0.5, 0.2, 7), decide(0.5, 0.2, 7));
        assert_ne!(decide(0.5, 0.2, 7), decide(0.5, 0.2, 8));
        assert!(decide(0.0, 0.0, 7).iter().all(|&c| c == 1));
        assert!(decide(1.0, 0.0, 7).iter().all(|&c| c == 0));
        assert!(decide(0.0, 1.0, 7).iter().all(|&c| c == 2));
        let mixed = decide(0.5, 0.2, 7);
        let dropped = mixed.iter().filter(|&&c| c == 0).count();
        assert!((70..=130).contains(&dropped), "{dropped} of 200 dropped at 0.5");
        let mut s = Switch::new(DEFAULT_SEED);
        for bad in [-0.1, 1.5, f64::NAN] {
            assert!(s
                .apply(&FaultsPatch {
                    drop: Some(bad),
                    ..FaultsPatch::default()
                })
                .is_err());
            assert!(s
                .apply(&FaultsPatch {
                    duplicate: Some(bad),
                    ..FaultsPatch::default()
                })
                .is_err());
        }
    }

    #[test]
    fn without_an_endpoint_nothing_is_sent_or_counted() {
        let events = Events::new(None, "us-east-1", "123456789012");
        events.job_changed(&job(JobStatus::Completed, "amazon.nova-lite-v1:0"));
        let stats = events.stats();
        assert!(!stats.enabled);
        assert_eq!(
            (stats.delivered, stats.dropped, stats.duplicated, stats.failed),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn a_reset_zeroes_the_counters_and_ignores_older_sends() {
        let counters = Counters::default();
        counters.add(0, Count::Delivered);
        counters.reset();
        counters.add(0, Count::Delivered);
        counters.add(1, Count::Failed);
        assert_eq!(counters.delivered.load(Ordering::SeqCst), 0);
        assert_eq!(counters.failed.load(Ordering::SeqCst), 1);
    }
}
