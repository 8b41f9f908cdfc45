//! Error answers in OpenAI's shape; internal details stay in the log.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use morpheus_sdk::openai::{ErrorBody, ErrorDetail};

use crate::Error;

/// An HTTP error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI error type.
    pub kind: &'static str,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
    /// The request's field to blame, when one is.
    pub param: Option<String>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
        }
    }

    /// The same answer naming the request's field to blame (OpenAI's `param`).
    pub(crate) fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing_assignment",
            message,
        )
    }

    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", code, message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            "internal error",
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidRequest(m) => Self::bad_request("invalid_request", m),
            Error::Busy { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "busy",
                e.to_string(),
            ),
            Error::EngineStopped => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "shutting_down",
                e.to_string(),
            ),
            other => {
                tracing::error!(target: "worker::api", error = %other, "request failed");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message,
                kind: self.kind.to_string(),
                code: Some(self.code.to_string()),
                param: self.param,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
