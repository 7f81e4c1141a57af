//! The state machine's cost, computed from `statemachine/batch.asl.json`, the loop budgets of
//! `pipeline::check` (`POLL_BUDGET`, `STOP_POLL_BUDGET`), the poll backoff (`Backoff::default()`) and the
//! reliability settings' defaults and maxima (`infra/template.yaml`), so that a change to any of them is
//! measured (docs/reliability.md, "Bounds"):
//!
//! - the worst execution the budgets allow stays below Step Functions' hard limit of 25,000 history events
//!   (beyond it the execution fails): `POLL_BUDGET` turns of the loop, then the failure path's
//!   `STOP_POLL_BUDGET` turns, the failure-mode finalize failing, the mark-only finalize and the last event,
//!   where every task attempt fails and is retried as often as its `Retry` allows;
//! - the longest batch (the longest `JOB_TIMEOUT_HOURS`, the other settings at their defaults) writes fewer
//!   than 10,000 history events on its normal path, within `POLL_BUDGET`, and the spreading of
//!   `check::next_wait` never lengthens one of its waits;
//! - the longest batch with every setting at its default needs fewer than `POLL_BUDGET / 2` polls, so
//!   that the spreading never starts;
//! - the longest batch any settings allow still fits in `POLL_BUDGET`, thanks to the spreading;
//! - a 24 h batch costs at most 150 state transitions (Standard workflows are billed per transition),
//!   whether Bedrock's job event wakes the loop or is lost, and a 168 h batch writes fewer than 5,000
//!   history events;
//! - every state of the definition is on one of the walks.
//!
//! The walk runs the ASL itself: it starts at `StartAt`; a Task's input is its `Parameters` evaluated on
//! the state, its answer comes from a model of the function or integration it names (below), its `Retry`
//! decides how often a failed attempt is made again, its `Catch` where a failure goes, and `ResultPath`
//! how the answer or the error joins the state; a Choice evaluates its rules on that state, a Wait reads
//! its `Seconds(Path)`; `Next`/`Default` lead on until a terminal state. Nothing about the loop's shape is
//! assumed: the states are named only to say which path a walk was meant to take.
//!
//! The models answer the way the code does, in the cases the walks need:
//! - check-jobs (`pipeline::check::handle`): without `failure` in its input, a turn fails the batch
//!   (`BatchdropFatalError`) once the input's `polls` reaches `POLL_BUDGET`, else answers the next state
//!   with `polls + 1`, `all_done` once the scenario's jobs are done, and the wait of `check::next_wait`.
//!   With `failure` (the failure path) it answers `all_done` at the latest on the loop's
//!   `STOP_POLL_BUDGET`-th turn, and never sooner in these walks (an upper bound). The walks leave out
//!   the clock-based bounds (`longest_batch_seconds`, the stop wait), which can only end a loop sooner,
//!   and S3/Bedrock trouble ridden out inside the function, which they take to count against the budgets
//!   like any other turn.
//! - finalize (`pipeline::finalize::handle`): the event detail, with the scenario's status, `failed` in
//!   failure mode; or the scenario's failure.
//! - `events:putEvents`: accepted, or the scenario's `EventBridge.FailedEntry`.
//! - the park (`lambda:invoke.waitForTaskToken` on the wake function, `pipeline::wake::park`): the wait
//!   ends when the scenario's jobs end, if their event is delivered and the turn is below
//!   `WAKE_POLL_LIMIT` (half the poll budget); otherwise it runs to its `TimeoutSecondsPath` and fails
//!   with `States.Timeout`. Or the wake function fails (`BatchdropFatalError`) when the scenario says so.
//!
//! History events, as Step Functions writes them:
//! - execution: `ExecutionStarted` + `ExecutionSucceeded` (or `ExecutionFailed`) = 2
//! - Wait, Pass, Choice, Succeed: `…StateEntered` + `…StateExited` = 2
//! - Task: `TaskStateEntered` + `TaskStateExited` = 2 (also counted when a Catch takes the failure, which
//!   errs on the safe side), plus per attempt:
//!   - on a Lambda function ARN: `LambdaFunctionScheduled`, `LambdaFunctionStarted`,
//!     `LambdaFunctionSucceeded` (or `…Failed`, `…TimedOut`) = 3
//!   - on a service integration (`arn:aws:states:::…`, here `events:putEvents` and the park): `TaskScheduled`,
//!     `TaskStarted`, `TaskSubmitted`, `TaskSucceeded` (or `TaskFailed`, `TaskTimedOut`) = 4
//!     (request-response integrations may skip `TaskSubmitted`; counting it errs on the safe side)
//! - Fail: `FailStateEntered` = 1 (the execution's `ExecutionFailed` is counted with the execution)
//!
//! An attempt that fails with an error a retrier of the Task's `Retry` matches is made again while that
//! retrier has attempts left (`MaxAttempts`, 3 when absent); in the worst case every retrier is used up
//! before the attempt that counts. State transitions = states entered.
//!
//! Without the `aws` feature the test cannot name `batchdrop::pipeline`: the budgets are read from
//! `src/pipeline/check.rs`, and `against_the_code` (with the feature, as `cargo test --workspace` builds
//! it) checks them, the template's defaults and the model of `next_wait` against the code itself.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use batchdrop::status::Backoff;
use serde_json::{json, Map, Value};

/// Step Functions' hard limit of history events per execution.
const HISTORY_EVENT_LIMIT: u64 = 25_000;
/// The normal path of the longest batch stays far below the limit.
const NORMAL_HISTORY_BUDGET: u64 = 10_000;
/// A 24 h batch costs at most this many state transitions.
const TRANSITION_BUDGET: u64 = 150;
/// A 168 h batch writes fewer history events than this.
const WEEK_HISTORY_BUDGET: u64 = 5_000;
const DAY_SECONDS: u64 = 24 * 3600;
/// The error check-jobs and finalize fail with when retrying cannot help (`StepError::Fatal`).
const FATAL: &str = "BatchdropFatalError";
/// The error of a putEvents whose entry EventBridge refused.
const EVENT_REFUSED: &str = "EventBridge.FailedEntry";
const CHECK_JOBS: &str = "${CheckJobsFunctionArn}";
const FINALIZE: &str = "${FinalizeFunctionArn}";
const PUT_EVENTS: &str = "arn:aws:states:::events:putEvents";
const PARK: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";
const WAKE: &str = "${WakeFunctionArn}";
/// The error of a task whose timeout ran out.
const TIMEOUT: &str = "States.Timeout";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn asl() -> Value {
    serde_json::from_str(&read("statemachine/batch.asl.json"))
        .unwrap_or_else(|e| panic!("statemachine/batch.asl.json: {e}"))
}

