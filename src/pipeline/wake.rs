//! The wake function: results within a minute of Bedrock finishing, with polling as the backstop
//! (docs/wake.md).
//!
//! Between two checks the state machine parks its loop in a `.waitForTaskToken` task whose timeout is the
//! poll wait. The park hands this module the task token, which is kept in batch.json; a Bedrock job event
//! of the batch (a job reached a terminal status, so results may be ready or a slot is free) or a cancel
//! marker completes the task at once, and the next check runs. Events are best effort: a lost one costs
//! only the rest of the wait, a duplicated one an extra check. The token's output is discarded by the state
//! machine, so a stale, duplicated or forged wake-up can change when the next check runs and nothing else.
//!
//! No wake-up is lost to a race: each one is counted in batch.json (`bedrock.wake.requests`) with a
//! conditional write, each check records the count it began with (`seen`), and a park that finds a count
//! above `seen` wakes at once, so an event that arrives while a check runs, or between a check and its
//! park, is still acted on.

use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::check::POLL_BUDGET;
use super::{aws_error, read_batch, update_batch, Deps, StepError};

/// Bedrock's job events (EventBridge source and detail-type).
pub const EVENT_SOURCE: &str = "aws.bedrock";
pub const EVENT_DETAIL_TYPE: &str = "Batch Inference Job State Change";

/// Turns of the loop after which a park no longer wakes early: from then on the loop only polls, on the
/// schedule that spreads its remaining turns over the time the batch may still last, so that wake-ups can
/// never spend the poll budget (docs/reliability.md, "Bounds").
pub const WAKE_POLL_LIMIT: u32 = POLL_BUDGET / 2;

/// The park task's input: `{"park": {"batch_id", "token", "polls"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Park {
    pub batch_id: String,
    pub token: String,
    #[serde(default)]
    pub polls: u32,
}

/// The part of a Bedrock job event this function reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    pub batch_job_name: String,
    pub batch_job_arn: String,
    #[serde(default)]
    pub status: String,
}

/// What one invocation did (its answer, and a log line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Woke {
    /// The loop is parked: the token is kept until a wake-up or the timeout.
    Parked { batch_id: String },
    /// The loop was woken (or, for a park, let go at once).
    Woken { batch_id: String, reason: String },
    /// A wake-up was counted but no parked wait was there to take it: the next park takes it.
    Counted { batch_id: String, reason: String },
    /// The parked wait had ended already (timed out, or woken by another wake-up): nothing to do.
    Stale { batch_id: String },
    /// Not a job of a running batch of this deployment: another stack's, another tool's, or a batch that
    /// has finished.
    Ignored { reason: String },
}

/// One invocation: a park from the state machine or a Bedrock job event from EventBridge.
pub async fn handle(deps: &Deps, input: Value) -> Result<Woke, StepError> {
    // Boxed: the future is deep enough to exceed the compiler's layout depth inside the runtime's.
    Box::pin(dispatch(deps, input)).await
}

async fn dispatch(deps: &Deps, input: Value) -> Result<Woke, StepError> {
    let woke = if let Some(park_input) = input.get("park") {
        let parked: Park = serde_json::from_value(park_input.clone())
            .map_err(|e| StepError::Fatal(format!("the park input is not {{batch_id, token, polls}}: {e}")))?;
        park(deps, &parked).await?
    } else if input.get("source").and_then(Value::as_str) == Some(EVENT_SOURCE) {
        if input.get("detail-type").and_then(Value::as_str) != Some(EVENT_DETAIL_TYPE) {
            return Ok(Woke::Ignored {
                reason: format!(
                    "a {EVENT_SOURCE} event of detail-type {:?}",
                    input.get("detail-type").and_then(Value::as_str).unwrap_or_default()
                ),
            });
        }
        let event: JobEvent = serde_json::from_value(input.get("detail").cloned().unwrap_or(Value::Null))
            .map_err(|e| StepError::Fatal(format!("a Bedrock job event without batchJobName and batchJobArn: {e}")))?;
        job_event(deps, &event).await?
    } else {
        return Err(StepError::Fatal(
            "neither a park from the state machine nor a Bedrock job event".into(),
        ));
    };
    tracing::info!(?woke, "wake");
    Ok(woke)
}

