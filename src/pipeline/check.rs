//! The check-jobs step: one turn of the state machine's loop (docs/reliability.md).
//!
//! The one place that creates Bedrock jobs: a job is created only after its batch exists and its execution
//! runs, with its deterministic name and clientRequestToken, and a create whose outcome is unknown is
//! settled by finding the job, never by assuming it does not exist. Each turn also polls every job, honours
//! a cancel, expires jobs that waited too long for a slot, and keeps batch.json current with conditional
//! writes. S3 or Bedrock trouble does not fail the batch: the turn answers "not done, wait" until the outage
//! budget is spent. With `failure` in its input (the state machine's failure path) the turn stops every job
//! of the batch instead, and answers done once each is terminal.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{jobs, load_batch, now, queue, s3, update_batch, Deps, StepError};
use crate::layout;
use crate::status::{is_terminal_job_status, BatchDoc, Job, QUEUED};

/// Polls one execution may make in its loop before the batch is failed as overdue. With the worst case of
/// every retry on every poll (tests/state_machine.rs computes it from the definition), 500 polls and the
/// failure path stay below Step Functions' 25,000 history events.
pub const POLL_BUDGET: u32 = 500;
/// Polls of the failure path's stop loop.
pub const STOP_POLL_BUDGET: u32 = 60;
/// The longest wait while riding out an outage, so that the loop notices its end soon.
const OUTAGE_WAIT_MAX: u64 = 300;
/// Turns of an outage that follow the backoff; after them the turns spread over the outage budget, so
/// that one outage costs at most about this many turns plus [`OUTAGE_SPREAD_TURNS`].
const OUTAGE_QUICK_TURNS: u32 = 5;
const OUTAGE_SPREAD_TURNS: u64 = 100;

/// The task's input: the execution's state, which every answer of this step replaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckInput {
    pub batch_id: String,
    /// Turns of this loop so far.
    #[serde(default)]
    pub polls: u32,
    /// Since when S3 or Bedrock have been failing (unix seconds), while they are.
    #[serde(default)]
    pub outage_since: Option<u64>,
    /// Turns of the current outage so far.
    #[serde(default)]
    pub outage_polls: u32,
    /// Turns of the failure path's stop loop so far.
    #[serde(default)]
    pub stop_polls: u32,
    /// What the state machine's Catch caught (`{"Error", "Cause"}`): the failure path.
    #[serde(default)]
    pub failure: Option<Value>,
}

impl CheckInput {
    pub fn new(batch_id: &str) -> CheckInput {
        CheckInput {
            batch_id: batch_id.to_string(),
            polls: 0,
            outage_since: None,
            outage_polls: 0,
            stop_polls: 0,
            failure: None,
        }
    }
}

/// The task's output: read by the Choice states and the Wait states' `SecondsPath`, and the next turn's
/// input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutput {
    pub batch_id: String,
    pub all_done: bool,
    pub wait_seconds: u64,
    pub polls: u32,
    pub outage_since: Option<u64>,
    #[serde(default)]
    pub outage_polls: u32,
    #[serde(default)]
    pub stop_polls: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Value>,
    /// The trouble this turn rode out, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub async fn handle(deps: &Deps, input: CheckInput) -> Result<CheckOutput, StepError> {
    // The turn ends well inside the Lambda timeout: what it did not finish is done next turn.
    let budget = Duration::from_secs(deps.config.check_budget_seconds);
    // Boxed: the turn's future is deep enough to exceed the compiler's layout depth inside the runtime's.
    let turn: std::pin::Pin<Box<dyn std::future::Future<Output = Result<CheckOutput, StepError>> + Send + '_>> =
        if input.failure.is_some() {
            Box::pin(stop_turn(deps, &input))
        } else {
            Box::pin(turn(deps, &input))
        };
    let result = tokio::time::timeout(budget, turn).await.unwrap_or_else(|_| {
        Err(StepError::Transient(format!(
            "the turn did not finish within its {} s budget",
            budget.as_secs()
        )))
    });
    match result {
        Ok(out) => Ok(out),
        Err(StepError::Transient(why)) => ride_out(deps, &input, why),
        Err(fatal) => Err(fatal),
    }
}