/// `pub const {name}: u32 = …;` in a source file.
fn source_const(relative: &str, name: &str) -> u32 {
    let prefix = format!("pub const {name}: u32 = ");
    let value = read(relative)
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()).map(str::to_string))
        .unwrap_or_else(|| panic!("{relative} has no `{prefix}…;`"));
    let digits = value.trim().trim_end_matches(';').replace('_', "");
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{relative}: {name} = {value} is not a number"))
}

/// A field (`Default`, `MaxValue`, …) of a parameter of `infra/template.yaml`.
fn template_parameter(parameter: &str, field: &str) -> f64 {
    let template = read("infra/template.yaml");
    let mut lines = template
        .lines()
        .skip_while(|l| l.trim_end() != format!("  {parameter}:"));
    assert!(
        lines.next().is_some(),
        "infra/template.yaml has no parameter {parameter}"
    );
    let prefix = format!("{field}:");
    let value = lines
        .take_while(|l| l.starts_with("    "))
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()).map(str::to_string))
        .unwrap_or_else(|| panic!("parameter {parameter} has no {field}"));
    value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("parameter {parameter}: {field} {value} is not a number"))
}

fn template_hours(parameter: &str, field: &str) -> u64 {
    template_parameter(parameter, field) as u64
}

/// The budgets and settings the walks run with.
#[derive(Debug)]
struct Settings {
    poll_budget: u32,
    stop_poll_budget: u32,
    backoff: Backoff,
    /// `JOB_TIMEOUT_HOURS`: its default and its maximum.
    job_timeout_hours: u64,
    job_timeout_hours_max: u64,
    /// The defaults of `QUEUE_TIMEOUT_HOURS`, `OUTAGE_BUDGET_HOURS`, `STOP_WAIT_MINUTES`.
    queue_timeout_hours: u64,
    outage_budget_hours: u64,
    stop_wait_minutes: u64,
}

impl Settings {
    fn load() -> Settings {
        Settings {
            poll_budget: source_const("src/pipeline/check.rs", "POLL_BUDGET"),
            stop_poll_budget: source_const("src/pipeline/check.rs", "STOP_POLL_BUDGET"),
            backoff: Backoff::default(),
            job_timeout_hours: template_hours("JobTimeoutHours", "Default"),
            job_timeout_hours_max: template_hours("JobTimeoutHours", "MaxValue"),
            queue_timeout_hours: template_hours("QueueTimeoutHours", "Default"),
            outage_budget_hours: template_hours("OutageBudgetHours", "Default"),
            stop_wait_minutes: template_hours("StopWaitMinutes", "Default"),
        }
    }

    /// `Config::longest_batch_seconds()` with the defaults and a job timeout of `job_hours`.
    fn longest_batch_seconds(&self, job_hours: u64) -> u64 {
        (self.queue_timeout_hours + job_hours + self.outage_budget_hours) * 3600 + self.stop_wait_minutes * 60
    }
}

/// `check::next_wait`: the backoff, spread out in the second half of the poll budget so that the polls
/// left cover the time the batch may still last (`elapsed` seconds since its creation).
fn next_wait(backoff: &Backoff, poll_budget: u32, longest_batch_seconds: u64, polls: u32, elapsed: u64) -> u64 {
    let wait = backoff.wait(polls);
    if polls < poll_budget / 2 {
        return wait;
    }
    let left = u64::from(poll_budget.saturating_sub(polls).max(1));
    wait.max(longest_batch_seconds.saturating_sub(elapsed) / left)
}

/// When the batch's jobs are all terminal.
#[derive(Debug, Clone, Copy)]
enum Done {
    /// Seconds after the execution started.
    After(u64),
    /// At the main loop's answer with this `polls`.
    AtPoll(u32),
    Never,
}

/// What one execution meets.
#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    jobs: Done,
    /// The deadline `next_wait` spreads the polls over.
    longest_batch_seconds: u64,
    /// The status finalize reports for the batch.
    finalize_status: &'static str,
    /// finalize fails for good: normal mode, failure mode (`failure` given), `mark_only`.
    finalize_fails: bool,
    failure_mode_finalize_fails: bool,
    mark_fails: bool,
    /// Every putEvents is refused.
    events_fail: bool,
    /// Bedrock's job event of the jobs' end reaches the wake function (else every event is lost).
    wakes: bool,
    /// The wake function fails every park.
    park_fails: bool,
    /// Every task attempt fails with errors its `Retry` retries, as often as it allows, before the
    /// attempt that counts.
    worst_retries: bool,
}

impl Scenario {
    fn new(name: &'static str, jobs: Done, longest_batch_seconds: u64) -> Scenario {
        Scenario {
            name,
            jobs,
            longest_batch_seconds,
            finalize_status: "completed",
            finalize_fails: false,
            failure_mode_finalize_fails: false,
            mark_fails: false,
            events_fail: false,
            wakes: true,
            park_fails: false,
            worst_retries: false,
        }
    }
}

/// One state's share of an execution.
#[derive(Debug, Default, Clone)]
struct StateCost {
    entries: u64,
    attempts: u64,
    events_per_entry: u64,
    events_per_attempt: u64,
    events: u64,
}

/// What one execution costs, and the path it took.
#[derive(Debug, Default)]
struct Cost {
    history_events: u64,
    transitions: u64,
    /// The main loop's last answer's `polls`.
    polls: u32,
    /// Answers of check-jobs on the failure path.
    stop_turns: u32,
    /// Parked waits a wake-up ended before their timeout.
    woken: u32,
    /// Main-loop answers at `polls >= POLL_BUDGET / 2` (where `next_wait` may spread), and those whose
    /// wait the spreading made longer than the backoff.
    late_polls: u32,
    spread_waits: u32,
    elapsed_seconds: u64,
    /// The states entered, in order of first entry, and what each cost.
    visited: Vec<String>,
    states: BTreeMap<String, StateCost>,
    /// The terminal state, or the state whose uncaught failure ended the execution.
    end: String,
}

