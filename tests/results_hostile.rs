//! The results step under hostile or broken input: Bedrock output of another batch, output that is not
//! the model's shape, lines that came back but cannot be read, record maps cut or edited, counters
//! meant to wrap, and more spill files than a process may open. Each test drives `translate`,
//! `results::Collector` and `results::join` as the CLI and the finalize step do.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use batchdrop::counts::{MAX_KEYS, OTHERS};
use batchdrop::error::LineError;
use batchdrop::model::{self, BedrockModel, ModelName};
use batchdrop::policy::Policy;
use batchdrop::results::{self, CollectReport, Collector, JobStatus, JoinOptions, ResultsReport};
use batchdrop::translate::{self, Sink, Translator};
use serde_json::{json, Value};

const CLAUDE: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
const NOVA: &str = "us.amazon.nova-lite-v1:0";

/// What `translate` hands out, in memory.
#[derive(Default)]
struct Memory {
    /// Each Bedrock input record without its closing `}` and newline, so an output line can be made
    /// from it.
    records: Vec<String>,
    map: Vec<u8>,
}

impl Sink for Memory {
    fn record(&mut self, _group: usize, _model: &BedrockModel, record: &[u8], _continues_line: bool) -> io::Result<()> {
        let text = std::str::from_utf8(record).expect("records are UTF-8");
        let open = text.trim_end().strip_suffix('}').expect("a record is an object");
        self.records.push(open.to_string());
        Ok(())
    }
    fn map_entry(&mut self, entry: &[u8]) -> io::Result<()> {
        self.map.extend_from_slice(entry);
        Ok(())
    }
    fn rejected(&mut self, _error_line: &[u8], _error: &LineError) -> io::Result<()> {
        Ok(())
    }
}

fn bedrock_model(id: &str) -> BedrockModel {
    match model::classify(id) {
        ModelName::Supported(m) => m,
        other => panic!("{other:?}"),
    }
}

/// A batch of one line per question, for `model`.
fn translate(model: &str, questions: &[String]) -> Memory {
    let input: String = questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let body = json!({"messages": [{"role": "user", "content": q}], "max_tokens": 50});
            format!(
                "{}\n",
                json!({"custom_id": format!("c{i}"), "method": "POST", "url": "/v1/chat/completions", "body": body})
            )
        })
        .collect();
    let mut translator = Translator::new(Policy::default(), Some(bedrock_model(model)));
    let mut sink = Memory::default();
    translate::translate(input.as_bytes(), &mut translator, "hostile", &mut sink).expect("in memory");
    assert_eq!(sink.records.len(), questions.len());
    sink
}

fn questions(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("Question {tag}{i}")).collect()
}

fn claude_output(input_tokens: u64, output_tokens: u64, stop: &str) -> String {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "ok"}],
           "stop_reason": stop, "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})
    .to_string()
}

/// Bedrock's output line for `record` (recordId first, the modelInput echoed as sent), with `rest`
/// (`"modelOutput":…` or `"error":…`) after it.
fn output_line(record: &str, rest: &str) -> String {
    format!("{record},{rest}}}\n")
}

fn answered(record: &str) -> String {
    output_line(record, &format!("\"modelOutput\":{}", claude_output(3, 1, "end_turn")))
}

/// A Bedrock output file answering every record of `batch`.
fn all_answered(batch: &Memory) -> Vec<u8> {
    batch
        .records
        .iter()
        .map(|r| answered(r))
        .collect::<String>()
        .into_bytes()
}

struct Joined {
    output: Vec<Value>,
    errors: Vec<Value>,
    report: ResultsReport,
    collected: CollectReport,
}

fn parse(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("results are JSON"))
        .collect()
}

