//! The emulator driven through the real `aws-sdk-bedrock` client, with moto as S3.
//!
//! Needs `MOTO_SERVER` = path of the `moto_server` executable (PyPI `moto[server]==5.2.5`); without it every test
//! prints a skip notice and passes. One moto server is shared by the whole binary, each test starts its own
//! emulator; both are stopped by PID.
//!
//! - `harness`: processes, clients, test data
//! - `api`: the four operations, validation, idempotency, listing, quota and call faults on the wire
//! - `lifecycle`: jobs run to the end, output files read back from S3, job faults
//! - `events`: the job events through moto's EventBridge to an SQS queue, and the event faults

mod api;
mod events;
mod harness;
mod lifecycle;
