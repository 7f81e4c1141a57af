//! The check-jobs Lambda: one poll of the batch's Bedrock jobs, for the state machine's loop.

use batchdrop::pipeline::{check, Config, Deps};
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
        move |event: LambdaEvent<batchdrop::pipeline::check::CheckInput>| async move {
            check::handle(deps, event.payload).await
        },
    ))
    .await
}
