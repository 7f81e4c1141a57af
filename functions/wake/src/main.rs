//! The wake Lambda: parks the state machine's poll loop with its task token, and wakes it on Bedrock's job
//! events (docs/wake.md).

use batchdrop::pipeline::{wake, Config, Deps};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_vars(|name| std::env::var(name).ok())?;
    let sdk = aws_config::load_from_env().await;
    let deps = Deps::new(&sdk, config);
    let deps = &deps;
    // A StepError becomes the Lambda error type BatchdropTransientError or BatchdropFatalError.
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        wake::handle(deps, event.payload).await
    }))
    .await
}