/// Joins `files` read as streams (every result copied) and as files on disk (long results read again
/// from them at the join), and checks that both ways write the same bytes and counts.
fn try_join(map: &[u8], files: &[Vec<u8>], budget: usize) -> io::Result<Joined> {
    let mut streamed = Collector::new(budget, None);
    for (i, file) in files.iter().enumerate() {
        streamed.add(&format!("part-{i}.jsonl.out"), &file[..])?;
    }
    let on_disk = OnDisk::new(files)?;
    let mut held = Collector::new(budget, None);
    for (i, path) in on_disk.paths.iter().enumerate() {
        held.add_file(&format!("part-{i}.jsonl.out"), File::open(path)?)?;
    }
    let from_stream = join_collected(map, streamed);
    let from_files = join_collected(map, held);
    match (&from_stream, &from_files) {
        (Ok((a, a_out, a_err)), Ok((b, b_out, b_err))) => {
            assert_eq!(a.report, b.report, "the same counts from streams and from files");
            assert_eq!(a.collected, b.collected);
            assert!(
                a_out == b_out && a_err == b_err,
                "the same bytes from streams and from files"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!(
            "streams and files disagree: {:?} / {:?}",
            from_stream.is_ok(),
            from_files.is_ok()
        ),
    }
    from_files.map(|(joined, _, _)| joined)
}

/// Files in a folder of their own, removed when dropped.
struct OnDisk {
    dir: PathBuf,
    paths: Vec<PathBuf>,
}

impl OnDisk {
    fn new(files: &[Vec<u8>]) -> io::Result<OnDisk> {
        static TURN: AtomicU64 = AtomicU64::new(0);
        let turn = TURN.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("batchdrop-hostile-{}-{turn}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut paths = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let path = dir.join(format!("part-{i}.jsonl.out"));
            std::fs::write(&path, file)?;
            paths.push(path);
        }
        Ok(OnDisk { dir, paths })
    }
}

impl Drop for OnDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn join_collected(map: &[u8], collector: Collector) -> io::Result<(Joined, Vec<u8>, Vec<u8>)> {
    let collected = collector.report().clone();
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    let status = |_: Option<usize>, _: &str| JobStatus::Completed;
    let options = JoinOptions {
        created: 1,
        status: &status,
    };
    let report = results::join(map, collector, &options, &mut output, &mut errors)?;
    assert_eq!(
        report.succeeded + report.error_lines(),
        report.lines,
        "every entry in exactly one place: {report:?}"
    );
    let joined = Joined {
        output: parse(&output),
        errors: parse(&errors),
        report,
        collected,
    };
    Ok((joined, output, errors))
}

fn join(map: &[u8], files: &[Vec<u8>]) -> Joined {
    try_join(map, files, 1 << 20).expect("the join succeeds")
}

fn error_of(line: &Value) -> (&Value, &Value, &str) {
    let error = &line["response"]["body"]["error"];
    (
        &line["response"]["status_code"],
        &error["code"],
        error["message"].as_str().expect("a message"),
    )
}

mod belongs_to_its_request {
    use super::*;

    #[test]
    fn a_map_of_another_batch_joins_nothing() {
        let a = translate(CLAUDE, &questions("A", 5));
        let b = translate(CLAUDE, &questions("B", 5));
        // Batch B's output: the same recordIds, other requests; one an error.
        let mut b_output: Vec<String> = b.records.iter().skip(1).map(|r| answered(r)).collect();
        b_output.push(output_line(
            &b.records[0],
            r#""error":{"errorCode":429,"errorMessage":"Too many requests"}"#,
        ));
        let file = b_output.concat().into_bytes();

        let joined = join(&a.map, std::slice::from_ref(&file));
        assert_eq!(
            (joined.report.succeeded, joined.report.mismatched, joined.report.failed),
            (0, 5, 5)
        );
        assert_eq!(joined.errors.len(), 5);
        for (i, line) in joined.errors.iter().enumerate() {
            let (status, code, message) = error_of(line);
            assert_eq!((status, code), (&json!(500), &json!("mismatched_result")), "{line}");
            let expected = format!(
                "Bedrock's result for recordId R{:010} echoes a different request than line {} (custom_id \"c{i}\") sent",
                i + 1,
                i + 1
            );
            assert!(message.starts_with(&expected), "{message}");
            assert!(message.contains("probably from different batches"), "{message}");
        }

        // The same output with its own map joins whole.
        let own = join(&b.map, &[file]);
        assert_eq!(
            (own.report.succeeded, own.report.failed, own.report.mismatched),
            (4, 1, 0)
        );
        assert_eq!(own.report.unverified, 0);
    }

    #[test]
    fn an_echo_spelled_otherwise_still_matches() {
        let batch = translate(CLAUDE, &["héllo \"quoted\"".to_string()]);
        let record: Value = serde_json::from_str(&format!("{}}}", batch.records[0])).expect("JSON");
        // Bedrock re-serializes what it echoes: other key order, other spacing, other escapes.
        let pretty = serde_json::to_string_pretty(&record["modelInput"])
            .expect("serializes")
            .replace('é', "\\u00e9")
            .replace("50", "5.0e1");
        let line = format!(
            "{{\"modelOutput\":{},\"modelInput\":{pretty},\"recordId\":\"R0000000001\"}}\n",
            claude_output(3, 1, "end_turn")
        )
        .replace('\n', " ");
        let joined = join(&batch.map, &[line.into_bytes()]);
        assert_eq!(
            (
                joined.report.succeeded,
                joined.report.mismatched,
                joined.report.unverified
            ),
            (1, 0, 0)
        );
    }

    #[test]
    fn results_without_proof_are_joined_and_counted() {
        let batch = translate(CLAUDE, &questions("Q", 2));
        let no_echo = format!(
            "{{\"recordId\":\"R0000000001\",\"modelOutput\":{}}}\n",
            claude_output(3, 1, "end_turn")
        );
        let file = [no_echo, answered(&batch.records[1])].concat().into_bytes();
        let joined = join(&batch.map, std::slice::from_ref(&file));
        assert_eq!((joined.report.succeeded, joined.report.unverified), (2, 1));

        // A map without fingerprints proves nothing either.
        let map: Vec<Value> = parse(&batch.map);
        let stripped: String = map
            .into_iter()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("fp");
                }
                format!("{v}\n")
            })
            .collect();
        let joined = join(stripped.as_bytes(), &[file]);
        assert_eq!((joined.report.succeeded, joined.report.unverified), (2, 2));
    }
}

