//! The wake Lambda: parks the state machine's poll loop with its task token, and wakes it on Bedrock's job
//! events (docs/wake.md).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batchdrop::pipeline::serve(batchdrop::pipeline::wake::handle).await
}
