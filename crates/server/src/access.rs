//! The one table of who may use which `/api/` route, what its answer holds about
//! people (masked for a role that may not see them in full), and whether it is audited.
//! A route without a rule answers no one (see `auth::require_key`).

use unavoce_core::access::Role;

use Role::{Agent as G, Analyst as A, Marketer as M};

/// What a route's answer holds about people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Counts, definitions, settings: no person's data.
    Aggregates,
    /// People's data (masked for a role that sees people masked).
    People,
    /// One person's data: a read the audit log records.
    OnePerson,
}

/// Who may use one route.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: &'static str,
    /// The route template, as axum matched it.
    pub route: &'static str,
    /// The roles besides `owner`, who may use every route.
    pub roles: &'static [Role],
    pub holds: Holds,
}

impl Rule {
    /// Whether `role` may use the route.
    pub fn allows(&self, role: Role) -> bool {
        role == Role::Owner || self.roles.contains(&role)
    }

    /// Whether a use of the route is recorded in the audit log: every change, and every
    /// read of one person's data.
    pub fn audited(&self) -> bool {
        self.method != "GET" || self.holds == Holds::OnePerson
    }
}

const fn rule(
    method: &'static str,
    route: &'static str,
    roles: &'static [Role],
    holds: Holds,
) -> Rule {
    Rule {
        method,
        route,
        roles,
        holds,
    }
}

use Holds::{Aggregates, OnePerson, People};

const OWNER: &[Role] = &[];
const REPORTS: &[Role] = &[M, A];

