//! Every person's context card, built a page at a time from the log: what audiences and
//! broadcasts evaluate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use unavoce_core::identity::ProfileId;
use unavoce_core::profile::{
    ChannelEngagement, ComputedTrait, ContextCard, context_card, fold_engagement,
};
use unavoce_store::StoreError;

use crate::IdentityProjection;

/// Profiles whose events are read from the log per page.
const PAGE: usize = 2_000;

/// One person as audiences and the gate see them.
pub(crate) struct Person {
    pub id: ProfileId,
    /// The types of identifier the person holds (`email`, `phone`, ...).
    pub identifier_types: Vec<String>,
    pub card: ContextCard,
    pub engagement: BTreeMap<String, ChannelEngagement>,
}

struct Snapshot {
    id: ProfileId,
    events: Vec<i64>,
    identifier_types: Vec<String>,
}

/// The profiles as of one moment, read back page by page.
pub(crate) struct People {
    identity: Arc<IdentityProjection>,
    computed: Arc<Vec<ComputedTrait>>,
    profiles: Vec<Snapshot>,
    next: usize,
}

impl People {
    /// Catches up with the log and takes the profiles as they are now.
    pub(crate) async fn snapshot(
        identity: &Arc<IdentityProjection>,
        computed: &Arc<Vec<ComputedTrait>>,
    ) -> Result<Self, StoreError> {
        identity.catch_up().await?;
        let rules = identity.rules().clone();
        let profiles = identity.read(|graph| {
            graph
                .profiles_after(None)
                .map(|node| Snapshot {
                    id: node.id,
                    events: node.events.clone(),
                    identifier_types: node
                        .identifiers
                        .iter()
                        .map(|(k, _)| rules.type_rule(k.kind).name.clone())
                        .collect(),
                })
                .collect()
        });
        Ok(People {
            identity: identity.clone(),
            computed: computed.clone(),
            profiles,
            next: 0,
        })
    }

    /// The next page of people with their cards at `now`; `None` after the last.
    pub(crate) async fn next_page(
        &mut self,
        now: Timestamp,
    ) -> Result<Option<Vec<Person>>, StoreError> {
        let end = (self.next + PAGE).min(self.profiles.len());
        let page = &self.profiles[self.next..end];
        if page.is_empty() {
            return Ok(None);
        }
        self.next = end;
        let seqs: Vec<i64> = page.iter().flat_map(|p| p.events.iter().copied()).collect();
        let events = self.identity.log().events_at(seqs).await?;
        let by_seq: HashMap<i64, &unavoce_core::Event> =
            events.iter().map(|e| (e.seq, &e.event)).collect();
        Ok(Some(
            page.iter()
                .map(|p| {
                    let mine: Vec<&unavoce_core::Event> = p
                        .events
                        .iter()
                        .filter_map(|s| by_seq.get(s).copied())
                        .collect();
                    Person {
                        id: p.id,
                        identifier_types: p.identifier_types.clone(),
                        card: context_card(
                            &p.id.to_string(),
                            Vec::new(),
                            &mine,
                            &self.computed,
                            now,
                        ),
                        engagement: fold_engagement(mine.iter().copied()),
                    }
                })
                .collect(),
        ))
    }
}
