//! The account-wide job queue: one ledger of Bedrock job slots per model, shared by every batch of the
//! stack, in a DynamoDB table (docs/queue.md).
//!
//! Bedrock's concurrency quota (submitted and in-progress jobs) is per account, Region and model; a batch
//! alone cannot keep to it. Every job of every batch therefore waits in its model's queue, in the order of
//! its batch's creation and then its own index, and takes a slot before its create is sent:
//!
//! - one partition per model (`pk` = `model#<model id>`) holds a counter (`sk` = `count`: `held`, and
//!   `cap`/`cap_until` after a refusal), one item per slot taken (`slot#<batch id>#<job>`), and one per
//!   waiting job (`wait#<batch created_at>#<batch id>#<job>`, so that the partition's sort order is the
//!   queue's order);
//! - a slot is taken only by a job among the first free places of the queue, in one transaction that
//!   moves the counter from the value read to one more (a compare-and-set, so two batches never take the
//!   same slot or more than the quota), writes the slot and removes the wait;
//! - a slot is given back when its job is terminal, or when the owning batch is gone (its execution is
//!   no longer running, or it has ended): any batch that waits reclaims such a slot, and stops the job if
//!   Bedrock still runs it, since no one will collect its results;
//! - a refusal from Bedrock despite a free slot (another tool uses the same quota) gives the slot back,
//!   puts the job back in its place, and caps the model's quota at the slots still held (at least one:
//!   [`refusal_cap`]) until one of them ends, or [`CAP_SECONDS`] pass;
//! - whoever frees a slot wakes the batches now at the head of the queue, so that they do not wait for
//!   their next poll.
//!
//! Every write is idempotent or conditional, so a crash or a retried turn at any point repeats at most
//! one step: a slot taken whose create was never sent is found by its owner on the next turn (the slot
//! item names the job) and the create goes out with the job's deterministic clientRequestToken.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::{aws_error, Deps, StepError};

/// How long a refusal's cap lasts when none of our jobs of the model is left to end and lift it.
pub const CAP_SECONDS: u64 = 600;
/// Owners checked for being gone, at most, per model and turn: each is a read of batch.json and maybe a
/// DescribeExecution.
const RECLAIM_CHECKS_PER_TURN: usize = 10;

/// The partition of `model`.
fn pk(model: &str) -> String {
    format!("model#{model}")
}

const COUNT_SK: &str = "count";

/// The sort key of a slot taken by job `job` of `batch_id`.
pub fn slot_sk(batch_id: &str, job: usize) -> String {
    format!("slot#{batch_id}#{job:05}")
}

/// The sort key of job `job` of `batch_id` waiting in the queue: batches in the order they were created,
/// a batch's jobs in their order.
pub fn wait_sk(created_at: u64, batch_id: &str, job: usize) -> String {
    format!("wait#{created_at:012}#{batch_id}#{job:05}")
}

/// One slot or waiting job, as read from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sk: String,
    pub batch_id: String,
    pub job: usize,
    /// When a batch last found the owner alive (unix seconds), 0 if never checked.
    pub checked_at: u64,
    /// When the slot was taken or the wait began (unix seconds).
    pub since: u64,
}

/// A model's partition at one moment: the counter, the slots and the queue in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The counter's `held`; `None` when the counter item does not exist yet.
    pub held: Option<u64>,
    pub cap: Option<u64>,
    pub cap_until: u64,
    pub slots: Vec<Entry>,
    pub waiting: Vec<Entry>,
}

impl View {
    pub fn held(&self) -> u64 {
        self.held.unwrap_or(0)
    }

    /// The quota in force: `quota`, or less while a refusal's cap lasts.
    pub fn effective_quota(&self, quota: u64, now: u64) -> u64 {
        match self.cap {
            Some(cap) if now < self.cap_until => cap.min(quota),
            _ => quota,
        }
    }

    /// Slots free now under `quota`.
    pub fn free(&self, quota: u64, now: u64) -> u64 {
        self.effective_quota(quota, now).saturating_sub(self.held())
    }

    pub fn holds(&self, batch_id: &str, job: usize) -> bool {
        self.slots.iter().any(|s| s.batch_id == batch_id && s.job == job)
    }

    /// The job's place in the queue (1 for the head), if it waits.
    pub fn place(&self, batch_id: &str, job: usize) -> Option<usize> {
        self.waiting
            .iter()
            .position(|w| w.batch_id == batch_id && w.job == job)
            .map(|i| i + 1)
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn key(model: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk(model))), ("sk".to_string(), s(sk))])
}

fn entry_item(model: &str, sk: &str, batch_id: &str, job: usize, now: u64) -> HashMap<String, AttributeValue> {
    let mut item = key(model, sk);
    item.insert("batch_id".into(), s(batch_id));
    item.insert("job".into(), n(job as u64));
    item.insert("since".into(), n(now));
    item
}

