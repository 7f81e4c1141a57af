//! Jobs run to their end: statuses, counters, and the output files read back from S3.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use aws_sdk_bedrock::types::{ModelInvocationJobStatus as Status, ModelInvocationType};
use serde_json::{json, Value};

use crate::harness::{
    self, claude_records, claude_text, claude_tools, create, job_id, jsonl, nova_text, nova_tools, setup, CLAUDE, NOVA,
};

const FAST: &[(&str, &str)] = &[("BEDROCK_EMULATOR_STEP_MS", "40")];
const TIMEOUT: Duration = Duration::from_secs(30);

fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["recordId"].as_str().expect("recordId").to_string())
        .collect()
}

fn manifest_matches(manifest: &Value, lines: &[Value], total: u64) {
    let fields: HashSet<&str> = manifest
        .as_object()
        .expect("manifest object")
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = [
        "totalRecordCount",
        "processedRecordCount",
        "successRecordCount",
        "errorRecordCount",
        "inputTokenCount",
        "outputTokenCount",
    ]
    .into();
    assert_eq!(fields, expected);
    let errors = lines.iter().filter(|l| l.get("error").is_some()).count() as u64;
    let processed = lines.len() as u64;
    assert_eq!(manifest["totalRecordCount"], total);
    assert_eq!(manifest["processedRecordCount"], processed);
    assert_eq!(manifest["errorRecordCount"], errors);
    assert_eq!(manifest["successRecordCount"], processed - errors);
}

