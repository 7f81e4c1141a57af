//! Throughput and peak memory of the release `batchdrop` binary, per model family, on generated files.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench -- [DIR] [--quick] [--family F]... [--runs N] [--bin PATH] [--regen]
//! cargo run --release --example bench -- --hostile [DIR] [--quick] [--runs N] [--bin PATH] [--regen]
//! ```
//!
//! - Covers every family batchdrop translates for, each with one model of the built-in catalogue:
//!   Claude (`us.anthropic.claude-3-5-haiku-20241022-v1:0`, Anthropic Messages bodies), Nova
//!   (`us.amazon.nova-lite-v1:0`, `messages-v1` bodies), Converse (`us.meta.llama3-3-70b-instruct-v1:0`,
//!   Converse requests) and Titan embeddings (`amazon.titan-embed-text-v2:0`). `--family` (repeatable:
//!   `claude`, `nova`, `converse`, `titan-embed`) runs only those named.
//! - Generates into DIR (default `bench-data/` at the repo root, git-ignored), per family, a file of 50,000
//!   lines and about 75 MB and one of 133,000 lines and about 200 MB (skipped with `--quick`), which shows
//!   whether peak memory grows with the file. The chat files are mixed OpenAI chat requests, each holding
//!   only what the family's model accepts by its catalogue entry (no tools or structured output for
//!   Converse, `max_tokens` within the model's maximum). The embeddings files are `/v1/embeddings` lines of
//!   one to four texts, 256 or 1,024 dimensions, a quarter of them answered in base64. The files are
//!   deterministic and kept between runs (`--regen` rewrites them).
//! - Runs `batchdrop translate` on each, then writes the Bedrock output the family's job would return for
//!   the produced Bedrock input, shuffled, and runs `batchdrop results` on it. Every output record echoes
//!   its record's `modelInput` as it was (results checks its fingerprint); most carry a `modelOutput` of
//!   the family's shape (Claude's Messages response; Nova's and Converse's `output.message`, `stopReason`
//!   and `usage`; Titan's `embedding` and `inputTextTokenCount`), a few an `error`.
//! - Checks that each run accounted for every line: translate's report counts every input line as
//!   accepted or rejected, all accepted ones for the family's model; results writes exactly one output or
//!   error line per input line, as many output lines as the records answered without an error allow. A
//!   broken run makes the benchmark exit non-zero after printing the table.
//! - The binary runs as a child process, as a user runs it: wall-clock time is taken around spawn and
//!   wait, and peak memory is the child's `ru_maxrss` from `wait4`. Each step runs `--runs` times
//!   (default 3); the table shows the fastest time and the highest peak RSS of those runs.
//! - After each run of a step, the reference runs once on the very file(s) the step read, so that the two
//!   take turns on the same machine: serde_json parsing each line into a `Value` and serializing it again,
//!   in this process; its fastest run is kept. The table shows each step's MB/s next to its reference's,
//!   and whether it is at least the reference; then the project's targets, and per family and step the
//!   ratio of peak RSS of the large file over the small one (target: at most 1.3, flat).
//! - The binary is the `batchdrop` next to this example's own build (`<target dir>/release/`, so that
//!   `CARGO_TARGET_DIR` is followed), else `target/release/batchdrop`; `--bin` names another. The steps run
//!   a copy of it taken at the start (`DIR/batchdrop-under-test`), so that a build during the run cannot
//!   change what is measured.
//!
//! `--hostile` (`make bench-hostile`) measures instead that memory is bounded by the longest line, not by
//! the file, on inputs built to grow whatever a line leaves behind:
//! - "tiny" files: minimal valid chat requests of about 120 bytes, each with its own custom_id (the ids
//!   in a scrambled order, not sorted), so that per-line state such as duplicate-custom_id detection
//!   is all there is;
//! - "names" files: the same with a distinct OpenAI-style `body.model` (`gpt-x-123`) and a distinct
//!   unknown body field (`x_field_123`) on every line, which feed the report's tables.
//!
//! Each comes at 1,000,000 and 4,000,000 lines (`--quick`: 250,000 and 1,000,000), kept in DIR like
//! the files above. Each file is run through `batchdrop validate FILE --model … --json` (exit code 0
//! or 1; its JSON report is kept as `validate-report.json`) and `batchdrop translate FILE --model …
//! --out DIR`. The table shows time, throughput and peak RSS per step, then the ratio of peak RSS of
//! the larger file over the smaller one per kind and step (target: at most 1.3, flat), the size of
//! translate's report.json (target: under 64 KB: bounded tables) and the number of stderr lines
//! (bounded).
//!
//! Nothing fails on a missed target: speed depends on the machine, so the verdicts are for reading.
//! MB means 1,000,000 bytes and KB 1,000 bytes throughout.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Display;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use batchdrop::counts::grouped;
use batchdrop::model::{self, BedrockModel, Family, ModelName};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The Claude model of the benchmark, and the model of `--hostile`'s files.
const MODEL: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
/// What Claude names itself in `modelOutput.model`.
const CLAUDE_NAME: &str = "claude-3-5-haiku-20241022";
const NOVA_MODEL: &str = "us.amazon.nova-lite-v1:0";
const CONVERSE_MODEL: &str = "us.meta.llama3-3-70b-instruct-v1:0";
const TITAN_MODEL: &str = "amazon.titan-embed-text-v2:0";

/// Every family, in the order the benchmark runs and prints them.
const FAMILIES: [Family; 4] = [Family::Claude, Family::Nova, Family::Converse, Family::TitanEmbed];

/// The model the benchmark translates for in `family`: a match without a catch-all, so that a new family
/// cannot be left out of the benchmark without the compiler saying so.
fn family_model(family: Family) -> &'static str {
    match family {
        Family::Claude => MODEL,
        Family::Nova => NOVA_MODEL,
        Family::Converse => CONVERSE_MODEL,
        Family::TitanEmbed => TITAN_MODEL,
    }
}

/// Mixed into a size's seed, so that every family's files hold different text.
fn family_seed(family: Family) -> u64 {
    match family {
        Family::Claude => 0,
        Family::Nova => 0x6e6f_7661,
        Family::Converse => 0x636f_6e76_6572_7365,
        Family::TitanEmbed => 0x7469_7461_6e00,
    }
}

/// The project's targets, per direction (translate, results).
const TARGET_MB_PER_S: f64 = 90.0;
const TARGET_RECORDS_PER_S: f64 = 60_000.0;
const TARGET_PEAK_RSS_MB: f64 = 32.0;
/// Peak RSS of the larger file over that of the smaller one, at most: memory does not grow with the file.
const TARGET_RSS_RATIO: f64 = 1.3;
/// More rejected lines than this share of a file means the generator writes lines the model refuses, and
/// the run measures error lines rather than translation: it is reported as broken.
const MAX_REJECTED_SHARE: f64 = 0.02;

/// Bump when the generators change, so that kept files are written again.
const GENERATOR_VERSION: u32 = 2;

const MB: f64 = 1_000_000.0;

/// One of the two sizes every family's file comes in.
struct Size {
    lines: u64,
    bytes: u64,
    seed: u64,
}

const SMALL: Size = Size {
    lines: 50_000,
    bytes: 75_000_000,
    seed: 0x6261_7463_6864_7270,
};

const LARGE: Size = Size {
    lines: 133_000,
    bytes: 200_000_000,
    seed: 0x7468_6520_6269_6721,
};

/// A family as the benchmark runs it: its model, as the catalogue describes it.
struct Subject {
    family: Family,
    model: BedrockModel,
}

impl Subject {
    fn new(family: Family) -> Result<Subject> {
        let id = family_model(family);
        match model::classify(id) {
            ModelName::Supported(model) if model.family == family => Ok(Subject { family, model }),
            ModelName::Supported(model) => {
                Err(format!("{id} is a {} model in the catalogue, not a {family} one", model.family).into())
            }
            ModelName::Unsupported(why) => Err(why.into()),
            ModelName::Foreign => Err(format!("{id} is not a Bedrock model name").into()),
        }
    }
}

/// One generated file: a family at a size.
struct Dataset<'s> {
    /// `claude-50k`: also the name of its file and folder in the data folder.
    name: String,
    subject: &'s Subject,
    lines: u64,
    bytes: u64,
    seed: u64,
}

impl<'s> Dataset<'s> {
    fn new(subject: &'s Subject, size: &Size) -> Dataset<'s> {
        Dataset {
            name: format!("{}-{}k", subject.family, size.lines / 1000),
            subject,
            lines: size.lines,
            bytes: size.bytes,
            seed: size.seed ^ family_seed(subject.family),
        }
    }
}

struct Options {
    dir: PathBuf,
    /// The binary named (or found): what the table names.
    bin: PathBuf,
    /// The copy of it that runs (see `main`).
    exe: PathBuf,
    quick: bool,
    runs: usize,
    regen: bool,
    hostile: bool,
    families: Vec<Family>,
}

const USAGE: &str =
    "usage: cargo run --release --example bench -- [--hostile] [DIR] [--quick] [--family F]... [--runs N]
                                                  [--bin PATH] [--regen]

  DIR         where data and outputs go (default: bench-data/ at the repo root)
  --hostile   peak memory on hostile files (tiny lines; distinct names) instead of throughput per family
  --quick     per family only the 50,000-line (~75 MB) file, not the 133,000-line (~200 MB) one;
              with --hostile: 250,000 and 1,000,000 lines instead of 1,000,000 and 4,000,000
  --family F  only this family: claude, nova, converse or titan-embed (repeatable; default: all four)
  --runs N    runs per measurement; the best time is shown (default 3)
  --bin PATH  the batchdrop binary (default: release/batchdrop in this example's target dir, else
              target/release/batchdrop; build it first)
  --regen     write the generated input files again even if they are up to date";

/// The `batchdrop` of the same build as this example: `<target dir>/release/examples/bench` sits two
/// folders below `<target dir>/release/batchdrop`, wherever CARGO_TARGET_DIR puts them.
fn default_binary(root: &Path) -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|exe| {
        let examples = exe.parent()?;
        let profile = examples.parent()?;
        (examples.file_name()? == "examples" && profile.file_name()? == "release").then(|| profile.join("batchdrop"))
    });
    match beside {
        Some(bin) if bin.is_file() => bin,
        _ => root.join("target/release/batchdrop"),
    }
}

fn parse_options() -> Result<Options> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut options = Options {
        dir: root.join("bench-data"),
        bin: default_binary(root),
        exe: PathBuf::new(),
        quick: false,
        runs: 3,
        regen: false,
        hostile: false,
        families: Vec::new(),
    };
    let mut args = std::env::args_os().skip(1);
    let mut dir_given = false;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--quick") => options.quick = true,
            // Both files are the default; `--big` is accepted for those who ask for it by name.
            Some("--big") => options.quick = false,
            Some("--regen") => options.regen = true,
            Some("--hostile") => options.hostile = true,
            Some("--runs") => {
                let n = args.next().and_then(|v| v.to_str().and_then(|s| s.parse().ok()));
                options.runs = n.filter(|n| *n > 0).ok_or("--runs needs a number of at least 1")?;
            }
            Some("--bin") => options.bin = args.next().map(PathBuf::from).ok_or("--bin needs a path")?,
            Some("--family") => {
                let name = args.next();
                let name = name.as_ref().and_then(|v| v.to_str()).unwrap_or_default();
                let family = FAMILIES
                    .into_iter()
                    .find(|f| f.to_string() == name)
                    .ok_or_else(|| format!("--family needs one of claude, nova, converse, titan-embed\n{USAGE}"))?;
                if !options.families.contains(&family) {
                    options.families.push(family);
                }
            }
            Some("-h" | "--help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Some(s) if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}").into()),
            _ if !dir_given => {
                options.dir = PathBuf::from(arg);
                dir_given = true;
            }
            _ => return Err(format!("one data folder only\n{USAGE}").into()),
        }
    }
    if options.families.is_empty() {
        options.families = FAMILIES.to_vec();
    } else {
        // The table's order, whatever the order of the flags.
        options.families.sort_by_key(|f| FAMILIES.iter().position(|x| x == f));
    }
    Ok(options)
}

