//! Reading request bodies within limits, gzip included.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use flate2::read::GzDecoder;

use crate::error::ApiError;

/// Reads the whole body, decompressing gzip, refusing more than `limit` bytes either
/// compressed or decompressed (so a small gzip bomb is refused too).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes; send smaller batches"),
        )
        .with("limit", limit)
    };
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && length > limit
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let text = e.to_string();
        if is_length_limit(&e) {
            too_large()
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("the request body could not be read: {text}"),
            )
        }
    })?;
    match content_encoding(headers)? {
        Encoding::Identity => Ok(bytes.to_vec()),
        Encoding::Gzip => {
            let mut out = Vec::with_capacity(bytes.len() * 4);
            GzDecoder::new(&bytes[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request(
                        "invalid_gzip",
                        format!("Content-Encoding is gzip but the body is not valid gzip: {e}"),
                    )
                })?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out)
        }
    }
}

enum Encoding {
    Identity,
    Gzip,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => Ok(Encoding::Identity),
        Some(e) if e.is_empty() || e == "identity" => Ok(Encoding::Identity),
        Some(e) if e == "gzip" || e == "x-gzip" => Ok(Encoding::Gzip),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding {other:?} is not supported; send gzip or no encoding"),
        )),
    }
}

/// Whether reading a body failed on its length limit.
pub(crate) fn is_length_limit(e: &axum::Error) -> bool {
    std::error::Error::source(e).is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>())
}