impl Cost {
    /// The history events, state by state.
    fn arithmetic(&self) -> String {
        let mut lines = vec!["  execution: ExecutionStarted + ExecutionSucceeded/Failed = 2".to_string()];
        let mut sum = 2;
        for name in &self.visited {
            let s = &self.states[name];
            let mut line = format!("  {name}: {} entered × {}", s.entries, s.events_per_entry);
            if s.events_per_attempt > 0 {
                line += &format!(" + {} attempts × {}", s.attempts, s.events_per_attempt);
            }
            line += &format!(" = {}", s.events);
            lines.push(line);
            sum += s.events;
        }
        assert_eq!(sum, self.history_events, "the breakdown does not add up");
        lines.push(format!(
            "  total: {} history events, {} state transitions, {} polls, {} stop turns",
            self.history_events, self.transitions, self.polls, self.stop_turns
        ));
        lines.join("\n")
    }
}

/// A JSONPath of the `$` or `$.a.b` form; `None` when the state has no such field.
fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    if path == "$" {
        return Some(data);
    }
    let rest = path
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("the walk cannot read the path {path}"));
    rest.split('.').try_fold(data, |v, key| v.get(key))
}

/// A path that must be there: Step Functions fails the execution (`States.Runtime`) when it is not.
fn required<'a>(at: &str, data: &'a Value, path: &str) -> &'a Value {
    lookup(data, path).unwrap_or_else(|| panic!("'{at}': {path} is not in the state, the execution would fail: {data}"))
}

/// `States.Format('…{}…', $.a, $.b)`: each `{}` is the next argument, strings as they are.
fn format_intrinsic(at: &str, args: &str, data: &Value) -> Value {
    let args = args.trim();
    let body = args
        .strip_prefix('\'')
        .unwrap_or_else(|| panic!("'{at}': States.Format({args}) has no format string"));
    let end = body
        .find('\'')
        .unwrap_or_else(|| panic!("'{at}': unterminated format string"));
    let (template, rest) = (&body[..end], &body[end + 1..]);
    let values: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|path| match required(at, data, path) {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let pieces: Vec<&str> = template.split("{}").collect();
    assert_eq!(
        pieces.len(),
        values.len() + 1,
        "'{at}': States.Format('{template}') takes {} arguments, given {}",
        pieces.len() - 1,
        values.len()
    );
    let mut out = pieces[0].to_string();
    for (value, piece) in values.iter().zip(&pieces[1..]) {
        out += value;
        out += piece;
    }
    Value::String(out)
}

/// `Parameters` evaluated on the state: `key.$` fields take a path or an intrinsic function.
fn resolve(at: &str, template: &Value, data: &Value) -> Value {
    match template {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                if let Some(key) = key.strip_suffix(".$") {
                    let expr = value
                        .as_str()
                        .unwrap_or_else(|| panic!("'{at}': {key}.$ is not a string"));
                    let resolved = match expr.strip_prefix("States.Format(") {
                        Some(args) => format_intrinsic(at, args.strip_suffix(')').unwrap_or(args), data),
                        // The context object: the one field the definition reads is the task token.
                        None if expr == "$$.Task.Token" => json!("task-token"),
                        None => required(at, data, expr).clone(),
                    };
                    out.insert(key.to_string(), resolved);
                } else {
                    out.insert(key.clone(), resolve(at, value, data));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(at, v, data)).collect()),
        other => other.clone(),
    }
}

/// `ResultPath`: absent or `$` replaces the state, `null` keeps it, `$.a.b` puts `result` there.
fn with_result(at: &str, data: &Value, result_path: Option<&Value>, result: Value) -> Value {
    let path = match result_path {
        None => return result,
        Some(Value::Null) => return data.clone(),
        Some(Value::String(path)) if path == "$" => return result,
        Some(Value::String(path)) => path,
        Some(other) => panic!("'{at}': ResultPath {other}"),
    };
    let keys: Vec<&str> = path
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("'{at}': ResultPath {path}"))
        .split('.')
        .collect();
    let mut out = data.clone();
    let mut here = &mut out;
    for key in &keys[..keys.len() - 1] {
        here = here
            .as_object_mut()
            .unwrap_or_else(|| panic!("'{at}': ResultPath {path} into a non-object"))
            .entry(key.to_string())
            .or_insert_with(|| json!({}));
    }
    here.as_object_mut()
        .unwrap_or_else(|| panic!("'{at}': ResultPath {path} into a non-object"))
        .insert(keys[keys.len() - 1].to_string(), result);
    out
}

/// Whether an `ErrorEquals` list takes `error` (`States.ALL` takes every error but `States.Runtime`).
fn takes(error_equals: &Value, error: &str) -> bool {
    error_equals
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|e| e == error || (e == "States.ALL" && error != "States.Runtime"))
}

fn max_attempts(retrier: &Value) -> u64 {
    retrier
        .get("MaxAttempts")
        .map_or(3, |m| m.as_u64().expect("MaxAttempts is a number"))
}

/// Lambda tasks name the function's ARN (a `${…FunctionArn}` placeholder before substitution).
fn is_lambda_task(state: &Value) -> bool {
    let resource = state["Resource"].as_str().unwrap_or_default();
    resource.ends_with("FunctionArn}") || resource.starts_with("arn:aws:lambda:")
}

/// The state after `name`, or `None` when it ends the execution.
fn next_of(name: &str, state: &Value) -> Option<String> {
    match state["Next"].as_str() {
        Some(next) => Some(next.to_string()),
        None if state["End"] == true => None,
        None => panic!("state '{name}' has neither Next nor End"),
    }
}

