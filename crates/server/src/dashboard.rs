//! The web dashboard at `/`: an app shell and its assets, embedded in the binary (no
//! CDN, nothing to build but the binary). Everything it shows comes from `/api/`, which
//! answers only a signed-in session or an API key, as the key's role allows.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A script of the dashboard.
macro_rules! script {
    ($name:literal) => {
        (
            $name,
            "text/javascript; charset=utf-8",
            include_str!(concat!("../dashboard/", $name)),
        )
    };
}

/// The dashboard's files: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    script!("app.js"),
    script!("ui.js"),
    script!("charts.js"),
    script!("touchpoints.js"),
    script!("kpis.js"),
    script!("engagement.js"),
    script!("definitions.js"),
    script!("quality.js"),
    script!("audit.js"),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../dashboard/style.css"),
    ),
];

const INDEX: &str = include_str!("../dashboard/index.html");

/// `GET /`: the app shell.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "dashboard",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's app shell.", content_type = "text/html", body = String))
)]
pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

/// `GET /assets/{name}`.
#[utoipa::path(
    get,
    path = "/assets/{name}",
    operation_id = "dashboard_asset",
    tag = "dashboard",
    params(("name" = String, Path, description = "A file of the dashboard (`app.js`, `style.css`, ...)")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/javascript"),
            (String = "text/css"),
        )),
        (status = 404, description = "No such asset.", content_type = "text/plain", body = String),
    )
)]
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
