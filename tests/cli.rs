//! The `batchdrop` binary as a user runs it: exit codes, the files each command writes, and a round trip
//! translate → (Bedrock output, made here) → results that accounts for every line of a file.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

mod common;
use common::{batchdrop, jsonl, CLAUDE};

const NOVA: &str = "us.amazon.nova-lite-v1:0";

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/langbatch_bedrock.jsonl")
}

fn chat(id: &str, extra: Value) -> String {
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body}).to_string()
}

#[test]
fn validate_accepts_the_sample_file() {
    let out = batchdrop(&[
        "validate",
        sample().to_str().expect("utf-8 path"),
        "--model",
        CLAUDE,
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["lines"], 104);
    assert_eq!(report["accepted"], 104);
    assert_eq!(report["ignored_model_names"]["gpt-4o-mini"], 104);
    assert_eq!(report["accepted_by_model"][CLAUDE], 104);
}

#[test]
fn validate_names_line_custom_id_and_field_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    let lines = [
        chat("a", json!({})),
        String::new(),
        chat("b", json!({"temperature": 1.5})),
        "{not json".to_string(),
        chat("a", json!({})),
    ];
    fs::write(&file, lines.join("\n")).expect("write");
    let out = batchdrop(&["validate", file.to_str().expect("utf-8 path"), "--model", NOVA]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        printed,
        [
            "line 3, custom_id \"b\": body.temperature: 1.5 is above 1, the highest us.amazon.nova-lite-v1:0 \
             accepts; the temperature policy (TemperaturePolicy, --temperature) can clamp it to 1 or scale every \
             temperature instead",
            "line 4: not valid JSON: key must be a string at column 2",
            "line 5, custom_id \"a\": custom_id: is used twice: first on line 1",
        ]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 lines: 1 accepted, 3 rejected (1 blank lines skipped)"),
        "{stderr}"
    );
}

