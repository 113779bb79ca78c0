//! Profiles: the single customer view, lookup by any identifier, merges, unmerge, and
//! identifiers flagged as shared.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use unavoce_core::Identifier;
use unavoce_core::identity::graph::ProfileNode;
use unavoce_core::identity::{IdentityRules, ProfileId};
use unavoce_core::profile::SearchQuery;
use unavoce_projections::{IdentityProjection, UnmergeError};

use super::parse_param;
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{self, schemas as doc};

/// `GET /api/profiles?limit=&cursor=`: profiles in id order.
#[utoipa::path(
    get,
    path = "/profiles",
    operation_id = "list_profiles",
    tag = "profiles",
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page (a profile id)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "20 by default"),
    ),
    responses(
        (status = 200, description = "Profiles in id order.", body = doc::ProfilePage),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    state.platform.identity.catch_up().await?;
    let limit = super::limit_param(&params, 20, 200)?;
    let after = match params.get("cursor").filter(|c| !c.is_empty()) {
        Some(cursor) => Some(profile_id(cursor)?),
        None => None,
    };
    let (nodes, more) = state.platform.identity.read(|graph| {
        let mut nodes: Vec<ProfileNode> = graph
            .profiles_after(after)
            .take(limit + 1)
            .cloned()
            .collect();
        let more = nodes.len() > limit;
        nodes.truncate(limit);
        (nodes, more)
    });
    let next_cursor = if more {
        nodes.last().map(|n| n.id.to_string())
    } else {
        None
    };
    let profiles: Vec<Value> = nodes
        .iter()
        .map(|node| profile_json(&state.platform.identity, node, false))
        .collect();
    Ok(Json(
        json!({"profiles": profiles, "next_cursor": next_cursor}),
    ))
}

/// `GET /api/profiles/lookup?<type>=<value>`: the profile holding one identifier.
#[utoipa::path(
    get,
    path = "/profiles/lookup",
    operation_id = "lookup_profile",
    tag = "profiles",
    params((
        "identifier" = HashMap<String, String>,
        Query,
        style = Form,
        explode,
        description = "Exactly one identifier as `<type>=<value>`, e.g. `?email=ada@example.com`"
    )),
    responses(
        (status = 200, description = "The profile holding the identifier.", body = doc::Profile),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, description = "The identifier is shared by several people (`ambiguous_identifier`).", body = openapi::ApiErrorBody),
    )
)]
pub async fn lookup(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    state.platform.identity.catch_up().await?;
    let mut pairs = params.iter();
    let (Some((kind, value)), None) = (pairs.next(), pairs.next()) else {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "give exactly one identifier, e.g. /api/profiles/lookup?email=ada@example.com",
        ));
    };
    let identifier = Identifier {
        kind: kind.clone().into(),
        value: value.clone(),
    };
    let rules = state.platform.identity.rules();
    let key = rules
        .key_of(&identifier)
        .ok_or_else(|| unknown_identifier(&rules, &identifier))?;
    let (node, ambiguous) = state
        .platform
        .identity
        .read(|graph| (graph.lookup(&key).cloned(), graph.is_ambiguous(&key)));
    if ambiguous {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ambiguous_identifier",
            format!(
                "{identifier} is shared by several people, so it identifies no one; look up by another identifier (see GET /api/identity/flagged)"
            ),
        ));
    }
    let node = node.ok_or_else(|| ApiError::not_found("no profile holds that identifier"))?;
    Ok(Json(profile_json(&state.platform.identity, &node, true)))
}

/// `GET /api/profiles/{id}`: one profile, with its merge history.
#[utoipa::path(
    get,
    path = "/profiles/{id}",
    operation_id = "show_profile",
    tag = "profiles",
    params(("id" = String, Path, description = "A profile id such as `p-42`; an id merged away resolves to the profile it was merged into")),
    responses(
        (status = 200, description = "The profile, with its merge history.", body = doc::Profile),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = live_profile(&state, &id).await?;
    Ok(Json(profile_json(&state.platform.identity, &node, true)))
}

/// `{"identifier": {"type", "value"}}`: the identifier to cut from the profile.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UnmergeRequest {
    #[schema(value_type = doc::Identifier)]
    identifier: Identifier,
}

