//! The four operations on the wire: shapes, validation, idempotency, listing, quotas and call faults.

use std::time::Duration;

use aws_sdk_bedrock::config::retry::RetryConfig;
use aws_sdk_bedrock::primitives::DateTime;
use aws_sdk_bedrock::types::{ModelInvocationJobStatus as Status, SortOrder, Tag};
use serde_json::{json, Value};

use crate::harness::{self, create, http, job_id, setup, CLAUDE, NOVA, ROLE};

/// Jobs in these tests never leave Submitted unless a test speeds the clock up.
const FROZEN: &[(&str, &str)] = &[("BEDROCK_EMULATOR_STEP_MS", "600000")];

fn input(bucket: &str) -> String {
    format!("s3://{bucket}/in/input.jsonl")
}

fn output(bucket: &str) -> String {
    format!("s3://{bucket}/out/")
}

#[tokio::test]
async fn create_get_list_stop_round_trip() {
    let Some(env) = setup("round-trip", FROZEN).await else {
        return;
    };
    let b = &env.bedrock;
    let arn = create(b, "roundtrip-job1", CLAUDE, &input(&env.bucket), &output(&env.bucket))
        .send()
        .await
        .expect("create")
        .job_arn;
    let id = job_id(&arn);
    assert_eq!(
        arn,
        format!("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{id}")
    );
    assert_eq!(id.len(), 12);
    assert!(id.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));

    let by_id = b
        .get_model_invocation_job()
        .job_identifier(id)
        .send()
        .await
        .expect("get by id");
    assert_eq!(by_id.job_arn(), arn);
    assert_eq!(by_id.job_name(), Some("roundtrip-job1"));
    assert_eq!(by_id.model_id(), CLAUDE);
    assert_eq!(by_id.role_arn(), ROLE);
    assert_eq!(by_id.status(), Some(&Status::Submitted));
    // The SDK fills the idempotency token with a UUID when the caller does not (docs/bedrock.md#idempotency).
    assert_eq!(by_id.client_request_token().map(str::len), Some(36));
    assert_eq!(by_id.timeout_duration_in_hours(), Some(24));
    let submit = by_id.submit_time().to_millis().expect("millis");
    let expires = by_id
        .job_expiration_time()
        .expect("expiration")
        .to_millis()
        .expect("millis");
    assert_eq!(expires - submit, 24 * 3_600_000);
    assert!(by_id.end_time().is_none());
    let s3_in = by_id
        .input_data_config()
        .expect("input")
        .as_s3_input_data_config()
        .expect("s3");
    assert_eq!(s3_in.s3_uri(), input(&env.bucket));

    // The SDK percent-encodes the ARN into one path segment (`%2F` for the slash).
    let by_arn = b
        .get_model_invocation_job()
        .job_identifier(&arn)
        .send()
        .await
        .expect("get by ARN");
    assert_eq!(by_arn.job_arn(), arn);

    let listed = b.list_model_invocation_jobs().send().await.expect("list");
    let summaries = listed.invocation_job_summaries();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].job_name(), "roundtrip-job1");
    assert_eq!(summaries[0].job_arn(), arn);

    b.stop_model_invocation_job()
        .job_identifier(&arn)
        .send()
        .await
        .expect("stop");
    let stopping = b
        .get_model_invocation_job()
        .job_identifier(id)
        .send()
        .await
        .expect("get");
    assert_eq!(stopping.status(), Some(&Status::Stopping));
    b.stop_model_invocation_job()
        .job_identifier(id)
        .send()
        .await
        .expect("stop while stopping is a no-op");

    env.emulator.admin("POST", "/_emulator/config", json!({"step_ms": 10}));
    let (stopped, seen) = harness::wait_terminal(b, &arn, Duration::from_secs(10)).await;
    assert_eq!(stopped.status(), Some(&Status::Stopped));
    assert!(stopped.end_time().is_some());
    assert_eq!(seen.last(), Some(&Status::Stopped));
    let err = b
        .stop_model_invocation_job()
        .job_identifier(id)
        .send()
        .await
        .expect_err("stop on a terminal job")
        .into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
}

