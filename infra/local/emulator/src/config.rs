//! Settings: read once from the environment at start-up, changed at run time through `POST /_emulator/config`.
//! The admin body and the `BEDROCK_EMULATOR_CONFIG` variable share one JSON shape ([`SettingsPatch`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::Endpoint;

/// The per-model batch quotas of docs/bedrock.md#quotas, with the June 2025 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelQuotas {
    pub min_records_per_job: u64,
    pub max_records_per_file: u64,
    pub max_records_per_job: u64,
    pub max_file_bytes: u64,
    pub max_job_bytes: u64,
    /// Submitted + Validating + Scheduled + InProgress jobs of one model.
    pub max_concurrent_jobs: u64,
}

const GIB: u64 = 1 << 30;

impl Default for ModelQuotas {
    fn default() -> Self {
        Self {
            min_records_per_job: 100,
            max_records_per_file: 50_000,
            max_records_per_job: 50_000,
            // [UNK] "1 GB" / "5 GB" in the quota table; we read them as GiB so that nothing near the limit fails
            // here that would pass in AWS.
            max_file_bytes: GIB,
            max_job_bytes: 5 * GIB,
            max_concurrent_jobs: 20,
        }
    }
}

/// Any subset of [`ModelQuotas`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_records_per_job: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_records_per_file: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_records_per_job: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_job_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_jobs: Option<u64>,
}

impl QuotasPatch {
    fn apply_to(&self, q: &mut ModelQuotas) {
        let set = |dst: &mut u64, src: Option<u64>| {
            if let Some(v) = src {
                *dst = v;
            }
        };
        set(&mut q.min_records_per_job, self.min_records_per_job);
        set(&mut q.max_records_per_file, self.max_records_per_file);
        set(&mut q.max_records_per_job, self.max_records_per_job);
        set(&mut q.max_file_bytes, self.max_file_bytes);
        set(&mut q.max_job_bytes, self.max_job_bytes);
        set(&mut q.max_concurrent_jobs, self.max_concurrent_jobs);
    }

    fn merge(&mut self, other: &QuotasPatch) {
        let set = |dst: &mut Option<u64>, src: Option<u64>| {
            if src.is_some() {
                *dst = src;
            }
        };
        set(&mut self.min_records_per_job, other.min_records_per_job);
        set(&mut self.max_records_per_file, other.max_records_per_file);
        set(&mut self.max_records_per_job, other.max_records_per_job);
        set(&mut self.max_file_bytes, other.max_file_bytes);
        set(&mut self.max_job_bytes, other.max_job_bytes);
        set(&mut self.max_concurrent_jobs, other.max_concurrent_jobs);
    }
}

/// Quotas for every model, with overrides keyed by the exact `modelId` of the job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    pub default: ModelQuotas,
    pub models: BTreeMap<String, QuotasPatch>,
}

impl Quotas {
    pub fn for_model(&self, model_id: &str) -> ModelQuotas {
        let mut q = self.default;
        if let Some(p) = self.models.get(model_id) {
            p.apply_to(&mut q);
        }
        q
    }
}

/// What can change while the emulator runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Time spent in each lifecycle step (Submitted, Validating, Scheduled, each InProgress chunk, Stopping).
    pub step_ms: u64,
    /// InProgress processes the records in this many chunks, one per step, updating the counters after each.
    pub progress_steps: u64,
    /// Seed of the output shuffle (the order depends only on it and the input file's key).
    pub shuffle_seed: u64,
    pub quotas: Quotas,
    /// docs/bedrock.md#idempotency: whether job names must be unique is undocumented; off by default.
    pub reject_duplicate_job_names: bool,
    /// docs/bedrock.md#creating-a-job: the default `timeoutDurationInHours` is undocumented; 24 like other emulators.
    pub default_timeout_hours: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            step_ms: 200,
            progress_steps: 2,
            shuffle_seed: 42,
            quotas: Quotas::default(),
            reject_duplicate_job_names: false,
            default_timeout_hours: 24,
        }
    }
}

