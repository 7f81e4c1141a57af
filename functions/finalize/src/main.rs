//! The finalize Lambda: OpenAI output and error files, the final batch.json, and the completion event's detail.

use batchdrop::pipeline::{finalize, Config, Deps, StepError};
use lambda_runtime::{run, service_fn, tracing, Diagnostic, Error, LambdaEvent};

/// The error type name is what the state machine's Retry and Catch match on.
fn diagnostic(e: StepError) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().to_string(),
        error_message: e.to_string(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_vars(|name| std::env::var(name).ok())?;
    let sdk = aws_config::load_from_env().await;
    let deps = Deps::new(&sdk, config);
    let deps = &deps;
    run(service_fn(
        move |event: LambdaEvent<batchdrop::pipeline::finalize::FinalizeInput>| async move {
            finalize::handle(deps, event.payload).await.map_err(diagnostic)
        },
    ))
    .await
}