/// `GET /api/profiles/{id}/context`: the context card — who, consents, open cases with
/// their cross-channel history, last interactions, recent messages, next best action.
#[utoipa::path(
    get,
    path = "/profiles/{id}/context",
    operation_id = "context_card",
    tag = "profiles",
    params(("id" = String, Path, description = "A profile id such as `p-42`; an id merged away resolves to the profile it was merged into")),
    responses(
        (status = 200, description = "The context card.", body = doc::ContextCard),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn context(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = profile_id(&id)?;
    state.platform.identity.catch_up().await?;
    let card = state
        .platform
        .context_card(id, jiff::Timestamp::now())
        .await?
        .ok_or_else(|| no_such_profile(id))?;
    Ok(Json(serde_json::to_value(card).unwrap_or_default()))
}

/// `GET /api/profiles/{id}/timeline?limit=&cursor=`: the person's interactions on every
/// touchpoint, newest first.
#[utoipa::path(
    get,
    path = "/profiles/{id}/timeline",
    operation_id = "timeline",
    tag = "profiles",
    params(
        ("id" = String, Path, description = "A profile id such as `p-42`; an id merged away resolves to the profile it was merged into"),
        ("cursor" = Option<u32>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "50 by default; kept within 1..=500"),
    ),
    responses(
        (status = 200, description = "The person's interactions, newest first.", body = doc::Timeline),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn timeline(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (node, seqs) = live_profile_with_events(&state, &id).await?;
    let limit = parse_param::<usize>("limit", params.get("limit"))?
        .unwrap_or(50)
        .clamp(1, 500);
    let skip = parse_param::<usize>("cursor", params.get("cursor"))?.unwrap_or(0);
    let mut events = state.platform.intake.log().events_at(seqs).await?;
    events.sort_by_key(|e| std::cmp::Reverse((e.event.timestamp, e.seq)));
    let total = events.len();
    let page: Vec<Value> = events
        .into_iter()
        .skip(skip)
        .take(limit)
        .map(|e| {
            json!({
                "seq": e.seq,
                "at": e.event.timestamp.to_string(),
                "type": e.event.event_type,
                "name": e.event.name,
                "touchpoint": e.event.touchpoint,
                "channel": e.event.channel,
                "properties": e.event.message.get("properties"),
            })
        })
        .collect();
    let next = skip + page.len();
    Ok(Json(json!({
        "profile_id": node.id,
        "total": total,
        "timeline": page,
        "next_cursor": (next < total).then(|| next.to_string()),
    })))
}

/// `POST /api/profiles/{id}/unmerge` `{"identifier": {"type", "value"}}`: cuts the
/// identifier from the profile; answers the profiles that result.
#[utoipa::path(
    post,
    path = "/profiles/{id}/unmerge",
    operation_id = "unmerge_profile",
    tag = "profiles",
    params(("id" = String, Path, description = "A profile id such as `p-42`; an id merged away resolves to the profile it was merged into")),
    request_body = UnmergeRequest,
    responses(
        (status = 200, description = "The profiles that result.", body = doc::ProfileList),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn unmerge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = profile_id(&id)?;
    let request: UnmergeRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "expected {{\"identifier\": {{\"type\": \"email\", \"value\": \"...\"}}}}: {e}"
            ),
        )
    })?;
    state.platform.identity.catch_up().await?;
    let split = state
        .platform
        .identity
        .unmerge(id, &request.identifier)
        .await
        .map_err(|e| match e {
            UnmergeError::NoSuchProfile(_) => ApiError::not_found(e.to_string()),
            UnmergeError::Store(e) => e.into(),
            UnmergeError::UnknownIdentifier(_) => {
                ApiError::bad_request("unknown_identifier", e.to_string())
            }
            UnmergeError::NotInProfile { .. } | UnmergeError::NothingToSplit { .. } => {
                ApiError::new(StatusCode::CONFLICT, "cannot_unmerge", e.to_string())
            }
        })?;
    let nodes: Vec<ProfileNode> = state.platform.identity.read(|graph| {
        split
            .iter()
            .filter_map(|p| graph.profile(*p).cloned())
            .collect()
    });
    let profiles: Vec<Value> = nodes
        .iter()
        .map(|node| profile_json(&state.platform.identity, node, true))
        .collect();
    Ok(Json(json!({ "profiles": profiles })))
}

