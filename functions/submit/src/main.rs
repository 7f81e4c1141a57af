//! The submit Lambda: an S3 upload into inbox/ becomes a batch of Bedrock jobs and a state machine execution.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batchdrop::pipeline::serve(batchdrop::pipeline::submit::handle).await
}
