//! The `batchdrop` CLI under hostile input, translate and validate side: each test is the reproduction of a
//! defect that lost or corrupted data with exit status 0, or that printed a misleading message.

use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

mod common;
use common::{batchdrop, jsonl, CLAUDE};

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn chat(id: Value, extra: Value) -> String {
    let mut body = json!({"messages": [{"role": "user", "content": "hello"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    json!({"custom_id": id, "method": "POST", "url": "/v1/chat/completions", "body": body}).to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `validate FILE --model CLAUDE`: the printed rejections, one per line.
fn rejections(lines: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    fs::write(&file, lines.join("\n")).expect("write");
    let out = batchdrop(&["validate", path(&file), "--model", CLAUDE]);
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn model_ids_that_sanitize_alike_get_their_own_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    let (a, b) = ("anthropic.claude-v2:0", "anthropic.claude-v2-0");
    let lines: Vec<String> = (0..6)
        .map(|i| chat(json!(format!("r{i}")), json!({"model": if i % 2 == 0 { a } else { b }})))
        .collect();
    fs::write(&file, lines.join("\n")).expect("write");
    let out_dir = dir.path().join("out");
    // Neither id is a real model: a catalogue file of the test's own describes them.
    let models = dir.path().join("models.json");
    let entry = r#"{"id": "anthropic.claude-v2", "name": "Claude 2", "family": "claude", "invocation": "InvokeModel",
        "max_output_tokens": 4096, "accepts": ["system"], "temperature_with_top_p": true, "prices": null}"#;
    fs::write(&models, format!(r#"{{"models": [{entry}]}}"#)).expect("write");
    let out = batchdrop(&[
        "translate",
        path(&file),
        "--model",
        a,
        "--out",
        path(&out_dir),
        "--models",
        path(&models),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut files: Vec<String> = fs::read_dir(out_dir.join("bedrock"))
        .expect("bedrock folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["anthropic.claude-v2-0.jsonl", "anthropic.claude-v2_3a0.jsonl"]);
    let records: usize = files
        .iter()
        .map(|f| jsonl(&out_dir.join("bedrock").join(f)).len())
        .sum();
    assert_eq!(
        records, 6,
        "every record in one file, none truncated by another model's"
    );
}

#[test]
fn a_failed_translate_leaves_earlier_outputs_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    fs::write(&file, chat(json!("a"), json!({}))).expect("write");
    let out_dir = dir.path().join("out");
    let first = batchdrop(&["translate", path(&file), "--model", CLAUDE, "--out", path(&out_dir)]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before: Vec<(String, Vec<u8>)> = ["record-map.jsonl", "errors.jsonl", "report.json"]
        .iter()
        .map(|f| (f.to_string(), fs::read(out_dir.join(f)).expect("output")))
        .collect();

    for missing in [dir.path().join("missing.jsonl"), dir.path().to_path_buf()] {
        let out = batchdrop(&["translate", path(&missing), "--model", CLAUDE, "--out", path(&out_dir)]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains(path(&missing)),
            "names the file: {}",
            stderr(&out)
        );
        for (name, bytes) in &before {
            assert_eq!(&fs::read(out_dir.join(name)).expect("output"), bytes, "{name} changed");
        }
    }
    let leftovers: Vec<_> = fs::read_dir(&out_dir)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging folders are removed: {leftovers:?}");
}

#[test]
fn a_second_translate_replaces_the_bedrock_folder_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    let out_dir = dir.path().join("out");
    fs::write(&file, chat(json!("a"), json!({"model": "us.amazon.nova-lite-v1:0"}))).expect("write");
    assert!(
        batchdrop(&["translate", path(&file), "--model", CLAUDE, "--out", path(&out_dir)])
            .status
            .success()
    );
    fs::write(&file, chat(json!("a"), json!({}))).expect("write");
    assert!(
        batchdrop(&["translate", path(&file), "--model", CLAUDE, "--out", path(&out_dir)])
            .status
            .success()
    );
    let files: Vec<_> = fs::read_dir(out_dir.join("bedrock")).expect("bedrock").collect();
    assert_eq!(
        files.len(),
        1,
        "the Nova file of the first run is gone: it would disagree with the map"
    );
}

#[test]
fn an_input_among_the_outputs_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().join("out");
    fs::create_dir_all(&out_dir).expect("out");
    let file = out_dir.join("errors.jsonl");
    let text = chat(json!("a"), json!({}));
    fs::write(&file, &text).expect("write");
    let out = batchdrop(&["translate", path(&file), "--model", CLAUDE, "--out", path(&out_dir)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("choose another --out"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&file).expect("input"),
        text,
        "the input is untouched"
    );
}

#[test]
fn non_string_custom_ids_are_echoed_short_and_findable() {
    let huge = json!({"k": "x".repeat(1_000_000)});
    let lines = [
        chat(json!(12345), json!({})),
        chat(huge, json!({})),
        chat(json!(true), json!({})),
        chat(json!("y".repeat(600)), json!({})),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    fs::write(&file, lines.join("\n")).expect("write");
    let out_dir = dir.path().join("out");
    let out = batchdrop(&["translate", path(&file), "--model", CLAUDE, "--out", path(&out_dir)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let errors = jsonl(&out_dir.join("errors.jsonl"));
    let ids: Vec<&Value> = errors.iter().map(|e| &e["custom_id"]).collect();
    assert_eq!(ids[0], "12345");
    assert_eq!(ids[1], &Value::Null);
    assert_eq!(ids[2], "true");
    let long = ids[3].as_str().expect("a cut string");
    assert!(
        long.starts_with("yyyy") && long.ends_with('…') && long.len() <= 512 + 3,
        "{long}"
    );
    let messages: Vec<&str> = errors
        .iter()
        .map(|e| e["response"]["body"]["error"]["message"].as_str().expect("message"))
        .collect();
    assert!(
        messages[0].ends_with("custom_id: must be a string, not the number 12345"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].ends_with("custom_id: must be a string, not an object"),
        "{}",
        messages[1]
    );
    let total: usize = fs::metadata(out_dir.join("errors.jsonl")).expect("errors").len() as usize;
    assert!(total < 10_000, "the 1 MB object is echoed nowhere: {total} bytes");
    let map = fs::metadata(out_dir.join("record-map.jsonl")).expect("map").len();
    assert!(map < 10_000, "nor in the record map: {map} bytes");
}

#[test]
fn invalid_unicode_custom_ids_get_messages_that_say_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    let mut bytes = chat(json!("ok"), json!({})).into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(b"{\"custom_id\":\"a\xff\",\"method\":\"POST\"}\n");
    bytes.extend_from_slice(
        br#"{"custom_id":"\ud800","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}]}}"#,
    );
    fs::write(&file, bytes).expect("write");
    let out = batchdrop(&["validate", path(&file), "--model", CLAUDE]);
    assert_eq!(out.status.code(), Some(1));
    let printed: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        printed,
        [
            "line 2: the line is not valid UTF-8: byte 0xff at column 16 (JSON text must be UTF-8)",
            "line 3, custom_id \"\\\\ud800\": custom_id: is not valid Unicode: it holds a \\u escape of half a surrogate pair (such as \\ud800) without its other half",
        ]
    );
}

#[test]
fn max_tokens_is_one_rule_for_lines_and_the_default() {
    let out = batchdrop(&["validate", "whatever.jsonl", "--default-max-tokens", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must be at least 1"), "{}", stderr(&out));

    let printed = rejections(&[
        chat(json!("zero"), json!({"max_tokens": 0})),
        chat(json!("huge"), json!({"max_tokens": 1_000_000_000_000u64})),
        r#"{"custom_id":"inf","method":"POST","url":"/v1/chat/completions","body":{"max_tokens":1e400,"messages":[]}}"#
            .to_string(),
        chat(json!("ok"), json!({"max_completion_tokens": 8192})),
    ]);
    assert_eq!(printed.len(), 3, "{printed:?}");
    assert_eq!(
        printed[0],
        "line 1, custom_id \"zero\": body.max_tokens: must be at least 1"
    );
    assert!(
        printed[1].starts_with("line 2, custom_id \"huge\": body.max_tokens: 1000000000000 is above the 8192"),
        "{}",
        printed[1]
    );
    assert!(
        printed[2].starts_with("line 3, custom_id \"inf\": body.max_tokens: number out of range"),
        "{}",
        printed[2]
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    fs::write(&file, chat(json!("d"), json!({}))).expect("write");
    let out = batchdrop(&[
        "validate",
        path(&file),
        "--model",
        CLAUDE,
        "--default-max-tokens",
        "9000",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("is not set, and the default max_tokens (DefaultMaxTokens, --default-max-tokens) 9000 is above"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn base64_images_are_checked_strictly() {
    let image = |data: &str| {
        // A model that takes images (Claude 3.5 Haiku on Bedrock does not).
        json!({"model": "us.anthropic.claude-3-haiku-20240307-v1:0", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}}
        ]}]})
    };
    let lines: Vec<String> = ["====", "A===", "=AAA", "AA=="]
        .iter()
        .enumerate()
        .map(|(i, d)| chat(json!(format!("i{i}")), image(d)))
        .collect();
    let printed = rejections(&lines);
    assert_eq!(printed.len(), 3, "only AA== is base64: {printed:?}");
    assert!(
        printed
            .iter()
            .all(|p| p.ends_with("the image payload is not valid base64")),
        "{printed:?}"
    );
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let printed = rejections(&[
        chat(
            json!("\u{1b}]0;owned\u{7}"),
            json!({"messages": [{"role": "\u{1b}[2J", "content": "x"}]}),
        ),
        json!({"custom_id": "u", "method": "POST", "url": "/v1/\u{9b}31m", "body": {}}).to_string(),
        chat(
            json!("t"),
            json!({"tools": [{"type": "function", "function": {"name": "a\u{202e}b"}}]}),
        ),
    ]);
    assert_eq!(printed.len(), 3, "{printed:?}");
    for p in &printed {
        assert!(!p.chars().any(|c| c.is_control() || c == '\u{202e}'), "{p:?}");
    }
    assert!(printed[0].contains("\\u{1b}[2J"), "{}", printed[0]);
}

#[test]
fn io_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = batchdrop(&["validate", path(dir.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}: is a folder, not a file", path(dir.path()))),
        "{}",
        stderr(&out)
    );

    let file = dir.path().join("in.jsonl");
    fs::write(&file, chat(json!("a"), json!({}))).expect("write");
    let blocker = dir.path().join("not-a-folder");
    fs::write(&blocker, "").expect("write");
    let out = batchdrop(&["translate", path(&file), "--model", CLAUDE, "--out", path(&blocker)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(path(&blocker)), "{}", stderr(&out));
}

#[test]
fn report_tables_are_bounded() {
    let lines: Vec<String> = (0..300)
        .map(|i| {
            chat(
                json!(format!("r{i}")),
                json!({"model": format!("gpt-{i}"), format!("x_{i}"): 1}),
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.jsonl");
    fs::write(&file, lines.join("\n")).expect("write");
    let out = batchdrop(&["validate", path(&file), "--model", CLAUDE, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    for table in ["ignored_model_names", "dropped_fields"] {
        let t = report[table].as_object().expect("a table");
        assert_eq!(t.len(), 51, "{table}: 50 names and the others");
        assert_eq!(t["(others)"], 250);
    }
    assert!(stderr(&out).lines().count() < 120, "the summary stays short");
}

#[test]
fn model_ids_bedrock_would_refuse_are_refused_here() {
    for bad in [
        "anthropic.claude_3_haiku",
        "anthropic.claude-3-Haiku-20240307-v1:0",
        "anthropic.claude-sonnet-4-5@20250929",
    ] {
        let out = batchdrop(&["validate", "whatever.jsonl", "--model", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains("--model"), "{bad}: {}", stderr(&out));
    }
}

/// Translates `lines` into `dir/work` and returns the Bedrock output a Claude job would write for them.
fn translate_and_answer(dir: &Path, lines: &[String]) -> Vec<String> {
    let file = dir.join("in.jsonl");
    fs::write(&file, lines.join("\n")).expect("write");
    let work = dir.join("work");
    let out = batchdrop(&["translate", path(&file), "--model", CLAUDE, "--out", path(&work)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = jsonl(&work.join("bedrock/us.anthropic.claude-3-5-haiku-20241022-v1_3a0.jsonl"));
    records
        .iter()
        .map(|r| {
            json!({"recordId": r["recordId"], "modelInput": r["modelInput"], "modelOutput": {
                "type": "message", "role": "assistant", "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}}})
            .to_string()
        })
        .collect()
}

#[test]
fn results_refuse_the_bedrock_output_of_another_batch() {
    let (a, b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
    translate_and_answer(a.path(), &[chat(json!("x"), json!({})), chat(json!("y"), json!({}))]);
    let other = translate_and_answer(
        b.path(),
        &[
            chat(json!("x"), json!({"messages": [{"role": "user", "content": "bye"}]})),
            chat(json!("y"), json!({"messages": [{"role": "user", "content": "ciao"}]})),
        ],
    );
    let output = b.path().join("job.jsonl.out");
    fs::write(&output, other.join("\n")).expect("write");
    let results = a.path().join("results");
    let map = a.path().join("work/record-map.jsonl");
    let out = batchdrop(&["results", "--map", path(&map), "--out", path(&results), path(&output)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 of the Bedrock results echo a different request"),
        "{}",
        stderr(&out)
    );
    assert!(!results.join("output.jsonl").exists(), "nothing is written");
}

#[test]
fn results_say_which_bedrock_line_was_unreadable_and_exit_1() {
    let dir = tempfile::tempdir().expect("dir");
    let mut answers = translate_and_answer(dir.path(), &[chat(json!("x"), json!({})), chat(json!("y"), json!({}))]);
    let cut = answers[1].len() / 2;
    answers[1].truncate(cut);
    let output = dir.path().join("job.jsonl.out");
    fs::write(&output, answers.join("\n")).expect("write");
    let results = dir.path().join("results");
    let map = dir.path().join("work/record-map.jsonl");
    let out = batchdrop(&["results", "--map", path(&map), "--out", path(&results), path(&output)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("job.jsonl.out:2"), "{}", stderr(&out));
    assert_eq!(jsonl(&results.join("output.jsonl")).len(), 1);
    let errors = jsonl(&results.join("errors.jsonl"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["custom_id"], "y");
    assert_eq!(errors[0]["response"]["body"]["error"]["code"], "unreadable_result");
}

mod library {
    use std::io::Cursor;

    use batchdrop::policy::{Policy, MAX_MODELS_PER_BATCH};
    use batchdrop::translate::{scan_duplicates, translate, Translator, SCAN_BUDGET};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::chat;
    use crate::common::{claude, Collected};

    /// Translates `input`, with the duplicate scan (at `budget`) or without it (ids remembered live).
    fn run(input: &str, policy: Policy, scan: Option<usize>) -> Collected {
        let mut t = Translator::new(policy, Some(claude()));
        if let Some(budget) = scan {
            let dir = tempfile::tempdir().expect("temp dir");
            scan_duplicates(
                Cursor::new(input.as_bytes().to_vec()),
                &mut t,
                Some(dir.path().to_path_buf()),
                budget,
            )
            .expect("scan");
        }
        let mut sink = Collected::default();
        translate(Cursor::new(input), &mut t, "b", &mut sink).expect("in memory");
        sink
    }

    #[test]
    fn a_line_over_the_limit_is_rejected_unread_and_accounted_for() {
        let policy = Policy {
            max_line_bytes: 1_000,
            ..Policy::default()
        };
        let long = chat(
            json!("long"),
            json!({"messages": [{"role": "user", "content": "x".repeat(5_000)}]}),
        );
        let input = [chat(json!("a"), json!({})), long, chat(json!("b"), json!({}))].join("\n");
        let sink = run(&input, policy, Some(SCAN_BUDGET));
        assert_eq!(sink.records.len(), 2);
        assert_eq!(sink.rejected.len(), 1);
        let e = &sink.rejected[0];
        assert_eq!((e.line, e.rejection.reason.as_str()), (2, "line_too_long"));
        assert!(e.to_string().contains("at most 1000 bytes"), "{e}");
        let map: Vec<Value> = sink
            .map
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("JSON"))
            .collect();
        assert_eq!(map.len(), 5, "header, three entries, trailer");
        assert_eq!(map[2]["rejected"]["code"], "line_too_long");
    }

    #[test]
    fn a_batch_uses_at_most_the_model_limit() {
        let lines: Vec<String> = (0..MAX_MODELS_PER_BATCH + 5)
            .map(|i| {
                chat(
                    json!(format!("r{i}")),
                    // Distinct ids, none the batch model, that the catalogue's Claude 3.5 Haiku entry covers.
                    json!({"model": format!("us.anthropic.claude-3-5-haiku-20241022-v{}:0", i + 100)}),
                )
            })
            .collect();
        let sink = run(&lines.join("\n"), Policy::default(), None);
        // The batch model is the first group, so 99 more ids fit.
        assert_eq!(sink.records.len(), MAX_MODELS_PER_BATCH - 1);
        assert_eq!(sink.rejected.len(), 6);
        assert!(
            sink.rejected[0].to_string().contains("at most 100 Bedrock models"),
            "{}",
            sink.rejected[0]
        );
    }

    fn hostile_line() -> impl Strategy<Value = String> {
        let id = prop_oneof![
            (0u8..12).prop_map(|n| json!(format!("id-{n}"))),
            Just(json!(7)),
            Just(json!("")),
            Just(json!(null)),
        ];
        (id, 0u8..6).prop_map(|(id, kind)| match kind {
            0 | 1 => chat(id, json!({})),
            2 => chat(id, json!({"temperature": "hot"})),
            3 => format!("{{\"custom_id\":{id},\"body\":{{\"max_tokens\":1e400}}}}"),
            4 => format!("{{\"custom_id\":{id},\"body\":"),
            _ => String::new(),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The bounded scan (here with a budget so small that every few ids spill a run, and runs merge
        /// in levels) finds exactly the duplicates that remembering every id would.
        #[test]
        fn the_bounded_scan_finds_what_memory_would(
            lines in proptest::collection::vec(hostile_line(), 0..120),
            budget in prop_oneof![Just(1usize), Just(100), Just(SCAN_BUDGET)],
        ) {
            let input = lines.join("\n");
            let live = run(&input, Policy::default(), None);
            let scanned = run(&input, Policy::default(), Some(budget));
            prop_assert_eq!(String::from_utf8_lossy(&live.map), String::from_utf8_lossy(&scanned.map));
            prop_assert_eq!(live.records, scanned.records);
        }
    }
}