/// Transient trouble: wait and try again, until the outage budget is spent. Every such turn counts
/// against the loop's poll budget like any other, so an outage cannot lengthen an execution's history
/// past what tests/state_machine.rs proves.
fn ride_out(deps: &Deps, input: &CheckInput, why: String) -> Result<CheckOutput, StepError> {
    let now = now();
    let since = input.outage_since.unwrap_or(now);
    let budget = deps.config.outage_budget_seconds;
    let stopping = input.failure.is_some();
    let (polls, stop_polls) = if stopping {
        (input.polls, input.stop_polls.saturating_add(1))
    } else {
        (input.polls.saturating_add(1), input.stop_polls)
    };
    let over_budget = if stopping {
        stop_polls >= STOP_POLL_BUDGET
    } else {
        polls >= POLL_BUDGET
    };
    if now.saturating_sub(since) >= budget || over_budget {
        if stopping {
            // The failure path cannot wait any longer: finalize delivers what it can.
            tracing::error!(batch_id = %input.batch_id, error = %why, "could not stop job: S3 or Bedrock kept failing on the failure path");
            return Ok(CheckOutput {
                all_done: true,
                wait_seconds: 1,
                ..outage_answer(input, polls, stop_polls, since, why)
            });
        }
        return Err(StepError::Fatal(format!(
            "S3 or Bedrock kept failing for {} minutes ({} turns), past the outage budget of {} hours; last error: {why}",
            now.saturating_sub(since) / 60,
            input.outage_polls + 1,
            budget / 3600
        )));
    }
    tracing::warn!(batch_id = %input.batch_id, outage_seconds = now - since, error = %why, "riding out transient trouble");
    let backoff = deps.config.backoff.wait(input.outage_polls).min(OUTAGE_WAIT_MAX);
    let wait = if input.outage_polls < OUTAGE_QUICK_TURNS {
        backoff
    } else {
        backoff.max(budget / OUTAGE_SPREAD_TURNS)
    };
    Ok(CheckOutput {
        wait_seconds: wait,
        ..outage_answer(input, polls, stop_polls, since, why)
    })
}

fn outage_answer(input: &CheckInput, polls: u32, stop_polls: u32, since: u64, why: String) -> CheckOutput {
    CheckOutput {
        batch_id: input.batch_id.clone(),
        all_done: false,
        wait_seconds: 1,
        polls,
        outage_since: Some(since),
        outage_polls: input.outage_polls.saturating_add(1),
        stop_polls,
        failure: input.failure.clone(),
        last_error: Some(why),
    }
}

/// The wait before the next turn: the backoff, spread out in the second half of the poll budget so that
/// the polls left always cover the time the batch may still last.
pub fn next_wait(deps: &Deps, doc: &BatchDoc, polls: u32, now: u64) -> u64 {
    let backoff = deps.config.backoff.wait(polls);
    if polls < POLL_BUDGET / 2 {
        return backoff;
    }
    let deadline = doc.created_at + deps.config.longest_batch_seconds();
    let left = u64::from(POLL_BUDGET.saturating_sub(polls).max(1));
    backoff.max(deadline.saturating_sub(now) / left)
}

