//! Fault injection. A rule matches jobs whose name contains a substring (the pipeline names jobs
//! `<batch-id>-job<n>` and batch ids start with the uploaded file's name, so a test picks faults by file name).
//!
//! Fault grammar (one string each):
//! - call faults, answered instead of the operation for the first N matching calls (N defaults to 1):
//!   `throttle_<op>:N` (ThrottlingException 429), `internal_error_<op>:N` (InternalServerException 500),
//!   `access_denied_<op>:N` (AccessDeniedException 403), `quota_create:N` (ServiceQuotaExceededException 400),
//!   `conflict_<create|stop>:N` (ConflictException 400), where `<op>` is `create`, `get` or `stop`;
//! - job faults, applied to every matching job created while the rule exists: `fail`, `expire`, `partial:F`,
//!   `stop`, `record_errors:F` (F a fraction in 0..=1).

use serde::Serialize;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Get,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallError {
    Throttle,
    InternalError,
    AccessDenied,
    Quota,
    Conflict,
}

impl CallError {
    fn to_api_error(self) -> ApiError {
        match self {
            Self::Throttle => ApiError::Throttling("Too many requests, please wait before trying again.".into()),
            Self::InternalError => {
                ApiError::InternalServer("An internal server error occurred. Retry your request.".into())
            }
            Self::AccessDenied => {
                ApiError::AccessDenied("You don't have sufficient access to perform this action.".into())
            }
            Self::Quota => ApiError::ServiceQuotaExceeded(
                "The number of in-progress and submitted batch inference jobs exceeds the quota for this model.".into(),
            ),
            Self::Conflict => ApiError::Conflict("A conflicting operation is in progress for this job.".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    Call {
        op: Operation,
        error: CallError,
        remaining: u64,
    },
    Fail,
    Expire,
    Partial {
        fraction: f64,
    },
    Stop,
    RecordErrors {
        fraction: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault {spec:?}: {reason}")]
pub struct FaultError {
    pub spec: String,
    pub reason: String,
}

pub fn parse_fault(spec: &str) -> Result<Fault, FaultError> {
    let err = |reason: &str| FaultError {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (name, arg) = match spec.trim().split_once(':') {
        Some((n, a)) => (n, Some(a.trim())),
        None => (spec.trim(), None),
    };
    let fraction = || -> Result<f64, FaultError> {
        let f: f64 = arg
            .ok_or_else(|| err("needs a fraction, e.g. :0.5"))?
            .parse()
            .map_err(|_| err("the fraction is not a number"))?;
        if (0.0..=1.0).contains(&f) {
            Ok(f)
        } else {
            Err(err("the fraction must be within 0..=1"))
        }
    };
    let no_arg = |f: Fault| {
        if arg.is_some() {
            Err(err("takes no argument"))
        } else {
            Ok(f)
        }
    };
    match name {
        "fail" => no_arg(Fault::Fail),
        "expire" => no_arg(Fault::Expire),
        "stop" => no_arg(Fault::Stop),
        "partial" => Ok(Fault::Partial { fraction: fraction()? }),
        "record_errors" => Ok(Fault::RecordErrors { fraction: fraction()? }),
        _ => {
            let (error, op) = name
                .rsplit_once('_')
                .ok_or_else(|| err("unknown fault"))
                .and_then(|(e, o)| {
                    let op = match o {
                        "create" => Operation::Create,
                        "get" => Operation::Get,
                        "stop" => Operation::Stop,
                        _ => return Err(err("unknown fault")),
                    };
                    let error = match e {
                        "throttle" => CallError::Throttle,
                        "internal_error" => CallError::InternalError,
                        "access_denied" => CallError::AccessDenied,
                        "quota" if op == Operation::Create => CallError::Quota,
                        "conflict" if op != Operation::Get => CallError::Conflict,
                        _ => return Err(err("unknown fault, or an error the operation does not model")),
                    };
                    Ok((error, op))
                })?;
            let remaining = match arg {
                None => 1,
                Some(a) => a.parse().map_err(|_| err("the count is not a whole number"))?,
            };
            Ok(Fault::Call { op, error, remaining })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub id: u64,
    /// Substring of the job name; empty matches every job.
    #[serde(rename = "match")]
    pub matches: String,
    pub faults: Vec<Fault>,
}

/// What a job does differently, fixed when it is created.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobFaults {
    pub fail: bool,
    pub expire: bool,
    pub partial: Option<f64>,
    pub stop: bool,
    pub record_errors: Option<f64>,
}

#[derive(Debug, Default)]
pub struct FaultBook {
    rules: Vec<Rule>,
    next_id: u64,
}

impl FaultBook {
    pub fn add(&mut self, matches: String, faults: Vec<Fault>) -> u64 {
        self.next_id += 1;
        self.rules.push(Rule {
            id: self.next_id,
            matches,
            faults,
        });
        self.next_id
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The error to answer instead of `op` on a job named `job_name`, using up one of its count.
    pub fn take_call(&mut self, op: Operation, job_name: &str) -> Option<ApiError> {
        self.rules
            .iter_mut()
            .filter(|r| job_name.contains(&r.matches))
            .flat_map(|r| r.faults.iter_mut())
            .find_map(|f| match f {
                Fault::Call {
                    op: o,
                    error,
                    remaining,
                } if *o == op && *remaining > 0 => {
                    *remaining -= 1;
                    Some(error.to_api_error())
                }
                _ => None,
            })
    }

    /// The job faults of every matching rule; the first rule wins for each kind.
    pub fn job_faults(&self, job_name: &str) -> JobFaults {
        let mut jf = JobFaults::default();
        for f in self
            .rules
            .iter()
            .filter(|r| job_name.contains(&r.matches))
            .flat_map(|r| &r.faults)
        {
            match *f {
                Fault::Fail => jf.fail = true,
                Fault::Expire => jf.expire = true,
                Fault::Stop => jf.stop = true,
                Fault::Partial { fraction } => jf.partial = jf.partial.or(Some(fraction)),
                Fault::RecordErrors { fraction } => jf.record_errors = jf.record_errors.or(Some(fraction)),
                Fault::Call { .. } => {}
            }
        }
        jf
    }
}

/// `BEDROCK_EMULATOR_FAULTS`: rules separated by `;`, each `match=fault,fault` (an empty match matches all).
pub fn parse_env(value: &str) -> Result<Vec<(String, Vec<Fault>)>, FaultError> {
    value
        .split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|rule| {
            let (matches, faults) = rule.split_once('=').ok_or_else(|| FaultError {
                spec: rule.to_string(),
                reason: "expected match=fault[,fault]".into(),
            })?;
            let faults = faults.split(',').map(parse_fault).collect::<Result<Vec<_>, _>>()?;
            Ok((matches.trim().to_string(), faults))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grammar() {
        assert_eq!(
            parse_fault("throttle_create:2"),
            Ok(Fault::Call {
                op: Operation::Create,
                error: CallError::Throttle,
                remaining: 2
            })
        );
        assert_eq!(
            parse_fault("internal_error_get"),
            Ok(Fault::Call {
                op: Operation::Get,
                error: CallError::InternalError,
                remaining: 1
            })
        );
        assert_eq!(parse_fault("partial:0.5"), Ok(Fault::Partial { fraction: 0.5 }));
        assert_eq!(parse_fault("stop"), Ok(Fault::Stop));
        assert!(parse_fault("quota_get:1").is_err());
        assert!(parse_fault("partial:2").is_err());
        assert!(parse_fault("fail:1").is_err());
        assert!(parse_fault("explode").is_err());
    }

    #[test]
    fn call_faults_count_down_per_rule() {
        let mut book = FaultBook::default();
        book.add(
            "throttle.jsonl".into(),
            vec![parse_fault("throttle_create:2").expect("valid")],
        );
        let name = "throttle.jsonl-01hx-job1";
        assert!(matches!(
            book.take_call(Operation::Create, name),
            Some(ApiError::Throttling(_))
        ));
        assert!(book.take_call(Operation::Get, name).is_none());
        assert!(book.take_call(Operation::Create, "other-job1").is_none());
        assert!(book.take_call(Operation::Create, name).is_some());
        assert!(book.take_call(Operation::Create, name).is_none());
    }

    #[test]
    fn job_faults_by_substring() {
        let mut book = FaultBook::default();
        for (m, f) in parse_env("partial=partial:0.25;=record_errors:0.1;partial=partial:0.9").expect("valid") {
            book.add(m, f);
        }
        let jf = book.job_faults("partial-job1");
        assert_eq!(jf.partial, Some(0.25));
        assert_eq!(jf.record_errors, Some(0.1));
        assert_eq!(book.job_faults("other").partial, None);
    }
}
