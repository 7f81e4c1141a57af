//! Job planning: how a model's records are cut into Bedrock jobs that Bedrock will accept (docs/bedrock.md#quotas).

use serde::{Deserialize, Serialize};

use crate::model::BedrockModel;

/// Bedrock's per-model batch quotas (docs/bedrock.md#quotas). The defaults are the documented ones; accounts may have
/// lower or raised values, so deployments set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Minimum records in one job.
    pub min_records: u64,
    /// Maximum records in one input file.
    pub max_records_per_file: u64,
    /// Maximum records in one job.
    pub max_records_per_job: u64,
    /// Maximum size of one input file, in bytes.
    pub max_file_bytes: u64,
    /// Maximum size of all input files of one job, in bytes.
    pub max_job_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_records: 100,
            max_records_per_file: 50_000,
            max_records_per_job: 50_000,
            max_file_bytes: 1_000_000_000,
            max_job_bytes: 5_000_000_000,
        }
    }
}

/// A contiguous run of a model group's records that becomes one job (with one input file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Index of the first record within the group.
    pub start: usize,
    pub records: usize,
    pub bytes: u64,
    /// Input lines whose records the chunk holds: `records` unless a line has several (embeddings).
    #[serde(default)]
    pub lines: usize,
}

/// Why a model group cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{model} needs at least {min} records per Bedrock batch job, and this file has {count} for it")]
    BelowMinimum { model: String, count: usize, min: u64 },
    #[error("{model}: line {line} has {records} records (one per text), more than the {max} one Bedrock job may hold")]
    LineTooLarge {
        model: String,
        /// The line's place among the group's lines, from 1.
        line: usize,
        records: usize,
        max: u64,
    },
    #[error(
        "{model}: {count} records cannot be cut into jobs of at least {min} records within {max_bytes} bytes each"
    )]
    CannotSplit {
        model: String,
        count: usize,
        min: u64,
        max_bytes: u64,
    },
}

/// Cuts a group, given each record's size in bytes (in order), into the fewest jobs that respect every
/// limit, with record counts as even as possible so that none falls below the minimum. `continues_line` is
/// empty or says, per record, whether it belongs to the input line of the record before (an embeddings line
/// has one record per text): a cut never falls between two records of one line.
pub fn plan_group(
    model: &str,
    sizes: &[u64],
    continues_line: &[bool],
    limits: &Limits,
) -> Result<Vec<Chunk>, PlanError> {
    let n = sizes.len();
    let min = limits.min_records;
    if (n as u64) < min {
        return Err(PlanError::BelowMinimum {
            model: model.to_string(),
            count: n,
            min,
        });
    }
    let max_records = limits.max_records_per_file.min(limits.max_records_per_job).max(1);
    let max_bytes = limits.max_file_bytes.min(limits.max_job_bytes);
    if let Some((line, records)) = largest_line(continues_line, n).filter(|(_, r)| *r as u64 > max_records) {
        return Err(PlanError::LineTooLarge {
            model: model.to_string(),
            line,
            records,
            max: max_records,
        });
    }
    let total: u64 = sizes.iter().sum();
    let mut k = (n as u64)
        .div_ceil(max_records)
        .max(total.div_ceil(max_bytes.max(1)))
        .max(1) as usize;
    while k <= n {
        // The smallest chunk of an even split has n / k records.
        if ((n / k) as u64) < min {
            break;
        }
        if let Some(chunks) = even_split(sizes, continues_line, k, (min, max_records, max_bytes)) {
            return Ok(chunks);
        }
        k += 1;
    }
    Err(PlanError::CannotSplit {
        model: model.to_string(),
        count: n,
        min,
        max_bytes,
    })
}

/// The line with the most records, as (its place among the lines from 1, its records); `None` when every
/// line has one.
fn largest_line(continues_line: &[bool], n: usize) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    let (mut line, mut records) = (0, 0);
    for i in 0..n {
        if !continues_line.get(i).copied().unwrap_or(false) {
            line += 1;
            records = 0;
        }
        records += 1;
        if records > 1 && best.is_none_or(|(_, r)| records > r) {
            best = Some((line, records));
        }
    }
    best
}

