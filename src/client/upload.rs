//! A file into the stack's inbox: one PutObject when small, else a multipart upload of several parts at once,
//! with the bytes sent shown as they go. A failed multipart upload is aborted, so that no parts stay billed.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::task::JoinSet;

use super::progress::{self, Progress};
use super::{sdk_error, ClientError, Stack};

/// Parts of at least 8 MiB (S3 wants 5 MiB but for the last), larger for files past 80 GB so that the upload
/// stays within S3's 10,000 parts.
const PART_SIZE: u64 = 8 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;
/// Parts in flight at once, and the most bytes they may hold: memory holds the parts in flight, so past 32 MiB
/// parts (files over 320 GB) fewer go at once, down to one.
const PARTS_AT_ONCE: usize = 4;
const BYTES_AT_ONCE: u64 = 4 * PART_SIZE;

/// What S3 answered for the upload: all the batch id is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub version_id: Option<String>,
    pub e_tag: Option<String>,
}

impl Uploaded {
    /// The batch id the submit function gives this object version (the same library function).
    pub fn batch_id(&self) -> String {
        let version = crate::layout::upload_version(self.version_id.as_deref(), self.e_tag.as_deref(), None);
        crate::layout::batch_id(&self.bucket, &self.key, version)
    }
}

/// The part size for a file of `size` bytes.
pub fn part_size(size: u64) -> u64 {
    PART_SIZE.max(size.div_ceil(MAX_PARTS))
}

