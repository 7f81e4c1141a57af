//! The lifecycle of one job (docs/bedrock.md#job-statuses): Submitted → Validating → (Failed | Scheduled) → InProgress →
//! Completed, one step of `step_ms` each, InProgress in `progress_steps` chunks with the counters updated after
//! each. A Stop request moves the job to Stopping; the runner notices at its next step and ends it Stopped,
//! writing the records processed so far if processing had begun. Faults (`faults.rs`) bend the path. Every status
//! change sends Bedrock's job event (`events.rs`).

use std::sync::Arc;

use crate::clock;
use crate::faults::JobFaults;
use crate::input::{self, InputFile};
use crate::job::{Counters, CreateRequest, JobStatus};
use crate::model;
use crate::output::{Batch, MANIFEST_NAME};
use crate::s3io::{self, S3Location};
use crate::state::{AppState, Gone};

pub fn spawn(state: Arc<AppState>, id: String, faults: JobFaults) {
    tokio::spawn(async move {
        let generation = state.generation();
        if drive(&state, &id, faults, generation).await.is_err() {
            tracing::debug!(job = %id, "job removed by a reset");
        }
    });
}

/// What a transition attempt found.
enum Moved {
    Yes,
    /// A Stop request arrived first: the job is Stopping.
    StopRequested,
}

/// Every change of a running job goes through here, so every status change it makes sends its event.
fn update(state: &AppState, id: &str, f: impl FnOnce(&mut crate::job::Job)) -> Result<(), Gone> {
    let mut store = state.store();
    let job = store.job_mut(id).ok_or(Gone)?;
    let before = job.status;
    f(job);
    job.last_modified_time = clock::now();
    if job.status != before {
        // Still under the store lock: the events' fault decisions follow the order of the changes.
        state.events.job_changed(job);
    }
    Ok(())
}

/// Moves to `to` unless a Stop request got there first.
fn advance(state: &AppState, id: &str, to: JobStatus) -> Result<Moved, Gone> {
    let mut moved = Moved::Yes;
    update(state, id, |job| {
        if job.status == JobStatus::Stopping {
            moved = Moved::StopRequested;
        } else {
            tracing::info!(job = %job.id, from = job.status.as_str(), to = to.as_str(), "transition");
            job.status = to;
        }
    })?;
    Ok(moved)
}

fn finish(state: &AppState, id: &str, to: JobStatus, message: Option<String>) -> Result<(), Gone> {
    update(state, id, |job| {
        tracing::info!(job = %job.id, from = job.status.as_str(), to = to.as_str(), "transition");
        job.status = to;
        job.message = message;
        job.end_time = Some(clock::now());
    })
}

fn is_stopping(state: &AppState, id: &str) -> Result<bool, Gone> {
    Ok(state.store().job(id).ok_or(Gone)?.status == JobStatus::Stopping)
}

fn set_counters(state: &AppState, id: &str, c: Counters) -> Result<(), Gone> {
    update(state, id, |job| job.counters = Some(c))
}

async fn drive(state: &AppState, id: &str, faults: JobFaults, generation: u64) -> Result<(), Gone> {
    let request: CreateRequest = state.store().job(id).ok_or(Gone)?.request.clone();
    let invocation = state.store().job(id).ok_or(Gone)?.invocation_type();

    state.pause(generation).await?;
    if let Moved::StopRequested = advance(state, id, JobStatus::Validating)? {
        return stopped_before_start(state, id, generation).await;
    }

    state.pause(generation).await?;
    let files = match read_input(state, &request).await {
        Ok(files) => files,
        Err(message) => return finish(state, id, JobStatus::Failed, Some(message)),
    };
    if is_stopping(state, id)? {
        return stopped_before_start(state, id, generation).await;
    }
    if faults.fail {
        let message = "The batch inference job failed because of an internal error (fault injected by the emulator).";
        return finish(state, id, JobStatus::Failed, Some(message.into()));
    }
    let Some(family) = model::family(&request.model_id, invocation) else {
        let message = format!("The model {} is not supported for batch inference.", request.model_id);
        return finish(state, id, JobStatus::Failed, Some(message));
    };
    let settings = state.settings();
    let mut batch = Batch::new(
        files,
        family,
        &request.model_id,
        settings.shuffle_seed,
        faults.record_errors,
    );
    set_counters(state, id, batch.counters())?;
    if let Moved::StopRequested = advance(state, id, JobStatus::Scheduled)? {
        return stopped_before_start(state, id, generation).await;
    }

    state.pause(generation).await?;
    if faults.expire {
        // Scheduled but never started within the timeout: the emulator compresses the wait to one step.
        return finish(state, id, JobStatus::Expired, None);
    }
    if let Moved::StopRequested = advance(state, id, JobStatus::InProgress)? {
        return stopped_before_start(state, id, generation).await;
    }

    let total = batch.total();
    let limit = match (faults.partial, faults.stop) {
        (Some(fraction), _) => ((total as f64) * fraction).floor() as usize,
        (None, true) => total / 2,
        (None, false) => total,
    };
    let steps = usize::try_from(settings.progress_steps.max(1)).unwrap_or(1);
    let chunk = total.div_ceil(steps).max(1);
    while batch.processed() < limit {
        state.pause(generation).await?;
        if is_stopping(state, id)? {
            return end_with_output(state, id, &request, &batch, JobStatus::Stopped).await;
        }
        batch.process(chunk.min(limit - batch.processed()));
        set_counters(state, id, batch.counters())?;
    }

    let end = if faults.partial.is_some() {
        JobStatus::PartiallyCompleted
    } else if faults.stop {
        // As if a user had called StopModelInvocationJob now.
        update(state, id, |job| job.status = JobStatus::Stopping)?;
        state.pause(generation).await?;
        JobStatus::Stopped
    } else {
        JobStatus::Completed
    };
    let end = if is_stopping(state, id)? {
        JobStatus::Stopped
    } else {
        end
    };
    end_with_output(state, id, &request, &batch, end).await
}

