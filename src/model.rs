//! Which Bedrock model a batch or a line names, and which request format (family) it speaks.
//!
//! docs/formats.md#model-ids: a Bedrock model is named by a foundation-model id
//! (`anthropic.claude-3-haiku-20240307-v1:0`), a cross-Region inference-profile id (`us.`, `eu.`, `apac.`,
//! `global.` …) or an ARN of either. Anything else in `body.model` (`gpt-4o-mini`) is an OpenAI name:
//! ignored and counted, never an error.
//!
//! A name that looks like a Bedrock model (a provider prefix such as `anthropic.`, after an optional geo prefix,
//! or an `arn:`) must also have the syntax Bedrock accepts for a job's `modelId`: otherwise the job would fail
//! at CreateModelInvocationJob, long after the file was accepted, so it is an error here instead
//! (docs/formats.md, "Model ids").

use std::fmt;
use std::sync::OnceLock;

use regex_lite::Regex;

use crate::catalogue::{self, Accepts, Embedding, Entry, Invocation};

/// The request/response format a model speaks for InvokeModel batch jobs (docs/formats.md#claude-and-nova-bodies). The record map and
/// batch.json keep it by its name (`claude`, `nova`, `converse`, `titan-embed`), so that a batch reads its
/// results, and creates its jobs, as it was translated, whatever the model catalogue says by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Anthropic Messages API on Bedrock (docs/formats.md#claude-and-nova-bodies).
    Claude,
    /// Amazon Nova `messages-v1` (docs/formats.md#claude-and-nova-bodies).
    Nova,
    /// A Converse request and response, in a job of `modelInvocationType: Converse` (docs/formats.md,
    /// "Converse"): Llama, Mistral, DeepSeek, Qwen, gpt-oss, and any model the catalogue runs so.
    Converse,
    /// Amazon Titan Text Embeddings: one text in, one vector out (docs/formats.md, "Embeddings").
    TitanEmbed,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Claude => "claude",
            Family::Nova => "nova",
            Family::Converse => "converse",
            Family::TitanEmbed => "titan-embed",
        })
    }
}

/// A Bedrock model we can translate for, with its catalogue entry (docs/models.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BedrockModel {
    /// The id exactly as given: this is the `modelId` of the job.
    pub id: String,
    pub family: Family,
    /// Every fact about the model: what it accepts, its maximum output, its prices.
    pub entry: &'static Entry,
}

impl BedrockModel {
    /// The most output tokens one request may ask of this model: a larger `max_tokens` fails the record inside
    /// the job, so it is better refused before the job is made.
    pub fn max_output_tokens(&self) -> u64 {
        self.entry.max_output_tokens.unwrap_or(0)
    }

    /// Whether the model takes `temperature` or `top_p`, not both.
    pub fn temperature_or_top_p(&self) -> bool {
        !self.entry.temperature_with_top_p
    }

    pub fn accepts(&self) -> Accepts {
        self.entry.accepts
    }

    /// What the model takes, when it is an embeddings model; `None` for a chat model.
    pub fn embedding(&self) -> Option<&'static Embedding> {
        self.entry.embedding.as_ref()
    }
}

/// What a model name turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelName {
    /// A Bedrock model of a family we translate for.
    Supported(BedrockModel),
    /// A Bedrock model we cannot use; the string says why.
    Unsupported(String),
    /// Not a Bedrock model name (an OpenAI name such as `gpt-4o-mini`).
    Foreign,
}

/// Cross-Region inference-profile prefixes. `us-gov.` and the country prefixes appear in newer Regions.
pub(crate) const GEO_PREFIXES: &[&str] = &["us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca."];

/// Providers whose models Bedrock serves; a name starting `<provider>.` is a Bedrock model id.
const BEDROCK_PROVIDERS: &[&str] = &[
    "ai21",
    "amazon",
    "anthropic",
    "cohere",
    "deepseek",
    "luma",
    "meta",
    "mistral",
    "moonshot",
    "openai",
    "qwen",
    "stability",
    "twelvelabs",
    "writer",
];

/// The syntax of a `modelId`, as Bedrock's API model gives it for the `ModelId` shape, which
/// CreateModelInvocationJob's `modelId` uses: foundation-model and inference-profile ids, and the ARNs of
/// foundation models, custom models and (application) inference profiles. The service applies it to the
/// whole string, so it is compiled with anchors.
const MODEL_ID_PATTERN: &str = r"(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:(([0-9]{12}:custom-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-:]{1,63}/[a-z0-9]{12}$)|(:foundation-model/([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)$)|([0-9]{12}:(inference-profile|application-inference-profile)/[a-zA-Z0-9-:.]+$)))|([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)";

/// The `ModelId` shape's length bounds.
const MODEL_ID_LENGTH: std::ops::RangeInclusive<usize> = 1..=2048;

