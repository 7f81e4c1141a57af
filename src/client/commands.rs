//! The client subcommands of `batchdrop` (submit, status, list, fetch, cancel) as the command line gives them.
//! Progress goes to standard error; what the command answers goes to standard output (with `--json`, one
//! JSON object and nothing else).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::batches::{self, Appear, Batch, CancelOutcome};
use super::progress::{self, Progress};
use super::upload;
use super::{connect, ClientError, Connection, Target, DEFAULT_STACK};
use crate::layout;
use crate::status::BatchStatus;

/// Where the stack is, and how to reach AWS.
#[derive(clap::Args, Debug, Clone)]
pub struct StackArgs {
    /// The CloudFormation stack to use: its outputs InputBucketName and OutputBucketName name the buckets
    /// [default: batchdrop].
    #[arg(long, value_name = "NAME", conflicts_with_all = ["local", "input_bucket"])]
    pub stack: Option<String>,
    /// The stack's input bucket, instead of reading the stack's outputs (needs --output-bucket).
    #[arg(long, value_name = "BUCKET", requires = "output_bucket", conflicts_with = "local")]
    pub input_bucket: Option<String>,
    /// The stack's output bucket (needs --input-bucket).
    #[arg(long, value_name = "BUCKET", requires = "input_bucket", conflicts_with = "local")]
    pub output_bucket: Option<String>,
    /// The local stack on this machine (make stack-up): S3 on 127.0.0.1:5055, or at BATCHDROP_LOCAL_ENDPOINT.
    #[arg(long)]
    pub local: bool,
    /// The AWS profile whose credentials and Region to use; else AWS_PROFILE, else the default chain.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The AWS Region; else AWS_REGION, else the profile's.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

impl StackArgs {
    fn target(&self) -> Target {
        match (&self.input_bucket, &self.output_bucket) {
            _ if self.local => Target::Local,
            (Some(input), Some(output)) => Target::Buckets {
                input: input.clone(),
                output: output.clone(),
            },
            _ => Target::Stack(self.stack.clone().unwrap_or_else(|| DEFAULT_STACK.to_string())),
        }
    }