/// The next state of a Choice for `data`: the first rule that matches, else `Default`.
fn choose(name: &str, state: &Value, data: &Value) -> String {
    for rule in state["Choices"].as_array().into_iter().flatten() {
        let path = rule["Variable"]
            .as_str()
            .unwrap_or_else(|| panic!("choice '{name}': the walk cannot evaluate {rule}"));
        let variable = required(name, data, path);
        let matched = if let Some(expected) = rule.get("BooleanEquals") {
            variable == expected
        } else if let Some(expected) = rule.get("StringEquals") {
            variable.as_str().is_some() && variable == expected
        } else if let Some(expected) = rule.get("NumericEquals") {
            variable.as_f64().is_some() && variable.as_f64() == expected.as_f64()
        } else if let Some(expected) = rule.get("NumericGreaterThanEquals") {
            variable.as_f64().is_some() && variable.as_f64() >= expected.as_f64()
        } else {
            panic!("choice '{name}': the walk cannot evaluate {rule}")
        };
        if matched {
            return rule["Next"].as_str().expect("a choice rule has Next").to_string();
        }
    }
    state["Default"]
        .as_str()
        .unwrap_or_else(|| panic!("choice '{name}': nothing matched {data} and there is no Default"))
        .to_string()
}

/// One execution in progress.
struct Run<'a> {
    settings: &'a Settings,
    scenario: &'a Scenario,
    cost: Cost,
}

impl Run<'_> {
    /// The answer of one invocation of `resource` to `input`: the task's result, or its error.
    fn answer(&mut self, at: &str, resource: &str, input: &Value, timeout: Option<u64>) -> Result<Value, String> {
        match resource {
            CHECK_JOBS => self.check_jobs(at, input),
            FINALIZE => self.finalize(at, input),
            PUT_EVENTS => self.put_events(at, input),
            PARK => self.park(
                at,
                input,
                timeout.unwrap_or_else(|| panic!("'{at}': a park without a timeout")),
            ),
            other => panic!("'{at}': the walk has no model of {other}"),
        }
    }

    /// `pipeline::check::handle` (module docs).
    fn check_jobs(&mut self, at: &str, input: &Value) -> Result<Value, String> {
        let batch_id = required(at, input, "$.batch_id").clone();
        assert!(batch_id.is_string(), "'{at}': check-jobs needs batch_id: {input}");
        let polls = match input.get("polls") {
            None | Some(Value::Null) => 0,
            Some(p) => u32::try_from(p.as_u64().expect("polls is a number")).expect("polls fits u32"),
        };
        let failure = input.get("failure").filter(|f| !f.is_null());
        let s = self.settings;
        if let Some(failure) = failure {
            // stop_turn: `all_done` at the latest on the stop loop's STOP_POLL_BUDGET-th turn, counted
            // apart from the main loop's polls.
            self.cost.stop_turns += 1;
            let stop_polls = self.cost.stop_turns;
            let wait = (s.stop_wait_minutes * 60 / u64::from(s.stop_poll_budget))
                .clamp(1, 120)
                .min(s.backoff.wait(stop_polls.min(4)));
            return Ok(json!({
                "batch_id": batch_id,
                "all_done": stop_polls >= s.stop_poll_budget,
                "wait_seconds": wait,
                "polls": polls,
                "outage_since": null,
                "outage_polls": 0,
                "stop_polls": stop_polls,
                "failure": failure,
            }));
        }
        if polls >= s.poll_budget {
            return Err(FATAL.to_string());
        }
        let polls = polls + 1;
        self.cost.polls = polls;
        let done = match self.scenario.jobs {
            Done::After(seconds) => self.cost.elapsed_seconds >= seconds,
            Done::AtPoll(at_poll) => polls >= at_poll,
            Done::Never => false,
        };
        let wait = if done {
            1
        } else {
            if polls >= s.poll_budget / 2 {
                self.cost.late_polls += 1;
            }
            let elapsed = self.cost.elapsed_seconds;
            let wait = next_wait(
                &s.backoff,
                s.poll_budget,
                self.scenario.longest_batch_seconds,
                polls,
                elapsed,
            );
            if wait > s.backoff.wait(polls) {
                self.cost.spread_waits += 1;
            }
            wait
        };
        Ok(json!({
            "batch_id": batch_id,
            "all_done": done,
            "wait_seconds": wait,
            "polls": polls,
            "outage_since": null,
            "outage_polls": 0,
            "stop_polls": 0,
        }))
    }

    /// `pipeline::finalize::handle`: the event detail.
    fn finalize(&mut self, at: &str, input: &Value) -> Result<Value, String> {
        let batch_id = required(at, input, "$.batch_id").clone();
        let present = |key: &str| input.get(key).is_some_and(|v| !v.is_null());
        let (fails, status) = if input.get("mark_only") == Some(&Value::Bool(true)) {
            assert!(
                present("failure") && present("finalize_failure"),
                "'{at}': mark_only needs both errors: {input}"
            );
            (self.scenario.mark_fails, "failed")
        } else if present("failure") {
            (self.scenario.failure_mode_finalize_fails, "failed")
        } else {
            (self.scenario.finalize_fails, self.scenario.finalize_status)
        };
        if fails {
            return Err(FATAL.to_string());
        }
        Ok(json!({
            "batch_id": batch_id,
            "status": status,
            "input_file": "s3://in/inbox/f.jsonl",
            "bedrock_job_arns": [],
            "error": null,
        }))
    }

    /// The park (module docs): woken when the jobs end, if their event arrives, else timed out.
    fn park(&mut self, at: &str, input: &Value, timeout: u64) -> Result<Value, String> {
        assert_eq!(
            input["FunctionName"], WAKE,
            "'{at}': the park calls another function: {input}"
        );
        let park = &input["Payload"]["park"];
        assert!(
            park["batch_id"].is_string() && park["token"].is_string() && park["polls"].is_u64(),
            "'{at}': the wake function needs {{batch_id, token, polls}}: {input}"
        );
        if self.scenario.park_fails {
            return Err(FATAL.to_string());
        }
        let polls = park["polls"].as_u64().unwrap_or_default();
        let wakeable = self.scenario.wakes && polls < u64::from(self.settings.poll_budget / 2);
        let start = self.cost.elapsed_seconds;
        if let (true, Done::After(done)) = (wakeable, self.scenario.jobs) {
            if done > start && done <= start + timeout {
                self.cost.elapsed_seconds = done;
                self.cost.woken += 1;
                return Ok(json!({}));
            }
        }
        self.cost.elapsed_seconds = start + timeout;
        Err(TIMEOUT.to_string())
    }

    /// `events:putEvents`: every entry must name its batch.
    fn put_events(&mut self, at: &str, input: &Value) -> Result<Value, String> {
        let entries = required(at, input, "$.Entries").as_array().expect("Entries is a list");
        for entry in entries {
            assert!(
                entry["Detail"]["batch_id"].is_string() && entry["DetailType"].is_string(),
                "'{at}': an event without its batch: {entry}"
            );
        }
        if self.scenario.events_fail {
            return Err(EVENT_REFUSED.to_string());
        }
        Ok(json!({"Entries": [{"EventId": "e"}], "FailedEntryCount": 0}))
    }

    /// Attempts of one task until one counts: how many were made, and the one that counted.
    fn attempts(&self, state: &Value, outcome: Result<Value, String>) -> (u64, Result<Value, String>) {
        let retriers = state["Retry"].as_array().cloned().unwrap_or_default();
        let first_taker = |error: &str| retriers.iter().position(|r| takes(&r["ErrorEquals"], error));
        let mut injected = VecDeque::new();
        if self.scenario.worst_retries {
            for (i, retrier) in retriers.iter().enumerate() {
                // An error this retrier, and no earlier one, takes.
                let error = retrier["ErrorEquals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|e| if e == "States.ALL" { "States.TaskFailed" } else { e })
                    .find(|e| first_taker(e) == Some(i));
                if let Some(error) = error {
                    injected.extend((0..max_attempts(retrier)).map(|_| error.to_string()));
                }
            }
        }
        let mut used = vec![0; retriers.len()];
        for attempt in 1..=10_000 {
            let result = injected.pop_front().map_or_else(|| outcome.clone(), Err);
            match result {
                Err(error) => match first_taker(&error) {
                    Some(i) if used[i] < max_attempts(&retriers[i]) => used[i] += 1,
                    _ => return (attempt, Err(error)),
                },
                answer => return (attempt, answer),
            }
        }
        panic!("a task retried 10,000 times")
    }

    /// Runs a Task: its next state (`None`: the execution ends, with `End` or a failure no Catch takes),
    /// the state after it and the attempts made.
    fn task(&mut self, name: &str, state: &Value, data: &Value) -> (Option<String>, Value, u64) {
        for unsupported in ["InputPath", "OutputPath", "ResultSelector", "Arguments", "Output"] {
            assert!(
                state.get(unsupported).is_none(),
                "'{name}': the walk does not know {unsupported}"
            );
        }
        let input = state
            .get("Parameters")
            .map_or_else(|| data.clone(), |p| resolve(name, p, data));
        let resource = state["Resource"].as_str().expect("a Task has a Resource");
        let timeout = match state.get("TimeoutSecondsPath").and_then(Value::as_str) {
            Some(path) => required(name, data, path).as_u64(),
            None => state.get("TimeoutSeconds").and_then(Value::as_u64),
        };
        let outcome = self.answer(name, resource, &input, timeout);
        let (attempts, result) = self.attempts(state, outcome);
        match result {
            Ok(answer) => (
                next_of(name, state),
                with_result(name, data, state.get("ResultPath"), answer),
                attempts,
            ),
            Err(error) => {
                let catcher = state["Catch"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| takes(&c["ErrorEquals"], &error));
                match catcher {
                    Some(catcher) => {
                        let caught =
                            json!({"Error": error, "Cause": format!("{{\"errorMessage\": \"{name} failed\"}}")});
                        let next = catcher["Next"].as_str().expect("a catcher has Next").to_string();
                        (
                            Some(next),
                            with_result(name, data, catcher.get("ResultPath"), caught),
                            attempts,
                        )
                    }
                    None => (None, data.clone(), attempts),
                }
            }
        }
    }
}