/// Every `/api/` route and who may use it.
pub const RULES: &[Rule] = &[
    rule("GET", "/api/me", &[M, A, G], Aggregates),
    rule("GET", "/api/keys", OWNER, Aggregates),
    rule("POST", "/api/keys", OWNER, Aggregates),
    rule("DELETE", "/api/keys/{name}", OWNER, Aggregates),
    rule("GET", "/api/audit", OWNER, People),
    rule("GET", "/api/stats", &[M, A, G], Aggregates),
    rule("GET", "/api/events", OWNER, People),
    rule("GET", "/api/quarantine", OWNER, People),
    rule("GET", "/api/quarantine/{id}", OWNER, People),
    rule("POST", "/api/quarantine/{id}/replay", OWNER, People),
    rule("POST", "/api/import", OWNER, People),
    rule("GET", "/api/touchpoints", &[M, A, G], Aggregates),
    rule("POST", "/api/touchpoints", OWNER, Aggregates),
    rule("GET", "/api/touchpoints/{id}", &[M, A, G], Aggregates),
    rule("PUT", "/api/touchpoints/{id}", OWNER, Aggregates),
    rule("DELETE", "/api/touchpoints/{id}", OWNER, Aggregates),
    rule("GET", "/api/profiles", &[M], People),
    rule("GET", "/api/profiles/search", &[M, G], People),
    rule("GET", "/api/profiles/lookup", &[M, G], OnePerson),
    rule("GET", "/api/profiles/{id}", &[M, G], OnePerson),
    rule("POST", "/api/profiles/{id}/unmerge", OWNER, OnePerson),
    rule("GET", "/api/profiles/{id}/context", &[M, G], OnePerson),
    rule("GET", "/api/profiles/{id}/timeline", &[M, G], OnePerson),
    rule("GET", "/api/profiles/{id}/export", OWNER, OnePerson),
    rule("POST", "/api/profiles/{id}/erase", OWNER, OnePerson),
    rule("GET", "/api/suppressions", OWNER, Aggregates),
    rule("DELETE", "/api/suppressions/{hash}", OWNER, Aggregates),
    rule("GET", "/api/retention", OWNER, Aggregates),
    rule("POST", "/api/retention/run", OWNER, Aggregates),
    rule("POST", "/api/config/reload", OWNER, Aggregates),
    rule("GET", "/api/profiles/{id}/consents", &[M, G], OnePerson),
    rule("POST", "/api/profiles/{id}/consents", &[G], OnePerson),
    rule("POST", "/api/profiles/{id}/notes", &[G], OnePerson),
    rule("GET", "/api/identity/flagged", OWNER, People),
    rule("POST", "/api/identity/matching", OWNER, People),
    rule("GET", "/api/identity/review", OWNER, People),
    rule(
        "POST",
        "/api/identity/review/{id}/{decision}",
        OWNER,
        People,
    ),
    rule("GET", "/api/kpis/touchpoints", REPORTS, Aggregates),
    rule("GET", "/api/kpis/channels", REPORTS, Aggregates),
    rule("GET", "/api/journeys/paths", REPORTS, Aggregates),
    rule("GET", "/api/journeys/funnel", REPORTS, Aggregates),
    rule("GET", "/api/journeys/attribution", REPORTS, Aggregates),
    rule("GET", "/api/census", REPORTS, Aggregates),
    rule("GET", "/api/activity", REPORTS, Aggregates),
    rule("POST", "/api/broadcasts", &[M], People),
    rule("GET", "/api/decisions", &[M], People),
    rule("GET", "/api/journeys", &[M], Aggregates),
    rule("POST", "/api/journeys", &[M], Aggregates),
    rule("POST", "/api/journeys/dry-run", &[M], People),
    rule("GET", "/api/journeys/{name}", &[M], Aggregates),
    rule("POST", "/api/journeys/{name}/dry-run", &[M], People),
    rule("GET", "/api/journeys/{name}/runs", &[M], People),
    rule("PUT", "/api/journeys/{name}", &[M], Aggregates),
    rule("DELETE", "/api/journeys/{name}", &[M], Aggregates),
    rule("POST", "/api/journeys/{name}/pause", &[M], Aggregates),
    rule("POST", "/api/journeys/{name}/resume", &[M], Aggregates),
    rule("GET", "/api/journeys/{name}/versions", &[M], Aggregates),
    rule("GET", "/api/messages", &[M], Aggregates),
    rule("POST", "/api/messages", &[M], Aggregates),
    rule("GET", "/api/messages/{id}", &[M], Aggregates),
    rule("GET", "/api/messages/{id}/preview", &[M], People),
    rule("PUT", "/api/messages/{id}", &[M], Aggregates),
    rule("DELETE", "/api/messages/{id}", &[M], Aggregates),
    rule("POST", "/api/messages/{id}/pause", &[M], Aggregates),
    rule("POST", "/api/messages/{id}/resume", &[M], Aggregates),
    rule("GET", "/api/messages/{id}/versions", &[M], Aggregates),
    rule("GET", "/api/outbox", &[M], People),
    rule("GET", "/api/outbox/summary", &[M], Aggregates),
    rule("GET", "/api/outbox/{id}", &[M], People),
    rule("POST", "/api/outbox/{id}/requeue", &[M], People),
    rule("GET", "/api/subscriptions", &[M], Aggregates),
    rule("POST", "/api/subscriptions", OWNER, Aggregates),
    rule("PUT", "/api/subscriptions/{name}", OWNER, Aggregates),
    rule("DELETE", "/api/subscriptions/{name}", OWNER, Aggregates),
    rule("POST", "/api/subscriptions/{name}/pause", OWNER, Aggregates),
    rule(
        "POST",
        "/api/subscriptions/{name}/resume",
        OWNER,
        Aggregates,
    ),
    rule(
        "GET",
        "/api/subscriptions/{name}/versions",
        &[M],
        Aggregates,
    ),
    rule("GET", "/api/segments", REPORTS, Aggregates),
    rule("POST", "/api/segments", &[M], Aggregates),
    rule("GET", "/api/segments/{name}", REPORTS, Aggregates),
    rule("GET", "/api/segments/{name}/members", &[M], People),
    rule("PUT", "/api/segments/{name}", &[M], People),
    rule("DELETE", "/api/segments/{name}", &[M], Aggregates),
    rule("POST", "/api/segments/{name}/pause", &[M], Aggregates),
    rule("POST", "/api/segments/{name}/resume", &[M], Aggregates),
    rule("GET", "/api/segments/{name}/versions", REPORTS, Aggregates),
];

/// The rule of a matched route.
pub fn rule_for(method: &str, route: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .find(|r| r.method == method && r.route == route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_role_without_person_level_access_reaches_people_and_rules_are_unique() {
        for r in RULES {
            if r.holds != Aggregates {
                assert!(!r.allows(A), "the analyst reaches people at {}", r.route);
            }
            assert_eq!(
                RULES
                    .iter()
                    .filter(|o| o.method == r.method && o.route == r.route)
                    .count(),
                1,
                "{} {}",
                r.method,
                r.route
            );
        }
    }
}