mod malformed_model_output {
    use super::*;

    #[test]
    fn an_output_not_of_the_family_shape_is_an_error() {
        let claude = translate(CLAUDE, &questions("C", 3));
        let nova_body = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1}}"#;
        let file = [
            output_line(&claude.records[0], &format!("\"modelOutput\":{nova_body}")),
            output_line(&claude.records[1], "\"modelOutput\":{}"),
            answered(&claude.records[2]),
        ]
        .concat();
        let joined = join(&claude.map, &[file.into_bytes()]);
        assert_eq!((joined.report.succeeded, joined.report.failed), (1, 2));
        for line in &joined.errors {
            let (status, code, message) = error_of(line);
            assert_eq!(
                (status, code),
                (&json!(500), &json!("malformed_model_output")),
                "{line}"
            );
            assert_eq!(
                message,
                "the modelOutput is not a Claude Messages response: it has no content array"
            );
        }

        let nova = translate(NOVA, &questions("N", 2));
        let file = [
            output_line(
                &nova.records[0],
                &format!("\"modelOutput\":{}", claude_output(3, 1, "end_turn")),
            ),
            output_line(&nova.records[1], &format!("\"modelOutput\":{nova_body}")),
        ]
        .concat();
        let joined = join(&nova.map, &[file.into_bytes()]);
        assert_eq!((joined.report.succeeded, joined.report.failed), (1, 1));
        let (_, code, message) = error_of(&joined.errors[0]);
        assert_eq!(code, "malformed_model_output");
        assert_eq!(
            message,
            "the modelOutput is not a Nova response: it has no output.message.content array"
        );
    }
}

