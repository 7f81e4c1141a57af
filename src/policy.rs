//! Every choice batchdrop makes where OpenAI and Bedrock do not line up, in one place.
//!
//! docs/formats.md#how-openai-requests-are-translated documents this table; change both together.
//!
//! | OpenAI input | what batchdrop does | why |
//! |---|---|---|
//! | `body.model` naming a Bedrock chat model of the catalogue | that model runs the line (Claude and Nova bodies, or Converse) | docs/models.md |
//! | `body.model` naming another Bedrock model | line rejected (`unsupported_model`) | not catalogued, or no translation for its family yet |
//! | a feature the model's catalogue entry does not accept (images, tools, top_k, …) | line rejected | docs/models.md "Fields" |
//! | `body.model` with any other name (`gpt-4o-mini`) | ignored, counted in the report | LangBatch does the same |
//! | `n` > 1, `stream: true`, `logprobs: true` | line rejected | no Bedrock batch equivalent (docs/formats.md#how-openai-requests-are-translated) |
//! | `temperature` above the model's maximum (its catalogue `max_temperature`, 1 for the built-in models), up to OpenAI's 2 | [`TemperaturePolicy`]: rejected (default), clamped, or every temperature scaled onto the model's range | docs/formats.md "Temperature" |
//! | `temperature` below 0 or above 2, `top_p` outside 0–1 | line rejected | outside what OpenAI and Bedrock accept |
//! | `temperature` and `top_p` both, on Claude 4.5 models | line rejected | those models take one or the other (docs/formats.md#claude-and-nova-bodies) |
//! | neither `max_completion_tokens` nor `max_tokens` | [`Policy::default_max_tokens`] | Claude requires `max_tokens` (docs/formats.md#claude-and-nova-bodies) |
//! | `max_tokens` (given or default) 0, or above the model's maximum output | line rejected | [`crate::request::check_max_tokens`], docs/formats.md "max_tokens" |
//! | a line over [`Policy::max_line_bytes`], not UTF-8, not an object | line rejected | docs/formats.md "Limits" |
//! | `top_k` | passed through | a vendor extension OpenAI lacks (docs/formats.md#how-openai-requests-are-translated) |
//! | `seed`, `user`, `metadata`, penalties, … ([`DROPPED_FIELDS`]) and unknown body fields | dropped, counted | no Bedrock meaning |
//! | `functions` / `function_call` (deprecated) | line rejected | silently dropping them would change the answer; use `tools` |
//! | image `http(s)://` URL | line rejected | Bedrock takes base64 only; batchdrop fetches nothing (docs/formats.md#claude-and-nova-bodies) |
//! | image type other than jpeg, png, gif, webp; images for Nova Micro | line rejected | docs/formats.md#claude-and-nova-bodies |
//! | audio or file content parts | line rejected | no Bedrock chat equivalent |
//! | `tool_choice: "none"` | tools omitted; rejected when the history holds tool calls | Bedrock has no "none" (docs/formats.md#how-openai-requests-are-translated) |
//! | `parallel_tool_calls` | dropped | docs/formats.md#how-openai-requests-are-translated |
//! | `response_format: text` | no-op | |
//! | `response_format: json_object` / `json_schema` | a tool the model must call ([`JSON_OBJECT_TOOL`] with any object, or the schema's name and schema); its input is returned as the message content | docs/formats.md "Structured output" |
//! | `response_format` json_object / json_schema with tools, or a tool_choice that calls a tool | line rejected | the forced tool would replace them |
//! | `tools` | translated (InvokeModel jobs only) | docs/bedrock.md#quotas |
//! | a conversation that does not start with a user turn | line rejected | Claude and Nova require it (docs/formats.md#claude-and-nova-bodies) |
//! | consecutive turns of one role (tool results count as user) | merged | docs/formats.md#how-openai-requests-are-translated |
//! | a final assistant message (prefill) ending in whitespace | trailing whitespace trimmed; dropped if nothing is left | Claude refuses it; docs/formats.md "Prefill" |
//! | a tool-call id outside `[a-zA-Z0-9_-]` (`functions.get_weather:0`) | rewritten the same way in the call and its result | Claude and Nova refuse it; docs/formats.md "Tool ids" |
//! | a `/v1/embeddings` line | Titan Text Embeddings V2 ([`DEFAULT_EMBEDDING_MODEL`] unless it or the batch names another embeddings model), one record per text of `input` | docs/formats.md "Embeddings" |
//! | embeddings `input` as token ids, empty, or over the model's length; `dimensions` the model does not give; `encoding_format` other than float or base64 | line rejected | Titan takes text, in the lengths its catalogue entry lists |
//! | a chat model on an embeddings line, an embeddings model on a chat line | line rejected (`unsupported_model`) | |
//!
//! Output side (docs/formats.md#results): `model` in each `chat.completion` is the Bedrock model id that answered; Nova
//! `malformed_model_output` / `malformed_tool_use` become error lines (status 500), not half answers.

