//! Aggregated journeys: the most frequent paths between touchpoints (as Sankey data)
//! and the funnel by stage.

use std::collections::HashMap;

use serde::Serialize;

use super::{Sym, View, ratio};

/// A Sankey node: a touchpoint at a step of the journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathNode {
    /// `"{step}:{touchpoint}"`.
    pub id: String,
    /// 1 for the first touchpoint of a journey.
    pub step: usize,
    pub touchpoint: String,
    pub people: u64,
}

/// A Sankey link: people who went from one node to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathLink {
    pub source: String,
    pub target: String,
    pub value: u64,
}

/// A whole path and how many people took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathSequence {
    pub touchpoints: Vec<String>,
    pub people: u64,
}

/// The path report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathReport {
    pub steps: usize,
    /// People with at least one touchpoint in the period.
    pub people: u64,
    pub nodes: Vec<PathNode>,
    pub links: Vec<PathLink>,
    /// The most frequent paths, most taken first.
    pub sequences: Vec<PathSequence>,
}

/// Each person's journey is the sequence of touchpoints of their events in the period,
/// in time order, with repeats of the same touchpoint in a row counted once; its first
/// `steps` touchpoints are its path. Nodes and links count people; `sequences` lists the
/// `top` most frequent paths (ties by name).
pub fn path_report(view: &View, steps: usize, top: usize) -> PathReport {
    let rows = view.table.rows();
    let name = |s: Sym| view.table.symbols.name(s).to_string();
    let mut nodes: HashMap<(usize, Sym), u64> = HashMap::new();
    let mut links: HashMap<(usize, Sym, Sym), u64> = HashMap::new();
    let mut sequences: HashMap<Vec<Sym>, u64> = HashMap::new();
    let mut people = 0u64;
    let mut path: Vec<Sym> = Vec::with_capacity(steps);
    for (_, history) in view.histories().iter() {
        path.clear();
        for &r in history {
            let row = &rows[r as usize];
            let touchpoint = view.table.origin(row).touchpoint;
            if touchpoint.is_none() || !view.period.contains(row.at) {
                continue;
            }
            if path.last() == Some(&touchpoint) {
                continue;
            }
            if path.len() == steps {
                break;
            }
            path.push(touchpoint);
        }
        if path.is_empty() {
            continue;
        }
        people += 1;
        for (i, &t) in path.iter().enumerate() {
            *nodes.entry((i, t)).or_default() += 1;
            if let Some(&next) = path.get(i + 1) {
                *links.entry((i, t, next)).or_default() += 1;
            }
        }
        match sequences.get_mut(path.as_slice()) {
            Some(n) => *n += 1,
            None => {
                sequences.insert(path.clone(), 1);
            }
        }
    }
    let node_id = |step: usize, t: Sym| format!("{}:{}", step + 1, name(t));
    let mut nodes: Vec<PathNode> = nodes
        .into_iter()
        .map(|((step, t), n)| PathNode {
            id: node_id(step, t),
            step: step + 1,
            touchpoint: name(t),
            people: n,
        })
        .collect();
    nodes.sort_by(|a, b| (a.step, b.people, &a.touchpoint).cmp(&(b.step, a.people, &b.touchpoint)));
    let mut links: Vec<PathLink> = links
        .into_iter()
        .map(|((step, a, b), n)| PathLink {
            source: node_id(step, a),
            target: node_id(step + 1, b),
            value: n,
        })
        .collect();
    links.sort_by(|a, b| (b.value, &a.source, &a.target).cmp(&(a.value, &b.source, &b.target)));
    let mut sequences: Vec<PathSequence> = sequences
        .into_iter()
        .map(|(path, n)| PathSequence {
            touchpoints: path.into_iter().map(name).collect(),
            people: n,
        })
        .collect();
    sequences.sort_by(|a, b| (b.people, &a.touchpoints).cmp(&(a.people, &b.touchpoints)));
    sequences.truncate(top);
    PathReport {
        steps,
        people,
        nodes,
        links,
        sequences,
    }
}

/// One stage of the funnel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStage {
    pub stage: String,
    /// People who reached this stage after every earlier one, in order.
    pub people: u64,
    /// `people` over the previous stage's (`None` for the first stage).
    pub conversion_from_previous: Option<f64>,
    /// The previous stage's people who did not reach this one.
    pub drop_off: u64,
    /// People with any event of this stage in the period, in whatever order.
    pub reached_any_order: u64,
}

/// The funnel report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelReport {
    /// People with any event in the period.
    pub people: u64,
    pub stages: Vec<FunnelStage>,
    /// Last stage's people over the first's.
    pub overall_conversion: Option<f64>,
}

/// The ordered funnel: a person reaches stage `k` with an event of that stage at or
/// after the event that brought them to stage `k - 1`.
pub fn funnel_report(view: &View) -> FunnelReport {
    let rows = view.table.rows();
    let stages = view.rules.stages.len();
    let mut ordered = vec![0u64; stages];
    let mut any = vec![0u64; stages];
    let mut people = 0u64;
    for (_, history) in view.histories().iter() {
        let mut reached = 0usize;
        let mut seen = 0u8;
        let mut active = false;
        for &r in history {
            let row = &rows[r as usize];
            if !view.period.contains(row.at) {
                continue;
            }
            active = true;
            seen |= row.stages;
            while reached < stages && row.stages & (1 << reached) != 0 {
                reached += 1;
            }
        }
        people += u64::from(active);
        for count in ordered.iter_mut().take(reached) {
            *count += 1;
        }
        for (k, count) in any.iter_mut().enumerate() {
            *count += u64::from(seen & (1 << k) != 0);
        }
    }
    let stage_list = view
        .rules
        .stages
        .iter()
        .enumerate()
        .map(|(k, stage)| FunnelStage {
            stage: stage.name.clone(),
            people: ordered[k],
            conversion_from_previous: (k > 0).then(|| ratio(ordered[k], ordered[k - 1])).flatten(),
            drop_off: if k > 0 {
                ordered[k - 1] - ordered[k]
            } else {
                0
            },
            reached_any_order: any[k],
        })
        .collect();
    FunnelReport {
        people,
        stages: stage_list,
        overall_conversion: match (ordered.first(), ordered.last()) {
            (Some(&first), Some(&last)) => ratio(last, first),
            _ => None,
        },
    }
}
