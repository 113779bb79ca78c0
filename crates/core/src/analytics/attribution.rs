//! Attribution of conversions to the touchpoints that led to them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Sym, View};

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// One touchpoint's share of the conversions under each model. Each model's credits
/// sum, over touchpoints, to the number of conversions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TouchpointCredit {
    /// `None` for conversions with no touch and no touchpoint of their own.
    pub touchpoint: Option<String>,
    pub first_touch: f64,
    pub last_touch: f64,
    pub linear: f64,
    pub time_decay: f64,
}

/// The attribution report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributionReport {
    /// Goal events in the period.
    pub conversions: u64,
    pub window_days: u32,
    pub half_life_days: f64,
    /// Most credited (linear) first.
    pub touchpoints: Vec<TouchpointCredit>,
}

/// Credits each goal event in the period to the touchpoints of the person's events in
/// the `attribution_days` before it (the goal event itself excluded): all to the first
/// (first touch), to the last (last touch), equally (linear), or by a weight halving
/// every `attribution_half_life_days` of age (time decay). A conversion with no touch
/// before it is credited to its own touchpoint.
pub fn attribution_report(view: &View) -> AttributionReport {
    let rows = view.table.rows();
    let config = &view.rules.config;
    let window = i64::from(config.attribution_days) * 86_400_000_000;
    let half_life = config.attribution_half_life_days * MICROS_PER_DAY;
    let mut credits: BTreeMap<Sym, [f64; 4]> = BTreeMap::new();
    let mut conversions = 0u64;
    let mut touches: Vec<(Sym, i64)> = Vec::new();
    for (_, history) in view.histories().iter() {
        for (i, &r) in history.iter().enumerate() {
            let goal = &rows[r as usize];
            if !goal.goal() || !view.period.contains(goal.at) {
                continue;
            }
            conversions += 1;
            touches.clear();
            touches.extend(
                history[..i]
                    .iter()
                    .map(|&t| &rows[t as usize])
                    .map(|t| (view.table.origin(t).touchpoint, t.at))
                    .filter(|(touchpoint, at)| !touchpoint.is_none() && goal.at - at <= window),
            );
            if touches.is_empty() {
                touches.push((view.table.origin(goal).touchpoint, goal.at));
            }
            let n = touches.len() as f64;
            let weights: Vec<f64> = touches
                .iter()
                .map(|(_, at)| 0.5f64.powf((goal.at - at) as f64 / half_life))
                .collect();
            let total: f64 = weights.iter().sum();
            credits.entry(touches[0].0).or_default()[0] += 1.0;
            credits.entry(touches[touches.len() - 1].0).or_default()[1] += 1.0;
            for ((t, _), w) in touches.iter().zip(&weights) {
                let c = credits.entry(*t).or_default();
                c[2] += 1.0 / n;
                c[3] += w / total;
            }
        }
    }
    let mut touchpoints: Vec<TouchpointCredit> = credits
        .into_iter()
        .map(|(t, c)| TouchpointCredit {
            touchpoint: (!t.is_none()).then(|| view.table.symbols.name(t).to_string()),
            first_touch: c[0],
            last_touch: c[1],
            linear: c[2],
            time_decay: c[3],
        })
        .collect();
    touchpoints.sort_by(|a, b| {
        b.linear
            .total_cmp(&a.linear)
            .then_with(|| a.touchpoint.cmp(&b.touchpoint))
    });
    AttributionReport {
        conversions,
        window_days: config.attribution_days,
        half_life_days: config.attribution_half_life_days,
        touchpoints,
    }
}
