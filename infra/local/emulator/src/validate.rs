//! Synchronous request validation: the patterns, lengths, ranges and enums of the service model (docs/bedrock.md#the-control-plane-api),
//! applied as full-string matches. Violations are reported together, in the service's wording, as one
//! ValidationException.

use std::sync::LazyLock;

use regex_lite::Regex;
use serde_json::{Map, Value};

use crate::clock::{self, Millis};
use crate::error::ApiError;
use crate::job::{
    CreateRequest, InputDataConfig, InvocationType, JobStatus, OutputDataConfig, S3InputDataConfig, S3OutputDataConfig,
    Tag, VpcConfig,
};

pub const JOB_NAME: &str = r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}";
pub const ROLE_ARN: &str = r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+";
pub const TOKEN: &str = r"[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}";
pub const S3_URI: &str = r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?";
pub const ACCOUNT_ID: &str = r"[0-9]{12}";
pub const KMS_KEY_ID: &str = r"(arn:aws(-[^:]+)?:kms:[a-zA-Z0-9-]*:[0-9]{12}:((key/[a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)))|([a-zA-Z0-9-]{36})|(alias/[a-zA-Z0-9-_/]+)";
pub const VPC_ID: &str = r"[-0-9a-zA-Z]+";
pub const TAG: &str = r"[a-zA-Z0-9\s._:/=+@-]*";
pub const JOB_IDENTIFIER: &str =
    r"((arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:model-invocation-job/)?[a-z0-9]{12})";
pub const NEXT_TOKEN: &str = r"\S*";
/// The `ModelId` shape, which CreateModelInvocationJob's `modelId` uses (not a shape of its own): ids and
/// inference-profile ids are lowercase, ARNs name a foundation model (no account), a custom model or an
/// (application) inference profile.
pub const MODEL_ID: &str = r"(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:(([0-9]{12}:custom-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-:]{1,63}/[a-z0-9]{12}$)|(:foundation-model/([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)$)|([0-9]{12}:(inference-profile|application-inference-profile)/[a-zA-Z0-9-:.]+$)))|([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)";

/// A pattern of the service model, compiled once as a full-string match.
pub struct Pattern {
    source: &'static str,
    re: Regex,
}

impl Pattern {
    fn new(source: &'static str) -> Self {
        // The sources are the constants above, checked by the unit tests; a failure here is a bug in this file.
        let re = Regex::new(&format!("^(?:{source})$")).unwrap_or_else(|e| panic!("bad pattern {source}: {e}"));
        Self { source, re }
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

macro_rules! pattern {
    ($name:ident, $src:expr) => {
        pub static $name: LazyLock<Pattern> = LazyLock::new(|| Pattern::new($src));
    };
}

pattern!(JOB_NAME_RE, JOB_NAME);
pattern!(ROLE_ARN_RE, ROLE_ARN);
pattern!(TOKEN_RE, TOKEN);
pattern!(S3_URI_RE, S3_URI);
pattern!(ACCOUNT_ID_RE, ACCOUNT_ID);
pattern!(KMS_KEY_ID_RE, KMS_KEY_ID);
pattern!(VPC_ID_RE, VPC_ID);
pattern!(TAG_RE, TAG);
pattern!(JOB_IDENTIFIER_RE, JOB_IDENTIFIER);
pattern!(NEXT_TOKEN_RE, NEXT_TOKEN);
pattern!(MODEL_ID_RE, MODEL_ID);

/// Collects violations in the service's wording.
#[derive(Default)]
struct Checker {
    violations: Vec<String>,
}

fn shown(v: &str) -> String {
    // The service truncates nothing, but echoing megabytes back helps nobody.
    let mut s: String = v.chars().take(200).collect();
    if s.len() < v.len() {
        s.push('…');
    }
    s
}

impl Checker {
    fn violation(&mut self, value: Option<&str>, path: &str, constraint: impl AsRef<str>) {
        let value = match value {
            Some(v) => format!("'{}'", shown(v)),
            None => "null".to_string(),
        };
        self.violations.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {}",
            constraint.as_ref()
        ));
    }

    fn missing(&mut self, path: &str) {
        self.violation(None, path, "Member must not be null");
    }

