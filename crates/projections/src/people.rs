//! Every person as audiences and the gate see them, read a page at a time from the
//! profile states the identity projection keeps current.

use std::sync::Arc;

use jiff::Timestamp;
use unavoce_core::identity::ProfileId;
use unavoce_core::profile::{ProfileFacts, ProfileState};
use unavoce_store::StoreError;

use crate::IdentityProjection;

/// Profiles read per page (the projection is locked for reading once per page).
const PAGE: usize = 2_000;

/// One person as audiences and the gate see them.
pub struct Person {
    pub id: ProfileId,
    /// The types of identifier the person holds (`email`, `phone`, ...).
    pub identifier_types: Vec<String>,
    pub facts: ProfileFacts,
}

/// The profiles as of one moment, read back page by page.
pub struct People {
    identity: Arc<IdentityProjection>,
    profiles: Vec<ProfileId>,
    next: usize,
}

impl People {
    /// Catches up with the log and takes the profiles as they are now.
    pub async fn snapshot(identity: &Arc<IdentityProjection>) -> Result<Self, StoreError> {
        identity.catch_up().await?;
        let profiles = identity.read(|graph| graph.profiles_after(None).map(|n| n.id).collect());
        Ok(People {
            identity: identity.clone(),
            profiles,
            next: 0,
        })
    }

    /// Applies `f` to each person of the next page, with their facts at `now` (and their
    /// whole state, for what facts do not hold), on every core; `None` after the last
    /// page. A profile merged away since the snapshot is
    /// skipped (its person is read under the profile it joined).
    pub fn map_page<T: Send>(
        &mut self,
        now: Timestamp,
        f: &(impl Fn(Person, &ProfileState) -> T + Sync),
    ) -> Option<Vec<T>> {
        let end = (self.next + PAGE).min(self.profiles.len());
        let page = &self.profiles[self.next..end];
        if page.is_empty() {
            return None;
        }
        self.next = end;
        let computed = self.identity.computed_traits().clone();
        let rules = self.identity.rules().clone();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Some(self.identity.read_people(|graph, people| {
            let person = |id: &ProfileId| {
                let node = graph.profile(*id).filter(|n| n.id == *id)?;
                let empty = ProfileState::default();
                let state = people.get(id).map_or(&empty, |s| s);
                let person = Person {
                    id: *id,
                    identifier_types: node
                        .identifiers
                        .iter()
                        .map(|(k, _)| rules.type_rule(k.kind()).name.clone())
                        .collect(),
                    facts: state.facts(&computed, now),
                };
                Some(f(person, state))
            };
            let chunk = page.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let workers: Vec<_> = page
                    .chunks(chunk)
                    .map(|ids| scope.spawn(|| ids.iter().filter_map(&person).collect::<Vec<T>>()))
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        }))
    }
}