async fn turn(deps: &Deps, input: &CheckInput) -> Result<CheckOutput, StepError> {
    let config = &deps.config;
    let doc = load_batch(deps, &input.batch_id).await?.doc;
    let polls = input.polls.saturating_add(1);
    let done = |wait_seconds| CheckOutput {
        batch_id: input.batch_id.clone(),
        all_done: true,
        wait_seconds,
        polls,
        outage_since: None,
        outage_polls: 0,
        stop_polls: 0,
        failure: None,
        last_error: None,
    };
    if doc.status.is_terminal() {
        return Ok(done(1));
    }
    let now = now();
    if !doc.bedrock.staged {
        return Err(StepError::Fatal(format!(
            "batch {} is not staged: its execution started before submit finished",
            doc.id
        )));
    }
    let overdue = now > doc.created_at + config.longest_batch_seconds();
    if input.polls >= POLL_BUDGET || overdue {
        return Err(StepError::Fatal(format!(
            "the batch is still running after {} polls and {} hours, longer than any batch can last \
             (QUEUE_TIMEOUT_HOURS + JOB_TIMEOUT_HOURS + OUTAGE_BUDGET_HOURS + STOP_WAIT_MINUTES)",
            input.polls,
            now.saturating_sub(doc.created_at) / 3600
        )));
    }

    // Wake-ups counted before this read are answered by this turn; later ones wake the next park.
    let wake_requests = doc.bedrock.wake.requests;
    let cancel = doc.bedrock.cancel_requested
        || s3::exists(&deps.s3, &config.input_bucket, &layout::cancel_key(&doc.id)).await?;
    let mut seen = doc.bedrock.jobs.clone();

    // A create whose answer was lost: find the job before deciding anything about it.
    let unsettled = seen.iter().any(|j| j.job_arn.is_none() && j.create_unknown);
    // A queued job about to be cancelled or expired may have been created by a turn that never saved its ARN
    // (a slot in the job queue is taken just before the create): look before deciding it was never made.
    let expiring = !cancel && now > doc.created_at + config.queue_timeout_seconds;
    let unborn_queued = seen.iter().any(|j| j.job_arn.is_none() && j.status == QUEUED);
    if unsettled || ((cancel || expiring) && unborn_queued) {
        let found = jobs::find(deps, &doc.id).await?;
        for stranger in jobs::merge_found(&mut seen, &found) {
            tracing::error!(batch_id = %doc.id, job = %stranger.arn, "a Bedrock job of this batch that batch.json does not list");
            if cancel && jobs::stoppable(&stranger.status) {
                jobs::stop_arn(deps, &stranger.arn).await?;
            }
        }
        // Not found: the create never took effect. Creating again is safe: the same clientRequestToken
        // names the same job should Bedrock's listing have lagged behind.
        for job in seen.iter_mut().filter(|j| j.job_arn.is_none() && j.create_unknown) {
            tracing::info!(batch_id = %doc.id, job = job.index, "the job of a create with an unknown outcome does not exist: creating it again");
            job.create_unknown = false;
        }
    }
    for job in seen.iter_mut().filter(|j| j.is_active()) {
        jobs::refresh(deps, job).await?;
        if cancel {
            // A failed stop is kept on the job and tried again next turn; the alarm counts it.
            let _ = jobs::stop(deps, &doc.id, job).await;
        }
    }

    let fair = config.job_queue_table.is_some();
    if cancel {
        for job in seen.iter_mut().filter(|j| j.job_arn.is_none() && j.status == QUEUED) {
            job.status = "Stopped".into();
            job.create_unknown = false;
            job.message = Some("The batch was cancelled before this job was created.".into());
        }
    } else if expiring {
        for job in seen.iter_mut().filter(|j| j.job_arn.is_none() && j.status == QUEUED) {
            job.status = "Expired".into();
            job.create_unknown = false;
            job.message = Some(format!(
                "The job was not created within {} hours of the batch's start (QUEUE_TIMEOUT_HOURS): Bedrock's quota for the model stayed taken by earlier jobs (docs/queue.md).",
                config.queue_timeout_seconds / 3600
            ));
        }
    } else if !fair {
        create_queued(deps, &doc.id, &mut seen).await;
    }
    if fair {
        // Every turn settles the batch's places in the job queue; it creates jobs unless the batch is cancelled
        // or its queue window is over.
        fair_turn(deps, &doc, &mut seen, !cancel && !expiring, now).await?;
    }

    let saved = update_batch(deps, &doc.id, |d| {
        jobs::merge_seen(&mut d.bedrock.jobs, &seen);
        d.bedrock.cancel_requested |= cancel;
        d.bedrock.polls = d.bedrock.polls.max(polls);
        d.bedrock.wake.seen = d.bedrock.wake.seen.max(wake_requests);
        update_counts(d);
        if !d.all_jobs_terminal() {
            let status = d.running_status();
            d.set_status(status, now);
        }
    })
    .await?;
    if saved.all_jobs_terminal() {
        return Ok(done(1));
    }
    Ok(CheckOutput {
        all_done: false,
        wait_seconds: next_wait(deps, &saved, input.polls, now),
        ..done(0)
    })
}

