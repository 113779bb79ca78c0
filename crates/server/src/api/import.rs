//! `POST /api/import?source=&format=csv|jsonl`: the file import through the API.
//!
//! The body is the file; a mapping can be sent as multipart/form-data with the parts
//! `file` and `mapping` (TOML or JSON), or referenced by nothing (columns named like
//! message fields need none).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::header;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use unavoce_core::import::{CompiledMapping, Mapping};
use unavoce_intake::{FileFormat, ImportOptions};

use crate::AppState;
use crate::body::read_body;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// Largest file accepted through the API (the CLI streams files of any size).
pub const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Handles an import request.
#[utoipa::path(
    post,
    path = "/import",
    operation_id = "import_file",
    tag = "import",
    params(
        ("source" = String, Query, description = "The touchpoint or system the file comes from"),
        ("format" = String, Query, description = "`csv` or `jsonl` (also `ndjson`)"),
        ("file_name" = Option<String>, Query, description = "The file's name, for the quarantine's records (`upload` by default)"),
    ),
    request_body(
        description = "The file itself (gzip is read), or a multipart form with the parts `file` and `mapping`. At most 64 MiB.",
        content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (doc::ImportForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "What was imported, and each row that was not.", body = doc::ImportReport),
        (status = 400, response = openapi::BadRequest),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 415, response = openapi::UnsupportedMediaType),
    )
)]
pub async fn import(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let source = params
        .get("source")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_parameter",
                "`source` is required: the touchpoint or system the file comes from",
            )
        })?
        .trim()
        .to_string();
    let format = match params.get("format").map(String::as_str) {
        Some("csv") => FileFormat::Csv,
        Some("jsonl") | Some("ndjson") => FileFormat::Jsonl,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("`format` is {other:?}; expected csv or jsonl"),
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "missing_parameter",
                "`format` is required: csv or jsonl",
            ));
        }
    };
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (file, mapping_text) = if is_multipart {
        read_multipart(request).await?
    } else {
        let (parts, body) = request.into_parts();
        (
            read_body(&parts.headers, body, IMPORT_BODY_LIMIT).await?,
            None,
        )
    };
    let mapping = match mapping_text {
        Some(text) => parse_mapping(&text)?,
        None => Mapping::default(),
    };
    let timezone = match &mapping.timezone {
        Some(name) => TimeZone::get(name).map_err(|_| {
            ApiError::bad_request(
                "invalid_mapping",
                format!("unknown time zone {name:?}; use an IANA name such as Europe/Rome"),
            )
        })?,
        None => TimeZone::UTC,
    };
    let mapping = CompiledMapping::new(mapping, timezone)
        .map_err(|e| ApiError::bad_request("invalid_mapping", e.to_string()))?;
    let options = ImportOptions {
        file_name: params
            .get("file_name")
            .cloned()
            .unwrap_or_else(|| "upload".into()),
        source,
        format,
        mapping,
        rows_per_append: 1000,
    };
    let report = state
        .platform
        .intake
        .import(&file[..], &options, |_| {})
        .await?;
    Ok(Json(json!(report)))
}

async fn read_multipart(request: Request) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let bad = |e: String| ApiError::bad_request("invalid_multipart", e);
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad(e.body_text()))?;
    let mut file = None;
    let mut mapping = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.body_text()))?
    {
        match field.name() {
            Some("file") => {
                file = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| bad(e.body_text()))?
                        .to_vec(),
                )
            }
            Some("mapping") => mapping = Some(field.text().await.map_err(|e| bad(e.body_text()))?),
            _ => {}
        }
    }
    let file = file.ok_or_else(|| bad("the multipart body needs a `file` part".into()))?;
    Ok((file, mapping))
}

/// Parses a mapping written in TOML (as the CLI's mapping files) or JSON.
pub fn parse_mapping(text: &str) -> Result<Mapping, ApiError> {
    if let Ok(mapping) = serde_json::from_str::<Mapping>(text) {
        return Ok(mapping);
    }
    toml::from_str::<Mapping>(text).map_err(|e| {
        ApiError::bad_request("invalid_mapping", format!("the mapping is not valid: {e}"))
    })
}