/// `None` only if [`MODEL_ID_PATTERN`] does not compile, which the unit tests rule out; the check then falls
/// back to the length bounds rather than refusing every model.
fn model_id_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(&format!("^(?:{MODEL_ID_PATTERN})$")).ok())
        .as_ref()
}

/// Whether Bedrock would accept `id` as the `modelId` of a job, by syntax alone (it may still name no model).
pub fn is_valid_model_id(id: &str) -> bool {
    MODEL_ID_LENGTH.contains(&id.len()) && model_id_regex().is_none_or(|re| re.is_match(id))
}

/// The error for a Bedrock-looking name that does not have Bedrock's `modelId` syntax.
fn invalid_model_id(full: &str) -> ModelName {
    ModelName::Unsupported(if full.starts_with("arn:") {
        format!(
            "'{full}' is not a valid Bedrock model ARN: Bedrock model ARNs look like \
             arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0 (no account) or \
             arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0, \
             with a lowercase model id"
        )
    } else {
        format!(
            "'{full}' is not a valid Bedrock model id: Bedrock model ids are lowercase letters, digits and '-' in \
             '.'-separated parts with an optional ':' version, like anthropic.claude-3-haiku-20240307-v1:0 or \
             us.amazon.nova-lite-v1:0"
        )
    })
}

/// The model a `--model` option names: a supported Bedrock model, or why not (for the CLI's messages).
pub fn batch_model_arg(name: &str) -> Result<BedrockModel, String> {
    match classify(name) {
        ModelName::Supported(m) => Ok(m),
        ModelName::Unsupported(why) => Err(format!("--model: {why}")),
        ModelName::Foreign => Err(format!(
            "--model: '{name}' is not a Bedrock model id, inference profile id or ARN"
        )),
    }
}

/// Classifies a model name: a supported Bedrock model, an unsupported one, or a foreign name.
pub fn classify(name: &str) -> ModelName {
    let name_trimmed = name.trim();
    if name_trimmed.is_empty() {
        return ModelName::Foreign;
    }
    if let Some(rest) = name_trimmed.strip_prefix("arn:") {
        return classify_arn(name_trimmed, rest);
    }
    classify_id(name_trimmed, name_trimmed)
}

/// `arn:aws[-partition]:bedrock:<region>:<account>:<type>/<id>`.
fn classify_arn(full: &str, after_arn: &str) -> ModelName {
    let parts: Vec<&str> = after_arn.splitn(5, ':').collect();
    let [partition, service, _region, _account, resource] = parts.as_slice() else {
        return ModelName::Unsupported(format!("'{full}' is not a well-formed ARN"));
    };
    if !partition.starts_with("aws") || *service != "bedrock" {
        return ModelName::Unsupported(format!("'{full}' is not a Bedrock ARN"));
    }
    let Some((kind, id)) = resource.split_once('/') else {
        return ModelName::Unsupported(format!("'{full}' names no Bedrock resource"));
    };
    match kind {
        "foundation-model" | "inference-profile" if !is_valid_model_id(full) => invalid_model_id(full),
        "foundation-model" | "inference-profile" => classify_id(full, id),
        "application-inference-profile" | "custom-model" | "imported-model" => ModelName::Unsupported(format!(
            "cannot tell the model family of '{full}' from its ARN; name the foundation model or its \
             cross-Region inference profile instead"
        )),
        "provisioned-model" => ModelName::Unsupported(format!(
            "'{full}' is a provisioned model, and batch inference does not run on provisioned models"
        )),
        other => ModelName::Unsupported(format!("'{full}' is a Bedrock {other}, not a model")),
    }
}

