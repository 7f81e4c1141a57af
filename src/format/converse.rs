//! Bedrock's Converse format, both ways (docs/formats.md, "Converse"): the `modelInput` of a record in a job of
//! `modelInvocationType: Converse`, and its `modelOutput`.
//!
//! A Converse request is Nova's body without `schemaVersion`, with the same `system`, `messages` and content
//! blocks, and `inferenceConfig` without `topK` (which goes in `additionalModelRequestFields` as `top_k`). The
//! catalogue's Converse models take no tools: Bedrock fails Converse-type batch records with a `toolConfig`. A
//! Converse response has the shape of Nova's (`output.message`, `stopReason`, `usage`), so both directions are
//! [`super::nova`]'s, told which format they speak.

use crate::completion::{Completion, Unusable};
use crate::request::Request;

use super::nova;

/// The Converse request body.
pub(super) fn body<'r, 'a>(request: &'r Request<'a>) -> nova::Body<'r, 'a> {
    nova::Body {
        request,
        converse: true,
    }
}

/// Reads a Converse response.
pub(super) fn read(model_output: &str) -> Result<Completion<'_>, Unusable> {
    nova::read(model_output, "Converse")
}