/// Runs one execution of `scenario` through the definition.
fn walk(asl: &Value, settings: &Settings, scenario: &Scenario) -> Cost {
    let states = &asl["States"];
    let mut run = Run {
        settings,
        scenario,
        cost: Cost {
            history_events: 2,
            ..Cost::default()
        },
    };
    // The execution's input: `CheckInput::new` as pipeline::submit starts it (against_the_code checks it).
    let mut data =
        json!({"batch_id": "b", "polls": 0, "outage_since": null, "outage_polls": 0, "stop_polls": 0, "failure": null});
    let mut name = asl["StartAt"].as_str().expect("StartAt").to_string();
    for _ in 0..1_000_000 {
        let state = &states[&name];
        assert!(state.is_object(), "no state named '{name}'");
        if !run.cost.visited.contains(&name) {
            run.cost.visited.push(name.clone());
        }
        run.cost.transitions += 1;
        let (next, events_per_entry, events_per_attempt, attempts) = match state["Type"].as_str() {
            Some("Wait") => {
                let seconds = match state.get("SecondsPath").and_then(Value::as_str) {
                    Some(path) => required(&name, &data, path).as_u64(),
                    None => state["Seconds"].as_u64(),
                };
                run.cost.elapsed_seconds += seconds.unwrap_or_else(|| panic!("wait '{name}': no seconds in {data}"));
                (next_of(&name, state), 2, 0, 0)
            }
            Some("Task") => {
                let (next, after, attempts) = run.task(&name, state, &data);
                data = after;
                let per_attempt = if is_lambda_task(state) { 3 } else { 4 };
                (next, 2, per_attempt, attempts)
            }
            Some("Pass") => {
                for unsupported in ["Result", "Parameters", "InputPath", "OutputPath", "ResultPath"] {
                    assert!(
                        state.get(unsupported).is_none(),
                        "'{name}': the walk does not know {unsupported}"
                    );
                }
                (next_of(&name, state), 2, 0, 0)
            }
            Some("Choice") => (Some(choose(&name, state, &data)), 2, 0, 0),
            Some("Succeed") => (None, 2, 0, 0),
            Some("Fail") => (None, 1, 0, 0),
            other => panic!("state '{name}': the walk does not know type {other:?}"),
        };
        let share = run.cost.states.entry(name.clone()).or_default();
        share.entries += 1;
        share.attempts += attempts;
        share.events_per_entry = events_per_entry;
        share.events_per_attempt = events_per_attempt;
        let events = events_per_entry + attempts * events_per_attempt;
        share.events += events;
        run.cost.history_events += events;
        match next {
            Some(next) => name = next,
            None => {
                run.cost.end = name;
                return run.cost;
            }
        }
    }
    panic!("the execution did not end within a million states");
}

