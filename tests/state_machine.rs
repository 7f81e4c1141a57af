//! The state machine's cost, computed from `statemachine/batch.asl.json` and the poll backoff
//! (`batchdrop::status::Backoff::default()`), so that a change to either is measured (DESIGN.md "Long jobs"):
//!
//! - one execution of a 168 h job writes fewer than 10,000 history events (Step Functions' hard limit is
//!   25,000 per execution; beyond it the execution fails);
//! - a 24 h job costs fewer than 300 state transitions (Standard workflows are billed per transition).
//!
//! The walk below runs the ASL itself: it starts at `StartAt`, reads the wait from the Wait state's
//! `SecondsPath`, lets the check-jobs task answer the way `pipeline::check` does (`wait_seconds` from
//! `Backoff::wait(polls)`, `all_done` once the job's duration has passed), evaluates the Choice rules on that
//! answer, and follows `Next`/`Default` until a terminal state. Nothing about the loop's shape is assumed.
//!
//! History events per state, as Step Functions writes them for a successful state without retries:
//! - execution: `ExecutionStarted` + `ExecutionSucceeded` (or `ExecutionFailed`) = 2
//! - Wait, Pass, Choice, Succeed: `…StateEntered` + `…StateExited` = 2
//! - Task on a Lambda function ARN: `TaskStateEntered`, `LambdaFunctionScheduled`, `LambdaFunctionStarted`,
//!   `LambdaFunctionSucceeded`, `TaskStateExited` = 5
//! - Task on a service integration (`arn:aws:states:::…`, here `events:putEvents`): `TaskStateEntered`,
//!   `TaskScheduled`, `TaskStarted`, `TaskSubmitted`, `TaskSucceeded`, `TaskStateExited` = 6 (request-response
//!   integrations may skip `TaskSubmitted`; counting it errs on the safe side)
//! - Fail: `FailStateEntered` (the execution's `ExecutionFailed` is counted with the execution)
//!
//! A retried task adds its scheduled/started/failed events once per attempt; retries are rare and bounded
//! (MaxAttempts), and the budgets below leave room for them. State transitions = states entered.

use std::path::Path;

use batchdrop::status::Backoff;
use serde_json::{json, Value};

/// The longest and the shortest Bedrock job timeout (SPEC §1.2 `timeoutDurationInHours`).
const LONGEST_JOB_HOURS: u64 = 168;
const SHORTEST_JOB_HOURS: u64 = 24;
const HISTORY_EVENT_BUDGET: u64 = 10_000;
const TRANSITION_BUDGET: u64 = 300;

fn asl() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("statemachine/batch.asl.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What one execution costs.
#[derive(Debug, Default)]
struct Cost {
    history_events: u64,
    transitions: u64,
    polls: u32,
    elapsed_seconds: u64,
    /// The states the walk entered, in order of first entry.
    visited: Vec<String>,
}

/// History events for entering and leaving one state (module docs).
fn events_of(name: &str, state: &Value) -> u64 {
    match state["Type"].as_str() {
        Some("Wait" | "Pass" | "Choice" | "Succeed") => 2,
        Some("Fail") => 1,
        Some("Task") if is_lambda_task(state) => 5,
        Some("Task") => 6,
        other => panic!("state '{name}': no event accounting for type {other:?}"),
    }
}

/// Lambda tasks name the function's ARN (a `${…FunctionArn}` placeholder before substitution).
fn is_lambda_task(state: &Value) -> bool {
    let resource = state["Resource"].as_str().unwrap_or_default();
    resource.ends_with("FunctionArn}") || resource.starts_with("arn:aws:lambda:")
}

fn is_check_jobs(state: &Value) -> bool {
    state["Resource"].as_str() == Some("${CheckJobsFunctionArn}")
}

/// A JSONPath of the simple `$.a.b` form.
fn lookup<'a>(data: &'a Value, path: &str) -> &'a Value {
    let rest = path
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("unsupported path {path}"));
    rest.split('.').fold(data, |v, key| &v[key])
}

/// The next state of a Choice for `data`: the first rule that matches, else `Default`.
fn choose(name: &str, state: &Value, data: &Value) -> String {
    for rule in state["Choices"].as_array().into_iter().flatten() {
        let variable = lookup(data, rule["Variable"].as_str().unwrap_or_default());
        let matched = if let Some(expected) = rule.get("BooleanEquals") {
            variable == expected
        } else if let Some(expected) = rule.get("NumericGreaterThanEquals") {
            variable.as_f64() >= expected.as_f64()
        } else {
            panic!("choice '{name}': the walk cannot evaluate {rule}")
        };
        if matched {
            return rule["Next"].as_str().expect("a choice rule has Next").to_string();
        }
    }
    state["Default"]
        .as_str()
        .unwrap_or_else(|| panic!("choice '{name}': nothing matched and there is no Default"))
        .to_string()
}

