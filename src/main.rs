//! The `batchdrop` command: check, translate and convert OpenAI batch files on your own machine, and submit,
//! follow and fetch batches of a stack (deployed or local).

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use batchdrop::counts::grouped;
use batchdrop::error::{escape_controls, LineError};
use batchdrop::jsonl::Line;
use batchdrop::model::{self, BedrockModel};
use batchdrop::plan::{self, GroupPlan, GroupRecords};
use batchdrop::policy::{Policy, TemperaturePolicy};
use batchdrop::results::{self, Collector, JobStatus, JoinOptions};
use batchdrop::translate::{self, Report, Sink, Translator};

#[derive(Parser)]
#[command(
    name = "batchdrop",
    version,
    about = "OpenAI Batch API files on Amazon Bedrock batch inference"
)]
struct Cli {
    /// A model catalogue file of your own, in front of the built-in one (docs/models.md); also BATCHDROP_MODELS.
    #[arg(long, global = true, value_name = "FILE")]
    models: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The translation settings a deployment sets as stack parameters (DefaultMaxTokens, TemperaturePolicy).
#[derive(clap::Args)]
struct PolicyArgs {
    /// max_tokens for lines that set neither max_completion_tokens nor max_tokens (at least 1, and at
    /// most the model's maximum, the same rule as a line's own max_tokens).
    #[arg(long, default_value_t = Policy::default().default_max_tokens, value_parser = max_tokens_arg)]
    default_max_tokens: u64,
    /// A temperature above the model's maximum (OpenAI allows up to 2, Claude and Nova 1): reject the line,
    /// clamp it to the maximum, or scale every temperature by half (docs/formats.md, "Temperature").
    #[arg(long, value_enum, default_value_t = TemperaturePolicy::Reject)]
    temperature: TemperaturePolicy,
}

#[derive(Subcommand)]
enum Command {
    /// Check every line of an OpenAI batch file against the model, writing nothing.
    #[command(after_help = "\
Examples:
  batchdrop validate batch.jsonl --model us.anthropic.claude-3-5-haiku-20241022-v1:0
  batchdrop validate batch.jsonl --json > report.json
  some-tool | batchdrop validate - --model amazon.titan-embed-text-v2:0

Exit codes:
  0  every line is accepted
  1  some lines are rejected: each is printed with its line number, custom_id, field and why
  2  nothing was checked: a bad option, or a file that cannot be read")]
    Validate {
        /// The OpenAI batch input file (JSONL); `-` reads standard input.
        file: PathBuf,
        /// The batch model (a Bedrock model id, inference profile or ARN); lines may name their own.
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Print the summary as one JSON object on standard output; rejected lines go to standard error.
        #[arg(long)]
        json: bool,
    },
    /// What a stack would do with a file, without sending it: job groups per model, the jobs of each, tokens and cost.
    #[command(after_help = "\
The same plan as validate prints after its report, without the rejected lines. Jobs are cut as the
pipeline cuts them, with Bedrock's default quotas and each model's minimum records per job. Input tokens
are estimated from the size of the Bedrock records (so the estimate errs high); output tokens are the most
the requests may use (their max_tokens); cost is at the model catalogue's list prices (docs/models.md),
whose source and date are printed.

Examples:
  batchdrop plan batch.jsonl --model us.anthropic.claude-3-5-haiku-20241022-v1:0
  batchdrop plan batch.jsonl --model us.amazon.nova-lite-v1:0 --json

Exit codes:
  0  planned (rejected lines are counted, not printed: validate prints them)
  2  nothing was planned: a bad option, or a file that cannot be read")]
    Plan {
        /// The OpenAI batch input file (JSONL); `-` reads standard input.
        file: PathBuf,
        /// The batch model (a Bedrock model id, inference profile or ARN); lines may name their own.
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Print the report and the plan as one JSON object ({"report": …, "plan": […]}) on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Write Bedrock batch input files, the record map and the rejected lines as OpenAI error lines.
    #[command(after_help = "\
Writes into --out: bedrock/<model>.jsonl (one Bedrock input file per model), record-map.jsonl (what results
needs), errors.jsonl (the rejected lines, as OpenAI error lines) and report.json. They replace the ones an
earlier run wrote there, bedrock/ as a whole, and only once the command has succeeded.

Examples:
  batchdrop translate batch.jsonl --model us.anthropic.claude-3-5-haiku-20241022-v1:0 --out work
  some-tool | batchdrop translate - --model us.amazon.nova-lite-v1:0 --out work --batch-id nightly

Exit codes:
  0  written (rejected lines, if any, are in errors.jsonl)
  2  nothing was written: a bad option, a file that cannot be read or written")]
    Translate {
        /// The OpenAI batch input file (JSONL); `-` reads standard input.
        file: PathBuf,
        /// The batch model (a Bedrock model id, inference profile or ARN); lines may name their own.
        #[arg(long)]
        model: String,
        /// The folder to write into (created if need be).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Seeds the ids of output lines; defaults to the input file's name (`stdin` for `-`).
        #[arg(long)]
        batch_id: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Print the report and the files written as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Turn Bedrock output files (or folders of them) into OpenAI output.jsonl and errors.jsonl.
    #[command(after_help = "\
Writes into --out: output.jsonl (the answered requests) and errors.jsonl (every other line of the input:
rejected before Bedrock, failed, or never returned), in input order; together they hold every input line once.

Examples:
  batchdrop results --map work/record-map.jsonl --out results bedrock-output/
  batchdrop results --map work/record-map.jsonl --out results --job-status PartiallyCompleted job-1/*.jsonl.out

Exit codes:
  0  written
  1  written, but some Bedrock output lines could not be read (their records got unreadable_result error lines)
  2  nothing was written: a bad record map, Bedrock output of another batch, or no Bedrock output found for a
     job said to have completed")]
    Results {
        /// The record map written by `translate`.
        #[arg(long, value_name = "FILE")]
        map: PathBuf,
        /// The folder to write output.jsonl and errors.jsonl into (created if need be).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The job's final Bedrock status: decides the error of the records that never came back.
        #[arg(long, value_enum, ignore_case = true, default_value_t = JobStatus::Completed)]
        job_status: JobStatus,
        /// `created` of every chat.completion (unix seconds); defaults to now.
        #[arg(long, value_name = "SECONDS")]
        created: Option<u64>,
        /// Bedrock `*.jsonl.out` files, or folders holding them at any depth (Bedrock writes each job's
        /// under a folder named after the job); manifest.json.out is skipped.
        #[arg(required = true, value_name = "BEDROCK_OUTPUT")]
        bedrock_out: Vec<PathBuf>,
        /// Print the counts, the warnings and the files written as one JSON object on standard output.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Client(batchdrop::client::commands::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(why) = batchdrop::catalogue::init(cli.models.as_deref()) {
        eprintln!("batchdrop: {why}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Validate {
            file,
            model,
            policy,
            json,
        } => validate(&file, model.as_deref(), &policy, json),
        Command::Plan {
            file,
            model,
            policy,
            json,
        } => plan_cmd(&file, model.as_deref(), &policy, json),
        Command::Translate {
            file,
            model,
            out,
            batch_id,
            policy,
            json,
        } => translate_cmd(&file, &model, &out, batch_id, &policy, json),
        Command::Results {
            map,
            out,
            job_status,
            created,
            bedrock_out,
            json,
        } => results_cmd(&map, &out, job_status, created, &bedrock_out, json),
        Command::Client(command) => batchdrop::client::commands::run(command).map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("batchdrop: {}", escape_controls(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;

/// A file or its reader/writer whose every I/O error names the file.
struct Named<T> {
    inner: T,
    path: PathBuf,
}

fn named_error(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl<T: Read> Read for Named<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| named_error(&self.path, e))
    }
}

impl<T: Write> Write for Named<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| named_error(&self.path, e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| named_error(&self.path, e))
    }
}

impl<T: io::Seek> io::Seek for Named<T> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos).map_err(|e| named_error(&self.path, e))
    }
}

type Reader = BufReader<Named<File>>;
type Writer = BufWriter<Named<File>>;

fn open(path: &Path) -> io::Result<Reader> {
    let file = open_file(path)?;
    Ok(BufReader::with_capacity(
        256 * 1024,
        Named {
            inner: file,
            path: path.to_path_buf(),
        },
    ))
}

fn open_file(path: &Path) -> io::Result<File> {
    if path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: is a folder, not a file", path.display()),
        ));
    }
    File::open(path).map_err(|e| named_error(path, e))
}

fn create(path: &Path) -> io::Result<Writer> {
    let file = File::create(path).map_err(|e| named_error(path, e))?;
    Ok(BufWriter::with_capacity(
        256 * 1024,
        Named {
            inner: file,
            path: path.to_path_buf(),
        },
    ))
}

fn create_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path).map_err(|e| named_error(path, e))
}

/// Flushes a writer: an error (a full disk) is reported here, with the file's name, and not lost when the
/// writer is dropped.
fn finish(w: Writer) -> io::Result<()> {
    w.into_inner().map(drop).map_err(|e| e.into_error())
}

/// Outputs written under temporary names inside `--out` and moved into place only when the command has
/// succeeded: a failed run leaves the previous outputs as they were.
struct Staging {
    out: PathBuf,
    dir: tempfile::TempDir,
}

impl Staging {
    fn new(out: &Path) -> io::Result<Staging> {
        create_dir(out)?;
        let dir = tempfile::Builder::new()
            .prefix(".batchdrop-staging-")
            .tempdir_in(out)
            .map_err(|e| named_error(out, e))?;
        Ok(Staging {
            out: out.to_path_buf(),
            dir,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Moves the staged files (or folders) `names` into `--out`, replacing what was there.
    fn commit(self, names: &[&str]) -> io::Result<()> {
        for name in names {
            let (from, to) = (self.path(name), self.out.join(name));
            if to.is_dir() {
                // A folder is replaced whole: stale files of an earlier run must not stay beside new ones.
                let old = self.path(&format!("{name}.old"));
                fs::rename(&to, &old).map_err(|e| named_error(&to, e))?;
            }
            fs::rename(&from, &to).map_err(|e| named_error(&to, e))?;
        }
        Ok(())
    }
}

/// Refuses an input that is (or is inside) an output of the command: it would be overwritten.
fn refuse_overwrite(input: &Path, outputs: &[PathBuf], what: &str) -> io::Result<()> {
    let Ok(input_real) = input.canonicalize() else {
        return Ok(());
    };
    for output in outputs.iter().filter_map(|o| o.canonicalize().ok()) {
        if input_real.starts_with(&output) {
            let how = if input_real == output { "also" } else { "inside" };
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: the {what} is {how} an output of this command, which would overwrite it; choose another --out",
                    input.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `--default-max-tokens`: the same rule as a line's max_tokens (the model's maximum is checked per line).
fn max_tokens_arg(s: &str) -> Result<u64, String> {
    let n: u64 = s.parse().map_err(|e| format!("{e}"))?;
    batchdrop::request::check_max_tokens(n, None)?;
    Ok(n)
}

fn batch_model(name: Option<&str>) -> Result<Option<BedrockModel>, String> {
    name.map(model::batch_model_arg).transpose()
}

fn policy(args: &PolicyArgs) -> Policy {
    Policy {
        default_max_tokens: args.default_max_tokens,
        temperature: args.temperature,
        ..Policy::default()
    }
}

fn validate(file: &Path, model: Option<&str>, args: &PolicyArgs, json: bool) -> CliResult {
    let mut out = BufWriter::new(io::stdout().lock());
    let (translator, plan) = if json {
        // One JSON object on stdout: the rejected lines first, as they come, then the report and the plan.
        out.write_all(b"{\"rejections\":[")?;
        let mut first = true;
        let checked = check_file(file, model, args, &mut |e| {
            if !std::mem::take(&mut first) {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut out, &rejection_json(e)).map_err(io::Error::from)
        })?;
        out.write_all(b"]")?;
        let mut fields = serde_json::to_value(checked.0.report())?;
        if let Some(fields) = fields.as_object_mut() {
            fields.insert("plan".into(), serde_json::to_value(&checked.1)?);
            for (key, value) in fields.iter() {
                write!(out, ",{}:{value}", serde_json::Value::from(key.as_str()))?;
            }
        }
        out.write_all(b"}\n")?;
        checked
    } else {
        check_file(file, model, args, &mut |e| writeln!(out, "{e}"))?
    };
    out.flush()?;
    drop(out);
    let report = translator.report();
    if !json {
        print_report(report, model.is_none());
        print_plan(&plan, report);
    }
    Ok(if report.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A rejected line as `--json` gives it: where, whose, and OpenAI's `code` and `param` for what is wrong.
fn rejection_json(e: &LineError) -> serde_json::Value {
    serde_json::json!({
        "line": e.line,
        "custom_id": e.custom_id,
        "code": e.rejection.reason.as_str(),
        "param": e.rejection.field,
        "message": e.rejection.message,
    })
}

fn plan_cmd(file: &Path, model: Option<&str>, args: &PolicyArgs, json: bool) -> CliResult {
    let (translator, plan) = check_file(file, model, args, &mut |_| Ok(()))?;
    let report = translator.report();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"report": report, "plan": plan}))?
        );
    } else {
        print_report(report, model.is_none());
        print_plan(&plan, report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads every line of `file` (`-`: standard input) as `translate` would, handing each rejected line to
/// `rejected` as it comes, and plans each model group's jobs as the pipeline would
/// ([`plan::plan_file_group`], with Bedrock's default quotas and each model's minimum).
fn check_file(
    file: &Path,
    model: Option<&str>,
    args: &PolicyArgs,
    rejected: &mut dyn FnMut(&LineError) -> io::Result<()>,
) -> Result<(Translator, Vec<GroupPlan>), Box<dyn std::error::Error>> {
    let policy = policy(args);
    let mut translator = Translator::new(policy.clone(), batch_model(model)?);
    let (file, _stdin) = input_file(file, &std::env::temp_dir())?;
    let file = file.as_path();
    translate::scan_duplicates(open(file)?, &mut translator, None, translate::SCAN_BUDGET)?;
    let mut groups: Vec<GroupRecords> = Vec::new();
    let mut body = Vec::new();
    let mut lines = batchdrop::jsonl::Lines::with_limit(open(file)?, policy.max_line_bytes);
    while let Some((n, line)) = lines.next_any()? {
        body.clear();
        let rejection = match line {
            Line::TooLong { bytes } => Some(translator.too_long(n, bytes)),
            Line::Text(line) if batchdrop::jsonl::is_blank(line) => {
                translator.blank();
                None
            }
            Line::Text(line) => match translator.line(n, line, Some(&mut body)) {
                Ok(accepted) => {
                    if let Some(g) = accepted.group {
                        if groups.len() <= g {
                            groups.resize_with(g + 1, GroupRecords::default);
                        }
                        for (i, part) in accepted.bodies(body.len()).into_iter().enumerate() {
                            groups[g].push(translate::record_bytes(part.len()), i > 0);
                        }
                    }
                    None
                }
                Err(e) => Some(e),
            },
        };
        if let Some(e) = translator.take_error() {
            return Err(e.into());
        }
        if let Some(e) = &rejection {
            rejected(e)?;
        }
    }
    let report = translator.report();
    let limits = plan::Limits {
        min_records: 0,
        ..plan::Limits::default()
    };
    let plans = translator
        .models()
        .iter()
        .zip(&groups)
        .filter(|(_, records)| !records.sizes.is_empty())
        .map(|(m, records)| {
            let requests = report.accepted_by_model.get(&m.id).copied().unwrap_or(0);
            let output = report.output_tokens_at_most.get(&m.id).copied().unwrap_or(0);
            plan::plan_file_group(m, requests, records, output, &limits)
        })
        .collect();
    Ok((translator, plans))
}

/// Bytes in kB, MB or GB (powers of 10, as Bedrock's quotas are given).
fn size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.2} GB", bytes as f64 / 1e9),
    }
}

/// Dollars to the cent, or to a hundredth of a cent below a dollar.
fn dollars(d: f64) -> String {
    if d < 1.0 {
        format!("${d:.4}")
    } else {
        format!("${d:.2}")
    }
}

/// The plan as a person reads it, on standard error like the report.
fn print_plan(plan: &[GroupPlan], report: &Report) {
    eprintln!("plan: what a stack would do with this file (Bedrock's default quotas):");
    let planned: u64 = plan.iter().map(|g| g.requests).sum();
    if planned < report.accepted {
        eprintln!(
            "  {} accepted lines name no Bedrock model, and there is no --model: give one to plan them",
            grouped(report.accepted - planned)
        );
    }
    let mut sources: Vec<(&str, &str)> = Vec::new();
    for g in plan {
        eprintln!(
            "  {}: {} requests, {} records, {}",
            escape_controls(&g.model),
            grouped(g.requests),
            grouped(g.records),
            size(g.bytes)
        );
        match &g.cannot_run {
            Some(why) => {
                eprintln!("    not a batch job: {why}; a stack rejects these lines (`below_bedrock_minimum`, with this reason)")
            }
            None => {
                let jobs: Vec<String> = g
                    .jobs
                    .iter()
                    .take(8)
                    .map(|c| format!("{} records, {}", grouped(c.records as u64), size(c.bytes)))
                    .collect();
                let more = if g.jobs.len() > 8 {
                    format!("; and {} more", g.jobs.len() - 8)
                } else {
                    String::new()
                };
                eprintln!(
                    "    {} Bedrock job{}: {}{more}",
                    g.jobs.len(),
                    if g.jobs.len() == 1 { "" } else { "s" },
                    jobs.join("; ")
                );
            }
        }
        eprintln!(
            "    input tokens about {} (a token per {} bytes of the records); output tokens at most {}",
            grouped(g.input_tokens_estimate),
            plan::BYTES_PER_TOKEN,
            grouped(g.output_tokens_at_most)
        );
        match &g.cost {
            Some(c) => {
                eprintln!(
                    "    cost at most {} as a batch{}, {} on demand",
                    dollars(c.batch_dollars),
                    if c.batch_is_half_on_demand {
                        " (half the on-demand price: no batch price is listed)"
                    } else {
                        ""
                    },
                    dollars(c.on_demand_dollars)
                );
                if !sources.iter().any(|(k, _)| *k == c.prices_source) {
                    sources.push((&c.prices_source, &c.prices_as_of));
                }
            }
            None => eprintln!("    cost: the catalogue lists no price for this model"),
        }
    }
    for (key, about) in sources {
        eprintln!("  prices: {key}: {about}");
    }
}

fn print_counts<'a>(title: &str, counts: impl IntoIterator<Item = (&'a str, u64)>) {
    let mut counts = counts.into_iter().peekable();
    if counts.peek().is_none() {
        return;
    }
    eprintln!("{title}:");
    for (k, v) in counts {
        eprintln!("  {:<44} {v:>9}", escape_controls(k));
    }
}

fn print_report(r: &Report, no_model: bool) {
    eprintln!(
        "{} lines: {} accepted, {} rejected ({} blank lines skipped)",
        r.lines, r.accepted, r.rejected, r.blank_lines
    );
    print_counts("rejected by reason", r.rejected_by_reason.iter().map(|(k, v)| (*k, *v)));
    print_counts(
        "accepted by model",
        r.accepted_by_model.iter().map(|(k, v)| (k.as_str(), *v)),
    );
    if no_model && r.accepted > r.accepted_by_model.values().sum::<u64>() {
        eprintln!("  (no --model given: lines that name no Bedrock model were checked without one)");
    }
    print_counts(
        "body.model names ignored (not Bedrock models)",
        r.ignored_model_names.iter(),
    );
    print_counts("fields dropped (no Bedrock meaning)", r.dropped_fields.iter());
    if r.temperature_changed > 0 {
        eprintln!(
            "temperature changed by the temperature policy (--temperature): {} lines",
            r.temperature_changed
        );
    }
}

/// Files of the `translate` command: one Bedrock input file per model.
struct FileSink {
    dir: PathBuf,
    records: Vec<Option<(PathBuf, Writer)>>,
    map: Writer,
    errors: Writer,
}

impl Sink for FileSink {
    fn record(&mut self, group: usize, model: &BedrockModel, record: &[u8], _continues_line: bool) -> io::Result<()> {
        if self.records.len() <= group {
            self.records.resize_with(group + 1, || None);
        }
        let slot = &mut self.records[group];
        if slot.is_none() {
            let path = self.dir.join(format!("{}.jsonl", file_stem(&model.id)));
            *slot = Some((path.clone(), create(&path)?));
        }
        match slot {
            Some((_, w)) => w.write_all(record),
            None => Ok(()),
        }
    }
    fn map_entry(&mut self, entry: &[u8]) -> io::Result<()> {
        self.map.write_all(entry)
    }
    fn rejected(&mut self, error_line: &[u8], _: &LineError) -> io::Result<()> {
        self.errors.write_all(error_line)
    }
}

/// A file name for a model's records that Bedrock's s3Uri pattern accepts (docs/formats.md, "Limits"),
/// and one name per model: `a-z`, `0-9`, `.` and `-` stay, every other byte becomes `_` and two hex
/// digits (`_` itself is `_5f`), so two model ids never share a file (`…v2:0` is `…v2_3a0`, `…v2-0`
/// stays `…v2-0`), even on a file system that ignores case.
fn file_stem(model: &str) -> String {
    let mut stem = String::with_capacity(model.len() + 8);
    for b in model.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-') {
            stem.push(char::from(b));
        } else {
            stem.push_str(&format!("_{b:02x}"));
        }
    }
    stem
}

fn translate_cmd(
    file: &Path,
    model: &str,
    out: &Path,
    batch_id: Option<String>,
    args: &PolicyArgs,
    json: bool,
) -> CliResult {
    let batch = batch_model(Some(model))?;
    let outputs = ["bedrock", "record-map.jsonl", "errors.jsonl", "report.json"];
    refuse_overwrite(file, &outputs.map(|o| out.join(o)), "input file")?;
    let staging = Staging::new(out)?;
    create_dir(&staging.path("bedrock"))?;
    let batch_id = batch_id.unwrap_or_else(|| match file.file_stem() {
        _ if file == Path::new("-") => "stdin".into(),
        Some(stem) => stem.to_string_lossy().into_owned(),
        None => "batch".into(),
    });
    let (file, _stdin) = input_file(file, &staging.path(""))?;
    let file = file.as_path();
    let input = open(file)?;
    let mut translator = Translator::new(policy(args), batch);
    translate::scan_duplicates(
        open(file)?,
        &mut translator,
        Some(staging.path("")),
        translate::SCAN_BUDGET,
    )?;
    let mut sink = FileSink {
        dir: staging.path("bedrock"),
        records: Vec::new(),
        map: create(&staging.path("record-map.jsonl"))?,
        errors: create(&staging.path("errors.jsonl"))?,
    };
    let report = translate::translate(input, &mut translator, &batch_id, &mut sink)?;
    let mut written = Vec::new();
    for (path, w) in sink.records.into_iter().flatten() {
        finish(w)?;
        written.push(path);
    }
    finish(sink.map)?;
    finish(sink.errors)?;
    let report_path = staging.path("report.json");
    fs::write(&report_path, serde_json::to_vec_pretty(&report)?).map_err(|e| named_error(&report_path, e))?;
    staging.commit(&outputs)?;

    let bedrock: Vec<PathBuf> = written
        .iter()
        .filter_map(|p| p.file_name().map(|name| out.join("bedrock").join(name)))
        .collect();
    if json {
        let summary = serde_json::json!({
            "report": report,
            "written": {
                "bedrock": bedrock,
                "record_map": out.join("record-map.jsonl"),
                "errors": out.join("errors.jsonl"),
                "report": out.join("report.json"),
            },
        });
        println!("{summary}");
        return Ok(ExitCode::SUCCESS);
    }
    print_report(&report, false);
    for path in written {
        if let Some(name) = path.file_name() {
            eprintln!("wrote {}", out.join("bedrock").join(name).display());
        }
    }
    eprintln!("wrote {}", out.join("record-map.jsonl").display());
    eprintln!(
        "wrote {} ({} rejected lines)",
        out.join("errors.jsonl").display(),
        report.rejected
    );
    Ok(ExitCode::SUCCESS)
}

fn results_cmd(
    map: &Path,
    out: &Path,
    status: JobStatus,
    created: Option<u64>,
    inputs: &[PathBuf],
    json: bool,
) -> CliResult {
    let outputs = [out.join("output.jsonl"), out.join("errors.jsonl")];
    refuse_overwrite(map, &outputs, "record map")?;
    let mut bedrock_files = Vec::new();
    for input in inputs {
        for path in output_files(input)? {
            refuse_overwrite(&path, &outputs, "Bedrock output file")?;
            bedrock_files.push(path);
        }
    }
    if bedrock_files.is_empty() && matches!(status, JobStatus::Completed | JobStatus::PartiallyCompleted) {
        let given: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "no Bedrock output file (*.jsonl.out) in {}: give the job's output folder (Bedrock writes \
             <output prefix>/<job id>/<input file>.jsonl.out); for a job that ended before writing any, \
             give its status with --job-status (Failed, Stopped or Expired)",
            given.join(", ")
        )
        .into());
    }
    let staging = Staging::new(out)?;
    // 8 MiB of results in memory before spilling a sorted run: keeps peak memory far under 32 MB.
    let mut collector = Collector::new(8 << 20, Some(staging.path("")));
    let files = bedrock_files.len();
    for path in &bedrock_files {
        let name = path.display().to_string();
        collector.add_file(&name, open_file(path)?)?;
    }
    let collected = collector.report().clone();
    let created = created.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let mut output = create(&staging.path("output.jsonl"))?;
    let mut errors = create(&staging.path("errors.jsonl"))?;
    let status_of = move |_: Option<usize>, _: &str| status;
    let report = results::join(
        open(map)?,
        collector,
        &JoinOptions {
            created,
            status: &status_of,
        },
        &mut output,
        &mut errors,
    )?;
    finish(output)?;
    finish(errors)?;
    if report.mismatched > 0 {
        // Nothing is replaced: these files would join answers to the wrong requests.
        return Err(format!(
            "{} of the Bedrock results echo a different request than the one the record map lists for their \
             recordId: this Bedrock output is not this batch's ({}), or the map was edited; nothing was written",
            report.mismatched,
            map.display()
        )
        .into());
    }
    staging.commit(&["output.jsonl", "errors.jsonl"])?;
    // Exit 1: the results are written and complete, but some of Bedrock's lines could not be read.
    let code = if collected.unreadable_lines > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    if json {
        let summary = serde_json::json!({
            "report": report,
            "bedrock_output": {"files": files, "lines": collected},
            "written": {"output": out.join("output.jsonl"), "errors": out.join("errors.jsonl")},
        });
        println!("{summary}");
        return Ok(code);
    }
    eprintln!(
        "{files} Bedrock output files, {} requests sent: {} succeeded, {} failed, {} never returned, {} rejected before Bedrock",
        report.lines - report.rejected,
        report.succeeded,
        report.failed,
        report.missing.values().sum::<u64>(),
        report.rejected
    );
    eprintln!(
        "tokens: {} prompt ({} cached), {} completion",
        report.usage.prompt_tokens, report.usage.cached_tokens, report.usage.completion_tokens
    );
    for sample in collected.unreadable_samples.iter().chain(&collected.unmatched_samples) {
        eprintln!("warning: {sample}");
    }
    if collected.unreadable_lines > collected.unreadable_samples.len() as u64 {
        eprintln!(
            "warning: {} Bedrock output lines could not be read ({} of them for a known record, which got an unreadable_result error line)",
            collected.unreadable_lines, collected.unreadable_records
        );
    }
    if report.unverified > 0 {
        eprintln!(
            "warning: {} results could not be checked against the request sent (no echoed modelInput, or no fingerprint in the map)",
            report.unverified
        );
    }
    if collected.unmatched_lines > collected.unmatched_samples.len() as u64 {
        eprintln!(
            "warning: {} Bedrock output lines could not be tied to a record",
            collected.unmatched_lines
        );
    }
    if report.unexpected_results > 0 || report.duplicate_results > 0 {
        eprintln!(
            "warning: {} results for records not in the map, {} extra results for records already answered (ignored)",
            report.unexpected_results, report.duplicate_results
        );
    }
    for (reason, n) in report.unknown_stop_reasons.iter() {
        eprintln!("warning: {n} records stopped for an unknown reason '{reason}' (reported as finish_reason \"stop\")");
    }
    eprintln!(
        "wrote {} ({} lines)",
        out.join("output.jsonl").display(),
        report.succeeded
    );
    eprintln!(
        "wrote {} ({} lines)",
        out.join("errors.jsonl").display(),
        report.error_lines()
    );
    Ok(code)
}

/// A file as given, or every `*.jsonl.out` file under a folder, in the folders of its jobs too (Bedrock
/// writes `<output prefix>/<job id>/<input file>.jsonl.out`), in path order. Symbolic links to folders
/// are not followed, so a link cannot make the walk go round forever.
fn output_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let (mut files, mut folders) = (Vec::new(), vec![path.to_path_buf()]);
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).map_err(|e| named_error(&folder, e))? {
            let entry = entry.map_err(|e| named_error(&folder, e))?;
            let path = entry.path();
            if entry.file_type().map_err(|e| named_error(&path, e))?.is_dir() {
                folders.push(path);
            } else if path.is_file() && path.to_string_lossy().ends_with(".jsonl.out") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The file to read `file` from: itself, or for `-` a copy of standard input in `dir` (the input is read
/// twice, once for its custom_ids and once to translate it), removed when the returned guard is dropped.
fn input_file(file: &Path, dir: &Path) -> io::Result<(PathBuf, Option<tempfile::TempPath>)> {
    if file != Path::new("-") {
        return Ok((file.to_path_buf(), None));
    }
    let mut copy = tempfile::Builder::new()
        .prefix(".batchdrop-stdin-")
        .tempfile_in(dir)
        .map_err(|e| named_error(dir, e))?;
    io::copy(&mut io::stdin().lock(), copy.as_file_mut())
        .map_err(|e| io::Error::new(e.kind(), format!("standard input: {e}")))?;
    let path = copy.into_temp_path();
    Ok((path.to_path_buf(), Some(path)))
}