fn main() -> Result<()> {
    let mut options = parse_options()?;
    check_binary(&options.bin)?;
    fs::create_dir_all(&options.dir)?;
    // Every step runs a copy taken now: a build during the run (another checkout sharing CARGO_TARGET_DIR
    // writes the same release/batchdrop) would otherwise change the binary between steps without a word.
    options.exe = options.dir.join("batchdrop-under-test");
    fs::copy(&options.bin, &options.exe).map_err(|e| format!("{}: {e}", options.bin.display()))?;
    if options.hostile {
        return hostile(&options);
    }

    let subjects = options
        .families
        .iter()
        .map(|f| Subject::new(*f))
        .collect::<Result<Vec<_>>>()?;
    let sizes: &[Size] = if options.quick { &[SMALL] } else { &[SMALL, LARGE] };
    let started = Instant::now();
    let mut rows = Vec::new();
    for subject in &subjects {
        for size in sizes {
            let ds = Dataset::new(subject, size);
            let input = ensure_input(&options.dir, &ds, options.regen)?;
            rows.extend(bench_dataset(&options, &ds, &input)?);
        }
    }

    print_table(&options, &rows, started.elapsed().as_secs_f64());
    let broken: Vec<String> = rows
        .iter()
        .filter_map(|r| r.check.as_ref().err().map(|e| format!("{} {}: {e}", r.step, r.dataset)))
        .collect();
    if !broken.is_empty() {
        return Err(format!(
            "{} of {} steps did not account for every line:\n  {}",
            broken.len(),
            rows.len(),
            broken.join("\n  ")
        )
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Running the binary

/// A step measured on one file: its fastest run, the highest peak RSS of all runs, and the reference on
/// the same file.
struct Row {
    family: Family,
    step: &'static str,
    dataset: String,
    /// Lines of the OpenAI input file.
    lines: u64,
    /// What the step read: the input file for translate, the Bedrock output files for results.
    bytes: u64,
    /// Input lines for translate, Bedrock output records for results.
    records: u64,
    seconds: f64,
    peak_rss_kib: u64,
    /// The first line the binary printed (its summary), to show the run did what was meant.
    summary: String,
    reference: Reference,
    /// How the step's outputs account for every line, or what they lack.
    check: std::result::Result<String, String>,
}

fn check_binary(bin: &Path) -> Result<()> {
    let built = fs::metadata(bin)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e}; run `cargo build --release` first", bin.display()))?;
    // A stale binary would measure old code without saying so.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut pending = vec![root.join("src")];
    for file in ["Cargo.toml", "Cargo.lock"] {
        if let Ok(t) = fs::metadata(root.join(file)).and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    }
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(t) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    if newest > built {
        eprintln!(
            "warning: {} is older than the sources; run `cargo build --release` first",
            bin.display()
        );
    }
    Ok(())
}

/// Runs the command to completion and returns (seconds, peak RSS in KiB). stderr goes to `log`.
fn measure(command: Command, log: &Path) -> Result<(f64, u64)> {
    measure_to(command, log, Stdio::null(), &[0])
}

/// [`measure`] with stdout sent to `stdout`, and any exit code of `ok_codes` taken as success.
fn measure_to(mut command: Command, log: &Path, stdout: Stdio, ok_codes: &[i32]) -> Result<(f64, u64)> {
    command.stdin(Stdio::null()).stdout(stdout).stderr(File::create(log)?);
    let start = Instant::now();
    let child = command.spawn()?;
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value, and wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // std's Child::wait cannot return the child's rusage, so the child is reaped here instead
        // (and `child` must not be waited on again).
        // SAFETY: valid pointers to live locals; pid is our own unreaped child.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(format!("wait4: {err}").into());
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(child);
    if !(libc::WIFEXITED(status) && ok_codes.contains(&libc::WEXITSTATUS(status))) {
        let stderr = fs::read_to_string(log).unwrap_or_default();
        return Err(format!("{command:?} failed (wait status {status}):\n{stderr}").into());
    }
    // ru_maxrss is in KiB on Linux.
    Ok((seconds, u64::try_from(usage.ru_maxrss)?))
}

/// A step's runs: its fastest time, its highest peak RSS, and the fastest reference on the same file(s).
struct Measured {
    seconds: f64,
    peak_rss_kib: u64,
    summary: String,
    reference: Reference,
}

/// Runs a step `runs` times, each run followed by a run of the reference over `files`, the file(s) the step
/// reads: taken in turns, the two see the same machine, even when something else on it comes and goes.
/// Keeps the fastest time of each and the step's highest peak RSS.
fn best_of(runs: usize, log_dir: &Path, step: &str, files: &[PathBuf], make: impl Fn() -> Command) -> Result<Measured> {
    let mut best = Measured {
        seconds: f64::INFINITY,
        peak_rss_kib: 0,
        summary: String::new(),
        reference: Reference {
            seconds: f64::INFINITY,
            bytes: 0,
        },
    };
    for run in 1..=runs {
        let log = log_dir.join(format!("{step}-{run}.log"));
        let (seconds, rss) = measure(make(), &log)?;
        let reference = serde_reference(files)?;
        eprintln!(
            "  {step} run {run}/{runs}: {seconds:.3} s, peak RSS {:.1} MB; reference {:.3} s",
            kib_to_mb(rss),
            reference.seconds
        );
        best.seconds = best.seconds.min(seconds);
        best.peak_rss_kib = best.peak_rss_kib.max(rss);
        if reference.seconds < best.reference.seconds {
            best.reference = reference;
        }
        if run == 1 {
            best.summary = fs::read_to_string(&log)?.lines().next().unwrap_or_default().to_string();
        }
    }
    Ok(best)
}

fn bench_dataset(options: &Options, ds: &Dataset, input: &Path) -> Result<Vec<Row>> {
    let work = options.dir.join(&ds.name);
    let (translated, bedrock_out, results, logs) = (
        work.join("translate"),
        work.join("bedrock-out"),
        work.join("results"),
        work.join("logs"),
    );
    for dir in [&translated, &bedrock_out, &results, &logs] {
        fs::create_dir_all(dir)?;
    }
    // Output files of an earlier run, perhaps for another model, must not be read as this run's.
    for entry in fs::read_dir(&bedrock_out)?.flatten() {
        fs::remove_file(entry.path())?;
    }
    let input_bytes = fs::metadata(input)?.len();
    let model = ds.subject.model.id.as_str();

    eprintln!("{}: translate", ds.name);
    let input_files = [input.to_path_buf()];
    let translate = best_of(options.runs, &logs, "translate", &input_files, || {
        let mut c = Command::new(&options.exe);
        c.arg("translate")
            .arg(input)
            .args(["--model", model, "--batch-id", &ds.name])
            .arg("--out")
            .arg(&translated);
        c
    })?;
    let report = read_translate_report(&translated.join("report.json"))?;
    let translate_row = Row {
        family: ds.subject.family,
        step: "translate",
        dataset: ds.name.clone(),
        lines: ds.lines,
        bytes: input_bytes,
        records: ds.lines,
        seconds: translate.seconds,
        peak_rss_kib: translate.peak_rss_kib,
        summary: translate.summary,
        reference: translate.reference,
        check: check_translate(ds, &report),
    };

    // Bedrock writes one `<input file>.out` per input file (docs/bedrock.md#output-files); with one model there is one.
    eprintln!("{}: writing the Bedrock output (shuffled)", ds.name);
    let started = Instant::now();
    let mut out_files = Vec::new();
    let (mut records, mut errored) = (0, Vec::new());
    let mut inputs: Vec<PathBuf> = fs::read_dir(translated.join("bedrock"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    inputs.sort();
    for (i, bedrock_in) in inputs.iter().enumerate() {
        let name = bedrock_in.file_name().ok_or("Bedrock input file without a name")?;
        let out = bedrock_out.join(format!("{}.out", name.to_string_lossy()));
        let written = write_bedrock_output(ds.subject.family, bedrock_in, &out, ds.seed ^ (i as u64 + 1))?;
        records += written.records;
        errored.extend(written.errored);
        out_files.push(out);
    }
    errored.sort_unstable();
    let out_bytes = out_files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()))
        .sum::<io::Result<u64>>()?;
    eprintln!(
        "  {} records ({} with an error), {:.1} MB in {:.1} s",
        records,
        errored.len(),
        out_bytes as f64 / MB,
        started.elapsed().as_secs_f64()
    );

    eprintln!("{}: results", ds.name);
    let measured = best_of(options.runs, &logs, "results", &out_files, || {
        let mut c = Command::new(&options.exe);
        c.arg("results")
            .arg("--map")
            .arg(translated.join("record-map.jsonl"))
            .arg("--out")
            .arg(&results);
        // A fixed `created` keeps output.jsonl identical from run to run.
        c.args(["--job-status", "Completed", "--created", "1735689600"])
            .args(&out_files);
        c
    })?;
    let check = check_results(ds, &translated.join("record-map.jsonl"), &results, &errored, records)?;
    let results_row = Row {
        family: ds.subject.family,
        step: "results",
        dataset: ds.name.clone(),
        lines: ds.lines,
        bytes: out_bytes,
        records,
        seconds: measured.seconds,
        peak_rss_kib: measured.peak_rss_kib,
        summary: measured.summary,
        reference: measured.reference,
        check,
    };
    Ok(vec![translate_row, results_row])
}

// ---------------------------------------------------------------------------------------------------
// Every line accounted for

/// The counts of translate's report.json (`batchdrop::translate::Report`) that the check needs.
#[derive(Deserialize)]
struct TranslateReport {
    lines: u64,
    accepted: u64,
    rejected: u64,
    records: u64,
    #[serde(default)]
    accepted_by_model: BTreeMap<String, u64>,
}

fn read_translate_report(path: &Path) -> Result<TranslateReport> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Every input line is accepted or rejected, the accepted ones all for the dataset's model (its output is
/// written in that model's shape), and few rejected.
fn check_translate(ds: &Dataset, r: &TranslateReport) -> std::result::Result<String, String> {
    let model = ds.subject.model.id.as_str();
    let counts = format!(
        "{} lines: {} accepted + {} rejected, {} Bedrock records",
        grouped(r.lines),
        grouped(r.accepted),
        grouped(r.rejected),
        grouped(r.records)
    );
    let others: Vec<&String> = r.accepted_by_model.keys().filter(|m| *m != model).collect();
    if r.lines != ds.lines || r.accepted + r.rejected != r.lines {
        Err(format!("{counts}, of a file of {} lines", grouped(ds.lines)))
    } else if !others.is_empty() {
        Err(format!("{counts}; some accepted for {others:?}, not {model}"))
    } else if r.rejected as f64 > r.lines as f64 * MAX_REJECTED_SHARE {
        Err(format!(
            "{counts}: more than {:.0}% rejected (see errors.jsonl)",
            MAX_REJECTED_SHARE * 100.0
        ))
    } else {
        Ok(counts)
    }
}

/// An entry of the record map (docs/formats.md, "The record map"): an accepted line has a `recordId` and,
/// for embeddings, its number of records; the header, a rejected line and the trailer have neither.
#[derive(Deserialize)]
struct MapEntry {
    #[serde(rename = "recordId", default)]
    record_id: Option<String>,
    #[serde(default)]
    embedding: Option<MapEmbedding>,
}

#[derive(Deserialize)]
struct MapEmbedding {
    parts: u64,
}

/// `R0000000042` → 42.
fn record_number(id: &str) -> Option<u64> {
    id.strip_prefix('R')?.parse().ok()
}

/// results wrote one line per input line: an output line for each accepted line whose records (one, or one
/// per text) all came back without an error (`errored`: the numbers of those that did not, sorted), and
/// an error line for every other line.
fn check_results(
    ds: &Dataset,
    map: &Path,
    results: &Path,
    errored: &[u64],
    records: u64,
) -> Result<std::result::Result<String, String>> {
    let (mut accepted, mut failing, mut mapped) = (0u64, 0u64, 0u64);
    let mut reader = BufReader::with_capacity(1 << 16, File::open(map)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let entry: MapEntry = serde_json::from_slice(&line).map_err(|e| format!("{}: {e}", map.display()))?;
        let Some(id) = entry.record_id else {
            continue;
        };
        let first = record_number(&id).ok_or_else(|| format!("{}: recordId {id}", map.display()))?;
        let parts = entry.embedding.map_or(1, |e| e.parts);
        accepted += 1;
        mapped += parts;
        let i = errored.partition_point(|n| *n < first);
        if errored.get(i).is_some_and(|n| *n < first + parts) {
            failing += 1;
        }
    }
    let output = count_lines(&results.join("output.jsonl"))?;
    let errors = count_lines(&results.join("errors.jsonl"))?;
    let (want_output, want_errors) = (accepted - failing, ds.lines - (accepted - failing));
    let counts = format!(
        "{} lines = {} output + {} error lines",
        grouped(ds.lines),
        grouped(output),
        grouped(errors)
    );
    Ok(if output == want_output && errors == want_errors && mapped == records {
        Ok(counts)
    } else {
        Err(format!(
            "{counts}, expected {} + {} ({} records in the map, {} in the Bedrock output)",
            grouped(want_output),
            grouped(want_errors),
            grouped(mapped),
            grouped(records)
        ))
    })
}

// ---------------------------------------------------------------------------------------------------
// Reference point and report

struct Reference {
    seconds: f64,
    bytes: u64,
}

/// serde_json's own speed on the same lines, once: read, parse into a `Value`, serialize again. It reads
/// through a buffer like the binary does, so the two compare like for like. It holds one line's `Value`
/// at a time, so this process stays small while children are measured (should std ever spawn by fork
/// rather than posix_spawn, a child's ru_maxrss would start at this process's size).
fn serde_reference(files: &[PathBuf]) -> Result<Reference> {
    let (mut line, mut out) = (Vec::with_capacity(64 * 1024), Vec::with_capacity(64 * 1024));
    let mut bytes = 0u64;
    let start = Instant::now();
    for path in files {
        let mut reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            let value: serde_json::Value = serde_json::from_slice(&line)?;
            out.clear();
            serde_json::to_writer(&mut out, &value)?;
            std::hint::black_box(&out);
        }
    }
    Ok(Reference {
        seconds: start.elapsed().as_secs_f64(),
        bytes,
    })
}

fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / MB
}

