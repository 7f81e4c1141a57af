//! The job events, received as an application receives them: the emulator sends PutEvents to moto's EventBridge,
//! a rule matches the test's own jobs (by name prefix, since one moto serves every test) and sends them to an SQS
//! queue, and the test reads the queue. Then the event faults (drop and duplicate by seed), and endpoints that
//! refuse or never answer, which must not slow a job down.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use aws_sdk_bedrock::types::ModelInvocationJobStatus as Status;
use serde_json::{json, Value};

use crate::harness::{self, aws_json, claude_records, jsonl, moto, setup, Env, CLAUDE, REGION};

const ACCOUNT: &str = "123456789012";
const PROFILE: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A queue that gets every moto event whose job name starts with `prefix`; returns its URL.
fn events_queue(endpoint: &str, prefix: &str) -> String {
    let url = aws_json(endpoint, "sqs", "AmazonSQS.CreateQueue", &json!({"QueueName": prefix}))["QueueUrl"]
        .as_str()
        .expect("QueueUrl")
        .to_string();
    let pattern = json!({
        "source": ["aws.bedrock"],
        "detail-type": ["Batch Inference Job State Change"],
        "detail": {"batchJobName": [{"prefix": prefix}]}
    });
    aws_json(
        endpoint,
        "events",
        "AWSEvents.PutRule",
        &json!({"Name": prefix, "EventPattern": pattern.to_string(), "State": "ENABLED"}),
    );
    aws_json(
        endpoint,
        "events",
        "AWSEvents.PutTargets",
        &json!({"Rule": prefix, "Targets": [{"Id": "queue", "Arn": format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{prefix}")}]}),
    );
    url
}

/// Every event in the queue now (moto's queue answers at once; nothing waits).
fn receive(endpoint: &str, queue: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let reply = aws_json(
            endpoint,
            "sqs",
            "AmazonSQS.ReceiveMessage",
            &json!({"QueueUrl": queue, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0, "VisibilityTimeout": 600}),
        );
        let messages = reply["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            return events;
        }
        events.extend(
            messages
                .iter()
                .map(|m| serde_json::from_str::<Value>(m["Body"].as_str().expect("Body")).expect("event JSON")),
        );
    }
}

fn stats(env: &Env) -> Value {
    env.emulator.admin("GET", "/_emulator/events", json!({}))
}

/// Waits until every copy decided so far has been sent (delivered or failed); returns the counters.
async fn settled(env: &Env, events: u64) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let s = stats(env);
        let n = |k: &str| s[k].as_u64().expect("counter");
        if n("dropped") + n("delivered") + n("failed") == events + n("duplicated") {
            return s;
        }
        assert!(Instant::now() < deadline, "events not settled: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates one job per name on the same three-record input, runs them all to their end, returns the ARNs.
async fn run_jobs(env: &Env, names: &[String], model: &str) -> Vec<String> {
    let key = "in/events.jsonl";
    harness::put(&env.s3, &env.bucket, key, jsonl(&claude_records(3))).await;
    let mut arns = Vec::new();
    for name in names {
        arns.push(env.start_job(name, model, key).await);
    }
    for arn in &arns {
        harness::wait_terminal(&env.bedrock, arn, TIMEOUT).await;
    }
    arns
}

fn with_events<'a>(moto_endpoint: &'a str, step_ms: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("BEDROCK_EMULATOR_STEP_MS", step_ms),
        ("BEDROCK_EMULATOR_MIN_RECORDS", "1"),
        ("BEDROCK_EMULATOR_EVENTS_URL", moto_endpoint),
    ]
}

fn statuses_by_job(events: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut by_job: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        let arn = e["detail"]["batchJobArn"].as_str().expect("batchJobArn").to_string();
        by_job
            .entry(arn)
            .or_default()
            .push(e["detail"]["status"].as_str().expect("status").to_string());
    }
    for statuses in by_job.values_mut() {
        statuses.sort();
    }
    by_job
}

fn sorted(statuses: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_status_change_sends_bedrock_s_event() {
    let Some(moto) = moto() else {
        return;
    };
    let prefix = format!("evshape{}", std::process::id());
    let queue = events_queue(&moto.endpoint, &prefix);
    let Some(env) = setup("events-shape", &with_events(&moto.endpoint, "40")).await else {
        return;
    };
    env.emulator
        .admin("POST", "/_emulator/faults", json!({"match": "-bad-", "fault": "fail"}));

    let done = run_jobs(
        &env,
        &[format!("{prefix}-ok-job1"), format!("{prefix}-bad-job1")],
        PROFILE,
    )
    .await;
    // A job stopped while Submitted: Stopping (from the Stop call) and Stopped (from the runner).
    let key = "in/events.jsonl";
    let stopped = env.start_job(&format!("{prefix}-stop-job1"), CLAUDE, key).await;
    env.bedrock
        .stop_model_invocation_job()
        .job_identifier(&stopped)
        .send()
        .await
        .expect("stop");
    harness::wait_terminal(&env.bedrock, &stopped, TIMEOUT).await;

    let counters = settled(&env, 5 + 3 + 3).await;
    assert_eq!(counters["enabled"], true);
    assert_eq!(
        (
            &counters["delivered"],
            &counters["dropped"],
            &counters["duplicated"],
            &counters["failed"]
        ),
        (&json!(11), &json!(0), &json!(0), &json!(0)),
        "{counters}"
    );
    let events = receive(&moto.endpoint, &queue);
    assert_eq!(events.len(), 11, "{events:#?}");
    let by_job = statuses_by_job(&events);
    assert_eq!(
        by_job.get(&done[0]),
        Some(&sorted(&[
            "Submitted",
            "Validating",
            "Scheduled",
            "InProgress",
            "Completed"
        ]))
    );
    assert_eq!(
        by_job.get(&done[1]),
        Some(&sorted(&["Submitted", "Validating", "Failed"]))
    );
    assert_eq!(
        by_job.get(&stopped),
        Some(&sorted(&["Submitted", "Stopping", "Stopped"]))
    );

    let mut jobs = BTreeMap::new();
    for arn in done.iter().chain([&stopped]) {
        let job = env
            .bedrock
            .get_model_invocation_job()
            .job_identifier(arn)
            .send()
            .await
            .expect("get");
        jobs.insert(arn.clone(), job);
    }
    let envelope: BTreeSet<&str> = [
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    ]
    .into();
    let mut ids = BTreeSet::new();
    for e in &events {
        // EventBridge builds the envelope from the entry. moto's SQS targets leave out `account` (its default input
        // template lacks it; AWS has it, and moto_server.py's Lambda targets get it).
        let mut keys: BTreeSet<&str> = e
            .as_object()
            .expect("event object")
            .keys()
            .map(String::as_str)
            .collect();
        if let Some(account) = e.get("account") {
            assert_eq!(account, ACCOUNT);
        }
        keys.insert("account");
        assert_eq!(keys, envelope, "{e}");
        assert_eq!(e["version"], "0");
        assert_eq!(e["source"], "aws.bedrock");
        assert_eq!(e["detail-type"], "Batch Inference Job State Change");
        assert_eq!(e["region"], REGION);
        let time = e["time"].as_str().expect("time");
        assert!(
            time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "time {time}"
        );
        ids.insert(e["id"].as_str().expect("id").to_string());
        let arn = e["detail"]["batchJobArn"].as_str().expect("batchJobArn");
        assert_eq!(e["resources"], json!([arn]));
        let job = &jobs[arn];
        let status = e["detail"]["status"].as_str().expect("status");
        let failure = if status == "Failed" {
            job.message().expect("a failed job has a message")
        } else {
            ""
        };
        let model = if job.model_id() == PROFILE {
            "anthropic.claude-3-5-haiku-20241022-v1:0"
        } else {
            CLAUDE
        };
        let submitted = job.submit_time().to_millis().expect("submitTime");
        assert_eq!(
            e["detail"],
            json!({
                "version": "0.0",
                "accountId": ACCOUNT,
                "batchJobName": job.job_name().expect("jobName"),
                "batchJobArn": arn,
                "batchModelId": format!("arn:aws:bedrock:{REGION}::foundation-model/{model}"),
                "status": status,
                "failureMessage": failure,
                "creationTime": bedrock_emulator::clock::format_console(submitted),
            })
        );
    }
    assert_eq!(ids.len(), 11, "every event has its own id");
}

#[tokio::test]
async fn event_faults_drop_and_duplicate_by_seed() {
    let Some(moto) = moto() else {
        return;
    };
    let prefix = format!("evfaults{}", std::process::id());
    let queue = events_queue(&moto.endpoint, &prefix);
    let Some(env) = setup("events-faults", &with_events(&moto.endpoint, "30")).await else {
        return;
    };
    let names = |round: &str| -> Vec<String> { (1..=4).map(|i| format!("{prefix}-{round}-job{i}")).collect() };

    // Four jobs, twenty events, under one seed; then the same again after a reset: the same fates.
    let faults = json!({"drop": 0.3, "duplicate": 0.3, "seed": 7});
    let mut rounds = Vec::new();
    for round in ["first", "again"] {
        env.emulator.admin("POST", "/_emulator/events/reset", json!({}));
        let set = env.emulator.admin("POST", "/_emulator/events", faults.clone());
        assert_eq!(
            (&set["drop"], &set["duplicate"], &set["seed"]),
            (&json!(0.3), &json!(0.3), &json!(7))
        );
        assert_eq!(set["delivered"], 0, "a reset zeroes the counters");
        let arns = run_jobs(&env, &names(round), CLAUDE).await;
        let counters = settled(&env, 20).await;
        let n = |k: &str| counters[k].as_u64().expect("counter");
        assert_eq!(n("failed"), 0, "{counters}");
        assert_eq!(n("delivered"), 20 - n("dropped") + n("duplicated"), "{counters}");
        let events = receive(&moto.endpoint, &queue);
        assert_eq!(events.len() as u64, n("delivered"), "what moto got is what was counted");
        let mut copies: BTreeMap<(String, String), u64> = BTreeMap::new();
        for e in &events {
            let key = (
                e["detail"]["batchJobArn"].to_string(),
                e["detail"]["status"].to_string(),
            );
            *copies.entry(key).or_default() += 1;
        }
        assert!(arns
            .iter()
            .all(|a| events.iter().any(|e| e["detail"]["batchJobArn"] == *a)));
        assert_eq!(copies.values().filter(|&&c| c == 2).count() as u64, n("duplicated"));
        assert!(copies.values().all(|&c| c <= 2));
        assert_eq!(
            20 - copies.len() as u64,
            n("dropped"),
            "the dropped events never arrive"
        );
        rounds.push((n("dropped"), n("duplicated")));
    }
    assert_eq!(rounds[0], rounds[1], "one seed, the same drops and duplicates");
    assert!(
        rounds[0].0 > 0 && rounds[0].1 > 0,
        "seed 7 both drops and duplicates: {rounds:?}"
    );

    // The ends are exact: everything dropped, then everything twice.
    env.emulator.admin("POST", "/_emulator/events/reset", json!({}));
    env.emulator.admin("POST", "/_emulator/events", json!({"drop": 1.0}));
    run_jobs(&env, &[format!("{prefix}-none-job1")], CLAUDE).await;
    let counters = settled(&env, 5).await;
    assert_eq!((&counters["dropped"], &counters["delivered"]), (&json!(5), &json!(0)));
    assert!(receive(&moto.endpoint, &queue).is_empty());
    env.emulator.admin("POST", "/_emulator/events/reset", json!({}));
    env.emulator
        .admin("POST", "/_emulator/events", json!({"drop": 0, "duplicate": 1}));
    let arns = run_jobs(&env, &[format!("{prefix}-twice-job1")], CLAUDE).await;
    let counters = settled(&env, 5).await;
    assert_eq!(
        (&counters["duplicated"], &counters["delivered"]),
        (&json!(5), &json!(10))
    );
    let events = receive(&moto.endpoint, &queue);
    assert_eq!(
        statuses_by_job(&events).get(&arns[0]),
        Some(&sorted(&[
            "Submitted",
            "Submitted",
            "Validating",
            "Validating",
            "Scheduled",
            "Scheduled",
            "InProgress",
            "InProgress",
            "Completed",
            "Completed"
        ]))
    );

    for bad in [json!({"drop": 1.5}), json!({"duplicate": -0.1}), json!({"dropp": 0.1})] {
        let r = harness::http(
            &env.emulator.endpoint,
            "POST",
            "/_emulator/events",
            Some(&bad.to_string()),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.header("x-amzn-errortype"), Some("ValidationException"));
    }
    // The emulator's reset takes the event faults back to none as well.
    env.emulator.admin("POST", "/_emulator/reset", json!({}));
    let s = stats(&env);
    assert_eq!(
        (&s["drop"], &s["duplicate"], &s["delivered"]),
        (&json!(0.0), &json!(0.0), &json!(0))
    );
}

#[tokio::test]
async fn a_refusing_or_silent_endpoint_never_slows_a_job() {
    // Nothing listens on `refused`; `silent` accepts connections (the kernel's backlog) and never answers.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    for (name, url) in [
        ("events-refused", refused.as_str()),
        ("events-silent", silent_url.as_str()),
    ] {
        let Some(env) = setup(name, &with_events(url, "40")).await else {
            return;
        };
        let started = Instant::now();
        let arns = run_jobs(&env, &[format!("{name}-job1")], CLAUDE).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{name}: the job took {took:?}");
        let (job, _) = harness::wait_terminal(&env.bedrock, &arns[0], TIMEOUT).await;
        assert_eq!(job.status(), Some(&Status::Completed));
        if name == "events-refused" {
            let counters = settled(&env, 5).await;
            assert_eq!((&counters["failed"], &counters["delivered"]), (&json!(5), &json!(0)));
        } else {
            let counters = stats(&env);
            assert_eq!(
                (&counters["failed"], &counters["delivered"]),
                (&json!(0), &json!(0)),
                "still waiting for an answer: {counters}"
            );
        }
    }
}
