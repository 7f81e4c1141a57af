//! Names: batch ids, Bedrock job names and tokens, and where everything lives in S3 (README, "What runs where").
//!
//! Every key handed to Bedrock must match its s3Uri pattern (docs/bedrock.md#creating-a-job): `[-!_*'().a-zA-Z0-9]` and `/` only.
//! Batch ids are built from `[a-z0-9-]`, so every key below does.

use xxhash_rust::xxh3::xxh3_64;

/// The prefix users drop files into; the S3 trigger filters on it and on [`INBOX_SUFFIX`].
pub const INBOX_PREFIX: &str = "inbox/";
pub const INBOX_SUFFIX: &str = ".jsonl";

/// The longest readable part of a batch id, so that job names (≤ 63) and execution names (≤ 80) fit.
const SLUG_MAX: usize = 36;

/// The batch id of one object version: readable (from the file name) and unique (a hash of bucket, key and
/// version id or ETag). The same object version always gets the same id, which is what makes a duplicate
/// S3 event harmless (docs/reliability.md#one-owner-for-each-thing).
pub fn batch_id(bucket: &str, key: &str, version: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    let stem = name.strip_suffix(INBOX_SUFFIX).unwrap_or(name);
    let mut slug = String::with_capacity(SLUG_MAX);
    for c in stem.chars() {
        if slug.len() >= SLUG_MAX {
            break;
        }
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "batch" } else { slug };
    let hash = xxh3_64(format!("{bucket}\0{key}\0{version}").as_bytes());
    format!("{slug}-{hash:016x}")
}

/// What names an uploaded object's version in its batch id: the version id (the input bucket is versioned),
/// else the ETag, else the event's sequencer. The submit function reads them from the S3 event and the CLI
/// from the upload's reply, so both compute the same id; an ETag's quotes (PutObject's reply has them, the
/// event does not) are not part of it.
pub fn upload_version<'a>(version_id: Option<&'a str>, e_tag: Option<&'a str>, sequencer: Option<&'a str>) -> &'a str {
    [version_id, e_tag.map(|t| t.trim_matches('"')), sequencer]
        .into_iter()
        .flatten()
        .find(|v| !v.is_empty())
        .unwrap_or("unversioned")
}

/// Bedrock job name of job `index`, within the jobName pattern of docs/bedrock.md#creating-a-job (alphanumerics
/// and hyphens here).
pub fn job_name(batch_id: &str, index: usize) -> String {
    format!("{batch_id}-job{index}")
}

/// The batch id in a job name made by [`job_name`], or `None` for a name batchdrop does not make.
pub fn job_batch_id(name: &str) -> Option<&str> {
    let (batch_id, index) = name.rsplit_once("-job")?;
    let numbered = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
    (numbered && !batch_id.is_empty()).then_some(batch_id)
}

/// The deterministic `clientRequestToken` of job `index` (docs/bedrock.md#idempotency): a retried or duplicated create
/// returns the first job instead of starting a second.
pub fn client_request_token(batch_id: &str, index: usize) -> String {
    format!("{batch_id}-{index}")
}

/// The model named by the folder a file was dropped in (`inbox/<model>/file.jsonl`), if any.
pub fn folder_model(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(INBOX_PREFIX)?;
    let (folders, _file) = rest.rsplit_once('/')?;
    Some(folders.rsplit('/').next().unwrap_or(folders)).filter(|f| !f.is_empty())
}

/// Input bucket: the Bedrock input file of job `index`.
pub fn job_input_key(batch_id: &str, index: usize) -> String {
    format!("staging/{batch_id}/job-{index}.jsonl")
}

/// Input bucket: the record map of the batch.
pub fn record_map_key(batch_id: &str) -> String {
    format!("staging/{batch_id}/record-map.jsonl")
}

/// Input bucket: the marker object that asks for a batch to be cancelled (docs/configuration.md#cancelling-a-batch).
pub fn cancel_key(batch_id: &str) -> String {
    format!("{CANCEL_PREFIX}{batch_id}")
}

/// The prefix of cancel markers in the input bucket; their uploads reach the submit function.
pub const CANCEL_PREFIX: &str = "cancel/";

/// The batch id a cancel marker's key names, if it is one (`cancel/<batch-id>`, a batch id's characters
/// only).
pub fn cancelled_batch(key: &str) -> Option<&str> {
    let id = key.strip_prefix(CANCEL_PREFIX)?.trim_end_matches('/');
    let valid = !id.is_empty()
        && id.len() <= EXECUTION_NAME_MAX
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    valid.then_some(id)
}