mod unreadable_lines {
    use super::*;

    #[test]
    fn a_line_that_cannot_be_read_is_an_error_for_its_record() {
        let batch = translate(CLAUDE, &questions("U", 6));
        let full = |i: usize| answered(&batch.records[i]);
        let cut = full(0)[..full(0).len() / 2].to_string() + "\n";
        let mut not_utf8 = full(1).into_bytes();
        let at = not_utf8
            .windows(8)
            .position(|w| w == b"Question")
            .expect("the question");
        not_utf8[at + 2] = 0xff;
        let nul = full(2).replacen("Question", "Qu\u{0}stion", 1);
        let bom = format!("\u{feff}{}", full(3));
        let file = [
            cut.into_bytes(),
            not_utf8,
            nul.into_bytes(),
            bom.into_bytes(),
            b"garbage\n".to_vec(),
            full(4).into_bytes(),
        ]
        .concat();
        let joined = join(&batch.map, &[file]);

        let c = &joined.collected;
        assert_eq!(
            (c.unreadable_lines, c.unreadable_records, c.unmatched_lines),
            (5, 4, 0),
            "{c:?}"
        );
        assert_eq!(c.unreadable_samples.len(), 5);
        assert!(
            c.unreadable_samples[4].starts_with("part-0.jsonl.out:5: is not a JSON object"),
            "{c:?}"
        );

        let r = &joined.report;
        assert_eq!((r.succeeded, r.failed, r.unreadable), (1, 4, 4), "{r:?}");
        assert_eq!(
            r.missing.values().sum::<u64>(),
            1,
            "only the record with no line at all: {r:?}"
        );
        let whys = [
            "is cut short: the JSON ends before the object closes",
            "is not valid UTF-8 at byte",
            "contains a NUL byte at byte",
            "starts with a byte order mark (U+FEFF): only the first line of a file may",
        ];
        for (i, why) in whys.iter().enumerate() {
            let line = &joined.errors[i];
            assert_eq!(line["custom_id"], format!("c{i}"));
            let (status, code, message) = error_of(line);
            assert_eq!((status, code), (&json!(500), &json!("unreadable_result")), "{line}");
            let prefix = format!(
                "Bedrock's output line part-0.jsonl.out:{} for this request could not be read: {why}",
                i + 1
            );
            assert!(message.starts_with(&prefix), "{message}");
        }
        assert_eq!(joined.errors[4]["custom_id"], "c5");
        assert_eq!(joined.errors[4]["error"]["code"], "batch_failed");
    }

    #[test]
    fn a_readable_copy_wins_over_a_cut_one() {
        let batch = translate(CLAUDE, &questions("W", 1));
        let full = answered(&batch.records[0]);
        let cut = full[..full.len() - 10].to_string() + "\n";
        let joined = join(&batch.map, &[cut.into_bytes(), full.into_bytes()]);
        assert_eq!((joined.report.succeeded, joined.report.duplicate_results), (1, 1));
        assert_eq!(joined.collected.unreadable_records, 1);
    }

    #[test]
    fn a_record_with_neither_output_nor_error_says_so() {
        let batch = translate(CLAUDE, &questions("E", 1));
        let line = output_line(&batch.records[0], "\"modelOutput\":null");
        let joined = join(&batch.map, &[line.into_bytes()]);
        let (_, code, message) = error_of(&joined.errors[0]);
        assert_eq!(code, "unreadable_result");
        assert!(
            message.ends_with("could not be read: has neither modelOutput nor error"),
            "{message}"
        );
    }
}

mod map_integrity {
    use super::*;

    /// The batch's map as lines, each with its newline.
    fn map_lines() -> (Vec<String>, Vec<u8>) {
        let batch = translate(CLAUDE, &questions("M", 3));
        let file = all_answered(&batch);
        let text = String::from_utf8(batch.map).expect("UTF-8");
        (text.split_inclusive('\n').map(str::to_string).collect(), file)
    }