/// The table, which the deployment must name for any of this to run.
fn table(deps: &Deps) -> Result<&str, StepError> {
    deps.config
        .job_queue_table
        .as_deref()
        .ok_or_else(|| StepError::Fatal("JOB_QUEUE_TABLE is not set".into()))
}

/// Reads `model`'s partition with a strongly consistent query.
pub async fn view(deps: &Deps, model: &str) -> Result<View, StepError> {
    let table = table(deps)?;
    let mut view = View::default();
    let mut start = None;
    // Bounded: a page holds 1 MB, and a partition a few thousand small items at most.
    for _ in 0..1000 {
        let page = deps
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk(model)))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| aws_error(&format!("DynamoDB Query {table} model {model}"), e))?;
        for item in page.items() {
            let Some(sk) = text(item, "sk") else { continue };
            if sk == COUNT_SK {
                view.held = Some(number(item, "held").unwrap_or(0));
                view.cap = number(item, "cap");
                view.cap_until = number(item, "cap_until").unwrap_or(0);
                continue;
            }
            let (Some(batch_id), Some(job)) = (text(item, "batch_id"), number(item, "job")) else {
                tracing::warn!(%table, %model, %sk, "a queue item without batch_id and job: ignored");
                continue;
            };
            let entry = Entry {
                sk: sk.to_string(),
                batch_id: batch_id.to_string(),
                job: usize::try_from(job).unwrap_or(usize::MAX),
                checked_at: number(item, "checked_at").unwrap_or(0),
                since: number(item, "since").unwrap_or(0),
            };
            if sk.starts_with("slot#") {
                view.slots.push(entry);
            } else if sk.starts_with("wait#") {
                view.waiting.push(entry);
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(view);
        }
    }
    Err(StepError::Transient(format!(
        "DynamoDB Query {table} model {model}: more pages than a queue can have"
    )))
}

/// Puts job `job` of `batch_id` in its model's queue (again: the same key, so a repeat changes nothing).
pub async fn enqueue(
    deps: &Deps,
    model: &str,
    created_at: u64,
    batch_id: &str,
    job: usize,
    now: u64,
) -> Result<(), StepError> {
    let table = table(deps)?;
    let sk = wait_sk(created_at, batch_id, job);
    deps.dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(entry_item(model, &sk, batch_id, job, now)))
        .condition_expression("attribute_not_exists(sk)")
        .send()
        .await
        .map(|_| ())
        .or_else(|e| {
            if is_condition_failed(&e) {
                Ok(())
            } else {
                Err(aws_error(&format!("DynamoDB PutItem {table} {sk}"), e))
            }
        })
}

/// Removes a wait (the job was cancelled, expired or failed while waiting, or its owner is gone).
pub async fn leave(deps: &Deps, model: &str, sk: &str) -> Result<(), StepError> {
    let table = table(deps)?;
    deps.dynamodb
        .delete_item()
        .table_name(table)
        .set_key(Some(key(model, sk)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_error(&format!("DynamoDB DeleteItem {table} {sk}"), e))
}

fn is_condition_failed<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// Runs one transaction: `false` when a condition did not hold (someone else moved first; read again).
async fn transact(deps: &Deps, what: &str, items: Vec<TransactWriteItem>) -> Result<bool, StepError> {
    match deps
        .dynamodb
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => {
            if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = e.as_service_error() {
                // A condition that did not hold, or another transaction on the same item, is a lost race: read
                // again. Any other reason (throttling, a validation error) is trouble to report.
                let other: Vec<&str> = cancelled
                    .cancellation_reasons()
                    .iter()
                    .filter_map(|r| r.code())
                    .filter(|c| !matches!(*c, "None" | "ConditionalCheckFailed" | "TransactionConflict"))
                    .collect();
                if other.is_empty() {
                    return Ok(false);
                }
                return Err(StepError::Transient(format!(
                    "DynamoDB TransactWriteItems ({what}) was cancelled: {}",
                    other.join(", ")
                )));
            }
            Err(aws_error(&format!("DynamoDB TransactWriteItems ({what})"), e))
        }
    }
}

fn build<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StepError> {
    r.map_err(|e| StepError::Fatal(format!("DynamoDB request: {e}")))
}