/// Body fields with no Bedrock meaning: dropped and counted, never fatal.
pub const DROPPED_FIELDS: &[&str] = &[
    "audio",
    "frequency_penalty",
    "logit_bias",
    "metadata",
    "modalities",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "safety_identifier",
    "seed",
    "service_tier",
    "store",
    "stream_options",
    "top_logprobs",
    "user",
    "verbosity",
    "web_search_options",
];

/// The name of the tool that stands in for `response_format: {"type": "json_object"}`, whose input schema is
/// any object (docs/formats.md, "Structured output").
pub const JSON_OBJECT_TOOL: &str = "json_object";

/// The description of a structured-output tool whose `json_schema` gives none.
pub const STRUCTURED_TOOL_DESCRIPTION: &str =
    "Give your whole answer by calling this tool: its input is the answer, as one JSON object.";

/// The chat endpoint (docs/formats.md#openai-lines).
pub const CHAT_COMPLETIONS_URL: &str = "/v1/chat/completions";

/// The embeddings endpoint: its lines run on an embeddings model (docs/formats.md, "Embeddings").
pub const EMBEDDINGS_URL: &str = "/v1/embeddings";

/// The embeddings model of lines on [`EMBEDDINGS_URL`] that name no Bedrock model, unless the batch's own model
/// is an embeddings model.
pub const DEFAULT_EMBEDDING_MODEL: &str = "amazon.titan-embed-text-v2:0";

/// Image media types Claude and Nova both accept (docs/formats.md#claude-and-nova-bodies).
pub const IMAGE_TYPES: &[&str] = &["jpeg", "png", "gif", "webp"];

/// Claude's limit on one image, decoded (docs/formats.md#claude-and-nova-bodies).
pub const MAX_IMAGE_BYTES: usize = 3_750_000;

/// OpenAI's tool name rule, which Bedrock shares (docs/formats.md#how-openai-requests-are-translated): `[a-zA-Z0-9_-]{1,64}`.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// What to do with an OpenAI `temperature` above what the model takes: OpenAI accepts 0–2, Claude, Nova and
/// most Bedrock models 0–1 (docs/formats.md, "Temperature").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TemperaturePolicy {
    /// Reject the line: the safe default, since no mapping keeps what a temperature above the model's maximum
    /// meant to OpenAI.
    #[default]
    Reject,
    /// Send the model's maximum instead.
    Clamp,
    /// Scale every temperature, mapping OpenAI's 0–2 onto 0 to the model's maximum (halving it for a maximum
    /// of 1).
    Scale,
}

impl TemperaturePolicy {
    /// The policy a setting names (`reject`, `clamp`, `scale`, as the CLI's `--temperature` takes them), or
    /// why not.
    pub fn parse(s: &str) -> Result<TemperaturePolicy, String> {
        <TemperaturePolicy as clap::ValueEnum>::from_str(s, false).map_err(|_| {
            let names: Vec<String> = <TemperaturePolicy as clap::ValueEnum>::value_variants()
                .iter()
                .filter_map(|v| clap::ValueEnum::to_possible_value(v).map(|p| p.get_name().to_string()))
                .collect();
            format!("'{s}', not one of {}", names.join(", "))
        })
    }
}

/// OpenAI's temperature range.
pub const OPENAI_MAX_TEMPERATURE: f64 = 2.0;

/// Settings of the translation that a deployment may change.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A `temperature` above the model's maximum: rejected, clamped or scaled.
    pub temperature: TemperaturePolicy,
    /// `max_tokens` sent when a line gives neither `max_completion_tokens` nor `max_tokens`.
    pub default_max_tokens: u64,
    /// The longest `custom_id` accepted. OpenAI documents no limit; ours keeps map lines small.
    pub max_custom_id_len: usize,
    /// The longest input line read, in bytes; a longer one is rejected (`line_too_long`) without being
    /// held in memory. 64 MiB is far above any request a Bedrock chat model takes (docs/formats.md, "Limits").
    pub max_line_bytes: usize,
}

/// The most Bedrock models one batch may use: each is its own job group, with its own files.
pub const MAX_MODELS_PER_BATCH: usize = 100;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            temperature: TemperaturePolicy::Reject,
            default_max_tokens: 4096,
            max_custom_id_len: 512,
            max_line_bytes: 64 << 20,
        }
    }
}