/// Creates queued jobs while the batch has fewer than the concurrency limit active per model. A full
/// quota or throttling leaves the job queued; a refusal fails it (its records become error lines); an
/// unknown outcome marks it to be found by name next turn, and nothing more is created for its model now.
async fn create_queued(deps: &Deps, batch_id: &str, seen: &mut [Job]) {
    let mut held: Vec<String> = Vec::new();
    for i in 0..seen.len() {
        let job = &seen[i];
        if job.status != QUEUED || job.job_arn.is_some() || job.create_unknown || held.contains(&job.model) {
            continue;
        }
        let active = seen.iter().filter(|j| j.model == job.model && j.is_active()).count();
        if active >= deps.config.max_concurrent_jobs {
            continue;
        }
        let outcome = jobs::create(deps, batch_id, job).await;
        let job = &mut seen[i];
        match outcome {
            jobs::Created::Job(arn) => {
                tracing::info!(%batch_id, job = job.index, %arn, "job created");
                job.job_arn = Some(arn);
                job.status = "Submitted".into();
            }
            jobs::Created::Full(why) | jobs::Created::NotYet(why) => {
                tracing::warn!(%batch_id, job = job.index, error = %why, "job stays queued");
                held.push(job.model.clone());
            }
            jobs::Created::Refused(why) => {
                tracing::error!(%batch_id, job = job.index, error = %why, "job refused");
                job.status = "Failed".into();
                job.message = Some(why);
            }
            jobs::Created::Unknown(why) => {
                tracing::warn!(%batch_id, job = job.index, error = %why, "job create outcome unknown: it will be looked up by name");
                job.create_unknown = true;
                held.push(job.model.clone());
            }
        }
    }
}

/// One turn's part in the account-wide job queue (docs/queue.md), model by model: slots of jobs that
/// ended are given back and waits that ended removed; with `may_create`, the batch's queued jobs wait in
/// their model's queue, slots whose owner is gone are reclaimed, and each job among the first free places
/// takes a slot and is created. Whoever freed a slot wakes the batches now at the head of the queue.
async fn fair_turn(deps: &Deps, doc: &BatchDoc, seen: &mut [Job], may_create: bool, now: u64) -> Result<(), StepError> {
    let models: std::collections::BTreeSet<String> = seen.iter().map(|j| j.model.clone()).collect();
    for model in models {
        fair_model(deps, doc, seen, &model, may_create, now).await?;
    }
    Ok(())
}

/// A job that has not been created and may still be: it waits for a slot, or holds one.
fn unborn(job: &Job) -> bool {
    job.job_arn.is_none() && job.status == QUEUED && !job.create_unknown
}

