//! batchdrop: OpenAI Batch API files run as Amazon Bedrock batch inference.
//!
//! - [`catalogue`]: every per-model fact, in one data table; [`model`]: which Bedrock model a name means, and
//!   the wire format it speaks (Claude, Nova, Converse or Titan embeddings).
//! - [`format`](mod@format): the wire formats, one module each: OpenAI input and output, Claude, Nova, Converse, Titan.
//! - [`policy`]: every choice made where OpenAI and Bedrock differ, in one table.
//! - [`request`], [`embeddings`]: a chat or embeddings request once validated, model-neutral; [`completion`]:
//!   one chat answer, model-neutral.
//! - [`translate`]: a whole file, line by line; [`results`]: Bedrock output back to OpenAI output and error
//!   lines, in input order; [`error`]: why a line was rejected.

pub mod catalogue;
#[cfg(feature = "client")]
pub mod client;
pub mod completion;
pub mod counts;
pub mod embeddings;
pub mod error;
pub mod fingerprint;
pub mod format;
pub mod json_text;
pub mod jsonl;
pub mod layout;
pub mod model;
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
