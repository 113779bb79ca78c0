//! `POST /api/config/reload` (owners): reads the configuration file again and puts
//! what can change live in force, as `SIGHUP` does; an invalid file changes nothing.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::openapi;

/// What a reload of the configuration file did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigReloaded {
    /// The file read.
    pub file: String,
    /// Sections that changed and are now in force.
    pub applied: Vec<String>,
    /// Sections that changed but take effect only at the next start.
    pub needs_restart: Vec<String>,
    /// The sections a reload puts in force.
    pub live: Vec<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadRefused {
    #[error(
        "the server started without a configuration file (the defaults): start it with --config FILE to reload one"
    )]
    NoFile,
    #[error("{file} was not reloaded, the configuration in force is kept: {reason}")]
    Invalid { file: String, reason: String },
}

/// What reads the configuration file again; `unavoce serve` gives one.
pub trait ConfigReload: Send + Sync {
    /// Reads the file, checks all of it, and puts its live sections in force.
    fn reload(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ConfigReloaded, ReloadRefused>> + Send + '_>>;
}

/// `POST /api/config/reload`: the file read again; live sections changed at once.
#[utoipa::path(
    post,
    path = "/config/reload",
    operation_id = "reload_config",
    tag = "operations",
    responses(
        (status = 200, description = "What changed, what is in force, what needs a restart.", body = ConfigReloaded),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn reload(State(state): State<AppState>) -> Result<Json<ConfigReloaded>, ApiError> {
    let Some(config) = &state.config else {
        return Err(refused(ReloadRefused::NoFile));
    };
    config.reload().await.map(Json).map_err(refused)
}

fn refused(why: ReloadRefused) -> ApiError {
    let (status, code) = match &why {
        ReloadRefused::NoFile => (StatusCode::CONFLICT, "no_config_file"),
        ReloadRefused::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_config"),
    };
    ApiError::new(status, code, why.to_string())
}
