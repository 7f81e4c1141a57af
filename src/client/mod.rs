//! The CLI as a client of a stack, deployed or local (docs/cli.md): where the stack's buckets are, and the
//! errors of talking to it, each saying what to do.
//!
//! - [`upload`]: a file into the stack's inbox, in parts, with its progress shown.
//! - [`batches`]: a batch's batch.json, the list of recent batches, the results files, cancel markers.
//! - [`commands`]: the subcommands as the command line gives them.
//! - [`progress`]: what a person sees while a batch runs, on a terminal or in a log.

pub mod batches;
pub mod commands;
pub mod progress;
pub mod upload;

use std::fmt;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, ProvideCredentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The stack name `--stack` defaults to (the SAM deploy's default, and the CDK example app's).
pub const DEFAULT_STACK: &str = "batchdrop";

/// The local stack (`make stack-up`): moto's endpoint, its buckets and Region, and its test credentials.
/// `BATCHDROP_LOCAL_ENDPOINT` moves the endpoint, for a local stack on other ports.
pub const LOCAL_ENDPOINT: &str = "http://127.0.0.1:5055";
pub const LOCAL_ENDPOINT_VAR: &str = "BATCHDROP_LOCAL_ENDPOINT";
pub const LOCAL_INPUT_BUCKET: &str = "batchdrop-input";
pub const LOCAL_OUTPUT_BUCKET: &str = "batchdrop-output";
const LOCAL_REGION: &str = "us-east-1";

/// Where the stack is, as the command line said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A CloudFormation stack (SAM or the CDK example app): its InputBucketName and OutputBucketName outputs.
    Stack(String),
    /// The two buckets, named: a stack whose outputs are not batchdrop's (the construct inside an app's own stack).
    Buckets { input: String, output: String },
    /// The local stack on this machine.
    Local,
}

/// How to reach AWS: the standard chain (environment, profile, SSO, instance role), narrowed by these.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub profile: Option<String>,
    pub region: Option<String>,
}

/// A stack's buckets and the S3 client that reaches them.
#[derive(Debug, Clone)]
pub struct Stack {
    pub s3: aws_sdk_s3::Client,
    pub input_bucket: String,
    pub output_bucket: String,
    /// How to name the stack in messages and in the commands printed for the user (`--stack x`, `--local`).
    pub flags: String,
}

/// A client command's failure: what went wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError(pub String);

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError(e.to_string())
    }
}

/// Finds the stack and checks that there are credentials to reach it.
pub async fn connect(target: &Target, connection: &Connection) -> Result<Stack, ClientError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(profile) = &connection.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &connection.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if *target == Target::Local {
        let endpoint = std::env::var(LOCAL_ENDPOINT_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| LOCAL_ENDPOINT.to_string());
        // The local stack takes any credentials; its own are used unless the environment has some.
        loader = loader.endpoint_url(endpoint).region(Region::new(
            connection.region.clone().unwrap_or_else(|| LOCAL_REGION.to_string()),
        ));
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(Credentials::new("test", "test", None, None, "batchdrop-local"));
        }
    }
    let sdk = loader.load().await;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(ClientError(
            "no AWS Region: pass --region, set AWS_REGION, or give your profile one (aws configure set region …)"
                .into(),
        ));
    };
    check_credentials(&sdk, connection).await?;
    let s3 = aws_sdk_s3::Client::new(&sdk);
    // The commands printed for the user reach the same stack from another shell.
    let mut reach = String::new();
    for (flag, value) in [("--profile", &connection.profile), ("--region", &connection.region)] {
        if let Some(value) = value {
            reach.push_str(&format!(" {flag} {value}"));
        }
    }
    let stack = match target {
        Target::Local => Stack {
            s3,
            input_bucket: LOCAL_INPUT_BUCKET.into(),
            output_bucket: LOCAL_OUTPUT_BUCKET.into(),
            flags: "--local".into(),
        },
        Target::Buckets { input, output } => Stack {
            s3,
            input_bucket: input.clone(),
            output_bucket: output.clone(),
            flags: format!("--input-bucket {input} --output-bucket {output}"),
        },
        Target::Stack(name) => {
            let cfn = aws_sdk_cloudformation::Client::new(&sdk);
            let (input_bucket, output_bucket) = stack_buckets(&cfn, name, &region).await?;
            let flags = if name == DEFAULT_STACK {
                String::new()
            } else {
                format!("--stack {name}")
            };
            Stack {
                s3,
                input_bucket,
                output_bucket,
                flags,
            }
        }
    };
    Ok(Stack {
        flags: format!("{}{reach}", stack.flags).trim_start().to_string(),
        ..stack
    })
}