/// `GET /api/identity/flagged`: identifiers flagged as used by implausibly many people,
/// and identifiers proven shared by two people, each with its evidence.
#[utoipa::path(
    get,
    path = "/identity/flagged",
    operation_id = "flagged_identifiers",
    tag = "identity",
    responses((status = 200, description = "Identifiers flagged or shared, with their evidence.", body = doc::Flagged))
)]
pub async fn flagged(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.platform.identity.catch_up().await?;
    let rules = state.platform.identity.rules().clone();
    let flags: Vec<Value> = state.platform.identity.read(|graph| {
        graph
            .flags()
            .map(|flag| {
                json!({
                    "identifier": rules.identifier_of(&flag.key),
                    "flagged_at": flag.at.to_string(),
                    "flagged_by_event": flag.seq,
                    "seen_with_count": flag.seen_with.len(),
                    "seen_with": flag.seen_with.iter().take(10).map(|k| rules.identifier_of(k)).collect::<Vec<_>>(),
                    "reason": format!(
                        "seen with more than {} distinct {} identifiers; it no longer links anyone",
                        rules.config.flag_after,
                        flag.seen_with.first().map_or("higher-priority", |k| rules.type_rule(k.kind()).name.as_str())
                    ),
                })
            })
            .collect()
    });
    let shared: Vec<Value> = state.platform.identity.read(|graph| {
        let mut shared: Vec<Value> = graph
            .shared()
            .map(|(key, (a, b))| {
                json!({
                    "identifier": rules.identifier_of(key),
                    "seen_with": [rules.identifier_of(a), rules.identifier_of(b)],
                    "reason": format!(
                        "seen with two different {} identifiers, which belong to one person each; it no longer links anyone",
                        rules.type_rule(a.kind()).name
                    ),
                })
            })
            .collect();
        shared.sort_by_key(|v| v["identifier"].to_string());
        shared
    });
    Ok(Json(json!({ "flagged": flags, "shared": shared })))
}

