//! SIVO's HTTP API: the axum router, authentication, problem-JSON errors, the OpenAPI document,
//! Prometheus metrics, and the resource modules under `/api/v1`.
//!
//! Handlers are thin: they check the principal's role, open a tenant transaction, call `db`,
//! write the audit entry in the same transaction, and map the rows to `<Resource>Out` DTOs.

pub mod crypto;
pub mod error;
pub mod extract;
mod metrics;
mod middleware;
pub mod ops;
pub mod principal;
pub mod realtime;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

pub use domain::clock::{Clock, ManualClock, SystemClock};
pub use error::{ApiError, ApiResult};

/// Limits and timeouts of the HTTP API, validated by the binary's config layer.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// A session ends after this long without a request.
    pub session_idle_timeout: Duration,
    /// Stricter idle limit for admins and superadmins (OWASP ASVS 3.3.2).
    pub admin_idle_timeout: Duration,
    /// A session ends this long after login, however active.
    pub session_absolute_timeout: Duration,
    /// Failed logins within `lockout_window` that lock an account.
    pub lockout_threshold: u32,
    pub lockout_window: Duration,
    pub lockout_duration: Duration,
    /// Issuer shown in authenticator apps.
    pub totp_issuer: String,
    /// Mark the session cookie `Secure` (on whenever SIVO is served over HTTPS).
    pub cookie_secure: bool,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Built web app (`web/dist`) served at `/`; None serves only the API.
    pub web_dir: Option<std::path::PathBuf>,
    /// Development and tests only: accept webhook URLs on loopback and private addresses.
    pub webhooks_allow_private_targets: bool,
    /// Tenants' SIP domains are `<slug>.<sip_base_domain>`.
    pub sip_base_domain: String,
    /// The SIP-over-WebSocket URL softphones connect to, if one is served.
    pub sip_wss_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            session_idle_timeout: Duration::from_secs(30 * 60),
            admin_idle_timeout: Duration::from_secs(15 * 60),
            session_absolute_timeout: Duration::from_secs(12 * 3600),
            lockout_threshold: 5,
            lockout_window: Duration::from_secs(15 * 60),
            lockout_duration: Duration::from_secs(15 * 60),
            totp_issuer: "SIVO".into(),
            cookie_secure: false,
            max_body_bytes: 64 * 1024,
            web_dir: None,
            webhooks_allow_private_targets: false,
            sip_base_domain: "sip.localhost".into(),
            sip_wss_url: None,
        }
    }
}

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: db::Db,
    pub vault: vault::Vault,
    pub clock: Arc<dyn Clock>,
    pub config: ApiConfig,
    pub realtime: realtime::Hub,
    /// The B2BUA's live calls, once the SIP service runs in this process.
    pub calls: std::sync::OnceLock<telephony::CallsHandle>,
    metrics: metrics::Metrics,
    /// Verified against when the e-mail is unknown, so unknown users cost the same time.
    dummy_password_hash: String,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(db: db::Db, vault: vault::Vault, clock: Arc<dyn Clock>, config: ApiConfig) -> Self {
        let dummy_password_hash = crypto::hash_password(&crypto::random_token());
        Self(Arc::new(Inner {
            db,
            vault,
            clock,
            config,
            realtime: realtime::Hub::new(),
            calls: std::sync::OnceLock::new(),
            metrics: metrics::Metrics::new(),
            dummy_password_hash,
        }))
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "SIVO API", version = "1", description = "Multi-tenant contact center API. Errors are RFC 9457 problem JSON with a stable `code`."),
    modifiers(&SecurityAddon),
    components(schemas(error::Problem, error::FieldError))
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session token from /api/v1/auth/login, or an API key (sivo_…)"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = api_router().split_for_parts();
    api
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::tenants::router())
        .merge(routes::users::router())
        .merge(routes::api_keys::router())
        .merge(routes::audit::router())
        .merge(routes::webhooks::router())
        .merge(routes::agents::router())
        .merge(routes::trunks::router())
        .merge(routes::queues::router())
        .merge(routes::calls::router())
        .merge(routes::settings::router())
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_router().split_for_parts();
    let openapi = Arc::new(openapi);
    let limit = state.config.max_body_bytes;
    let router = Router::new()
        .merge(api)
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move { axum::Json(openapi.as_ref().clone()) }),
        )
        .merge(routes::health::router())
        .merge(routes::recordings::router());
    let router = match &state.config.web_dir {
        Some(dir) => router.merge(web_app(dir)),
        None => router.fallback(routes::health::not_found),
    };
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(DefaultBodyLimit::max(limit))
        .layer(realtime::layer(&state))
        .with_state(state)
}

/// The single-page app: files from `dir`, and `index.html` for client-side routes. Unknown
/// `/api/…` paths still get problem JSON, never the app's HTML.
fn web_app(dir: &std::path::Path) -> Router<AppState> {
    let index = dir.join("index.html");
    let spa = tower_http::services::ServeDir::new(dir).fallback(tower_http::services::ServeFile::new(index));
    Router::new()
        .route("/api", axum::routing::any(routes::health::not_found))
        .route("/api/{*rest}", axum::routing::any(routes::health::not_found))
        .fallback_service(spa)
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
