//! The model catalogue: every per-model fact batchdrop uses, in one data table (docs/models.md).
//!
//! The built-in table is `models.json` beside this file, compiled in and read once. A user extends it with a
//! file of the same shape (`--models FILE` on the CLI, or `BATCHDROP_MODELS=FILE`; a deployed stack's functions
//! have no such file and use the built-in table): its entries come first,
//! so an entry with the id of a built-in one replaces it, and a new id adds a model.
//!
//! An entry's `id` is the start of a Bedrock foundation-model id (`anthropic.claude-3-haiku-20240307`); it
//! matches that model under any inference-profile prefix (`us.`, `global.` …) and inside an ARN, and the
//! longest matching id wins. [`crate::model::classify`] does the matching.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

/// The built-in table.
const BUILTIN: &str = include_str!("models.json");

/// The environment variable that names a user's catalogue file.
pub const ENV_VAR: &str = "BATCHDROP_MODELS";

/// Which provider family a model belongs to; with the invocation type it decides the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Claude,
    Nova,
    Llama,
    Mistral,
    Deepseek,
    Qwen,
    GptOss,
    TitanEmbed,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Claude => "claude",
            Family::Nova => "nova",
            Family::Llama => "llama",
            Family::Mistral => "mistral",
            Family::Deepseek => "deepseek",
            Family::Qwen => "qwen",
            Family::GptOss => "gpt-oss",
            Family::TitanEmbed => "titan-embed",
        })
    }
}

/// The body a job's records carry: the model's native InvokeModel body, or a Converse request
/// (`modelInvocationType` of CreateModelInvocationJob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Invocation {
    InvokeModel,
    Converse,
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invocation::InvokeModel => "InvokeModel",
            Invocation::Converse => "Converse",
        })
    }
}

/// A request feature a model may or may not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    System,
    Images,
    Tools,
    StructuredOutput,
    StopSequences,
    TopK,
}

/// What a model's requests may hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Accepts {
    pub system: bool,
    pub images: bool,
    pub tools: bool,
    pub structured_output: bool,
    pub stop_sequences: bool,
    pub top_k: bool,
}

impl Accepts {
    fn from_features(features: &[Feature]) -> Accepts {
        let has = |f| features.contains(&f);
        Accepts {
            system: has(Feature::System),
            images: has(Feature::Images),
            tools: has(Feature::Tools),
            structured_output: has(Feature::StructuredOutput),
            stop_sequences: has(Feature::StopSequences),
            top_k: has(Feature::TopK),
        }
    }
}

/// A list price in US dollars per million tokens, kept in millionths of a dollar so that entries compare and
/// hash exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Price {
    pub input_micros: u64,
    pub output_micros: u64,
}

impl Price {
    /// The cost in dollars of `input` and `output` tokens at this price.
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_micros as f64 + output as f64 * self.output_micros as f64) / 1e12
    }
}

/// A model's list prices and where they come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prices {
    /// A key of the catalogue's `sources`, which says where and as of when.
    pub source: String,
    pub on_demand: Price,
    /// `None` where the source publishes no batch price.
    pub batch: Option<Price>,
}

/// One model of the catalogue, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The start of the foundation-model ids it covers.
    pub id: String,
    pub name: String,
    pub family: Family,
    pub invocation: Invocation,
    /// The most output tokens one request may ask for; `None` for an embeddings model.
    pub max_output_tokens: Option<u64>,
    pub accepts: Accepts,
    /// Whether a request may set both `temperature` and `top_p` (Claude 4.5 models take one or the other).
    pub temperature_with_top_p: bool,
    /// The highest `temperature` the model takes; 1 unless the entry says otherwise.
    pub max_temperature: Temperature,
    /// The fewest records Bedrock accepts in one batch job of this model.
    pub min_records: u64,
    /// Keys of the catalogue's `sources` the facts come from.
    pub facts: Vec<String>,
    pub prices: Option<Prices>,
    /// What an embeddings model takes; `Some` exactly for embeddings models.
    pub embedding: Option<Embedding>,
}

