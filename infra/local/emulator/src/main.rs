//! `bedrock-emulator`: serves the Bedrock batch-inference API on `BEDROCK_EMULATOR_HOST:BEDROCK_EMULATOR_PORT`
//! and prints `bedrock-emulator listening on http://<addr>` on stdout once it accepts connections.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use bedrock_emulator::config::Startup;
use bedrock_emulator::state::AppState;
use bedrock_emulator::{api, clock};
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("bedrock-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let startup = Startup::from_vars(|name| std::env::var(name).ok())?;
    // S3 comes from the standard environment (AWS_ENDPOINT_URL, AWS_REGION, credentials). Path-style addressing
    // whenever a custom endpoint is set, so that a host name other than an IP works too.
    let sdk = aws_config::load_from_env().await;
    let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(s3_config);
    let seed = u64::try_from(clock::now()).unwrap_or_default() ^ u64::from(std::process::id()).rotate_left(32);
    let state = Arc::new(AppState::new(s3, &startup, seed)?);

    let listener = tokio::net::TcpListener::bind((startup.host.as_str(), startup.port)).await?;
    let addr = listener.local_addr()?;
    println!("bedrock-emulator listening on http://{addr}");
    tracing::info!(%addr, region = %startup.region, account = %startup.account_id, "ready");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
