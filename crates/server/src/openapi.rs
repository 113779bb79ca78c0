//! The OpenAPI 3.1 description of the whole HTTP application, served at
//! `/api/openapi.json` with no key.
//!
//! It is generated from the code: each handler carries its `#[utoipa::path]`
//! (parameters, body, answers), and the routers register handlers only through
//! utoipa-axum's `routes!`, which routes a handler and documents it from one list
//! (`crate::routes` and `crate::api::routes`). What every route under a layer shares is
//! added here, where the layer is known: the `/api/` routes' key and their refusals,
//! the tracking API's write key and its body limits.

pub mod schemas;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{OpenApi, ToResponse};

pub use schemas::ApiErrorBody;

/// The security scheme of `/api/`: an API key as a bearer token.
pub const ADMIN_KEY: &str = "api_key";
/// The dashboard's session cookie, which `/api/` takes instead of a key.
pub const SESSION: &str = "session";
/// The security scheme of `/v1/`: a write key as the HTTP Basic username.
pub const WRITE_KEY: &str = "write_key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Unavoce",
        description = "Unavoce's HTTP interface: the Segment-compatible tracking API under \
            `/v1/` (write key), the admin API under `/api/` (an API key, or a dashboard \
            session), unsubscribe and tracking links, providers' callbacks, health, \
            metrics and the dashboard.\n\nEvery error is JSON \
            `{\"error\": {\"code\", \"message\", ...}}` with its HTTP status.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(
        schemas(ApiErrorBody),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            Unprocessable,
            TooManyRequests,
            InternalError,
            Unavailable,
            InsufficientStorage
        )
    ),
    tags(
        (name = "tracking", description = "The Segment-compatible HTTP Tracking API (write key)."),
        (name = "keys", description = "Who is calling, and the named API keys."),
        (name = "audit", description = "The audit log."),
        (name = "events", description = "The event log and its counts."),
        (name = "quarantine", description = "Messages that could not be stored, and their replay."),
        (name = "import", description = "File import."),
        (name = "touchpoints", description = "The touchpoint registry."),
        (name = "profiles", description = "Profiles: the single customer view."),
        (name = "identity", description = "Identifiers shared or flagged, and probabilistic matching."),
        (name = "privacy", description = "Consents, erasure, suppressions and retention."),
        (name = "reports", description = "KPIs, paths, funnel, attribution, census and activity."),
        (name = "engagement", description = "Broadcasts through the policy gate, and its decisions."),
        (name = "journeys", description = "Engagement journeys."),
        (name = "messages", description = "Messages in every channel's style."),
        (name = "outbox", description = "Messages on their way."),
        (name = "subscriptions", description = "Department subscriptions."),
        (name = "segments", description = "Segments."),
        (name = "links", description = "Links in messages: unsubscribe, opens and clicks (each signed)."),
        (name = "callbacks", description = "Providers' callbacks (each checked its provider's way)."),
        (name = "session", description = "Dashboard sessions."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
        (name = "dashboard", description = "The web dashboard."),
    )
)]
struct Base;

/// A request that cannot be done as sent (the code says why).
#[derive(ToResponse)]
#[response(description = "The request is not valid; `error.code` says why.")]
pub struct BadRequest(#[allow(dead_code)] ApiErrorBody);

/// No key, or an unknown one.
#[derive(ToResponse)]
#[response(
    description = "No key, or a key that is not valid (`missing_admin_key`, \
    `invalid_admin_key`, `invalid_write_key`)."
)]
pub struct Unauthorized(#[allow(dead_code)] ApiErrorBody);

/// The key's role may not use the route.
#[derive(ToResponse)]
#[response(
    description = "Refused: the key's role may not use this route (`forbidden`, \
    `no_access_rule`), or a provider's signature does not hold."
)]
pub struct Forbidden(#[allow(dead_code)] ApiErrorBody);

/// Nothing there.
#[derive(ToResponse)]
#[response(description = "Not found (`not_found`, or a more precise code).")]
pub struct NotFound(#[allow(dead_code)] ApiErrorBody);

/// The change clashes with what is there.
#[derive(ToResponse)]
#[response(description = "The request clashes with the current state (the code says how).")]
pub struct Conflict(#[allow(dead_code)] ApiErrorBody);

/// The body is over the limit.
#[derive(ToResponse)]
#[response(
    description = "The body is larger than the endpoint's limit, compressed or not \
    (`body_too_large`; `error.limit` is the limit in bytes)."
)]
pub struct PayloadTooLarge(#[allow(dead_code)] ApiErrorBody);

/// An encoding the server does not read.
#[derive(ToResponse)]
#[response(
    description = "`Content-Encoding` is neither gzip nor identity (`unsupported_encoding`)."
)]
pub struct UnsupportedMediaType(#[allow(dead_code)] ApiErrorBody);

/// Valid JSON that still does not make sense.
#[derive(ToResponse)]
#[response(description = "The content is understood but still invalid (`still_invalid`).")]
pub struct Unprocessable(#[allow(dead_code)] ApiErrorBody);

/// Too many attempts.
#[derive(ToResponse)]
#[response(
    description = "Too many sign-ins, or wrong API keys, from this address; try again \
    after `Retry-After` seconds.",
    headers(("Retry-After" = u32, description = "Seconds to wait before trying again."))
)]
pub struct TooManyRequests(#[allow(dead_code)] ApiErrorBody);

/// A failure of the server's own.
#[derive(ToResponse)]
#[response(description = "The server failed (`storage_failure`, or a more precise code).")]
pub struct InternalError(#[allow(dead_code)] ApiErrorBody);

/// Back-pressure.
#[derive(ToResponse)]
#[response(
    description = "The event log's write queue is full (`overloaded`), or the server is \
    shutting down (`shutting_down`); try again after `Retry-After` seconds.",
    headers(("Retry-After" = u32, description = "Seconds to wait before trying again."))
)]
pub struct Unavailable(#[allow(dead_code)] ApiErrorBody);

/// A full disk.
#[derive(ToResponse)]
#[response(
    description = "The disk holding the store is full (`storage_full`): nothing of this \
    request was stored. It needs the operator, unlike a 503; try again after \
    `Retry-After` seconds.",
    headers(("Retry-After" = u32, description = "Seconds to wait before trying again."))
)]
pub struct InsufficientStorage(#[allow(dead_code)] ApiErrorBody);

/// The document, built once from the routes (without the layers that serve them,
/// which describe nothing).
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let document = crate::routes(crate::api::routes()).into_openapi();
    serde_json::to_string(&document).unwrap_or_else(|e| unreachable!("a document is JSON: {e}"))
});