/// A temperature, compared and hashed by its bits: the catalogue accepts only numbers above 0 and at most 2,
/// never NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Temperature(pub f64);

impl Eq for Temperature {}

impl std::hash::Hash for Temperature {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// The highest temperature of a model whose entry gives none: Claude's, Nova's and the other Bedrock chat
/// models' in the built-in table.
pub const DEFAULT_MAX_TEMPERATURE: f64 = 1.0;

/// What one embeddings request may ask of an embeddings model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Embedding {
    /// The vector lengths the model can give, in the order the catalogue lists them.
    pub dimensions: Vec<u32>,
    /// The length given when a request names none (and sent explicitly, so the answer's length is known).
    pub default_dimensions: u32,
    /// The longest text one record may carry, in characters.
    pub max_input_chars: u64,
}

/// The checked catalogue: the user's entries first, then the built-in ones.
#[derive(Debug, Clone)]
pub struct Catalogue {
    entries: Vec<Entry>,
    sources: BTreeMap<String, String>,
    /// Where the entries come from, for messages: "built-in", then any user file.
    origins: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWire {
    #[serde(default)]
    #[allow(dead_code)] // documentation for the reader of the file
    about: Option<String>,
    min_records: Option<u64>,
    #[serde(default)]
    sources: BTreeMap<String, String>,
    models: Vec<EntryWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryWire {
    id: String,
    name: String,
    family: Family,
    invocation: Invocation,
    max_output_tokens: Option<u64>,
    accepts: Vec<Feature>,
    temperature_with_top_p: bool,
    max_temperature: Option<f64>,
    min_records: Option<u64>,
    #[serde(default)]
    facts: Vec<String>,
    prices: Option<PricesWire>,
    embedding: Option<EmbeddingWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingWire {
    dimensions: Vec<u32>,
    default_dimensions: u32,
    max_input_chars: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricesWire {
    source: String,
    on_demand: PriceWire,
    batch: Option<PriceWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceWire {
    input: f64,
    output: f64,
}

/// The fewest records per job where neither the entry nor its file says (Bedrock's documented default).
const DEFAULT_MIN_RECORDS: u64 = 100;

fn micros(dollars: f64, what: &str) -> Result<u64, String> {
    if !dollars.is_finite() || !(0.0..=1e6).contains(&dollars) {
        return Err(format!(
            "{what} is {dollars}, not a price in dollars per million tokens"
        ));
    }
    Ok((dollars * 1e6).round() as u64)
}

/// The foundation-model id syntax an entry's id must be the start of: lowercase, a provider and a model
/// separated by a dot, no inference-profile prefix.
fn check_id(id: &str) -> Result<(), String> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'));
    let Some((provider, model)) = id.split_once('.') else {
        return Err(format!(
            "id '{id}' has no '<provider>.' start (like anthropic.claude-3-haiku-20240307)"
        ));
    };
    if !ok_chars || provider.is_empty() || model.is_empty() {
        return Err(format!(
            "id '{id}' is not the start of a foundation-model id: lowercase letters, digits, '-', '.' and ':', \
             like anthropic.claude-3-haiku-20240307"
        ));
    }
    if crate::model::GEO_PREFIXES.iter().any(|p| id.starts_with(p)) {
        return Err(format!(
            "id '{id}' starts with an inference-profile prefix; give the foundation-model id, which matches every \
             profile of it"
        ));
    }
    Ok(())
}

impl Catalogue {
    /// The built-in table alone.
    pub fn builtin() -> Result<Catalogue, String> {
        Catalogue::parse(BUILTIN, "built-in", &BTreeMap::new())
    }

    /// Reads a catalogue file. `known_sources` are the sources its entries may cite besides its own.
    fn parse(text: &str, origin: &str, known_sources: &BTreeMap<String, String>) -> Result<Catalogue, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: FileWire = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                String::new()
            } else {
                format!(" at {path}")
            };
            format!("{origin}: not a model catalogue{at}: {}", e.inner())
        })?;
        let mut sources = known_sources.clone();
        sources.extend(file.sources.clone());
        let default_min = file.min_records.unwrap_or(DEFAULT_MIN_RECORDS);
        let mut entries = Vec::with_capacity(file.models.len());
        for (i, wire) in file.models.into_iter().enumerate() {
            let at = format!("{origin}: models[{i}]");
            let entry = Catalogue::check_entry(wire, default_min, &sources).map_err(|why| format!("{at}: {why}"))?;
            if let Some(j) = entries.iter().position(|e: &Entry| e.id == entry.id) {
                return Err(format!("{at}: id '{}' is also models[{j}]", entry.id));
            }
            entries.push(entry);
        }
        Ok(Catalogue {
            entries,
            sources: file.sources,
            origins: vec![origin.to_string()],
        })
    }