    fn wrong_type(&mut self, v: &Value, path: &str, expected: &str) {
        let text = v.to_string();
        self.violation(Some(&text), path, format!("Member must be of type {expected}"));
    }

    /// A string member; `None` when absent (after reporting it if required) or of the wrong type.
    fn string(&mut self, obj: &Map<String, Value>, key: &str, path: &str, required: bool) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.missing(path);
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.wrong_type(other, path, "string");
                None
            }
        }
    }

    fn length(&mut self, v: &str, path: &str, min: usize, max: usize) -> bool {
        let n = v.chars().count();
        if n < min {
            self.violation(
                Some(v),
                path,
                format!("Member must have length greater than or equal to {min}"),
            );
            false
        } else if n > max {
            self.violation(
                Some(v),
                path,
                format!("Member must have length less than or equal to {max}"),
            );
            false
        } else {
            true
        }
    }

    fn pattern(&mut self, v: &str, path: &str, p: &Pattern) -> bool {
        if p.is_match(v) {
            true
        } else {
            self.violation(
                Some(v),
                path,
                format!("Member must satisfy regular expression pattern: {}", p.source),
            );
            false
        }
    }

    /// String with length bounds and (optionally) a pattern.
    fn constrained(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        required: bool,
        (min, max): (usize, usize),
        p: Option<&Pattern>,
    ) -> Option<String> {
        let v = self.string(obj, key, path, required)?;
        let ok_len = self.length(&v, path, min, max);
        let ok_pat = p.is_none_or(|p| self.pattern(&v, path, p));
        (ok_len && ok_pat).then_some(v)
    }

    fn enum_value(&mut self, v: &str, path: &str, allowed: &[&str]) -> bool {
        if allowed.contains(&v) {
            true
        } else {
            self.violation(
                Some(v),
                path,
                format!("Member must satisfy enum value set: [{}]", allowed.join(", ")),
            );
            false
        }
    }

    fn object<'a>(&mut self, v: Option<&'a Value>, path: &str, required: bool) -> Option<&'a Map<String, Value>> {
        match v {
            None | Some(Value::Null) => {
                if required {
                    self.missing(path);
                }
                None
            }
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.wrong_type(other, path, "structure");
                None
            }
        }
    }

    /// A Smithy union: exactly one member set, and it must be one the model knows (docs/bedrock.md#the-control-plane-api).
    fn union<'a>(&mut self, v: Option<&'a Value>, path: &str, member: &str) -> Option<&'a Map<String, Value>> {
        let obj = self.object(v, path, true)?;
        let set: Vec<&String> = obj.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
        match set.as_slice() {
            [only] if *only == member => self.object(obj.get(member), &format!("{path}.{member}"), true),
            [] => {
                self.violation(None, path, "Member must have exactly one union member set");
                None
            }
            _ => {
                let names = set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
                self.violation(
                    Some(&names),
                    path,
                    format!("Member must have exactly one union member set, one of [{member}]"),
                );
                None
            }
        }
    }

    fn string_list(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        (min_items, max_items): (usize, usize),
        (min, max): (usize, usize),
        p: &Pattern,
    ) -> Option<Vec<String>> {
        let items = match obj.get(key) {
            None | Some(Value::Null) => {
                self.missing(path);
                return None;
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.wrong_type(other, path, "list");
                return None;
            }
        };
        if items.len() < min_items || items.len() > max_items {
            self.violation(
                Some(&Value::Array(items.clone()).to_string()),
                path,
                format!("Member must have length between {min_items} and {max_items}"),
            );
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}.{}.member", i + 1);
            match item {
                Value::String(s) => {
                    if self.length(s, &item_path, min, max) && self.pattern(s, &item_path, p) {
                        out.push(s.clone());
                    }
                }
                other => self.wrong_type(other, &item_path, "string"),
            }
        }
        Some(out)
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(v) if self.violations.is_empty() => Ok(v),
            _ if self.violations.is_empty() => Err(ApiError::Validation("Invalid request".into())),
            _ => Err(ApiError::validation(&self.violations)),
        }
    }
}

