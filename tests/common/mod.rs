//! What several test files share: running the CLI, reading JSONL, and a sink that keeps what
//! translation hands it. Each test file uses part of it.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Output};

use batchdrop::error::LineError;
use batchdrop::model::{classify, BedrockModel, ModelName};
use batchdrop::translate::Sink;
use serde_json::Value;

pub const CLAUDE: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";

/// The `batchdrop` binary, run as a user runs it.
pub fn batchdrop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batchdrop"))
        .args(args)
        .output()
        .expect("the batchdrop binary runs")
}

/// The non-blank lines of a JSONL file, parsed.
pub fn jsonl(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

pub fn claude() -> BedrockModel {
    match classify(CLAUDE) {
        ModelName::Supported(m) => m,
        other => panic!("{other:?}"),
    }
}

/// Everything translation produced, in memory.
#[derive(Default)]
pub struct Collected {
    pub records: Vec<(usize, Vec<u8>)>,
    pub map: Vec<u8>,
    pub rejected: Vec<LineError>,
}

impl Sink for Collected {
    fn record(&mut self, group: usize, _: &BedrockModel, record: &[u8], _continues_line: bool) -> io::Result<()> {
        self.records.push((group, record.to_vec()));
        Ok(())
    }
    fn map_entry(&mut self, entry: &[u8]) -> io::Result<()> {
        self.map.extend_from_slice(entry);
        Ok(())
    }
    fn rejected(&mut self, _: &[u8], error: &LineError) -> io::Result<()> {
        self.rejected.push(error.clone());
        Ok(())
    }
}
