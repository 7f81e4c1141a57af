//! batchdrop: OpenAI Batch API files run as Amazon Bedrock batch inference.
//!
//! - [`catalogue`]: every per-model fact, in one data table; [`model`]: which Bedrock model a name means, and
//!   its request format (Claude, Nova or Converse).
//! - [`policy`]: every choice made where OpenAI and Bedrock differ, in one table.
//! - [`openai`]: the OpenAI input line and chat body as read; [`request`]: the validated request.
//! - [`bedrock`]: Claude, Nova and Converse request bodies; [`translate`]: a whole file, line by line.
//! - [`embeddings`]: OpenAI embeddings lines on Titan, both ways.
//! - [`results`]: Bedrock output back to OpenAI output and error lines, in input order.
//! - [`output`]: OpenAI batch output lines; [`error`]: why a line was rejected.

pub mod bedrock;
pub mod catalogue;
pub mod completion;
pub mod counts;
pub mod embeddings;
pub mod error;
pub mod fingerprint;
pub mod jsonl;
pub mod layout;
pub mod model;
pub mod openai;
pub mod output;
#[cfg(feature = "aws")]
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod record_id;
pub mod request;
pub mod results;
pub mod spill;
pub mod status;
pub mod translate;
