//! The submit Lambda: an S3 upload into inbox/ becomes a batch of Bedrock jobs and a state machine execution.

use batchdrop::pipeline::{submit, Config, Deps};
use lambda_runtime::{run, service_fn, tracing, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_vars(|name| std::env::var(name).ok())?;
    let sdk = aws_config::load_from_env().await;
    let deps = Deps::new(&sdk, config);
    let deps = &deps;
    // A StepError becomes the Lambda error type BatchdropTransientError or BatchdropFatalError.
    run(service_fn(
        move |event: LambdaEvent<batchdrop::pipeline::submit::S3Notification>| async move {
            submit::handle(deps, event.payload).await
        },
    ))
    .await
}