    fn check_entry(w: EntryWire, default_min: u64, sources: &BTreeMap<String, String>) -> Result<Entry, String> {
        check_id(&w.id)?;
        if w.name.trim().is_empty() {
            return Err(format!("'{}': name is empty", w.id));
        }
        let embedding = match (w.family, w.embedding) {
            (Family::TitanEmbed, None) => {
                return Err(format!(
                    "'{}': an embeddings model needs \"embedding\": {{\"dimensions\", \"default_dimensions\", \"max_input_chars\"}}",
                    w.id
                ))
            }
            (Family::TitanEmbed, Some(_)) if w.invocation != Invocation::InvokeModel => {
                return Err(format!(
                    "'{}': an embeddings model runs with its InvokeModel body; Converse is for chat models",
                    w.id
                ))
            }
            (Family::TitanEmbed, Some(e)) => {
                if e.dimensions.is_empty() || e.dimensions.contains(&0) || !e.dimensions.contains(&e.default_dimensions) {
                    return Err(format!(
                        "'{}': embedding.dimensions must be a non-empty list of lengths above 0 that holds \
                         embedding.default_dimensions",
                        w.id
                    ));
                }
                if e.max_input_chars == 0 {
                    return Err(format!("'{}': embedding.max_input_chars must be at least 1", w.id));
                }
                Some(Embedding {
                    dimensions: e.dimensions,
                    default_dimensions: e.default_dimensions,
                    max_input_chars: e.max_input_chars,
                })
            }
            (_, Some(_)) => return Err(format!("'{}': only an embeddings model has \"embedding\"", w.id)),
            (_, None) => None,
        };
        match (w.family, w.max_output_tokens) {
            (Family::TitanEmbed, Some(_)) => {
                return Err(format!(
                    "'{}': an embeddings model has no max_output_tokens (null)",
                    w.id
                ));
            }
            (Family::TitanEmbed, None) => {}
            (_, None | Some(0)) => {
                return Err(format!(
                    "'{}': max_output_tokens must be a whole number of at least 1",
                    w.id
                ));
            }
            (_, Some(_)) => {}
        }
        if w.invocation == Invocation::Converse
            && (w.accepts.contains(&Feature::Tools) || w.accepts.contains(&Feature::StructuredOutput))
        {
            return Err(format!(
                "'{}': a Converse model cannot accept tools or structured_output: Bedrock fails Converse-type batch \
                 records that carry a toolConfig",
                w.id
            ));
        }
        let max_temperature = w.max_temperature.unwrap_or(DEFAULT_MAX_TEMPERATURE);
        if !(max_temperature > 0.0 && max_temperature <= 2.0) {
            return Err(format!(
                "'{}': max_temperature is {max_temperature}; it must be above 0 and at most 2 (OpenAI's highest)",
                w.id
            ));
        }
        let min_records = w.min_records.unwrap_or(default_min);
        if min_records == 0 {
            return Err(format!("'{}': min_records must be at least 1", w.id));
        }
        let known = |key: &str, what: &str| {
            if sources.contains_key(key) {
                Ok(())
            } else {
                Err(format!(
                    "'{}': {what} '{key}' is not one of the catalogue's sources",
                    w.id
                ))
            }
        };
        for key in &w.facts {
            known(key, "facts source")?;
        }
        let prices = match w.prices {
            None => None,
            Some(p) => {
                known(&p.source, "prices source")?;
                let price = |q: &PriceWire, kind: &str| -> Result<Price, String> {
                    Ok(Price {
                        input_micros: micros(q.input, &format!("'{}': prices.{kind}.input", w.id))?,
                        output_micros: micros(q.output, &format!("'{}': prices.{kind}.output", w.id))?,
                    })
                };
                Some(Prices {
                    on_demand: price(&p.on_demand, "on_demand")?,
                    batch: p.batch.as_ref().map(|b| price(b, "batch")).transpose()?,
                    source: p.source,
                })
            }
        };
        Ok(Entry {
            accepts: Accepts::from_features(&w.accepts),
            id: w.id,
            name: w.name,
            family: w.family,
            invocation: w.invocation,
            max_output_tokens: w.max_output_tokens,
            temperature_with_top_p: w.temperature_with_top_p,
            max_temperature: Temperature(max_temperature),
            min_records,
            facts: w.facts,
            prices,
            embedding,
        })
    }