/// The CreateModelInvocationJob body. Unknown members are ignored, as the service does.
pub fn create_request(body: &Value) -> Result<CreateRequest, ApiError> {
    let mut c = Checker::default();
    let Value::Object(obj) = body else {
        return Err(ApiError::Validation("Request body must be a JSON object".into()));
    };

    let job_name = c.constrained(obj, "jobName", "jobName", true, (1, 63), Some(&JOB_NAME_RE));
    let role_arn = c.constrained(obj, "roleArn", "roleArn", true, (0, 2048), Some(&ROLE_ARN_RE));
    let token = c.constrained(
        obj,
        "clientRequestToken",
        "clientRequestToken",
        false,
        (1, 256),
        Some(&TOKEN_RE),
    );
    // The full pattern, as the service applies it: an id it refuses (capitals, `_`, Vertex's `@`) must fail at
    // create here too, not pass locally and fail on AWS. Which models exist is checked later (`model::family`).
    let model_id = c.constrained(obj, "modelId", "modelId", true, (1, 2048), Some(&MODEL_ID_RE));

    let input = c
        .union(obj.get("inputDataConfig"), "inputDataConfig", "s3InputDataConfig")
        .and_then(|s3| {
            let path = "inputDataConfig.s3InputDataConfig";
            let uri = c.constrained(s3, "s3Uri", &format!("{path}.s3Uri"), true, (1, 1024), Some(&S3_URI_RE));
            let format = c.string(s3, "s3InputFormat", &format!("{path}.s3InputFormat"), false);
            let format_ok = format
                .as_deref()
                .is_none_or(|f| c.enum_value(f, &format!("{path}.s3InputFormat"), &["JSONL"]));
            let owner = c.constrained(
                s3,
                "s3BucketOwner",
                &format!("{path}.s3BucketOwner"),
                false,
                (0, usize::MAX),
                Some(&ACCOUNT_ID_RE),
            );
            let uri = uri.filter(|_| format_ok)?;
            Some(InputDataConfig {
                s3_input_data_config: S3InputDataConfig {
                    s3_input_format: format,
                    s3_uri: uri,
                    s3_bucket_owner: owner,
                },
            })
        });

    let output = c
        .union(obj.get("outputDataConfig"), "outputDataConfig", "s3OutputDataConfig")
        .and_then(|s3| {
            let path = "outputDataConfig.s3OutputDataConfig";
            let uri = c.constrained(s3, "s3Uri", &format!("{path}.s3Uri"), true, (1, 1024), Some(&S3_URI_RE));
            let key = c.constrained(
                s3,
                "s3EncryptionKeyId",
                &format!("{path}.s3EncryptionKeyId"),
                false,
                (1, 2048),
                Some(&KMS_KEY_ID_RE),
            );
            let owner = c.constrained(
                s3,
                "s3BucketOwner",
                &format!("{path}.s3BucketOwner"),
                false,
                (0, usize::MAX),
                Some(&ACCOUNT_ID_RE),
            );
            Some(OutputDataConfig {
                s3_output_data_config: S3OutputDataConfig {
                    s3_uri: uri?,
                    s3_encryption_key_id: key,
                    s3_bucket_owner: owner,
                },
            })
        });

    let vpc = match c.object(obj.get("vpcConfig"), "vpcConfig", false) {
        None => Some(None),
        Some(v) => {
            let subnets = c.string_list(v, "subnetIds", "vpcConfig.subnetIds", (1, 16), (0, 32), &VPC_ID_RE);
            let groups = c.string_list(
                v,
                "securityGroupIds",
                "vpcConfig.securityGroupIds",
                (1, 5),
                (0, 32),
                &VPC_ID_RE,
            );
            match (subnets, groups) {
                (Some(subnet_ids), Some(security_group_ids)) => Some(Some(VpcConfig {
                    subnet_ids,
                    security_group_ids,
                })),
                _ => None,
            }
        }
    };

    let timeout = match obj.get("timeoutDurationInHours") {
        None | Some(Value::Null) => Some(None),
        Some(v) => match v.as_i64() {
            Some(h) if (24..=168).contains(&h) => u32::try_from(h).ok().map(Some),
            Some(h) => {
                let bound = if h < 24 {
                    "Member must have value greater than or equal to 24"
                } else {
                    "Member must have value less than or equal to 168"
                };
                c.violation(Some(&h.to_string()), "timeoutDurationInHours", bound);
                None
            }
            None => {
                c.wrong_type(v, "timeoutDurationInHours", "integer");
                None
            }
        },
    };

    let tags = match obj.get("tags") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => {
            if items.len() > 200 {
                c.violation(
                    Some(&items.len().to_string()),
                    "tags",
                    "Member must have length less than or equal to 200",
                );
            }
            let mut tags = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("tags.{}.member", i + 1);
                if let Some(t) = c.object(Some(item), &path, true) {
                    let key = c.constrained(t, "key", &format!("{path}.key"), true, (1, 128), Some(&TAG_RE));
                    let value = c.constrained(t, "value", &format!("{path}.value"), true, (0, 256), Some(&TAG_RE));
                    if let (Some(key), Some(value)) = (key, value) {
                        tags.push(Tag { key, value });
                    }
                }
            }
            Some(tags)
        }
        Some(other) => {
            c.wrong_type(other, "tags", "list");
            None
        }
    };

    let invocation_type = match c.string(obj, "modelInvocationType", "modelInvocationType", false) {
        None => Some(None),
        Some(t) => match t.as_str() {
            "InvokeModel" => Some(Some(InvocationType::InvokeModel)),
            "Converse" => Some(Some(InvocationType::Converse)),
            _ => {
                c.enum_value(&t, "modelInvocationType", &["InvokeModel", "Converse"]);
                None
            }
        },
    };

    let request = (|| {
        Some(CreateRequest {
            job_name: job_name?,
            role_arn: role_arn?,
            client_request_token: token,
            model_id: model_id?,
            input_data_config: input?,
            output_data_config: output?,
            vpc_config: vpc?,
            timeout_duration_in_hours: timeout?,
            tags: tags?,
            model_invocation_type: invocation_type?,
        })
    })();
    c.finish(request)
}