#[tokio::test]
async fn validation_errors_come_back_as_validation_exception() {
    let Some(env) = setup("validation", FROZEN).await else {
        return;
    };
    let b = &env.bedrock;
    let (i, o) = (input(&env.bucket), output(&env.bucket));
    let cases = [
        ("underscore in jobName", create(b, "bad_name", CLAUDE, &i, &o)),
        (
            "roleArn",
            create(b, "ok", CLAUDE, &i, &o).role_arn("arn:aws:iam::12:role/x"),
        ),
        ("modelId empty", create(b, "ok", "", &i, &o)),
        (
            "Hive-style key",
            create(b, "ok", CLAUDE, &format!("s3://{}/date=2024-01-01/", env.bucket), &o),
        ),
        ("output URI", create(b, "ok", CLAUDE, &i, "https://example.com/out")),
        (
            "timeout 23",
            create(b, "ok", CLAUDE, &i, &o).timeout_duration_in_hours(23),
        ),
        (
            "timeout 169",
            create(b, "ok", CLAUDE, &i, &o).timeout_duration_in_hours(169),
        ),
        ("token", create(b, "ok", CLAUDE, &i, &o).client_request_token("tok_1")),
        (
            "tag key",
            create(b, "ok", CLAUDE, &i, &o).tags(Tag::builder().key("a#").value("v").build().expect("tag")),
        ),
        ("no fake model", create(b, "ok", "meta.llama3-8b-instruct-v1:0", &i, &o)),
        // The emulator has a fake model for each of these; the service's modelId pattern refuses them all.
        (
            "underscores in modelId",
            create(b, "ok", "anthropic.claude_3_haiku", &i, &o),
        ),
        (
            "capital in modelId",
            create(b, "ok", "anthropic.claude-3-Haiku-20240307-v1:0", &i, &o),
        ),
        (
            "Vertex-style modelId",
            create(b, "ok", "anthropic.claude-sonnet-4-5@20250929", &i, &o),
        ),
    ];
    for (what, request) in cases {
        let err = request.send().await.expect_err(what).into_service_error();
        assert!(err.is_validation_exception(), "{what}: {err:?}");
        assert!(
            err.meta().message().is_some_and(|m| !m.is_empty()),
            "{what}: no message"
        );
        if what.ends_with("modelId") {
            let message = err.meta().message().unwrap_or_default();
            assert!(
                message.contains("at 'modelId' failed to satisfy constraint: Member must satisfy regular expression"),
                "{what}: {message}"
            );
        }
    }
    let err = b
        .list_model_invocation_jobs()
        .max_results(0)
        .send()
        .await
        .expect_err("maxResults 0")
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    let err = b
        .list_model_invocation_jobs()
        .name_contains("a_b")
        .send()
        .await
        .expect_err("nameContains")
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    let err = b
        .get_model_invocation_job()
        .job_identifier("not-a-job-id")
        .send()
        .await
        .expect_err("bad identifier")
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    let listed = b.list_model_invocation_jobs().send().await.expect("list");
    assert!(
        listed.invocation_job_summaries().is_empty(),
        "no job may be created by a rejected request"
    );
}

