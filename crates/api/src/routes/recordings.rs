//! Recording downloads by pre-signed URL (`/recordings/<tenant>/<call>.wav?expires=&signature=`):
//! no session needed — the signature is the permission — and every failure (bad or expired
//! signature, another tenant, no recording) is the same 404, so a probe learns nothing.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use domain::{CallId, TenantId};
use serde::Deserialize;

use crate::AppState;

#[derive(Deserialize)]
pub(crate) struct Signed {
    expires: i64,
    signature: String,
}

pub(crate) fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/recordings/{tenant}/{file}", axum::routing::get(download))
}

async fn download(
    State(state): State<AppState>,
    Path((tenant, file)): Path<(String, String)>,
    Query(signed): Query<Signed>,
) -> Response {
    match find(&state, &tenant, &file, &signed).await {
        Some(bytes) => ([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response(),
        None => crate::error::ApiError::not_found().into_response(),
    }
}

async fn find(state: &AppState, tenant: &str, file: &str, signed: &Signed) -> Option<Vec<u8>> {
    let tenant: TenantId = tenant.parse().ok()?;
    let call: CallId = file.strip_suffix(".wav")?.parse().ok()?;
    let urls = telephony::RecordingUrls::new(&state.vault);
    if !urls.verify(tenant, call, signed.expires, &signed.signature, state.clock.now()) {
        return None;
    }
    let mut tx = state.db.tenant_tx(tenant).await.ok()?;
    let row = db::calls::get_call(&mut tx, call).await.ok()?;
    tx.commit().await.ok()?;
    let path = row.recording?.get("path")?.as_str()?.to_owned();
    tokio::fs::read(path).await.ok()
}
