//! Bedrock request bodies (SPEC §3.1 Claude, §3.2 Nova) written from a validated [`Request`], and the
//! Bedrock batch input record around them (SPEC §2.1).

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::fingerprint::{self, Fingerprint};

use crate::model::Family;
use crate::request::{Block, Request, Role, ToolMode, ToolSpec};

/// `anthropic_version` that Claude on Bedrock requires (SPEC §3.1).
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Nova's body schema version (SPEC §3.2).
pub const NOVA_SCHEMA_VERSION: &str = "messages-v1";

/// The arguments schema of a tool that declares none.
const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// Writes the `modelInput` body for `family`.
pub fn write_body(family: Family, request: &Request<'_>, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match family {
        Family::Claude => serde_json::to_writer(out, &Claude(request)),
        Family::Nova | Family::Converse => serde_json::to_writer(out, &nova(family, request)),
        Family::TitanEmbed => Err(<serde_json::Error as serde::ser::Error>::custom(
            "an embeddings model takes no chat request",
        )),
    }
}

/// The fingerprint of the body [`write_body`] writes, without writing or parsing it (it equals
/// [`Fingerprint::of_json`] of those bytes).
pub fn body_fingerprint(family: Family, request: &Request<'_>) -> Option<Fingerprint> {
    match family {
        Family::Claude => fingerprint::of_value(&Claude(request)),
        Family::Nova | Family::Converse => fingerprint::of_value(&nova(family, request)),
        Family::TitanEmbed => None,
    }
}

fn nova<'r, 'a>(family: Family, request: &'r Request<'a>) -> Nova<'r, 'a> {
    Nova {
        request,
        converse: family == Family::Converse,
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn schema<'a>(tool: &'a ToolSpec<'_>) -> &'a RawValue {
    match tool.schema {
        Some(s) => s,
        None => empty_schema(),
    }
}

fn empty_schema() -> &'static RawValue {
    // A constant that is valid JSON; the conversion cannot fail, but a failure must not panic either.
    static SCHEMA: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| RawValue::from_string(EMPTY_SCHEMA.to_string()).unwrap_or_else(|_| Box::<RawValue>::default()))
}

/// A list written from an iterator, without collecting it.
struct Seq<F>(F);

impl<I, F> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

/// A one-entry object `{key: value}`.
struct One<'k, V>(&'k str, V);

impl<V: Serialize> Serialize for One<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, &self.1)?;
        m.end()
    }
}

struct Claude<'r, 'a>(&'r Request<'a>);

impl Serialize for Claude<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("anthropic_version", ANTHROPIC_VERSION)?;
        m.serialize_entry("max_tokens", &r.max_tokens)?;
        if !r.system.is_empty() {
            m.serialize_entry("system", &Seq(|| r.system.iter().map(|t| ClaudeText(t))))?;
        }
        m.serialize_entry(
            "messages",
            &Seq(|| {
                r.turns.iter().map(|t| ClaudeMessage {
                    role: role(t.role),
                    content: &t.blocks,
                })
            }),
        )?;
        if let Some(t) = r.temperature {
            m.serialize_entry("temperature", &t)?;
        }
        if let Some(p) = r.top_p {
            m.serialize_entry("top_p", &p)?;
        }
        if let Some(k) = r.top_k {
            m.serialize_entry("top_k", &k)?;
        }
        if !r.stop.is_empty() {
            m.serialize_entry("stop_sequences", &r.stop)?;
        }
        if !r.tools.is_empty() {
            m.serialize_entry("tools", &Seq(|| r.tools.iter().map(ClaudeTool)))?;
        }
        if let Some(choice) = &r.tool_choice {
            m.serialize_entry("tool_choice", &ClaudeToolChoice(choice))?;
        }
        m.end()
    }
}

struct ClaudeText<'t>(&'t str);

impl Serialize for ClaudeText<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", "text")?;
        m.serialize_entry("text", self.0)?;
        m.end()
    }
}

#[derive(serde::Serialize)]
struct ClaudeMessage<'r, 'a> {
    role: &'static str,
    #[serde(serialize_with = "claude_blocks")]
    content: &'r Vec<Block<'a>>,
}

fn claude_blocks<S: Serializer>(blocks: &&Vec<Block<'_>>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(blocks.iter().map(ClaudeBlock))
}

struct ClaudeBlock<'r, 'a>(&'r Block<'a>);

impl Serialize for ClaudeBlock<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            Block::Text(text) => {
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", text)?;
            }
            Block::Image { format, data } => {
                m.serialize_entry("type", "image")?;
                m.serialize_entry(
                    "source",
                    &ClaudeImage {
                        kind: "base64",
                        media_type: format,
                        data,
                    },
                )?;
            }
            Block::ToolUse { id, name, input } => {
                m.serialize_entry("type", "tool_use")?;
                m.serialize_entry("id", id)?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("input", input)?;
            }
            Block::ToolResult { id, text } => {
                m.serialize_entry("type", "tool_result")?;
                m.serialize_entry("tool_use_id", id)?;
                m.serialize_entry("content", text)?;
            }
        }
        m.end()
    }
}

struct ClaudeImage<'d> {
    kind: &'static str,
    media_type: &'d str,
    data: &'d str,
}

impl Serialize for ClaudeImage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("type", self.kind)?;
        m.serialize_entry("media_type", &format_args!("image/{}", self.media_type))?;
        m.serialize_entry("data", self.data)?;
        m.end()
    }
}

struct ClaudeTool<'r, 'a>(&'r ToolSpec<'a>);

impl Serialize for ClaudeTool<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &t.name)?;
        if let Some(d) = &t.description {
            m.serialize_entry("description", d)?;
        }
        m.serialize_entry("input_schema", schema(t))?;
        m.end()
    }
}