async fn check_credentials(sdk: &aws_config::SdkConfig, connection: &Connection) -> Result<(), ClientError> {
    let no_credentials = |why: String| {
        let profile = connection
            .profile
            .as_deref()
            .map(|p| format!(" (profile {p})"))
            .unwrap_or_default();
        ClientError(format!(
            "no AWS credentials{profile}: {why}. Sign in (aws sso login, or aws configure), set AWS_PROFILE or \
             --profile, or use --local for the local stack"
        ))
    };
    let Some(provider) = sdk.credentials_provider() else {
        return Err(no_credentials("none is configured".into()));
    };
    provider
        .provide_credentials()
        .await
        .map(drop)
        .map_err(|e| no_credentials(DisplayErrorContext(&e).to_string()))
}

/// The InputBucketName and OutputBucketName outputs of a stack.
async fn stack_buckets(
    cfn: &aws_sdk_cloudformation::Client,
    name: &str,
    region: &str,
) -> Result<(String, String), ClientError> {
    let reply = cfn.describe_stacks().stack_name(name).send().await.map_err(|e| {
        let missing = e.code() == Some("ValidationError") && e.message().is_some_and(|m| m.contains("does not exist"));
        if missing {
            ClientError(format!(
                "no CloudFormation stack named {name} in {region}: deploy one (make deploy, or cdk deploy), pass \
                 --stack NAME or --region, or name the buckets with --input-bucket and --output-bucket"
            ))
        } else {
            sdk_error(
                &format!("reading the outputs of stack {name} in {region}"),
                "cloudformation:DescribeStacks on the stack",
                e,
            )
        }
    })?;
    let outputs = reply.stacks().first().map(|s| s.outputs()).unwrap_or_default();
    let output = |key: &str| {
        outputs
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .map(str::to_string)
            .ok_or_else(|| {
                ClientError(format!(
                    "stack {name} has no output {key}: it is not a batchdrop stack, or holds the construct inside \
                     a stack of its own; name the buckets with --input-bucket and --output-bucket"
                ))
            })
    };
    Ok((output("InputBucketName")?, output("OutputBucketName")?))
}

/// An AWS call's failure as the user can act on it: `doing` says what was being done, `permission` what the
/// caller's identity needs for it.
pub fn sdk_error<E>(doing: &str, permission: &str, e: SdkError<E, HttpResponse>) -> ClientError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or_default().to_string();
    let message = e.message().map(|m| format!(": {m}")).unwrap_or_default();
    let text = match (code.as_str(), status) {
        ("AccessDenied" | "AccessDeniedException" | "Forbidden", _) | ("", Some(403)) => format!(
            "{doing}: access denied. Your AWS identity needs {permission}; a service control policy or a bucket \
             policy may also refuse it (docs/troubleshooting.md)"
        ),
        ("NoSuchBucket", _) => format!(
            "{doing}: the bucket does not exist{message}. Check the bucket names (--input-bucket, \
             --output-bucket) or the Region (--region)"
        ),
        (
            "ExpiredToken"
            | "ExpiredTokenException"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException",
            _,
        ) => format!("{doing}: your AWS credentials were refused ({code}{message}); sign in again or renew them"),
        _ if matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) => format!(
            "{doing}: cannot reach AWS: {}. Check the network; for --local, is the local stack running (make \
             stack-up)?",
            DisplayErrorContext(&e)
        ),
        ("", _) => format!("{doing}: {}", DisplayErrorContext(&e)),
        _ => format!("{doing}: {code}{message}"),
    };
    ClientError(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(code: &str, status: u16) -> SdkError<GetObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("told so").build();
        let response = aws_smithy_runtime_api::http::Response::new(
            status.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        );
        SdkError::service_error(GetObjectError::generic(meta), response)
    }

    #[test]
    fn errors_say_what_to_do() {
        let denied = sdk_error(
            "reading s3://b/k",
            "s3:GetObject on the bucket",
            service_error("AccessDenied", 403),
        );
        assert!(
            denied.0.contains("access denied") && denied.0.contains("s3:GetObject on the bucket"),
            "{denied}"
        );
        let expired = sdk_error("x", "y", service_error("ExpiredToken", 400));
        assert!(
            expired.0.contains("credentials were refused (ExpiredToken: told so)"),
            "{expired}"
        );
        let bucket = sdk_error("x", "y", service_error("NoSuchBucket", 404));
        assert!(bucket.0.contains("the bucket does not exist: told so"), "{bucket}");
        let other = sdk_error("x", "y", service_error("SlowDown", 503));
        assert_eq!(other.0, "x: SlowDown: told so");
    }
}
