//! The S3 side of a job, through the real S3 API: finding the input objects (one `.jsonl` object or every
//! `.jsonl` directly under a prefix, docs/bedrock.md#creating-a-job), reading them, and writing the output where Bedrock writes it
//! (docs/bedrock.md#output-files: `<output s3Uri>/<job id>/<input file name>.out` and `manifest.json.out`).

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without the leading `/`; may be empty or end in `/`.
    pub key: String,
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// `s3://bucket/key` (already checked against the s3Uri pattern at Create).
pub fn parse_uri(uri: &str) -> Option<S3Location> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| S3Location {
        bucket: bucket.to_string(),
        key: key.to_string(),
    })
}

/// `<output prefix>/<job id>/<name>`, with no doubled or leading slash.
pub fn output_key(out: &S3Location, job_id: &str, name: &str) -> String {
    let prefix = out.key.trim_end_matches('/');
    if prefix.is_empty() {
        format!("{job_id}/{name}")
    } else {
        format!("{prefix}/{job_id}/{name}")
    }
}

/// The last path segment of a key.
pub fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

async fn list(s3: &Client, bucket: &str, prefix: &str, delimiter: bool) -> Result<Vec<ObjectInfo>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = s3.list_objects_v2().bucket(bucket).prefix(prefix);
        if delimiter {
            req = req.delimiter("/");
        }
        if let Some(t) = &token {
            req = req.continuation_token(t);
        }
        let page = req.send().await.map_err(|e| {
            format!(
                "Amazon Bedrock could not access the S3 location s3://{bucket}/{prefix}: {}",
                DisplayErrorContext(&e)
            )
        })?;
        for obj in page.contents() {
            if let Some(key) = obj.key() {
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: obj.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                });
            }
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// The input objects of a job. A URI naming an existing object is that one file, which must end in `.jsonl`;
/// otherwise it is a folder whose direct `.jsonl` children are the files (docs/bedrock.md#output-files: subfolders are not
/// read, other extensions are ignored).
pub async fn resolve_input(s3: &Client, loc: &S3Location) -> Result<Vec<ObjectInfo>, String> {
    if !loc.key.is_empty() && !loc.key.ends_with('/') {
        let found = list(s3, &loc.bucket, &loc.key, false).await?;
        if let Some(obj) = found.into_iter().find(|o| o.key == loc.key) {
            if !obj.key.ends_with(".jsonl") {
                return Err(format!(
                    "The input file {loc} doesn't have the .jsonl extension. Batch inference input files must be \
                     JSONL files."
                ));
            }
            return Ok(vec![obj]);
        }
    }
    let prefix = if loc.key.is_empty() || loc.key.ends_with('/') {
        loc.key.clone()
    } else {
        format!("{}/", loc.key)
    };
    let all = list(s3, &loc.bucket, &prefix, true).await?;
    if all.is_empty() {
        return Err(format!("No input file was found at {loc}."));
    }
    let files: Vec<ObjectInfo> = all.into_iter().filter(|o| o.key.ends_with(".jsonl")).collect();
    if files.is_empty() {
        return Err(format!("No .jsonl input file was found at {loc}."));
    }
    Ok(files)
}

pub async fn read_object(s3: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let fail = |e: String| format!("Amazon Bedrock could not read the input file s3://{bucket}/{key}: {e}");
    let obj = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| fail(DisplayErrorContext(&e).to_string()))?;
    let bytes = obj.body.collect().await.map_err(|e| fail(e.to_string()))?;
    Ok(bytes.into_bytes().to_vec())
}

/// Validating checks that the output bucket is reachable before the job is scheduled.
pub async fn check_bucket(s3: &Client, bucket: &str) -> Result<(), String> {
    s3.head_bucket().bucket(bucket).send().await.map(|_| ()).map_err(|e| {
        format!(
            "Amazon Bedrock could not access the output S3 bucket {bucket}: {}",
            DisplayErrorContext(&e)
        )
    })
}

pub async fn put_object(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "Amazon Bedrock could not write the output file s3://{bucket}/{key}: {}",
                DisplayErrorContext(&e)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_output_keys() {
        let loc = parse_uri("s3://bucket/out/run1/").expect("uri");
        assert_eq!(loc.bucket, "bucket");
        assert_eq!(
            output_key(&loc, "abc123def456", "in.jsonl.out"),
            "out/run1/abc123def456/in.jsonl.out"
        );
        let root = parse_uri("s3://bucket").expect("uri");
        assert_eq!(root.key, "");
        assert_eq!(
            output_key(&root, "abc123def456", "manifest.json.out"),
            "abc123def456/manifest.json.out"
        );
        assert_eq!(file_name("a/b/c.jsonl"), "c.jsonl");
        assert_eq!(parse_uri("https://x"), None);
    }
}