/// One line of a table of peak RSS on a larger file over a smaller one: `sizes` holds each run's lines and
/// peak RSS (KiB), `widths` the columns of the line counts and of the MB figures. Whether it is flat
/// (at most [`TARGET_RSS_RATIO`]).
fn print_rss_ratio(label: &str, sizes: [(u64, u64); 2], (lines_width, mb_width): (usize, usize)) -> bool {
    let [(small_lines, small_kib), (big_lines, big_kib)] = sizes;
    let ratio = big_kib as f64 / small_kib.max(1) as f64;
    let flat = ratio <= TARGET_RSS_RATIO;
    println!(
        "  {label} {:>lines_width$} -> {:>lines_width$} lines: {:>mb_width$.1} MB -> {:>mb_width$.1} MB, x{ratio:.2}  {}",
        grouped(small_lines),
        grouped(big_lines),
        kib_to_mb(small_kib),
        kib_to_mb(big_kib),
        verdict(flat)
    );
    flat
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// The CPU's model name from /proc/cpuinfo.
fn cpu_name() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

impl Row {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / MB / self.seconds
    }

    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.seconds
    }

    fn reference_mb_per_s(&self) -> f64 {
        self.reference.bytes as f64 / MB / self.reference.seconds
    }

    /// At least the reference: the step went through the same bytes at least as fast as serde_json did.
    fn at_least_reference(&self) -> bool {
        self.mb_per_s() >= self.reference_mb_per_s()
    }

    fn rss_mb(&self) -> f64 {
        kib_to_mb(self.peak_rss_kib)
    }

    fn meets_targets(&self) -> bool {
        self.mb_per_s() >= TARGET_MB_PER_S
            && self.records_per_s() >= TARGET_RECORDS_PER_S
            && self.rss_mb() < TARGET_PEAK_RSS_MB
    }
}

fn print_table(options: &Options, rows: &[Row], total_seconds: f64) {
    let cpu = cpu_name();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "batchdrop benchmark: {cpu} ({cores} CPUs), binary {} (run from a copy taken at the start)",
        options.bin.display()
    );
    println!(
        "seconds: fastest of {} runs; peak RSS: highest of them; MB = 10^6 bytes; records and MB are the input \
         lines and file for translate, the Bedrock output records and files for results; ref MB/s: serde_json \
         parse to Value + serialize, per line, 1 thread, of the same file(s), fastest of as many runs, in this run",
        options.runs
    );
    println!();
    println!(
        "{:<11} {:<9} {:>7} {:>7} {:>8} {:>7} {:>9} {:>6} {:>8} {:>5}  {:<11} {:>11}  {:<10} {:<12} {:<11}",
        "family",
        "step",
        "lines",
        "MB",
        "records",
        "seconds",
        "records/s",
        "MB/s",
        "ref MB/s",
        "x ref",
        "MB/s >= ref",
        "peak RSS MB",
        "MB/s >= 90",
        "rec/s >= 60k",
        "RSS < 32 MB"
    );
    for r in rows {
        println!(
            "{:<11} {:<9} {:>7} {:>7.1} {:>8} {:>7.3} {:>9} {:>6.1} {:>8.1} {:>5.2}  {:<11} {:>11.1}  {:<10} {:<12} {:<11}",
            r.family.to_string(),
            r.step,
            grouped(r.lines),
            r.bytes as f64 / MB,
            grouped(r.records),
            r.seconds,
            grouped(r.records_per_s() as u64),
            r.mb_per_s(),
            r.reference_mb_per_s(),
            r.mb_per_s() / r.reference_mb_per_s(),
            verdict(r.at_least_reference()),
            r.rss_mb(),
            verdict(r.mb_per_s() >= TARGET_MB_PER_S),
            verdict(r.records_per_s() >= TARGET_RECORDS_PER_S),
            verdict(r.rss_mb() < TARGET_PEAK_RSS_MB),
        );
    }

    println!();
    let at_least = rows.iter().filter(|r| r.at_least_reference()).count();
    println!(
        "at least the reference (MB/s >= serde_json's on the same file) in {at_least} of {} steps: {}",
        rows.len(),
        verdict(at_least == rows.len())
    );
    for r in rows.iter().filter(|r| !r.at_least_reference()) {
        println!(
            "  below it: {} {}: {:.1} MB/s, reference {:.1} MB/s",
            r.step,
            r.dataset,
            r.mb_per_s(),
            r.reference_mb_per_s()
        );
    }
    println!(
        "targets per direction: >= {TARGET_MB_PER_S} MB/s, >= {} records/s, peak RSS < {TARGET_PEAK_RSS_MB} MB: {}",
        grouped(TARGET_RECORDS_PER_S as u64),
        verdict(rows.iter().all(Row::meets_targets))
    );

    println!();
    if options.quick {
        println!("peak RSS of the large file over the small one: not measured (--quick runs the small files only)");
    } else {
        println!("peak RSS of the large file over the small one (target <= {TARGET_RSS_RATIO}: flat):");
        let mut all_flat = true;
        for family in &options.families {
            for step in ["translate", "results"] {
                let of: Vec<&Row> = rows.iter().filter(|r| r.family == *family && r.step == step).collect();
                let [small, .., big] = of.as_slice() else {
                    continue;
                };
                let label = format!("{:<11} {:<9}", family.to_string(), step);
                let sizes = [(small.lines, small.peak_rss_kib), (big.lines, big.peak_rss_kib)];
                all_flat &= print_rss_ratio(&label, sizes, (7, 5));
            }
        }
        println!("flat in file size: {}", verdict(all_flat));
    }

    println!();
    for r in rows {
        let check = match &r.check {
            Ok(counts) => format!("accounted: {counts}"),
            Err(why) => format!("NOT ACCOUNTED: {why}"),
        };
        println!("{} {}: {}; {check}", r.step, r.dataset, r.summary);
    }
    println!();
    println!("total time: {total_seconds:.0} s");
}

// ---------------------------------------------------------------------------------------------------
// Hostile inputs (--hostile)

/// Bump when the hostile generator changes, so that kept files are written again.
const HOSTILE_GENERATOR_VERSION: u32 = 1;
/// translate's report.json on a distinct-names file stays under this many bytes: its tables are bounded.
const TARGET_REPORT_BYTES: u64 = 64_000;
/// A report larger than this is not read back for its summary: its size is already the finding, and
/// this process stays small (see `serde_reference`).
const REPORT_READ_LIMIT: u64 = 4_000_000;
const KB: f64 = 1_000.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Minimal valid requests, each with its own custom_id.
    Tiny,
    /// The same, with a distinct `body.model` name and a distinct unknown body field on every line.
    Names,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tiny => "tiny",
            Kind::Names => "names",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Tiny => "tiny lines",
            Kind::Names => "distinct names",
        }
    }
}

struct HostileSet {
    kind: Kind,
    lines: u64,
}

impl HostileSet {
    /// `tiny-250k`, `names-4m`: also the name of its file and folder in the data folder.
    fn name(&self) -> String {
        let n = self.lines;
        let size = if n >= 1_000_000 && n % 1_000_000 == 0 {
            format!("{}m", n / 1_000_000)
        } else if n >= 1_000 && n % 1_000 == 0 {
            format!("{}k", n / 1_000)
        } else {
            n.to_string()
        };
        format!("{}-{size}", self.kind.name())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Validate,
    Translate,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Validate => "validate",
            Step::Translate => "translate",
        }
    }
}

/// A step measured on one hostile file: its fastest run, the highest peak RSS of all runs.
struct HostileRow {
    kind: Kind,
    dataset: String,
    step: Step,
    lines: u64,
    bytes: u64,
    seconds: f64,
    peak_rss_kib: u64,
    /// Lines the binary wrote to stderr, on its last run.
    stderr_lines: u64,
    /// The JSON report: validate's stdout, translate's report.json.
    report_bytes: u64,
    /// What the report says, or why it was not read.
    summary: String,
}

fn hostile(options: &Options) -> Result<()> {
    let sizes: [u64; 2] = if options.quick {
        [250_000, 1_000_000]
    } else {
        [1_000_000, 4_000_000]
    };
    let mut rows = Vec::new();
    for kind in [Kind::Tiny, Kind::Names] {
        for lines in sizes {
            let set = HostileSet { kind, lines };
            let (input, bytes) = ensure_hostile_input(&options.dir, &set, options.regen)?;
            let work = options.dir.join(set.name());
            for step in [Step::Validate, Step::Translate] {
                eprintln!("{}: {}", set.name(), step.name());
                rows.push(hostile_step(options, &set, &input, bytes, &work, step)?);
            }
        }
    }
    print_hostile_table(options, &rows);
    Ok(())
}

/// `i * stride mod lines` visits every number below `lines` once when the two are coprime; a stride
/// near `lines` times the golden ratio scatters them, so that the custom_ids come in no sorted order.
fn id_stride(lines: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut stride = (lines as f64 * 0.618_033_988_7) as u64;
    while gcd(stride, lines) != 1 {
        stride += 1;
    }
    stride
}

/// Line `i` (from 0) of a hostile file, newline included.
fn hostile_line(out: &mut Vec<u8>, kind: Kind, i: u64, id: u64) {
    out.clear();
    out.extend_from_slice(b"{\"custom_id\":\"r");
    number(out, id);
    out.extend_from_slice(b"\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{");
    if kind == Kind::Names {
        out.extend_from_slice(b"\"model\":\"gpt-x-");
        number(out, i);
        out.extend_from_slice(b"\",\"x_field_");
        number(out, i);
        out.extend_from_slice(b"\":1,");
    }
    out.extend_from_slice(b"\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}\n");
}