fn state_type<'a>(asl: &'a Value, name: &str) -> &'a str {
    asl["States"][name]["Type"].as_str().unwrap_or_default()
}

#[test]
fn the_worst_execution_stays_below_the_history_limit() {
    let asl = asl();
    let s = Settings::load();
    let longest = s.longest_batch_seconds(s.job_timeout_hours_max);
    let everything_fails = |name, jobs| Scenario {
        worst_retries: true,
        failure_mode_finalize_fails: true,
        mark_fails: true,
        events_fail: true,
        ..Scenario::new(name, jobs, longest)
    };
    let scenarios = [
        // The jobs never end: the main loop runs to POLL_BUDGET, the next turn fails the batch.
        everything_fails("the poll budget runs out", Done::Never),
        // The jobs end at the last poll the budget allows and finalize fails for good.
        Scenario {
            finalize_fails: true,
            ..everything_fails("finalize fails after the last poll", Done::AtPoll(s.poll_budget))
        },
    ];
    let mut worst = 0;
    for scenario in &scenarios {
        let cost = walk(&asl, &s, scenario);
        let arithmetic = cost.arithmetic();
        eprintln!(
            "worst case, {} (POLL_BUDGET {}, STOP_POLL_BUDGET {}, every attempt retried to MaxAttempts):\n{arithmetic}",
            scenario.name, s.poll_budget, s.stop_poll_budget
        );
        assert_eq!(
            cost.polls, s.poll_budget,
            "{}: the main loop did not run to POLL_BUDGET:\n{arithmetic}",
            scenario.name
        );
        assert_eq!(
            cost.stop_turns, s.stop_poll_budget,
            "{}: the stop loop did not run to STOP_POLL_BUDGET:\n{arithmetic}",
            scenario.name
        );
        assert_eq!(
            state_type(&asl, &cost.end),
            "Fail",
            "{}: ended in '{}'",
            scenario.name,
            cost.end
        );
        for state in [
            "Stop Jobs",
            "Finalize Failed",
            "Mark Failed",
            "Announce Unfinalized Failure",
        ] {
            assert!(
                cost.visited.contains(&state.to_string()),
                "{}: the walk skips '{state}': {:?}",
                scenario.name,
                cost.visited
            );
        }
        assert!(
            cost.history_events < HISTORY_EVENT_LIMIT,
            "{}: {} history events, at or above Step Functions' limit of {HISTORY_EVENT_LIMIT}:\n{arithmetic}",
            scenario.name,
            cost.history_events
        );
        // The figure follows the definition: one more attempt allowed to each retrier adds an attempt to
        // every entry of its task.
        let mut more = asl.clone();
        for state in more["States"].as_object_mut().expect("States").values_mut() {
            for retrier in state
                .get_mut("Retry")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                retrier["MaxAttempts"] = json!(max_attempts(retrier) + 1);
            }
        }
        let expected: u64 = cost
            .states
            .iter()
            .map(|(name, c)| {
                let retriers = asl["States"][name]["Retry"].as_array().map_or(0, Vec::len) as u64;
                c.entries * c.events_per_attempt * retriers
            })
            .sum();
        let again = walk(&more, &s, scenario);
        assert_eq!(
            again.history_events - cost.history_events,
            expected,
            "{}: one more retry per retrier should add {expected} history events",
            scenario.name
        );
        worst = worst.max(cost.history_events);
    }
    eprintln!(
        "worst case: {worst} history events, {} below the limit of {HISTORY_EVENT_LIMIT}",
        HISTORY_EVENT_LIMIT - worst
    );
}

#[test]
fn the_longest_batch_stays_far_below_the_history_limit() {
    let asl = asl();
    let s = Settings::load();
    let longest = s.longest_batch_seconds(s.job_timeout_hours_max);
    let cost = walk(
        &asl,
        &s,
        &Scenario::new("the longest batch", Done::After(longest), longest),
    );
    let arithmetic = cost.arithmetic();
    eprintln!(
        "the longest batch ({} h job + {} h queue + {} h outage + {} min stop = {} s), default backoff, no retries:\n{arithmetic}\n  \
         {} polls of POLL_BUDGET {} (half: {}), {} at or past the half, {} waits lengthened by next_wait's spreading",
        s.job_timeout_hours_max,
        s.queue_timeout_hours,
        s.outage_budget_hours,
        s.stop_wait_minutes,
        longest,
        cost.polls,
        s.poll_budget,
        s.poll_budget / 2,
        cost.late_polls,
        cost.spread_waits
    );
    assert!(cost.polls > 1, "the walk never looped:\n{arithmetic}");
    assert_eq!(cost.end, "Batch Completed", "{arithmetic}");
    assert!(cost.elapsed_seconds >= longest, "{arithmetic}");
    assert!(
        cost.history_events < NORMAL_HISTORY_BUDGET,
        "the longest batch writes {} history events (budget {NORMAL_HISTORY_BUDGET}):\n{arithmetic}",
        cost.history_events
    );
    assert!(
        cost.polls < s.poll_budget,
        "the longest batch needs {} polls, POLL_BUDGET is {}: it would fail as overdue",
        cost.polls,
        s.poll_budget
    );
    assert_eq!(
        cost.spread_waits, 0,
        "next_wait's spreading lengthened {} waits of the longest batch with the default backoff",
        cost.spread_waits
    );
}

/// With every reliability setting at its maximum the backoff alone would run out of polls: the spreading
/// of `next_wait` stretches the second half of the budget over what is left.
#[test]
fn the_poll_budget_covers_the_longest_batch_any_settings_allow() {
    let asl = asl();
    let s = Settings::load();
    let max = |parameter| template_hours(parameter, "MaxValue");
    let longest = (max("QueueTimeoutHours") + max("JobTimeoutHours") + max("OutageBudgetHours")) * 3600
        + max("StopWaitMinutes") * 60;
    let cost = walk(&asl, &s, &Scenario::new("every maximum", Done::After(longest), longest));
    eprintln!(
        "the longest batch any settings allow ({longest} s), default backoff: {} polls of POLL_BUDGET {}, {} waits \
         lengthened by next_wait's spreading, {} history events, {} state transitions",
        cost.polls, s.poll_budget, cost.spread_waits, cost.history_events, cost.transitions
    );
    assert_eq!(cost.end, "Batch Completed", "{:?}", cost.visited);
    assert!(cost.elapsed_seconds >= longest && cost.polls <= s.poll_budget);
    assert!(cost.history_events < NORMAL_HISTORY_BUDGET);
}