/// The OpenAPI document as JSON.
pub fn document() -> &'static str {
    &DOCUMENT
}

/// The description that the routes' own paths are added to: information, tags, the
/// error shape and the shared answers, and the security schemes.
pub(crate) fn base() -> Document {
    let mut document = Base::openapi();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        ADMIN_KEY,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key (`--admin-key`, or one made with `POST /api/keys`), as \
                     `Authorization: Bearer <key>`; what it may use depends on its role.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "unavoce_session",
            "A dashboard session (`POST /session`), with the role of the key it was \
             opened with.",
        ))),
    );
    components.add_security_scheme(
        WRITE_KEY,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "A write key as the HTTP Basic username, with or without the colon \
                     and an empty password (as Segment's libraries send it). It may be \
                     sent as `writeKey` in the body instead; the body's key is never stored.",
                ))
                .build(),
        ),
    );
    document
}

/// `GET /api/openapi.json`: this description of the HTTP interface.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((
        status = 200,
        description = "The OpenAPI 3.1 document.",
        content_type = "application/json",
        body = Object
    ))
)]
pub async fn json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// The `/api/` routes as their layer makes them: each needs an API key or a dashboard
/// session, and may answer 401, 403 (the role may not use it), 429 (too many wrong keys
/// from the address), 500, 503 (the key's check reads the store) and 507 (reads of a
/// person's data are audited: a write).
pub(crate) fn behind_api_key(document: &mut Document) {
    let security = vec![
        SecurityRequirement::new(ADMIN_KEY, Vec::<String>::new()),
        SecurityRequirement::new(SESSION, Vec::<String>::new()),
    ];
    for_each_operation(document, |operation| {
        operation.security = Some(security.clone());
        shared(operation, "401", "Unauthorized");
        shared(operation, "403", "Forbidden");
        shared(operation, "429", "TooManyRequests");
        shared(operation, "500", "InternalError");
        shared(operation, "503", "Unavailable");
        shared(operation, "507", "InsufficientStorage");
    });
}

/// The tracking routes as they read requests: a write key in the header or the body,
/// bodies within the limits, gzip or identity, 503 when the log pushes back, 507 when
/// its disk is full.
pub(crate) fn tracking(document: &mut Document) {
    for_each_operation(document, |operation| {
        // The header's key, or `writeKey` in the body (which no scheme can say).
        operation.security = Some(vec![
            SecurityRequirement::new(WRITE_KEY, Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
        shared(operation, "400", "BadRequest");
        shared(operation, "401", "Unauthorized");
        shared(operation, "413", "PayloadTooLarge");
        shared(operation, "415", "UnsupportedMediaType");
        shared(operation, "500", "InternalError");
        shared(operation, "503", "Unavailable");
        shared(operation, "507", "InsufficientStorage");
    });
}

/// Adds the shared answer `name` for `status` to an operation that does not say more.
fn shared(operation: &mut Operation, status: &str, name: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
}

fn for_each_operation(document: &mut Document, mut each: impl FnMut(&mut Operation)) {
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            each(operation);
        }
    }
}