    fn refused(map: &[String], file: &[u8]) -> String {
        match try_join(map.concat().as_bytes(), &[file.to_vec()], 1 << 20) {
            Ok(j) => panic!("joined: {:?}", j.report),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                e.to_string()
            }
        }
    }

    #[test]
    fn the_whole_map_joins() {
        let (map, file) = map_lines();
        assert_eq!(join(map.concat().as_bytes(), &[file]).report.succeeded, 3);
    }

    #[test]
    fn a_map_cut_at_a_line_boundary_is_refused() {
        let (map, file) = map_lines();
        for keep in [map.len() - 1, map.len() - 2, 1] {
            let message = refused(&map[..keep], &file);
            assert_eq!(
                message,
                format!(
                    "record map line {}: the record map has no last line ({{\"batchdrop_record_map_end\":…}}): it was cut \
                     short, so lines would be lost; copy it again from where translate wrote it",
                    keep + 1
                )
            );
        }
    }

    #[test]
    fn an_entry_after_the_trailer_is_refused() {
        let (mut map, file) = map_lines();
        let extra = map[3]
            .replace("\"line\":3", "\"line\":4")
            .replace("R0000000003", "R0000000004");
        map.push(extra);
        assert_eq!(
            refused(&map, &file),
            "record map line 6: an entry after the record map's last line (line 5): lines were added to it"
        );
    }

    #[test]
    fn an_input_line_listed_twice_is_refused() {
        let (mut map, file) = map_lines();
        // Line 2 listed again, with its own recordId, and the trailer counts to match.
        let again = map[2].replace("R0000000002", "R0000000003");
        map[3] = again;
        assert_eq!(
            refused(&map, &file),
            "record map line 4: input line 2 appears twice (or out of order)"
        );

        let (mut map, file) = map_lines();
        map.swap(1, 2);
        assert_eq!(
            refused(&map, &file),
            "record map line 3: input line 1 appears twice (or out of order)"
        );
    }

    #[test]
    fn wrong_counts_and_fingerprints_are_refused() {
        let (mut map, file) = map_lines();
        map[4] = "{\"batchdrop_record_map_end\":{\"entries\":4,\"records\":3}}\n".to_string();
        let message = refused(&map, &file);
        assert!(
            message.starts_with("record map line 5: the record map says it holds 4 entries (3 records) but 3"),
            "{message}"
        );

        let (mut map, file) = map_lines();
        let fp = serde_json::from_str::<Value>(&map[1]).expect("JSON")["fp"]
            .as_str()
            .expect("fp")
            .to_string();
        map[1] = map[1].replace(&fp, "not-hex-digits!!");
        assert_eq!(
            refused(&map, &file),
            "record map line 2: fp \"not-hex-digits!!\" is not 16 hex digits"
        );
    }
}

mod embeddings_maps {
    use super::*;

    /// A map naming an embeddings line of more records than a line can have is refused before anything is
    /// held for it: 4 billion parts once asked for 96 GB.
    #[test]
    fn an_entry_of_too_many_parts_is_refused() {
        let map = [
            "{\"batchdrop_record_map\":3,\"batch_id\":\"b\"}\n",
            "{\"line\":1,\"custom_id\":\"e\",\"recordId\":\"R0000000001\",\"model\":\"amazon.titan-embed-text-v2:0\",\
             \"embedding\":{\"parts\":4000000000,\"dimensions\":256}}\n",
            "{\"batchdrop_record_map_end\":{\"entries\":1,\"records\":4000000000}}\n",
        ];
        let message = try_join(map.concat().as_bytes(), &[], 1 << 20)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("record map line 2: an embeddings entry of 4000000000 records, but a line has at most 2048")
        );
        // An embeddings model's entry without its embedding, and a chat model's with one, are refused too.
        let without = map[1].replace(",\"embedding\":{\"parts\":4000000000,\"dimensions\":256}", "");
        let message = try_join([map[0], without.as_str(), map[2]].concat().as_bytes(), &[], 1 << 20)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("is an embeddings model, but the entry has no embedding"),
            "{message}"
        );
    }
}