    fn connection(&self) -> Connection {
        Connection {
            profile: self.profile.clone(),
            region: self.region.clone(),
        }
    }
}

/// How often a followed batch's batch.json is read.
#[derive(clap::Args, Debug, Clone)]
pub struct Every {
    /// Seconds between two reads of batch.json while following the batch.
    #[arg(long = "every", value_name = "SECONDS", default_value = "5", value_parser = every_arg)]
    pub seconds: Duration,
}

fn every_arg(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(0.1..=3600.0).contains(&secs) {
        return Err("between 0.1 and 3600 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

const EXIT_CODES: &str = "\
Exit codes:
  0  done; a followed batch completed with every line answered
  1  a followed batch ended with error lines, or failed, expired or was cancelled
  2  the command failed: a bad option, no credentials or access, no such stack or batch";

#[derive(clap::Subcommand, Debug, Clone)]
pub enum ClientCommand {
    /// Upload a batch file into a stack's inbox, print its batch id, and follow it with --wait.
    #[command(after_help = format!("\
The file goes to s3://<input bucket>/inbox/<name> (inbox/<model>/<name> with --model), in parts of 8 MiB
or more, several at once. The batch id is computed from the upload's version id as the stack computes it.

Examples:
  batchdrop submit batch.jsonl --model us.anthropic.claude-3-5-haiku-20241022-v1:0 --wait
  batchdrop submit batch.jsonl --stack my-batchdrop --region eu-west-1
  batchdrop submit batch.jsonl --local --wait
  some-tool | batchdrop submit - --name nightly.jsonl --local

{EXIT_CODES}"))]
    Submit {
        /// The OpenAI batch input file (JSONL); `-` reads standard input.
        file: PathBuf,
        /// The batch model (a Bedrock model id, inference profile or ARN); else the stack's default model.
        #[arg(long)]
        model: Option<String>,
        /// The object's name in the inbox; it must end in .jsonl [default: the file's name, stdin.jsonl for `-`].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Follow the batch until it ends and print its summary.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        every: Every,
        #[command(flatten)]
        stack: StackArgs,
        /// Print {"batch_id", "bucket", "key", "version_id", "bytes", "batch"} as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Show a batch: its status, line counts, Bedrock jobs, elapsed time and time left.
    #[command(after_help = format!("\
Read from results/<batch-id>/batch.json in the stack's output bucket. Time left is estimated from the
rate at which Bedrock has answered so far, once its counts say anything.

Examples:
  batchdrop status my-file-0123456789abcdef
  batchdrop status my-file-0123456789abcdef --watch --local
  batchdrop status my-file-0123456789abcdef --json

{EXIT_CODES}"))]
    Status {
        /// The batch id (submit prints it; list shows recent ones).
        batch_id: String,
        /// Follow the batch until it ends.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        every: Every,
        #[command(flatten)]
        stack: StackArgs,
        /// Print the batch.json as it is stored, as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// List a stack's recent batches, newest first.
    #[command(after_help = format!("\
The batches whose batch.json changed last, sorted by when they were created.

Examples:
  batchdrop list
  batchdrop list --limit 100 --stack my-batchdrop --json

{EXIT_CODES}"))]
    List {
        /// How many batches to show; 0 shows all.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        stack: StackArgs,
        /// Print {"batches": [batch.json, …]} as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Download a finished batch's output.jsonl, errors.jsonl and batch.json, checking their line counts.
    #[command(after_help = format!("\
The line counts of output.jsonl and errors.jsonl must be batch.json's answered and failed counts; a
file that does not match is an error (exit 2).

Examples:
  batchdrop fetch my-file-0123456789abcdef
  batchdrop fetch my-file-0123456789abcdef --out results/ --local

{EXIT_CODES}"))]
    Fetch {
        /// The batch id.
        batch_id: String,
        /// The folder to write into (created if need be) [default: a folder named after the batch id].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        stack: StackArgs,
        /// Print the files written and their line counts as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a batch: its Bedrock jobs are stopped, and every line not answered gets a batch_cancelled error.
    #[command(after_help = format!("\
Puts the marker object cancel/<batch-id> into the stack's input bucket; the stack stops the batch's jobs
at once. A batch that has ended already is left as it is.

Examples:
  batchdrop cancel my-file-0123456789abcdef
  batchdrop cancel my-file-0123456789abcdef --wait --local

{EXIT_CODES}
  (with --wait, a batch that ends cancelled is exit 0)"))]
    Cancel {
        /// The batch id.
        batch_id: String,
        /// Follow the batch until it has stopped.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        every: Every,
        #[command(flatten)]
        stack: StackArgs,
        /// Print {"batch_id", "outcome", "status", "batch"} as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a client command; an error says what to do.
pub fn run(command: ClientCommand) -> Result<ExitCode, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError(format!("cannot start: {e}")))?;
    runtime.block_on(run_async(command))
}

async fn run_async(command: ClientCommand) -> Result<ExitCode, ClientError> {
    match command {
        ClientCommand::Submit {
            file,
            model,
            name,
            wait,
            every,
            stack,
            json,
        } => {
            submit(
                &file,
                model.as_deref(),
                name.as_deref(),
                wait.then_some(every.seconds),
                &stack,
                json,
            )
            .await
        }
        ClientCommand::Status {
            batch_id,
            watch,
            every,
            stack,
            json,
        } => {
            let stack = connect(&stack.target(), &stack.connection()).await?;
            let batch = if watch {
                batches::follow(
                    &stack,
                    &batch_id,
                    every.seconds,
                    Appear::Already,
                    &mut Progress::stderr(),
                )
                .await?
            } else {
                batches::get(&stack, &batch_id).await?
            };
            if json {
                print_json(&batch.raw)?;
            } else {
                print_lines(&batches::summary(&batch.doc, &stack.flags))?;
            }
            Ok(if watch { ended(&batch) } else { ExitCode::SUCCESS })
        }
        ClientCommand::List { limit, stack, json } => {
            let stack = connect(&stack.target(), &stack.connection()).await?;
            let found = batches::list(&stack, limit).await?;
            if json {
                let raw: Vec<_> = found.iter().map(|b| &b.raw).collect();
                print_json(&serde_json::json!({ "batches": raw }))?;
            } else if found.is_empty() {
                eprintln!(
                    "no batches in s3://{}/results/ yet: submit one with batchdrop submit FILE {}",
                    stack.output_bucket, stack.flags
                );
            } else {
                print_lines(&found.iter().map(|b| batches::list_line(&b.doc)).collect::<Vec<_>>())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Fetch {
            batch_id,
            out,
            stack,
            json,
        } => {
            let stack = connect(&stack.target(), &stack.connection()).await?;
            let dir = out.unwrap_or_else(|| PathBuf::from(&batch_id));
            let fetched = batches::fetch(&stack, &batch_id, &dir).await?;
            if json {
                print_json(&fetched)?;
            } else {
                print_lines(&[
                    format!(
                        "{}: {} lines",
                        fetched.output.display(),
                        progress::count(fetched.output_lines)
                    ),
                    format!(
                        "{}: {} lines",
                        fetched.errors.display(),
                        progress::count(fetched.error_lines)
                    ),
                    format!("{}", fetched.batch_json.display()),
                ])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Cancel {
            batch_id,
            wait,
            every,
            stack,
            json,
        } => {
            let stack = connect(&stack.target(), &stack.connection()).await?;
            let outcome = batches::cancel(&stack, &batch_id).await?;
            let mut lines = vec![match outcome {
                CancelOutcome::Requested => format!("asked the stack to cancel batch {batch_id}"),
                CancelOutcome::Ended(status) => {
                    format!(
                        "batch {batch_id} has ended already ({}): nothing to cancel",
                        batches::status_word(status)
                    )
                }
            }];
            let followed = match outcome {
                CancelOutcome::Requested if wait => Some(
                    batches::follow(
                        &stack,
                        &batch_id,
                        every.seconds,
                        Appear::Already,
                        &mut Progress::stderr(),
                    )
                    .await?,
                ),
                _ => None,
            };
            if json {
                let (word, status) = match outcome {
                    CancelOutcome::Requested => ("requested", followed.as_ref().map(|b| b.doc.status)),
                    CancelOutcome::Ended(status) => ("ended", Some(status)),
                };
                print_json(&serde_json::json!({
                    "batch_id": batch_id,
                    "outcome": word,
                    "status": status,
                    "batch": followed.as_ref().map(|b| &b.raw),
                }))?;
            } else {
                if let Some(batch) = &followed {
                    lines.extend(batches::summary(&batch.doc, &stack.flags));
                } else if outcome == CancelOutcome::Requested {
                    lines.push(format!(
                        "follow it: batchdrop status {batch_id} --watch {}",
                        stack.flags
                    ));
                }
                print_lines(&lines)?;
            }
            Ok(match &followed {
                Some(batch) if batch.doc.status != BatchStatus::Cancelled => ended(batch),
                _ => ExitCode::SUCCESS,
            })
        }
    }
}

/// Exit code of a followed batch (see [`EXIT_CODES`]).
fn ended(batch: &Batch) -> ExitCode {
    let doc = &batch.doc;
    if doc.status == BatchStatus::Completed && doc.request_counts.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn submit(
    file: &Path,
    model: Option<&str>,
    name: Option<&str>,
    follow: Option<Duration>,
    args: &StackArgs,
    json: bool,
) -> Result<ExitCode, ClientError> {
    if let Some(model) = model {
        crate::model::batch_model_arg(model).map_err(ClientError)?;
    }
    let stdin = file == Path::new("-");
    let name = match name {
        Some(name) => name.to_string(),
        None if stdin => "stdin.jsonl".to_string(),
        None => file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| ClientError(format!("{}: not a file name", file.display())))?,
    };
    if !name.ends_with(layout::INBOX_SUFFIX) || name.contains('/') || name == layout::INBOX_SUFFIX {
        return Err(ClientError(format!(
            "{name}: the stack picks up objects named *{} only; give another name with --name",
            layout::INBOX_SUFFIX
        )));
    }
    let key = match model {
        Some(model) => format!("{}{model}/{name}", layout::INBOX_PREFIX),
        None => format!("{}{name}", layout::INBOX_PREFIX),
    };
    // Connected first, so that a missing stack or credential is said before standard input is read.
    let stack = connect(&args.target(), &args.connection()).await?;
    if file.is_dir() {
        return Err(ClientError(format!("{}: is a folder, not a file", file.display())));
    }
    // Standard input, a pipe or a process substitution: its size is known only once it is read.
    let spooled = if stdin || !file.is_file() {
        Some(spool(file)?)
    } else {
        None
    };
    let path = spooled.as_ref().map_or(file, |t| t.as_ref());
    let mut progress = Progress::stderr();
    let uploaded = upload::upload(&stack, path, &key, &mut progress).await;
    // Below the bar, so that an error is not glued to it.
    progress.finish();
    let uploaded = uploaded?;
    let batch_id = uploaded.batch_id();
    let mut lines = vec![
        format!(
            "uploaded {} to {}",
            progress::bytes(uploaded.bytes),
            layout::s3_uri(&uploaded.bucket, &uploaded.key)
        ),
        format!("batch id: {batch_id}"),
    ];
    // The --json answer: the upload, and the batch as followed (or why following failed).
    let answer = |batch: Option<&serde_json::Value>, error: Option<&str>| {
        let mut answer = serde_json::json!({
            "batch_id": batch_id,
            "bucket": uploaded.bucket,
            "key": uploaded.key,
            "version_id": uploaded.version_id,
            "bytes": uploaded.bytes,
            "batch": batch,
        });
        if let (Some(error), Some(fields)) = (error, answer.as_object_mut()) {
            fields.insert("error".into(), error.into());
        }
        answer
    };
    let followed = match follow {
        Some(every) => {
            eprintln!("batch id: {batch_id}");
            match batches::follow(&stack, &batch_id, every, Appear::Soon, &mut progress).await {
                Ok(batch) => Some(batch),
                // The file is in the inbox: say its batch id even so, so that nobody submits it twice.
                Err(e) if json => {
                    print_json(&answer(None, Some(&e.0)))?;
                    return Err(e);
                }
                Err(e) => {
                    print_lines(&lines)?;
                    return Err(e);
                }
            }
        }
        None => {
            lines.push(format!(
                "follow it:  batchdrop status {batch_id} --watch {}",
                stack.flags
            ));
            None
        }
    };
    if json {
        print_json(&answer(followed.as_ref().map(|b| &b.raw), None))?;
    } else {
        if let Some(batch) = &followed {
            lines.extend(batches::summary(&batch.doc, &stack.flags));
        }
        print_lines(&lines)?;
    }
    Ok(followed.as_ref().map_or(ExitCode::SUCCESS, ended))
}

/// Standard input (`-`) or a file that is not a regular one (a pipe) in a temporary file: its size is known
/// before the upload starts, and parts can be read at any offset.
fn spool(file: &Path) -> Result<tempfile::TempPath, ClientError> {
    let mut copy = tempfile::NamedTempFile::new().map_err(|e| ClientError(format!("a temporary file: {e}")))?;
    let copied = if file == Path::new("-") {
        io::copy(&mut io::stdin().lock(), copy.as_file_mut()).map_err(|e| format!("standard input: {e}"))
    } else {
        std::fs::File::open(file)
            .and_then(|mut f| io::copy(&mut f, copy.as_file_mut()))
            .map_err(|e| format!("{}: {e}", file.display()))
    };
    copied.map_err(ClientError)?;
    Ok(copy.into_temp_path())
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), ClientError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(|e| ClientError(format!("standard output: {e}")))?;
    writeln!(out).map_err(|e| ClientError(format!("standard output: {e}")))
}

fn print_lines(lines: &[String]) -> Result<(), ClientError> {
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}").map_err(|e| ClientError(format!("standard output: {e}")))?;
    }
    Ok(())
}