/// `id` is the whole name or, for an ARN, its resource id; `full` is what the job will be given.
fn classify_id(full: &str, id: &str) -> ModelName {
    // Whether the name is Bedrock's is decided case-blind, so that a mistyped `Anthropic.claude-…` is an error
    // rather than an OpenAI name silently replaced by the batch model.
    let lower = id.to_ascii_lowercase();
    let Some((provider, _)) = strip_geo(&lower).split_once('.') else {
        return foreign_or_error(full);
    };
    // A provider is Bedrock's if it is one we know or one a catalogue entry names (a user's file may add one).
    if !BEDROCK_PROVIDERS.contains(&provider) && !catalogue::get().is_ok_and(|c| c.names_provider(provider)) {
        return foreign_or_error(full);
    }
    // An inference-profile ARN allows capitals in its id; the model id inside it does not.
    if !is_valid_model_id(id) {
        return invalid_model_id(full);
    }
    let bare = strip_geo(id);
    if !bare.contains('.') {
        return foreign_or_error(full);
    }
    let catalogue = match catalogue::get() {
        Ok(c) => c,
        Err(why) => return ModelName::Unsupported(format!("'{full}': the model catalogue cannot be read: {why}")),
    };
    let Some(entry) = catalogue.lookup(bare) else {
        return ModelName::Unsupported(format!(
            "'{full}' is not in batchdrop's model catalogue ({}); if Bedrock runs batch jobs for it, describe it \
             in a catalogue file of your own and pass it with --models FILE or {} (docs/models.md, \
             \"Adding a model\")",
            catalogue.origin(),
            catalogue::ENV_VAR
        ));
    };
    let family = match (entry.family, entry.invocation) {
        (catalogue::Family::Claude, Invocation::InvokeModel) => Family::Claude,
        (catalogue::Family::Nova, Invocation::InvokeModel) => Family::Nova,
        (catalogue::Family::TitanEmbed, Invocation::InvokeModel) => Family::TitanEmbed,
        (f, Invocation::Converse) if f != catalogue::Family::TitanEmbed => Family::Converse,
        (family, invocation) => {
            return ModelName::Unsupported(format!(
                "'{full}' is {} ({family}, {invocation} bodies) in the model catalogue, and batchdrop does not \
                 translate for that yet (supported: Claude and Nova chat models with their InvokeModel bodies, and chat models \
                 through Converse, and Titan embeddings models)",
                entry.name
            ));
        }
    };
    ModelName::Supported(BedrockModel {
        id: full.to_string(),
        family,
        entry,
    })
}

fn strip_geo(id: &str) -> &str {
    GEO_PREFIXES.iter().find_map(|p| id.strip_prefix(p)).unwrap_or(id)
}