pub async fn upload(stack: &Stack, file: &Path, key: &str, progress: &mut Progress) -> Result<Uploaded, ClientError> {
    let handle = File::open(file).map_err(|e| ClientError(format!("{}: {e}", file.display())))?;
    let size = handle
        .metadata()
        .map_err(|e| ClientError(format!("{}: {e}", file.display())))?
        .len();
    let bucket = stack.input_bucket.clone();
    let target = crate::layout::s3_uri(&bucket, key);
    let permission = format!("s3:PutObject on arn:aws:s3:::{bucket}/{}*", crate::layout::INBOX_PREFIX);
    let mut shown = Shown::new(size, &target);
    progress.show(shown.frame(0, progress.is_terminal()));
    let uploaded = |version_id: Option<&str>, e_tag: Option<&str>| Uploaded {
        bucket: bucket.clone(),
        key: key.to_string(),
        bytes: size,
        version_id: version_id.map(str::to_string),
        e_tag: e_tag.map(str::to_string),
    };
    if size <= PART_SIZE {
        let body = std::fs::read(file).map_err(|e| ClientError(format!("{}: {e}", file.display())))?;
        let reply = stack
            .s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .content_type("application/jsonl")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("uploading to {target}"), &permission, e))?;
        progress.show(shown.frame(size, progress.is_terminal()));
        return Ok(uploaded(reply.version_id(), reply.e_tag()));
    }
    let created = stack
        .s3
        .create_multipart_upload()
        .bucket(&bucket)
        .key(key)
        .content_type("application/jsonl")
        .send()
        .await
        .map_err(|e| sdk_error(&format!("uploading to {target}"), &permission, e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| ClientError(format!("uploading to {target}: S3 gave no upload id")))?
        .to_string();
    let parts = send_parts(stack, Arc::new(handle), size, key, &upload_id, progress, &mut shown).await;
    let completed = match parts {
        Ok(parts) => {
            stack
                .s3
                .complete_multipart_upload()
                .bucket(&bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
        }
        Err(e) => return Err(abort(stack, key, &upload_id, e).await),
    };
    match completed {
        Ok(reply) => Ok(uploaded(reply.version_id(), reply.e_tag())),
        Err(e) => {
            let failure = sdk_error(&format!("completing the upload to {target}"), &permission, e);
            Err(abort(stack, key, &upload_id, failure).await)
        }
    }
}

/// Sends every part, [`PARTS_AT_ONCE`] at a time, in order of their numbers.
async fn send_parts(
    stack: &Stack,
    file: Arc<File>,
    size: u64,
    key: &str,
    upload_id: &str,
    progress: &mut Progress,
    shown: &mut Shown,
) -> Result<Vec<CompletedPart>, ClientError> {
    let part = part_size(size);
    let count = size.div_ceil(part);
    let target = crate::layout::s3_uri(&stack.input_bucket, key);
    let mut done = Vec::with_capacity(count as usize);
    let mut running = JoinSet::new();
    let at_once = usize::try_from(BYTES_AT_ONCE / part)
        .unwrap_or(1)
        .clamp(1, PARTS_AT_ONCE);
    let mut next = 0u64;
    let mut sent = 0u64;
    while next < count || !running.is_empty() {
        while next < count && running.len() < at_once {
            let (offset, number) = (next * part, next + 1);
            let length = part.min(size - offset);
            let mut buffer = vec![0; length as usize];
            if let Err(e) = file.read_exact_at(&mut buffer, offset) {
                // No part of this upload may still be in flight once it is aborted.
                running.shutdown().await;
                return Err(ClientError(format!("reading the file to upload at byte {offset}: {e}")));
            }
            let request = stack
                .s3
                .upload_part()
                .bucket(&stack.input_bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number as i32)
                .body(ByteStream::from(buffer));
            let target = target.clone();
            running.spawn(async move {
                let reply = request.send().await.map_err(|e| {
                    sdk_error(
                        &format!("uploading part {number} to {target}"),
                        "s3:PutObject on the inbox",
                        e,
                    )
                })?;
                let part = CompletedPart::builder()
                    .part_number(number as i32)
                    .set_e_tag(reply.e_tag().map(str::to_string))
                    .build();
                Ok::<_, ClientError>((part, length))
            });
            next += 1;
        }
        if let Some(joined) = running.join_next().await {
            let sent_part = joined
                .map_err(|e| ClientError(format!("uploading to {target}: {e}")))
                .and_then(|sent| sent);
            let (part, length) = match sent_part {
                Ok(sent) => sent,
                Err(e) => {
                    running.shutdown().await;
                    return Err(e);
                }
            };
            done.push(part);
            sent += length;
            progress.show(shown.frame(sent, progress.is_terminal()));
        }
    }
    done.sort_by_key(|p| p.part_number());
    Ok(done)
}

/// Aborts a failed multipart upload, so that its parts are not kept (and billed); `failure` is why it failed,
/// and says so too when the abort fails.
async fn abort(stack: &Stack, key: &str, upload_id: &str, failure: ClientError) -> ClientError {
    let aborted = stack
        .s3
        .abort_multipart_upload()
        .bucket(&stack.input_bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    match aborted {
        Ok(_) => failure,
        Err(e) => {
            let why = sdk_error(
                "removing its parts",
                &format!(
                    "s3:AbortMultipartUpload on arn:aws:s3:::{}/{}*",
                    stack.input_bucket,
                    crate::layout::INBOX_PREFIX
                ),
                e,
            );
            ClientError(format!(
                "{failure}; {why} (the bucket's lifecycle rule removes parts left over after 7 days)"
            ))
        }
    }
}

/// The upload's progress line: a bar on a terminal, and in a log a line every tenth of the file.
struct Shown {
    size: u64,
    target: String,
    started: std::time::Instant,
}

impl Shown {
    fn new(size: u64, target: &str) -> Shown {
        Shown {
            size,
            target: target.to_string(),
            started: std::time::Instant::now(),
        }
    }

    fn frame(&mut self, sent: u64, terminal: bool) -> Vec<String> {
        let fraction = if self.size == 0 {
            1.0
        } else {
            sent as f64 / self.size as f64
        };
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 && sent > 0 {
            format!(", {}/s", progress::bytes((sent as f64 / secs) as u64))
        } else {
            String::new()
        };
        if terminal {
            vec![format!(
                "uploading {} {} of {}{rate}",
                progress::bar(fraction, 30),
                progress::bytes(sent),
                progress::bytes(self.size)
            )]
        } else {
            // The same line for every part within one tenth: printed once.
            let tenth = (fraction * 10.0).floor() as u64 * 10;
            vec![format!(
                "uploading to {}: {tenth}% of {}",
                self.target,
                progress::bytes(self.size)
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_s3s_limits() {
        assert_eq!(part_size(1), PART_SIZE);
        assert_eq!(part_size(80 * 1024 * 1024 * 1024), PART_SIZE * 1024 / 1000 + 1);
        for size in [PART_SIZE + 1, 5 << 40] {
            assert!(size.div_ceil(part_size(size)) <= MAX_PARTS);
            assert!(part_size(size) >= 5 * 1024 * 1024);
        }
    }

    #[test]
    fn the_batch_id_is_the_pipelines() {
        let up = Uploaded {
            bucket: "in".into(),
            key: "inbox/a.jsonl".into(),
            bytes: 1,
            version_id: None,
            e_tag: Some("\"abc\"".into()),
        };
        assert_eq!(up.batch_id(), crate::layout::batch_id("in", "inbox/a.jsonl", "abc"));
    }
}