#[tokio::test]
async fn claude_job_completes_with_shuffled_output() {
    // Slower steps than FAST so that the poller sees every status, InProgress included.
    let Some(env) = setup("claude-complete", &[("BEDROCK_EMULATOR_STEP_MS", "80")]).await else {
        return;
    };
    let mut records = Vec::new();
    for i in 0..120 {
        let id = format!("CALL{i:07}");
        let body = match i % 10 {
            0 | 5 => claude_tools(&format!("Weather in city {i}?")),
            3 => {
                json!({"anthropic_version": "2023-06-01", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})
            }
            7 => claude_text("Tell me a long story", 2),
            9 => json!({
                "anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "18C"}]}],
                "tools": [{"name": "t", "input_schema": {"type": "object"}}]
            }),
            _ => claude_text(&format!("Question {i}"), 200),
        };
        records.push((id, body));
    }
    harness::put(&env.s3, &env.bucket, "in/batch-01/input.jsonl", jsonl(&records)).await;
    let arn = create(
        &env.bedrock,
        "input.jsonl-01-job1",
        CLAUDE,
        &format!("s3://{}/in/batch-01/input.jsonl", env.bucket),
        &format!("s3://{}/out/batch-01/", env.bucket),
    )
    .send()
    .await
    .expect("create")
    .job_arn;

    let (job, seen) = harness::wait_terminal(&env.bedrock, &arn, TIMEOUT).await;
    assert_eq!(job.status(), Some(&Status::Completed), "{:?}", job.message());
    let order = [
        Status::Submitted,
        Status::Validating,
        Status::Scheduled,
        Status::InProgress,
        Status::Completed,
    ];
    let positions: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).expect("known status"))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "statuses out of order: {seen:?}"
    );
    assert!(seen.contains(&Status::InProgress), "{seen:?}");
    let invalid = 24; // i % 10 == 3 or 9
    assert_eq!(job.total_record_count(), Some(120));
    assert_eq!(job.processed_record_count(), Some(120));
    assert_eq!(job.error_record_count(), Some(invalid));
    assert_eq!(job.success_record_count(), Some(120 - invalid));
    let end = job.end_time().expect("endTime");
    assert!(end >= &job.submit_time().clone());
    assert!(job.last_modified_time().is_some());

    let id = job_id(&arn);
    let prefix = format!("out/batch-01/{id}/");
    assert_eq!(
        harness::keys(&env.s3, &env.bucket, &prefix).await,
        vec![format!("{prefix}input.jsonl.out"), format!("{prefix}manifest.json.out")]
    );
    let lines = harness::lines(&env.s3, &env.bucket, &format!("{prefix}input.jsonl.out")).await;
    assert_eq!(lines.len(), 120);
    let out_ids = ids(&lines);
    let in_ids: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
    assert_ne!(out_ids, in_ids, "records must come back shuffled");
    let unique: HashSet<&String> = out_ids.iter().collect();
    assert_eq!(unique.len(), 120, "every recordId exactly once");

    let inputs: BTreeMap<&str, &Value> = records.iter().map(|(id, v)| (id.as_str(), v)).collect();
    for line in &lines {
        let id = line["recordId"].as_str().expect("id");
        let n: usize = id[4..].parse().expect("index");
        assert_eq!(
            &&line["modelInput"],
            inputs.get(id).expect("known id"),
            "modelInput is echoed"
        );
        if n % 10 == 3 || n % 10 == 9 {
            assert_eq!(line["error"]["errorCode"], json!(400), "{line}");
            assert!(line["error"]["errorCode"].is_u64(), "errorCode is a number");
            assert!(line["error"]["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(line.get("modelOutput").is_none());
            continue;
        }
        let out = &line["modelOutput"];
        assert!(line.get("error").is_none());
        assert_eq!(out["type"], "message");
        assert_eq!(out["role"], "assistant");
        assert_eq!(out["model"], "claude-3-haiku-20240307");
        assert!(out["id"].as_str().expect("id").starts_with("msg_bdrk_"));
        assert!(out["usage"]["input_tokens"].as_u64().expect("input_tokens") > 0);
        assert!(out["usage"]["output_tokens"].is_u64());
        assert!(out.get("stop_sequence").is_some());
        match n % 10 {
            0 | 5 => {
                assert_eq!(out["stop_reason"], "tool_use");
                let call = out["content"]
                    .as_array()
                    .expect("content")
                    .iter()
                    .find(|b| b["type"] == "tool_use")
                    .expect("a tool_use block");
                assert_eq!(call["name"], "get_weather");
                assert!(call["input"]["city"].is_string());
                assert!(["celsius", "fahrenheit"].contains(&call["input"]["unit"].as_str().expect("unit")));
            }
            7 => assert_eq!(out["stop_reason"], "max_tokens"),
            _ => {
                assert_eq!(out["stop_reason"], "end_turn");
                assert_eq!(out["content"][0]["type"], "text");
            }
        }
    }
    let manifest: Value =
        serde_json::from_str(&harness::get_text(&env.s3, &env.bucket, &format!("{prefix}manifest.json.out")).await)
            .expect("manifest JSON");
    manifest_matches(&manifest, &lines, 120);
    let output_tokens: u64 = lines
        .iter()
        .filter_map(|l| l["modelOutput"]["usage"]["output_tokens"].as_u64())
        .sum();
    assert_eq!(manifest["outputTokenCount"], output_tokens);
}

#[tokio::test]
async fn nova_job_reads_every_jsonl_under_a_prefix() {
    let Some(env) = setup("nova-prefix", FAST).await else {
        return;
    };
    let file = |name: &str, n: usize| -> Vec<(String, Value)> {
        (0..n)
            .map(|i| {
                let body = match i % 5 {
                    1 => nova_tools(&format!("Where is order {i}?")),
                    2 => nova_text("Long answer please", 1),
                    4 if name == "b" => claude_text("wrong family", 50),
                    _ => nova_text(&format!("Question {name}{i}"), 300),
                };
                (format!("{name}{i:09}"), body)
            })
            .collect()
    };
    let (a, b) = (file("a", 60), file("b", 50));
    harness::put(&env.s3, &env.bucket, "in/batch-02/a.jsonl", jsonl(&a)).await;
    harness::put(&env.s3, &env.bucket, "in/batch-02/b.jsonl", jsonl(&b)).await;
    harness::put(&env.s3, &env.bucket, "in/batch-02/notes.txt", "not input").await;
    let arn = create(
        &env.bedrock,
        "batch-02-job1",
        NOVA,
        &format!("s3://{}/in/batch-02/", env.bucket),
        &format!("s3://{}/out", env.bucket),
    )
    .send()
    .await
    .expect("create")
    .job_arn;
    let (job, _) = harness::wait_terminal(&env.bedrock, &arn, TIMEOUT).await;
    assert_eq!(job.status(), Some(&Status::Completed), "{:?}", job.message());
    assert_eq!(job.total_record_count(), Some(110));

    let prefix = format!("out/{}/", job_id(&arn));
    assert_eq!(
        harness::keys(&env.s3, &env.bucket, &prefix).await,
        vec![
            format!("{prefix}a.jsonl.out"),
            format!("{prefix}b.jsonl.out"),
            format!("{prefix}manifest.json.out")
        ]
    );
    let mut all = Vec::new();
    for (name, records) in [("a", &a), ("b", &b)] {
        let lines = harness::lines(&env.s3, &env.bucket, &format!("{prefix}{name}.jsonl.out")).await;
        let mut got = ids(&lines);
        got.sort();
        let mut want: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
        want.sort();
        assert_eq!(got, want, "each file's output holds exactly its records");
        for line in &lines {
            let id = line["recordId"].as_str().expect("id");
            let n: usize = id[1..].parse().expect("index");
            if name == "b" && n % 5 == 4 {
                assert_eq!(line["error"]["errorCode"], json!(400), "{line}");
                continue;
            }
            let out = &line["modelOutput"];
            let usage = &out["usage"];
            assert_eq!(
                usage["totalTokens"].as_u64(),
                Some(usage["inputTokens"].as_u64().expect("in") + usage["outputTokens"].as_u64().expect("out"))
            );
            assert_eq!(out["output"]["message"]["role"], "assistant");
            let content = &out["output"]["message"]["content"];
            match n % 5 {
                1 => {
                    assert_eq!(out["stopReason"], "tool_use");
                    let call = &content[0]["toolUse"];
                    assert_eq!(call["name"], "lookup");
                    assert!(call["toolUseId"].is_string());
                    assert!(call["input"]["order_id"].is_string());
                    assert!(call["input"]["count"].is_i64());
                }
                2 => assert_eq!(out["stopReason"], "max_tokens"),
                _ => {
                    assert_eq!(out["stopReason"], "end_turn");
                    assert!(content[0]["text"].is_string());
                }
            }
        }
        all.extend(lines);
    }
    let manifest: Value =
        serde_json::from_str(&harness::get_text(&env.s3, &env.bucket, &format!("{prefix}manifest.json.out")).await)
            .expect("manifest JSON");
    manifest_matches(&manifest, &all, 110);
}

#[tokio::test]
async fn converse_jobs_answer_in_the_converse_shape() {
    let Some(env) = setup("converse", FAST).await else {
        return;
    };
    let records: Vec<(String, Value)> = (0..100)
        .map(|i| {
            let body = if i == 0 {
                nova_tools("tools are refused in Converse batch jobs")
            } else {
                json!({"messages": [{"role": "user", "content": [{"text": format!("Hi {i}")}]}],
                       "inferenceConfig": {"maxTokens": 100}})
            };
            (format!("C{i:010}"), body)
        })
        .collect();
    harness::put(&env.s3, &env.bucket, "in/c.jsonl", jsonl(&records)).await;
    let arn = create(
        &env.bedrock,
        "c-job1",
        CLAUDE,
        &format!("s3://{}/in/c.jsonl", env.bucket),
        &format!("s3://{}/out/", env.bucket),
    )
    .model_invocation_type(ModelInvocationType::Converse)
    .send()
    .await
    .expect("create")
    .job_arn;
    let (job, _) = harness::wait_terminal(&env.bedrock, &arn, TIMEOUT).await;
    assert_eq!(job.status(), Some(&Status::Completed));
    assert_eq!(job.model_invocation_type(), Some(&ModelInvocationType::Converse));
    let lines = harness::lines(&env.s3, &env.bucket, &format!("out/{}/c.jsonl.out", job_id(&arn))).await;
    for line in &lines {
        if line["recordId"] == "C0000000000" {
            assert_eq!(line["error"]["errorCode"], json!(400));
        } else {
            assert_eq!(line["modelOutput"]["stopReason"], "end_turn");
            assert!(line["modelOutput"]["metrics"]["latencyMs"].is_u64());
            assert!(line["modelOutput"]["output"]["message"]["content"][0]["text"].is_string());
        }
    }
}

#[tokio::test]
async fn validation_failures_fail_the_job_with_a_message() {
    let Some(env) = setup("job-validation", FAST).await else {
        return;
    };
    let bk = &env.bucket;
    harness::put(&env.s3, bk, "in/few.jsonl", jsonl(&claude_records(50))).await;
    harness::put(&env.s3, bk, "in/wrong.json", jsonl(&claude_records(100))).await;
    let mut broken = jsonl(&claude_records(100));
    broken.push_str("{\"recordId\": \"X\", \"modelInput\": \n");
    harness::put(&env.s3, bk, "in/broken.jsonl", broken).await;
    let no_input = jsonl(&claude_records(100)).replace("\"modelInput\"", "\"body\"");
    harness::put(&env.s3, bk, "in/nobody.jsonl", no_input).await;
    harness::put(&env.s3, bk, "in/big.jsonl", jsonl(&claude_records(120))).await;
    const SMALL_MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
    env.emulator.admin(
        "POST",
        "/_emulator/config",
        json!({"quotas": {"models": {SMALL_MODEL: {"max_records_per_file": 100}}}}),
    );

    let cases = [
        ("few", CLAUDE, format!("s3://{bk}/in/few.jsonl"), "minimum"),
        ("wrong", CLAUDE, format!("s3://{bk}/in/wrong.json"), ".jsonl"),
        ("missing", CLAUDE, format!("s3://{bk}/in/absent.jsonl"), "No input"),
        ("broken", CLAUDE, format!("s3://{bk}/in/broken.jsonl"), "Line 101"),
        ("nobody", CLAUDE, format!("s3://{bk}/in/nobody.jsonl"), "modelInput"),
        ("big", SMALL_MODEL, format!("s3://{bk}/in/big.jsonl"), "quota"),
        (
            "nobucket",
            CLAUDE,
            "s3://no-such-bucket-here/in/x.jsonl".to_string(),
            "could not access",
        ),
    ];
    let mut arns = Vec::new();
    for (name, model, uri, _) in &cases {
        let arn = create(
            &env.bedrock,
            &format!("{name}-job1"),
            model,
            uri,
            &format!("s3://{bk}/out/"),
        )
        .send()
        .await
        .expect("create")
        .job_arn;
        arns.push(arn);
    }
    for ((name, _, _, hint), arn) in cases.iter().zip(&arns) {
        let (job, _) = harness::wait_terminal(&env.bedrock, arn, TIMEOUT).await;
        assert_eq!(job.status(), Some(&Status::Failed), "{name}");
        let message = job.message().unwrap_or_default();
        assert!(message.contains(hint), "{name}: {message}");
        assert!(job.end_time().is_some());
        assert!(
            harness::keys(&env.s3, bk, &format!("out/{}/", job_id(arn)))
                .await
                .is_empty(),
            "{name}: a failed job writes nothing"
        );
    }
}

#[tokio::test]
async fn a_user_stop_mid_progress_keeps_the_processed_records() {
    let Some(env) = setup(
        "user-stop",
        &[
            ("BEDROCK_EMULATOR_STEP_MS", "150"),
            ("BEDROCK_EMULATOR_PROGRESS_STEPS", "6"),
        ],
    )
    .await
    else {
        return;
    };
    harness::put(&env.s3, &env.bucket, "in/s.jsonl", jsonl(&claude_records(120))).await;
    let arn = env.start_job("s-job1", CLAUDE, "in/s.jsonl").await;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let job = env
            .bedrock
            .get_model_invocation_job()
            .job_identifier(&arn)
            .send()
            .await
            .expect("get");
        if job.status() == Some(&Status::InProgress) && job.processed_record_count().unwrap_or(0) > 0 {
            assert!(job.processed_record_count() < job.total_record_count());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never saw progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.bedrock
        .stop_model_invocation_job()
        .job_identifier(&arn)
        .send()
        .await
        .expect("stop");
    let (job, seen) = harness::wait_terminal(&env.bedrock, &arn, TIMEOUT).await;
    assert_eq!(job.status(), Some(&Status::Stopped));
    assert!(seen.contains(&Status::Stopping), "{seen:?}");
    let processed = job.processed_record_count().expect("processed");
    assert!(processed > 0 && processed < 120, "processed {processed}");
    let prefix = format!("out/{}/", job_id(&arn));
    let lines = harness::lines(&env.s3, &env.bucket, &format!("{prefix}s.jsonl.out")).await;
    assert_eq!(lines.len() as i64, processed);
    let manifest: Value =
        serde_json::from_str(&harness::get_text(&env.s3, &env.bucket, &format!("{prefix}manifest.json.out")).await)
            .expect("manifest");
    manifest_matches(&manifest, &lines, 120);
}

#[tokio::test]
async fn job_faults_bend_the_lifecycle() {
    let Some(env) = setup("job-faults", FAST).await else {
        return;
    };
    for (m, f) in [
        ("fail.jsonl", "fail"),
        ("expire.jsonl", "expire"),
        ("partial.jsonl", "partial:0.5"),
        ("selfstop.jsonl", "stop"),
        ("flaky.jsonl", "record_errors:0.1"),
    ] {
        env.emulator
            .admin("POST", "/_emulator/faults", json!({"match": m, "faults": [f]}));
    }
    let names = ["fail", "expire", "partial", "selfstop", "flaky"];
    let mut arns = Vec::new();
    for name in names {
        let key = format!("in/{name}.jsonl");
        harness::put(&env.s3, &env.bucket, &key, jsonl(&claude_records(100))).await;
        arns.push(env.start_job(&format!("{name}.jsonl-01hx-job1"), CLAUDE, &key).await);
    }
    let mut results = BTreeMap::new();
    for (name, arn) in names.iter().zip(&arns) {
        let (job, seen) = harness::wait_terminal(&env.bedrock, arn, TIMEOUT).await;
        let prefix = format!("out/{}/", job_id(arn));
        let keys = harness::keys(&env.s3, &env.bucket, &prefix).await;
        let lines = if keys.is_empty() {
            Vec::new()
        } else {
            harness::lines(&env.s3, &env.bucket, &format!("{prefix}{name}.jsonl.out")).await
        };
        results.insert(*name, (job, seen, keys, lines));
    }

    let (job, _, keys, _) = &results["fail"];
    assert_eq!(job.status(), Some(&Status::Failed));
    assert!(job.message().is_some_and(|m| !m.is_empty()));
    assert!(keys.is_empty());

    let (job, seen, keys, _) = &results["expire"];
    assert_eq!(job.status(), Some(&Status::Expired));
    assert!(!seen.contains(&Status::InProgress), "{seen:?}");
    assert!(keys.is_empty());

    let (job, _, _, lines) = &results["partial"];
    assert_eq!(job.status(), Some(&Status::PartiallyCompleted));
    assert_eq!(job.total_record_count(), Some(100));
    assert_eq!(job.processed_record_count(), Some(50));
    assert_eq!(lines.len(), 50);

    let (job, _, _, lines) = &results["selfstop"];
    assert_eq!(job.status(), Some(&Status::Stopped));
    assert_eq!(job.processed_record_count(), Some(50));
    assert_eq!(lines.len(), 50);

    let (job, _, _, lines) = &results["flaky"];
    assert_eq!(
        job.status(),
        Some(&Status::Completed),
        "record errors do not change Completed (docs/bedrock.md#job-statuses)"
    );
    assert_eq!(job.error_record_count(), Some(10));
    let errors: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert_eq!(errors.len(), 10);
    assert!(errors.iter().all(|l| l["error"]["errorCode"] == json!(500)));
}
