//! The service's modeled errors and their restJson1 wire form (docs/bedrock.md#errors): the type in `X-Amzn-Errortype`,
//! `{"message": …, "__type": …}` in the body. The request id header is added to every response by the router.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ServiceQuotaExceeded(String),
    #[error("{0}")]
    Throttling(String),
    #[error("{0}")]
    InternalServer(String),
    #[error("{0}")]
    AccessDenied(String),
    /// Not a Bedrock operation at all (what an AWS front end answers for an unknown path).
    #[error("{0}")]
    UnknownOperation(String),
}

impl ApiError {
    /// The error code clients match on (`X-Amzn-Errortype`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "ValidationException",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::Conflict(_) => "ConflictException",
            Self::ServiceQuotaExceeded(_) => "ServiceQuotaExceededException",
            Self::Throttling(_) => "ThrottlingException",
            Self::InternalServer(_) => "InternalServerException",
            Self::AccessDenied(_) => "AccessDeniedException",
            Self::UnknownOperation(_) => "UnknownOperationException",
        }
    }

    /// HTTP status from the service model: Conflict and ServiceQuotaExceeded are 400, not 409/402.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::Conflict(_) | Self::ServiceQuotaExceeded(_) => StatusCode::BAD_REQUEST,
            Self::ResourceNotFound(_) | Self::UnknownOperation(_) => StatusCode::NOT_FOUND,
            Self::Throttling(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalServer(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::AccessDenied(_) => StatusCode::FORBIDDEN,
        }
    }

    /// A ValidationException in the service's wording: `N validation error(s) detected: a; b`.
    pub fn validation(violations: &[String]) -> Self {
        let n = violations.len();
        let noun = if n == 1 { "error" } else { "errors" };
        Self::Validation(format!("{n} validation {noun} detected: {}", violations.join("; ")))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.to_string(), "__type": self.code() });
        let mut response = (self.status(), crate::api::json_body(&body)).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code()));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}