#[test]
fn the_temperature_policy_rejects_clamps_or_scales_and_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    let temperatures = [
        json!(0),
        json!(0.6),
        json!(1),
        json!(1.5),
        json!(2),
        json!(2.5),
        json!(-0.1),
    ];
    let lines: Vec<String> = temperatures
        .iter()
        .enumerate()
        .map(|(i, t)| chat(&format!("t{i}"), json!({"temperature": t})))
        .collect();
    fs::write(&file, lines.join("\n")).expect("write");
    // (policy, temperatures sent for the accepted lines in order, lines changed)
    for (policy, sent, changed) in [
        ("reject", vec![0.0, 0.6, 1.0], 0),
        ("clamp", vec![0.0, 0.6, 1.0, 1.0, 1.0], 2),
        ("scale", vec![0.0, 0.3, 0.5, 0.75, 1.0], 4),
    ] {
        let out_dir = dir.path().join(policy);
        let out = batchdrop(&[
            "translate",
            file.to_str().expect("utf-8 path"),
            "--model",
            NOVA,
            "--out",
            out_dir.to_str().expect("utf-8 path"),
            "--temperature",
            policy,
        ]);
        assert!(
            out.status.success(),
            "{policy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bodies = jsonl(&out_dir.join("bedrock/us.amazon.nova-lite-v1_3a0.jsonl"));
        let got: Vec<f64> = bodies
            .iter()
            .map(|r| {
                r["modelInput"]["inferenceConfig"]["temperature"]
                    .as_f64()
                    .expect("temperature")
            })
            .collect();
        assert_eq!(got, sent, "{policy}");
        let report: Value =
            serde_json::from_str(&fs::read_to_string(out_dir.join("report.json")).expect("report")).expect("JSON");
        assert_eq!(report["temperature_changed"], changed, "{policy}");
        assert_eq!(report["rejected"], (temperatures.len() - sent.len()) as u64, "{policy}");
        let errors = fs::read_to_string(out_dir.join("errors.jsonl")).expect("errors");
        assert!(
            errors.contains("above 2, the highest OpenAI accepts"),
            "{policy}: {errors}"
        );
        assert!(errors.contains("below 0"), "{policy}: {errors}");
    }
    let bad = batchdrop(&["validate", file.to_str().expect("utf-8 path"), "--temperature", "round"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("[possible values: reject, clamp, scale]"));
}

/// docs/models.md "Fields": a model's `max_temperature` is what the temperature policy rejects above, clamps to
/// and scales onto.
#[test]
fn the_temperature_policy_follows_the_models_maximum() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, models) = (dir.path().join("in.jsonl"), dir.path().join("models.json"));
    let entry = |id: &str, max: f64| {
        format!(
            r#"{{"id": "{id}", "name": "{id}", "family": "llama", "invocation": "Converse", "max_output_tokens": 8192,
            "accepts": ["system"], "temperature_with_top_p": true, "max_temperature": {max}, "prices": null}}"#
        )
    };
    let catalogue = format!(
        r#"{{"models": [{}, {}]}}"#,
        entry("google.gemma-3-27b", 0.8),
        entry("google.gemma-3-12b", 2.0)
    );
    fs::write(&models, catalogue).expect("write");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let mut lines = Vec::new();
    for (model, t) in [("27b", 0.5), ("27b", 1.0), ("27b", 2.0), ("12b", 1.5)] {
        let body = json!({"model": format!("google.gemma-3-{model}-it-v1:0"), "temperature": t});
        lines.push(chat(&format!("{model}-{t}"), body));
    }
    fs::write(&file, lines.join("\n")).expect("write");
    // (policy, temperatures sent to the 27b model, to the 12b model)
    for (policy, small, large) in [
        ("reject", vec![0.5], vec![1.5]),
        ("clamp", vec![0.5, 0.8, 0.8], vec![1.5]),
        ("scale", vec![0.2, 0.4, 0.8], vec![1.5]),
    ] {
        let out_dir = dir.path().join(policy);
        let out = batchdrop(&[
            "translate",
            &path(&file),
            "--model",
            NOVA,
            "--models",
            &path(&models),
            "--out",
            &path(&out_dir),
            "--temperature",
            policy,
        ]);
        assert!(
            out.status.success(),
            "{policy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sent = |name: &str| -> Vec<f64> {
            jsonl(&out_dir.join(format!("bedrock/google.gemma-3-{name}-it-v1_3a0.jsonl")))
                .iter()
                .map(|r| {
                    r["modelInput"]["inferenceConfig"]["temperature"]
                        .as_f64()
                        .expect("temperature")
                })
                .map(|t| (t * 1e9).round() / 1e9)
                .collect()
        };
        assert_eq!((sent("27b"), sent("12b")), (small, large), "{policy}");
    }
    let errors = fs::read_to_string(dir.path().join("reject/errors.jsonl")).expect("errors");
    assert!(
        errors.contains("1 is above 0.8, the highest google.gemma-3-27b-it-v1:0 accepts"),
        "{errors}"
    );
    fs::write(
        &models,
        format!(r#"{{"models": [{}]}}"#, entry("google.gemma-3-27b", 2.5)),
    )
    .expect("write");
    let out = batchdrop(&["validate", &path(&file), "--models", &path(&models)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_temperature is 2.5"));
}

#[test]
fn a_catalogue_file_can_add_a_provider() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, models) = (dir.path().join("in.jsonl"), dir.path().join("models.json"));
    fs::write(&file, chat("g", json!({"model": "google.gemma-3-27b-it-v1:0"}))).expect("write");
    let entry = r#"{"id": "google.gemma-3-27b", "name": "Gemma 3 27B", "family": "llama", "invocation": "Converse",
        "max_output_tokens": 8192, "accepts": ["system"], "temperature_with_top_p": true, "prices": null}"#;
    fs::write(&models, format!(r#"{{"models": [{entry}]}}"#)).expect("write");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let out = batchdrop(&["validate", &path(&file), "--models", &path(&models), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["accepted_by_model"]["google.gemma-3-27b-it-v1:0"], 1, "{report}");
    // Without the file the provider is not one of Bedrock's: like an OpenAI name, it is ignored and counted.
    let out = batchdrop(&["validate", &path(&file), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        report["ignored_model_names"]["google.gemma-3-27b-it-v1:0"], 1,
        "{report}"
    );
}

/// docs/formats.md "Embeddings", through the CLI: embeddings lines go to their own Bedrock file, one record per
/// text; and results, reading a map made with a catalogue file of one's own, needs the same file and says so.
#[test]
fn embeddings_lines_and_a_users_catalogue_through_translate_and_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, models) = (dir.path().join("in.jsonl"), dir.path().join("models.json"));
    let embed = json!({"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
        "body": {"input": ["one", "two", "three"], "dimensions": 512}});
    let lines = [
        chat("g", json!({"model": "google.gemma-3-27b-it-v1:0"})),
        embed.to_string(),
    ];
    fs::write(&file, lines.join("\n") + "\n").expect("write");
    let entry = r#"{"id": "google.gemma-3-27b", "name": "Gemma 3 27B", "family": "llama", "invocation": "Converse",
        "max_output_tokens": 8192, "accepts": ["system"], "temperature_with_top_p": true, "prices": null}"#;
    fs::write(&models, format!(r#"{{"models": [{entry}]}}"#)).expect("write");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let work = dir.path().join("work");
    let out = batchdrop(&[
        "translate",
        &path(&file),
        "--model",
        CLAUDE,
        "--models",
        &path(&models),
        "--out",
        &path(&work),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let titan = jsonl(&work.join("bedrock/amazon.titan-embed-text-v2_3a0.jsonl"));
    let texts: Vec<&Value> = titan.iter().map(|r| &r["modelInput"]["inputText"]).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert!(titan.iter().all(|r| r["modelInput"]["dimensions"] == 512));

    let (empty, results) = (dir.path().join("no-output"), dir.path().join("results"));
    fs::create_dir_all(&empty).expect("mkdir");
    let map = path(&work.join("record-map.jsonl"));
    let args = [
        "results",
        "--map",
        &map,
        "--out",
        &path(&results),
        "--job-status",
        "Expired",
        &path(&empty),
    ];
    // The map keeps each record's family, so results reads it without the catalogue file.
    let out = batchdrop(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let errors = jsonl(&results.join("errors.jsonl"));
    let codes: Vec<&Value> = errors.iter().map(|l| &l["error"]["code"]).collect();
    assert_eq!(codes, ["batch_expired", "batch_expired"]);

    // A map written before the family was kept names only the model: results needs the same file and says so.
    let old_map = dir.path().join("old-map.jsonl");
    let lines: Vec<String> = fs::read_to_string(&map)
        .expect("map")
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("map line");
            if let Some(o) = v.as_object_mut() {
                o.remove("family");
            }
            v.to_string()
        })
        .collect();
    fs::write(&old_map, lines.join("\n") + "\n").expect("write");
    let old = path(&old_map);
    let args = [&args[..2], &[old.as_str()], &args[3..]].concat();
    fs::remove_dir_all(&results).expect("rm");
    let out = batchdrop(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give results the same file"), "{stderr}");
    let out = batchdrop(&[&args[..], &["--models", &path(&models)]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(jsonl(&results.join("errors.jsonl")).len(), 2);
}

#[test]
fn bad_model_is_a_usage_error() {
    let out = batchdrop(&["validate", sample().to_str().expect("utf-8 path"), "--model", "gpt-4o"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Bedrock model"));
}

/// Translate a file with good and bad lines, answer some records as Bedrock would (shuffled, one error,
/// one never returned), and check that results put every input line in exactly one place, in order.
#[test]
fn round_trip_accounts_for_every_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("batch.jsonl");
    let mut lines = Vec::new();
    for i in 0..10 {
        lines.push(chat(&format!("r{i}"), json!({"max_tokens": 5})));
    }
    lines.insert(3, chat("bad-n", json!({"n": 3})));
    lines.insert(7, chat("nova", json!({"model": NOVA})));
    fs::write(&input, lines.join("\n") + "\n").expect("write");

    let work = dir.path().join("work");
    let out = batchdrop(&[
        "translate",
        input.to_str().expect("utf-8"),
        "--model",
        CLAUDE,
        "--out",
        work.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let claude_records = jsonl(&work.join("bedrock/us.anthropic.claude-3-5-haiku-20241022-v1_3a0.jsonl"));
    let nova_records = jsonl(&work.join("bedrock/us.amazon.nova-lite-v1_3a0.jsonl"));
    assert_eq!((claude_records.len(), nova_records.len()), (10, 1));
    assert_eq!(nova_records[0]["modelInput"]["schemaVersion"], "messages-v1");
    let rejected = jsonl(&work.join("errors.jsonl"));
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["custom_id"], "bad-n");
    assert_eq!(rejected[0]["response"]["body"]["error"]["code"], "unsupported_n");

    // Bedrock's side: answer in reverse order, fail one record, lose another.
    let bedrock = dir.path().join("bedrock-out");
    fs::create_dir_all(&bedrock).expect("mkdir");
    let mut answers = Vec::new();
    for rec in claude_records.iter().rev() {
        let id = rec["recordId"].as_str().expect("recordId");
        match id {
            "R0000000002" => continue,
            "R0000000005" => answers.push(json!({"recordId": id, "modelInput": rec["modelInput"],
                "error": {"errorCode": 429, "errorMessage": "Too many tokens"}})),
            _ => answers.push(json!({"recordId": id, "modelInput": rec["modelInput"], "modelOutput": {
                "id": "msg", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "max_tokens", "usage": {"input_tokens": 8, "output_tokens": 5}}})),
        }
    }
    let text: Vec<String> = answers.iter().map(Value::to_string).collect();
    fs::write(bedrock.join("batch.jsonl.out"), text.join("\n")).expect("write");
    fs::write(bedrock.join("manifest.json.out"), "{\"totalRecordCount\":10}").expect("write");
    let nova_answer = json!({"recordId": nova_records[0]["recordId"], "modelOutput": {
        "output": {"message": {"role": "assistant", "content": [{"text": "salut"}]}},
        "stopReason": "end_turn", "usage": {"inputTokens": 4, "outputTokens": 2, "totalTokens": 6}}});
    let nova_file = dir.path().join("nova.jsonl.out");
    fs::write(&nova_file, nova_answer.to_string()).expect("write");

    let results = dir.path().join("results");
    let out = batchdrop(&[
        "results",
        "--map",
        work.join("record-map.jsonl").to_str().expect("utf-8"),
        "--out",
        results.to_str().expect("utf-8"),
        "--job-status",
        "PartiallyCompleted",
        "--created",
        "1700000000",
        bedrock.to_str().expect("utf-8"),
        nova_file.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let output = jsonl(&results.join("output.jsonl"));
    let errors = jsonl(&results.join("errors.jsonl"));
    let ids = |v: &[Value]| {
        v.iter()
            .map(|l| l["custom_id"].as_str().unwrap_or("?").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&output), ["r0", "r2", "r3", "r5", "nova", "r6", "r7", "r8", "r9"]);
    assert_eq!(ids(&errors), ["r1", "bad-n", "r4"]);
    assert_eq!(errors[0]["error"]["code"], "batch_expired");
    assert_eq!(errors[0]["response"], Value::Null);
    assert_eq!(errors[2]["response"]["status_code"], 429);
    assert_eq!(errors[2]["response"]["body"]["error"]["message"], "Too many tokens");
    let first = &output[0]["response"]["body"];
    assert_eq!(first["object"], "chat.completion");
    assert_eq!(first["created"], 1_700_000_000);
    assert_eq!(first["model"], CLAUDE);
    assert_eq!(first["choices"][0]["finish_reason"], "length");
    assert_eq!(output[4]["response"]["body"]["model"], NOVA);
    assert_eq!(
        output[4]["response"]["body"]["choices"][0]["message"]["content"],
        "salut"
    );
    let mut all_ids: Vec<&str> = output
        .iter()
        .chain(&errors)
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    all_ids.sort_unstable();
    all_ids.dedup();
    assert_eq!(all_ids.len(), 12, "batch_req ids are unique");
    assert!(all_ids.iter().all(|id| id.starts_with("batch_req_")));
}

/// The binary with `input` on its standard input.
fn batchdrop_reading(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_batchdrop"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the batchdrop binary runs");
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(input.as_bytes()).expect("write to stdin");
    drop(stdin);
    child.wait_with_output().expect("it ends")
}

#[test]
fn a_dash_reads_the_file_from_standard_input() {
    let lines = [chat("a", json!({})), chat("b", json!({"n": 2})), chat("a", json!({}))].join("\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    fs::write(&file, &lines).expect("write");
    let from_file = batchdrop(&["validate", file.to_str().expect("utf-8"), "--model", CLAUDE]);
    let from_stdin = batchdrop_reading(&["validate", "-", "--model", CLAUDE], &lines);
    assert_eq!(from_stdin.status.code(), Some(1));
    assert_eq!(from_stdin.stdout, from_file.stdout);
    assert_eq!(
        String::from_utf8_lossy(&from_stdin.stdout).lines().count(),
        2,
        "line 2 and line 3 rejected"
    );

    let work = dir.path().join("work");
    let out = batchdrop_reading(
        &[
            "translate",
            "-",
            "--model",
            CLAUDE,
            "--out",
            work.to_str().expect("utf-8"),
        ],
        &lines,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let map = jsonl(&work.join("record-map.jsonl"));
    assert_eq!(map.len(), 5, "a header, a line each, and the end");
    assert_eq!(map[0]["batch_id"], "stdin");
    assert_eq!(jsonl(&work.join("errors.jsonl")).len(), 2);
    let mut left: Vec<String> = fs::read_dir(&work)
        .expect("the out folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["bedrock", "errors.jsonl", "record-map.jsonl", "report.json"],
        "no copy of stdin is left"
    );
}

#[test]
fn results_look_into_job_folders_and_refuse_to_find_no_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("batch.jsonl");
    fs::write(&input, [chat("x", json!({})), chat("y", json!({}))].join("\n")).expect("write");
    let work = dir.path().join("work");
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();
    let out = batchdrop(&["translate", &path(&input), "--model", CLAUDE, "--out", &path(&work)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = jsonl(&work.join("bedrock/us.anthropic.claude-3-5-haiku-20241022-v1_3a0.jsonl"));

    // Bedrock's layout: <output prefix>/<job id>/<input file>.jsonl.out, beside the job's manifest.
    let prefix = dir.path().join("bedrock-out");
    let job = prefix.join("job-0a1b2c").join("nested");
    fs::create_dir_all(&job).expect("mkdir");
    let answers: Vec<String> = records
        .iter()
        .map(|rec| {
            json!({"recordId": rec["recordId"], "modelInput": rec["modelInput"], "modelOutput": {
                "id": "msg", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}}})
            .to_string()
        })
        .collect();
    fs::write(job.join("batch.jsonl.out"), answers.join("\n")).expect("write");
    fs::write(job.join("manifest.json.out"), "{}").expect("write");
    let map = path(&work.join("record-map.jsonl"));
    let results = dir.path().join("results");
    let out = batchdrop(&["results", "--map", &map, "--out", &path(&results), &path(&prefix)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(jsonl(&results.join("output.jsonl")).len(), 2);

    // No output at all for a job said to have completed: an error, and nothing written.
    let empty = dir.path().join("empty");
    fs::create_dir_all(empty.join("job-9")).expect("mkdir");
    let nowhere = dir.path().join("nowhere");
    let out = batchdrop(&["results", "--map", &map, "--out", &path(&nowhere), &path(&empty)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Bedrock output file (*.jsonl.out) in"));
    assert!(!nowhere.exists());
    // A job that failed before writing any: every line gets its error.
    let out = batchdrop(&[
        "results",
        "--map",
        &map,
        "--out",
        &path(&nowhere),
        "--job-status",
        "failed",
        &path(&empty),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let errors = jsonl(&nowhere.join("errors.jsonl"));
    assert_eq!(errors.len(), 2);
    assert!(
        errors.iter().all(|e| e["error"]["code"] == "batch_failed"),
        "{errors:?}"
    );
}

#[test]
fn help_gives_examples_exit_codes_and_the_job_statuses() {
    for command in ["validate", "translate", "results"] {
        let help = batchdrop(&[command, "--help"]);
        assert!(help.status.success());
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(
            text.contains("Examples:") && text.contains("Exit codes:"),
            "{command}: {text}"
        );
        // Every argument and option says what it is: in the short help, a text after its name.
        let short = batchdrop(&[command, "-h"]);
        let short = String::from_utf8_lossy(&short.stdout).into_owned();
        assert!(short.matches("\n  ").count() >= 4, "{command}: {short}");
        let lines: Vec<&str> = short.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let indent = line.len() - line.trim_start().len();
            if indent == 0 || !matches!(line.trim_start().chars().next(), Some('-' | '<' | '[')) {
                continue;
            }
            // Its help follows the name on the same line, or on the next, indented further.
            let same_line = line.trim_start().find("  ").map(|at| line.trim_start()[at..].trim());
            let next_line = lines
                .get(i + 1)
                .filter(|next| next.len() - next.trim_start().len() > indent)
                .map(|next| next.trim());
            let said = same_line.or(next_line).unwrap_or("");
            assert!(!said.is_empty(), "{command}: no help for `{}`", line.trim());
        }
    }
    let help = String::from_utf8_lossy(&batchdrop(&["results", "--help"]).stdout).into_owned();
    assert!(
        help.contains("[possible values: Completed, PartiallyCompleted, Expired, Stopped, Failed]"),
        "{help}"
    );
    let out = batchdrop(&["results", "--map", "m", "--out", "o", "--job-status", "Done", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn plan_cuts_jobs_as_the_pipeline_does_and_prices_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    // 120 Claude lines of 100 max_tokens, 30 Nova lines (under Nova's minimum), one rejected line.
    let mut lines: Vec<String> = (0..120)
        .map(|i| chat(&format!("c{i}"), json!({"max_tokens": 100})))
        .collect();
    lines.extend((0..30).map(|i| chat(&format!("n{i}"), json!({"model": NOVA, "max_tokens": 10}))));
    lines.push(chat("bad", json!({"n": 2})));
    fs::write(&file, lines.join("\n")).expect("write");
    let out = batchdrop(&["plan", file.to_str().expect("utf-8"), "--model", CLAUDE, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["report"]["rejected"], 1);
    let plan = v["plan"].as_array().expect("a plan per model");
    assert_eq!(plan.len(), 2);
    let (claude, nova) = (&plan[0], &plan[1]);
    assert_eq!(
        (claude["model"].as_str(), claude["requests"].as_u64()),
        (Some(CLAUDE), Some(120))
    );
    assert_eq!(claude["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(claude["jobs"][0]["records"], 120);
    assert_eq!(claude["output_tokens_at_most"], 12_000);
    assert_eq!(claude["cannot_run"], Value::Null);

    // The records the plan counts are the very bytes translate writes.
    let work = dir.path().join("work");
    let t = batchdrop(&[
        "translate",
        file.to_str().expect("utf-8"),
        "--model",
        CLAUDE,
        "--out",
        work.to_str().expect("utf-8"),
    ]);
    assert!(t.status.success());
    let written = fs::metadata(work.join("bedrock/us.anthropic.claude-3-5-haiku-20241022-v1_3a0.jsonl"))
        .expect("file")
        .len();
    assert_eq!(claude["bytes"].as_u64(), Some(written));
    assert_eq!(claude["input_tokens_estimate"].as_u64(), Some(written.div_ceil(4)));
    let cost = &claude["cost"];
    let (batch, on_demand) = (
        cost["batch_dollars"].as_f64().expect("f64"),
        cost["on_demand_dollars"].as_f64().expect("f64"),
    );
    assert!(on_demand > 0.0 && (batch - on_demand / 2.0).abs() < 1e-12, "{cost}");
    assert_eq!(cost["batch_is_half_on_demand"], true);
    assert!(
        cost["prices_as_of"].as_str().is_some_and(|s| s.contains("20")),
        "{cost}"
    );

    assert_eq!(nova["requests"], 30);
    assert_eq!(nova["jobs"], json!([]));
    assert!(
        nova["cannot_run"]
            .as_str()
            .is_some_and(|w| w.contains("at least 100 records")),
        "{nova}"
    );
    assert_eq!(nova["output_tokens_at_most"], 300);

    // validate prints the same plan after its report, and the rejected line.
    let out = batchdrop(&["validate", file.to_str().expect("utf-8"), "--model", CLAUDE]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("plan: what a stack would do with this file"), "{said}");
    assert!(
        said.contains(&format!("  {CLAUDE}: 120 requests, 120 records")),
        "{said}"
    );
    assert!(said.contains("    1 Bedrock job: 120 records"), "{said}");
    assert!(
        said.contains("not a batch job: us.amazon.nova-lite-v1:0 needs at least 100 records"),
        "{said}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("custom_id \"bad\""));
}

#[test]
fn plan_cuts_a_large_group_into_even_jobs_and_a_line_of_texts_stays_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    // 50,001 one-record lines: one over a job's 50,000, so two jobs of 25,000 and 25,001.
    let line = |i: usize| {
        json!({"custom_id": format!("e{i}"), "method": "POST", "url": "/v1/embeddings", "body": {"input": "t"}})
            .to_string()
    };
    let text: Vec<String> = (0..50_001).map(line).collect();
    fs::write(&file, text.join("\n")).expect("write");
    let out = batchdrop(&[
        "plan",
        file.to_str().expect("utf-8"),
        "--model",
        "amazon.titan-embed-text-v2:0",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let jobs: Vec<u64> = v["plan"][0]["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["records"].as_u64().expect("records"))
        .collect();
    assert_eq!(jobs, [25_001, 25_000]);
    assert_eq!(v["plan"][0]["output_tokens_at_most"], 0);
}

#[test]
fn json_gives_one_object_on_stdout_for_every_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("batch.jsonl");
    fs::write(
        &input,
        [chat("ok", json!({})), chat("bad", json!({"n": 3})), "{oops".to_string()].join("\n"),
    )
    .expect("write");
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();

    let out = batchdrop(&["validate", &path(&input), "--model", CLAUDE, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["rejections"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["rejections"][0]["line"], 2);
    assert_eq!(v["rejections"][0]["custom_id"], "bad");
    assert_eq!(v["rejections"][0]["code"], "unsupported_n");
    assert_eq!(v["rejections"][0]["param"], "body.n");
    assert_eq!(v["rejections"][1]["line"], 3);
    assert_eq!(v["rejections"][1]["custom_id"], Value::Null);
    assert_eq!((v["lines"].as_u64(), v["rejected"].as_u64()), (Some(3), Some(2)));
    assert_eq!(v["plan"][0]["requests"], 1);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "nothing else is printed"
    );

    let work = dir.path().join("work");
    let out = batchdrop(&[
        "translate",
        &path(&input),
        "--model",
        CLAUDE,
        "--out",
        &path(&work),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["report"]["accepted"], 1);
    let written = v["written"]["bedrock"][0].as_str().expect("a Bedrock file");
    let records = jsonl(Path::new(written));
    assert_eq!(records.len(), 1);
    assert_eq!(
        v["written"]["record_map"].as_str(),
        Some(path(&work.join("record-map.jsonl")).as_str())
    );

    let bedrock = dir.path().join("bedrock-out");
    fs::create_dir_all(&bedrock).expect("mkdir");
    let answer = json!({"recordId": records[0]["recordId"], "modelInput": records[0]["modelInput"], "modelOutput": {
        "id": "msg", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "fine"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}}});
    fs::write(bedrock.join("batch.jsonl.out"), answer.to_string()).expect("write");
    let results = dir.path().join("results");
    let map = path(&work.join("record-map.jsonl"));
    let out = batchdrop(&[
        "results",
        "--map",
        &map,
        "--out",
        &path(&results),
        &path(&bedrock),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (v["report"]["succeeded"].as_u64(), v["report"]["rejected"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(v["bedrock_output"]["files"], 1);
    assert_eq!(
        v["written"]["errors"].as_str(),
        Some(path(&results.join("errors.jsonl")).as_str())
    );
}

#[test]
fn plan_leaves_out_a_batch_model_no_line_runs_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    // Every line names its own model: the batch model gets none and is not planned.
    let lines: Vec<String> = (0..3).map(|i| chat(&format!("n{i}"), json!({"model": NOVA}))).collect();
    fs::write(&file, lines.join("\n")).expect("write");
    let out = batchdrop(&["plan", file.to_str().expect("utf-8"), "--model", CLAUDE, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let models: Vec<&str> = v["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .filter_map(|g| g["model"].as_str())
        .collect();
    assert_eq!(models, [NOVA]);
}