/// Runs one execution of a batch whose jobs take `job_seconds`, on the happy path.
fn walk(asl: &Value, backoff: &Backoff, job_seconds: u64) -> Cost {
    let states = &asl["States"];
    let mut cost = Cost {
        history_events: 2,
        ..Cost::default()
    };
    // The execution's input, as pipeline::submit starts it.
    let mut data = json!({"batch_id": "b", "wait_seconds": backoff.wait(0)});
    let mut name = asl["StartAt"].as_str().expect("StartAt").to_string();
    for _ in 0..1_000_000 {
        let state = &states[&name];
        assert!(state.is_object(), "no state named '{name}'");
        if !cost.visited.contains(&name) {
            cost.visited.push(name.clone());
        }
        cost.transitions += 1;
        cost.history_events += events_of(&name, state);
        let next = match state["Type"].as_str() {
            Some("Wait") => {
                let seconds = match state.get("SecondsPath").and_then(Value::as_str) {
                    Some(path) => lookup(&data, path).as_u64(),
                    None => state["Seconds"].as_u64(),
                };
                cost.elapsed_seconds += seconds.unwrap_or_else(|| panic!("wait '{name}': no seconds in {data}"));
                next_of(&name, state)
            }
            Some("Task") => {
                if is_check_jobs(state) {
                    // pipeline::check::handle: the wait before the next poll grows with the polls made.
                    data = json!({
                        "batch_id": data["batch_id"],
                        "all_done": cost.elapsed_seconds >= job_seconds,
                        "wait_seconds": backoff.wait(cost.polls),
                    });
                    cost.polls += 1;
                }
                next_of(&name, state)
            }
            Some("Pass") => next_of(&name, state),
            Some("Choice") => Some(choose(&name, state, &data)),
            Some("Succeed" | "Fail") => None,
            other => panic!("state '{name}': the walk does not know type {other:?}"),
        };
        match next {
            Some(next) => name = next,
            None => return cost,
        }
    }
    panic!("the execution did not end within a million states");
}

/// The state after `name`, or `None` when it ends the execution.
fn next_of(name: &str, state: &Value) -> Option<String> {
    match state["Next"].as_str() {
        Some(next) => Some(next.to_string()),
        None if state["End"] == true => None,
        None => panic!("state '{name}' has neither Next nor End"),
    }
}

#[test]
fn a_168_hour_job_stays_far_below_the_history_limit() {
    let asl = asl();
    let cost = walk(&asl, &Backoff::default(), LONGEST_JOB_HOURS * 3600);
    assert!(
        cost.polls > 1,
        "the walk never looped: is the poll loop still Wait → Check Jobs → Choice? {cost:?}"
    );
    assert!(
        cost.history_events < HISTORY_EVENT_BUDGET,
        "a {LONGEST_JOB_HOURS} h job writes {} history events in {} polls (budget {HISTORY_EVENT_BUDGET}): {:?}",
        cost.history_events,
        cost.polls,
        cost.visited
    );
    eprintln!(
        "{LONGEST_JOB_HOURS} h job: {} polls, {} history events, {} state transitions",
        cost.polls, cost.history_events, cost.transitions
    );
}

#[test]
fn a_24_hour_job_costs_a_few_hundred_transitions() {
    let asl = asl();
    let cost = walk(&asl, &Backoff::default(), SHORTEST_JOB_HOURS * 3600);
    assert!(cost.polls > 1, "the walk never looped: {cost:?}");
    assert!(
        cost.transitions < TRANSITION_BUDGET,
        "a {SHORTEST_JOB_HOURS} h job costs {} state transitions in {} polls (budget {TRANSITION_BUDGET}): {:?}",
        cost.transitions,
        cost.polls,
        cost.visited
    );
    eprintln!(
        "{SHORTEST_JOB_HOURS} h job: {} polls, {} history events, {} state transitions",
        cost.polls, cost.history_events, cost.transitions
    );
}

#[test]
fn the_walk_ends_with_the_completion_event() {
    let cost = walk(&asl(), &Backoff::default(), 600);
    let visited: Vec<&str> = cost.visited.iter().map(String::as_str).collect();
    for state in [
        "Wait For Jobs",
        "Check Jobs",
        "All Jobs Done?",
        "Finalize",
        "Announce Completion",
    ] {
        assert!(visited.contains(&state), "the happy path skips '{state}': {visited:?}");
    }
    assert!(cost.elapsed_seconds >= 600);
}

/// The budgets above hold for the deployed schedule only if the SAM template's poll parameters default to
/// `Backoff::default()`.
#[test]
fn the_template_polls_on_the_default_backoff() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/template.yaml");
    let template = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let default_of = |parameter: &str| -> f64 {
        let mut lines = template
            .lines()
            .skip_while(|l| l.trim_end() != format!("  {parameter}:"));
        assert!(
            lines.next().is_some(),
            "infra/template.yaml has no parameter {parameter}"
        );
        let line = lines
            .take_while(|l| l.starts_with("    "))
            .find_map(|l| l.trim().strip_prefix("Default:"))
            .unwrap_or_else(|| panic!("parameter {parameter} has no Default"));
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("parameter {parameter}: Default {line} is not a number"))
    };
    let backoff = Backoff::default();
    assert_eq!(default_of("PollInitialSeconds"), backoff.initial as f64);
    assert_eq!(default_of("PollFactor"), backoff.factor);
    assert_eq!(default_of("PollMaxSeconds"), backoff.max as f64);
}