    /// The built-in table with a user's file in front of it.
    pub fn with_file(path: &Path) -> Result<Catalogue, String> {
        let mut catalogue = Catalogue::builtin()?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the model catalogue file {}: {e}", path.display()))?;
        let user = Catalogue::parse(&text, &path.display().to_string(), &catalogue.sources)?;
        catalogue.entries.retain(|e| !user.entries.iter().any(|u| u.id == e.id));
        let mut entries = user.entries;
        entries.append(&mut catalogue.entries);
        catalogue.entries = entries;
        catalogue.sources.extend(user.sources);
        catalogue.origins.extend(user.origins);
        Ok(catalogue)
    }

    /// The entry for a bare foundation-model id (no profile prefix): the longest id it starts with.
    pub fn lookup(&self, bare_id: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| bare_id.starts_with(&e.id))
            .max_by_key(|e| e.id.len())
    }

    /// Whether an entry names `provider` (the part of its id before the first dot).
    pub fn names_provider(&self, provider: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.id.split_once('.').is_some_and(|(p, _)| p == provider))
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What a source key stands for.
    pub fn source(&self, key: &str) -> Option<&str> {
        self.sources.get(key).map(String::as_str)
    }

    /// "built-in" or "built-in and FILE", for messages.
    pub fn origin(&self) -> String {
        self.origins.join(" and ")
    }
}

static CATALOGUE: OnceLock<Result<Catalogue, String>> = OnceLock::new();