/// The counter moved from `held` as read to `to`, only if it still holds what was read. `also` continues the
/// update expression (`, cap = :cap`, ` REMOVE cap`), with the values it names.
fn count_update(
    table: &str,
    model: &str,
    held: Option<u64>,
    to: u64,
    also: &str,
    values: &[(&str, u64)],
) -> Result<TransactWriteItem, StepError> {
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key(model, COUNT_SK)))
        .update_expression(format!("SET held = :to{also}"));
    for (name, value) in values {
        update = update.expression_attribute_values(*name, n(*value));
    }
    let update = match held {
        Some(old) => update
            .condition_expression("held = :old")
            .expression_attribute_values(":old", n(old)),
        None => update.condition_expression("attribute_not_exists(held)"),
    };
    let update = build(update.expression_attribute_values(":to", n(to)).build())?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Takes a slot for job `job` of `batch_id` (waiting under `wait`) if the counter still holds what `view`
/// read: `false` when another batch moved first.
pub async fn take(deps: &Deps, model: &str, view: &View, wait: &Entry, now: u64) -> Result<bool, StepError> {
    let table = table(deps)?;
    let sk = slot_sk(&wait.batch_id, wait.job);
    let put = build(
        Put::builder()
            .table_name(table)
            .set_item(Some(entry_item(model, &sk, &wait.batch_id, wait.job, now)))
            .condition_expression("attribute_not_exists(sk)")
            .build(),
    )?;
    // The wait must still be there: a turn that ended it meanwhile (a cancel, another invocation for the same
    // batch) leaves the counter alone, so the counter's condition alone would not notice.
    let delete = build(
        Delete::builder()
            .table_name(table)
            .set_key(Some(key(model, &wait.sk)))
            .condition_expression("attribute_exists(sk)")
            .build(),
    )?;
    let items = vec![
        count_update(table, model, view.held, view.held() + 1, "", &[])?,
        TransactWriteItem::builder().put(put).build(),
        TransactWriteItem::builder().delete(delete).build(),
    ];
    transact(deps, &format!("take {sk}"), items).await
}

/// The quota after a refusal while `held` slots were taken (the refused job's included): the jobs still
/// running, but at least one, so that the job next in line keeps trying at its batch's turns. Bedrock's
/// refusal is for the whole model, so no other job of it could start meanwhile either.
pub fn refusal_cap(held: u64) -> u64 {
    held.saturating_sub(1).max(1)
}

/// Gives back the slot of job `job` of `batch_id`: its job is terminal, or its owner is gone. Lifts a
/// refusal's cap (a job ended). `false` when there was no such slot, or the counter moved meanwhile.
async fn give_back(
    deps: &Deps,
    model: &str,
    view: &View,
    batch_id: &str,
    job: usize,
    requeue: Option<(String, u64)>,
) -> Result<bool, StepError> {
    // `requeue`: the job's wait key and the time now.
    let table = table(deps)?;
    let sk = slot_sk(batch_id, job);
    let delete = build(
        Delete::builder()
            .table_name(table)
            .set_key(Some(key(model, &sk)))
            .condition_expression("attribute_exists(sk)")
            .build(),
    )?;
    // The counter as read: a slot without a counter is a corrupt ledger, which no give-back may paper over.
    let (held, to) = (Some(view.held()), view.held().saturating_sub(1));
    let mut items = Vec::new();
    let count = match &requeue {
        // A refusal: the job waits again in its place, and the quota is capped at the slots left.
        Some((wait, now)) => {
            let put = build(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(entry_item(model, wait, batch_id, job, *now)))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().put(put).build());
            let values = [(":cap", refusal_cap(view.held())), (":until", now + CAP_SECONDS)];
            count_update(table, model, held, to, ", cap = :cap, cap_until = :until", &values)?
        }
        // A refusal's cap stays until one of the model's slots is given back without a refusal: a job ended,
        // or a slot was reclaimed.
        None => count_update(table, model, held, to, " REMOVE cap, cap_until", &[])?,
    };
    items.push(count);
    items.push(TransactWriteItem::builder().delete(delete).build());
    transact(deps, &format!("give back {sk}"), items).await
}

/// Gives back a slot (with `requeue`, as [`give_back`] takes it), reading the counter again as often as
/// others change it meanwhile. `false` when the slot was not held (given back already).
async fn give_back_read_again(
    deps: &Deps,
    model: &str,
    batch_id: &str,
    job: usize,
    requeue: Option<(String, u64)>,
) -> Result<bool, StepError> {
    for _ in 0..20 {
        let view = view(deps, model).await?;
        if !view.holds(batch_id, job) {
            return Ok(false);
        }
        if give_back(deps, model, &view, batch_id, job, requeue.clone()).await? {
            return Ok(true);
        }
    }
    Err(StepError::Transient(format!(
        "the job queue of {model} kept changing while job {job} of {batch_id} gave its slot back"
    )))
}

/// Gives back the slot of a job that ended, or whose batch is gone. `false` when it was given back already.
pub async fn release(deps: &Deps, model: &str, batch_id: &str, job: usize) -> Result<bool, StepError> {
    give_back_read_again(deps, model, batch_id, job, None).await
}