async fn fair_model(
    deps: &Deps,
    doc: &BatchDoc,
    seen: &mut [Job],
    model: &str,
    may_create: bool,
    now: u64,
) -> Result<(), StepError> {
    let quota = deps.config.job_quota(model) as u64;
    let batch_id = doc.id.as_str();
    let mut view = queue::view(deps, model).await?;
    let mut freed = false;
    let mut changed = false;

    // The batch's own entries: a job that ended holds nothing; a job that can no longer be created waits
    // no more; one that may be created waits, unless it holds a slot already.
    for job in seen.iter().filter(|j| j.model == model) {
        // Found by batch and job, not by the key a wait gets now: a wait written before a change of the batch's
        // created_at still belongs to the job.
        let found = view
            .waiting
            .iter()
            .find(|w| w.batch_id == batch_id && w.job == job.index)
            .map(|w| w.sk.clone());
        let waits = found.is_some();
        let wait = found.unwrap_or_else(|| queue::wait_sk(doc.created_at, batch_id, job.index));
        if is_terminal_job_status(&job.status) {
            if view.holds(batch_id, job.index) {
                freed |= queue::release(deps, model, batch_id, job.index).await?;
                changed = true;
            }
            if waits {
                queue::leave(deps, model, &wait).await?;
                (changed, freed) = (true, true);
            }
        } else if unborn(job) && !view.holds(batch_id, job.index) {
            if may_create && !waits {
                queue::enqueue(deps, model, doc.created_at, batch_id, job.index, now).await?;
                changed = true;
            } else if !may_create && waits {
                queue::leave(deps, model, &wait).await?;
                (changed, freed) = (true, true);
            }
        }
    }
    if changed {
        view = queue::view(deps, model).await?;
    }

    if may_create && view.waiting.iter().any(|w| w.batch_id == batch_id) {
        // Slots and waits ahead of ours whose batch is gone (its execution killed, or ended without giving
        // them back) are reclaimed.
        let mut reclaimed = false;
        for entry in queue::to_check(&view, batch_id, deps.config.queue_reclaim_seconds, now) {
            match owner(deps, entry, now).await {
                Ok(Owner::Gone) if entry.sk.starts_with("slot#") => {
                    tracing::warn!(%batch_id, owner = %entry.batch_id, job = entry.job, %model, "reclaiming the slot of a batch that is gone");
                    reclaimed |= queue::release(deps, model, &entry.batch_id, entry.job).await?;
                }
                Ok(Owner::Gone) => {
                    tracing::warn!(%batch_id, owner = %entry.batch_id, job = entry.job, %model, "removing the wait of a batch that is gone");
                    queue::leave(deps, model, &entry.sk).await?;
                    reclaimed = true;
                }
                // Asked again next turn, until Bedrock no longer counts the job.
                Ok(Owner::Stopping) => {}
                Ok(Owner::Alive) => queue::checked(deps, model, entry, now).await?,
                Err(e) => {
                    tracing::warn!(%batch_id, owner = %entry.batch_id, error = %e, "could not tell whether a batch in the job queue still runs")
                }
            }
        }
        if reclaimed {
            freed = true;
            view = queue::view(deps, model).await?;
        }
    }

    if may_create {
        // First the jobs that hold a slot already (a turn that took it ended before its create was sent).
        let mut full = false;
        for job in seen.iter_mut() {
            if !full && job.model == model && unborn(job) && view.holds(batch_id, job.index) {
                let outcome = create_in_slot(deps, doc, job, now).await?;
                freed |= outcome != Slot::Kept;
                full = outcome.is_full();
            }
        }
        // Then the jobs among the first free places of the queue; a place ahead that is another batch's is
        // that batch's slot.
        for _ in 0..5 {
            if full {
                break;
            }
            let free = view.free(quota, now);
            let mine: Vec<queue::Entry> = view
                .waiting
                .iter()
                .take(usize::try_from(free).unwrap_or(usize::MAX))
                .filter(|w| w.batch_id == batch_id)
                .cloned()
                .collect();
            let mut lost_race = false;
            for wait in mine {
                let Some(job) = seen
                    .iter_mut()
                    .find(|j| j.index == wait.job)
                    .filter(|j| j.model == model && unborn(j))
                else {
                    queue::leave(deps, model, &wait.sk).await?;
                    continue;
                };
                if !queue::take(deps, model, &view, &wait, now).await? {
                    lost_race = true;
                    break;
                }
                view.held = Some(view.held() + 1);
                view.waiting.retain(|w| w.sk != wait.sk);
                let outcome = create_in_slot(deps, doc, job, now).await?;
                freed |= outcome != Slot::Kept;
                if outcome.is_full() {
                    full = true;
                    break;
                }
            }
            if !lost_race {
                break;
            }
            view = queue::view(deps, model).await?;
        }
        view = queue::view(deps, model).await?;
    }
    for job in seen.iter_mut().filter(|j| j.model == model) {
        job.queue_position = if unborn(job) {
            view.place(batch_id, job.index).map(|p| p as u64)
        } else {
            None
        };
    }

    if freed {
        // The batches at the head of the queue start their jobs now rather than at their next poll.
        let mut woken: Vec<&str> = Vec::new();
        for wait in view
            .waiting
            .iter()
            .take(usize::try_from(view.free(quota, now)).unwrap_or(usize::MAX))
        {
            if wait.batch_id == batch_id || woken.contains(&wait.batch_id.as_str()) {
                continue;
            }
            woken.push(&wait.batch_id);
            let reason = format!("a slot for {model} is free in the job queue");
            tracing::info!(%batch_id, other = %wait.batch_id, %model, "waking the batch next in the job queue");
            if let Err(e) = super::wake::nudge(deps, &wait.batch_id, &reason).await {
                tracing::warn!(%batch_id, other = %wait.batch_id, error = %e, "could not wake a batch at the head of the job queue");
            }
        }
    }
    Ok(())
}