/// `k` contiguous chunks whose record counts differ by at most one, if each holds `min..=max_records` records
/// in at most `max_bytes`. A cut that falls inside a line moves to the line's end, or else to its start,
/// whichever keeps the chunk within the limits.
fn even_split(
    sizes: &[u64],
    continues_line: &[bool],
    k: usize,
    (min, max_records, max_bytes): (u64, u64, u64),
) -> Option<Vec<Chunk>> {
    let n = sizes.len();
    let (base, extra) = (n / k, n % k);
    let continues = |i: usize| continues_line.get(i).copied().unwrap_or(false);
    // The bytes of records `start..end`, when they make a job within every limit.
    let fits = |start: usize, end: usize| {
        let records = (end - start) as u64;
        let bytes: u64 = sizes[start..end].iter().sum();
        (records > 0 && records >= min && records <= max_records && bytes <= max_bytes).then_some(bytes)
    };
    let mut chunks = Vec::with_capacity(k);
    let mut start = 0;
    let mut even_end = 0;
    for i in 0..k {
        even_end += base + usize::from(i < extra);
        let end = if i + 1 == k {
            n
        } else {
            let (mut later, mut earlier) = (even_end.max(start), even_end.max(start));
            while later < n && continues(later) {
                later += 1;
            }
            while earlier > start && continues(earlier) {
                earlier -= 1;
            }
            if fits(start, later).is_some() || fits(start, earlier).is_none() {
                later
            } else {
                earlier
            }
        };
        let bytes = fits(start, end)?;
        let lines = (start..end).filter(|&r| !continues(r)).count();
        chunks.push(Chunk {
            start,
            records: end - start,
            bytes,
            lines,
        });
        start = end;
    }
    Some(chunks)
}

impl Limits {
    /// These limits for `model`: a `min_records` of 0 stands for the model's own minimum in the catalogue.
    pub fn for_model(self, model: &BedrockModel) -> Limits {
        Limits {
            min_records: match self.min_records {
                0 => model.entry.min_records,
                set => set,
            },
            ..self
        }
    }
}

/// About how many bytes of a Bedrock record make one input token: JSON syntax included, so an estimate
/// from it errs high (docs/formats.md, "What a file will cost").
pub const BYTES_PER_TOKEN: u64 = 4;

/// The records one model group of a file would send: each one's size, and whether it continues the input
/// line of the record before (an embeddings line has one record per text).
#[derive(Debug, Default, Clone)]
pub struct GroupRecords {
    pub sizes: Vec<u64>,
    pub continues_line: Vec<bool>,
}

impl GroupRecords {
    /// One more record of `bytes`, which continues the input line of the one before or starts its own.
    pub fn push(&mut self, bytes: u64, continues_line: bool) {
        self.sizes.push(bytes);
        self.continues_line.push(continues_line);
    }
}

/// What a file would become in a stack, per model: its jobs as the pipeline cuts them (or why it cannot
/// run), its tokens and what they would cost at the catalogue's list prices.
#[derive(Debug, Clone, Serialize)]
pub struct GroupPlan {
    pub model: String,
    /// Accepted lines of the group.
    pub requests: u64,
    pub records: u64,
    pub bytes: u64,
    /// The group's jobs; empty when it cannot run as a batch job.
    pub jobs: Vec<Chunk>,
    /// Why it cannot run as a batch job (below the model's minimum, a line too large).
    pub cannot_run: Option<String>,
    /// About one token per [`BYTES_PER_TOKEN`] bytes of its records.
    pub input_tokens_estimate: u64,
    /// The output tokens its requests may use at most: the sum of their max_tokens (0 for embeddings).
    pub output_tokens_at_most: u64,
    pub cost: Option<CostEstimate>,
}

/// A group's cost in US dollars at list prices: the estimated input tokens and the most output tokens.
#[derive(Debug, Clone, Serialize)]
pub struct CostEstimate {
    pub batch_dollars: f64,
    pub on_demand_dollars: f64,
    /// The price source gives no batch price: the batch figure is half the on-demand one, Bedrock's batch
    /// discount.
    pub batch_is_half_on_demand: bool,
    /// The catalogue's source of the prices, and what it says of itself (where from, as of when).
    pub prices_source: String,
    pub prices_as_of: String,
}