/// The hostile file of `set` and its size, written unless an up-to-date copy is already there.
fn ensure_hostile_input(dir: &Path, set: &HostileSet, regen: bool) -> Result<(PathBuf, u64)> {
    let stamp = |size: u64| {
        format!(
            "hostile generator {HOSTILE_GENERATOR_VERSION}, {}, lines {}, size {size}\n",
            set.kind.name(),
            set.lines
        )
    };
    generated(dir, &set.name(), set.lines, &stamp, regen, |w| {
        let stride = id_stride(set.lines);
        let mut line = Vec::with_capacity(256);
        let mut written = 0u64;
        for i in 0..set.lines {
            hostile_line(&mut line, set.kind, i, i * stride % set.lines);
            w.write_all(&line)?;
            written += line.len() as u64;
        }
        Ok(written)
    })
}

fn hostile_step(
    options: &Options,
    set: &HostileSet,
    input: &Path,
    bytes: u64,
    work: &Path,
    step: Step,
) -> Result<HostileRow> {
    let (logs, translated) = (work.join("logs"), work.join("translate"));
    fs::create_dir_all(&logs)?;
    let report = match step {
        Step::Validate => work.join("validate-report.json"),
        Step::Translate => translated.join("report.json"),
    };
    let (mut best, mut peak, mut stderr_lines) = (f64::INFINITY, 0, 0);
    for run in 1..=options.runs {
        let log = logs.join(format!("{}-{run}.log", step.name()));
        let mut c = Command::new(&options.exe);
        let (seconds, rss) = match step {
            Step::Validate => {
                c.arg("validate").arg(input).args(["--model", MODEL, "--json"]);
                // Exit code 1 says that some line was rejected: a finding for the summary, not a failure.
                measure_to(c, &log, Stdio::from(File::create(&report)?), &[0, 1])?
            }
            Step::Translate => {
                c.arg("translate")
                    .arg(input)
                    .args(["--model", MODEL])
                    .arg("--out")
                    .arg(&translated);
                measure_to(c, &log, Stdio::null(), &[0])?
            }
        };
        eprintln!(
            "  {} run {run}/{}: {seconds:.3} s, peak RSS {:.1} MB",
            step.name(),
            options.runs,
            kib_to_mb(rss)
        );
        best = best.min(seconds);
        peak = peak.max(rss);
        stderr_lines = count_lines(&log)?;
    }
    let report_bytes = fs::metadata(&report)?.len();
    Ok(HostileRow {
        kind: set.kind,
        dataset: set.name(),
        step,
        lines: set.lines,
        bytes,
        seconds: best,
        peak_rss_kib: peak,
        stderr_lines,
        report_bytes,
        summary: report_summary(&report, report_bytes),
    })
}

/// Newlines in a file, read in pieces: an unbounded stderr must not make this process grow.
fn count_lines(path: &Path) -> Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut lines = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(lines);
        }
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// "1,000,000 lines: 1,000,000 accepted, 0 rejected; ignored_model_names: 50 kept + 999,950 in
/// (others); …" from a report (`batchdrop::translate::Report`), unless it is too large to read back.
fn report_summary(path: &Path, bytes: u64) -> String {
    if bytes > REPORT_READ_LIMIT {
        return format!("report of {:.1} MB, not read back", bytes as f64 / MB);
    }
    let report: serde_json::Value = match fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => return format!("{}: {e}", path.display()),
    };
    let count = |key: &str| report.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let mut summary = format!(
        "{} lines: {} accepted, {} rejected",
        grouped(count("lines")),
        grouped(count("accepted")),
        grouped(count("rejected"))
    );
    for table in [
        "rejected_by_reason",
        "accepted_by_model",
        "ignored_model_names",
        "dropped_fields",
    ] {
        let Some(entries) = report.get(table).and_then(serde_json::Value::as_object) else {
            continue;
        };
        if entries.is_empty() {
            continue;
        }
        let others = entries.get("(others)").and_then(serde_json::Value::as_u64);
        let kept = entries.len() - usize::from(others.is_some());
        summary.push_str(&format!("; {table}: {kept} {}", if kept == 1 { "key" } else { "keys" }));
        if let Some(n) = others {
            summary.push_str(&format!(" + {} lines in (others)", grouped(n)));
        }
    }
    summary
}

fn print_hostile_table(options: &Options, rows: &[HostileRow]) {
    println!();
    println!(
        "batchdrop hostile-input benchmark: {} ({} CPUs), binary {} (run from a copy taken at the start)",
        cpu_name(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.bin.display()
    );
    println!(
        "seconds: fastest of {} runs; peak RSS: highest of them; MB = 10^6 bytes, KB = 10^3 bytes; records are the \
         input lines; report: validate's --json stdout, translate's report.json; stderr lines: of the last run",
        options.runs
    );
    println!();
    println!(
        "{:<11} {:>10} {:>7}  {:<10} {:>8} {:>10} {:>6} {:>11}  {:<11} {:>9} {:>12}",
        "dataset",
        "lines",
        "MB",
        "step",
        "seconds",
        "records/s",
        "MB/s",
        "peak RSS MB",
        "RSS < 32 MB",
        "report KB",
        "stderr lines"
    );
    for r in rows {
        let mb = r.bytes as f64 / MB;
        let rss = kib_to_mb(r.peak_rss_kib);
        println!(
            "{:<11} {:>10} {:>7.1}  {:<10} {:>8.3} {:>10} {:>6.1} {:>11.1}  {:<11} {:>9.1} {:>12}",
            r.dataset,
            grouped(r.lines),
            mb,
            r.step.name(),
            r.seconds,
            grouped((r.lines as f64 / r.seconds) as u64),
            mb / r.seconds,
            rss,
            verdict(rss < TARGET_PEAK_RSS_MB),
            r.report_bytes as f64 / KB,
            grouped(r.stderr_lines),
        );
    }

    let mut all_met = rows.iter().all(|r| kib_to_mb(r.peak_rss_kib) < TARGET_PEAK_RSS_MB);
    println!();
    println!("peak RSS of the larger file over the smaller one (target <= {TARGET_RSS_RATIO}: flat):");
    for kind in [Kind::Tiny, Kind::Names] {
        for step in [Step::Validate, Step::Translate] {
            let of: Vec<&HostileRow> = rows.iter().filter(|r| r.kind == kind && r.step == step).collect();
            let [small, .., big] = of.as_slice() else {
                continue;
            };
            let label = format!("{:<15} {:<10}", kind.label(), step.name());
            let sizes = [(small.lines, small.peak_rss_kib), (big.lines, big.peak_rss_kib)];
            all_met &= print_rss_ratio(&label, sizes, (10, 6));
        }
    }
    println!();
    println!(
        "translate's report.json on distinct names (target < {:.0} KB: bounded tables):",
        TARGET_REPORT_BYTES as f64 / KB
    );
    for r in rows
        .iter()
        .filter(|r| r.kind == Kind::Names && r.step == Step::Translate)
    {
        let met = r.report_bytes < TARGET_REPORT_BYTES;
        all_met &= met;
        println!(
            "  {:<11} {:>10} lines: {:>9.1} KB  {}",
            r.dataset,
            grouped(r.lines),
            r.report_bytes as f64 / KB,
            verdict(met)
        );
    }
    println!();
    println!(
        "stderr lines of the smaller and the larger file (target: no more on the larger one; validate --json \
         writes one per rejected line, translate its summary tables):"
    );
    for kind in [Kind::Tiny, Kind::Names] {
        for step in [Step::Validate, Step::Translate] {
            let of: Vec<&HostileRow> = rows.iter().filter(|r| r.kind == kind && r.step == step).collect();
            let [small, .., big] = of.as_slice() else {
                continue;
            };
            let met = big.stderr_lines <= small.stderr_lines;
            all_met &= met;
            println!(
                "  {:<15} {:<10} {:>10} -> {:>10}  {}",
                kind.label(),
                step.name(),
                grouped(small.stderr_lines),
                grouped(big.stderr_lines),
                verdict(met)
            );
        }
    }
    println!();
    println!("all targets: {}", verdict(all_met));
    println!();
    for r in rows {
        println!("{} {}: {}", r.step.name(), r.dataset, r.summary);
    }
}

// ---------------------------------------------------------------------------------------------------
// Deterministic data

/// SplitMix64: a few lines, fast, and plenty for varied but reproducible data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (n > 0), by multiply-shift; its bias is far too small to matter here.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn permille(&mut self, p: usize) -> bool {
        self.below(1000) < p
    }

    /// `items` is never empty: every caller passes a constant table or checks first.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// `len` characters of [A-Za-z0-9], like the random part of Bedrock and OpenAI ids.
    fn alnum(&mut self, out: &mut Vec<u8>, len: usize) {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        for _ in 0..len {
            out.push(self.pick(CHARS));
        }
    }
}

// Text in many scripts. Fragments are joined at random, so that every line mixes several of them.
const ENGLISH: &[&str] = &[
    "Could you explain how the quarterly revenue figures were calculated?",
    "The migration finished overnight, but three services still report stale caches.",
    "Please summarize the following meeting notes in five bullet points.",
    "We need a polite reply to a customer whose order arrived damaged.",
    "List the trade-offs between eventual and strong consistency.",
    "Write a haiku about autumn rain on a tin roof.",
    "Translate the paragraph below and keep the formatting intact.",
    "What is the capital of Australia, and why isn't it Sydney?",
    "Classify the sentiment of this review as positive, negative or neutral.",
    "The invoice total was $1,249.50 including 8.25% sales tax.",
    "Extract every date and person's name from the text that follows.",
    "You are a helpful assistant that answers concisely and cites sources.",
];

const EUROPEAN: &[&str] = &[
    "Le café de la gare ferme à dix-huit heures ; réservez votre table à l'avance.",
    "Über die Brücke fährt täglich ein Güterzug mit Bier aus München.",
    "¿Dónde está la biblioteca? Necesito devolver un libro de García Márquez.",
    "A reunião foi adiada para sexta-feira por causa da manutenção do servidor.",
    "Håkon og Åse kjøpte brød på Østbanehallen før toget gikk.",
    "Zażółć gęślą jaźń — to zdanie zawiera wszystkie polskie znaki.",
    "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο.",
    "Привет! Отчёт будет готов к понедельнику, ёлки-палки.",
    "Straße, Maße, Fußgängerübergänge: ß bleibt ß, auch in ẞ-Großschreibung.",
    "naïve café résumé coöperate façade jalapeño Ångström crème brûlée",
    "Quotes: “curly”, ‘single’, «guillemets», „deutsch“ and ‹simple›.",
    "Math: ∑ x² ≤ ∞, π ≈ 3.14159, √2 ≈ 1.414, ±0.5 °C, 5 µm, ½ + ¼ = ¾.",
];

const CJK: &[&str] = &[
    "请帮我总结一下这篇文章的主要观点，并列出三个关键数据。",
    "明天的会议改到下午三点，在二楼会议室。",
    "東京の天気は晴れのち曇り、最高気温は二十三度です。",
    "このコードのバグを見つけて、修正案を提案してください。",
    "카페에서 친구를 만나 커피를 마셨어요. 날씨가 정말 좋았어요.",
    "한국어 텍스트도 제대로 처리되어야 합니다.",
    "漢字、ひらがな、カタカナ、そしてｈａｌｆ－ｗｉｄｔｈ ｶﾀｶﾅ が混在する文章。",
    "𠜎𠜱𠝹𠱓：基本多文種面の外にある CJK 拡張 B の文字。",
    "价格：￥1,280（含税），数量：３件。",
];

