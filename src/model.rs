//! Which Bedrock model a batch or a line names, and which request format (family) it speaks.
//!
//! DESIGN.md "Model choice": a Bedrock model is named by a foundation-model id
//! (`anthropic.claude-3-haiku-20240307-v1:0`), a cross-Region inference-profile id (`us.`, `eu.`, `apac.`,
//! `global.` …) or an ARN of either. Anything else in `body.model` (`gpt-4o-mini`) is an OpenAI name:
//! ignored and counted, never an error.

use std::fmt;

/// The request/response format a model speaks for InvokeModel batch jobs (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Anthropic Messages API on Bedrock (SPEC §3.1).
    Claude,
    /// Amazon Nova `messages-v1` (SPEC §3.2).
    Nova,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Claude => "claude",
            Family::Nova => "nova",
        })
    }
}

/// A Bedrock model we can translate for, with the few per-model facts translation needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BedrockModel {
    /// The id exactly as given: this is the `modelId` of the job.
    pub id: String,
    pub family: Family,
    /// Nova Micro takes no images (SPEC §3.2).
    pub text_only: bool,
    /// Claude Sonnet/Haiku/Opus 4.5 take `temperature` or `top_p`, not both (SPEC §3.1).
    pub temperature_or_top_p: bool,
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
const GEO_PREFIXES: &[&str] = &["us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca."];

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

/// Nova models that are not chat models and so cannot take a `messages-v1` body.
const NOVA_NOT_CHAT: &[&str] = &[
    "nova-canvas",
    "nova-reel",
    "nova-sonic",
    "nova-2-sonic",
    "nova-2-multimodal",
];

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

fn classify_id(full: &str, id: &str) -> ModelName {
    let bare = GEO_PREFIXES.iter().find_map(|p| id.strip_prefix(p)).unwrap_or(id);
    let Some((provider, model)) = bare.split_once('.') else {
        return foreign_or_error(full, id);
    };
    if !BEDROCK_PROVIDERS.contains(&provider) {
        return foreign_or_error(full, id);
    }
    let supported = |family, text_only, temperature_or_top_p| {
        ModelName::Supported(BedrockModel {
            id: full.to_string(),
            family,
            text_only,
            temperature_or_top_p,
        })
    };
    match provider {
        "anthropic" if model.starts_with("claude") => {
            let exclusive = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5"]
                .iter()
                .any(|m| model.starts_with(m));
            supported(Family::Claude, false, exclusive)
        }
        "amazon" if model.starts_with("nova-") && !NOVA_NOT_CHAT.iter().any(|m| model.starts_with(m)) => {
            supported(Family::Nova, model.starts_with("nova-micro"), false)
        }
        _ => ModelName::Unsupported(format!(
            "'{full}' is a Bedrock model that batchdrop cannot translate for yet (supported: Anthropic \
             Claude and Amazon Nova chat models)"
        )),
    }
}

/// An ARN we did not recognise is an error; a plain name without a provider is somebody else's name.
fn foreign_or_error(full: &str, _id: &str) -> ModelName {
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
        assert!(micro.text_only);
        let ModelName::Supported(s45) = classify("us.anthropic.claude-sonnet-4-5-20250929-v1:0") else {
            panic!("sonnet 4.5 not recognised")
        };
        assert!(s45.temperature_or_top_p);
        let ModelName::Supported(h3) = classify("anthropic.claude-3-haiku-20240307-v1:0") else {
            panic!("haiku 3 not recognised")
        };
        assert!(!h3.temperature_or_top_p && !h3.text_only);
    }

    #[test]
    fn foreign_and_unsupported() {
        assert_eq!(classify("gpt-4o-mini"), ModelName::Foreign);
        assert_eq!(classify("claude-3-5-sonnet-latest"), ModelName::Foreign);
        assert_eq!(classify(""), ModelName::Foreign);
        for name in [
            "meta.llama3-1-70b-instruct-v1:0",
            "us.meta.llama4-scout-17b-instruct-v1:0",
            "amazon.titan-embed-text-v2:0",
            "amazon.nova-canvas-v1:0",
            "openai.gpt-oss-120b-1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
            "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
            "arn:aws:s3:::bucket/key",
        ] {
            assert!(matches!(classify(name), ModelName::Unsupported(_)), "{name}");
        }
    }
}
