//! A job's records on their way through the fake model, and the files Bedrock writes for them (docs/bedrock.md#output-files):
//! `<input file name>.out` per input file, in shuffled order, and `manifest.json.out`. Pure: no S3 here.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::ids::SplitMix64;
use crate::input::{InputFile, Record};
use crate::job::Counters;
use crate::model::{self, Family, ModelOutput, RecordError};

/// One output line: the record echoed with `modelOutput` or `error`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputLine<'a> {
    record_id: &'a str,
    model_input: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_output: Option<&'a ModelOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RecordError>,
}

/// `manifest.json.out`: the six fields of docs/bedrock.md#output-files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub total_record_count: u64,
    pub processed_record_count: u64,
    pub success_record_count: u64,
    pub error_record_count: u64,
    pub input_token_count: u64,
    pub output_token_count: u64,
}

pub const MANIFEST_NAME: &str = "manifest.json.out";

fn injected_error() -> RecordError {
    RecordError {
        error_code: 500,
        error_message: "Internal server error. The model could not process the record.".into(),
    }
}

/// The records of a job, the (shuffled) order in which they are processed, and the results so far.
pub struct Batch {
    files: Vec<InputFile>,
    /// (file index, record index) in processing order, which is also the output order.
    order: Vec<(usize, usize)>,
    results: Vec<Result<ModelOutput, RecordError>>,
    family: Family,
    model_id: String,
    /// `record_errors:F`: an evenly spread fraction of positions in the processing order answer 500.
    record_error_fraction: Option<f64>,
    manifest: Manifest,
}

impl Batch {
    /// The order depends only on `seed` and the input keys, so a rerun gives the same files.
    pub fn new(
        files: Vec<InputFile>,
        family: Family,
        model_id: &str,
        seed: u64,
        record_error_fraction: Option<f64>,
    ) -> Self {
        let mut order: Vec<(usize, usize)> = files
            .iter()
            .enumerate()
            .flat_map(|(f, file)| (0..file.records.len()).map(move |r| (f, r)))
            .collect();
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        SplitMix64::derived(seed, &keys.join("\n")).shuffle(&mut order);
        let total = u64::try_from(order.len()).unwrap_or(u64::MAX);
        Self {
            files,
            order,
            results: Vec::new(),
            family,
            model_id: model_id.to_string(),
            record_error_fraction,
            manifest: Manifest {
                total_record_count: total,
                ..Manifest::default()
            },
        }
    }

    pub fn total(&self) -> usize {
        self.order.len()
    }

    pub fn processed(&self) -> usize {
        self.results.len()
    }

    fn record(&self, at: usize) -> Option<&Record> {
        let (f, r) = *self.order.get(at)?;
        self.files.get(f)?.records.get(r)
    }

    fn injected_at(&self, at: usize) -> bool {
        self.record_error_fraction.is_some_and(|fr| {
            let (a, b) = (at as f64 * fr, (at + 1) as f64 * fr);
            b.floor() > a.floor()
        })
    }

    /// Runs the next `n` records (or fewer at the end) through the fake model.
    pub fn process(&mut self, n: usize) {
        let end = (self.results.len() + n).min(self.order.len());
        for at in self.results.len()..end {
            let result = match self.record(at) {
                _ if self.injected_at(at) => Err(injected_error()),
                Some(rec) => model::invoke(self.family, &self.model_id, &rec.record_id, &rec.model_input),
                None => Err(injected_error()),
            };
            let m = &mut self.manifest;
            m.processed_record_count += 1;
            match &result {
                Ok(out) => {
                    let (i, o) = out.usage();
                    m.success_record_count += 1;
                    m.input_token_count += i;
                    m.output_token_count += o;
                }
                Err(_) => m.error_record_count += 1,
            }
            self.results.push(result);
        }
    }

    pub fn counters(&self) -> Counters {
        let m = &self.manifest;
        Counters {
            total: m.total_record_count,
            processed: m.processed_record_count,
            success: m.success_record_count,
            error: m.error_record_count,
        }
    }

