//! The job table: creation with idempotency and the concurrency quota, lookup, listing with pagination, and stop
//! requests. Pure bookkeeping: the lifecycle runner (`runner.rs`) moves jobs forward.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::clock::Millis;
use crate::config::Settings;
use crate::error::ApiError;
use crate::job::{CreateRequest, Job, JobStatus};
use crate::validate::{JobIdentifier, ListParams};

#[derive(Debug, Default)]
pub struct Store {
    jobs: HashMap<String, Job>,
    /// clientRequestToken → (fingerprint of the request, job id). Kept for the emulator's lifetime (docs/bedrock.md#idempotency).
    tokens: HashMap<String, (String, String)>,
    next_seq: u64,
    /// What the concurrency quota saw per model, for tests of a client's queue (`/_emulator/quota`).
    quota_stats: BTreeMap<String, QuotaStats>,
}

/// Per model: the most jobs counting against the concurrency quota at once, and the creates refused with
/// ServiceQuotaExceededException.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuotaStats {
    pub peak_active: u64,
    pub refused: u64,
}

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new job, to be started by the caller.
    New { id: String, arn: String },
    /// The token was seen with the same parameters: the original job, nothing created.
    Replayed { arn: String },
}

fn fingerprint(req: &CreateRequest) -> String {
    serde_json::to_string(req).unwrap_or_default()
}

impl Store {
    pub fn contains(&self, id: &str) -> bool {
        self.jobs.contains_key(id)
    }

    pub fn quota_stats(&self) -> &BTreeMap<String, QuotaStats> {
        &self.quota_stats
    }

    pub fn reset_quota_stats(&mut self) {
        self.quota_stats.clear();
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Idempotency first (a replay is not a new job, so it is not subject to the quota), then the concurrency
    /// quota, then the optional unique-name rule.
    pub fn create(
        &mut self,
        req: CreateRequest,
        (id, arn): (String, String),
        now: Millis,
        settings: &Settings,
    ) -> Result<Created, ApiError> {
        let print = fingerprint(&req);
        if let Some(token) = &req.client_request_token {
            if let Some((seen, job_id)) = self.tokens.get(token) {
                // docs/bedrock.md#idempotency: a reused token with different parameters is a ConflictException here.
                if *seen != print {
                    return Err(ApiError::Conflict(format!(
                        "The clientRequestToken {token} was already used with different request parameters."
                    )));
                }
                if let Some(job) = self.jobs.get(job_id) {
                    return Ok(Created::Replayed { arn: job.arn.clone() });
                }
            }
        }

        let quota = settings.quotas.for_model(&req.model_id).max_concurrent_jobs;
        let active = self
            .jobs
            .values()
            .filter(|j| j.request.model_id == req.model_id && j.status.counts_against_concurrency())
            .count();
        let active = u64::try_from(active).unwrap_or(u64::MAX);
        let stats = self.quota_stats.entry(req.model_id.clone()).or_default();
        if active >= quota {
            stats.refused += 1;
            return Err(ApiError::ServiceQuotaExceeded(format!(
                "The number of submitted and in-progress batch inference jobs for model {} would exceed the quota \
                 of {quota}. Wait for a job to finish and try again.",
                req.model_id
            )));
        }

        if settings.reject_duplicate_job_names && self.jobs.values().any(|j| j.request.job_name == req.job_name) {
            return Err(ApiError::Validation(format!(
                "A batch inference job with the name {} already exists.",
                req.job_name
            )));
        }

        if let Some(token) = &req.client_request_token {
            self.tokens.insert(token.clone(), (print, id.clone()));
        }
        if let Some(stats) = self.quota_stats.get_mut(&req.model_id) {
            stats.peak_active = stats.peak_active.max(active + 1);
        }
        self.next_seq += 1;
        let timeout_hours = req.timeout_duration_in_hours.unwrap_or(settings.default_timeout_hours);
        let job = Job {
            id: id.clone(),
            arn: arn.clone(),
            seq: self.next_seq,
            request: req,
            status: JobStatus::Submitted,
            message: None,
            submit_time: now,
            last_modified_time: now,
            end_time: None,
            timeout_hours,
            counters: None,
        };
        self.jobs.insert(id.clone(), job);
        Ok(Created::New { id, arn })
    }

    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.get(id)
    }

