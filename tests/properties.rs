//! Property tests for the promises that must hold for any input:
//! - no input, however broken, makes translation or results conversion panic;
//! - every non-blank input line is accounted for exactly once: one record-map entry, and in the end one
//!   line of output.jsonl or errors.jsonl, whatever Bedrock returns (in any order, with errors, duplicates,
//!   strays or records missing), and no custom_id is lost or duplicated on the way.

use std::collections::BTreeMap;
use std::io::Cursor;

use batchdrop::fingerprint::{self, Fingerprint};
use batchdrop::policy::Policy;
use batchdrop::results::{self, Collector, JobStatus, JoinOptions};
use batchdrop::spill::{Sorter, FAN_IN};
use batchdrop::translate::{translate, Translator};
use proptest::prelude::*;
use serde_json::{json, Value};

mod common;
use common::{claude, Collected};

/// Lines that are valid, or broken in one of many ways, or blank; custom_ids drawn from a small pool
/// so that duplicates happen.
fn line_strategy() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        (0u8..40).prop_map(|n| json!(format!("id-{n}"))),
        Just(json!(null)),
        Just(json!("")),
        Just(json!(7)),
    ];
    let body = prop_oneof![
        4 => (any::<bool>(), 0.0f64..1.5, "[a-zé漢😀\"\\\\\n ]{0,12}").prop_map(|(sys, t, text)| {
            let mut messages = vec![];
            if sys {
                messages.push(json!({"role": "system", "content": "be brief"}));
            }
            messages.push(json!({"role": "user", "content": text}));
            json!({"model": "gpt-4o-mini", "messages": messages, "temperature": t, "seed": 1})
        }),
        1 => Just(json!({"messages": []})),
        1 => Just(json!({"messages": [{"role": "wizard", "content": "hi"}]})),
        1 => Just(json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]})),
        1 => Just(json!({"messages": [{"role": "user", "content": "hi"}], "n": 2})),
        1 => Just(json!("not a body")),
        // A model the catalogue runs through Converse.
        2 => "[a-z ]{1,12}".prop_map(|text| json!({"model": "us.meta.llama3-3-70b-instruct-v1:0",
            "messages": [{"role": "user", "content": text}], "max_tokens": 20})),
    ]
    .prop_map(|body| ("/v1/chat/completions", body));
    let embeddings = prop_oneof![
        3 => proptest::collection::vec("[a-zé漢 ]{1,10}", 1..5).prop_map(|texts| json!({"input": texts, "dimensions": 256})),
        2 => ("[a-z]{1,10}", any::<bool>()).prop_map(|(text, b64)| json!({"input": text, "dimensions": 256,
            "encoding_format": if b64 { "base64" } else { "float" }})),
        1 => Just(json!({"input": [[1, 2, 3]]})),
        1 => Just(json!({"input": ["ok", ""], "dimensions": 256})),
    ]
    .prop_map(|body| ("/v1/embeddings", body));
    let line = (id, prop_oneof![3 => body, 1 => embeddings])
        .prop_map(|(id, (url, body))| json!({"custom_id": id, "method": "POST", "url": url, "body": body}).to_string());
    prop_oneof![
        8 => line,
        1 => Just(String::new()),
        1 => Just("   ".to_string()),
        1 => "[ -~]{0,30}",
        1 => Just("[1,2]".to_string()),
    ]
}

/// What Bedrock does with one record.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Answered,
    Failed,
    Lost,
    Twice,
}

fn fate_strategy() -> impl Strategy<Value = Fate> {
    prop_oneof![5 => Just(Fate::Answered), 1 => Just(Fate::Failed), 1 => Just(Fate::Lost), 1 => Just(Fate::Twice)]
}

fn bedrock_output(record: &[u8], fate: Fate) -> Vec<String> {
    let rec: Value = serde_json::from_slice(record).expect("records are JSON");
    let id = rec["recordId"].clone();
    let input = &rec["modelInput"];
    // The answer in the shape of the record's model: a Titan vector, a Converse response, or Claude's.
    let output = if input.get("inputText").is_some() {
        let n = input["dimensions"].as_u64().expect("dimensions") as usize;
        json!({"embedding": vec![0.0625; n], "inputTextTokenCount": 2})
    } else if input.get("anthropic_version").is_none() {
        json!({"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}})
    } else {
        json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}})
    };
    let answer = json!({"recordId": id, "modelInput": input, "modelOutput": output});
    let failure =
        json!({"recordId": id, "modelInput": rec["modelInput"], "error": {"errorCode": 400, "errorMessage": "bad"}});
    match fate {
        Fate::Answered => vec![answer.to_string()],
        Fate::Failed => vec![failure.to_string()],
        Fate::Lost => vec![],
        Fate::Twice => vec![answer.to_string(), failure.to_string()],
    }
}

