//! Prometheus metrics at `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use unavoce_intake::IngestReport;
use unavoce_store::{CommitInfo, CommitKind};

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// The platform's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histogram,
    events_accepted: Counter,
    events_quarantined: Counter,
    events_deduplicated: Counter,
    commit_seconds: Histogram,
    commit_rows: Histogram,
    sqlite_memory: Gauge,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("unavoce");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let request_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            request_seconds.clone(),
        );
        let events_accepted = Counter::default();
        registry.register(
            "events_accepted",
            "Events stored in the log",
            events_accepted.clone(),
        );
        let events_quarantined = Counter::default();
        registry.register(
            "events_quarantined",
            "Messages refused and kept in the quarantine",
            events_quarantined.clone(),
        );
        let events_deduplicated = Counter::default();
        registry.register(
            "events_deduplicated",
            "Retried messages recognised by messageId and not stored again",
            events_deduplicated.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "event_log_commit_duration_seconds",
            "Time to write and commit one group of appends",
            commit_seconds.clone(),
        );
        let commit_rows = Histogram::new(exponential_buckets(1.0, 4.0, 9));
        registry.register(
            "event_log_commit_rows",
            "Rows written per group commit",
            commit_rows.clone(),
        );
        let sqlite_memory = Gauge::default();
        registry.register(
            "sqlite_memory_bytes",
            "Memory SQLite holds in this process (page caches of every connection), read when scraped",
            sqlite_memory.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            request_seconds,
            events_accepted,
            events_quarantined,
            events_deduplicated,
            commit_seconds,
            commit_rows,
            sqlite_memory,
        })
    }

    /// Counts the outcome of an ingestion.
    pub fn record_ingest(&self, report: &IngestReport) {
        self.events_accepted.inc_by(report.accepted as u64);
        self.events_deduplicated.inc_by(report.duplicates as u64);
        self.events_quarantined.inc_by(report.rejected.len() as u64);
    }

    /// Records one group commit of the event log (the index's own commits, which no
    /// request waits for, are not counted).
    pub fn record_commit(&self, info: CommitInfo) {
        if info.kind != CommitKind::Group {
            return;
        }
        self.commit_seconds.observe(info.duration.as_secs_f64());
        self.commit_rows.observe(info.rows as f64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.sqlite_memory
            .set(i64::try_from(unavoce_store::sqlite::memory_used()).unwrap_or(i64::MAX));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Middleware: counts and times every request, and logs it without PII (the route
/// template, never the path or query, which may carry identifiers).
pub async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    state.metrics.request_seconds.observe(elapsed.as_secs_f64());
    if status >= 500 {
        tracing::warn!(%method, %route, status, elapsed_ms = elapsed.as_millis() as u64, "request failed");
    } else {
        tracing::debug!(%method, %route, status, elapsed_ms = elapsed.as_millis() as u64, "request");
    }
    response
}
