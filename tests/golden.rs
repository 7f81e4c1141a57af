//! Golden fixtures for both directions of the format translation (real artefacts as fixtures,
//! compared as parsed JSON). Every expected value was written by hand from docs/formats.md and src/policy.rs, never
//! captured from the code under test.
//!
//! - `translation`: `fixtures/golden/translate/*.json`, one per row of docs/formats.md#how-openai-requests-are-translated: an OpenAI input line and
//!   the Claude and Nova `modelInput` it must become (docs/formats.md#claude-and-nova-bodies).
//! - `rejections`: a table of lines that must be rejected, each with its `Reason`, its field path and a
//!   message that names the line and the custom_id.
//! - `results`: `fixtures/golden/results/*.json`, one per Bedrock outcome: a `modelOutput` (every stop reason
//!   of docs/formats.md#finish_reason, tool use, usage with cache counters) or a record `error`, and the OpenAI output or error line it
//!   must become (docs/formats.md#openai-lines and #results), driven through `translate`, `results::Collector` and `results::join`.
//! - `results::embeddings_both_ways`: `fixtures/golden/embeddings/*.json`, one per rule of docs/formats.md
//!   "Embeddings": an OpenAI embeddings line, the Titan records it must become, and, where given, Bedrock's
//!   answers to them and the OpenAI line they must become.
//! - `support`: fixture loading and JSON comparison shared by them.

mod support {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use batchdrop::model::{self, BedrockModel, ModelName};
    use serde_json::Value;

    /// A Claude model that takes images (Claude 3.5 Haiku on Bedrock takes text only).
    pub const CLAUDE: &str = "us.anthropic.claude-3-haiku-20240307-v1:0";
    pub const NOVA: &str = "us.amazon.nova-lite-v1:0";
    /// A model the catalogue runs through Converse, and that takes images.
    pub const CONVERSE: &str = "us.meta.llama4-maverick-17b-instruct-v1:0";

    pub fn fixture_dir(kind: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/golden")
            .join(kind)
    }