    pub fn job_mut(&mut self, id: &str) -> Option<&mut Job> {
        self.jobs.get_mut(id)
    }

    /// By bare id or full ARN; an ARN must match the job's own (another region or account is another job).
    pub fn find(&self, ident: &JobIdentifier) -> Result<&Job, ApiError> {
        self.jobs
            .get(&ident.id)
            .filter(|j| ident.arn.as_ref().is_none_or(|arn| *arn == j.arn))
            .ok_or_else(|| {
                ApiError::ResourceNotFound(format!(
                    "The specified batch inference job {} could not be found.",
                    ident.arn.as_deref().unwrap_or(&ident.id)
                ))
            })
    }

    /// docs/bedrock.md#listing-and-stopping-jobs: terminal → ConflictException; Stopping → no-op; otherwise → Stopping (the runner finishes it).
    pub fn request_stop(&mut self, ident: &JobIdentifier, now: Millis) -> Result<(), ApiError> {
        let id = self.find(ident)?.id.clone();
        let job = self
            .jobs
            .get_mut(&id)
            .ok_or_else(|| ApiError::InternalServer("job vanished".into()))?;
        match job.status {
            s if s.is_terminal() => Err(ApiError::Conflict(format!(
                "The batch inference job {} is in status {} and can't be stopped.",
                job.arn,
                s.as_str()
            ))),
            JobStatus::Stopping => Ok(()),
            _ => {
                job.status = JobStatus::Stopping;
                job.last_modified_time = now;
                Ok(())
            }
        }
    }

    /// Filters, sorts by creation time (then creation order), and pages (docs/bedrock.md#listing-and-stopping-jobs).
    pub fn list(&self, p: &ListParams) -> Result<(Vec<&Job>, Option<String>), ApiError> {
        let mut jobs: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| p.submit_time_after.is_none_or(|t| j.submit_time > t))
            .filter(|j| p.submit_time_before.is_none_or(|t| j.submit_time < t))
            .filter(|j| p.status_equals.is_none_or(|s| j.status == s))
            .filter(|j| {
                p.name_contains
                    .as_ref()
                    .is_none_or(|n| j.request.job_name.contains(n.as_str()))
            })
            .collect();
        jobs.sort_by_key(|j| (j.submit_time, j.seq));
        if !p.ascending {
            jobs.reverse();
        }
        let start = match &p.next_token {
            None => 0,
            Some(token) => {
                let anchor = decode_token(token)
                    .ok_or_else(|| ApiError::Validation(format!("Invalid pagination token: {token}")))?;
                jobs.iter()
                    .position(|j| {
                        let key = (j.submit_time, j.seq);
                        if p.ascending {
                            key > anchor
                        } else {
                            key < anchor
                        }
                    })
                    .unwrap_or(jobs.len())
            }
        };
        let page: Vec<&Job> = jobs.iter().skip(start).take(p.max_results).copied().collect();
        let next = (start + page.len() < jobs.len())
            .then(|| page.last().map(|j| encode_token(j.submit_time, j.seq)))
            .flatten();
        Ok((page, next))
    }
}

fn encode_token(submit_time: Millis, seq: u64) -> String {
    format!("emu1-{submit_time:x}-{seq:x}")
}