/// SPEC §4.4: auto → auto, required → any, named → tool. ("none" never gets here: the tools are dropped.)
struct ClaudeToolChoice<'r, 'a>(&'r ToolMode<'a>);

impl Serialize for ClaudeToolChoice<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            ToolMode::Auto => m.serialize_entry("type", "auto")?,
            ToolMode::Any => m.serialize_entry("type", "any")?,
            ToolMode::Tool(name) => {
                m.serialize_entry("type", "tool")?;
                m.serialize_entry("name", name)?;
            }
        }
        m.end()
    }
}

/// Nova's `messages-v1` body, or with `converse` a Converse request without `modelId` (docs/formats.md,
/// "Converse"), which shares its content blocks, `system` and `inferenceConfig`. A Converse request has no
/// `schemaVersion`, and `topK` goes in `additionalModelRequestFields` as `top_k`. The catalogue's Converse
/// models take no tools: Bedrock fails Converse-type batch records with a `toolConfig`.
struct Nova<'r, 'a> {
    request: &'r Request<'a>,
    converse: bool,
}

impl Serialize for Nova<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let mut m = s.serialize_map(None)?;
        if !self.converse {
            m.serialize_entry("schemaVersion", NOVA_SCHEMA_VERSION)?;
        }
        if !r.system.is_empty() {
            m.serialize_entry("system", &Seq(|| r.system.iter().map(|t| One("text", t))))?;
        }
        m.serialize_entry(
            "messages",
            &Seq(|| {
                r.turns.iter().map(|t| NovaMessage {
                    role: role(t.role),
                    content: &t.blocks,
                })
            }),
        )?;
        m.serialize_entry("inferenceConfig", &NovaInference(r, !self.converse))?;
        if let Some(k) = r.top_k.filter(|_| self.converse) {
            m.serialize_entry("additionalModelRequestFields", &One("top_k", k))?;
        }
        if !r.tools.is_empty() {
            m.serialize_entry("toolConfig", &NovaToolConfig(r))?;
        }
        m.end()
    }
}

#[derive(serde::Serialize)]
struct NovaMessage<'r, 'a> {
    role: &'static str,
    #[serde(serialize_with = "nova_blocks")]
    content: &'r Vec<Block<'a>>,
}

fn nova_blocks<S: Serializer>(blocks: &&Vec<Block<'_>>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(blocks.iter().map(NovaBlock))
}

struct NovaBlock<'r, 'a>(&'r Block<'a>);

impl Serialize for NovaBlock<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Block::Text(text) => One("text", text).serialize(s),
            Block::Image { format, data } => One("image", NovaImage { format, data }).serialize(s),
            Block::ToolUse { id, name, input } => One("toolUse", NovaToolUse { id, name, input }).serialize(s),
            Block::ToolResult { id, text } => One("toolResult", NovaToolResult { id, text }).serialize(s),
        }
    }
}

struct NovaImage<'d> {
    format: &'d str,
    data: &'d str,
}

impl Serialize for NovaImage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("format", self.format)?;
        m.serialize_entry("source", &One("bytes", self.data))?;
        m.end()
    }
}

struct NovaToolUse<'d> {
    id: &'d str,
    name: &'d str,
    input: &'d RawValue,
}

impl Serialize for NovaToolUse<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("toolUseId", self.id)?;
        m.serialize_entry("name", self.name)?;
        m.serialize_entry("input", self.input)?;
        m.end()
    }
}

struct NovaToolResult<'d> {
    id: &'d str,
    text: &'d str,
}

impl Serialize for NovaToolResult<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("toolUseId", self.id)?;
        m.serialize_entry("content", &[One("text", self.text)])?;
        m.serialize_entry("status", "success")?;
        m.end()
    }
}

/// `inferenceConfig`; the flag says whether `topK` belongs in it (Nova's body) or not (Converse's).
struct NovaInference<'r, 'a>(&'r Request<'a>, bool);

impl Serialize for NovaInference<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("maxTokens", &r.max_tokens)?;
        if let Some(t) = r.temperature {
            m.serialize_entry("temperature", &t)?;
        }
        if let Some(p) = r.top_p {
            m.serialize_entry("topP", &p)?;
        }
        if let Some(k) = r.top_k.filter(|_| self.1) {
            m.serialize_entry("topK", &k)?;
        }
        if !r.stop.is_empty() {
            m.serialize_entry("stopSequences", &r.stop)?;
        }
        m.end()
    }
}

struct NovaToolConfig<'r, 'a>(&'r Request<'a>);

impl Serialize for NovaToolConfig<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "tools",
            &Seq(|| r.tools.iter().map(|t| One("toolSpec", NovaToolSpec(t)))),
        )?;
        match &r.tool_choice {
            None => {}
            Some(ToolMode::Auto) => m.serialize_entry("toolChoice", &One("auto", Empty))?,
            // SPEC §3.2: the Nova docs conflict on `any`/`tool`; the tool-choice page, the newer, allows both.
            Some(ToolMode::Any) => m.serialize_entry("toolChoice", &One("any", Empty))?,
            Some(ToolMode::Tool(name)) => m.serialize_entry("toolChoice", &One("tool", One("name", name)))?,
        }
        m.end()
    }
}

struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

struct NovaToolSpec<'r, 'a>(&'r ToolSpec<'a>);

impl Serialize for NovaToolSpec<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &t.name)?;
        if let Some(d) = &t.description {
            m.serialize_entry("description", d)?;
        }
        m.serialize_entry("inputSchema", &One("json", schema(t)))?;
        m.end()
    }
}