/// The state machine parks its loop: keep the token, unless a wake-up came after the latest check began
/// (or the batch ended meanwhile), in which case the wait ends at once.
pub async fn park(deps: &Deps, park: &Park) -> Result<Woke, StepError> {
    let batch_id = park.batch_id.as_str();
    if park.polls >= WAKE_POLL_LIMIT {
        // Past half the poll budget the loop only polls: the token is not kept, the wait runs out.
        return Ok(Woke::Parked {
            batch_id: batch_id.to_string(),
        });
    }
    let mut due = None;
    update_batch(deps, batch_id, |d| {
        due = if d.status.is_terminal() {
            Some("the batch has ended".to_string())
        } else if d.bedrock.wake.requests > d.bedrock.wake.seen {
            Some(format!(
                "{} wake-up(s) came after the latest check began",
                d.bedrock.wake.requests - d.bedrock.wake.seen
            ))
        } else {
            None
        };
        if due.is_none() {
            d.bedrock.wake.token = Some(park.token.clone());
        }
    })
    .await?;
    let Some(reason) = due else {
        return Ok(Woke::Parked {
            batch_id: batch_id.to_string(),
        });
    };
    Ok(match send(deps, &park.token).await? {
        Sent::Delivered => Woke::Woken {
            batch_id: batch_id.to_string(),
            reason,
        },
        Sent::Stale => Woke::Stale {
            batch_id: batch_id.to_string(),
        },
    })
}

/// A Bedrock job event: wake the loop of the batch the job belongs to, if it is one of this deployment's
/// running batches. What identifies our jobs is batch.json, not the name: the job must be listed there
/// (by ARN, or by name while its create's answer is unknown and no ARN is recorded yet).
pub async fn job_event(deps: &Deps, event: &JobEvent) -> Result<Woke, StepError> {
    let name = event.batch_job_name.as_str();
    let Some(batch_id) = crate::layout::job_batch_id(name) else {
        return Ok(Woke::Ignored {
            reason: format!("job {name} is not named as batchdrop names its jobs"),
        });
    };
    let Some(stored) = read_batch(deps, batch_id).await? else {
        return Ok(Woke::Ignored {
            reason: format!("job {name}: no batch {batch_id} in this deployment"),
        });
    };
    let ours = stored
        .doc
        .bedrock
        .jobs
        .iter()
        .any(|j| j.job_name == name && j.job_arn.as_deref().is_none_or(|arn| arn == event.batch_job_arn));
    if !ours {
        return Ok(Woke::Ignored {
            reason: format!("job {} ({name}) is not a job of batch {batch_id}", event.batch_job_arn),
        });
    }
    if stored.doc.status.is_terminal() {
        return Ok(Woke::Ignored {
            reason: format!("batch {batch_id} has ended"),
        });
    }
    nudge(deps, batch_id, &format!("job {name} is {}", event.status)).await
}

/// Asks for a wake-up of the batch's loop: counted in batch.json, and sent to the parked wait if there
/// is one. A batch that has ended is left alone.
pub async fn nudge(deps: &Deps, batch_id: &str, reason: &str) -> Result<Woke, StepError> {
    let mut token = None;
    let mut ended = false;
    update_batch(deps, batch_id, |d| {
        ended = d.status.is_terminal();
        token = None;
        if !ended {
            d.bedrock.wake.requests += 1;
            token = d.bedrock.wake.token.clone();
        }
    })
    .await?;
    let batch_id = batch_id.to_string();
    let reason = reason.to_string();
    if ended {
        return Ok(Woke::Ignored {
            reason: format!("batch {batch_id} has ended"),
        });
    }
    let Some(token) = token else {
        return Ok(Woke::Counted { batch_id, reason });
    };
    Ok(match send(deps, &token).await? {
        Sent::Delivered => Woke::Woken { batch_id, reason },
        // The wait this token belonged to is over; the count makes the next park wake at once if the
        // check that ended it began before this wake-up.
        Sent::Stale => Woke::Counted { batch_id, reason },
    })
}

/// What became of a SendTaskSuccess.
enum Sent {
    Delivered,
    /// The task had ended already (timed out, woken, or its execution stopped): Step Functions refused
    /// the token.
    Stale,
}

/// Completes the parked wait. Its output is discarded by the state machine (`ResultPath: null`).
async fn send(deps: &Deps, token: &str) -> Result<Sent, StepError> {
    match deps.sfn.send_task_success().task_token(token).output("{}").send().await {
        Ok(_) => Ok(Sent::Delivered),
        Err(e) => {
            let stale = matches!(
                e.as_service_error(),
                Some(
                    SendTaskSuccessError::TaskTimedOut(_)
                        | SendTaskSuccessError::TaskDoesNotExist(_)
                        | SendTaskSuccessError::InvalidToken(_)
                )
            );
            if stale {
                Ok(Sent::Stale)
            } else {
                Err(aws_error("SendTaskSuccess", e))
            }
        }
    }
}