/// Plans one group: `requests` accepted lines whose records are `records`, asking at most `output_tokens`.
pub fn plan_file_group(
    model: &BedrockModel,
    requests: u64,
    records: &GroupRecords,
    output_tokens: u64,
    limits: &Limits,
) -> GroupPlan {
    let bytes: u64 = records.sizes.iter().sum();
    let (jobs, cannot_run) = match plan_group(
        &model.id,
        &records.sizes,
        &records.continues_line,
        &limits.for_model(model),
    ) {
        Ok(jobs) => (jobs, None),
        Err(why) => (Vec::new(), Some(why.to_string())),
    };
    let input_tokens = bytes.div_ceil(BYTES_PER_TOKEN);
    let cost = model.entry.prices.as_ref().map(|p| {
        let on_demand = p.on_demand.cost(input_tokens, output_tokens);
        CostEstimate {
            batch_dollars: p.batch.map_or(on_demand / 2.0, |b| b.cost(input_tokens, output_tokens)),
            on_demand_dollars: on_demand,
            batch_is_half_on_demand: p.batch.is_none(),
            prices_source: p.source.clone(),
            prices_as_of: crate::catalogue::get()
                .ok()
                .and_then(|c| c.source(&p.source))
                .unwrap_or_default()
                .to_string(),
        }
    });
    GroupPlan {
        model: model.id.clone(),
        requests,
        records: records.sizes.len() as u64,
        bytes,
        jobs,
        cannot_run,
        input_tokens_estimate: input_tokens,
        output_tokens_at_most: output_tokens,
        cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(chunks: &[Chunk]) -> Vec<usize> {
        chunks.iter().map(|c| c.records).collect()
    }

    #[test]
    fn one_job_when_it_fits() {
        let chunks = plan_group("m", &vec![100; 500], &[], &Limits::default()).expect("plan");
        assert_eq!(
            chunks,
            vec![Chunk {
                start: 0,
                records: 500,
                bytes: 50_000,
                lines: 500
            }]
        );
    }

    #[test]
    fn balanced_jobs_never_below_the_minimum() {
        // 50,001 records: two jobs of 25,001 and 25,000, not 50,000 + 1.
        let chunks = plan_group("m", &vec![10; 50_001], &[], &Limits::default()).expect("plan");
        assert_eq!(counts(&chunks), vec![25_001, 25_000]);
        assert_eq!(chunks[1].start, 25_001);
    }

    #[test]
    fn size_limits_add_jobs() {
        let limits = Limits {
            max_file_bytes: 1_250,
            ..Limits::default()
        };
        let chunks = plan_group("m", &vec![10; 250], &[], &limits).expect("plan");
        assert_eq!(counts(&chunks), vec![125, 125]);
        assert!(chunks.iter().all(|c| c.bytes <= 1_250));
        // Uneven sizes: the first half is heavier, so three jobs are needed.
        let mut sizes = vec![7; 150];
        sizes.extend(vec![1; 150]);
        let limits = Limits {
            max_file_bytes: 700,
            ..Limits::default()
        };
        let chunks = plan_group("m", &sizes, &[], &limits).expect("plan");
        assert_eq!(counts(&chunks), vec![100, 100, 100]);
    }

    #[test]
    fn below_minimum_says_model_count_and_minimum() {
        let err = plan_group("us.amazon.nova-lite-v1:0", &[1; 99], &[], &Limits::default()).expect_err("too few");
        assert_eq!(
            err.to_string(),
            "us.amazon.nova-lite-v1:0 needs at least 100 records per Bedrock batch job, and this file has 99 for it"
        );
    }

    #[test]
    fn impossible_splits_are_reported() {
        let limits = Limits {
            max_file_bytes: 1_000,
            ..Limits::default()
        };
        assert!(matches!(
            plan_group("m", &vec![9; 150], &[], &limits),
            Err(PlanError::CannotSplit { .. })
        ));
    }

    #[test]
    fn a_line_of_several_records_stays_in_one_job() {
        // 300 records in lines of three. Three jobs of at most 110: the even cuts at 100 and 200 fall inside
        // lines (records 99-101 and 198-200, counted from 0), so each moves on to its line's end.
        let continues: Vec<bool> = (0..300).map(|i| i % 3 != 0).collect();
        let limits = Limits {
            min_records: 10,
            max_records_per_job: 110,
            ..Limits::default()
        };
        let chunks = plan_group("m", &vec![1; 300], &continues, &limits).expect("plan");
        assert_eq!(counts(&chunks), vec![102, 99, 99]);
        assert!(chunks.iter().all(|c| !continues[c.start]), "{chunks:?}");
        // A cut that cannot move on without breaking a limit means one more job.
        let limits = Limits {
            min_records: 10,
            max_records_per_job: 100,
            ..Limits::default()
        };
        let chunks = plan_group("m", &vec![1; 300], &continues, &limits).expect("plan");
        assert!(
            chunks.len() > 3 && chunks.iter().all(|c| c.records <= 100 && !continues[c.start]),
            "{chunks:?}"
        );
        assert_eq!(chunks.iter().map(|c| c.records).sum::<usize>(), 300);
    }

    #[test]
    fn a_cut_inside_a_line_may_move_back_to_its_start() {
        // 199 records, one line of three at records 99-101: moving the cut at 100 on to 102 would leave 97 for
        // the second job, under the minimum; moving it back to 99 gives 99 and 100.
        let continues: Vec<bool> = (0..199).map(|i| i == 100 || i == 101).collect();
        let limits = Limits {
            min_records: 90,
            max_records_per_job: 100,
            ..Limits::default()
        };
        let chunks = plan_group("m", &vec![1; 199], &continues, &limits).expect("plan");
        assert_eq!(counts(&chunks), vec![99, 100]);
        assert_eq!(chunks.iter().map(|c| c.lines).collect::<Vec<_>>(), vec![99, 98]);
    }

    #[test]
    fn a_line_larger_than_a_job_is_named() {
        let continues: Vec<bool> = (0..300).map(|i| (11..250).contains(&i)).collect();
        let limits = Limits {
            min_records: 1,
            max_records_per_job: 200,
            ..Limits::default()
        };
        let err = plan_group("m", &vec![1; 300], &continues, &limits).expect_err("too large");
        assert_eq!(
            err.to_string(),
            "m: line 11 has 240 records (one per text), more than the 200 one Bedrock job may hold"
        );
    }

    fn model(id: &str) -> BedrockModel {
        match crate::model::classify(id) {
            crate::model::ModelName::Supported(m) => m,
            _ => panic!("the catalogue knows {id}"),
        }
    }

    #[test]
    fn a_group_is_priced_at_its_batch_price_or_half_the_on_demand_one() {
        let records = GroupRecords {
            sizes: vec![4_000; 200],
            continues_line: vec![false; 200],
        };
        let limits = Limits {
            min_records: 0,
            ..Limits::default()
        };
        // Llama 4 Maverick lists a batch price: 0.12 and 0.485 dollars per million tokens.
        let llama = plan_file_group(
            &model("us.meta.llama4-maverick-17b-instruct-v1:0"),
            200,
            &records,
            1_000_000,
            &limits,
        );
        assert_eq!(llama.input_tokens_estimate, 200_000);
        let cost = llama.cost.expect("listed prices");
        assert!(!cost.batch_is_half_on_demand);
        assert!(
            (cost.batch_dollars - (0.2 * 0.12 + 0.485)).abs() < 1e-9,
            "{}",
            cost.batch_dollars
        );
        assert!(
            (cost.on_demand_dollars - (0.2 * 0.24 + 0.97)).abs() < 1e-9,
            "{}",
            cost.on_demand_dollars
        );
        assert_eq!(llama.jobs.len(), 1);
        // Claude 3 Haiku lists none: half the on-demand price (0.25 and 1.25).
        let haiku = plan_file_group(
            &model("anthropic.claude-3-haiku-20240307-v1:0"),
            200,
            &records,
            1_000_000,
            &limits,
        );
        let cost = haiku.cost.expect("listed prices");
        assert!(cost.batch_is_half_on_demand);
        assert!((cost.on_demand_dollars - (0.2 * 0.25 + 1.25)).abs() < 1e-9);
        assert!((cost.batch_dollars - cost.on_demand_dollars / 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_minimum_of_zero_is_the_models_own() {
        let nova = model("us.amazon.nova-lite-v1:0");
        let limits = Limits {
            min_records: 0,
            ..Limits::default()
        };
        assert_eq!(limits.for_model(&nova).min_records, nova.entry.min_records);
        let set = Limits {
            min_records: 7,
            ..Limits::default()
        };
        assert_eq!(set.for_model(&nova).min_records, 7);
        let few = GroupRecords {
            sizes: vec![10; 3],
            continues_line: vec![false; 3],
        };
        let plan = plan_file_group(&nova, 3, &few, 30, &limits);
        assert!(plan.jobs.is_empty());
        assert!(plan.cannot_run.is_some_and(|why| why.contains("at least 100 records")));
    }
}
