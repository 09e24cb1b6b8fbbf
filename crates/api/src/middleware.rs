//! Request middleware: metrics, access logging, and problem JSON for every error response
//! (with the request id filled in).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, PROBLEM_JSON};
use crate::metrics::RequestLabels;

pub(crate) async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request_id(&request);
    let span =
        tracing::info_span!("http", %method, %route, request_id = %request_id.as_deref().unwrap_or("-"));
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let response = as_problem(response, request_id);
    let status = response.status().as_u16();
    let labels = RequestLabels { method, route, status };
    state.metrics.requests.get_or_create(&labels).inc();
    state.metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms = started.elapsed().as_millis() as u64, "request failed");
        } else {
            tracing::debug!(status, elapsed_ms = started.elapsed().as_millis() as u64, "request");
        }
    });
    response
}

pub(crate) fn request_id(request: &Request) -> Option<String> {
    request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Re-renders our errors with the request id, and wraps axum's own bare error responses
/// (405, 413, …) in problem JSON.
fn as_problem(response: Response, request_id: Option<String>) -> Response {
    let status = response.status();
    if let Some(error) = response.extensions().get::<ApiError>().cloned() {
        let (mut parts, _) = response.into_parts();
        let body = serde_json::to_vec(&error.to_problem(request_id)).unwrap_or_default();
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(body));
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let (code, detail) = match status.as_u16() {
        404 => ("not_found", "no such resource"),
        405 => ("method_not_allowed", "this method is not allowed on this resource"),
        413 => ("payload_too_large", "request body is too large"),
        408 => ("request_timeout", "the request took too long"),
        _ => ("error", "the request failed"),
    };
    let error = ApiError::new(status, code, detail);
    let (mut parts, _) = response.into_parts();
    let body = serde_json::to_vec(&error.to_problem(request_id)).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut response = Response::from_parts(parts, Body::from(body));
    response.extensions_mut().insert(error);
    response.into_response()
}
