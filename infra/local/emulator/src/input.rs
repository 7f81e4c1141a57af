//! What Validating checks in the input files (docs/bedrock.md#job-statuses, "Validating", #input-records and #quotas): one JSON object per line with a
//! `modelInput`, and the per-model record-count and size quotas. Pure: bytes in, records or a job failure
//! message out.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::ModelQuotas;

#[derive(Debug)]
pub struct Record {
    pub record_id: String,
    /// Echoed byte for byte into the output line.
    pub model_input: Box<RawValue>,
}

#[derive(Debug)]
pub struct InputFile {
    pub key: String,
    /// The last path segment of the key: the output file is `<name>.out`.
    pub name: String,
    pub records: Vec<Record>,
}

/// Why a job fails in Validating; the text becomes the job's `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("The input file {file} is not valid UTF-8 text.")]
    NotUtf8 { file: String },
    #[error("Line {line} of the input file {file} is not a valid JSON object: {reason}")]
    NotAnObject { file: String, line: usize, reason: String },
    #[error("Line {line} of the input file {file} has no modelInput field.")]
    MissingModelInput { file: String, line: usize },
    #[error("Line {line} of the input file {file}: recordId must be a string.")]
    BadRecordId { file: String, line: usize },
    #[error("{0}")]
    Quota(String),
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "recordId")]
    record_id: Option<Value>,
    #[serde(rename = "modelInput")]
    model_input: Option<Box<RawValue>>,
}

/// docs/bedrock.md#input-records: the format of ids Bedrock adds for records without one is undocumented; ours are
/// `AUTO` + 7 digits (11 characters, like the documented `CALL0000001`).
pub fn auto_record_id(n: u64) -> String {
    format!("AUTO{n:07}")
}

/// Parses one JSONL file. Blank lines are skipped (a trailing newline is normal); extra fields in a record are
/// ignored, as the service reportedly does. `auto_ids` numbers the records that lack a `recordId`.
pub fn parse_jsonl(file: &str, bytes: &[u8], auto_ids: &mut u64) -> Result<Vec<Record>, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|_| InputError::NotUtf8 { file: file.into() })?;
    let mut records = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let not_object = |reason: String| InputError::NotAnObject {
            file: file.into(),
            line,
            reason,
        };
        // serde would also read a JSON array into the struct, by position.
        if !trimmed.starts_with('{') {
            return Err(not_object("expected '{'".into()));
        }
        let parsed: Line = serde_json::from_str(trimmed).map_err(|e| not_object(e.to_string()))?;
        let model_input = parsed.model_input.ok_or_else(|| InputError::MissingModelInput {
            file: file.into(),
            line,
        })?;
        let record_id = match parsed.record_id {
            None | Some(Value::Null) => {
                *auto_ids += 1;
                auto_record_id(*auto_ids)
            }
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(InputError::BadRecordId {
                    file: file.into(),
                    line,
                })
            }
        };
        records.push(Record { record_id, model_input });
    }
    Ok(records)
}

/// Size quotas, checked on the object sizes before anything is downloaded.
pub fn check_sizes(files: &[(String, u64)], q: &ModelQuotas) -> Result<(), InputError> {
    for (name, size) in files {
        if *size > q.max_file_bytes {
            return Err(InputError::Quota(format!(
                "The input file {name} is {size} bytes, more than the quota of {} bytes per input file.",
                q.max_file_bytes
            )));
        }
    }
    let total: u64 = files.iter().map(|(_, s)| s).sum();
    if total > q.max_job_bytes {
        return Err(InputError::Quota(format!(
            "The input files total {total} bytes, more than the quota of {} bytes per batch inference job.",
            q.max_job_bytes
        )));
    }
    Ok(())
}

/// Record-count quotas: per file, per job, and the minimum per job.
pub fn check_counts(files: &[InputFile], q: &ModelQuotas) -> Result<(), InputError> {
    let count = |f: &InputFile| u64::try_from(f.records.len()).unwrap_or(u64::MAX);
    for f in files {
        if count(f) > q.max_records_per_file {
            return Err(InputError::Quota(format!(
                "The input file {} has {} records, more than the quota of {} records per input file.",
                f.name,
                count(f),
                q.max_records_per_file
            )));
        }
    }
    let total: u64 = files.iter().map(count).sum();
    if total > q.max_records_per_job {
        return Err(InputError::Quota(format!(
            "The job has {total} records, more than the quota of {} records per batch inference job.",
            q.max_records_per_job
        )));
    }
    if total < q.min_records_per_job {
        return Err(InputError::Quota(format!(
            "The job has {total} records, fewer than the minimum of {} records per batch inference job.",
            q.min_records_per_job
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Record>, InputError> {
        parse_jsonl("in.jsonl", text.as_bytes(), &mut 0)
    }

    #[test]
    fn reads_records_and_keeps_model_input_verbatim() {
        let recs = parse("{\"recordId\":\"R1\",\"modelInput\":{\"b\":1,  \"a\":2}}\n\n{\"modelInput\":{}}\r\n")
            .expect("valid");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].record_id, "R1");
        assert_eq!(recs[0].model_input.get(), "{\"b\":1,  \"a\":2}");
        assert_eq!(recs[1].record_id, "AUTO0000001");
    }

    #[test]
    fn rejects_malformed_lines_with_their_number() {
        assert_eq!(
            parse("{\"modelInput\":{}}\n[1,2]\n").err(),
            Some(InputError::NotAnObject {
                file: "in.jsonl".into(),
                line: 2,
                reason: "expected '{'".into()
            })
        );
        assert!(matches!(
            parse("{\"modelInput\":"),
            Err(InputError::NotAnObject { line: 1, .. })
        ));
        assert!(matches!(
            parse("{\"recordId\":\"x\"}"),
            Err(InputError::MissingModelInput { .. })
        ));
        assert!(matches!(
            parse("{\"recordId\":7,\"modelInput\":{}}"),
            Err(InputError::BadRecordId { .. })
        ));
        assert!(matches!(
            parse_jsonl("in.jsonl", &[0xff, 0xfe], &mut 0),
            Err(InputError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn quotas() {
        let q = ModelQuotas {
            min_records_per_job: 2,
            max_records_per_file: 3,
            max_records_per_job: 4,
            max_file_bytes: 10,
            max_job_bytes: 15,
            max_concurrent_jobs: 1,
        };
        let file = |n: usize| InputFile {
            key: "k".into(),
            name: "f.jsonl".into(),
            records: (0..n)
                .map(|i| Record {
                    record_id: i.to_string(),
                    model_input: RawValue::from_string("{}".into()).expect("raw"),
                })
                .collect(),
        };
        assert!(check_counts(&[file(2)], &q).is_ok());
        assert!(check_counts(&[file(1)], &q).is_err());
        assert!(check_counts(&[file(4)], &q).is_err());
        assert!(check_counts(&[file(3), file(2)], &q).is_err());
        assert!(check_sizes(&[("a".into(), 10), ("b".into(), 5)], &q).is_ok());
        assert!(check_sizes(&[("a".into(), 11)], &q).is_err());
        assert!(check_sizes(&[("a".into(), 10), ("b".into(), 6)], &q).is_err());
    }
}
