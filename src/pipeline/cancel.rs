//! Cancel markers: an object put under `cancel/<batch-id>` in the input bucket stops the batch's jobs at
//! once (its S3 notification reaches the submit function, which hands it here), without waiting for the
//! next turn of the loop. The loop then sees the flag, settles jobs not yet created, and ends the batch
//! as cancelled once every job is Stopped (or finished first).

use serde::{Deserialize, Serialize};

use super::{jobs, now, read_batch, update_batch, Deps, StepError};

/// What a cancel marker did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Cancelled {
    /// The batch is flagged and these many jobs were asked to stop.
    Cancelling { batch_id: String, stopping: usize },
    /// The batch had ended already: nothing to stop.
    Finished { batch_id: String },
    /// No batch has this id.
    Unknown { batch_id: String },
}

/// Flags the batch as cancelled and stops every job of it Bedrock has, recorded or not. A stop that
/// fails is logged and left to the loop, which stops every active job of a cancelled batch each turn.
pub async fn cancel(deps: &Deps, batch_id: &str) -> Result<Cancelled, StepError> {
    let Some(stored) = read_batch(deps, batch_id).await? else {
        tracing::warn!(%batch_id, "cancel marker for a batch that does not exist");
        return Ok(Cancelled::Unknown {
            batch_id: batch_id.to_string(),
        });
    };
    if stored.doc.status.is_terminal() {
        return Ok(Cancelled::Finished {
            batch_id: batch_id.to_string(),
        });
    }
    let now = now();
    update_batch(deps, batch_id, |d| {
        d.bedrock.cancel_requested = true;
        if !d.status.is_terminal() {
            d.set_status(d.running_status(), now);
        }
    })
    .await?;
    let mut stopping = 0;
    for found in jobs::find(deps, batch_id).await? {
        if !jobs::stoppable(&found.status) {
            continue;
        }
        match jobs::stop_arn(deps, &found.arn).await {
            Ok(()) => stopping += 1,
            Err(e) => {
                tracing::error!(%batch_id, job = %found.arn, error = %e, "could not stop job");
            }
        }
    }
    // Wake the loop so that it settles the batch now, not at its next poll; should that fail, the poll
    // finds the flag.
    if let Err(e) = super::wake::nudge(deps, batch_id, "a cancel marker").await {
        tracing::warn!(%batch_id, error = %e, "could not wake the poll loop for the cancel");
    }
    tracing::info!(%batch_id, stopping, "batch cancelled");
    Ok(Cancelled::Cancelling {
        batch_id: batch_id.to_string(),
        stopping,
    })
}