#[test]
fn the_longest_default_batch_needs_fewer_than_half_the_poll_budget() {
    let asl = asl();
    let s = Settings::load();
    let longest = s.longest_batch_seconds(s.job_timeout_hours);
    let cost = walk(
        &asl,
        &s,
        &Scenario::new("the longest default batch", Done::After(longest), longest),
    );
    eprintln!(
        "the longest batch with every default ({} h job + {} h queue + {} h outage + {} min stop = {} s): \
         {} polls of POLL_BUDGET {} (half: {}), {} history events, {} state transitions",
        s.job_timeout_hours,
        s.queue_timeout_hours,
        s.outage_budget_hours,
        s.stop_wait_minutes,
        longest,
        cost.polls,
        s.poll_budget,
        s.poll_budget / 2,
        cost.history_events,
        cost.transitions
    );
    assert_eq!(cost.end, "Batch Completed");
    assert!(
        cost.polls < s.poll_budget / 2 && cost.late_polls == 0,
        "the longest default batch needs {} polls, not fewer than POLL_BUDGET / 2 = {}: next_wait's spreading \
         would start",
        cost.polls,
        s.poll_budget / 2
    );
}

#[test]
fn a_24_hour_batch_costs_at_most_150_transitions() {
    let asl = asl();
    let s = Settings::load();
    let longest = s.longest_batch_seconds(s.job_timeout_hours);
    for wakes in [true, false] {
        let scenario = Scenario {
            wakes,
            ..Scenario::new("a 24 h batch", Done::After(DAY_SECONDS), longest)
        };
        let cost = walk(&asl, &s, &scenario);
        let arithmetic = cost.arithmetic();
        let events = if wakes {
            "its job event delivered"
        } else {
            "every event lost"
        };
        eprintln!(
            "a 24 h batch, {events}, default backoff: {} s to the end, {} s late, {} woken waits\n{arithmetic}",
            cost.elapsed_seconds,
            cost.elapsed_seconds - DAY_SECONDS,
            cost.woken
        );
        assert!(cost.polls > 1, "the walk never looped:\n{arithmetic}");
        assert_eq!(cost.end, "Batch Completed", "{arithmetic}");
        assert!(
            cost.transitions <= TRANSITION_BUDGET,
            "a 24 h batch, {events}, costs {} state transitions in {} polls (budget {TRANSITION_BUDGET}):\n{arithmetic}",
            cost.transitions,
            cost.polls
        );
        if wakes {
            // The event ends the wait: the last check runs the moment the jobs end.
            assert_eq!(cost.woken, 1, "{arithmetic}");
            assert_eq!(cost.elapsed_seconds, DAY_SECONDS, "{arithmetic}");
        } else {
            // The backstop: the results are late by at most the longest wait.
            assert_eq!(cost.woken, 0, "{arithmetic}");
            assert!(cost.elapsed_seconds - DAY_SECONDS <= s.backoff.max, "{arithmetic}");
        }
    }
}

#[test]
fn a_168_hour_batch_writes_fewer_than_5000_history_events() {
    let asl = asl();
    let s = Settings::load();
    let week = 168 * 3600;
    let longest = s.longest_batch_seconds(s.job_timeout_hours_max);
    for wakes in [true, false] {
        let scenario = Scenario {
            wakes,
            ..Scenario::new("a 168 h batch", Done::After(week), longest)
        };
        let cost = walk(&asl, &s, &scenario);
        let arithmetic = cost.arithmetic();
        eprintln!("a 168 h batch, events delivered: {wakes}, default backoff:\n{arithmetic}");
        assert_eq!(cost.end, "Batch Completed", "{arithmetic}");
        assert!(
            cost.history_events < WEEK_HISTORY_BUDGET,
            "a 168 h batch writes {} history events (budget {WEEK_HISTORY_BUDGET}):\n{arithmetic}",
            cost.history_events
        );
    }
}

#[test]
fn every_state_is_on_one_of_the_walks() {
    let asl = asl();
    let s = Settings::load();
    let states = asl["States"].as_object().expect("States");
    let longest = s.longest_batch_seconds(s.job_timeout_hours);
    let done = Scenario::new("normal completion", Done::After(3600), longest);
    let never = Scenario::new("the failure path", Done::Never, longest);
    // (walk, its last state, states it must pass, states it must not)
    let walks = [
        (
            done.clone(),
            "Batch Completed",
            &["Announce Completion"][..],
            &["Stop Jobs"][..],
        ),
        (
            Scenario {
                name: "a failed batch (Batch Failed?)",
                finalize_status: "failed",
                ..done.clone()
            },
            "Batch Failed",
            &["Batch Failed?", "Announce Failure"][..],
            &["Stop Jobs", "Announce Completion"][..],
        ),
        (
            Scenario {
                name: "the completion event is not sent",
                events_fail: true,
                ..done.clone()
            },
            "Completion Not Announced",
            &["Announce Completion"][..],
            &["Stop Jobs"][..],
        ),
        (
            Scenario {
                name: "the wake function fails",
                park_fails: true,
                ..done.clone()
            },
            "Batch Completed",
            &["Wait Without Wake", "Announce Completion"][..],
            &["Stop Jobs"][..],
        ),
        (
            never.clone(),
            "Batch Failed",
            &[
                "Stop Jobs",
                "All Jobs Stopped?",
                "Wait For Stop",
                "Finalize Failed",
                "Announce Failure",
            ][..],
            &["Finalize", "Mark Failed"][..],
        ),
        (
            Scenario {
                name: "the unfinalized path",
                failure_mode_finalize_fails: true,
                ..never.clone()
            },
            "Batch Failed",
            &["Finalize Failed", "Mark Failed", "Announce Unfinalized Failure"][..],
            &["Announce Failure"][..],
        ),
    ];
    let mut visited = BTreeSet::new();
    for (scenario, end, through, not_through) in &walks {
        let cost = walk(&asl, &s, scenario);
        eprintln!("{}: {}", scenario.name, cost.visited.join(" → "));
        assert_eq!(cost.end, *end, "{}: {:?}", scenario.name, cost.visited);
        for state in *through {
            assert!(
                cost.visited.iter().any(|v| v == state),
                "{} skips '{state}': {:?}",
                scenario.name,
                cost.visited
            );
        }
        for state in *not_through {
            assert!(
                !cost.visited.iter().any(|v| v == state),
                "{} enters '{state}': {:?}",
                scenario.name,
                cost.visited
            );
        }
        visited.extend(cost.visited);
    }
    let missed: Vec<&String> = states.keys().filter(|name| !visited.contains(*name)).collect();
    assert!(missed.is_empty(), "no walk enters {missed:?}");

    // Every transition of the definition names a state.
    for (name, state) in states {
        let rules = state["Choices"].as_array().into_iter().flatten();
        let catchers = state["Catch"].as_array().into_iter().flatten();
        for target in [&state["Next"], &state["Default"]]
            .into_iter()
            .chain(rules.map(|r| &r["Next"]))
            .chain(catchers.map(|c| &c["Next"]))
            .filter_map(Value::as_str)
        {
            assert!(
                states.contains_key(target),
                "'{name}' leads to '{target}', which is no state"
            );
        }
    }
}

