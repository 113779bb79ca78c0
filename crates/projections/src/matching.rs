//! Probabilistic matching of profiles that share no identifier (a store sign-up form
//! and a web account of the same person): profiles are compared on their traits by the
//! Fellegi–Sunter model; likely matches are linked, possible ones reviewed by a person.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use unavoce_core::Identifier;
use unavoce_core::event::scalar_text;
use unavoce_core::identity::ProfileId;
use unavoce_core::linkage::{Settings, Table, link};
use unavoce_store::{EventQuery, StoreError};

use crate::identity::{IdentityProjection, LinkError};

/// Each profile's best identifier, and the latest value of each compared trait.
type ProfileSnapshot = (
    HashMap<ProfileId, Identifier>,
    BTreeMap<ProfileId, BTreeMap<String, String>>,
);

/// Where the review queue is kept.
const REVIEW_QUEUE: &str = "identity.review_queue";

/// What became of a candidate match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewStatus {
    Pending,
    Accepted,
    Rejected,
}

/// A possible match between two profiles, for a person to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: u64,
    /// The best identifier of each profile (profile ids change with merges).
    pub a: Identifier,
    pub b: Identifier,
    pub probability: f64,
    /// The compared traits of each side, for the reviewer.
    pub traits_a: BTreeMap<String, String>,
    pub traits_b: BTreeMap<String, String>,
    pub status: ReviewStatus,
    pub found_at: Timestamp,
    pub decided_at: Option<Timestamp>,
}

/// What a matching run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MatchingReport {
    /// Profiles with at least two of the compared traits.
    pub profiles_compared: usize,
    pub candidate_pairs: usize,
    pub linked_automatically: usize,
    pub queued_for_review: usize,
    /// Matches not linked or queued because the merged profile would exceed an
    /// identifier limit (two user ids are two people), often after a likelier link.
    pub refused: usize,
}