    pub fn manifest(&self) -> Manifest {
        self.manifest
    }

    /// `(output file name, JSONL bytes)` for every input file, holding the processed records in processing
    /// order (a file whose records were never reached is written empty).
    pub fn render(&self) -> Result<Vec<(String, Vec<u8>)>, serde_json::Error> {
        let mut out: Vec<(String, Vec<u8>)> = self
            .files
            .iter()
            .map(|f| (format!("{}.out", f.name), Vec::new()))
            .collect();
        for (at, result) in self.results.iter().enumerate() {
            let (Some(&(f, _)), Some(rec)) = (self.order.get(at), self.record(at)) else {
                continue;
            };
            let line = OutputLine {
                record_id: &rec.record_id,
                model_input: &rec.model_input,
                model_output: result.as_ref().ok(),
                error: result.as_ref().err(),
            };
            if let Some((_, buf)) = out.get_mut(f) {
                serde_json::to_writer(&mut *buf, &line)?;
                buf.push(b'\n');
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::input::parse_jsonl;

    fn file(name: &str, n: usize, valid: bool) -> InputFile {
        let body = if valid {
            r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#
        } else {
            r#"{"max_tokens":50}"#
        };
        let text: String = (0..n)
            .map(|i| format!("{{\"recordId\":\"{name}{i:04}\",\"modelInput\":{body}}}\n"))
            .collect();
        InputFile {
            key: format!("in/{name}.jsonl"),
            name: format!("{name}.jsonl"),
            records: parse_jsonl(name, text.as_bytes(), &mut 0).expect("valid jsonl"),
        }
    }

    fn lines(bytes: &[u8]) -> Vec<Value> {
        std::str::from_utf8(bytes)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    #[test]
    fn every_record_once_shuffled_with_a_manifest() {
        let mut b = Batch::new(
            vec![file("a", 30, true), file("b", 20, false)],
            Family::Claude,
            CLAUDE,
            42,
            None,
        );
        b.process(1000);
        let files = b.render().expect("render");
        assert_eq!(files[0].0, "a.jsonl.out");
        let a = lines(&files[0].1);
        let ids: Vec<&str> = a.iter().map(|l| l["recordId"].as_str().expect("id")).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_ne!(ids, sorted, "output should be shuffled");
        sorted.dedup();
        assert_eq!(sorted.len(), 30);
        assert!(a.iter().all(|l| l["modelOutput"]["type"] == "message"));
        let b_lines = lines(&files[1].1);
        assert_eq!(b_lines.len(), 20);
        assert!(b_lines
            .iter()
            .all(|l| l["error"]["errorCode"] == 400 && l.get("modelOutput").is_none()));
        let m = b.manifest();
        assert_eq!((m.total_record_count, m.processed_record_count), (50, 50));
        assert_eq!((m.success_record_count, m.error_record_count), (30, 20));
        assert!(m.input_token_count > 0 && m.output_token_count > 0);
    }

    #[test]
    fn same_seed_same_order_and_partial_processing() {
        let render = |seed| {
            let mut b = Batch::new(vec![file("a", 10, true)], Family::Claude, CLAUDE, seed, None);
            b.process(4);
            assert_eq!(b.counters().processed, 4);
            b.render().expect("render")
        };
        assert_eq!(render(1), render(1));
        assert_ne!(render(1), render(2));
        assert_eq!(lines(&render(1)[0].1).len(), 4);
    }

    #[test]
    fn injected_record_errors_are_an_exact_fraction() {
        let mut b = Batch::new(vec![file("a", 100, true)], Family::Claude, CLAUDE, 42, Some(0.1));
        b.process(100);
        let c = b.counters();
        assert_eq!((c.success, c.error), (90, 10));
        let errors = lines(&b.render().expect("render")[0].1)
            .into_iter()
            .filter(|l| l["error"]["errorCode"] == 500)
            .count();
        assert_eq!(errors, 10);
    }
}