const RIGHT_TO_LEFT: &[&str] = &[
    "مرحبا بالعالم، كيف يمكنني مساعدتك اليوم؟",
    "الاجتماع القادم يوم الثلاثاء في الساعة العاشرة صباحاً.",
    "שלום עולם! הדוח השבועי מצורף לקובץ.",
    "Mixed direction: the word \u{200F}سلام\u{200F} sits inside English text.",
    "עברית ו-English באותה שורה, עם המספר 12,345.",
    "فارسی: لطفاً این متن را به انگلیسی ترجمه کنید.",
];

const EMOJI: &[&str] = &[
    "Great job team! 🎉🚀✨",
    "Status: ✅ build, ❌ tests, ⚠️ lint",
    "Family 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵🇧🇷, skin tones 👍🏽👋🏿.",
    "I ❤️ Rust 🦀 and coffee ☕ in the morning.",
    "Weather today: ☀️ → 🌧️ → 🌈",
    "Keycaps 1️⃣2️⃣3️⃣ and a woman technologist 👩🏻‍💻.",
];

const CODE: &[&str] = &[
    "Here is the snippet:\n```python\nprint(\"hello, world\")\nfor i in range(3):\n\tprint(i)\n```\n",
    "Path on Windows: C:\\Users\\data\\report.csv and a UNC share \\\\srv\\drop.",
    "JSON inside text: {\"key\": \"value\", \"n\": 42, \"nested\": {\"ok\": true}}",
    "Tabs\tand\tnewlines\nin the\r\nsame string.",
    "Regex: ^\\d{3}-\\d{4}$ and a URL https://example.com/a/b?c=d&e=f#frag",
    "HTML: <div class=\"note\">5 &lt; 6 &amp;&amp; 7 &gt; 3</div>",
    "Control characters: bell\u{7}, escape \u{1b}[0m, backspace\u{8}, form feed\u{c}, unit separator\u{1f}.",
    "SQL: SELECT name, COUNT(*) FROM \"orders\" WHERE note LIKE '%\\_%' GROUP BY 1;",
    "A backslash at the end \\",
];

/// (weight in percent, fragments)
const POOLS: &[(usize, &[&str])] = &[
    (40, ENGLISH),
    (18, EUROPEAN),
    (14, CJK),
    (8, RIGHT_TO_LEFT),
    (8, EMOJI),
    (12, CODE),
];

const SEPARATORS: &[&str] = &[" ", " ", " ", "\n", "\n\n", "\n- ", " — ", "\n1. "];

fn fragment(rng: &mut Rng) -> &'static str {
    let mut r = rng.below(100);
    for (weight, pool) in POOLS {
        if r < *weight {
            return rng.pick(pool);
        }
        r -= weight;
    }
    rng.pick(ENGLISH)
}

/// How a string is written as JSON: most files carry raw UTF-8, some writers escape everything that is
/// not ASCII (`\u00e9`, surrogate pairs for emoji, `\/`), and the reader must take both.
#[derive(Clone, Copy)]
enum Escape {
    Raw,
    Ascii { upper_hex: bool },
}

impl Escape {
    fn pick(rng: &mut Rng) -> Escape {
        if rng.percent(12) {
            Escape::Ascii {
                upper_hex: rng.percent(30),
            }
        } else {
            Escape::Raw
        }
    }
}

fn short_escape(c: u32) -> Option<&'static [u8]> {
    Some(match c {
        0x22 => b"\\\"",
        0x5C => b"\\\\",
        0x0A => b"\\n",
        0x0D => b"\\r",
        0x09 => b"\\t",
        0x08 => b"\\b",
        0x0C => b"\\f",
        _ => return None,
    })
}

fn unicode_escape(out: &mut Vec<u8>, unit: u16, upper: bool) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(digits[usize::from((unit >> shift) & 0xF)]);
    }
}

/// The inside of a JSON string literal.
fn escaped(out: &mut Vec<u8>, s: &str, mode: Escape) {
    match mode {
        Escape::Raw => {
            for &b in s.as_bytes() {
                match short_escape(u32::from(b)) {
                    Some(e) => out.extend_from_slice(e),
                    None if b < 0x20 => unicode_escape(out, u16::from(b), false),
                    None => out.push(b),
                }
            }
        }
        Escape::Ascii { upper_hex } => {
            for c in s.chars() {
                match short_escape(c as u32) {
                    Some(e) => out.extend_from_slice(e),
                    None if c == '/' => out.extend_from_slice(b"\\/"),
                    None if c < ' ' || !c.is_ascii() => {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            unicode_escape(out, *unit, upper_hex);
                        }
                    }
                    None => out.push(c as u8),
                }
            }
        }
    }
}

/// A JSON string literal.
fn string(out: &mut Vec<u8>, rng: &mut Rng, s: &str) {
    let mode = Escape::pick(rng);
    out.push(b'"');
    escaped(out, s, mode);
    out.push(b'"');
}

/// A JSON string of `fragments` random fragments.
fn text(out: &mut Vec<u8>, rng: &mut Rng, fragments: usize) {
    let mode = Escape::pick(rng);
    out.push(b'"');
    for i in 0..fragments.max(1) {
        if i > 0 {
            escaped(out, rng.pick(SEPARATORS), mode);
        }
        escaped(out, fragment(rng), mode);
    }
    out.push(b'"');
}

/// A JSON string of at least one fragment, grown until `out` reaches `limit` bytes: this is what sizes
/// each line.
fn text_until(out: &mut Vec<u8>, rng: &mut Rng, limit: usize) {
    let mode = Escape::pick(rng);
    out.push(b'"');
    escaped(out, fragment(rng), mode);
    while out.len() < limit {
        escaped(out, rng.pick(SEPARATORS), mode);
        escaped(out, fragment(rng), mode);
    }
    out.push(b'"');
}

fn number(out: &mut Vec<u8>, n: impl Display) {
    out.extend_from_slice(n.to_string().as_bytes());
}

struct ToolDef {
    name: &'static str,
    description: &'static str,
    /// JSON Schema, as raw JSON.
    parameters: &'static str,
    /// Arguments a model might call it with, as raw JSON objects.
    arguments: &'static [&'static str],
}

const TOOLS: &[ToolDef] = &[
    ToolDef {
        name: "get_weather",
        description: "Current weather for a city. Température en °C par défaut.",
        parameters: r#"{"type":"object","properties":{"city":{"type":"string","description":"City name, e.g. Zürich or 東京"},"units":{"type":"string","enum":["metric","imperial"]}},"required":["city"],"additionalProperties":false}"#,
        arguments: &[
            r#"{"city":"Zürich","units":"metric"}"#,
            r#"{"city":"東京"}"#,
            r#"{"city":"القاهرة","units":"imperial"}"#,
        ],
    },
    ToolDef {
        name: "search_docs",
        description: "Full-text search over the internal knowledge base.",
        parameters: r#"{"type":"object","properties":{"query":{"type":"string"},"top_k":{"type":"integer","minimum":1,"maximum":50},"filters":{"type":"object","properties":{"lang":{"type":"string"},"after":{"type":"string","format":"date"}}}},"required":["query"]}"#,
        arguments: &[
            r#"{"query":"refund policy \"damaged goods\"","top_k":5}"#,
            r#"{"query":"índice de satisfação","filters":{"lang":"pt"}}"#,
        ],
    },
    ToolDef {
        name: "create_ticket",
        description: "Open a support ticket 🎫 in the tracker.",
        parameters: r#"{"type":"object","properties":{"title":{"type":"string","maxLength":120},"priority":{"type":"string","enum":["low","normal","high","urgent"]},"tags":{"type":"array","items":{"type":"string"}}},"required":["title","priority"]}"#,
        arguments: &[
            r#"{"title":"Login fails with ❌ on Safari","priority":"high","tags":["auth","safari"]}"#,
            r#"{"title":"Typo in invoice footer","priority":"low"}"#,
        ],
    },
    ToolDef {
        name: "convert_currency",
        description: "Convert an amount between two ISO 4217 currencies.",
        parameters: r#"{"type":"object","properties":{"amount":{"type":"number"},"from":{"type":"string","pattern":"^[A-Z]{3}$"},"to":{"type":"string","pattern":"^[A-Z]{3}$"}},"required":["amount","from","to"]}"#,
        arguments: &[
            r#"{"amount":1249.5,"from":"USD","to":"EUR"}"#,
            r#"{"amount":1e3,"from":"JPY","to":"KRW"}"#,
        ],
    },
    ToolDef {
        name: "lookup_order",
        description: "Fetch an order by its id.",
        parameters: r#"{"type":"object","properties":{"order_id":{"type":"string"}},"required":["order_id"]}"#,
        arguments: &[r#"{"order_id":"A-1042"}"#, r#"{"order_id":"Ω-77\/b"}"#],
    },
    ToolDef {
        name: "translate_text",
        description: "Translate text; keeps markup. Übersetzt Text.",
        parameters: r#"{"type":"object","properties":{"text":{"type":"string"},"target_lang":{"type":"string","enum":["en","fr","de","ja","ar","he"]}},"required":["text","target_lang"]}"#,
        arguments: &[
            r#"{"text":"שלום, מה שלומך?","target_lang":"en"}"#,
            r#"{"text":"Line one\nLine \"two\"","target_lang":"ja"}"#,
        ],
    },
    ToolDef {
        name: "get_time",
        description: "The current time. Takes no arguments.",
        parameters: r#"{"type":"object","properties":{}}"#,
        arguments: &[r#"{}"#],
    },
];

const TOOL_RESULTS: &[&str] = &[
    r#"{"temp_c":18,"conditions":"partly cloudy ⛅","humidity":0.64}"#,
    "Order #A-1042 shipped on 2024-03-02 via DHL.",
    "[]",
    r#"{"rate":1.0873,"from":"EUR","to":"USD"}"#,
    "错误：未找到该用户",
    "Found 3 documents: «Guide», “FAQ”, 'Notes'.",
    "Ticket PRJ-9921 created ✅",
];

const STOPS: &[&str] = &[
    "\n\nUser:",
    "END",
    "###",
    "。",
    "</answer>",
    "\n\n",
    "Observation:",
    "🛑",
];

/// What a chat line may hold for a model: what its catalogue entry accepts, so that the file is one a
/// user would send it (a Converse model takes no tools and no structured output), and `max_tokens` within
/// the most it can write.
struct ChatProfile<'m> {
    /// Named in `body.model` by some lines.
    model: &'m str,
    tools: bool,
    structured_output: bool,
    top_k: bool,
    max_tokens: u64,
}

impl<'m> ChatProfile<'m> {
    fn of(model: &'m BedrockModel) -> ChatProfile<'m> {
        let accepts = model.accepts();
        ChatProfile {
            model: &model.id,
            tools: accepts.tools,
            structured_output: accepts.structured_output,
            top_k: accepts.top_k,
            max_tokens: model.max_output_tokens(),
        }
    }
}

/// A line sized to about `target` bytes, newline not included.
struct LineGen<'m> {
    profile: ChatProfile<'m>,
    head: Vec<u8>,
    params: Vec<u8>,
    tail: Vec<u8>,
}

impl LineGen<'_> {
    fn line(&mut self, rng: &mut Rng, index: u64, target: usize, out: &mut Vec<u8>) {
        // About one line in a thousand breaks a rule, as real files do; each becomes an error line.
        let defect = rng.permille(1);
        let mut tools: Vec<&'static ToolDef> = Vec::new();
        if !defect && self.profile.tools && rng.percent(20) {
            let n = rng.range(1, 4);
            while tools.len() < n {
                let t = &TOOLS[rng.below(TOOLS.len())];
                if !tools.iter().any(|x| x.name == t.name) {
                    tools.push(t);
                }
            }
        }
        let tool_history = !tools.is_empty() && rng.percent(50);
        self.params.clear();
        write_params(&mut self.params, rng, &self.profile, &tools, tool_history, defect);

        // custom_id
        let custom_id = match rng.below(100) {
            0..=74 => format!("request-{index:07}"),
            75..=84 => format!("batch-2025-01/{index}"),
            85..=94 => format!("user:{}/conv:{index}", rng.below(5000)),
            _ => format!("tâche-{index}-東京"),
        };
        let mut id = Vec::with_capacity(64);
        string(&mut id, rng, &custom_id);
        let envelope_first = !rng.percent(10);
        let messages_first = rng.percent(70);

        // Everything around the messages is known before they are written, so the last user message
        // can be grown to the exact size the line should have.
        self.head.clear();
        self.tail.clear();
        let order = (envelope_first, messages_first);
        frame_line(
            &mut self.head,
            &mut self.tail,
            &id,
            b"/v1/chat/completions",
            &self.params,
            order,
        );

        out.clear();
        out.extend_from_slice(&self.head);
        let limit = target.saturating_sub(self.tail.len() + 8);
        write_messages(out, rng, &tools, tool_history, limit);
        out.extend_from_slice(&self.tail);
    }
}

