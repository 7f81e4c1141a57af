//! A faithful local stand-in for the Amazon Bedrock batch-inference control plane, as docs/bedrock.md describes
//! it: the four ModelInvocationJob operations on the restJson1 wire, the job lifecycle with S3 input and
//! output through the real S3 API, fake Claude, Nova and Titan Text Embeddings V2 models that validate every
//! record like the real ones, and fault injection for tests. See README.md for running it and for the admin API.
//!
//! Pure parts (no I/O): `validate`, `store`, `input`, `output`, `model`, `faults`, `config`, `clock`, `ids`.
//! Edges: `api` (HTTP), `s3io` (S3), `events` (job events to EventBridge), `runner` (the lifecycle task), `state`
//! (what they share).

pub mod api;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod faults;
pub mod ids;
pub mod input;
pub mod job;
pub mod model;
pub mod output;
pub mod runner;
pub mod s3io;
pub mod state;
pub mod store;
pub mod validate;