#[tokio::test]
async fn wire_format_unions_headers_and_raw_paths() {
    let Some(env) = setup("wire", FROZEN).await else { return };
    let ep = &env.emulator.endpoint;
    let body = |input: Value| {
        json!({
            "jobName": "wire-job1",
            "roleArn": ROLE,
            "modelId": CLAUDE,
            "inputDataConfig": input,
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": output(&env.bucket)}}
        })
        .to_string()
    };
    for bad in [
        json!({}),
        json!({"s3InputDataConfig": {"s3Uri": input(&env.bucket)}, "other": {}}),
    ] {
        let r = http(ep, "POST", "/model-invocation-job", Some(&body(bad)));
        assert_eq!(r.status, 400);
        assert_eq!(r.header("x-amzn-errortype"), Some("ValidationException"));
        assert!(r.header("x-amzn-requestid").is_some());
        let v: Value = serde_json::from_str(&r.body).expect("JSON error body");
        assert!(v["message"].is_string());
        assert_eq!(v["__type"], "ValidationException");
    }
    let r = http(ep, "POST", "/model-invocation-job", Some("{not json"));
    assert_eq!(r.header("x-amzn-errortype"), Some("ValidationException"));

    let ok = http(
        ep,
        "POST",
        "/model-invocation-job",
        Some(&body(json!({"s3InputDataConfig": {"s3Uri": input(&env.bucket)}}))),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.header("x-amzn-requestid").is_some());
    let arn = serde_json::from_str::<Value>(&ok.body).expect("JSON")["jobArn"]
        .as_str()
        .expect("jobArn")
        .to_string();
    let encoded = arn.replace(':', "%3A").replace('/', "%2F");
    let got = http(ep, "GET", &format!("/model-invocation-job/{encoded}"), None);
    assert_eq!(got.status, 200, "{}", got.body);
    let job: Value = serde_json::from_str(&got.body).expect("JSON");
    for field in ["submitTime", "lastModifiedTime", "jobExpirationTime"] {
        let t = job[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} must be a string"));
        assert!(t.ends_with('Z') && t.contains('T'), "{field}: {t}");
    }
    let stop = http(ep, "POST", &format!("/model-invocation-job/{encoded}/stop"), None);
    assert_eq!(stop.status, 200, "{}", stop.body);

    let unknown = http(ep, "GET", "/foundation-models", None);
    assert_eq!(unknown.status, 404);
    assert!(unknown.header("x-amzn-errortype").is_some());
    let health = http(ep, "GET", "/_emulator/health", None);
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn idempotency_by_client_request_token() {
    let Some(env) = setup("idempotency", FROZEN).await else {
        return;
    };
    let b = &env.bedrock;
    let (i, o) = (input(&env.bucket), output(&env.bucket));
    let first = create(b, "idem-job1", CLAUDE, &i, &o)
        .client_request_token("batch-01hx-1")
        .send()
        .await
        .expect("create")
        .job_arn;
    let again = create(b, "idem-job1", CLAUDE, &i, &o)
        .client_request_token("batch-01hx-1")
        .send()
        .await
        .expect("replay")
        .job_arn;
    assert_eq!(first, again);
    let err = create(b, "idem-job2", CLAUDE, &i, &o)
        .client_request_token("batch-01hx-1")
        .send()
        .await
        .expect_err("same token, other parameters")
        .into_service_error();
    assert!(err.is_conflict_exception(), "{err:?}");
    let listed = b.list_model_invocation_jobs().send().await.expect("list");
    assert_eq!(listed.invocation_job_summaries().len(), 1);
}

#[tokio::test]
async fn unknown_jobs_are_not_found() {
    let Some(env) = setup("not-found", FROZEN).await else {
        return;
    };
    let b = &env.bedrock;
    let err = b
        .get_model_invocation_job()
        .job_identifier("zzzzzzzzzzzz")
        .send()
        .await
        .expect_err("unknown id")
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert_eq!(err.meta().code(), Some("ResourceNotFoundException"));
    let err = b
        .stop_model_invocation_job()
        .job_identifier("zzzzzzzzzzzz")
        .send()
        .await
        .expect_err("unknown id")
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    let arn = create(b, "nf-job1", CLAUDE, &input(&env.bucket), &output(&env.bucket))
        .send()
        .await
        .expect("create")
        .job_arn;
    let other_account = arn.replace("123456789012", "210987654321");
    let err = b
        .get_model_invocation_job()
        .job_identifier(other_account)
        .send()
        .await
        .expect_err("another account's ARN")
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let Some(env) = setup("list", FROZEN).await else { return };
    let b = &env.bedrock;
    let before = DateTime::from_millis(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("millis")
            - 1000,
    );
    let mut arns = Vec::new();
    for n in 1..=5 {
        let name = if n % 2 == 0 {
            format!("even-job{n}")
        } else {
            format!("odd-job{n}")
        };
        let arn = create(b, &name, CLAUDE, &input(&env.bucket), &output(&env.bucket))
            .send()
            .await
            .expect("create")
            .job_arn;
        arns.push(arn);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let page_by_page: Vec<String> = b
        .list_model_invocation_jobs()
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("paginate")
        .into_iter()
        .map(|s| s.job_arn().to_string())
        .collect();
    let mut newest_first = arns.clone();
    newest_first.reverse();
    assert_eq!(page_by_page, newest_first, "default order is Descending");

    let first_page = b
        .list_model_invocation_jobs()
        .max_results(2)
        .send()
        .await
        .expect("list");
    assert_eq!(first_page.invocation_job_summaries().len(), 2);
    assert!(first_page.next_token().is_some());

    let ascending = b
        .list_model_invocation_jobs()
        .sort_order(SortOrder::Ascending)
        .send()
        .await
        .expect("list");
    let got: Vec<&str> = ascending
        .invocation_job_summaries()
        .iter()
        .map(|s| s.job_arn())
        .collect();
    assert_eq!(got, arns.iter().map(String::as_str).collect::<Vec<_>>());

    let count = |r: aws_sdk_bedrock::operation::list_model_invocation_jobs::ListModelInvocationJobsOutput| {
        r.invocation_job_summaries().len()
    };
    let l = b.list_model_invocation_jobs();
    assert_eq!(count(l.clone().name_contains("even").send().await.expect("list")), 2);
    assert_eq!(
        count(l.clone().status_equals(Status::Submitted).send().await.expect("list")),
        5
    );
    assert_eq!(
        count(l.clone().status_equals(Status::Completed).send().await.expect("list")),
        0
    );
    assert_eq!(
        count(l.clone().submit_time_after(before).send().await.expect("list")),
        5
    );
    assert_eq!(
        count(l.clone().submit_time_before(before).send().await.expect("list")),
        0
    );
}

#[tokio::test]
async fn concurrent_jobs_quota_is_per_model() {
    let Some(env) = setup("quota", &[FROZEN[0], ("BEDROCK_EMULATOR_MAX_CONCURRENT_JOBS", "2")]).await else {
        return;
    };
    let b = &env.bedrock;
    let (i, o) = (input(&env.bucket), output(&env.bucket));
    for n in 1..=2 {
        create(b, &format!("quota-job{n}"), CLAUDE, &i, &o)
            .send()
            .await
            .expect("within quota");
    }
    let err = create(b, "quota-job3", CLAUDE, &i, &o)
        .send()
        .await
        .expect_err("over quota")
        .into_service_error();
    assert!(err.is_service_quota_exceeded_exception(), "{err:?}");
    create(b, "quota-job4", NOVA, &i, &o)
        .send()
        .await
        .expect("another model has its own quota");
}

#[tokio::test]
async fn call_faults_are_seen_by_the_sdk() {
    let Some(env) = setup("call-faults", FROZEN).await else {
        return;
    };
    let b = &env.bedrock;
    let (i, o) = (input(&env.bucket), output(&env.bucket));
    env.emulator.admin(
        "POST",
        "/_emulator/faults",
        json!({"match": "throttle.jsonl", "faults": ["throttle_create:2", "internal_error_get:2"]}),
    );
    env.emulator.admin(
        "POST",
        "/_emulator/faults",
        json!({"match": "full.jsonl", "fault": "quota_create:1"}),
    );

    let name = "throttle.jsonl-01hx-job1";
    for _ in 0..2 {
        let err = create(b, name, CLAUDE, &i, &o)
            .send()
            .await
            .expect_err("throttled")
            .into_service_error();
        assert!(err.is_throttling_exception(), "{err:?}");
    }
    let arn = create(b, name, CLAUDE, &i, &o)
        .send()
        .await
        .expect("third create passes")
        .job_arn;

    let err = b
        .get_model_invocation_job()
        .job_identifier(&arn)
        .send()
        .await
        .expect_err("500")
        .into_service_error();
    assert!(err.is_internal_server_exception(), "{err:?}");
    // The SDK's standard retry mode retries InternalServerException: one more injected 500, then success.
    let retrying = harness::bedrock(
        &env.emulator.endpoint,
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(10)),
    );
    let job = retrying
        .get_model_invocation_job()
        .job_identifier(&arn)
        .send()
        .await
        .expect("retried get");
    assert_eq!(job.job_arn(), arn);

    let err = create(b, "full.jsonl-01hx-job1", CLAUDE, &i, &o)
        .send()
        .await
        .expect_err("quota fault")
        .into_service_error();
    assert!(err.is_service_quota_exceeded_exception(), "{err:?}");
    create(b, "other.jsonl-01hx-job1", CLAUDE, &i, &o)
        .send()
        .await
        .expect("no fault for other files");

    let rules = env.emulator.admin("GET", "/_emulator/faults", json!({}));
    assert_eq!(rules["rules"].as_array().map(Vec::len), Some(2));
    env.emulator.admin("DELETE", "/_emulator/faults", json!({}));
    let rules = env.emulator.admin("GET", "/_emulator/faults", json!({}));
    assert_eq!(rules["rules"].as_array().map(Vec::len), Some(0));
}
