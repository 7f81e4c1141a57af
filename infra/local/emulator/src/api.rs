//! The HTTP surface: the four Bedrock operations on their restJson1 paths (docs/bedrock.md#the-control-plane-api) and the admin API under
//! `/_emulator/`. Any `Authorization` header is accepted and ignored. Every response carries `x-amzn-RequestId`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock;
use crate::config::SettingsPatch;
use crate::error::ApiError;
use crate::events::FaultsPatch;
use crate::faults::{parse_fault, Operation};
use crate::job::InvocationType;
use crate::model;
use crate::runner;
use crate::state::AppState;
use crate::store::Created;
use crate::validate;

type Shared = State<Arc<AppState>>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/model-invocation-job", post(create_job))
        .route("/model-invocation-job/{id}", get(get_job))
        .route("/model-invocation-job/{id}/stop", post(stop_job))
        .route("/model-invocation-jobs", get(list_jobs))
        .route("/_emulator/health", get(health))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/config", get(get_config).post(set_config))
        .route(
            "/_emulator/faults",
            get(list_faults).post(add_faults).delete(clear_faults),
        )
        .route("/_emulator/faults/{id}", delete(remove_fault))
        .route("/_emulator/events", get(event_stats).post(set_event_faults))
        .route("/_emulator/events/reset", post(reset_events))
        .route("/_emulator/quota", get(quota_stats))
        .route("/_emulator/quota/reset", post(reset_quota_stats))
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        .layer(middleware::from_fn_with_state(state.clone(), request_id))
        .with_state(state)
}

/// Serializes a value to a JSON body; serializing our own types cannot fail, and if it ever did the client gets
/// an empty object rather than a panic.
pub fn json_body<T: serde::Serialize>(value: &T) -> Body {
    Body::from(serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()))
}

fn ok_json<T: serde::Serialize>(value: &T) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json_body(value),
    )
        .into_response()
}

async fn request_id(State(state): Shared, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut response = next.run(req).await;
    let id = state.request_id();
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    tracing::debug!(%method, %path, status = response.status().as_u16(), request_id = %id, "request");
    response
}

async fn unknown_operation(req: Request) -> ApiError {
    ApiError::UnknownOperation(format!("No operation matches {} {}", req.method(), req.uri().path()))
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::Validation(format!("The request body is not valid JSON: {e}")))
}

fn label(path: Result<Path<String>, PathRejection>) -> Result<validate::JobIdentifier, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::Validation(format!("Invalid jobIdentifier: {e}")))?;
    validate::job_identifier(&raw)
}

async fn create_job(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let value = parse_body(&body)?;
    let name = value
        .get("jobName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(e) = state.faults().take_call(Operation::Create, &name) {
        return Err(e);
    }
    let request = validate::create_request(&value)?;
    let invocation = request.model_invocation_type.unwrap_or(InvocationType::InvokeModel);
    if model::family(&request.model_id, invocation).is_none() {
        return Err(ApiError::Validation(format!(
            "The provided model identifier is invalid: {}. The emulator has fake models for Anthropic Claude \
             (anthropic.claude…), Amazon Nova (amazon.nova…) and Amazon Titan Text Embeddings V2 \
             (amazon.titan-embed-text-v2…); other models need modelInvocationType Converse, which an embeddings \
             model does not take.",
            request.model_id
        )));
    }
    let job_faults = state.faults().job_faults(&request.job_name);
    let ids = state.new_job_id();
    let settings = state.settings();
    let created = state.store().create(request, ids, clock::now(), &settings)?;
    let arn = match created {
        Created::New { id, arn } => {
            tracing::info!(job = %id, name = %name, "created");
            if let Some(job) = state.store().job(&id) {
                state.events.job_changed(job);
            }
            runner::spawn(state.clone(), id, job_faults);
            arn
        }
        Created::Replayed { arn } => arn,
    };
    Ok(ok_json(&json!({ "jobArn": arn })))
}