/// The body of `POST /_emulator/config` and the value of `BEDROCK_EMULATOR_CONFIG`: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub step_ms: Option<u64>,
    pub progress_steps: Option<u64>,
    pub shuffle_seed: Option<u64>,
    /// Shorthand for `quotas.default.max_concurrent_jobs`.
    pub max_concurrent_jobs: Option<u64>,
    pub quotas: Option<QuotasPatchSet>,
    pub reject_duplicate_job_names: Option<bool>,
    pub default_timeout_hours: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasPatchSet {
    #[serde(default)]
    pub default: QuotasPatch,
    /// Merged into the existing per-model overrides.
    #[serde(default)]
    pub models: BTreeMap<String, QuotasPatch>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

impl Settings {
    pub fn apply(&mut self, p: &SettingsPatch) -> Result<(), ConfigError> {
        if p.progress_steps == Some(0) {
            return Err(ConfigError::Invalid {
                name: "progress_steps",
                message: "must be at least 1".into(),
            });
        }
        if let Some(h) = p.default_timeout_hours {
            if !(24..=168).contains(&h) {
                return Err(ConfigError::Invalid {
                    name: "default_timeout_hours",
                    message: "must be within 24..=168".into(),
                });
            }
            self.default_timeout_hours = h;
        }
        if let Some(v) = p.step_ms {
            self.step_ms = v;
        }
        if let Some(v) = p.progress_steps {
            self.progress_steps = v;
        }
        if let Some(v) = p.shuffle_seed {
            self.shuffle_seed = v;
        }
        if let Some(v) = p.reject_duplicate_job_names {
            self.reject_duplicate_job_names = v;
        }
        if let Some(q) = &p.quotas {
            q.default.apply_to(&mut self.quotas.default);
            for (model, patch) in &q.models {
                self.quotas.models.entry(model.clone()).or_default().merge(patch);
            }
        }
        if let Some(v) = p.max_concurrent_jobs {
            self.quotas.default.max_concurrent_jobs = v;
        }
        Ok(())
    }
}

/// Start-up configuration: where to listen, who we are, and the initial settings and faults.
#[derive(Debug, Clone)]
pub struct Startup {
    pub host: String,
    /// 0 picks a free port; the bound address is printed on stdout either way.
    pub port: u16,
    pub region: String,
    pub account_id: String,
    pub settings: Settings,
    /// `BEDROCK_EMULATOR_FAULTS`, see `faults::parse_env`.
    pub faults: Option<String>,
    /// `BEDROCK_EMULATOR_EVENTS_URL`: the EventBridge endpoint that gets the job events (`events.rs`); none
    /// when unset, so that nothing is sent.
    pub events: Option<Endpoint>,
}

pub const DEFAULT_PORT: u16 = 8788;

impl Startup {
    /// Reads `BEDROCK_EMULATOR_*` (and `AWS_REGION` as a fallback for the region) through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn number<T: std::str::FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &'static str,
        ) -> Result<Option<T>, ConfigError> {
            var(name)
                .map(|v| {
                    v.trim().parse::<T>().map_err(|_| ConfigError::Invalid {
                        name,
                        message: format!("not a number: {v:?}"),
                    })
                })
                .transpose()
        }

        let mut settings = Settings::default();
        if let Some(json) = var("BEDROCK_EMULATOR_CONFIG") {
            let patch: SettingsPatch = serde_json::from_str(&json).map_err(|e| ConfigError::Invalid {
                name: "BEDROCK_EMULATOR_CONFIG",
                message: e.to_string(),
            })?;
            settings.apply(&patch)?;
        }
        let patch = SettingsPatch {
            step_ms: number(&var, "BEDROCK_EMULATOR_STEP_MS")?,
            progress_steps: number(&var, "BEDROCK_EMULATOR_PROGRESS_STEPS")?,
            shuffle_seed: number(&var, "BEDROCK_EMULATOR_SEED")?,
            max_concurrent_jobs: number(&var, "BEDROCK_EMULATOR_MAX_CONCURRENT_JOBS")?,
            quotas: number(&var, "BEDROCK_EMULATOR_MIN_RECORDS")?.map(|min| QuotasPatchSet {
                default: QuotasPatch {
                    min_records_per_job: Some(min),
                    ..QuotasPatch::default()
                },
                models: BTreeMap::new(),
            }),
            reject_duplicate_job_names: var("BEDROCK_EMULATOR_REJECT_DUPLICATE_NAMES")
                .map(|v| matches!(v.trim(), "1" | "true" | "yes")),
            default_timeout_hours: None,
        };
        settings.apply(&patch)?;

        let account_id = var("BEDROCK_EMULATOR_ACCOUNT_ID").unwrap_or_else(|| "123456789012".into());
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid {
                name: "BEDROCK_EMULATOR_ACCOUNT_ID",
                message: "must be 12 digits".into(),
            });
        }
        let events = var("BEDROCK_EMULATOR_EVENTS_URL")
            .filter(|url| !url.trim().is_empty())
            .map(|url| Endpoint::parse(&url, var("AWS_ACCESS_KEY_ID")))
            .transpose()
            .map_err(|message| ConfigError::Invalid {
                name: "BEDROCK_EMULATOR_EVENTS_URL",
                message,
            })?;
        Ok(Self {
            host: var("BEDROCK_EMULATOR_HOST").unwrap_or_else(|| "127.0.0.1".into()),
            port: number(&var, "BEDROCK_EMULATOR_PORT")?.unwrap_or(DEFAULT_PORT),
            region: var("BEDROCK_EMULATOR_REGION")
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            account_id,
            settings,
            faults: var("BEDROCK_EMULATOR_FAULTS").filter(|s| !s.trim().is_empty()),
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_bedrocks_documented_quotas() {
        let s = Startup::from_vars(vars(&[])).expect("defaults");
        assert_eq!(s.settings.step_ms, 200);
        assert_eq!(s.settings.quotas.default.min_records_per_job, 100);
        assert_eq!(s.settings.quotas.default.max_concurrent_jobs, 20);
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.events, None, "no events unless asked for");
    }

    #[test]
    fn env_overrides_and_per_model_quotas() {
        let s = Startup::from_vars(vars(&[
            ("BEDROCK_EMULATOR_STEP_MS", "10"),
            ("BEDROCK_EMULATOR_MAX_CONCURRENT_JOBS", "2"),
            (
                "BEDROCK_EMULATOR_CONFIG",
                r#"{"quotas":{"models":{"amazon.nova-lite-v1:0":{"max_job_bytes":100}}}}"#,
            ),
        ]))
        .expect("valid");
        assert_eq!(s.settings.step_ms, 10);
        let nova = s.settings.quotas.for_model("amazon.nova-lite-v1:0");
        assert_eq!(nova.max_job_bytes, 100);
        assert_eq!(nova.max_concurrent_jobs, 2);
        assert_eq!(s.settings.quotas.for_model("other").max_job_bytes, 5 * GIB);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Startup::from_vars(vars(&[("BEDROCK_EMULATOR_STEP_MS", "fast")])).is_err());
        assert!(Startup::from_vars(vars(&[("BEDROCK_EMULATOR_CONFIG", r#"{"stepMs":1}"#)])).is_err());
        assert!(Startup::from_vars(vars(&[("BEDROCK_EMULATOR_ACCOUNT_ID", "42")])).is_err());
        assert!(Startup::from_vars(vars(&[("BEDROCK_EMULATOR_EVENTS_URL", "https://events.example")])).is_err());
    }

    #[test]
    fn events_go_where_the_url_says() {
        let s = Startup::from_vars(vars(&[
            ("BEDROCK_EMULATOR_EVENTS_URL", "http://127.0.0.1:5057"),
            ("AWS_ACCESS_KEY_ID", "AKIDLOCAL"),
        ]))
        .expect("valid");
        let events = s.events.expect("an endpoint");
        assert_eq!(events.authority, "127.0.0.1:5057");
        assert_eq!(events.access_key, "AKIDLOCAL");
        let blank = Startup::from_vars(vars(&[("BEDROCK_EMULATOR_EVENTS_URL", " ")])).expect("valid");
        assert_eq!(blank.events, None);
    }
}
