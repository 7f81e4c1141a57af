//! The finalize Lambda: OpenAI output and error files, the final batch.json, and the completion event's detail.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    batchdrop::pipeline::serve(batchdrop::pipeline::finalize::handle).await
}
