//! The `batchdrop` command: check, translate and convert OpenAI batch files on your own machine.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use batchdrop::error::LineError;
use batchdrop::model::{self, BedrockModel, ModelName};
use batchdrop::policy::Policy;
use batchdrop::results::{self, Collector, JobStatus, JoinOptions};
use batchdrop::translate::{self, Report, Sink, Translator};

#[derive(Parser)]
#[command(
    name = "batchdrop",
    version,
    about = "OpenAI Batch API files on Amazon Bedrock batch inference"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every line of an OpenAI batch file; exits 1 when any line is rejected.
    Validate {
        file: PathBuf,
        /// The batch model (a Bedrock model id, inference profile or ARN); lines may name their own.
        #[arg(long)]
        model: Option<String>,
        /// max_tokens for lines that set neither max_completion_tokens nor max_tokens.
        #[arg(long, default_value_t = Policy::default().default_max_tokens)]
        default_max_tokens: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write Bedrock batch input files, the record map and the rejected lines as OpenAI error lines.
    Translate {
        file: PathBuf,
        #[arg(long)]
        model: String,
        #[arg(long)]
        out: PathBuf,
        /// Seeds the ids of output lines; defaults to the input file's name.
        #[arg(long)]
        batch_id: Option<String>,
        #[arg(long, default_value_t = Policy::default().default_max_tokens)]
        default_max_tokens: u64,
    },
    /// Turn Bedrock output files (or folders of them) into OpenAI output.jsonl and errors.jsonl.
    Results {
        /// The record map written by `translate`.
        #[arg(long)]
        map: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// The job's final Bedrock status: decides the error code of records that never came back.
        #[arg(long, default_value = "Completed")]
        job_status: String,
        /// `created` of every chat.completion (unix seconds); defaults to now.
        #[arg(long)]
        created: Option<u64>,
        /// Bedrock `*.jsonl.out` files, or folders holding them (manifest.json.out is skipped).
        #[arg(required = true)]
        bedrock_out: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate {
            file,
            model,
            default_max_tokens,
            json,
        } => validate(&file, model.as_deref(), default_max_tokens, json),
        Command::Translate {
            file,
            model,
            out,
            batch_id,
            default_max_tokens,
        } => translate_cmd(&file, &model, &out, batch_id, default_max_tokens),
        Command::Results {
            map,
            out,
            job_status,
            created,
            bedrock_out,
        } => results_cmd(&map, &out, &job_status, created, &bedrock_out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("batchdrop: {e}");
            ExitCode::from(2)
        }
    }
}

type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;

fn open(path: &Path) -> io::Result<BufReader<File>> {
    File::open(path)
        .map(|f| BufReader::with_capacity(256 * 1024, f))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(256 * 1024, f))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn batch_model(name: Option<&str>) -> Result<Option<BedrockModel>, String> {
    match name.map(model::classify) {
        None => Ok(None),
        Some(ModelName::Supported(m)) => Ok(Some(m)),
        Some(ModelName::Unsupported(why)) => Err(format!("--model: {why}")),
        Some(ModelName::Foreign) => Err(format!(
            "--model: '{}' is not a Bedrock model id, inference profile id or ARN",
            name.unwrap_or_default()
        )),
    }
}

fn policy(default_max_tokens: u64) -> Policy {
    Policy {
        default_max_tokens,
        ..Policy::default()
    }
}