/// What became of a slot after its job's create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The job holds it: created, or to be created (or found) next turn.
    Kept,
    /// Given back: Bedrock refused the job for good.
    Freed,
    /// Given back and the job waits again: Bedrock's quota for the model is full.
    Full,
}

impl Slot {
    fn is_full(self) -> bool {
        self == Slot::Full
    }
}

/// Creates a job that holds a slot. Bedrock's refusal for its quota gives the slot back and the job waits
/// in its place again, with the model's quota capped; a refusal for any other reason fails the job and
/// frees the slot; throttling or an unknown outcome keeps the slot for the next turn.
async fn create_in_slot(deps: &Deps, doc: &BatchDoc, job: &mut Job, now: u64) -> Result<Slot, StepError> {
    let batch_id = doc.id.as_str();
    Ok(match jobs::create(deps, batch_id, job).await {
        jobs::Created::Job(arn) => {
            tracing::info!(%batch_id, job = job.index, %arn, "job created");
            job.job_arn = Some(arn);
            job.status = "Submitted".into();
            Slot::Kept
        }
        jobs::Created::Full(why) => {
            tracing::warn!(%batch_id, job = job.index, error = %why, "Bedrock's quota is full despite a free slot in the job queue: the job waits again");
            queue::refused(deps, &job.model, doc.created_at, batch_id, job.index, now).await?;
            Slot::Full
        }
        jobs::Created::NotYet(why) => {
            tracing::warn!(%batch_id, job = job.index, error = %why, "job keeps its slot and is created next turn");
            Slot::Kept
        }
        jobs::Created::Refused(why) => {
            tracing::error!(%batch_id, job = job.index, error = %why, "job refused");
            job.status = "Failed".into();
            job.message = Some(why);
            queue::release(deps, &job.model, batch_id, job.index).await?;
            Slot::Freed
        }
        jobs::Created::Unknown(why) => {
            tracing::warn!(%batch_id, job = job.index, error = %why, "job create outcome unknown: it will be looked up by name");
            job.create_unknown = true;
            Slot::Kept
        }
    })
}

/// What became of the batch that holds a slot or waits, asked by another batch.
enum Owner {
    /// Its execution runs: its entries stay.
    Alive,
    /// No batch.json, a batch that has ended, or an execution that no longer runs, and no job of it still
    /// counts against Bedrock's quota: its entry may go.
    Gone,
    /// Gone, but its job is still stopping (a job of a gone batch is stopped, since no one will collect its
    /// results), or a create of its may still be on the way: the slot stays taken until Bedrock no longer
    /// counts the job and no invocation of the gone execution can still send one.
    Stopping,
}