/// An ARN we did not recognise is an error; a plain name without a provider is somebody else's name.
fn foreign_or_error(full: &str) -> ModelName {
    if full.starts_with("arn:") {
        ModelName::Unsupported(format!("'{full}' names no Bedrock model we recognise"))
    } else {
        ModelName::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(name: &str) -> Option<Family> {
        match classify(name) {
            ModelName::Supported(m) => Some(m.family),
            _ => None,
        }
    }

    #[test]
    fn recognises_ids_profiles_and_arns() {
        assert_eq!(family("anthropic.claude-3-haiku-20240307-v1:0"), Some(Family::Claude));
        assert_eq!(
            family("us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            Some(Family::Claude)
        );
        assert_eq!(
            family("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            Some(Family::Claude)
        );
        assert_eq!(family("apac.amazon.nova-lite-v1:0"), Some(Family::Nova));
        assert_eq!(family("eu.amazon.nova-pro-v1:0"), Some(Family::Nova));
        assert_eq!(family("amazon.nova-2-lite-v1:0"), Some(Family::Nova));
        assert_eq!(
            family("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-sonnet-20240229-v1:0"),
            Some(Family::Claude)
        );
        assert_eq!(
            family("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-premier-v1:0"),
            Some(Family::Nova)
        );
    }

    #[test]
    fn per_model_facts() {
        let ModelName::Supported(micro) = classify("us.amazon.nova-micro-v1:0") else {
            panic!("nova micro not recognised")
        };
        assert!(!micro.accepts().images);
        let ModelName::Supported(s45) = classify("us.anthropic.claude-sonnet-4-5-20250929-v1:0") else {
            panic!("sonnet 4.5 not recognised")
        };
        assert!(s45.temperature_or_top_p());
        let ModelName::Supported(h3) = classify("anthropic.claude-3-haiku-20240307-v1:0") else {
            panic!("haiku 3 not recognised")
        };
        assert!(!h3.temperature_or_top_p() && h3.accepts().images);
    }

    #[test]
    fn foreign_and_unsupported() {
        assert_eq!(classify("gpt-4o-mini"), ModelName::Foreign);
        assert_eq!(classify("claude-3-5-sonnet-latest"), ModelName::Foreign);
        assert_eq!(classify(""), ModelName::Foreign);
        assert_eq!(family("meta.llama3-1-70b-instruct-v1:0"), Some(Family::Converse));
        assert_eq!(family("us.openai.gpt-oss-120b-1:0"), Some(Family::Converse));
        assert_eq!(family("amazon.titan-embed-text-v2:0"), Some(Family::TitanEmbed));
        for name in [
            // Not in the catalogue: a model Bedrock has, but not batch, and an image model.
            "us.meta.llama4-scout-17b-instruct-v1:0",
            "amazon.titan-embed-text-v1",
            "amazon.nova-canvas-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
            "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
            "arn:aws:s3:::bucket/key",
        ] {
            assert!(matches!(classify(name), ModelName::Unsupported(_)), "{name}");
        }
    }

    fn unsupported(name: &str) -> String {
        match classify(name) {
            ModelName::Unsupported(why) => why,
            other => panic!("{name}: expected Unsupported, got {other:?}"),
        }
    }

    fn max_output(name: &str) -> u64 {
        match classify(name) {
            ModelName::Supported(m) => m.max_output_tokens(),
            other => panic!("{name}: expected Supported, got {other:?}"),
        }
    }

    #[test]
    fn the_model_id_pattern_compiles() {
        assert!(model_id_regex().is_some());
    }

    #[test]
    fn ids_bedrock_would_refuse_are_errors_that_show_the_form() {
        for name in [
            "anthropic.claude_3_haiku",
            "anthropic.claude-3-Haiku-20240307-v1:0",
            "anthropic.claude-sonnet-4-5@20250929",
            "Anthropic.claude-3-haiku-20240307-v1:0",
            "US.anthropic.claude-3-5-haiku-20241022-v1:0",
            "amazon.nova lite",
            "anthropic.claude-3-haiku-20240307-v1:0:extra:more",
        ] {
            assert!(!is_valid_model_id(name), "{name}");
            let why = unsupported(name);
            assert!(
                why.starts_with(&format!("'{name}' is not a valid Bedrock model id: ")),
                "{why}"
            );
            assert!(
                why.contains("lowercase") && why.contains("anthropic.claude-3-haiku-20240307-v1:0"),
                "{why}"
            );
        }
    }

    #[test]
    fn arns_bedrock_would_refuse_are_errors() {
        for name in [
            // A foundation-model ARN has no account.
            "arn:aws:bedrock:us-east-1:123456789012:foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-Haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:1234:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            // The profile id may have capitals by the pattern, the model id inside it may not.
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.Claude-3-haiku-20240307-v1:0",
            "arn:awsx:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        ] {
            let why = unsupported(name);
            assert!(
                why.starts_with(&format!("'{name}' is not a valid Bedrock model ARN: ")),
                "{why}"
            );
        }
    }

    #[test]
    fn valid_ids_profiles_and_arns_pass_the_pattern() {
        for name in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "anthropic.claude-3-sonnet-20240229-v1:0:28k",
            "anthropic.claude-opus-4-6-v1",
            "amazon.nova-micro-v1:0",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            "eu.amazon.nova-pro-v1:0",
            "apac.amazon.nova-lite-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us-gov.anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/amazon.nova-lite-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.amazon.nova-pro-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-lite-v1:0:300k/abcdef123456",
        ] {
            assert!(is_valid_model_id(name), "{name}");
        }
        for name in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            "eu.amazon.nova-pro-v1:0",
            "apac.amazon.nova-lite-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
        ] {
            assert!(matches!(classify(name), ModelName::Supported(_)), "{name}");
        }
        assert!(!is_valid_model_id(""));
        assert!(!is_valid_model_id(&format!(
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/{}",
            "a".repeat(2048)
        )));
    }

    #[test]
    fn names_that_are_not_bedrock_stay_foreign() {
        for name in [
            "gpt-4o-mini",
            "gpt-4.1-mini",
            "gpt-3.5-turbo",
            "o1-preview",
            "claude-3-haiku@20240307",
        ] {
            assert_eq!(classify(name), ModelName::Foreign, "{name}");
        }
    }

    #[test]
    fn max_output_tokens_by_model() {
        for (name, expected) in [
            ("anthropic.claude-3-haiku-20240307-v1:0", 4_096),
            ("anthropic.claude-3-sonnet-20240229-v1:0:200k", 4_096),
            ("us.anthropic.claude-3-opus-20240229-v1:0", 4_096),
            ("us.anthropic.claude-3-5-haiku-20241022-v1:0", 8_192),
            ("anthropic.claude-3-5-sonnet-20240620-v1:0", 8_192),
            ("anthropic.claude-3-5-sonnet-20241022-v2:0", 8_192),
            ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", 64_000),
            ("us.anthropic.claude-sonnet-4-20250514-v1:0", 64_000),
            ("us.anthropic.claude-opus-4-20250514-v1:0", 32_000),
            ("us.anthropic.claude-opus-4-1-20250805-v1:0", 32_000),
            ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", 64_000),
            ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", 64_000),
            ("global.anthropic.claude-opus-4-5-20251101-v1:0", 64_000),
            ("amazon.nova-micro-v1:0", 5_000),
            ("apac.amazon.nova-lite-v1:0", 5_000),
            ("amazon.nova-lite-v1:0:300k", 5_000),
            ("eu.amazon.nova-pro-v1:0", 5_000),
            ("us.amazon.nova-premier-v1:0", 5_000),
            ("global.amazon.nova-2-lite-v1:0", 64_000),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0",
                64_000,
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0",
                32_000,
            ),
        ] {
            assert_eq!(max_output(name), expected, "{name}");
        }
    }
}