async fn get_job(State(state): Shared, path: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let ident = label(path)?;
    let name = state.store().find(&ident)?.request.job_name.clone();
    if let Some(e) = state.faults().take_call(Operation::Get, &name) {
        return Err(e);
    }
    let store = state.store();
    let job = store.find(&ident)?;
    Ok(ok_json(&job.to_wire()))
}

async fn stop_job(State(state): Shared, path: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let ident = label(path)?;
    let name = state.store().find(&ident)?.request.job_name.clone();
    if let Some(e) = state.faults().take_call(Operation::Stop, &name) {
        return Err(e);
    }
    let mut store = state.store();
    let before = store.find(&ident)?.status;
    store.request_stop(&ident, clock::now())?;
    let job = store.find(&ident)?;
    if job.status != before {
        state.events.job_changed(job);
    }
    Ok(ok_json(&json!({})))
}

async fn list_jobs(
    State(state): Shared,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::Validation(format!("Invalid query string: {e}")))?;
    let params = validate::list_params(&pairs)?;
    let store = state.store();
    let (jobs, next) = store.list(&params)?;
    let summaries: Vec<_> = jobs.iter().map(|j| j.to_wire()).collect();
    let mut body = json!({ "invocationJobSummaries": summaries });
    if let Some(token) = next {
        body["nextToken"] = Value::String(token);
    }
    Ok(ok_json(&body))
}

async fn health(State(state): Shared) -> Response {
    let jobs = state.store().len();
    ok_json(&json!({ "status": "ok", "jobs": jobs }))
}

async fn reset(State(state): Shared) -> Response {
    state.reset();
    ok_json(&json!({}))
}

async fn get_config(State(state): Shared) -> Response {
    ok_json(&state.settings())
}

async fn set_config(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let patch: SettingsPatch =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("Invalid emulator config: {e}")))?;
    state
        .update_settings(|s| s.apply(&patch))
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    Ok(ok_json(&state.settings()))
}

/// `{"match": "<job name substring>", "faults": ["throttle_create:2", …]}` (or `"fault": "…"` for one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRuleBody {
    #[serde(rename = "match", default)]
    matches: String,
    #[serde(default)]
    faults: Vec<String>,
    fault: Option<String>,
}

async fn add_faults(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let rule: FaultRuleBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("Invalid fault rule: {e}")))?;
    let specs: Vec<&String> = rule.faults.iter().chain(rule.fault.as_ref()).collect();
    if specs.is_empty() {
        return Err(ApiError::Validation("A fault rule needs at least one fault".into()));
    }
    let faults = specs
        .into_iter()
        .map(|s| parse_fault(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    let mut book = state.faults();
    let id = book.add(rule.matches, faults);
    let added = book.rules().iter().find(|r| r.id == id).cloned();
    Ok(ok_json(&added))
}

async fn list_faults(State(state): Shared) -> Response {
    ok_json(&json!({ "rules": state.faults().rules() }))
}

async fn clear_faults(State(state): Shared) -> Response {
    state.faults().clear();
    ok_json(&json!({}))
}

async fn remove_fault(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::Validation(format!("Invalid fault rule id: {id}")))?;
    if state.faults().remove(id) {
        Ok(ok_json(&json!({})))
    } else {
        Err(ApiError::ResourceNotFound(format!("No fault rule {id}")))
    }
}

/// Per model: the most jobs in flight at once and the creates refused for the quota since the last reset.
async fn quota_stats(State(state): Shared) -> Response {
    ok_json(state.store().quota_stats())
}

async fn reset_quota_stats(State(state): Shared) -> Response {
    state.store().reset_quota_stats();
    ok_json(&json!({}))
}

async fn event_stats(State(state): Shared) -> Response {
    ok_json(&state.events.stats())
}

/// `{"drop": 0.5, "duplicate": 0.2, "seed": 7}`, any subset (`events.rs`).
async fn set_event_faults(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let patch: FaultsPatch =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("Invalid event faults: {e}")))?;
    state
        .events
        .configure(&patch)
        .map_err(|e| ApiError::Validation(format!("Invalid event faults: {e}")))?;
    Ok(ok_json(&state.events.stats()))
}

async fn reset_events(State(state): Shared) -> Response {
    state.events.reset();
    ok_json(&state.events.stats())
}