/// A `{jobIdentifier}` label after percent-decoding: the bare id, and the full ARN when one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIdentifier {
    pub id: String,
    pub arn: Option<String>,
}

pub fn job_identifier(raw: &str) -> Result<JobIdentifier, ApiError> {
    let mut c = Checker::default();
    let ok = c.length(raw, "jobIdentifier", 0, 1011) && c.pattern(raw, "jobIdentifier", &JOB_IDENTIFIER_RE);
    let parsed = ok.then(|| {
        let id = raw.rsplit('/').next().unwrap_or(raw).to_string();
        let arn = raw.contains('/').then(|| raw.to_string());
        JobIdentifier { id, arn }
    });
    c.finish(parsed)
}

/// ListModelInvocationJobs query parameters (docs/bedrock.md#listing-and-stopping-jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub submit_time_after: Option<Millis>,
    pub submit_time_before: Option<Millis>,
    pub status_equals: Option<JobStatus>,
    pub name_contains: Option<String>,
    pub max_results: usize,
    pub next_token: Option<String>,
    pub ascending: bool,
}

/// [UNK] The service's default page size is undocumented; we return up to the maximum, 1000.
pub const DEFAULT_MAX_RESULTS: usize = 1000;

pub fn list_params(query: &[(String, String)]) -> Result<ListParams, ApiError> {
    let mut c = Checker::default();
    let get = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());

    let mut time = |k: &str| {
        get(k).and_then(|v| {
            let t = clock::parse(v);
            if t.is_none() {
                c.violation(Some(v), k, "Member must be a valid ISO 8601 timestamp");
            }
            t
        })
    };
    let submit_time_after = time("submitTimeAfter");
    let submit_time_before = time("submitTimeBefore");

    let status_equals = get("statusEquals").and_then(|v| {
        let s = JobStatus::parse(v);
        if s.is_none() {
            let all: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
            c.enum_value(v, "statusEquals", &all);
        }
        s
    });
    let name_contains = get("nameContains").and_then(|v| {
        (c.length(v, "nameContains", 1, 63) && c.pattern(v, "nameContains", &JOB_NAME_RE)).then(|| v.to_string())
    });
    let max_results = match get("maxResults") {
        None => DEFAULT_MAX_RESULTS,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => usize::try_from(n).unwrap_or(DEFAULT_MAX_RESULTS),
            Ok(n) if n < 1 => {
                c.violation(
                    Some(v),
                    "maxResults",
                    "Member must have value greater than or equal to 1",
                );
                DEFAULT_MAX_RESULTS
            }
            Ok(_) => {
                c.violation(
                    Some(v),
                    "maxResults",
                    "Member must have value less than or equal to 1000",
                );
                DEFAULT_MAX_RESULTS
            }
            Err(_) => {
                c.violation(Some(v), "maxResults", "Member must be of type integer");
                DEFAULT_MAX_RESULTS
            }
        },
    };
    let next_token = get("nextToken").and_then(|v| {
        (c.length(v, "nextToken", 1, 2048) && c.pattern(v, "nextToken", &NEXT_TOKEN_RE)).then(|| v.to_string())
    });
    if let Some(v) = get("sortBy") {
        c.enum_value(v, "sortBy", &["CreationTime"]);
    }
    let ascending = match get("sortOrder") {
        None => false, // docs/bedrock.md#listing-and-stopping-jobs: default Descending.
        Some(v) => c.enum_value(v, "sortOrder", &["Ascending", "Descending"]) && v == "Ascending",
    };

    c.finish(Some(ListParams {
        submit_time_after,
        submit_time_before,
        status_equals,
        name_contains,
        max_results,
        next_token,
        ascending,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
        json!({
            "jobName": "batch-01hx-job1",
            "roleArn": "arn:aws:iam::123456789012:role/BedrockBatch",
            "clientRequestToken": "batch-01hx-1",
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bucket/in/batch/input.jsonl", "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bucket/out/"}},
            "timeoutDurationInHours": 24,
            "tags": [{"key": "project", "value": "batchdrop"}]
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = valid();
        v[field] = value;
        v
    }

    fn rejected(body: Value) -> String {
        match create_request(&body) {
            Err(ApiError::Validation(m)) => m,
            other => panic!("expected a ValidationException, got {other:?}"),
        }
    }

    #[test]
    fn patterns_compile() {
        for p in [
            &JOB_NAME_RE,
            &ROLE_ARN_RE,
            &TOKEN_RE,
            &S3_URI_RE,
            &ACCOUNT_ID_RE,
            &KMS_KEY_ID_RE,
            &VPC_ID_RE,
            &TAG_RE,
            &JOB_IDENTIFIER_RE,
            &NEXT_TOKEN_RE,
            &MODEL_ID_RE,
        ] {
            assert!(!p.source.is_empty());
            let _ = p.is_match("x");
        }
    }

    #[test]
    fn accepts_a_valid_request() {
        let r = create_request(&valid()).expect("valid");
        assert_eq!(r.job_name, "batch-01hx-job1");
        assert_eq!(r.timeout_duration_in_hours, Some(24));
        assert_eq!(r.tags.len(), 1);
    }

    #[test]
    fn job_names_are_full_matches() {
        assert!(JOB_NAME_RE.is_match("a"));
        assert!(JOB_NAME_RE.is_match("file-1.jsonl+x"));
        assert!(!JOB_NAME_RE.is_match("bad_name"));
        assert!(!JOB_NAME_RE.is_match("-leading"));
        assert!(!JOB_NAME_RE.is_match("has space"));
        assert!(rejected(with("jobName", json!("bad_name"))).contains("jobName"));
        assert!(rejected(with("jobName", json!("a".repeat(64)))).contains("less than or equal to 63"));
    }

    #[test]
    fn model_ids_are_full_matches() {
        for id in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-lite-v1:0:300k",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            "eu.amazon.nova-pro-v1:0",
            "apac.amazon.nova-micro-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-premier-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcdef123456",
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-lite-v1:0:300k/abcdef123456",
        ] {
            assert!(MODEL_ID_RE.is_match(id), "{id}");
            assert!(create_request(&with("modelId", json!(id))).is_ok(), "{id}");
        }
        for id in [
            "anthropic.claude_3_haiku",
            "anthropic.claude-3-Haiku-20240307-v1:0",
            "anthropic.claude-sonnet-4-5@20250929",
            "arn:aws:bedrock:us-east-1:123456789012:foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456",
        ] {
            assert!(!MODEL_ID_RE.is_match(id), "{id}");
            let m = rejected(with("modelId", json!(id)));
            assert!(
                m.contains(&format!("Value '{id}' at 'modelId' failed to satisfy constraint"))
                    && m.contains("Member must satisfy regular expression pattern: (arn:aws"),
                "{m}"
            );
        }
    }

    #[test]
    fn s3_uris_reject_hive_style_and_odd_characters() {
        assert!(S3_URI_RE.is_match("s3://bucket"));
        assert!(S3_URI_RE.is_match("s3://bucket/a/b.jsonl"));
        assert!(S3_URI_RE.is_match("s3://bucket/a/"));
        assert!(!S3_URI_RE.is_match("s3://bucket/date=2024-01-01/"));
        assert!(!S3_URI_RE.is_match("s3://bucket/a b"));
        assert!(!S3_URI_RE.is_match("s3://Bucket/a"));
        assert!(!S3_URI_RE.is_match("s3://bucket//a"));
    }

    #[test]
    fn tokens_and_roles() {
        assert!(TOKEN_RE.is_match("8a1f6c2e-1d3b-4c5a-9e7f-0a1b2c3d4e5f"));
        assert!(!TOKEN_RE.is_match("ends-"));
        assert!(!TOKEN_RE.is_match("under_score"));
        assert!(ROLE_ARN_RE.is_match("arn:aws:iam::123456789012:role/x"));
        assert!(ROLE_ARN_RE.is_match("arn:aws-us-gov:iam:::role/x"));
        assert!(!ROLE_ARN_RE.is_match("arn:aws:iam::123:role/x"));
        assert!(TAG_RE.is_match("a b\tc._:/=+@-"));
        assert!(!TAG_RE.is_match("a#b"));
    }

    #[test]
    fn unions_need_exactly_one_member() {
        rejected(with("inputDataConfig", json!({})));
        rejected(with(
            "outputDataConfig",
            json!({"s3OutputDataConfig": {"s3Uri": "s3://b/o"}, "other": {}}),
        ));
        rejected(with("inputDataConfig", json!("s3://b/in.jsonl")));
    }

    #[test]
    fn ranges_enums_and_required_fields() {
        rejected(with("timeoutDurationInHours", json!(23)));
        rejected(with("timeoutDurationInHours", json!(169)));
        rejected(with("timeoutDurationInHours", json!("24")));
        rejected(with("modelInvocationType", json!("Stream")));
        rejected(with("modelId", json!("")));
        rejected(with("tags", json!([{"key": "k#", "value": "v"}])));
        let mut v = valid();
        v["inputDataConfig"]["s3InputDataConfig"]["s3InputFormat"] = json!("CSV");
        rejected(v);
        let mut v = valid();
        v.as_object_mut().expect("object").remove("roleArn");
        let m = rejected(v);
        assert!(m.contains("Value null at 'roleArn'"), "{m}");
    }

    #[test]
    fn several_violations_are_reported_together() {
        let mut v = with("jobName", json!("bad_name"));
        v["timeoutDurationInHours"] = json!(1);
        assert!(rejected(v).starts_with("2 validation errors detected"));
    }

    #[test]
    fn job_identifiers() {
        let id = job_identifier("abcdef123456").expect("id");
        assert_eq!(id.arn, None);
        let arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456";
        let full = job_identifier(arn).expect("arn");
        assert_eq!(full.id, "abcdef123456");
        assert_eq!(full.arn.as_deref(), Some(arn));
        assert!(job_identifier("ABCDEF123456").is_err());
        assert!(job_identifier("abc").is_err());
    }

    #[test]
    fn list_parameters() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let p = list_params(&[]).expect("defaults");
        assert!(!p.ascending);
        assert_eq!(p.max_results, DEFAULT_MAX_RESULTS);
        let p = list_params(&q(&[
            ("statusEquals", "Completed"),
            ("sortOrder", "Ascending"),
            ("maxResults", "5"),
            ("submitTimeAfter", "2024-01-01T00:00:00Z"),
        ]))
        .expect("valid");
        assert_eq!(p.status_equals, Some(JobStatus::Completed));
        assert!(p.ascending);
        assert_eq!(p.max_results, 5);
        assert!(list_params(&q(&[("maxResults", "0")])).is_err());
        assert!(list_params(&q(&[("maxResults", "1001")])).is_err());
        assert!(list_params(&q(&[("statusEquals", "Done")])).is_err());
        assert!(list_params(&q(&[("sortBy", "Name")])).is_err());
        assert!(list_params(&q(&[("nameContains", "a_b")])).is_err());
    }
}