async fn owner(deps: &Deps, entry: &queue::Entry, now: u64) -> Result<Owner, StepError> {
    let (batch_id, job) = (entry.batch_id.as_str(), entry.job);
    let Some(stored) = super::read_batch(deps, batch_id).await? else {
        return Ok(Owner::Gone);
    };
    let doc = stored.doc;
    let running = if doc.status.is_terminal() {
        false
    } else if let Some(arn) = &doc.bedrock.execution_arn {
        match deps.sfn.describe_execution().execution_arn(arn).send().await {
            Ok(out) => *out.status() == aws_sdk_sfn::types::ExecutionStatus::Running,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(aws_sdk_sfn::operation::describe_execution::DescribeExecutionError::ExecutionDoesNotExist(_))
                ) =>
            {
                false
            }
            Err(e) => return Err(super::aws_error(&format!("DescribeExecution {arn}"), e)),
        }
    } else {
        // Its execution is starting and not recorded yet.
        true
    };
    if running {
        return Ok(Owner::Alive);
    }
    if !entry.sk.starts_with("slot#") {
        return Ok(Owner::Gone);
    }
    // A check-jobs invocation of the stopped execution may still be between taking this slot and sending its
    // create: only once it can no longer run is the job's absence to be believed.
    if now < entry.since + deps.config.check_timeout_seconds {
        return Ok(Owner::Stopping);
    }
    let mut orphan = match doc.bedrock.jobs.get(job) {
        Some(j) if j.job_arn.is_some() => j.clone(),
        Some(j) => {
            // No ARN recorded (a create whose answer was lost or never saved): Bedrock's listing says whether
            // the job exists.
            let found = jobs::find(deps, batch_id).await?;
            let Some(f) = found.iter().find(|f| f.index == Some(job)) else {
                return Ok(Owner::Gone);
            };
            Job {
                job_arn: Some(f.arn.clone()),
                status: f.status.clone(),
                ..j.clone()
            }
        }
        None => return Ok(Owner::Gone),
    };
    // batch.json stopped changing with its execution: Bedrock says where the job is.
    jobs::refresh(deps, &mut orphan).await?;
    if is_terminal_job_status(&orphan.status) {
        return Ok(Owner::Gone);
    }
    if jobs::stoppable(&orphan.status) {
        tracing::warn!(owner = %batch_id, job, arn = ?orphan.job_arn, "stopping a job whose batch is gone");
        jobs::stop(deps, batch_id, &mut orphan).await?;
    }
    Ok(Owner::Stopping)
}