/// The frame of a request line around the one body field grown to the line's size (`messages`, `input`):
/// into `head` what comes before that field, into `tail` what follows it. With `envelope_first` the
/// envelope (`custom_id`, `method`, `url`) comes before the body, else after it; with `grown_first` the
/// other body fields (`params`, each `,"name":value`) come after the grown one, else before it.
fn frame_line(
    head: &mut Vec<u8>,
    tail: &mut Vec<u8>,
    id: &[u8],
    url: &[u8],
    params: &[u8],
    (envelope_first, grown_first): (bool, bool),
) {
    let envelope = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"\"custom_id\":");
        out.extend_from_slice(id);
        out.extend_from_slice(b",\"method\":\"POST\",\"url\":\"");
        out.extend_from_slice(url);
        out.push(b'"');
    };
    head.push(b'{');
    if envelope_first {
        envelope(head);
        head.push(b',');
    }
    head.extend_from_slice(b"\"body\":{");
    if grown_first || params.is_empty() {
        tail.extend_from_slice(params);
    } else {
        head.extend_from_slice(&params[1..]);
        head.push(b',');
    }
    tail.push(b'}');
    if !envelope_first {
        tail.push(b',');
        envelope(tail);
    }
    tail.push(b'}');
}

/// Body fields other than `messages`, each written as `,"name":value`.
fn write_params(
    out: &mut Vec<u8>,
    rng: &mut Rng,
    profile: &ChatProfile,
    tools: &[&ToolDef],
    tool_history: bool,
    defect: bool,
) {
    match rng.below(100) {
        0..=49 => out.extend_from_slice(b",\"model\":\"gpt-4o-mini\""),
        50..=59 => out.extend_from_slice(b",\"model\":\"gpt-4.1-nano-2025-04-14\""),
        60..=74 => {
            out.extend_from_slice(b",\"model\":");
            string(out, rng, profile.model);
        }
        _ => {}
    }
    if defect {
        out.extend_from_slice(match rng.below(7) {
            0 => b",\"temperature\":1.5".as_slice(),
            1 => b",\"n\":2",
            2 => b",\"stream\":true",
            3 => b",\"logprobs\":true,\"top_logprobs\":3",
            4 => b",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"object\"}}}",
            5 => b",\"functions\":[{\"name\":\"legacy\",\"parameters\":{\"type\":\"object\"}}]",
            _ => b",\"tool_choice\":\"required\"",
        });
        return;
    }
    if rng.percent(60) {
        out.extend_from_slice(b",\"temperature\":");
        out.extend_from_slice(
            rng.pick(&["0", "0.0", "0.2", "0.5", "0.7", "1", "1.0", "0.33", "5e-1", "0.85"])
                .as_bytes(),
        );
    }
    if rng.percent(25) {
        out.extend_from_slice(b",\"top_p\":");
        out.extend_from_slice(rng.pick(&["0.9", "0.95", "1", "0.5", "9.5E-1"]).as_bytes());
    }
    if profile.top_k && rng.percent(2) {
        out.extend_from_slice(b",\"top_k\":40");
    }
    // Ascending: the values the model can write are a prefix.
    const TOKENS: &[u64] = &[64, 128, 256, 512, 1000, 1024, 2048, 4096, 8192];
    let tokens = &TOKENS[..TOKENS.partition_point(|t| *t <= profile.max_tokens).max(1)];
    match rng.below(100) {
        0..=39 => {
            out.extend_from_slice(b",\"max_tokens\":");
            number(out, rng.pick(tokens));
        }
        40..=69 => {
            out.extend_from_slice(b",\"max_completion_tokens\":");
            number(out, rng.pick(tokens));
        }
        70..=79 => {
            out.extend_from_slice(b",\"max_tokens\":");
            number(out, rng.pick(tokens));
            out.extend_from_slice(b",\"max_completion_tokens\":");
            number(out, rng.pick(tokens));
        }
        _ => {}
    }
    if rng.percent(15) {
        out.extend_from_slice(b",\"stop\":");
        if rng.percent(40) {
            let stop = rng.pick(STOPS);
            string(out, rng, stop);
        } else {
            out.push(b'[');
            for i in 0..rng.range(1, 4) {
                if i > 0 {
                    out.push(b',');
                }
                let stop = rng.pick(STOPS);
                string(out, rng, stop);
            }
            out.push(b']');
        }
    }
    // Fields with no Bedrock meaning: dropped and counted by translate.
    if rng.percent(10) {
        out.extend_from_slice(b",\"seed\":");
        number(out, rng.below(1_000_000));
    }
    if rng.percent(8) {
        out.extend_from_slice(b",\"user\":");
        let user = format!("user-{}", rng.below(100_000));
        string(out, rng, &user);
    }
    if rng.percent(4) {
        out.extend_from_slice(b",\"metadata\":{\"team\":\"ml-platform\",\"run\":\"nightly\",\"owner\":\"zo\\u00eb\"}");
    }
    if rng.percent(5) {
        out.extend_from_slice(b",\"presence_penalty\":0.5,\"frequency_penalty\":0.0");
    }
    if rng.percent(3) {
        out.extend_from_slice(b",\"n\":1,\"stream\":false,\"logprobs\":false");
    }
    if rng.percent(5) {
        out.extend_from_slice(if profile.structured_output && rng.percent(60) {
            b",\"response_format\":{\"type\":\"json_object\"}".as_slice()
        } else {
            b",\"response_format\":{\"type\":\"text\"}"
        });
    }
    if !tools.is_empty() {
        out.extend_from_slice(b",\"tools\":[");
        for (i, t) in tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"type\":\"function\",\"function\":{\"name\":\"");
            out.extend_from_slice(t.name.as_bytes());
            out.extend_from_slice(b"\",\"description\":");
            string(out, rng, t.description);
            out.extend_from_slice(b",\"parameters\":");
            out.extend_from_slice(t.parameters.as_bytes());
            if rng.percent(20) {
                out.extend_from_slice(b",\"strict\":true");
            }
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
        match rng.below(100) {
            0..=54 => {}
            55..=74 => out.extend_from_slice(b",\"tool_choice\":\"auto\""),
            75..=86 => out.extend_from_slice(b",\"tool_choice\":\"required\""),
            87..=96 => {
                out.extend_from_slice(b",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"");
                out.extend_from_slice(rng.pick(tools).name.as_bytes());
                out.extend_from_slice(b"\"}}");
            }
            // "none" drops the tools, which a history with tool calls forbids.
            _ if tool_history => out.extend_from_slice(b",\"tool_choice\":\"auto\""),
            _ => out.extend_from_slice(b",\"tool_choice\":\"none\""),
        }
        if rng.percent(30) {
            out.extend_from_slice(b",\"parallel_tool_calls\":false");
        }
    }
}

/// Text parts: `[{"type":"text","text":…},…]`.
fn text_parts(out: &mut Vec<u8>, rng: &mut Rng, parts: usize) {
    out.push(b'[');
    for i in 0..parts {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        let n = rng.range(1, 3);
        text(out, rng, n);
        out.push(b'}');
    }
    out.push(b']');
}

/// A string or a list of text parts.
fn content(out: &mut Vec<u8>, rng: &mut Rng, string_percent: usize, max_fragments: usize) {
    if rng.percent(string_percent) {
        let n = rng.range(1, max_fragments);
        text(out, rng, n);
    } else {
        let n = rng.range(1, 3);
        text_parts(out, rng, n);
    }
}

/// `"messages":[…]`: an optional system prompt, earlier turns (one of them a tool round trip when
/// `tool_history`), and a last user message grown until `out` reaches `limit` bytes.
fn write_messages(out: &mut Vec<u8>, rng: &mut Rng, tools: &[&ToolDef], tool_history: bool, limit: usize) {
    out.extend_from_slice(b"\"messages\":[");
    if rng.percent(65) {
        out.extend_from_slice(if rng.percent(15) {
            b"{\"role\":\"developer\",\"content\":".as_slice()
        } else {
            b"{\"role\":\"system\",\"content\":"
        });
        content(out, rng, 70, 4);
        out.extend_from_slice(b"},");
    }
    let mut exchanges = match rng.below(100) {
        0..=44 => 0,
        45..=69 => 1,
        70..=84 => 2,
        _ => rng.range(3, 5),
    };
    if tool_history {
        exchanges = exchanges.max(1);
    }
    let tool_exchange = if tool_history { Some(rng.below(exchanges)) } else { None };
    for e in 0..exchanges {
        out.extend_from_slice(b"{\"role\":\"user\",\"content\":");
        content(out, rng, 65, 3);
        out.extend_from_slice(b"},");
        if tool_exchange == Some(e) {
            let calls = if rng.percent(25) { 2 } else { 1 };
            let mut ids = Vec::with_capacity(calls);
            out.extend_from_slice(b"{\"role\":\"assistant\",\"content\":");
            if rng.percent(60) {
                out.extend_from_slice(b"null");
            } else {
                text(out, rng, 1);
            }
            out.extend_from_slice(b",\"tool_calls\":[");
            for c in 0..calls {
                if c > 0 {
                    out.push(b',');
                }
                let mut id = b"call_".to_vec();
                rng.alnum(&mut id, 24);
                id.push(b'0' + c as u8);
                let tool = rng.pick(tools);
                out.extend_from_slice(b"{\"id\":\"");
                out.extend_from_slice(&id);
                out.extend_from_slice(b"\",\"type\":\"function\",\"function\":{\"name\":\"");
                out.extend_from_slice(tool.name.as_bytes());
                // `arguments` is JSON inside a JSON string: escapes within escapes.
                out.extend_from_slice(b"\",\"arguments\":");
                let arguments = rng.pick(tool.arguments);
                string(out, rng, arguments);
                out.extend_from_slice(b"}}");
                ids.push(id);
            }
            out.extend_from_slice(b"]},");
            for id in &ids {
                out.extend_from_slice(b"{\"role\":\"tool\",\"tool_call_id\":\"");
                out.extend_from_slice(id);
                out.extend_from_slice(b"\",\"content\":");
                let result = rng.pick(TOOL_RESULTS);
                string(out, rng, result);
                out.extend_from_slice(b"},");
            }
        }
        out.extend_from_slice(b"{\"role\":\"assistant\",\"content\":");
        content(out, rng, 85, 4);
        out.extend_from_slice(b"},");
    }
    out.extend_from_slice(b"{\"role\":\"user\",\"content\":");
    if rng.percent(65) {
        text_until(out, rng, limit);
    } else {
        out.extend_from_slice(b"[{\"type\":\"text\",\"text\":");
        let n = rng.range(1, 2);
        text(out, rng, n);
        out.extend_from_slice(b"},{\"type\":\"text\",\"text\":");
        text_until(out, rng, limit);
        out.extend_from_slice(b"}]");
    }
    out.extend_from_slice(b"}]");
}

/// OpenAI's embeddings model names: ignored (and counted) by translate, which runs the batch's model.
const OPENAI_EMBEDDING_MODELS: &[&str] = &[
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
];

/// `/v1/embeddings` lines of one to four texts (docs/formats.md, "Embeddings"), sized to about `target`
/// bytes like the chat lines.
struct EmbeddingsGen<'m> {
    /// Named in `body.model` by some lines.
    model: &'m str,
    /// The vector lengths asked for: 256 and 1,024, those of them the model's catalogue entry gives.
    dimensions: Vec<u32>,
    params: Vec<u8>,
    tail: Vec<u8>,
}

