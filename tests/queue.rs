//! The job queue's ledger (`pipeline::queue`, docs/queue.md) against a real DynamoDB API: moto's, started here
//! from `MOTO_SERVER` (the `moto_server` executable of PyPI `moto[server]==5.2.5`, which `make test` sets).
//! Without it the test says it was skipped. The end-to-end tests (infra/local/tests/test_queue.py) run the same
//! code inside check-jobs; these pin the ledger's own promises, races included.

#![cfg(feature = "aws")]

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchdrop::pipeline::queue::{self, View};
use batchdrop::pipeline::{Config, Deps};

const TABLE: &str = "queue-test";

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Option<(Moto, String)> {
    let Some(path) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED tests/queue.rs: set MOTO_SERVER to the moto_server executable (PyPI moto[server]==5.2.5)"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&path)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start MOTO_SERVER={path:?}: {e}"));
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((moto, format!("http://127.0.0.1:{port}")))
}

async fn deps(endpoint: &str) -> Arc<Deps> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    let env: HashMap<&str, &str> = HashMap::from([
        ("INPUT_BUCKET", "in"),
        ("OUTPUT_BUCKET", "out"),
        ("BEDROCK_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
        ("DEFAULT_MODEL", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("JOB_QUEUE_TABLE", TABLE),
    ]);
    let config = Config::from_vars(|name| env.get(name).map(|v| v.to_string())).expect("config");
    let deps = Deps::new(&sdk, config);
    deps.dynamodb
        .create_table()
        .table_name(TABLE)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", aws_sdk_dynamodb::types::KeyType::Hash))
        .key_schema(key("sk", aws_sdk_dynamodb::types::KeyType::Range))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the table");
    Arc::new(deps)
}

fn attr(name: &str) -> aws_sdk_dynamodb::types::AttributeDefinition {
    aws_sdk_dynamodb::types::AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
        .build()
        .expect("attribute")
}

fn key(name: &str, kind: aws_sdk_dynamodb::types::KeyType) -> aws_sdk_dynamodb::types::KeySchemaElement {
    aws_sdk_dynamodb::types::KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key")
}

/// The ledger is consistent: its counter is the number of slots it holds.
fn consistent(view: &View) {
    assert_eq!(view.held(), view.slots.len() as u64, "{view:?}");
}

/// Takes a slot for the wait of `batch` `job` in `view`, as check-jobs does.
async fn take(deps: &Deps, model: &str, view: &View, batch: &str, job: usize) -> bool {
    let wait = view
        .waiting
        .iter()
        .find(|w| w.batch_id == batch && w.job == job)
        .unwrap_or_else(|| panic!("{batch} {job} is not waiting: {view:?}"));
    queue::take(deps, model, view, wait, 0).await.expect("take")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_keeps_order_quota_and_caps_under_races() {
    let Some((_moto, endpoint)) = start_moto() else {
        return;
    };
    let deps = deps(&endpoint).await;
    let d = deps.as_ref();

    // Order: batches by creation, then jobs by index; a repeated enqueue changes nothing.
    let m = "model-a";
    for (created, batch, job) in [(200, "late", 0), (100, "early", 1), (100, "early", 0), (200, "late", 0)] {
        queue::enqueue(d, m, created, batch, job, 0).await.expect("enqueue");
    }
    let view = queue::view(d, m).await.expect("view");
    let order: Vec<(&str, usize)> = view.waiting.iter().map(|w| (w.batch_id.as_str(), w.job)).collect();
    assert_eq!(order, [("early", 0), ("early", 1), ("late", 0)]);
    assert_eq!((view.held, view.place("late", 0)), (None, Some(3)));

    // Two takes from the same read: only one moves the counter; the other must read again.
    let first = take(d, m, &view, "early", 0).await;
    let second = take(d, m, &view, "early", 1).await;
    assert_eq!((first, second), (true, false));
    let view = queue::view(d, m).await.expect("view");
    consistent(&view);
    assert!(view.holds("early", 0) && view.place("early", 0).is_none());
    assert!(take(d, m, &view, "early", 1).await);

    // A take needs its wait to be there still: a cancel that removed it since the read wins.
    queue::enqueue(d, m, 300, "cancelled", 0, 0).await.expect("enqueue");
    let before = queue::view(d, m).await.expect("view");
    let wait = before
        .waiting
        .iter()
        .find(|w| w.batch_id == "cancelled")
        .expect("waits")
        .clone();
    queue::leave(d, m, &wait.sk).await.expect("leave");
    assert!(!queue::take(d, m, &before, &wait, 0).await.expect("take"));
    assert!(!queue::view(d, m).await.expect("view").holds("cancelled", 0));

    // A refusal gives the slot back, puts the job back in its place and caps the quota at the slots left.
    queue::refused(d, m, 100, "early", 1, 1_000).await.expect("refused");
    let view = queue::view(d, m).await.expect("view");
    consistent(&view);
    assert_eq!(view.place("early", 1), Some(1));
    assert_eq!((view.held(), view.effective_quota(5, 1_000)), (1, 1));
    assert_eq!(view.free(5, 1_000), 0);
    assert_eq!(view.free(5, 1_000 + queue::CAP_SECONDS), 4, "the cap lasts CAP_SECONDS");
    // A job's end lifts the cap; a second give-back of the same slot is a no-op.
    assert!(queue::release(d, m, "early", 0).await.expect("release"));
    assert!(!queue::release(d, m, "early", 0).await.expect("release again"));
    let view = queue::view(d, m).await.expect("view");
    consistent(&view);
    assert_eq!((view.held(), view.cap, view.free(5, 1_000)), (0, None, 5));

    // Many batches taking slots at once, as their check-jobs turns do, with jobs ending meanwhile: never more
    // slots than the quota, the counter always the number of slots, and every job gets a slot exactly once.
    let m = "model-race";
    const QUOTA: u64 = 3;
    const BATCHES: usize = 6;
    const JOBS: usize = 3;
    for b in 0..BATCHES {
        for j in 0..JOBS {
            queue::enqueue(d, m, 1_000 + b as u64, &format!("b{b}"), j, 0)
                .await
                .expect("enqueue");
        }
    }
    let mut tasks = Vec::new();
    for b in 0..BATCHES {
        let deps = deps.clone();
        tasks.push(tokio::spawn(async move {
            let d = deps.as_ref();
            let batch = format!("b{b}");
            let mut started = 0;
            let mut turns = 0;
            while started < JOBS {
                turns += 1;
                assert!(turns < 2_000, "{batch} starved");
                let view = queue::view(d, m).await.expect("view");
                assert!(view.slots.len() as u64 <= QUOTA, "over the quota: {view:?}");
                // A job of ours that holds a slot ends (so that others get theirs).
                if let Some(slot) = view.slots.iter().find(|s| s.batch_id == batch) {
                    queue::release(d, m, &batch, slot.job).await.expect("release");
                    continue;
                }
                let free = view.free(QUOTA, 0) as usize;
                if let Some(wait) = view.waiting.iter().take(free).find(|w| w.batch_id == batch) {
                    if queue::take(d, m, &view, wait, 0).await.expect("take") {
                        started += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // The batch's last job ends too.
            let view = queue::view(d, m).await.expect("view");
            for slot in view.slots.iter().filter(|s| s.batch_id == batch) {
                assert!(queue::release(d, m, &batch, slot.job).await.expect("release"));
            }
            started
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), JOBS);
    }
    let view = queue::view(d, m).await.expect("view");
    consistent(&view);
    assert!(view.waiting.is_empty() && view.slots.is_empty(), "{view:?}");
}
