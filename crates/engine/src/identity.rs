//! The identity projection: the identity graph over the whole log.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use unavoce_core::Identifier;
use unavoce_core::identity::{IdentityGraph, IdentityRules, ProfileId, UnmergeRule, extract};
use unavoce_store::{EventLog, EventQuery, StoreError};

/// Where the unmerge rules are kept.
const UNMERGE_RULES: &str = "identity.unmerge_rules";
/// Events read from the log per step of a replay.
const PAGE: usize = 5_000;

/// Why an unmerge could not be done.
#[derive(Debug, thiserror::Error)]
pub enum UnmergeError {
    #[error("profile {0} does not exist")]
    NoSuchProfile(ProfileId),
    #[error("{0} is not an identifier type this platform resolves, or not a usable value")]
    UnknownIdentifier(Identifier),
    #[error("profile {profile} does not hold {identifier}")]
    NotInProfile {
        profile: ProfileId,
        identifier: Identifier,
    },
    #[error("{identifier} is the only identifier of profile {profile}: there is nothing to split")]
    NothingToSplit {
        profile: ProfileId,
        identifier: Identifier,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct State {
    graph: IdentityGraph,
    /// The log position of the last event applied.
    applied: i64,
}

/// The identity graph of every event in the log, kept current.
pub struct IdentityProjection {
    log: Arc<dyn EventLog>,
    rules: Arc<IdentityRules>,
    state: RwLock<State>,
    /// Serialises catching up and rebuilding.
    writer: tokio::sync::Mutex<()>,
}

impl IdentityProjection {
    /// Builds the graph by replaying the whole log under `rules` and the stored unmerge
    /// rules.
    pub async fn open(
        log: Arc<dyn EventLog>,
        rules: Arc<IdentityRules>,
    ) -> Result<Arc<Self>, StoreError> {
        let unmerge_rules = load_unmerge_rules(&*log, &rules).await?;
        let projection = Arc::new(IdentityProjection {
            state: RwLock::new(State {
                graph: IdentityGraph::new(rules.clone(), unmerge_rules),
                applied: 0,
            }),
            log,
            rules,
            writer: tokio::sync::Mutex::new(()),
        });
        let started = std::time::Instant::now();
        let applied = projection.catch_up().await?;
        tracing::info!(
            events = applied,
            profiles = projection.read(|g| g.profile_count()),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "identity graph built from the event log"
        );
        Ok(projection)
    }

    /// Follows the log in the background: applies new events as they are committed
    /// (and every few seconds, for writers in other processes such as `unavoce import`).
    pub fn follow(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let projection = self.clone();
        tokio::spawn(async move {
            let mut committed = projection.log.committed();
            loop {
                let _ = tokio::time::timeout(Duration::from_secs(2), committed.changed()).await;
                if let Err(e) = projection.catch_up().await {
                    tracing::warn!(error = %e, "identity projection could not read the log; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        })
    }

    /// Applies every event committed since the last call; returns the position reached.
    pub async fn catch_up(&self) -> Result<i64, StoreError> {
        let _writer = self.writer.lock().await;
        loop {
            let after = self.state.read().map(|s| s.applied).unwrap_or(0);
            let page = self
                .log
                .events(EventQuery {
                    after_seq: Some(after),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            if page.events.is_empty() {
                return Ok(after);
            }
            let sets: Vec<_> = page
                .events
                .iter()
                .map(|e| (e.seq, e.event.timestamp, extract(&e.event, &self.rules)))
                .collect();
            let mut state = self
                .state
                .write()
                .map_err(|_| StoreError::Storage("identity state poisoned".into()))?;
            for (seq, at, set) in &sets {
                state.graph.apply(*seq, *at, set);
                state.applied = *seq;
            }
        }
    }

    /// Reads the graph.
    pub fn read<R>(&self, f: impl FnOnce(&IdentityGraph) -> R) -> R {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&state.graph)
    }

    /// The rules in force.
    pub fn rules(&self) -> &Arc<IdentityRules> {
        &self.rules
    }

    /// Cuts `identifier` from `profile`: stores a rule that keeps it apart from the
    /// profile's other identifiers and rebuilds the graph by replaying the whole log
    /// under it, so the result is exactly what it would be had the link never been
    /// seen. Returns the profiles that now hold the former profile's identifiers.
    pub async fn unmerge(
        &self,
        profile: ProfileId,
        identifier: &Identifier,
    ) -> Result<Vec<ProfileId>, UnmergeError> {
        let _writer = self.writer.lock().await;
        let key = self
            .rules
            .key_of(identifier)
            .ok_or_else(|| UnmergeError::UnknownIdentifier(identifier.clone()))?;
        let (rule, identifiers, mut rules_in_force) = self.read(|graph| {
            let node = graph
                .profile(profile)
                .ok_or(UnmergeError::NoSuchProfile(profile))?;
            if !node.identifiers.iter().any(|(k, _)| k == &key) {
                return Err(UnmergeError::NotInProfile {
                    profile: node.id,
                    identifier: identifier.clone(),
                });
            }
            let rule = graph.unmerge_rule_for(profile, &key).ok_or_else(|| {
                UnmergeError::NothingToSplit {
                    profile: node.id,
                    identifier: identifier.clone(),
                }
            })?;
            let identifiers: Vec<_> = node.identifiers.iter().map(|(k, _)| k.clone()).collect();
            Ok((rule, identifiers, graph.unmerge_rules().to_vec()))
        })?;
        rules_in_force.push(rule);
        self.log
            .put_setting(UNMERGE_RULES, rules_to_json(&self.rules, &rules_in_force))
            .await?;

        let mut graph = IdentityGraph::new(self.rules.clone(), rules_in_force);
        let mut applied = 0;
        loop {
            let page = self
                .log
                .events(EventQuery {
                    after_seq: Some(applied),
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
            if page.events.is_empty() {
                break;
            }
            for stored in &page.events {
                let set = extract(&stored.event, &self.rules);
                graph.apply(stored.seq, stored.event.timestamp, &set);
                applied = stored.seq;
            }
        }
        let split: BTreeSet<ProfileId> = identifiers
            .iter()
            .filter_map(|k| graph.lookup(k).map(|p| p.id))
            .collect();
        let mut state = self
            .state
            .write()
            .map_err(|_| StoreError::Storage("identity state poisoned".into()))?;
        *state = State { graph, applied };
        Ok(split.into_iter().collect())
    }
}

fn rules_to_json(rules: &IdentityRules, unmerge_rules: &[UnmergeRule]) -> Value {
    Value::Array(
        unmerge_rules
            .iter()
            .map(|rule| {
                json!({
                    "identifier": rules.identifier_of(&rule.key),
                    "apart_from": rule.apart_from.iter().map(|k| rules.identifier_of(k)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

async fn load_unmerge_rules(
    log: &dyn EventLog,
    rules: &IdentityRules,
) -> Result<Vec<UnmergeRule>, StoreError> {
    let Some(Value::Array(stored)) = log.setting(UNMERGE_RULES).await? else {
        return Ok(Vec::new());
    };
    let mut loaded = Vec::new();
    for entry in stored {
        let key = serde_json::from_value::<Identifier>(entry["identifier"].clone())
            .ok()
            .and_then(|i| rules.key_of(&i));
        let apart_from: BTreeSet<_> =
            serde_json::from_value::<Vec<Identifier>>(entry["apart_from"].clone())
                .unwrap_or_default()
                .iter()
                .filter_map(|i| rules.key_of(i))
                .collect();
        match key {
            Some(key) if !apart_from.is_empty() => loaded.push(UnmergeRule { key, apart_from }),
            _ => tracing::warn!(
                "an unmerge rule names identifier types no longer configured; it is ignored"
            ),
        }
    }
    Ok(loaded)
}