impl<'m> EmbeddingsGen<'m> {
    fn of(model: &'m BedrockModel) -> Result<EmbeddingsGen<'m>> {
        let gives = model.embedding().map_or(&[][..], |e| e.dimensions.as_slice());
        let dimensions: Vec<u32> = [256, 1024].into_iter().filter(|d| gives.contains(d)).collect();
        if dimensions.is_empty() {
            return Err(format!(
                "{} gives neither 256 nor 1,024 dimensions (its catalogue entry)",
                model.id
            )
            .into());
        }
        Ok(EmbeddingsGen {
            model: &model.id,
            dimensions,
            params: Vec::new(),
            tail: Vec::new(),
        })
    }

    fn line(&mut self, rng: &mut Rng, index: u64, target: usize, out: &mut Vec<u8>) {
        // As in the chat files, about one line in a thousand breaks a rule.
        let defect = rng.permille(1).then(|| rng.below(5));
        let custom_id = match rng.below(100) {
            0..=79 => format!("embed-{index:07}"),
            80..=94 => format!("doc-{}/chunk-{index}", rng.below(20_000)),
            _ => format!("文書-{index}-チャンク"),
        };
        let mut id = Vec::with_capacity(64);
        string(&mut id, rng, &custom_id);
        let envelope_first = !rng.percent(10);
        let input_first = rng.percent(70);

        // Body fields other than `input`, each written as `,"name":value`.
        let p = &mut self.params;
        p.clear();
        match rng.below(100) {
            0..=69 => {
                p.extend_from_slice(b",\"model\":");
                let name = rng.pick(OPENAI_EMBEDDING_MODELS);
                string(p, rng, name);
            }
            70..=84 => {
                p.extend_from_slice(b",\"model\":");
                string(p, rng, self.model);
            }
            _ => {}
        }
        let (small, large) = (self.dimensions[0], self.dimensions[self.dimensions.len() - 1]);
        match (defect, rng.below(100)) {
            (Some(3), _) => p.extend_from_slice(b",\"dimensions\":300"),
            (_, 0..=59) => {
                p.extend_from_slice(b",\"dimensions\":");
                number(p, small);
            }
            (_, 60..=89) => {
                p.extend_from_slice(b",\"dimensions\":");
                number(p, large);
            }
            // Without dimensions the model's default (1,024) is sent.
            _ => {}
        }
        match (defect, rng.below(100)) {
            (Some(4), _) => p.extend_from_slice(b",\"encoding_format\":\"int8\""),
            (_, 0..=24) => p.extend_from_slice(b",\"encoding_format\":\"base64\""),
            (_, 25..=39) => p.extend_from_slice(b",\"encoding_format\":\"float\""),
            _ => {}
        }
        if rng.percent(8) {
            p.extend_from_slice(b",\"user\":");
            let user = format!("user-{}", rng.below(100_000));
            string(p, rng, &user);
        }

        out.clear();
        self.tail.clear();
        frame_line(
            out,
            &mut self.tail,
            &id,
            b"/v1/embeddings",
            &self.params,
            (envelope_first, input_first),
        );

        out.extend_from_slice(b"\"input\":");
        let limit = target.saturating_sub(self.tail.len() + 8);
        match defect {
            Some(0) => out.extend_from_slice(b"\"\""),
            Some(1) => out.extend_from_slice(b"[]"),
            Some(2) => out.extend_from_slice(b"[[1917,374,264],[1296]]"),
            _ if rng.percent(40) => text_until(out, rng, limit),
            _ => {
                let texts = rng.range(1, 4);
                let share = limit.saturating_sub(out.len()) / texts;
                out.push(b'[');
                for i in 0..texts {
                    if i > 0 {
                        out.push(b',');
                    }
                    let until = out.len() + share;
                    text_until(out, rng, until);
                }
                out.push(b']');
            }
        }
        out.extend_from_slice(&self.tail);
    }
}

/// The size a line aims for: mostly short, some long, a few documents of tens of KB.
fn draw_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => rng.range(400, 1200),
        60..=89 => rng.range(1200, 2800),
        90..=98 => rng.range(2800, 6000),
        _ => rng.range(6000, 24_000),
    }
}

/// Writes the lines of a family's files: chat requests, or embeddings requests.
enum Generator<'m> {
    Chat(LineGen<'m>),
    Embeddings(EmbeddingsGen<'m>),
}

impl Generator<'_> {
    fn line(&mut self, rng: &mut Rng, index: u64, target: usize, out: &mut Vec<u8>) {
        match self {
            Generator::Chat(gen) => gen.line(rng, index, target, out),
            Generator::Embeddings(gen) => gen.line(rng, index, target, out),
        }
    }
}

/// The generated input of `ds`, written unless an up-to-date copy is already there.
fn ensure_input(dir: &Path, ds: &Dataset, regen: bool) -> Result<PathBuf> {
    let model = &ds.subject.model;
    let stamp = |size: u64| {
        format!(
            "generator {GENERATOR_VERSION}, {} lines for {}, lines {}, aimed at {} bytes, seed {:x}, size {size}\n",
            ds.subject.family, model.id, ds.lines, ds.bytes, ds.seed
        )
    };
    let mut gen = match ds.subject.family {
        Family::Claude | Family::Nova | Family::Converse => Generator::Chat(LineGen {
            profile: ChatProfile::of(model),
            head: Vec::new(),
            params: Vec::new(),
            tail: Vec::new(),
        }),
        Family::TitanEmbed => Generator::Embeddings(EmbeddingsGen::of(model)?),
    };
    let (path, _) = generated(dir, &ds.name, ds.lines, &stamp, regen, |w| {
        let mut rng = Rng(ds.seed);
        let mut line = Vec::with_capacity(64 * 1024);
        let average = ds.bytes / ds.lines;
        let mut written = 0u64;
        for i in 1..=ds.lines {
            // Steer toward the planned total: lines whose structure alone overshoots (long histories,
            // several tools) are paid back by shorter lines after them.
            let drift = (ds.bytes * i / ds.lines) as i64 - (written + average) as i64;
            let target = (draw_size(&mut rng) as i64 + drift / 4).max(0) as usize;
            gen.line(&mut rng, i, target, &mut line);
            line.push(b'\n');
            w.write_all(&line)?;
            written += line.len() as u64;
        }
        Ok(written)
    })?;
    Ok(path)
}

/// `DIR/NAME.jsonl`, kept when its stamp (`stamp` of its size) says it is what `write` would write,
/// else written again by `write` (which returns the bytes written). Written aside and renamed, so an
/// interrupted run never leaves a short file that looks complete.
fn generated(
    dir: &Path,
    name: &str,
    lines: u64,
    stamp: &dyn Fn(u64) -> String,
    regen: bool,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<u64>,
) -> Result<(PathBuf, u64)> {
    let path = dir.join(format!("{name}.jsonl"));
    let stamp_path = dir.join(format!("{name}.stamp"));
    if !regen {
        if let (Ok(meta), Ok(kept)) = (fs::metadata(&path), fs::read_to_string(&stamp_path)) {
            if kept == stamp(meta.len()) {
                eprintln!("{name}: using {}", path.display());
                return Ok((path, meta.len()));
            }
        }
    }
    eprintln!("{name}: generating {} lines", grouped(lines));
    let started = Instant::now();
    let partial = dir.join(format!("{name}.jsonl.partial"));
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&partial)?);
    let written = write(&mut w)?;
    w.flush()?;
    drop(w);
    fs::rename(&partial, &path)?;
    fs::write(&stamp_path, stamp(written))?;
    eprintln!(
        "  {:.1} MB in {:.1} s",
        written as f64 / MB,
        started.elapsed().as_secs_f64()
    );
    Ok((path, written))
}

// ---------------------------------------------------------------------------------------------------
// Bedrock output

#[derive(Deserialize)]
struct InputRecord<'a> {
    #[serde(rename = "recordId")]
    record_id: String,
    #[serde(rename = "modelInput", borrow)]
    model_input: &'a RawValue,
}

/// What of a Claude body decides the shape of its answer.
#[derive(Deserialize)]
struct ClaudeBody {
    #[serde(default)]
    max_tokens: u64,
    #[serde(default)]
    tools: Vec<NamedTool>,
    #[serde(default)]
    tool_choice: Option<ClaudeToolChoice>,
    #[serde(default)]
    stop_sequences: Vec<String>,
}

#[derive(Deserialize)]
struct NamedTool {
    name: String,
}

#[derive(Deserialize)]
struct ClaudeToolChoice {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
}