/// `POST /api/identity/matching`: compares profiles that share no identifier; links
/// likely matches and queues possible ones for review.
#[utoipa::path(
    post,
    path = "/identity/matching",
    operation_id = "run_matching",
    tag = "identity",
    responses(
        (status = 200, description = "What the run did.", body = doc::MatchingReport),
        (status = 400, response = openapi::BadRequest),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn run_matching(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let report = state
        .platform
        .identity
        .run_matching()
        .await
        .map_err(review_error)?;
    Ok(Json(json!(report)))
}

/// `GET /api/identity/review?status=pending|accepted|rejected|all`: the review queue.
#[utoipa::path(
    get,
    path = "/identity/review",
    operation_id = "review_queue",
    tag = "identity",
    params(("status" = Option<String>, Query, description = "`pending` (default), `accepted`, `rejected` or `all`")),
    responses((status = 200, description = "The review queue.", body = doc::ReviewQueue))
)]
pub async fn review_queue(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let wanted = params
        .get("status")
        .map(String::as_str)
        .unwrap_or("pending");
    let items: Vec<_> = state
        .platform
        .identity
        .review_queue()
        .await?
        .into_iter()
        .filter(|i| {
            wanted == "all"
                || serde_json::to_value(i.status)
                    .ok()
                    .and_then(|s| s.as_str().map(|s| s == wanted))
                    == Some(true)
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// `POST /api/identity/review/{id}/accept|reject`.
#[utoipa::path(
    post,
    path = "/identity/review/{id}/{decision}",
    operation_id = "decide_review",
    tag = "identity",
    params(
        ("id" = u64, Path, description = "The review item's id"),
        ("decision" = String, Path, description = "`accept` or `reject`"),
    ),
    responses(
        (status = 200, description = "The item as decided.", body = doc::ReviewItem),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    Path((id, decision)): Path<(u64, String)>,
) -> Result<Json<Value>, ApiError> {
    let accept = match decision.as_str() {
        "accept" => true,
        "reject" => false,
        other => {
            return Err(ApiError::not_found(format!(
                "no decision {other:?}; use accept or reject"
            )));
        }
    };
    let item = state
        .platform
        .identity
        .decide(id, accept)
        .await
        .map_err(review_error)?;
    Ok(Json(json!(item)))
}

fn review_error(e: unavoce_projections::ReviewError) -> ApiError {
    use unavoce_projections::{LinkError, ReviewError};
    match e {
        ReviewError::NotFound(_) => ApiError::not_found(e.to_string()),
        ReviewError::AlreadyDecided(_) => {
            ApiError::new(StatusCode::CONFLICT, "already_decided", e.to_string())
        }
        ReviewError::Link(LinkError::Refused(refusal)) => ApiError::new(
            StatusCode::CONFLICT,
            "cannot_link",
            format!("the profiles cannot be linked: {refusal}"),
        ),
        ReviewError::Link(LinkError::Store(e)) | ReviewError::Store(e) => e.into(),
        ReviewError::Link(e) => ApiError::bad_request("unknown_identifier", e.to_string()),
    }
}

/// As [`live_profile`], with the log positions of the profile's events (ascending).
pub async fn live_profile_with_events(
    state: &AppState,
    id: &str,
) -> Result<(ProfileNode, Vec<i64>), ApiError> {
    let id = profile_id(id)?;
    state.platform.identity.catch_up().await?;
    (state.platform.identity)
        .profile_with_events(id)
        .ok_or_else(|| no_such_profile(id))
}

/// The profile with this id as of everything acknowledged so far (an id merged away
/// resolves to the profile it was merged into), or 404.
pub async fn live_profile(state: &AppState, id: &str) -> Result<ProfileNode, ApiError> {
    let id = profile_id(id)?;
    state.platform.identity.catch_up().await?;
    state
        .platform
        .identity
        .read(|graph| graph.profile(id).cloned())
        .ok_or_else(|| no_such_profile(id))
}

fn no_such_profile(id: ProfileId) -> ApiError {
    ApiError::not_found(format!("profile {id} does not exist"))
}

/// Parses a profile id from a path or cursor.
pub fn profile_id(text: &str) -> Result<ProfileId, ApiError> {
    text.parse().map_err(|()| {
        ApiError::bad_request(
            "invalid_profile_id",
            format!("{text:?} is not a profile id such as p-42"),
        )
    })
}

/// A profile id given to filter a list by, as the store holds it (`p-42`): `None` for
/// text no profile id is written as (`p-042`, `alice`), which then matches nothing.
pub fn profile_filter(text: &str) -> Option<ProfileId> {
    text.parse::<ProfileId>()
        .ok()
        .filter(|id| id.to_string() == text)
}

fn unknown_identifier(rules: &IdentityRules, identifier: &Identifier) -> ApiError {
    let types: Vec<&str> = rules.config.types.iter().map(|t| t.name.as_str()).collect();
    ApiError::bad_request(
        "unknown_identifier",
        format!(
            "{identifier} is not a usable identifier; identifier types are: {}",
            types.join(", ")
        ),
    )
}

/// A profile as the API shows it: identifiers, traits with their source and time, and
/// (with `details`) its merge history.
pub(crate) fn profile_json(
    identity: &IdentityProjection,
    node: &ProfileNode,
    details: bool,
) -> Value {
    let rules = identity.rules();
    let view = identity.profile_view(node.id).unwrap_or_default();
    let mut out = Map::new();
    out.insert("id".into(), node.id.to_string().into());
    out.insert("created_at".into(), node.created_at.to_string().into());
    out.insert(
        "identifiers".into(),
        node.identifiers
            .iter()
            .map(|(key, first)| {
                let identifier = rules.identifier_of(key);
                json!({"type": identifier.kind, "value": identifier.value, "first_seen": first.to_string()})
            })
            .collect::<Vec<_>>()
            .into(),
    );
    out.insert(
        "traits".into(),
        view.traits
            .iter()
            .map(|(k, t)| (k.clone(), t.value.to_value()))
            .collect::<Map<_, _>>()
            .into(),
    );
    out.insert("event_count".into(), node.event_count().into());
    out.insert(
        "last_seen".into(),
        view.last_seen.map(|t| t.to_string()).into(),
    );
    if details {
        out.insert(
            "trait_sources".into(),
            serde_json::to_value(&view.traits).unwrap_or_default(),
        );
        out.insert(
            "merges".into(),
            node.merges()
                .iter()
                .map(|m| {
                    json!({
                        "event_seq": m.seq,
                        "at": m.at.to_string(),
                        "into": m.into,
                        "from": m.from,
                        "via": m.via.iter().map(|k| rules.identifier_of(k)).collect::<Vec<_>>(),
                        "decided": m.decided,
                        "reason": if m.decided {
                            "a probabilistic match, accepted automatically or by a reviewer"
                        } else {
                            "these identifiers of the event were held by both profiles"
                        },
                    })
                })
                .collect::<Vec<_>>()
                .into(),
        );
    }
    Value::Object(out)
}

/// `GET /api/profiles/search?q=&limit=`: people whose identifier (e-mail, phone, user
/// id, ...) or name contains `q` (any case), with their name and main identifiers.
#[utoipa::path(
    get,
    path = "/profiles/search",
    operation_id = "search_profiles",
    tag = "profiles",
    params(
        ("q" = String, Query, description = "Part of an identifier or a name (any case)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "20 by default"),
    ),
    responses(
        (status = 200, description = "The people found.", body = doc::SearchResults),
        (status = 400, response = openapi::BadRequest),
    )
)]
pub async fn search(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = params
        .get("q")
        .and_then(|q| SearchQuery::new(q))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!(
                    "give `q`, at least {} characters of an identifier or a name",
                    SearchQuery::MIN_CHARS
                ),
            )
        })?;
    let limit = super::limit_param(&params, 20, 100)?;
    state.platform.identity.catch_up().await?;
    let found: Vec<Value> = state
        .platform
        .identity
        .search(&query, limit)
        .into_iter()
        .map(|person| {
            let identifiers: Vec<Value> = (person.identifiers.iter())
                .map(|i| json!({"type": i.kind, "value": i.value}))
                .collect();
            json!({"id": person.id.to_string(), "name": person.name,
                "identifiers": identifiers, "events": person.events})
        })
        .collect();
    Ok(Json(json!({"profiles": found})))
}