/// The budgets above hold for the deployed schedule only if the SAM template's poll parameters default to
/// `Backoff::default()`.
#[test]
fn the_template_polls_on_the_default_backoff() {
    let backoff = Backoff::default();
    assert_eq!(
        template_parameter("PollInitialSeconds", "Default"),
        backoff.initial as f64
    );
    assert_eq!(template_parameter("PollFactor", "Default"), backoff.factor);
    assert_eq!(template_parameter("PollMaxSeconds", "Default"), backoff.max as f64);
}

/// The walks' budgets and models against the code they stand for.
#[cfg(feature = "aws")]
mod against_the_code {
    use std::collections::BTreeMap;

    use batchdrop::pipeline::check::{self, CheckInput};
    use batchdrop::pipeline::{Config, Deps};
    use batchdrop::status::BatchDoc;
    use serde_json::json;

    use super::Settings;

    fn config(vars: &[(&str, &str)]) -> Result<Config, batchdrop::pipeline::ConfigError> {
        let mut env: BTreeMap<&str, &str> = [
            ("INPUT_BUCKET", "in"),
            ("OUTPUT_BUCKET", "out"),
            ("BEDROCK_ROLE_ARN", "arn:aws:iam::123456789012:role/bedrock"),
            ("DEFAULT_MODEL", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        ]
        .into_iter()
        .collect();
        env.extend(vars.iter().copied());
        Config::from_vars(|name| env.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn the_budgets_are_the_code_s() {
        let s = Settings::load();
        assert_eq!(s.poll_budget, check::POLL_BUDGET);
        assert_eq!(s.stop_poll_budget, check::STOP_POLL_BUDGET);
        // The park model wakes early only below half the poll budget.
        assert_eq!(batchdrop::pipeline::wake::WAKE_POLL_LIMIT, s.poll_budget / 2);
        assert_eq!(
            serde_json::to_value(CheckInput::new("b")).expect("input"),
            json!({"batch_id": "b", "polls": 0, "outage_since": null, "outage_polls": 0, "stop_polls": 0, "failure": null}),
            "the walk starts from another input than pipeline::submit"
        );
    }

    /// The template's defaults and maxima are the code's, and the longest batch is the code's.
    #[test]
    fn the_settings_are_the_code_s() {
        let s = Settings::load();
        let defaults = config(&[]).expect("config");
        assert_eq!(u64::from(defaults.job_timeout_hours), s.job_timeout_hours);
        assert_eq!(defaults.queue_timeout_seconds, s.queue_timeout_hours * 3600);
        assert_eq!(defaults.outage_budget_seconds, s.outage_budget_hours * 3600);
        assert_eq!(defaults.stop_wait_seconds, s.stop_wait_minutes * 60);
        assert_eq!(defaults.backoff, s.backoff);
        assert_eq!(
            defaults.longest_batch_seconds(),
            s.longest_batch_seconds(s.job_timeout_hours)
        );
        for (var, parameter) in [
            ("JOB_TIMEOUT_HOURS", "JobTimeoutHours"),
            ("QUEUE_TIMEOUT_HOURS", "QueueTimeoutHours"),
            ("OUTAGE_BUDGET_HOURS", "OutageBudgetHours"),
            ("STOP_WAIT_MINUTES", "StopWaitMinutes"),
        ] {
            let max = super::template_hours(parameter, "MaxValue");
            assert!(config(&[(var, &max.to_string())]).is_ok(), "{var}={max} refused");
            assert!(
                config(&[(var, &(max + 1).to_string())]).is_err(),
                "{var}={} accepted",
                max + 1
            );
        }
        let max_job = s.job_timeout_hours_max.to_string();
        let longest = config(&[("JOB_TIMEOUT_HOURS", &max_job)]).expect("config");
        assert_eq!(
            longest.longest_batch_seconds(),
            s.longest_batch_seconds(s.job_timeout_hours_max)
        );
    }

    /// The walk's `next_wait` is `check::next_wait`.
    #[test]
    fn the_model_of_next_wait_is_the_code_s() {
        let s = Settings::load();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let max_job = s.job_timeout_hours_max.to_string();
        let deps = Deps::new(&sdk, config(&[("JOB_TIMEOUT_HOURS", &max_job)]).expect("config"));
        let longest = deps.config.longest_batch_seconds();
        let created_at = 1_700_000_000;
        let doc = BatchDoc::new("b", "s3://in/inbox/f.jsonl", created_at, s.job_timeout_hours_max as u32);
        for polls in 0..=check::POLL_BUDGET + 2 {
            for elapsed in [0, 3600, longest / 2, longest - 7200, longest, longest + 3600] {
                assert_eq!(
                    super::next_wait(&s.backoff, s.poll_budget, longest, polls, elapsed),
                    check::next_wait(&deps, &doc, polls, created_at + elapsed),
                    "polls {polls}, {elapsed} s after the batch's creation"
                );
            }
        }
    }
}