fn custom_ids_of(lines: &[u8]) -> Vec<Option<String>> {
    lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_slice(l).expect("output lines are JSON");
            v["custom_id"].as_str().map(str::to_string)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut t = Translator::new(Policy::default(), Some(claude()));
        let mut out = Vec::new();
        let _ = t.line(1, &bytes, Some(&mut out));
        let mut c = Collector::new(64, None);
        c.add("fuzz", Cursor::new(&bytes)).expect("in-memory reads do not fail");
    }

    #[test]
    fn arbitrary_json_never_panics(v in arbitrary_json()) {
        let line = v.to_string();
        let mut t = Translator::new(Policy::default(), Some(claude()));
        let mut out = Vec::new();
        let _ = t.line(1, line.as_bytes(), Some(&mut out));
        let wrapped = json!({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": v}).to_string();
        let _ = t.line(2, wrapped.as_bytes(), Some(&mut out));
        let as_output = json!({"recordId": "R0000000001", "modelOutput": v}).to_string();
        let map = "{\"batchdrop_record_map\":3,\"batch_id\":\"b\"}\n{\"line\":1,\"custom_id\":\"x\",\"recordId\":\"R0000000001\",\"model\":\"us.amazon.nova-lite-v1:0\"}\n{\"batchdrop_record_map_end\":{\"entries\":1,\"records\":1}}\n";
        let mut c = Collector::new(1 << 20, None);
        c.add("fuzz", Cursor::new(as_output.as_bytes())).expect("in-memory reads do not fail");
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let report = results::join(Cursor::new(map), c, &JoinOptions { created: 0, status: &|_, _| JobStatus::Completed }, &mut o, &mut e)
            .expect("a valid map joins");
        prop_assert_eq!(custom_ids_of(&o).len() + custom_ids_of(&e).len(), 1);
        prop_assert_eq!(report.lines, 1);
    }

    #[test]
    fn every_line_ends_in_exactly_one_place(
        lines in proptest::collection::vec(line_strategy(), 0..60),
        fates in proptest::collection::vec(fate_strategy(), 60),
        order_seed in any::<u64>(),
        budget in prop_oneof![Just(64usize), Just(1 << 20)],
    ) {
        let input = lines.join("\n");
        let non_blank: Vec<u64> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, _)| i as u64 + 1)
            .collect();

        let mut t = Translator::new(Policy::default(), Some(claude()));
        let mut sink = Collected::default();
        let report = translate(Cursor::new(input.as_bytes()), &mut t, "batch", &mut sink).expect("in memory");
        prop_assert_eq!(report.lines, non_blank.len() as u64);
        prop_assert_eq!(report.accepted + report.rejected, report.lines);
        prop_assert_eq!(sink.records.len() as u64, report.records);
        prop_assert!(report.records >= report.accepted);
        prop_assert_eq!(sink.rejected.len() as u64, report.rejected);

        // The record map: a header, exactly one entry per non-blank line, in order, and the trailer.
        let mut entries: Vec<Value> = sink.map.split(|b| *b == b'\n').skip(1).filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("map lines are JSON")).collect();
        let end = entries.pop().expect("the trailer");
        prop_assert_eq!(&end["batchdrop_record_map_end"], &json!({"entries": report.lines, "records": report.records}));
        let entry_lines: Vec<u64> = entries.iter().map(|e| e["line"].as_u64().expect("line")).collect();
        prop_assert_eq!(&entry_lines, &non_blank);

        // Each accepted entry's fingerprint is that of the modelInputs written (an embeddings line's records
        // together, in order), read back from their bytes; its records are the next ones, numbered in order.
        let mut records = sink.records.iter();
        let mut next = 1u64;
        for entry in entries.iter().filter(|e| e["recordId"].is_string()) {
            let parts = entry["embedding"]["parts"].as_u64().unwrap_or(1);
            let first = format!("R{next:010}");
            prop_assert_eq!(entry["recordId"].as_str(), Some(first.as_str()));
            let mut prints = Vec::new();
            for _ in 0..parts {
                let (_, record) = records.next().expect("a record for each part");
                let record: serde_json::Map<String, Value> = serde_json::from_slice(record).expect("a record");
                let id = format!("R{next:010}");
                prop_assert_eq!(record["recordId"].as_str(), Some(id.as_str()));
                let body = serde_json::to_vec(&record["modelInput"]).expect("serializes");
                prints.push(Fingerprint::of_json(&body).expect("JSON"));
                next += 1;
            }
            let expected = fingerprint::combined(prints).to_hex();
            prop_assert_eq!(entry["fp"].as_str(), Some(expected.as_str()));
        }
        prop_assert!(records.next().is_none());

        // Bedrock answers, fails, loses or repeats records, in a shuffled order.
        let mut out_lines: Vec<String> = sink.records.iter().zip(fates.iter().cycle())
            .flat_map(|((_, rec), fate)| bedrock_output(rec, *fate)).collect();
        out_lines.push("{\"recordId\":\"R0000999999\",\"modelOutput\":{}}".to_string());
        out_lines.push("garbage".to_string());
        let mut state = order_seed | 1;
        for i in (1..out_lines.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            out_lines.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut collector = Collector::new(budget, None);
        collector.add("out", Cursor::new(out_lines.join("\n"))).expect("in memory");
        let (mut output, mut errors) = (Vec::new(), Vec::new());
        let results = results::join(Cursor::new(&sink.map), collector,
            &JoinOptions { created: 1, status: &|_, _| JobStatus::PartiallyCompleted }, &mut output, &mut errors)
            .expect("join");

        let out_ids = custom_ids_of(&output);
        let err_ids = custom_ids_of(&errors);
        prop_assert_eq!(out_ids.len() + err_ids.len(), non_blank.len());
        prop_assert_eq!(results.lines, non_blank.len() as u64);
        prop_assert_eq!(results.succeeded + results.error_lines(), results.lines);
        // Each map entry's custom_id comes back exactly as often as it went in.
        let mut expected: BTreeMap<Option<String>, i64> = BTreeMap::new();
        for e in &entries {
            *expected.entry(e["custom_id"].as_str().map(str::to_string)).or_default() += 1;
        }
        for id in out_ids.into_iter().chain(err_ids) {
            *expected.entry(id).or_default() -= 1;
        }
        prop_assert!(expected.values().all(|n| *n == 0), "custom_ids lost or duplicated: {:?}", expected);
        prop_assert_eq!(results.unexpected_results, 1);
    }
}