/// Stopped before any record was processed: nothing is written ([UNK] whether Bedrock writes a manifest then).
async fn stopped_before_start(state: &AppState, id: &str, generation: u64) -> Result<(), Gone> {
    state.pause(generation).await?;
    finish(state, id, JobStatus::Stopped, None)
}

async fn end_with_output(
    state: &AppState,
    id: &str,
    request: &CreateRequest,
    batch: &Batch,
    status: JobStatus,
) -> Result<(), Gone> {
    match write_output(state, id, request, batch).await {
        Ok(()) => finish(state, id, status, None),
        Err(message) => finish(state, id, JobStatus::Failed, Some(message)),
    }
}

fn location(uri: &str) -> Result<S3Location, String> {
    s3io::parse_uri(uri).ok_or_else(|| format!("The S3 URI {uri} is not valid."))
}

/// Validating: the input exists, is JSONL, one object per line, within the model's quotas; the output bucket is
/// reachable. Any failure is the job's Failed message.
async fn read_input(state: &AppState, request: &CreateRequest) -> Result<Vec<InputFile>, String> {
    let quotas = state.settings().quotas.for_model(&request.model_id);
    let input_loc = location(&request.input_data_config.s3_input_data_config.s3_uri)?;
    let output_loc = location(&request.output_data_config.s3_output_data_config.s3_uri)?;
    let objects = s3io::resolve_input(&state.s3, &input_loc).await?;
    let sizes: Vec<(String, u64)> = objects.iter().map(|o| (o.key.clone(), o.size)).collect();
    input::check_sizes(&sizes, &quotas).map_err(|e| e.to_string())?;
    s3io::check_bucket(&state.s3, &output_loc.bucket).await?;
    let mut auto_ids = 0;
    let mut files = Vec::new();
    for obj in objects {
        let bytes = s3io::read_object(&state.s3, &input_loc.bucket, &obj.key).await?;
        let name = s3io::file_name(&obj.key).to_string();
        let records = input::parse_jsonl(&name, &bytes, &mut auto_ids).map_err(|e| e.to_string())?;
        files.push(InputFile {
            key: obj.key,
            name,
            records,
        });
    }
    input::check_counts(&files, &quotas).map_err(|e| e.to_string())?;
    Ok(files)
}

async fn write_output(state: &AppState, id: &str, request: &CreateRequest, batch: &Batch) -> Result<(), String> {
    let out = location(&request.output_data_config.s3_output_data_config.s3_uri)?;
    let files = batch.render().map_err(|e| format!("Could not write the output: {e}"))?;
    for (name, body) in files {
        s3io::put_object(&state.s3, &out.bucket, &s3io::output_key(&out, id, &name), body).await?;
    }
    let manifest = serde_json::to_vec(&batch.manifest()).map_err(|e| format!("Could not write the manifest: {e}"))?;
    s3io::put_object(
        &state.s3,
        &out.bucket,
        &s3io::output_key(&out, id, MANIFEST_NAME),
        manifest,
    )
    .await
}
