//! S3 reads and writes with bounded memory: objects stream to and from local files, large files go up
//! in multipart uploads.

use std::path::Path;

use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{aws_error, StepError};

/// Multipart part size: S3 needs at least 5 MiB per part but the last; memory holds one part.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Whether an object exists.
pub async fn exists(s3: &Client, bucket: &str, key: &str) -> Result<bool, StepError> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => Ok(false),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
        Err(e) => Err(aws_error(&format!("HeadObject s3://{bucket}/{key}"), e)),
    }
}

/// A whole (small) object and its ETag, or `None` when there is none. Any other failure is an error,
/// never taken for absence.
pub async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, StepError> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let etag = out.e_tag().map(str::to_string);
            let data = out
                .body
                .collect()
                .await
                .map_err(|e| StepError::Transient(format!("reading s3://{bucket}/{key}: {e}")))?;
            Ok(Some((data.into_bytes().to_vec(), etag)))
        }
        Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => Ok(None),
        Err(e) => Err(aws_error(&format!("GetObject s3://{bucket}/{key}"), e)),
    }
}

/// The condition of a conditional PutObject (S3 conditional writes).
#[derive(Debug, Clone, Copy)]
pub enum Precondition<'a> {
    /// `If-None-Match: *`: only if no object has the key.
    Absent,
    /// `If-Match: <etag>`: only if the object is still the one read.
    Matches(&'a str),
}

/// A conditional PutObject: `Ok(Some(etag))` when written, `Ok(None)` when the condition did not hold
/// (412 PreconditionFailed) or another conditional write raced this one (409 ConditionalRequestConflict).
pub async fn put_if(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
    condition: Precondition<'_>,
) -> Result<Option<String>, StepError> {
    let request = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body));
    let request = match condition {
        Precondition::Absent => request.if_none_match("*"),
        Precondition::Matches(etag) => request.if_match(etag),
    };
    match request.send().await {
        Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e);
            if matches!(status, Some(412 | 409))
                || matches!(code, Some("PreconditionFailed" | "ConditionalRequestConflict"))
            {
                Ok(None)
            } else {
                Err(aws_error(&format!("PutObject s3://{bucket}/{key}"), e))
            }
        }
    }
}

/// Streams an object into a local file; returns its size.
pub async fn download(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    to: &Path,
) -> Result<u64, StepError> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .map_err(|e| aws_error(&format!("GetObject s3://{bucket}/{key}"), e))?;
    let expected = out.content_length().and_then(|n| u64::try_from(n).ok());
    let mut body = out.body;
    let mut file = tokio::fs::File::create(to).await?;
    let mut size = 0u64;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| StepError::Transient(format!("reading s3://{bucket}/{key}: {e}")))?
    {
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    // A cut connection must not pass for a shorter object: every line of it counts.
    if expected.is_some_and(|n| n != size) {
        return Err(StepError::Transient(format!(
            "reading s3://{bucket}/{key}: got {size} of {} bytes",
            expected.unwrap_or_default()
        )));
    }
    drop(file);
    if tokio::fs::metadata(to).await?.len() != size {
        return Err(StepError::Transient(format!(
            "{}: the local copy of s3://{bucket}/{key} changed while it was written",
            to.display()
        )));
    }
    Ok(size)
}

pub async fn put_bytes(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(), StepError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| aws_error(&format!("PutObject s3://{bucket}/{key}"), e))?;
    Ok(())
}

/// Uploads a local file: one PUT when it fits in a part, a multipart upload otherwise (aborted on failure,
/// so no orphaned parts are billed).
pub async fn upload(s3: &Client, bucket: &str, key: &str, from: &Path, content_type: &str) -> Result<(), StepError> {
    let size = tokio::fs::metadata(from).await?.len();
    let mut file = tokio::fs::File::open(from).await?;
    if size <= PART_SIZE as u64 {
        let mut body = Vec::with_capacity(size as usize);
        file.read_to_end(&mut body).await?;
        return put_bytes(s3, bucket, key, body, content_type).await;
    }
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .send()
        .await
        .map_err(|e| aws_error(&format!("CreateMultipartUpload s3://{bucket}/{key}"), e))?;
    let Some(upload_id) = created.upload_id().map(str::to_string) else {
        return Err(StepError::Fatal(format!(
            "CreateMultipartUpload s3://{bucket}/{key} returned no upload id"
        )));
    };
    let result = upload_parts(s3, bucket, key, &upload_id, &mut file).await;
    match result {
        Ok(parts) => {
            s3.complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(|e| aws_error(&format!("CompleteMultipartUpload s3://{bucket}/{key}"), e))?;
            Ok(())
        }
        Err(e) => {
            // Best effort: the upload failed already, and that is the error worth reporting.
            let _ = s3
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            Err(e)
        }
    }
}

async fn upload_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    file: &mut tokio::fs::File,
) -> Result<Vec<CompletedPart>, StepError> {
    let mut parts = Vec::new();
    let mut buf = vec![0u8; PART_SIZE];
    let mut number = 1;
    loop {
        let mut filled = 0;
        while filled < PART_SIZE {
            let n = file.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(buf[..filled].to_vec()))
            .send()
            .await
            .map_err(|e| aws_error(&format!("UploadPart {number} s3://{bucket}/{key}"), e))?;
        parts.push(
            CompletedPart::builder()
                .set_e_tag(out.e_tag().map(str::to_string))
                .part_number(number)
                .build(),
        );
        number += 1;
        if filled < PART_SIZE {
            break;
        }
    }
    Ok(parts)
}

/// Keys under `prefix` ending in `suffix`, in key order.
pub async fn list(s3: &Client, bucket: &str, prefix: &str, suffix: &str) -> Result<Vec<String>, StepError> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error(&format!("ListObjectsV2 s3://{bucket}/{prefix}"), e))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| k.ends_with(suffix))
                .map(str::to_string),
        );
    }
    keys.sort();
    Ok(keys)
}