fn decode_token(token: &str) -> Option<(Millis, u64)> {
    let mut parts = token.strip_prefix("emu1-")?.split('-');
    let t = i64::from_str_radix(parts.next()?, 16).ok()?;
    let seq = u64::from_str_radix(parts.next()?, 16).ok()?;
    parts.next().is_none().then_some((t, seq))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validate::{create_request, job_identifier, list_params};

    fn request(name: &str, token: &str) -> CreateRequest {
        create_request(&json!({
            "jobName": name,
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "clientRequestToken": token,
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bucket/in.jsonl"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bucket/out/"}}
        }))
        .expect("valid")
    }

    fn ids(n: u64) -> (String, String) {
        let id = format!("job{n:09}");
        (
            id.clone(),
            format!("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{id}"),
        )
    }

    #[test]
    fn same_token_same_params_replays_and_different_params_conflict() {
        let mut s = Store::default();
        let settings = Settings::default();
        let first = s.create(request("a", "t1"), ids(1), 1, &settings).expect("created");
        let Created::New { arn, .. } = first else {
            panic!("expected new")
        };
        assert_eq!(
            s.create(request("a", "t1"), ids(2), 2, &settings),
            Ok(Created::Replayed { arn })
        );
        assert!(matches!(
            s.create(request("b", "t1"), ids(3), 3, &settings),
            Err(ApiError::Conflict(_))
        ));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn concurrency_quota_counts_active_jobs_of_the_model() {
        let mut s = Store::default();
        let mut settings = Settings::default();
        settings.quotas.default.max_concurrent_jobs = 1;
        s.create(request("a", "t1"), ids(1), 1, &settings).expect("created");
        assert!(matches!(
            s.create(request("b", "t2"), ids(2), 2, &settings),
            Err(ApiError::ServiceQuotaExceeded(_))
        ));
        s.job_mut(&ids(1).0).expect("job").status = JobStatus::Completed;
        s.create(request("b", "t2"), ids(2), 2, &settings).expect("room again");
        let stats: Vec<&QuotaStats> = s.quota_stats().values().collect();
        assert_eq!(
            stats,
            vec![&QuotaStats {
                peak_active: 1,
                refused: 1
            }]
        );
        s.reset_quota_stats();
        assert!(s.quota_stats().is_empty());
    }

    #[test]
    fn stop_rules() {
        let mut s = Store::default();
        s.create(request("a", "t1"), ids(1), 1, &Settings::default())
            .expect("created");
        let ident = job_identifier(&ids(1).0).expect("id");
        s.request_stop(&ident, 5).expect("stoppable");
        assert_eq!(s.find(&ident).expect("job").status, JobStatus::Stopping);
        s.request_stop(&ident, 6).expect("no-op while stopping");
        s.job_mut(&ids(1).0).expect("job").status = JobStatus::Stopped;
        assert!(matches!(s.request_stop(&ident, 7), Err(ApiError::Conflict(_))));
        let other_region = job_identifier(&ids(1).1.replace("us-east-1", "eu-west-1")).expect("arn");
        assert!(matches!(s.find(&other_region), Err(ApiError::ResourceNotFound(_))));
    }

    #[test]
    fn lists_page_by_page_in_both_orders() {
        let mut s = Store::default();
        let settings = Settings::default();
        for n in 1..=5 {
            s.create(request(&format!("job{n}"), &format!("t{n}")), ids(n), 100, &settings)
                .expect("created");
        }
        for ascending in [false, true] {
            let mut seen = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut q = vec![("maxResults".to_string(), "2".to_string())];
                if ascending {
                    q.push(("sortOrder".into(), "Ascending".into()));
                }
                if let Some(t) = &token {
                    q.push(("nextToken".into(), t.clone()));
                }
                let (page, next) = s.list(&list_params(&q).expect("params")).expect("list");
                seen.extend(page.iter().map(|j| j.request.job_name.clone()));
                match next {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            let mut expected: Vec<String> = (1..=5).map(|n| format!("job{n}")).collect();
            if !ascending {
                expected.reverse();
            }
            assert_eq!(seen, expected);
        }
        let bad = list_params(&[("nextToken".into(), "garbage".into())]).expect("params");
        assert!(s.list(&bad).is_err());
    }
}
