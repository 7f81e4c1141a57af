//! The check-jobs Lambda: one poll of the batch's Bedrock jobs, for the state machine's loop.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batchdrop::pipeline::serve(batchdrop::pipeline::check::handle).await
}