/// Output bucket: where Bedrock writes the jobs' output (`<prefix><job-id>/job-<n>.jsonl.out`, docs/bedrock.md#output-files).
pub fn bedrock_output_prefix(batch_id: &str) -> String {
    format!("bedrock/{batch_id}/")
}

/// Output bucket: `output.jsonl`, `errors.jsonl` and `batch.json`.
pub fn results_key(batch_id: &str, name: &str) -> String {
    format!("results/{batch_id}/{name}")
}

pub fn s3_uri(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// docs/bedrock.md#creating-a-job's s3Uri pattern, as a full match.
pub fn is_bedrock_s3_uri(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("s3://") else {
        return false;
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let b = bucket.as_bytes();
    let bucket_ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.'))
        && ![b'-', b'.'].contains(&b[0])
        && ![b'-', b'.'].contains(&b[b.len() - 1]);
    let key = key.strip_suffix('/').unwrap_or(key);
    let key_ok = key.is_empty()
        || key.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-!_*'().".contains(&c))
        });
    bucket_ok && key_ok
}

/// The execution name limit of Step Functions.
pub const EXECUTION_NAME_MAX: usize = 80;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_version_is_the_same_from_the_event_and_from_the_upload_reply() {
        assert_eq!(upload_version(Some("v1"), Some("abc"), Some("seq")), "v1");
        // PutObject's reply quotes its ETag; the S3 event does not.
        assert_eq!(
            upload_version(None, Some("\"abc-2\""), None),
            upload_version(None, Some("abc-2"), Some("seq"))
        );
        assert_eq!(upload_version(Some(""), None, Some("seq")), "seq");
        assert_eq!(upload_version(None, None, None), "unversioned");
    }

    #[test]
    fn batch_ids_are_readable_stable_and_distinct() {
        let a = batch_id("in", "inbox/My File (v2).jsonl", "v1");
        assert!(a.starts_with("my-file-v2-"), "{a}");
        assert_eq!(a, batch_id("in", "inbox/My File (v2).jsonl", "v1"));
        assert_ne!(a, batch_id("in", "inbox/My File (v2).jsonl", "v2"));
        assert_ne!(a, batch_id("other", "inbox/My File (v2).jsonl", "v1"));
        assert!(batch_id("in", "inbox/___.jsonl", "e").starts_with("batch-"));
        let long = batch_id("in", &format!("inbox/{}.jsonl", "x".repeat(500)), "e");
        assert!(long.len() <= SLUG_MAX + 17);
    }

    #[test]
    fn a_job_name_gives_back_its_batch_id() {
        let id = batch_id("in", "inbox/my-job-file.jsonl", "v1");
        for index in [0, 7, 123] {
            assert_eq!(job_batch_id(&job_name(&id, index)), Some(id.as_str()));
        }
        for foreign in ["my-job", "x-job", "-job1", "a-jobx", "a-job1x", "nothing"] {
            assert_eq!(job_batch_id(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn every_name_fits_bedrock_and_step_functions() {
        for key in [
            "inbox/a.jsonl",
            "inbox/Ünïcode 漢字 + = : %.jsonl",
            &format!("inbox/{}.jsonl", "ab-".repeat(40)),
        ] {
            let id = batch_id("my-bucket", key, "etag");
            assert!(id.len() <= EXECUTION_NAME_MAX);
            let name = job_name(&id, 999);
            assert!(name.len() <= 63, "{name}");
            assert!(name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
            let token = client_request_token(&id, 999);
            assert!(token.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric()));
            assert!(token.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric()));
            for uri in [
                s3_uri("my-bucket", &job_input_key(&id, 3)),
                s3_uri("my-bucket", &bedrock_output_prefix(&id)),
            ] {
                assert!(is_bedrock_s3_uri(&uri), "{uri}");
            }
        }
    }

    #[test]
    fn s3_uri_pattern() {
        assert!(is_bedrock_s3_uri("s3://bucket/a/b.jsonl"));
        assert!(is_bedrock_s3_uri("s3://bucket/"));
        assert!(!is_bedrock_s3_uri("s3://bucket/date=2024/x.jsonl"));
        assert!(!is_bedrock_s3_uri("s3://bucket/a b.jsonl"));
        assert!(!is_bedrock_s3_uri("s3://Bucket/x"));
    }

    #[test]
    fn folder_names_the_model() {
        assert_eq!(
            folder_model("inbox/us.anthropic.claude-3-5-haiku-20241022-v1:0/f.jsonl"),
            Some("us.anthropic.claude-3-5-haiku-20241022-v1:0")
        );
        assert_eq!(
            folder_model("inbox/team/amazon.nova-lite-v1:0/f.jsonl"),
            Some("amazon.nova-lite-v1:0")
        );
        assert_eq!(folder_model("inbox/f.jsonl"), None);
    }
}