/// Sets the catalogue for this process: the built-in table, with `file` (or else the file `BATCHDROP_MODELS`
/// names) in front. The first call decides; later calls return what it decided.
pub fn init(file: Option<&Path>) -> Result<&'static Catalogue, String> {
    CATALOGUE
        .get_or_init(|| {
            let from_env = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()).map(PathBuf::from);
            match file.map(Path::to_path_buf).or(from_env) {
                Some(path) => Catalogue::with_file(&path),
                None => Catalogue::builtin(),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The process's catalogue ([`init`] with no file, unless it was called before).
pub fn get() -> Result<&'static Catalogue, String> {
    init(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Catalogue {
        match Catalogue::builtin() {
            Ok(c) => c,
            Err(e) => panic!("the built-in catalogue does not load: {e}"),
        }
    }

    #[test]
    fn the_builtin_table_loads_and_every_chat_model_has_a_maximum() {
        let c = builtin();
        assert!(c.entries().len() >= 25, "{}", c.entries().len());
        for e in c.entries() {
            assert_eq!(
                e.max_output_tokens.is_none(),
                e.family == Family::TitanEmbed,
                "{}",
                e.id
            );
            assert_eq!(e.min_records, 100, "{}", e.id);
            assert!(!e.facts.is_empty(), "{}: no source for its facts", e.id);
        }
    }

    #[test]
    fn the_longest_id_wins() {
        let c = builtin();
        let opus41 = c
            .lookup("anthropic.claude-opus-4-1-20250805-v1:0")
            .map(|e| e.name.as_str());
        assert_eq!(opus41, Some("Claude Opus 4.1"));
        let mut extra = c.clone();
        extra.entries.push(Entry {
            id: "anthropic.claude-opus-4".into(),
            ..c.entries()[0].clone()
        });
        assert_eq!(
            extra
                .lookup("anthropic.claude-opus-4-1-20250805-v1:0")
                .map(|e| e.name.as_str()),
            Some("Claude Opus 4.1")
        );
        assert_eq!(
            extra.lookup("anthropic.claude-opus-4-6-v1").map(|e| e.id.as_str()),
            Some("anthropic.claude-opus-4")
        );
        assert!(c.lookup("anthropic.claude-opus-4-6-v1").is_none());
    }

    #[test]
    fn prices_are_exact_millionths() {
        let c = builtin();
        let micro = c.lookup("amazon.nova-micro-v1:0").and_then(|e| e.prices.clone());
        let Some(p) = micro else {
            panic!("nova micro has no prices")
        };
        assert_eq!(
            p.on_demand,
            Price {
                input_micros: 35_000,
                output_micros: 140_000
            }
        );
        assert!(p.batch.is_none());
        assert!(c.source(&p.source).is_some_and(|s| s.contains("2026-07-24")));
        assert!((p.on_demand.cost(1_000_000, 500_000) - 0.105).abs() < 1e-12);
    }

    #[test]
    fn docs_models_md_lists_every_builtin_model() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/models.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        for e in builtin().entries() {
            let max = e.max_output_tokens.map_or("–".to_string(), |n| {
                let s = n.to_string();
                let mut out = String::new();
                for (i, c) in s.chars().enumerate() {
                    if i > 0 && (s.len() - i) % 3 == 0 {
                        out.push(',');
                    }
                    out.push(c);
                }
                out
            });
            let row = format!("| `{}` | {} | {} | {} |", e.id, e.name, e.family, e.invocation);
            let line = doc.lines().find(|l| l.starts_with(&row));
            assert!(
                line.is_some_and(|l| l.contains(&format!("| {max} |"))),
                "docs/models.md has no row {row} … {max}"
            );
        }
    }

    fn user_file(text: &str) -> Result<Catalogue, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("models.json");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        Catalogue::with_file(&path)
    }

    const NEW_CLAUDE: &str = r#"{"models": [{"id": "anthropic.claude-opus-4-6", "name": "Claude Opus 4.6",
        "family": "claude", "invocation": "InvokeModel", "max_output_tokens": 128000,
        "accepts": ["system", "tools"], "temperature_with_top_p": false, "facts": ["anthropic-models"],
        "prices": null}]}"#;

    const NEW_EMBED: &str = r#"{"models": [{"id": "amazon.titan-embed-text-v9:", "name": "Titan Text Embeddings V9",
        "family": "titan-embed", "invocation": "InvokeModel", "max_output_tokens": null, "accepts": [],
        "temperature_with_top_p": true, "prices": null,
        "embedding": {"dimensions": [256, 512], "default_dimensions": 512, "max_input_chars": 100}}]}"#;

    #[test]
    fn embeddings_facts_are_read_and_checked() {
        let c = match user_file(NEW_EMBED) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let e = c
            .lookup("amazon.titan-embed-text-v9:0")
            .and_then(|e| e.embedding.clone());
        assert_eq!(
            e,
            Some(Embedding {
                dimensions: vec![256, 512],
                default_dimensions: 512,
                max_input_chars: 100
            })
        );
        let builtin = builtin();
        for entry in builtin.entries() {
            assert_eq!(
                entry.embedding.is_some(),
                entry.family == Family::TitanEmbed,
                "{}",
                entry.id
            );
        }
    }

    #[test]
    fn a_user_file_adds_models_and_replaces_builtin_ones() {
        let c = match user_file(NEW_CLAUDE) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let e = c
            .lookup("anthropic.claude-opus-4-6-v1")
            .map(|e| (e.max_output_tokens, e.accepts.images));
        assert_eq!(e, Some((Some(128_000), false)));
        assert!(c.origin().starts_with("built-in and "));
        let replaced = NEW_CLAUDE.replace("claude-opus-4-6", "claude-3-haiku-20240307");
        let c = match user_file(&replaced) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            c.lookup("anthropic.claude-3-haiku-20240307-v1:0")
                .map(|e| e.max_output_tokens),
            Some(Some(128_000))
        );
        assert_eq!(
            c.entries()
                .iter()
                .filter(|e| e.id == "anthropic.claude-3-haiku-20240307")
                .count(),
            1
        );
    }

    #[test]
    fn a_bad_user_file_says_what_and_where() {
        for (text, expected) in [
            ("{", "not a model catalogue"),
            (r#"{"models": [{"id": "x"}]}"#, "at models[0]"),
            (&NEW_CLAUDE.replace("\"claude\"", "\"cohere\""), "at models[0].family"),
            (&NEW_CLAUDE.replace("\"tools\"]", "\"video\"]"), "at models[0].accepts"),
            (&NEW_CLAUDE.replace("anthropic.claude-opus-4-6", "us.anthropic.claude-opus-4-6"), "inference-profile prefix"),
            (&NEW_CLAUDE.replace("anthropic.claude-opus-4-6", "Anthropic.Claude"), "not the start of a foundation-model id"),
            (&NEW_CLAUDE.replace("128000", "0"), "max_output_tokens must be"),
            (&NEW_CLAUDE.replace("\"InvokeModel\"", "\"Converse\""), "a Converse model cannot accept tools"),
            (&NEW_CLAUDE.replace("anthropic-models", "my-notes"), "'my-notes' is not one of the catalogue's sources"),
            (&NEW_CLAUDE.replace("\"prices\": null", "\"prices\": null, \"colour\": 1"), "unknown field `colour`"),
            (
                &NEW_CLAUDE.replace(
                    "\"prices\": null",
                    "\"prices\": {\"source\": \"anthropic-models\", \"on_demand\": {\"input\": -1, \"output\": 1}, \"batch\": null}",
                ),
                "prices.on_demand.input is -1",
            ),
            (&NEW_CLAUDE.replace("\"prices\": null", "\"prices\": null, \"embedding\": {\"dimensions\": [8], \"default_dimensions\": 8, \"max_input_chars\": 9}"), "only an embeddings model has"),
            (&NEW_EMBED.replace("\"embedding\": {\"dimensions\": [256, 512], \"default_dimensions\": 512, \"max_input_chars\": 100}", "\"facts\": []"), "an embeddings model needs"),
            (&NEW_EMBED.replace("\"default_dimensions\": 512", "\"default_dimensions\": 1024"), "holds embedding.default_dimensions"),
            (&NEW_EMBED.replace("[256, 512]", "[0, 512]"), "lengths above 0"),
            (&NEW_EMBED.replace("\"max_input_chars\": 100", "\"max_input_chars\": 0"), "max_input_chars must be at least 1"),
            (&NEW_EMBED.replace("\"InvokeModel\"", "\"Converse\""), "Converse is for chat models"),
        ] {
            match user_file(text) {
                Ok(_) => panic!("accepted: {text}"),
                Err(why) => assert!(why.contains(expected), "{why} (expected {expected})"),
            }
        }
        let missing = Catalogue::with_file(Path::new("/nonexistent/models.json"))
            .err()
            .unwrap_or_default();
        assert!(
            missing.contains("cannot read the model catalogue file /nonexistent/models.json"),
            "{missing}"
        );
    }
}