fn validate(file: &Path, model: Option<&str>, default_max_tokens: u64, json: bool) -> CliResult {
    let mut translator = Translator::new(policy(default_max_tokens), batch_model(model)?);
    // With --json, stdout holds the JSON report alone; the rejections go to stderr.
    let mut out: BufWriter<Box<dyn Write>> = BufWriter::new(if json {
        Box::new(io::stderr().lock())
    } else {
        Box::new(io::stdout().lock())
    });
    let mut lines = batchdrop::jsonl::Lines::new(open(file)?);
    while let Some((n, line)) = lines.next_line()? {
        if batchdrop::jsonl::is_blank(line) {
            translator.blank();
        } else if let Err(e) = translator.line(n, line, None) {
            writeln!(out, "{e}")?;
        }
    }
    out.flush()?;
    drop(out);
    let report = translator.report();
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_report(report, model.is_none());
    }
    Ok(if report.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_counts(title: &str, counts: &BTreeMap<impl AsRef<str>, u64>) {
    if counts.is_empty() {
        return;
    }
    eprintln!("{title}:");
    for (k, v) in counts {
        eprintln!("  {:<44} {v:>9}", k.as_ref());
    }
}

fn print_report(r: &Report, no_model: bool) {
    eprintln!(
        "{} lines: {} accepted, {} rejected ({} blank lines skipped)",
        r.lines, r.accepted, r.rejected, r.blank_lines
    );
    print_counts("rejected by reason", &r.rejected_by_reason);
    print_counts("accepted by model", &r.accepted_by_model);
    if no_model && r.accepted > r.accepted_by_model.values().sum::<u64>() {
        eprintln!("  (no --model given: lines that name no Bedrock model were checked without one)");
    }
    print_counts("body.model names ignored (not Bedrock models)", &r.ignored_model_names);
    print_counts("fields dropped (no Bedrock meaning)", &r.dropped_fields);
}

/// Files of the `translate` command: one Bedrock input file per model.
struct FileSink {
    dir: PathBuf,
    records: Vec<Option<(PathBuf, BufWriter<File>)>>,
    map: BufWriter<File>,
    errors: BufWriter<File>,
}

impl Sink for FileSink {
    fn record(&mut self, group: usize, model: &BedrockModel, record: &[u8]) -> io::Result<()> {
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

/// A file name Bedrock's s3Uri pattern accepts (SPEC §1.2): `:` and `/` of model ids become `-`.
fn file_stem(model: &str) -> String {
    model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn translate_cmd(file: &Path, model: &str, out: &Path, batch_id: Option<String>, default_max_tokens: u64) -> CliResult {
    let batch = batch_model(Some(model))?;
    fs::create_dir_all(out.join("bedrock"))?;
    let batch_id = batch_id.unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "batch".into())
    });
    let mut translator = Translator::new(policy(default_max_tokens), batch);
    let mut sink = FileSink {
        dir: out.join("bedrock"),
        records: Vec::new(),
        map: create(&out.join("record-map.jsonl"))?,
        errors: create(&out.join("errors.jsonl"))?,
    };
    let report = translate::translate(open(file)?, &mut translator, &batch_id, &mut sink)?;
    for (_, w) in sink.records.iter_mut().flatten() {
        w.flush()?;
    }
    sink.map.flush()?;
    sink.errors.flush()?;
    fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    print_report(&report, false);
    for (path, _) in sink.records.iter().flatten() {
        eprintln!("wrote {}", path.display());
    }
    eprintln!("wrote {}", out.join("record-map.jsonl").display());
    eprintln!(
        "wrote {} ({} rejected lines)",
        out.join("errors.jsonl").display(),
        report.rejected
    );
    Ok(ExitCode::SUCCESS)
}

fn results_cmd(map: &Path, out: &Path, job_status: &str, created: Option<u64>, inputs: &[PathBuf]) -> CliResult {
    let status = JobStatus::parse(job_status).ok_or_else(|| {
        format!("--job-status: '{job_status}' is not a final Bedrock status (Completed, PartiallyCompleted, Expired, Stopped, Failed)")
    })?;
    fs::create_dir_all(out)?;
    // 8 MiB of results in memory before spilling a sorted run: keeps peak memory far under 32 MB.
    let mut collector = Collector::new(8 << 20, None);
    let mut files = 0;
    for input in inputs {
        for path in output_files(input)? {
            collector.add(&path.display().to_string(), open(&path)?)?;
            files += 1;
        }
    }
    let collected = collector.report().clone();
    let created = created.unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let mut output = create(&out.join("output.jsonl"))?;
    let mut errors = create(&out.join("errors.jsonl"))?;
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
    output.flush()?;
    errors.flush()?;
    eprintln!(
        "{files} Bedrock output files, {} records: {} succeeded, {} failed, {} never returned, {} rejected before Bedrock",
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
    for sample in &collected.unmatched_samples {
        eprintln!("warning: {sample}");
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
    for (reason, n) in &report.unknown_stop_reasons {
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
    Ok(ExitCode::SUCCESS)
}

/// A file as given, or the `*.jsonl.out` files of a folder in name order (SPEC §2.2).
fn output_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(".jsonl.out"))
        .collect();
    files.sort();
    Ok(files)
}