/// What of a Nova body, or of a Converse request, decides the shape of its answer. A Converse request
/// never has a `toolConfig` (docs/formats.md, "Converse").
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaBody {
    #[serde(default)]
    inference_config: NovaInference,
    #[serde(default)]
    tool_config: Option<NovaToolConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NovaInference {
    #[serde(default)]
    max_tokens: u64,
    #[serde(default)]
    stop_sequences: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaToolConfig {
    #[serde(default)]
    tools: Vec<NovaTool>,
    #[serde(default)]
    tool_choice: Option<NovaToolChoice>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaTool {
    tool_spec: NamedTool,
}

/// `{"auto":{}}`, `{"any":{}}` or `{"tool":{"name":…}}`.
#[derive(Deserialize)]
struct NovaToolChoice {
    #[serde(default)]
    any: Option<IgnoredAny>,
    #[serde(default)]
    tool: Option<NamedTool>,
}

/// What of a Titan body decides the shape of its answer: the vector's length.
#[derive(Deserialize)]
struct TitanBody {
    #[serde(default)]
    dimensions: usize,
}

/// What [`write_bedrock_output`] wrote.
struct BedrockOutput {
    records: u64,
    /// The numbers of the records answered with an `error`, in no order.
    errored: Vec<u64>,
}

/// Record errors as Bedrock writes them for chat models.
const CHAT_ERRORS: &[&[u8]] = &[
    br#"{"errorCode":400,"errorMessage":"ValidationException: messages.0.content: text content blocks must be non-empty"}"#,
    br#"{"errorCode":429,"errorMessage":"ThrottlingException: Too many requests, please wait before trying again."}"#,
    br#"{"errorCode":500,"errorMessage":"InternalServerException: The system encountered an unexpected error during processing. Try your request again."}"#,
    br#"{"errorCode":424,"errorMessage":"ModelErrorException: The model produced an invalid response \u2014 retry."}"#,
    br#"{"errorCode":"400","errorMessage":"Malformed input request: #/temperature: expected maximum: 1, please reformat your input and try again."}"#,
];

/// Record errors as Bedrock writes them for Titan embeddings.
const TITAN_ERRORS: &[&[u8]] = &[
    br#"{"errorCode":400,"errorMessage":"ValidationException: Malformed input request: #/inputText: expected maxLength: 50000, actual: 50211, please reformat your input and try again."}"#,
    br#"{"errorCode":429,"errorMessage":"ThrottlingException: Too many requests, please wait before trying again."}"#,
    br#"{"errorCode":500,"errorMessage":"InternalServerException: The system encountered an unexpected error during processing. Try your request again."}"#,
];

/// Writes the output Bedrock would return for a job of `family` over `input`: every record echoes its
/// `modelInput` byte for byte, most carry a `modelOutput` in the family's shape, a few an `error`, in
/// shuffled order (docs/bedrock.md#output-files).
fn write_bedrock_output(family: Family, input: &Path, out: &Path, seed: u64) -> Result<BedrockOutput> {
    let file = File::open(input)?;
    // Offsets, not lines: records are read back in shuffled order with positioned reads, so that this
    // process stays small even for the 200 MB file (see `serde_reference`).
    let mut spans: Vec<(u64, usize)> = Vec::new();
    {
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let (mut buf, mut at) = (Vec::new(), 0u64);
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            let len = buf.strip_suffix(b"\n").unwrap_or(&buf).len();
            if len > 0 {
                spans.push((at, len));
            }
            at += n as u64;
        }
    }
    let mut rng = Rng(seed);
    for i in (1..spans.len()).rev() {
        spans.swap(i, rng.below(i + 1));
    }
    let numbers = Numbers::new(&mut rng);
    let errors = match family {
        Family::TitanEmbed => TITAN_ERRORS,
        Family::Claude | Family::Nova | Family::Converse => CHAT_ERRORS,
    };

    let mut w = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let (mut buf, mut record) = (Vec::new(), Vec::with_capacity(64 * 1024));
    let mut errored = Vec::new();
    for &(at, len) in &spans {
        buf.resize(len, 0);
        file.read_exact_at(&mut buf, at)?;
        let bad = |e: serde_json::Error| format!("{}: record at byte {at}: {e}", input.display());
        let rec: InputRecord = serde_json::from_slice(&buf).map_err(bad)?;
        let model_input = rec.model_input.get();

        record.clear();
        let id_first = rng.percent(50);
        let id = |record: &mut Vec<u8>| {
            record.extend_from_slice(b"\"recordId\":\"");
            record.extend_from_slice(rec.record_id.as_bytes());
            record.push(b'"');
        };
        record.push(b'{');
        if id_first {
            id(&mut record);
            record.push(b',');
        }
        record.extend_from_slice(b"\"modelInput\":");
        record.extend_from_slice(model_input.as_bytes());
        if rng.permille(3) {
            record.extend_from_slice(b",\"error\":");
            record.extend_from_slice(rng.pick(errors));
            let number = record_number(&rec.record_id)
                .ok_or_else(|| format!("{}: record at byte {at}: recordId {}", input.display(), rec.record_id))?;
            errored.push(number);
        } else {
            record.extend_from_slice(b",\"modelOutput\":");
            match family {
                Family::Claude => {
                    let body: ClaudeBody = serde_json::from_str(model_input).map_err(bad)?;
                    claude_output(&mut record, &mut rng, &body, model_input.len());
                }
                Family::Nova | Family::Converse => {
                    let body: NovaBody = serde_json::from_str(model_input).map_err(bad)?;
                    nova_output(
                        &mut record,
                        &mut rng,
                        &body,
                        model_input.len(),
                        family == Family::Converse,
                    );
                }
                Family::TitanEmbed => {
                    let body: TitanBody = serde_json::from_str(model_input).map_err(bad)?;
                    titan_output(&mut record, &mut rng, &numbers, &body, model_input.len());
                }
            }
        }
        if !id_first {
            record.push(b',');
            id(&mut record);
        }
        record.extend_from_slice(b"}\n");
        w.write_all(&record)?;
    }
    w.flush()?;
    Ok(BedrockOutput {
        records: spans.len() as u64,
        errored,
    })
}

/// Which tool a chat answer calls, if any, and why it stops, in the words Claude, Nova and Converse share.
/// With tools offered, a forced choice (`Some(None)`: any tool; `Some(Some(name))`: that one) always gets
/// a call, else about every other answer calls one.
fn plan_answer<'b>(
    rng: &mut Rng,
    tools: &[&'b str],
    forced: Option<Option<&'b str>>,
    stops: bool,
) -> (Option<&'b str>, &'static str) {
    let call = if tools.is_empty() || !(forced.is_some() || rng.percent(45)) {
        None
    } else {
        Some(match forced.flatten() {
            Some(name) => name,
            None => rng.pick(tools),
        })
    };
    let stop_reason = if call.is_some() {
        "tool_use"
    } else if rng.percent(7) {
        "max_tokens"
    } else if stops && rng.percent(10) {
        "stop_sequence"
    } else {
        "end_turn"
    };
    (call, stop_reason)
}

/// The text of an answer, as a JSON string: short beside a tool call, long when cut by `max_tokens`.
fn answer_text(out: &mut Vec<u8>, rng: &mut Rng, call: Option<&str>, stop_reason: &str) {
    let fragments = match (call, stop_reason) {
        (Some(_), _) => 1,
        (None, "max_tokens") => rng.range(8, 20),
        _ => rng.range(1, 10),
    };
    text(out, rng, fragments);
}

/// The arguments of a call to `name`, as raw JSON: those a model might pass to one of [`TOOLS`], `{}` for
/// another (the tool of structured output).
fn tool_arguments(rng: &mut Rng, name: &str) -> &'static str {
    TOOLS
        .iter()
        .find(|t| t.name == name)
        .map_or("{}", |t| rng.pick(t.arguments))
}

/// How one wire format spells an answer's content blocks: the opening of a text block (its text follows),
/// the opening of a tool call up to its random id, and the close of a tool call after its input.
struct Blocks {
    text: &'static [u8],
    tool: &'static [u8],
    tool_end: &'static [u8],
}

const CLAUDE_BLOCKS: Blocks = Blocks {
    text: b"{\"type\":\"text\",\"text\":",
    tool: b"{\"type\":\"tool_use\",\"id\":\"toolu_bdrk_01",
    tool_end: b"}",
};

/// Nova's and Converse's `toolUse` blocks.
const NOVA_BLOCKS: Blocks = Blocks {
    text: b"{\"text\":",
    tool: b"{\"toolUse\":{\"toolUseId\":\"tooluse_",
    tool_end: b"}}",
};

/// The content blocks of an answer planned by [`plan_answer`]: a text (always without a call, else half
/// the time), then the call. Returns the output tokens: `max_tokens` when the answer was cut there, else
/// about a quarter of the blocks' bytes.
fn content_blocks(
    out: &mut Vec<u8>,
    rng: &mut Rng,
    (call, stop_reason): (Option<&str>, &str),
    blocks: &Blocks,
    max_tokens: u64,
) -> u64 {
    let content_start = out.len();
    if call.is_none() || rng.percent(50) {
        out.extend_from_slice(blocks.text);
        answer_text(out, rng, call, stop_reason);
        out.push(b'}');
    }
    if let Some(name) = call {
        if out.len() > content_start {
            out.push(b',');
        }
        out.extend_from_slice(blocks.tool);
        rng.alnum(out, 22);
        out.extend_from_slice(b"\",\"name\":\"");
        escaped(out, name, Escape::Raw);
        out.extend_from_slice(b"\",\"input\":");
        let arguments = tool_arguments(rng, name);
        out.extend_from_slice(arguments.as_bytes());
        out.extend_from_slice(blocks.tool_end);
    }
    if stop_reason == "max_tokens" {
        max_tokens
    } else {
        ((out.len() - content_start) / 4 + 1) as u64
    }
}

/// A Claude Messages response (docs/formats.md#claude-and-nova-bodies): text, sometimes a tool call when tools were offered, and
/// the stop reasons a real job returns.
fn claude_output(out: &mut Vec<u8>, rng: &mut Rng, body: &ClaudeBody, input_len: usize) {
    let tools: Vec<&str> = body.tools.iter().map(|t| t.name.as_str()).collect();
    let forced = body
        .tool_choice
        .as_ref()
        .filter(|c| c.kind == "any" || c.kind == "tool")
        .map(|c| c.name.as_deref());
    let (call, stop_reason) = plan_answer(rng, &tools, forced, !body.stop_sequences.is_empty());

    out.extend_from_slice(b"{\"id\":\"msg_bdrk_01");
    rng.alnum(out, 22);
    out.extend_from_slice(b"\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"");
    out.extend_from_slice(CLAUDE_NAME.as_bytes());
    out.extend_from_slice(b"\",\"content\":[");
    let output_tokens = content_blocks(out, rng, (call, stop_reason), &CLAUDE_BLOCKS, body.max_tokens);
    out.extend_from_slice(b"],\"stop_reason\":\"");
    out.extend_from_slice(stop_reason.as_bytes());
    out.extend_from_slice(b"\",\"stop_sequence\":");
    if stop_reason == "stop_sequence" {
        let seq = &body.stop_sequences[rng.below(body.stop_sequences.len())];
        string(out, rng, seq);
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"usage\":{\"input_tokens\":");
    number(out, input_len / 4 + rng.below(50));
    out.extend_from_slice(b",\"output_tokens\":");
    number(out, output_tokens);
    if rng.percent(10) {
        out.extend_from_slice(b",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":");
        number(out, rng.range(1024, 4096));
    }
    out.extend_from_slice(b"}}");
}

/// A Nova response (docs/formats.md#claude-and-nova-bodies), or with `converse` a Converse response (docs/formats.md, "Converse"):
/// `output.message` with text and, when tools were offered, sometimes a `toolUse`; `stopReason`;
/// `usage`. Converse responses also carry `metrics`, and name the cache counter `…Tokens`, not
/// `…TokenCount`.
fn nova_output(out: &mut Vec<u8>, rng: &mut Rng, body: &NovaBody, input_len: usize, converse: bool) {
    let config = body.tool_config.as_ref();
    let tools: Vec<&str> = config
        .map(|c| c.tools.iter().map(|t| t.tool_spec.name.as_str()).collect())
        .unwrap_or_default();
    let forced = config
        .and_then(|c| c.tool_choice.as_ref())
        .and_then(|c| match (&c.tool, &c.any) {
            (Some(tool), _) => Some(Some(tool.name.as_str())),
            (None, Some(_)) => Some(None),
            (None, None) => None,
        });
    let stops = &body.inference_config.stop_sequences;
    let (call, stop_reason) = plan_answer(rng, &tools, forced, !stops.is_empty());

    out.extend_from_slice(b"{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[");
    let max_tokens = body.inference_config.max_tokens;
    let output_tokens = content_blocks(out, rng, (call, stop_reason), &NOVA_BLOCKS, max_tokens);
    let input_tokens = (input_len / 4 + rng.below(50)) as u64;
    out.extend_from_slice(b"]}},\"stopReason\":\"");
    out.extend_from_slice(stop_reason.as_bytes());
    out.extend_from_slice(b"\",\"usage\":{\"inputTokens\":");
    number(out, input_tokens);
    out.extend_from_slice(b",\"outputTokens\":");
    number(out, output_tokens);
    out.extend_from_slice(b",\"totalTokens\":");
    number(out, input_tokens + output_tokens);
    if rng.percent(10) {
        out.extend_from_slice(if converse {
            b",\"cacheReadInputTokens\":".as_slice()
        } else {
            b",\"cacheReadInputTokenCount\":"
        });
        number(out, rng.range(1024, 4096));
    }
    out.push(b'}');
    if converse {
        out.extend_from_slice(b",\"metrics\":{\"latencyMs\":");
        number(out, rng.range(200, 9000));
        out.push(b'}');
    }
    out.push(b'}');
}

/// Vector components of the size a unit vector of 256 to 1,024 has (up to about ±0.15, as the shortest
/// float32 text), made once: each answer picks from them rather than formatting numbers of its own, which
/// keeps writing the largest output (about 2 GB) to seconds.
struct Numbers(Vec<String>);

impl Numbers {
    fn new(rng: &mut Rng) -> Numbers {
        Numbers(
            (0..4096)
                .map(|_| {
                    let magnitude = (rng.next() >> 40) as f32 / (1u64 << 24) as f32 * 0.15;
                    let x = if rng.percent(50) { -magnitude } else { magnitude };
                    x.to_string()
                })
                .collect(),
        )
    }
}

/// A Titan Text Embeddings V2 response: `embedding`, as many numbers as the request's `dimensions` (1,024
/// when it names none, the model's default), and `inputTextTokenCount`.
fn titan_output(out: &mut Vec<u8>, rng: &mut Rng, numbers: &Numbers, body: &TitanBody, input_len: usize) {
    let dimensions = if body.dimensions == 0 { 1024 } else { body.dimensions };
    out.extend_from_slice(b"{\"embedding\":[");
    for i in 0..dimensions {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(numbers.0[rng.below(numbers.0.len())].as_bytes());
    }
    out.extend_from_slice(b"],\"inputTextTokenCount\":");
    number(out, (input_len / 5).max(1));
    out.push(b'}');
}