    /// The fixture names (file stems) in `kind`, sorted.
    pub fn fixture_names(kind: &str) -> BTreeSet<String> {
        std::fs::read_dir(fixture_dir(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    pub fn read_fixture(kind: &str, name: &str) -> String {
        let path = fixture_dir(kind).join(format!("{name}.json"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn bedrock_model(id: &str) -> BedrockModel {
        match model::classify(id) {
            ModelName::Supported(m) => m,
            other => panic!("{id} is not a supported model: {other:?}"),
        }
    }

    /// JSON does not tell `0` from `0.0`, but `serde_json::Value` does: integral floats become integers.
    pub fn normalize(v: Value) -> Value {
        match v {
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                _ => Value::Number(n),
            },
            Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
            other => other,
        }
    }

    /// `None` when equal, else a message showing both sides.
    pub fn diff(context: &str, actual: &Value, expected: &Value) -> Option<String> {
        let (a, e) = (normalize(actual.clone()), normalize(expected.clone()));
        (a != e).then(|| {
            format!(
                "{context}\n--- expected\n{}\n--- actual\n{}",
                serde_json::to_string_pretty(&e).unwrap(),
                serde_json::to_string_pretty(&a).unwrap()
            )
        })
    }

    /// Panics with every collected failure, so that one bad fixture does not hide the others.
    pub fn report(failures: Vec<String>) {
        assert!(
            failures.is_empty(),
            "{} golden case(s) failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

mod translation {
    use std::collections::BTreeSet;

    use batchdrop::policy::Policy;
    use batchdrop::translate::Translator;
    use serde::Deserialize;
    use serde_json::value::RawValue;
    use serde_json::Value;

    use crate::support::{self, CLAUDE, NOVA};

    /// One fixture per row of docs/formats.md#how-openai-requests-are-translated (a row may need several).
    const CASES: &[&str] = &[
        // system / developer, strings and text parts, merged in order
        "system_and_developer_merged",
        // user string and text parts
        "user_string_and_text_parts",
        // image_url data URLs, png and jpeg, detail dropped
        "images_png_and_jpeg",
        // consecutive same-role turns
        "same_role_turns_merged",
        // assistant tool_calls and tool messages
        "tool_calls_and_results",
        // tool ids other tools write, rewritten consistently in calls and results
        "tool_ids_rewritten",
        // a final assistant message (prefill) loses its trailing whitespace
        "prefill_trimmed",
        // max_completion_tokens > max_tokens > policy default
        "max_tokens_default",
        "max_tokens_deprecated",
        "max_completion_tokens_wins",
        // temperature, top_p, top_k
        "sampling_zero_kept",
        "top_k_passed_through",
        // stop
        "stop_string",
        "stop_list",
        // tools and tool_choice
        "tools",
        "tool_choice_auto",
        "tool_choice_required",
        "tool_choice_named",
        "tool_choice_none",
        // response_format
        "response_format_text",
        "response_format_json_object",
        "response_format_json_schema",
        // seed, user, metadata, … dropped
        "dropped_fields",
    ];

    #[derive(Deserialize)]
    struct Fixture {
        /// Kept raw so the line reaches the translator with its keys in the written order.
        input: Box<RawValue>,
        claude: Value,
        nova: Value,
        /// The Converse request (docs/formats.md, "Converse"), for the fixtures a Converse model can run.
        #[serde(default)]
        converse: Option<Value>,
        /// Body fields the translator must report as dropped.
        #[serde(default)]
        dropped_fields: Option<BTreeSet<String>>,
    }

    fn load(name: &str) -> Fixture {
        serde_json::from_str(&support::read_fixture("translate", name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The fixture's input as one JSONL line: JSON strings escape newlines, so raw ones are only layout.
    fn input_line(fixture: &Fixture) -> Vec<u8> {
        fixture.input.get().replace(['\n', '\r'], " ").into_bytes()
    }

    fn check(model_id: &str, pick: fn(&Fixture) -> &Value) {
        check_some(model_id, |f| Some(pick(f)));
    }

    /// [`check`] on the fixtures for which `pick` gives a body.
    fn check_some(model_id: &str, pick: impl Fn(&Fixture) -> Option<&Value>) {
        let mut failures = Vec::new();
        let mut checked = 0;
        for name in CASES {
            let fixture = load(name);
            let Some(expected) = pick(&fixture) else {
                continue;
            };
            checked += 1;
            let mut translator = Translator::new(Policy::default(), Some(support::bedrock_model(model_id)));
            let mut body = Vec::new();
            if let Err(e) = translator.line(1, &input_line(&fixture), Some(&mut body)) {
                failures.push(format!("{name} ({model_id}): rejected: {e}"));
                continue;
            }
            let actual: Value = serde_json::from_slice(&body).unwrap();
            failures.extend(support::diff(&format!("{name} ({model_id})"), &actual, expected));
            if let Some(expected) = &fixture.dropped_fields {
                let dropped: BTreeSet<String> = translator.report().dropped_fields.keys().cloned().collect();
                if &dropped != expected {
                    failures.push(format!(
                        "{name} ({model_id}): dropped {dropped:?}, expected {expected:?}"
                    ));
                }
            }
        }
        assert!(checked > 0, "no fixture has a body for {model_id}");
        support::report(failures);
    }

    #[test]
    fn every_fixture_is_listed() {
        let listed: BTreeSet<String> = CASES.iter().map(|s| s.to_string()).collect();
        assert_eq!(support::fixture_names("translate"), listed);
    }

    #[test]
    fn claude_bodies() {
        check(CLAUDE, |f| &f.claude);
    }

    #[test]
    fn nova_bodies() {
        check(NOVA, |f| &f.nova);
    }

    #[test]
    fn converse_bodies() {
        check_some(support::CONVERSE, |f| f.converse.as_ref());
    }
}

mod rejections {
    use batchdrop::error::Reason;
    use batchdrop::policy::Policy;
    use batchdrop::translate::Translator;

    use crate::support::{self, CLAUDE, NOVA};

    struct Case {
        name: &'static str,
        /// The batch model.
        model: &'static str,
        /// Lines the same translator accepts first.
        before: Vec<String>,
        line: String,
        reason: Reason,
        field: &'static str,
        /// The custom_id the error must carry.
        custom_id: Option<&'static str>,
    }

    /// A chat line with custom_id `c1` around `body`.
    fn chat(body: &str) -> String {
        format!(r#"{{"custom_id":"c1","method":"POST","url":"/v1/chat/completions","body":{body}}}"#)
    }

    /// An embeddings line with custom_id `c1` around `body`.
    fn embed(body: &str) -> String {
        format!(r#"{{"custom_id":"c1","method":"POST","url":"/v1/embeddings","body":{body}}}"#)
    }

    const HI: &str = r#"[{"role":"user","content":"Hi"}]"#;

    fn with_messages(extra: &str) -> String {
        chat(&format!(r#"{{"messages":{HI}{extra}}}"#))
    }

    fn image_line(url: &str) -> String {
        let parts = format!(
            r#"[{{"type":"text","text":"What is this?"}},{{"type":"image_url","image_url":{{"url":"{url}"}}}}]"#
        );
        chat(&format!(r#"{{"messages":[{{"role":"user","content":{parts}}}]}}"#))
    }

    fn case(name: &'static str, line: String, reason: Reason, field: &'static str) -> Case {
        Case {
            name,
            model: CLAUDE,
            before: Vec::new(),
            line,
            reason,
            field,
            custom_id: Some("c1"),
        }
    }

    fn cases() -> Vec<Case> {
        let no_id = |mut c: Case| {
            c.custom_id = None;
            c
        };
        let on = |model: &'static str, mut c: Case| {
            c.model = model;
            c
        };
        vec![
            // The line itself (docs/formats.md#openai-lines).
            no_id(case("invalid JSON", r#"{"custom_id":"c1","method":"POST","#.into(), Reason::InvalidJson, "")),
            no_id(case("an array", r#"["custom_id","c1"]"#.into(), Reason::NotAnObject, "")),
            no_id(case("a string", r#""custom_id""#.into(), Reason::NotAnObject, "")),
            no_id(case(
                "no custom_id",
                r#"{"method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"Hi"}]}}"#
                    .into(),
                Reason::MissingCustomId,
                "custom_id",
            )),
            no_id(case(
                "empty custom_id",
                with_messages("").replace(r#""c1""#, r#""""#),
                Reason::MissingCustomId,
                "custom_id",
            )),
            // A number is echoed as its JSON text, to help find the line (docs/formats.md, "custom_id").
            Case {
                custom_id: Some("17"),
                ..case(
                    "numeric custom_id",
                    with_messages("").replace(r#""c1""#, "17"),
                    Reason::InvalidCustomId,
                    "custom_id",
                )
            },
            Case {
                before: vec![with_messages("").replace(r#""c1""#, r#""dup""#)],
                custom_id: Some("dup"),
                ..case(
                    "duplicate custom_id",
                    with_messages("").replace(r#""c1""#, r#""dup""#),
                    Reason::DuplicateCustomId,
                    "custom_id",
                )
            },
            case(
                "method GET",
                with_messages("").replace(r#""POST""#, r#""GET""#),
                Reason::Method,
                "method",
            ),
            case(
                "completions url",
                with_messages("").replace("/v1/chat/completions", "/v1/completions"),
                Reason::Url,
                "url",
            ),
            // Embeddings lines (docs/formats.md, "Embeddings").
            case("embeddings without input", embed(r#"{"model":"text-embedding-3-small"}"#), Reason::Input, "body.input"),
            case("embeddings of tokens", embed(r#"{"input":[[1,2,3]]}"#), Reason::Input, "body.input[0]"),
            case("embeddings of a token list", embed(r#"{"input":[5,6]}"#), Reason::Input, "body.input[0]"),
            case("embeddings of no text", embed(r#"{"input":""}"#), Reason::Input, "body.input"),
            case("embeddings of an empty list", embed(r#"{"input":[]}"#), Reason::Input, "body.input"),
            case("an empty text in a list", embed(r#"{"input":["a",""]}"#), Reason::Input, "body.input[1]"),
            case("embeddings input an object", embed(r#"{"input":{"text":"a"}}"#), Reason::Input, "body.input"),
            case(
                "a text over Titan's length",
                embed(&format!(r#"{{"input":["ok","{}"]}}"#, "é".repeat(50_001))),
                Reason::Input,
                "body.input[1]",
            ),
            case(
                "too many texts",
                embed(&format!(r#"{{"input":[{}"last"]}}"#, r#""t","#.repeat(2048))),
                Reason::Input,
                "body.input",
            ),
            case(
                "encoding_format",
                embed(r#"{"input":"a","encoding_format":"int8"}"#),
                Reason::EncodingFormat,
                "body.encoding_format",
            ),
            case("dimensions Titan lacks", embed(r#"{"input":"a","dimensions":768}"#), Reason::Dimensions, "body.dimensions"),
            case("dimensions a string", embed(r#"{"input":"a","dimensions":"256"}"#), Reason::Dimensions, "body.dimensions"),
            case(
                "a chat model on an embeddings line",
                embed(&format!(r#"{{"input":"a","model":"{CLAUDE}"}}"#)),
                Reason::UnsupportedModel,
                "body.model",
            ),
            case(
                "an embeddings model on a chat line",
                with_messages(r#","model":"amazon.titan-embed-text-v2:0""#),
                Reason::UnsupportedModel,
                "body.model",
            ),
            case(
                "no body",
                r#"{"custom_id":"c1","method":"POST","url":"/v1/chat/completions"}"#.into(),
                Reason::MissingBody,
                "body",
            ),
            case("body is a string", chat(r#""Hi""#), Reason::InvalidType, "body"),
            // The body (docs/formats.md#how-openai-requests-are-translated).
            case("no messages", chat(r#"{"max_tokens":5}"#), Reason::Messages, "body.messages"),
            case("empty messages", chat(r#"{"messages":[]}"#), Reason::Messages, "body.messages"),
            case(
                "unknown role",
                chat(r#"{"messages":[{"role":"robot","content":"Hi"}]}"#),
                Reason::Role,
                "body.messages[0].role",
            ),
            case("n 2", with_messages(r#","n":2"#), Reason::N, "body.n"),
            case("stream", with_messages(r#","stream":true"#), Reason::Stream, "body.stream"),
            case("logprobs", with_messages(r#","logprobs":true"#), Reason::Logprobs, "body.logprobs"),
            case(
                "temperature 1.5",
                with_messages(r#","temperature":1.5"#),
                Reason::Sampling,
                "body.temperature",
            ),
            case(
                "temperature -0.1",
                with_messages(r#","temperature":-0.1"#),
                Reason::Sampling,
                "body.temperature",
            ),
            case("top_p 1.2", with_messages(r#","top_p":1.2"#), Reason::Sampling, "body.top_p"),
            case(
                "http image URL",
                image_line("https://example.com/cat.png"),
                Reason::Image,
                "body.messages[0].content[1].image_url.url",
            ),
            case(
                "image/bmp data URL",
                image_line("data:image/bmp;base64,Qk0eAAAAAAAAABoAAAAMAAAAAQABAAEAGAAAAP8A"),
                Reason::Image,
                "body.messages[0].content[1].image_url.url",
            ),
            case(
                "tool message answering no tool call",
                chat(
                    r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},
                    {"role":"tool","tool_call_id":"call_9","content":"42"}]}"#,
                ),
                Reason::ToolCall,
                "body.messages[2].tool_call_id",
            ),
            case(
                "tool-call arguments not JSON",
                chat(
                    r#"{"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","tool_calls":[
                    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": "}}]}],
                    "tools":[{"type":"function","function":{"name":"get_weather"}}]}"#,
                ),
                Reason::ToolCall,
                "body.messages[1].tool_calls[0].function.arguments",
            ),
            case(
                "tool_choice none with tool calls in the history",
                chat(
                    r#"{"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","tool_calls":[
                    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
                    {"role":"tool","tool_call_id":"call_1","content":"sunny"}],
                    "tools":[{"type":"function","function":{"name":"get_weather"}}],"tool_choice":"none"}"#,
                ),
                Reason::ToolChoice,
                "body.tool_choice",
            ),
            case(
                "response_format json_schema with tools",
                with_messages(
                    r#","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}},
                    "tools":[{"type":"function","function":{"name":"get_weather"}}]"#,
                ),
                Reason::ResponseFormat,
                "body.response_format",
            ),
            case(
                "response_format json_schema without a name",
                with_messages(r#","response_format":{"type":"json_schema","json_schema":{"schema":{}}}"#),
                Reason::ResponseFormat,
                "body.response_format.json_schema.name",
            ),
            case(
                "response_format json_schema whose schema is not an object",
                with_messages(r#","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":[]}}"#),
                Reason::ResponseFormat,
                "body.response_format.json_schema.schema",
            ),
            // Models (docs/configuration.md#choosing-the-model; docs/formats.md#claude-and-nova-bodies).
            case(
                "a Bedrock model of another family",
                chat(&format!(r#"{{"model":"amazon.titan-embed-text-v2:0","messages":{HI}}}"#)),
                Reason::UnsupportedModel,
                "body.model",
            ),
            on(
                "us.amazon.nova-micro-v1:0",
                case(
                    "an image for Nova Micro",
                    image_line("data:image/png;base64,iVBORw0KGgo="),
                    Reason::Image,
                    "body.messages[0].content[1]",
                ),
            ),
            on(
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                case(
                    "temperature and top_p on Claude Sonnet 4.5",
                    with_messages(r#","temperature":0.5,"top_p":0.9"#),
                    Reason::Sampling,
                    "body.top_p",
                ),
            ),
            on(
                NOVA,
                case(
                    "temperature 2 on Nova",
                    with_messages(r#","temperature":2,"top_p":0.9"#),
                    Reason::Sampling,
                    "body.temperature",
                ),
            ),
            // Wrong types deep inside: the path comes from serde_path_to_error.
            case(
                "content is a number",
                chat(r#"{"messages":[{"role":"user","content":5}]}"#),
                Reason::InvalidType,
                "body.messages[0].content",
            ),
            case(
                "temperature is a string",
                with_messages(r#","temperature":"hot""#),
                Reason::InvalidType,
                "body.temperature",
            ),
        ]
    }

    #[test]
    fn each_line_is_rejected_with_its_reason_and_field() {
        let mut failures = Vec::new();
        for c in cases() {
            let mut translator = Translator::new(Policy::default(), Some(support::bedrock_model(c.model)));
            for (i, line) in c.before.iter().enumerate() {
                translator
                    .line(i as u64 + 1, line.as_bytes(), Some(&mut Vec::new()))
                    .unwrap_or_else(|e| panic!("{}: line before was rejected: {e}", c.name));
            }
            let line_no = c.before.len() as u64 + 1;
            let mut body = Vec::new();
            let error = match translator.line(line_no, c.line.as_bytes(), Some(&mut body)) {
                Ok(_) => {
                    failures.push(format!("{}: accepted as {}", c.name, String::from_utf8_lossy(&body)));
                    continue;
                }
                Err(e) => e,
            };
            let shown = error.to_string();
            let got = (error.rejection.reason, error.rejection.field.as_str(), error.line);
            if got != (c.reason, c.field, line_no) {
                failures.push(format!(
                    "{}: got {got:?}, expected {:?} ({shown})",
                    c.name,
                    (c.reason, c.field, line_no)
                ));
            }
            // Display says where and whose: `line 2, custom_id "c1": body.n: …`.
            let head = match c.custom_id {
                Some(id) => format!("line {line_no}, custom_id \"{id}\""),
                None => format!("line {line_no}: "),
            };
            if !shown.starts_with(&head) || !shown.contains(c.field) {
                failures.push(format!(
                    "{}: message {shown:?} should start {head:?} and name {:?}",
                    c.name, c.field
                ));
            }
            if error.custom_id.as_deref() != c.custom_id {
                failures.push(format!(
                    "{}: custom_id {:?}, expected {:?}",
                    c.name, error.custom_id, c.custom_id
                ));
            }
        }
        support::report(failures);
    }
}

mod results {
    use std::collections::BTreeMap;
    use std::io;

    use batchdrop::error::LineError;
    use batchdrop::model::BedrockModel;
    use batchdrop::policy::Policy;
    use batchdrop::results::{self, Collector, JobStatus, JoinOptions, ResultsReport};
    use batchdrop::translate::{self, Sink, Translator};
    use serde::Deserialize;
    use serde_json::{json, Value};

    use crate::support;

    /// `created` of every chat.completion: 2026-01-01T00:00:00Z, as written in the fixtures.
    const CREATED: u64 = 1_767_225_600;

    #[derive(Deserialize)]
    struct Fixture {
        model: String,
        /// The line's `response_format`, for the structured-output cases.
        #[serde(default)]
        response_format: Option<Value>,
        /// What Bedrock wrote after `recordId` and `modelInput`: `{"modelOutput": …}` or `{"error": …}`.
        bedrock: serde_json::Map<String, Value>,
        expected: Expected,
    }

    #[derive(Deserialize)]
    struct Expected {
        /// `output` or `errors`.
        file: String,
        status_code: u64,
        /// The `response.body`, without the chat.completion `id` (checked apart) and, when
        /// `message_contains` is set, without the error message (our own words).
        body: Value,
        #[serde(default)]
        message_contains: Option<String>,
    }

    /// Everything `translate` hands out, kept in memory.
    #[derive(Default)]
    struct Memory {
        records: Vec<Vec<u8>>,
        map: Vec<u8>,
        rejected: Vec<LineError>,
    }

    impl Sink for Memory {
        fn record(
            &mut self,
            _group: usize,
            _model: &BedrockModel,
            record: &[u8],
            _continues_line: bool,
        ) -> io::Result<()> {
            self.records.push(record.to_vec());
            Ok(())
        }
        fn map_entry(&mut self, entry: &[u8]) -> io::Result<()> {
            self.map.extend_from_slice(entry);
            Ok(())
        }
        fn rejected(&mut self, _error_line: &[u8], error: &LineError) -> io::Result<()> {
            self.rejected.push(error.clone());
            Ok(())
        }
    }

    fn chat_line(custom_id: &str, body: Value) -> String {
        let line = json!({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body});
        format!("{line}\n")
    }

    /// Translates `input` for `batch_model` (lines may name their own) and returns the sink and the
    /// recordId of each accepted custom_id.
    fn translate(input: &str, batch_model: Option<&str>) -> (Memory, BTreeMap<String, String>) {
        let mut translator = Translator::new(Policy::default(), batch_model.map(support::bedrock_model));
        let mut sink = Memory::default();
        translate::translate(input.as_bytes(), &mut translator, "golden-batch", &mut sink).unwrap();
        let mut record_ids = BTreeMap::new();
        for entry in sink.map.split(|b| *b == b'\n').skip(1).filter(|l| !l.is_empty()) {
            let entry: Value = serde_json::from_slice(entry).unwrap();
            if let (Some(id), Some(record)) = (entry["custom_id"].as_str(), entry["recordId"].as_str()) {
                record_ids.insert(id.to_string(), record.to_string());
            }
        }
        (sink, record_ids)
    }

    /// The echoed `modelInput` of each record, by recordId.
    fn model_inputs(sink: &Memory) -> BTreeMap<String, Value> {
        sink.records
            .iter()
            .map(|r| {
                let r: Value = serde_json::from_slice(r).unwrap();
                (r["recordId"].as_str().unwrap().to_string(), r["modelInput"].clone())
            })
            .collect()
    }

    /// Bedrock output lines built from the fixtures, joined with the record map. Returns the parsed
    /// output and error lines and the report.
    fn run(
        sink: &Memory,
        files: &[Vec<String>],
        budget: usize,
        status: JobStatus,
    ) -> (Vec<Value>, Vec<Value>, ResultsReport) {
        let mut collector = Collector::new(budget, None);
        for (i, lines) in files.iter().enumerate() {
            let text = lines.concat();
            collector.add(&format!("part-{i}.jsonl.out"), text.as_bytes()).unwrap();
        }
        assert_eq!(collector.report().unmatched_lines, 0, "{:?}", collector.report());
        let (mut output, mut errors) = (Vec::new(), Vec::new());
        let status = move |_: Option<usize>, _: &str| status;
        let options = JoinOptions {
            created: CREATED,
            status: &status,
        };
        let report = results::join(&sink.map[..], collector, &options, &mut output, &mut errors).unwrap();
        let parse = |bytes: &[u8]| -> Vec<Value> {
            bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect()
        };
        (parse(&output), parse(&errors), report)
    }

    /// `arguments` is a JSON string (docs/formats.md#openai-lines): compared by its meaning, not its spacing.
    fn parse_arguments(body: &mut Value) {
        let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) else {
            return;
        };
        for choice in choices {
            let Some(calls) = choice.pointer_mut("/message/tool_calls").and_then(Value::as_array_mut) else {
                continue;
            };
            for call in calls {
                if let Some(arguments) = call.pointer_mut("/function/arguments") {
                    if let Some(parsed) = arguments.as_str().and_then(|s| serde_json::from_str(s).ok()) {
                        *arguments = parsed;
                    }
                }
            }
        }
    }

    /// Checks one OpenAI line against its fixture; returns what is wrong.
    fn check_line(name: &str, file: &str, line: &Value, expected: &Expected) -> Vec<String> {
        let mut failures = Vec::new();
        let mut fail = |what: String| failures.push(format!("{name}: {what}"));
        if file != expected.file {
            fail(format!("written to {file}, expected {}", expected.file));
        }
        let starts = |v: &Value, prefix: &str| v.as_str().is_some_and(|s| s.starts_with(prefix));
        if !starts(&line["id"], "batch_req_") || !starts(&line["response"]["request_id"], "req_") {
            fail(format!("line id or request_id malformed: {line}"));
        }
        if !line["error"].is_null() {
            fail(format!("error should be null: {line}"));
        }
        if line["response"]["status_code"] != expected.status_code {
            fail(format!(
                "status_code {}, expected {}",
                line["response"]["status_code"], expected.status_code
            ));
        }
        let mut body = line["response"]["body"].clone();
        let mut want = expected.body.clone();
        if expected.file == "output" && want["object"] == "chat.completion" {
            match body.as_object_mut().and_then(|b| b.remove("id")) {
                Some(Value::String(id)) if id.starts_with("chatcmpl-") => {}
                other => fail(format!("chat.completion id {other:?} does not start with chatcmpl-")),
            }
            parse_arguments(&mut body);
            parse_arguments(&mut want);
        }
        if let Some(part) = &expected.message_contains {
            match body
                .pointer_mut("/error")
                .and_then(Value::as_object_mut)
                .and_then(|e| e.remove("message"))
            {
                Some(Value::String(m)) if m.contains(part.as_str()) => {}
                other => fail(format!("error message {other:?} should contain {part:?}")),
            }
        }
        failures.extend(support::diff(&format!("{name}: response.body"), &body, &want));
        failures
    }

    #[test]
    fn every_bedrock_outcome_becomes_its_openai_line() {
        let names: Vec<String> = support::fixture_names("results").into_iter().collect();
        let fixtures: Vec<Fixture> = names
            .iter()
            .map(|n| serde_json::from_str(&support::read_fixture("results", n)).unwrap_or_else(|e| panic!("{n}: {e}")))
            .collect();

        // One batch, one line per fixture, each naming its model in body.model.
        let input: String = names
            .iter()
            .zip(&fixtures)
            .map(|(name, f)| {
                let messages = json!([{"role": "user", "content": format!("Question {name}")}]);
                let mut body = json!({"model": f.model, "messages": messages, "max_tokens": 100});
                if let Some(format) = &f.response_format {
                    body["response_format"] = format.clone();
                }
                chat_line(name, body)
            })
            .collect();
        let (sink, record_ids) = translate(&input, None);
        assert!(sink.rejected.is_empty(), "{:?}", sink.rejected);
        let inputs = model_inputs(&sink);

        // Bedrock's output, in reverse order and split over two files (docs/bedrock.md#input-records: order is not guaranteed).
        let mut lines: Vec<String> = names
            .iter()
            .zip(&fixtures)
            .map(|(name, f)| {
                let record_id = &record_ids[name];
                let mut line = serde_json::Map::new();
                line.insert("recordId".into(), json!(record_id));
                line.insert("modelInput".into(), inputs[record_id].clone());
                line.extend(f.bedrock.clone());
                format!("{}\n", Value::Object(line))
            })
            .collect();
        lines.reverse();
        let half = lines.len() / 2;
        let files = vec![lines[..half].to_vec(), lines[half..].to_vec()];

        // A budget of 0 spills every result to its own run file: the merge must give the same lines.
        for budget in [64 << 20, 0] {
            let (output, errors, report) = run(&sink, &files, budget, JobStatus::Completed);
            let mut failures = Vec::new();
            let mut seen = BTreeMap::new();
            for (file, lines) in [("output", &output), ("errors", &errors)] {
                // The fixture names are sorted and are the custom_ids, so input order is sorted order.
                let ids: Vec<&str> = lines.iter().map(|l| l["custom_id"].as_str().unwrap()).collect();
                let mut sorted = ids.clone();
                sorted.sort();
                if ids != sorted {
                    failures.push(format!("{file} is not in input order: {ids:?}"));
                }
                for line in lines.iter() {
                    let id = line["custom_id"].as_str().unwrap().to_string();
                    if seen.insert(id.clone(), (file, line.clone())).is_some() {
                        failures.push(format!("{id}: written twice"));
                    }
                }
            }
            for (name, fixture) in names.iter().zip(&fixtures) {
                match seen.get(name) {
                    None => failures.push(format!("{name}: no line written")),
                    Some((file, line)) => failures.extend(check_line(name, file, line, &fixture.expected)),
                }
            }
            let outputs = fixtures.iter().filter(|f| f.expected.file == "output").count() as u64;
            if (report.succeeded, report.failed) != (outputs, names.len() as u64 - outputs) {
                failures.push(format!("report counts: {report:?}"));
            }
            // Every line echoes the modelInput sent: each is proven to answer its own request.
            if (report.mismatched, report.unverified) != (0, 0) {
                failures.push(format!("fingerprint counts: {report:?}"));
            }
            // docs/formats.md#finish_reason: pause_turn and unknown values map to stop "and log a warning".
            let unknown: Vec<&str> = report.unknown_stop_reasons.iter().map(|(k, _)| k).collect();
            if unknown != ["pause_turn", "some_future_reason"] {
                failures.push(format!("unknown stop reasons reported: {unknown:?}"));
            }
            assert!(failures.is_empty(), "budget {budget}:\n\n{}", failures.join("\n\n"));
        }
    }

    /// Lines that never got a Bedrock result: rejected before Bedrock (docs/formats.md#openai-lines, last bullet), and records
    /// missing from the output, coded by the job's final status (docs/formats.md#openai-lines).
    #[test]
    fn lines_without_a_bedrock_result() {
        let hi = json!([{"role": "user", "content": "Hi"}]);
        let input = [
            // An OpenAI model name: the batch model runs the line, and the answer names it (policy.rs).
            chat_line("answered", json!({"model": "gpt-4o-mini", "messages": hi})),
            chat_line(
                "too-hot",
                json!({"model": support::CLAUDE, "messages": hi, "temperature": 1.5}),
            ),
            chat_line("never-ran", json!({"model": support::NOVA, "messages": hi})),
        ]
        .concat();
        let (sink, record_ids) = translate(&input, Some(support::CLAUDE));
        // The echo is the request sent: another one would be a mismatched_result (tests/results_hostile.rs).
        let echoed = model_inputs(&sink)[&record_ids["answered"]].clone();
        let answered = format!(
            "{}\n",
            json!({"recordId": record_ids["answered"], "modelInput": echoed, "modelOutput": {
                "id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "Hello"}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}})
        );
        let cases = [
            (JobStatus::Completed, "batch_failed"),
            (JobStatus::PartiallyCompleted, "batch_expired"),
            (JobStatus::Expired, "batch_expired"),
            (JobStatus::Stopped, "batch_cancelled"),
            (JobStatus::Failed, "batch_failed"),
        ];
        for (status, code) in cases {
            let (output, errors, report) = run(&sink, &[vec![answered.clone()]], 1 << 20, status);
            assert_eq!(output.len(), 1, "{status:?}");
            assert_eq!(output[0]["custom_id"], "answered");
            assert_eq!(output[0]["response"]["body"]["model"], support::CLAUDE);
            assert_eq!(errors.len(), 2, "{status:?}: {errors:?}");

            let rejected = &errors[0];
            assert_eq!(rejected["custom_id"], "too-hot");
            assert_eq!(rejected["response"]["status_code"], 400);
            assert!(rejected["error"].is_null());
            let error = &rejected["response"]["body"]["error"];
            assert_eq!(error["type"], "invalid_request_error");
            assert_eq!(error["param"], "body.temperature");
            assert_eq!(error["code"], "invalid_sampling");
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("line 2, custom_id \"too-hot\""),
                "{error}"
            );

            let missing = &errors[1];
            assert_eq!(missing["custom_id"], "never-ran");
            assert!(missing["response"].is_null(), "{missing}");
            assert_eq!(missing["error"]["code"], code, "{status:?}");
            assert!(!missing["error"]["message"].as_str().unwrap().is_empty());
            assert_eq!(
                (report.succeeded, report.rejected, report.missing.get(code)),
                (1, 1, Some(&1))
            );
        }
    }

    #[derive(Deserialize)]
    struct EmbeddingFixture {
        input: Value,
        /// The Bedrock model the line must run on.
        model: String,
        /// The `modelInput` of each record, in record order.
        records: Vec<Value>,
        #[serde(default)]
        dropped_fields: Option<Vec<String>>,
        /// Per record, what Bedrock wrote after `recordId` and `modelInput`; `null` for a record it never
        /// returned. Absent for a fixture of the translation only.
        #[serde(default)]
        bedrock: Option<Vec<Option<serde_json::Map<String, Value>>>>,
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        expected: Option<EmbeddingExpected>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum EmbeddingExpected {
        /// A line that never ran: its error code.
        Missing {
            file: String,
            batch_error: String,
        },
        Line(Expected),
    }

    /// docs/formats.md "Embeddings", both ways: each fixture's line is translated in a batch whose own model
    /// is a chat model, its records checked, and Bedrock's answers (in reverse order) joined back.
    #[test]
    fn embeddings_both_ways() {
        let mut failures = Vec::new();
        let names = support::fixture_names("embeddings");
        assert!(names.len() >= 6, "{names:?}");
        for name in &names {
            let f: EmbeddingFixture = serde_json::from_str(&support::read_fixture("embeddings", name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut translator = Translator::new(Policy::default(), Some(support::bedrock_model(support::CLAUDE)));
            let mut sink = Memory::default();
            let input = format!("{}\n", f.input);
            translate::translate(input.as_bytes(), &mut translator, "golden-batch", &mut sink).unwrap();
            if !sink.rejected.is_empty() {
                failures.push(format!("{name}: rejected: {}", sink.rejected[0]));
                continue;
            }
            let records: Vec<Value> = sink
                .records
                .iter()
                .map(|r| serde_json::from_slice(r).unwrap())
                .collect();
            let bodies = Value::Array(records.iter().map(|r| r["modelInput"].clone()).collect());
            failures.extend(support::diff(
                &format!("{name}: records"),
                &bodies,
                &Value::Array(f.records.clone()),
            ));
            let ids: Vec<String> = records
                .iter()
                .map(|r| r["recordId"].as_str().unwrap().to_string())
                .collect();
            let numbered: Vec<String> = (1..=ids.len()).map(|n| format!("R{n:010}")).collect();
            if ids != numbered {
                failures.push(format!("{name}: recordIds {ids:?}, expected {numbered:?}"));
            }
            let used: Vec<&String> = translator.report().accepted_by_model.keys().collect();
            if used != [&f.model] {
                failures.push(format!("{name}: ran on {used:?}, expected {}", f.model));
            }
            if let Some(expected) = &f.dropped_fields {
                let dropped: Vec<String> = translator.report().dropped_fields.keys().cloned().collect();
                if &dropped != expected {
                    failures.push(format!("{name}: dropped {dropped:?}, expected {expected:?}"));
                }
            }
            let (Some(answers), Some(expected)) = (&f.bedrock, &f.expected) else {
                continue;
            };
            let mut lines: Vec<String> = records
                .iter()
                .zip(answers)
                .filter_map(|(record, answer)| {
                    let mut line = serde_json::Map::new();
                    line.insert("recordId".into(), record["recordId"].clone());
                    line.insert("modelInput".into(), record["modelInput"].clone());
                    line.extend(answer.clone()?);
                    Some(format!("{}\n", Value::Object(line)))
                })
                .collect();
            lines.reverse();
            let status = f
                .status
                .as_deref()
                .map_or(JobStatus::Completed, |s| JobStatus::parse(s).unwrap());
            let (output, errors, report) = run(&sink, &[lines], 1 << 20, status);
            let (file, line) = match (&output[..], &errors[..]) {
                ([line], []) => ("output", line),
                ([], [line]) => ("errors", line),
                _ => {
                    failures.push(format!("{name}: one line expected, got {output:?} and {errors:?}"));
                    continue;
                }
            };
            if line["custom_id"] != f.input["custom_id"] {
                failures.push(format!("{name}: custom_id {}", line["custom_id"]));
            }
            match expected {
                EmbeddingExpected::Missing {
                    file: want,
                    batch_error,
                } => {
                    if file != want || line["error"]["code"] != batch_error.as_str() || !line["response"].is_null() {
                        failures.push(format!(
                            "{name}: expected a {batch_error} line in {want}, got {line} in {file}"
                        ));
                    }
                }
                EmbeddingExpected::Line(want) => failures.extend(check_line(name, file, line, want)),
            }
            if (
                report.mismatched,
                report.unverified,
                report.duplicate_results,
                report.unexpected_results,
            ) != (0, 0, 0, 0)
            {
                failures.push(format!("{name}: report {report:?}"));
            }
        }
        support::report(failures);
    }
}