mod counters {
    use super::*;

    #[test]
    fn huge_usage_saturates_instead_of_wrapping() {
        let batch = translate(CLAUDE, &questions("T", 2));
        let huge = u64::MAX - 1;
        let file: String = batch
            .records
            .iter()
            .map(|r| output_line(r, &format!("\"modelOutput\":{}", claude_output(huge, 5, "end_turn"))))
            .collect();
        let joined = join(&batch.map, &[file.into_bytes()]);
        assert_eq!(joined.report.succeeded, 2);
        assert_eq!(
            joined.output[0]["response"]["body"]["usage"]["total_tokens"],
            json!(u64::MAX)
        );
        assert_eq!(joined.report.usage.total_tokens, u64::MAX);
        assert_eq!(joined.report.usage.prompt_tokens, u64::MAX);
    }

    #[test]
    fn unknown_stop_reasons_are_bounded_and_escaped() {
        let n = MAX_KEYS + 30;
        let batch = translate(CLAUDE, &questions("S", n));
        let file: String = batch
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                output_line(
                    r,
                    &format!("\"modelOutput\":{}", claude_output(1, 1, &format!("\u{1b}[31m{i:03}"))),
                )
            })
            .collect();
        let joined = join(&batch.map, &[file.into_bytes()]);
        let reasons = &joined.report.unknown_stop_reasons;
        assert_eq!(reasons.iter().count(), MAX_KEYS + 1);
        assert_eq!(reasons.iter().last(), Some((OTHERS, 30)));
        assert_eq!(reasons.total(), n as u64);
        assert!(reasons.iter().all(|(k, _)| !k.contains('\u{1b}')));
    }
}

mod spill {
    use super::*;

    /// Lowers this process's open-file limit while `f` runs.
    #[cfg(unix)]
    fn with_open_file_limit<T>(limit: libc::rlim_t, f: impl FnOnce() -> T) -> T {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
        let low = libc::rlimit {
            rlim_cur: limit.min(old.rlim_cur),
            rlim_max: old.rlim_max,
        };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        let result = f();
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
        result
    }

    /// With no memory budget every result is a spill run of its own: 1,500 runs, far more than the 200
    /// files the process may open, join in order because runs are merged as they pile up.
    #[cfg(unix)]
    #[test]
    fn more_spill_runs_than_open_files_allowed() {
        let n = 1500;
        let batch = translate(CLAUDE, &questions("F", n));
        let mut lines: Vec<String> = batch.records.iter().map(|r| answered(r)).collect();
        lines.reverse();
        let file = lines.concat().into_bytes();
        let joined = with_open_file_limit(200, || try_join(&batch.map, &[file], 0)).expect("the join succeeds");
        assert_eq!(joined.report.succeeded, n as u64);
        let ids: Vec<String> = joined
            .output
            .iter()
            .map(|l| l["custom_id"].as_str().expect("id").to_string())
            .collect();
        let expected: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        assert_eq!(ids, expected);
    }
}

mod long_results {
    use super::*;

    fn long_answer(i: usize) -> String {
        let text = format!("answer {i} ").repeat(60 + i % 7);
        json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": text}],
               "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 400}})
        .to_string()
    }