/// `GET /api/profiles/{id}/export?format=jsonl|zip`: everything held about the person
/// (see [`crate::export`]): JSON Lines streamed as the events are read a page at a time,
/// or a ZIP archive with one file per kind, written to a temporary file and streamed.
#[utoipa::path(
    get,
    path = "/profiles/{id}/export",
    operation_id = "export_profile",
    tag = "privacy",
    params(
        ("id" = String, Path, description = "A profile id such as `p-42`; an id merged away resolves to the profile it was merged into"),
        ("format" = Option<String>, Query, description = "`jsonl` (default) or `zip`"),
    ),
    responses(
        (status = 200, description = "Everything held about the person: JSON Lines (one record a line, each with its `kind`), or a ZIP with one file per kind.", content(
            (String = "application/x-ndjson"),
            (Vec<u8> = "application/zip"),
        )),
        (status = 400, response = openapi::BadRequest),
        (status = 404, response = openapi::NotFound),
        (status = 500, response = openapi::InternalError),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
    use axum::response::IntoResponse;
    use std::io::Seek;
    let id = profile_id(&id)?;
    let zip = match params.get("format").map(String::as_str) {
        None | Some("jsonl") => false,
        Some("zip") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("`format` must be jsonl or zip; got {other:?}"),
            ));
        }
    };
    let failed = |e: crate::export::ExportError| match e {
        crate::export::ExportError::NoSuchProfile(id) => no_such_profile(id),
        crate::export::ExportError::Store(e) => e.into(),
        e => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "export_failed",
            e.to_string(),
        ),
    };
    let data = unavoce_platform::PersonData::of(&state.platform);
    let export = crate::export::PersonExport::start(data, id)
        .await
        .map_err(failed)?;
    if zip {
        let file = tempfile::tempfile()
            .map_err(|e| failed(crate::export::ExportError::File(e.to_string())))?;
        let mut file = export.write_zip(file).await.map_err(failed)?;
        file.rewind()
            .map_err(|e| failed(crate::export::ExportError::File(e.to_string())))?;
        let file = tokio::fs::File::from_std(file);
        let chunks = futures_util::stream::unfold(Some(file), |file| async move {
            use tokio::io::AsyncReadExt;
            let mut file = file?;
            let mut chunk = vec![0; 64 * 1024];
            match file.read(&mut chunk).await {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    Some((Ok(chunk), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        return Ok((
            [
                (CONTENT_TYPE, "application/zip".to_string()),
                (
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}.zip\""),
                ),
            ],
            axum::body::Body::from_stream(chunks),
        )
            .into_response());
    }
    let lines = futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_lines().await {
            Ok(Some(lines)) => Some((
                Ok(lines.into_iter().map(|l| l.text).collect::<String>()),
                Some(export),
            )),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    Ok((
        [
            (CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.jsonl\""),
            ),
        ],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}