/// Bedrock refused the create although the ledger had a free slot: the slot goes back, the job waits in
/// its place again, and the model's quota is capped at the slots still held.
pub async fn refused(
    deps: &Deps,
    model: &str,
    created_at: u64,
    batch_id: &str,
    job: usize,
    now: u64,
) -> Result<(), StepError> {
    let wait = wait_sk(created_at, batch_id, job);
    if !give_back_read_again(deps, model, batch_id, job, Some((wait, now))).await? {
        // The slot was given back already (a repeated turn): the job only needs its place again.
        enqueue(deps, model, created_at, batch_id, job, now).await?;
    }
    Ok(())
}

/// Records that the owner of `entry` was found alive, so that other batches do not ask again soon. A lost
/// race with another checker changes nothing.
pub async fn checked(deps: &Deps, model: &str, entry: &Entry, now: u64) -> Result<(), StepError> {
    let table = table(deps)?;
    let result = deps
        .dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key(model, &entry.sk)))
        .update_expression("SET checked_at = :now")
        .condition_expression("attribute_exists(sk)")
        .expression_attribute_values(":now", n(now))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        // The entry is gone, or a transaction is changing it: the next checker asks again.
        Err(e) if is_condition_failed(&e) => Ok(()),
        Err(e) => {
            let why = aws_error("DynamoDB UpdateItem", e);
            tracing::warn!(%table, sk = %entry.sk, error = %why, "could not record that a queue entry's owner runs");
            Ok(())
        }
    }
}

/// The entries of other batches worth asking about now: those not found alive within `every` seconds,
/// slots first, then the waits ahead of `batch_id`'s first one, at most [`RECLAIM_CHECKS_PER_TURN`].
pub fn to_check<'a>(view: &'a View, batch_id: &str, every: u64, now: u64) -> Vec<&'a Entry> {
    let first_own = view.waiting.iter().position(|w| w.batch_id == batch_id).unwrap_or(0);
    view.slots
        .iter()
        .chain(view.waiting.iter().take(first_own))
        .filter(|e| e.batch_id != batch_id && e.checked_at + every <= now)
        .take(RECLAIM_CHECKS_PER_TURN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sk: &str, batch: &str, job: usize, checked_at: u64) -> Entry {
        Entry {
            sk: sk.into(),
            batch_id: batch.into(),
            job,
            checked_at,
            since: 0,
        }
    }

    #[test]
    fn the_queue_order_is_the_batches_creation_then_the_job_index() {
        let mut keys = vec![
            wait_sk(1_700_000_100, "b-later", 0),
            wait_sk(1_700_000_000, "b-first", 10),
            wait_sk(1_700_000_000, "b-first", 2),
            wait_sk(999, "b-old", 0),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                wait_sk(999, "b-old", 0),
                wait_sk(1_700_000_000, "b-first", 2),
                wait_sk(1_700_000_000, "b-first", 10),
                wait_sk(1_700_000_100, "b-later", 0),
            ]
        );
    }

    #[test]
    fn a_cap_lowers_the_quota_only_while_it_lasts() {
        let view = View {
            held: Some(2),
            cap: Some(2),
            cap_until: 100,
            ..View::default()
        };
        assert_eq!(view.free(5, 99), 0);
        assert_eq!(view.free(5, 100), 3);
        assert_eq!(view.effective_quota(1, 50), 1);
        let over = View {
            held: Some(7),
            ..View::default()
        };
        assert_eq!(over.free(5, 0), 0);
        // The refused job's slot is given back; with nothing else running, one job may keep trying.
        assert_eq!((refusal_cap(4), refusal_cap(1), refusal_cap(0)), (3, 1, 1));
    }

    #[test]
    fn only_other_batches_entries_ahead_are_checked_and_not_too_often() {
        let view = View {
            held: Some(2),
            slots: vec![entry("slot#a#00000", "a", 0, 0), entry("slot#me#00001", "me", 1, 0)],
            waiting: vec![
                entry("wait#1#b#00000", "b", 0, 95),
                entry("wait#1#c#00000", "c", 0, 0),
                entry("wait#2#me#00002", "me", 2, 0),
                entry("wait#3#d#00000", "d", 0, 0),
            ],
            ..View::default()
        };
        let sks: Vec<&str> = to_check(&view, "me", 10, 100).iter().map(|e| e.sk.as_str()).collect();
        assert_eq!(sks, vec!["slot#a#00000", "wait#1#c#00000"]);
        assert_eq!(view.place("me", 2), Some(3));
        assert_eq!(view.place("d", 0), Some(4));
        assert!(view.holds("me", 1) && !view.holds("me", 2));
    }
}