/// Why a review decision could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("review item {0} does not exist")]
    NotFound(u64),
    #[error("review item {0} was already decided")]
    AlreadyDecided(u64),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IdentityProjection {
    /// Compares every profile's traits, links pairs at or above the upper threshold and
    /// queues those between the thresholds for review. Pairs already queued or decided
    /// are not proposed again.
    pub async fn run_matching(&self) -> Result<MatchingReport, ReviewError> {
        self.catch_up().await?;
        let config = self.rules().config.matching.clone();
        let (best, traits) = self.profile_traits(&config.traits).await?;
        let mut report = MatchingReport::default();
        let ids: Vec<ProfileId> = traits
            .iter()
            .filter(|(_, t)| t.len() >= 2)
            .map(|(p, _)| *p)
            .collect();
        report.profiles_compared = ids.len();
        if ids.len() < 2 {
            return Ok(report);
        }
        let records = ids
            .iter()
            .map(|p| {
                let values = config
                    .traits
                    .iter()
                    .map(|t| traits[p].get(t).cloned().unwrap_or_default())
                    .collect();
                (p.to_string(), values)
            })
            .collect();
        let table = Table::new(config.traits.clone(), records);
        let Ok(settings) = Settings::infer(&table) else {
            return Ok(report);
        };
        let Ok(linkage) = link(&table, &settings, 7, config.lower) else {
            return Ok(report);
        };
        report.candidate_pairs = linkage.blocking.pairs;

        let mut queue = self.load_queue().await?;
        let known: Vec<(Identifier, Identifier)> =
            queue.iter().map(|i| (i.a.clone(), i.b.clone())).collect();
        let mut next_id = queue.iter().map(|i| i.id).max().unwrap_or(0) + 1;
        let mut pairs = linkage.pairs.clone();
        pairs.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        for pair in pairs {
            let (pa, pb) = (ids[pair.left as usize], ids[pair.right as usize]);
            let (Some(a), Some(b)) = (best.get(&pa), best.get(&pb)) else {
                continue;
            };
            if known
                .iter()
                .any(|(x, y)| (x == a && y == b) || (x == b && y == a))
            {
                continue;
            }
            if pair.probability >= config.upper {
                match self.link(a, b, "automatic", Some(pair.probability)).await {
                    Ok(_) => report.linked_automatically += 1,
                    Err(LinkError::Refused(_)) => report.refused += 1,
                    Err(e) => return Err(e.into()),
                }
            } else if !self.can_link(a, b) {
                // An earlier, likelier link already made this pair impossible.
                report.refused += 1;
            } else {
                queue.push(ReviewItem {
                    id: next_id,
                    a: a.clone(),
                    b: b.clone(),
                    probability: pair.probability,
                    traits_a: traits[&pa].clone(),
                    traits_b: traits[&pb].clone(),
                    status: ReviewStatus::Pending,
                    found_at: Timestamp::now(),
                    decided_at: None,
                });
                next_id += 1;
                report.queued_for_review += 1;
            }
        }
        self.save_queue(&queue).await?;
        Ok(report)
    }

    /// The review queue, newest first.
    pub async fn review_queue(&self) -> Result<Vec<ReviewItem>, StoreError> {
        let mut queue = self.load_queue().await?;
        queue.reverse();
        Ok(queue)
    }

    /// Removes the queued matches that name any of `erased` (an erased person's
    /// identifiers); how many.
    pub async fn forget_matches(&self, erased: &[Identifier]) -> Result<usize, StoreError> {
        let mut queue = self.load_queue().await?;
        let before = queue.len();
        queue.retain(|item| !erased.contains(&item.a) && !erased.contains(&item.b));
        let removed = before - queue.len();
        if removed > 0 {
            self.save_queue(&queue).await?;
        }
        Ok(removed)
    }

    /// Accepts (links the two profiles) or rejects a queued match.
    pub async fn decide(&self, id: u64, accept: bool) -> Result<ReviewItem, ReviewError> {
        let mut queue = self.load_queue().await?;
        let item = queue
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or(ReviewError::NotFound(id))?;
        if item.status != ReviewStatus::Pending {
            return Err(ReviewError::AlreadyDecided(id));
        }
        if accept {
            self.link(&item.a, &item.b, "review", Some(item.probability))
                .await?;
            item.status = ReviewStatus::Accepted;
        } else {
            item.status = ReviewStatus::Rejected;
        }
        item.decided_at = Some(Timestamp::now());
        let decided = item.clone();
        self.save_queue(&queue).await?;
        Ok(decided)
    }

    async fn load_queue(&self) -> Result<Vec<ReviewItem>, StoreError> {
        Ok(match self.log().setting(REVIEW_QUEUE).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Vec::new(),
        })
    }

    async fn save_queue(&self, queue: &[ReviewItem]) -> Result<(), StoreError> {
        self.log()
            .put_setting(
                REVIEW_QUEUE,
                serde_json::to_value(queue).unwrap_or_default(),
            )
            .await
    }

    /// Each profile's best identifier and the latest value of each compared trait, from
    /// one pass over the log.
    async fn profile_traits(&self, names: &[String]) -> Result<ProfileSnapshot, StoreError> {
        let rules = self.rules().clone();
        let (owner_of, best): (HashMap<i64, ProfileId>, HashMap<ProfileId, Identifier>) = self
            .read(|graph| {
                let mut owner_of = HashMap::new();
                let mut best = HashMap::new();
                for node in graph.profiles_after(None) {
                    graph.for_each_event(node, |seq| {
                        owner_of.insert(seq, node.id);
                    });
                    if let Some((key, _)) =
                        node.identifiers.iter().min_by(|(a, _), (b, _)| a.cmp(b))
                    {
                        best.insert(node.id, rules.identifier_of(key));
                    }
                }
                (owner_of, best)
            });
        let mut latest: BTreeMap<ProfileId, BTreeMap<String, (Timestamp, String)>> =
            BTreeMap::new();
        let mut after = 0;
        loop {
            let page = self
                .log()
                .events(EventQuery {
                    after_seq: Some(after),
                    limit: 5_000,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.events.last() else {
                break;
            };
            after = last.seq;
            for stored in &page.events {
                let Some(profile) = owner_of.get(&stored.seq) else {
                    continue;
                };
                for name in names {
                    let said = stored.event.trait_value(name).and_then(scalar_text);
                    if let Some(value) = said {
                        let slot = latest.entry(*profile).or_default();
                        let newer = slot
                            .get(name)
                            .is_none_or(|(at, _)| *at <= stored.event.timestamp);
                        if newer {
                            slot.insert(name.clone(), (stored.event.timestamp, value));
                        }
                    }
                }
            }
        }
        let traits = latest
            .into_iter()
            .map(|(p, t)| (p, t.into_iter().map(|(k, (_, v))| (k, v)).collect()))
            .collect();
        Ok((best, traits))
    }
}