    /// Long answers and errors are left in their files and read again at the join, among short ones,
    /// cut copies, duplicates and a second file, with every result its own spill run or none spilled.
    #[test]
    fn are_read_again_from_their_files_as_they_were() {
        let n = 60;
        let batch = translate(CLAUDE, &questions("L", n));
        let long_error = format!(
            "\"error\":{{\"errorCode\":429,\"errorMessage\":\"{}\"}}",
            "Too many requests. ".repeat(40)
        );
        let mut first = Vec::new();
        let mut second = Vec::new();
        for (i, record) in batch.records.iter().enumerate().rev() {
            let line = match i % 5 {
                0 => answered(record),
                1 => output_line(record, &long_error),
                _ => output_line(record, &format!("\"modelOutput\":{}", long_answer(i))),
            };
            if i % 4 == 0 {
                // A cut copy first: the readable one is joined.
                first.push(line[..line.len() * 2 / 3].to_string() + "\n");
                second.push(line);
            } else if i % 9 == 0 {
                first.push(line.clone());
                second.push(line);
            } else {
                first.push(line);
            }
        }
        let files = [first.concat().into_bytes(), second.concat().into_bytes()];
        for budget in [0, 1 << 20] {
            let joined = try_join(&batch.map, &files, budget).expect("the join succeeds");
            let r = &joined.report;
            assert_eq!((r.succeeded, r.failed), (48, 12), "{r:?}");
            for line in &joined.output {
                let i: usize = line["custom_id"]
                    .as_str()
                    .and_then(|c| c[1..].parse().ok())
                    .expect("c<i>");
                let content = &line["response"]["body"]["choices"][0]["message"]["content"];
                if i % 5 == 0 {
                    assert_eq!(content, "ok");
                } else {
                    assert_eq!(
                        content.as_str(),
                        Some(format!("answer {i} ").repeat(60 + i % 7).as_str())
                    );
                }
            }
            for line in &joined.errors {
                let (status, _, message) = error_of(line);
                assert_eq!(status, &json!(429), "{line}");
                assert!(message.starts_with("Too many requests. Too many"), "{message}");
            }
        }
    }

    #[test]
    fn from_a_file_changed_before_the_join_are_refused() {
        let batch = translate(CLAUDE, &questions("C", 2));
        let lines: String = batch
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| output_line(r, &format!("\"modelOutput\":{}", long_answer(i))))
            .collect();
        let on_disk = OnDisk::new(&[lines.into_bytes()]).expect("a temp file");
        let mut collector = Collector::new(1 << 20, None);
        collector
            .add_file("part-0.jsonl.out", File::open(&on_disk.paths[0]).expect("opens"))
            .expect("collects");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&on_disk.paths[0])
            .expect("opens");
        file.write_all(b"\n").expect("appends");
        let err = join_collected(&batch.map, collector).err().expect("refused");
        assert_eq!(
            err.to_string(),
            "part-0.jsonl.out: the Bedrock output file changed while its results were read; run again"
        );
    }
}

mod catalogue_changes {
    use super::*;

    /// The map with every accepted entry's model replaced by `model`, and its family kept or dropped.
    fn edited(map: &[u8], model: &str, keep_family: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for line in map.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut entry: Value = serde_json::from_slice(line).expect("map lines are JSON");
            if let Some(fields) = entry.as_object_mut().filter(|e| e.contains_key("recordId")) {
                assert!(fields.contains_key("family"), "translate writes the family: {line:?}");
                fields.insert("model".into(), json!(model));
                if !keep_family {
                    fields.remove("family");
                }
            }
            out.extend_from_slice(entry.to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// A model the catalogue no longer knows, after its batch was translated: the answers are read as
    /// translated. A map from before the family was kept still asks the catalogue, and says why it cannot.
    #[test]
    fn do_not_change_how_a_translated_batch_is_read() {
        let batch = translate(CLAUDE, &questions("K", 3));
        let file = all_answered(&batch);
        let gone = "us.example.model-dropped-from-the-catalogue-v1:0";

        let joined = join(&edited(&batch.map, gone, true), std::slice::from_ref(&file));
        assert_eq!(
            (joined.report.succeeded, joined.report.failed),
            (3, 0),
            "{:?}",
            joined.report
        );
        assert_eq!(joined.output[0]["response"]["body"]["model"], gone);

        let err = try_join(&edited(&batch.map, gone, false), &[file], 1 << 20)
            .err()
            .expect("an old map asks the catalogue");
        assert!(
            err.to_string().contains("is not a model batchdrop translates for"),
            "{err}"
        );
    }
}