/// How a Bedrock output line is damaged on its way back.
#[derive(Debug, Clone, Copy)]
enum Damage {
    None,
    /// Cut at this fraction (per mille) of its length.
    Cut(u16),
    /// This byte (per mille of the length) replaced.
    Byte(u16, u8),
    Bom,
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => Just(Damage::None),
        1 => (0u16..1000).prop_map(Damage::Cut),
        1 => (0u16..1000, prop_oneof![Just(0u8), Just(0xff), Just(b'"'), Just(b'}'), any::<u8>()]).prop_map(|(at, b)| Damage::Byte(at, b)),
        1 => Just(Damage::Bom),
    ]
}

fn damaged(line: &str, damage: Damage) -> Vec<u8> {
    let mut bytes = line.as_bytes().to_vec();
    let at = |per_mille: u16| bytes.len() * usize::from(per_mille) / 1000;
    match damage {
        Damage::None => {}
        Damage::Cut(p) => bytes.truncate(at(p)),
        Damage::Byte(p, b) => {
            let i = at(p);
            bytes[i] = b;
        }
        Damage::Bom => bytes.splice(0..0, b"\xEF\xBB\xBF".iter().copied()).for_each(drop),
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the budget, the sorter gives back a stable sort of what was pushed, with never more
    /// than FAN_IN runs on disk.
    #[test]
    fn the_sorter_is_a_stable_sort(
        entries in proptest::collection::vec((0u128..24, proptest::collection::vec(any::<u8>(), 0..24)), 0..300),
        budget in prop_oneof![Just(0usize), Just(100), Just(1 << 20)],
    ) {
        let mut sorter = Sorter::new(budget, None);
        for (key, payload) in &entries {
            sorter.push(*key, payload).expect("push");
            prop_assert!(sorter.runs_on_disk() <= FAN_IN);
        }
        let mut sorted = sorter.finish().expect("finish");
        let mut got = Vec::new();
        while let Some((key, payload)) = sorted.next().expect("next") {
            got.push((key, payload.to_vec()));
        }
        let mut want = entries.clone();
        want.sort_by_key(|e| e.0);
        prop_assert_eq!(got, want);
    }

    /// Bedrock output lines cut, with a byte replaced or a byte order mark in front: every line still
    /// ends in exactly one place, and only a line that still echoes its request answers it.
    #[test]
    fn damaged_output_keeps_every_line_in_one_place(
        n in 1usize..30,
        damages in proptest::collection::vec(damage_strategy(), 30),
    ) {
        let input: String = (0..n)
            .map(|i| format!("{}\n", json!({"custom_id": format!("c{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"messages": [{"role": "user", "content": format!("question {i}")}]}})))
            .collect();
        let mut t = Translator::new(Policy::default(), Some(claude()));
        let mut sink = Collected::default();
        translate(Cursor::new(input.as_bytes()), &mut t, "batch", &mut sink).expect("in memory");
        let mut file = Vec::new();
        // Lines that still read as their record, echoing the request sent or nothing: only they may be
        // answers.
        let mut answerable = 0;
        for (i, ((_, rec), damage)) in sink.records.iter().zip(&damages).enumerate() {
            let line = bedrock_output(rec, Fate::Answered).concat();
            let bytes = damaged(&line, *damage);
            // A byte order mark is the file's own on its first line.
            let read = if i == 0 { bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes) } else { &bytes[..] };
            let sent: Value = serde_json::from_slice(rec).expect("records are JSON");
            let still = serde_json::from_slice::<Value>(read).ok().filter(Value::is_object);
            // A line that lost its echo is joined unverified; one with an echo must echo what was sent.
            let echoes = |v: &Value| v.get("modelInput").is_none_or(|m| *m == sent["modelInput"]);
            answerable += u64::from(still.is_some_and(|v| v["recordId"] == sent["recordId"] && echoes(&v)));
            file.extend_from_slice(&bytes);
            file.push(b'\n');
        }
        let mut collector = Collector::new(256, None);
        collector.add("out", Cursor::new(file)).expect("in memory");
        let (mut output, mut errors) = (Vec::new(), Vec::new());
        let report = results::join(Cursor::new(&sink.map), collector,
            &JoinOptions { created: 1, status: &|_, _| JobStatus::Completed }, &mut output, &mut errors)
            .expect("join");
        let mut ids: Vec<Option<String>> = custom_ids_of(&output);
        ids.extend(custom_ids_of(&errors));
        ids.sort();
        let mut want: Vec<Option<String>> = (0..n).map(|i| Some(format!("c{i}"))).collect();
        want.sort();
        prop_assert_eq!(ids, want);
        prop_assert!(report.succeeded <= answerable, "{:?}", report);
        prop_assert_eq!(report.succeeded + report.error_lines(), n as u64);
    }
}

/// Any JSON value, with any text (control characters, quotes, backslashes, every plane) and any number
/// serde_json can hold: what fingerprint::write must write exactly as serde_json does.
fn any_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![any::<String>(), "[\\x00-\\x1f\"\\\\a\u{e9}\u{1F600}]{0,24}"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        text.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The bytes and the fingerprint translate writes for a body are serde_json's bytes and their
    /// fingerprint, whatever the value.
    #[test]
    fn bodies_are_written_as_serde_json_writes_them(v in any_json()) {
        let mut ours = b"{".to_vec();
        let fp = fingerprint::write(&v, &mut ours).expect("any Value can be written");
        let theirs = serde_json::to_vec(&v).expect("serde_json writes any Value");
        prop_assert_eq!(String::from_utf8_lossy(&ours[1..]), String::from_utf8_lossy(&theirs));
        prop_assert_eq!(Some(fp), Fingerprint::of_json(&theirs));
        prop_assert_eq!(Some(fp), fingerprint::of_value(&v));
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-3.0f64..3.0).prop_map(|f| json!(f)),
        prop_oneof![
            Just("user".to_string()),
            Just("assistant".to_string()),
            Just("tool".to_string()),
            Just("text".to_string()),
            Just("image_url".to_string()),
            Just("data:image/png;base64,AAAA".to_string()),
            "[a-z{}\"]{0,8}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("messages".to_string()),
                    Just("role".to_string()),
                    Just("content".to_string()),
                    Just("tool_calls".to_string()),
                    Just("tool_call_id".to_string()),
                    Just("function".to_string()),
                    Just("arguments".to_string()),
                    Just("tools".to_string()),
                    Just("tool_choice".to_string()),
                    Just("type".to_string()),
                    Just("stop".to_string()),
                    Just("output".to_string()),
                    Just("message".to_string()),
                    Just("stop_reason".to_string()),
                    Just("stopReason".to_string()),
                    Just("usage".to_string()),
                    "[a-z_]{1,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
