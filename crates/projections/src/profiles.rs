//! One person as the profile pages show them, read from what the identity projection
//! holds: their context card (the held state and the few events the card shows, read
//! back by log position).
//!
//! Each read takes the profile an id names now (an id merged away names the profile it
//! joined) and its state under one lock, so a merge in between cannot part them.

use jiff::Timestamp;
use unavoce_core::identity::ProfileId;
use unavoce_core::identity::graph::ProfileNode;
use unavoce_core::profile::{ContextCard, ProfileFacts, ProfileState, context_card, recent};
use unavoce_core::{Event, Identifier};
use unavoce_store::StoreError;

use crate::IdentityProjection;

/// Events read from the log per step when the card counts views over them all.
const CHUNK: usize = 1_000;

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
        let held = self.read_profile(profile, |node, state| Held {
            id: node.id,
            identifiers: (node.identifiers.iter())
                .map(|(key, _)| self.rules().identifier_of(key))
                .collect(),
            facts: state.facts(self.computed_traits(), now),
            shown: state.recent().card_events(),
            browsing: state
                .recent()
                .browsing_at(now)
                .ok_or_else(|| node.events.clone()),
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

    /// Reads the profile `profile` names now, with its state.
    fn read_profile<R>(
        &self,
        profile: ProfileId,
        f: impl FnOnce(&ProfileNode, &ProfileState) -> R,
    ) -> Option<R> {
        self.read_people(|graph, people| {
            let node = graph.profile(profile)?;
            let empty = ProfileState::default();
            Some(f(node, people.get(&node.id).unwrap_or(&empty)))
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
        Ok(views)
    }
}