/// The failure path: record why, find every job of the batch by name, stop each one still working, and
/// answer done once all are terminal (or the stop wait is over). The last look comes only after a
/// check-jobs invocation the state machine gave up on can no longer be running, so that no job it may
/// still create is missed.
async fn stop_turn(deps: &Deps, input: &CheckInput) -> Result<CheckOutput, StepError> {
    let config = &deps.config;
    let doc = load_batch(deps, &input.batch_id).await?.doc;
    let polls = input.stop_polls.saturating_add(1);
    let now = now();
    let why = failure_text(input.failure.as_ref());
    let mut seen = doc.bedrock.jobs.clone();
    let found = jobs::find(deps, &doc.id).await?;
    let strangers = jobs::merge_found(&mut seen, &found);
    let mut stop_failed = false;
    for stranger in strangers.iter().filter(|s| jobs::stoppable(&s.status)) {
        tracing::error!(batch_id = %doc.id, job = %stranger.arn, "a Bedrock job of this batch that batch.json does not list");
        stop_failed |= jobs::stop_arn(deps, &stranger.arn).await.is_err();
    }
    for job in seen.iter_mut().filter(|j| j.is_active()) {
        // The failure may be the very read that fails (a permission error on GetModelInvocationJob): the
        // listing's status is enough to stop the job.
        if let Err(e) = jobs::refresh(deps, job).await {
            tracing::warn!(batch_id = %doc.id, job = job.index, error = %e, "could not read job; stopping it on the listing's status");
        }
        stop_failed |= jobs::stop(deps, &doc.id, job).await.is_err();
    }
    for job in seen.iter_mut().filter(|j| j.job_arn.is_none() && j.status == QUEUED) {
        job.status = "Stopped".into();
        job.create_unknown = false;
        job.message = Some("The batch failed before this job was created.".into());
    }
    if config.job_queue_table.is_some() {
        // Stopped jobs give their slots back, and waits end. Trouble with the queue must not hold up the
        // stop: what is left behind is reclaimed by the next batch that waits, once this execution ends.
        if let Err(e) = fair_turn(deps, &doc, &mut seen, false, now).await {
            tracing::warn!(batch_id = %doc.id, error = %e, "could not settle the batch's places in the job queue on the failure path");
        }
    }
    let saved = update_batch(deps, &doc.id, |d| {
        jobs::merge_seen(&mut d.bedrock.jobs, &seen);
        d.bedrock.failure.get_or_insert_with(|| why.clone());
        d.bedrock.stopping_since.get_or_insert(now);
        update_counts(d);
    })
    .await?;
    let since = saved.bedrock.stopping_since.unwrap_or(now);
    let outwaited = now >= since + config.check_timeout_seconds;
    let settled = saved.all_jobs_terminal() && strangers.iter().all(|s| is_terminal_job_status(&s.status));
    let given_up = now >= since + config.stop_wait_seconds || polls >= STOP_POLL_BUDGET;
    if given_up && !settled {
        tracing::error!(batch_id = %doc.id, "could not stop job: some jobs of the failed batch are still not terminal after the stop wait");
    }
    let all_done = doc.status.is_terminal() || (settled && outwaited && !stop_failed) || given_up;
    // Spread the stop loop's polls over the stop wait, but look again soon after the first stops.
    let wait = (config.stop_wait_seconds / u64::from(STOP_POLL_BUDGET)).clamp(1, 120);
    let wait = if settled && !outwaited {
        (since + config.check_timeout_seconds).saturating_sub(now).clamp(1, 300)
    } else {
        wait.min(config.backoff.wait(polls.min(4)))
    };
    Ok(CheckOutput {
        batch_id: input.batch_id.clone(),
        all_done,
        wait_seconds: wait,
        polls: input.polls,
        outage_since: None,
        outage_polls: 0,
        stop_polls: polls,
        failure: input.failure.clone(),
        last_error: None,
    })
}

/// The Catch's `{"Error", "Cause"}` as one line.
pub fn failure_text(failure: Option<&Value>) -> String {
    let field = |name: &str| {
        failure
            .and_then(|f| f.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (error, cause) = (field("Error"), field("Cause"));
    // A Lambda error's Cause is the function's own {"errorType", "errorMessage"} JSON.
    let cause = serde_json::from_str::<Value>(&cause)
        .ok()
        .and_then(|c| c.get("errorMessage").and_then(Value::as_str).map(str::to_string))
        .unwrap_or(cause);
    format!("{error}: {cause}")
}

/// Live request counts: requests answered and failed so far, plus the lines rejected at submit. Bedrock counts
/// records; a job whose lines have several records each (embeddings) has its counts scaled to lines, an
/// estimate that finalize replaces with the count of each line's own outcome.
fn update_counts(doc: &mut BatchDoc) {
    let jobs = &doc.bedrock.jobs;
    let lines = |job: &crate::status::Job, records: Option<u64>| match (records, job.lines) {
        (Some(r), Some(lines)) if job.records > 0 => r.min(job.records) * lines / job.records,
        (r, _) => r.unwrap_or(0),
    };
    doc.request_counts.completed = jobs.iter().map(|j| lines(j, j.succeeded)).sum();
    doc.request_counts.failed = doc.bedrock.rejected + jobs.iter().map(|j| lines(j, j.failed)).sum::<u64>();
}
