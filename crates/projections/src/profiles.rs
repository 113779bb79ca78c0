//! One person as the profile pages show them, read from what the identity projection
//! holds: their traits and when they were last seen, their context card (the held state
//! and the few events the card shows, read back by log position), and finding people
//! by what an agent types.
//!
//! Each read takes the profile an id names now (an id merged away names the profile it
//! joined) and its state under one lock, so a merge in between cannot part them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use unavoce_core::identity::graph::ProfileNode;
use unavoce_core::identity::{IdentityGraph, ProfileId};
use unavoce_core::profile::{
    ContextCard, ProfileFacts, ProfileState, SHOWN_IDENTIFIER_TYPES, SearchQuery, TraitValue,
    context_card, recent,
};
use unavoce_core::{Event, Identifier};
use unavoce_store::StoreError;

use crate::IdentityProjection;

/// Events read from the log per step when the card counts views over them all.
const CHUNK: usize = 1_000;

/// What a profile's page shows of the person besides their identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileView {
    /// Each trait's latest value, with where and when it was said, by name.
    pub traits: BTreeMap<String, TraitValue>,
    /// When the person's latest event happened (segment membership changes included).
    pub last_seen: Option<Timestamp>,
}

/// A person a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: ProfileId,
    pub name: Option<String>,
    /// Their identifiers of the types a search shows ([`SHOWN_IDENTIFIER_TYPES`]).
    pub identifiers: Vec<Identifier>,
    /// How many events they have.
    pub events: usize,
}

/// What the card takes from the projection under its lock.
struct Held {
    id: ProfileId,
    identifiers: Vec<Identifier>,
    facts: ProfileFacts,
    /// The log positions of the events the card shows.
    shown: Vec<i64>,
    /// The views counted from the held times, or every event's position to count them.
    browsing: Result<usize, Vec<i64>>,
}

impl IdentityProjection {
    /// The traits and last activity of `profile`, `None` if there is no such profile.
    pub fn profile_view(&self, profile: ProfileId) -> Option<ProfileView> {
        self.read_profile(profile, |_, _, state| ProfileView {
            traits: (state.traits().iter())
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
            last_seen: state.last_event_at(),
        })
    }

    /// The context card folded from every event of the person, read back from the log:
    /// what [`Self::context_card`] is checked equal to (tests, `unavoce bench context`).
    /// Its cost grows with the person's history; the API never uses it.
    pub async fn context_card_from_history(
        &self,
        profile: ProfileId,
        now: Timestamp,
    ) -> Result<Option<ContextCard>, StoreError> {
        let Some((id, identifiers, seqs)) = self.read(|g| {
            let node = g.profile(profile)?;
            let identifiers: Vec<Identifier> = (node.identifiers.iter())
                .map(|(k, _)| self.rules().identifier_of(k))
                .collect();
            Some((node.id, identifiers, g.events(node)))
        }) else {
            return Ok(None);
        };
        let stored = self.log().events_at(seqs).await?;
        let events: Vec<&Event> = stored.iter().map(|e| &e.event).collect();
        let computed = self.computed_traits();
        let facts = ProfileState::fold(events.iter().copied(), computed).facts(computed, now);
        let browsing = recent::browsing_at(events.iter().copied(), now);
        Ok(Some(context_card(
            &id.to_string(),
            identifiers,
            facts,
            &events,
            browsing,
            now,
        )))
    }

    /// The context card of `profile` at `now`, `None` if there is no such profile: the
    /// facts from its held state, and only the events the card shows read back from the
    /// log (at most 21, however long the person's history; see
    /// [`Recent`](unavoce_core::profile::Recent)). Call [`Self::catch_up`] first for a
    /// card with everything acknowledged so far.
    pub async fn context_card(
        &self,
        profile: ProfileId,
        now: Timestamp,
    ) -> Result<Option<ContextCard>, StoreError> {
        let held = self.read_profile(profile, |graph, node, state| Held {
            id: node.id,
            identifiers: (node.identifiers.iter())
                .map(|(key, _)| self.rules().identifier_of(key))
                .collect(),
            facts: state.facts(self.computed_traits(), now),
            shown: state.recent().card_events(),
            browsing: state
                .recent()
                .browsing_at(now)
                .ok_or_else(|| graph.events(node)),
        });
        let Some(held) = held else {
            return Ok(None);
        };
        let shown = self.log().events_at(held.shown).await?;
        let browsing = match held.browsing {
            Ok(views) => views,
            Err(every) => self.count_browsing(every, now).await?,
        };
        let events: Vec<&Event> = shown.iter().map(|e| &e.event).collect();
        Ok(Some(context_card(
            &held.id.to_string(),
            held.identifiers,
            held.facts,
            &events,
            browsing,
            now,
        )))
    }

    /// The people with an identifier or a name that `query` matches, in profile order,
    /// `limit` at the most. A phone-like query is also read as a whole number by the
    /// identity rules (default region included).
    pub fn search(&self, query: &SearchQuery, limit: usize) -> Vec<Found> {
        let query = &if query.is_phone_like() {
            (query.clone()).with_number(self.rules().phone_number(query.text()))
        } else {
            query.clone()
        };
        self.read_people(|graph, people| {
            graph
                .profiles_after(None)
                .filter_map(|node| {
                    let identifiers: Vec<Identifier> = (node.identifiers.iter())
                        .map(|(key, _)| self.rules().identifier_of(key))
                        .collect();
                    let name = people.get(&node.id).and_then(|p| p.display_name());
                    query.matches(&identifiers, name.as_deref()).then(|| Found {
                        id: node.id,
                        name,
                        identifiers: (identifiers.into_iter())
                            .filter(|i| SHOWN_IDENTIFIER_TYPES.contains(&i.kind.as_str()))
                            .collect(),
                        events: usize::try_from(node.event_count()).unwrap_or(usize::MAX),
                    })
                })
                .take(limit)
                .collect()
        })
    }

    /// Reads the profile `profile` names now, with its state.
    fn read_profile<R>(
        &self,
        profile: ProfileId,
        f: impl FnOnce(&IdentityGraph, &ProfileNode, &ProfileState) -> R,
    ) -> Option<R> {
        self.read_people(|graph, people| {
            let node = graph.profile(profile)?;
            let empty = ProfileState::default();
            Some(f(graph, node, people.get(&node.id).map_or(&empty, |s| s)))
        })
    }

    /// Counts the product and pricing views among the events at `seqs`, read from the
    /// log a chunk at a time: when the held times cannot tell (see
    /// [`Recent::browsing_at`](unavoce_core::profile::Recent::browsing_at)).
    async fn count_browsing(&self, seqs: Vec<i64>, now: Timestamp) -> Result<usize, StoreError> {
        let mut views = 0;
        for chunk in seqs.chunks(CHUNK) {
            let events = self.log().events_at(chunk.to_vec()).await?;
            views += recent::browsing_at(events.iter().map(|e| &e.event), now);
        }
        Ok(views.min(recent::VIEWS_COUNTED))
    }
}
