//! `ApiError`: every failure leaves as RFC 9457 problem JSON with a stable machine-readable `code`.
//!
//! The `request_id` is filled in by middleware (`problem_with_request_id`), which also turns the
//! bare 404/405/413 responses axum produces on its own into problem JSON, so no error escapes
//! without the same shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field in a request body or query.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field, e.g. `email` or `members[2].user_id`.
    pub field: String,
    pub message: String,
}

/// The problem document (RFC 9457).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_url: String,
    pub title: String,
    pub status: u16,
    /// Stable identifier to branch on (`invalid_credentials`, `mfa_required`, `not_found`…).
    pub code: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), errors: Vec::new() }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 422 naming each invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail =
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, code: "validation_failed", detail, errors }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError { field: field.to_owned(), message: message.into() }])
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log for the request id",
        )
    }

    pub fn to_problem(&self, request_id: Option<String>) -> Problem {
        Problem {
            type_url: format!("https://sivo.dev/problems/{}", self.code.replace('_', "-")),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            code: self.code.to_owned(),
            detail: self.detail.clone(),
            request_id,
            errors: self.errors.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_problem(None)).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        // The middleware re-renders with the request id.
        response.extensions_mut().insert(self);
        response
    }
}

impl From<db::DbError> for ApiError {
    fn from(e: db::DbError) -> Self {
        match e {
            db::DbError::NotFound => Self::not_found(),
            db::DbError::Conflict(constraint) => match constraint.as_str() {
                "users_email_key" => {
                    Self::field_conflict("email", "email_taken", "this email is already in use")
                }
                "tenants_slug_key" => {
                    Self::field_conflict("slug", "slug_taken", "this slug is already in use")
                }
                _ => Self::conflict("conflict", "conflicts with an existing resource"),
            },
            other => {
                tracing::error!(error = %other, "database error");
                Self::internal()
            }
        }
    }
}

impl ApiError {
    fn field_conflict(field: &str, code: &'static str, message: &str) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            code,
            detail: message.to_owned(),
            errors: vec![FieldError { field: field.to_owned(), message: message.to_owned() }],
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
