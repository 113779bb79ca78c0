//! The channel census: which needs the touchpoints cover, how each is used and how well
//! it serves, which channels customers reach for without a registered touchpoint, and
//! what to do about it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::kpis::{KpiReport, Kpis};
use super::{Origin, Sym, View};
use crate::touchpoint::{Touchpoint, TouchpointStatus};

/// Which touchpoints serve one need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NeedCoverage {
    pub need: String,
    /// Active touchpoints serving it.
    pub active: Vec<String>,
    /// Planned touchpoints that will serve it.
    pub planned: Vec<String>,
}

/// One registered touchpoint's usage and quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TouchpointUsage {
    pub touchpoint: String,
    pub name: String,
    pub channel: String,
    pub department: String,
    pub status: TouchpointStatus,
    pub needs: Vec<String>,
    pub interactions: u64,
    pub share_of_customers: Option<f64>,
    pub trend: Option<f64>,
    pub csat: Option<f64>,
    pub nps: Option<f64>,
    pub first_contact_resolution: Option<f64>,
    pub repeat_contact_rate: Option<f64>,
}

/// Events that came through a touchpoint or channel the registry does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnregisteredChannel {
    /// The touchpoint the events named, if any (not registered).
    pub touchpoint: Option<String>,
    /// Their channel, if any.
    pub channel: Option<String>,
    /// Whether the channel kind itself has no registered touchpoint.
    pub channel_unregistered: bool,
    pub interactions: u64,
    pub people: u64,
}

/// What the census suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationKind {
    /// Cover a need no active touchpoint serves.
    Cover,
    /// Invest in a channel customers use that is not registered.
    Invest,
    /// Consolidate a little-used, low-quality touchpoint.
    Consolidate,
    /// Improve a much-used, low-quality touchpoint.
    Improve,
    /// Check an active touchpoint nobody used.
    Review,
    /// Declare what a touchpoint is for.
    Declare,
}

/// One plain-language recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recommendation {
    pub kind: RecommendationKind,
    /// The need, touchpoint or channel it is about.
    pub subject: String,
    pub text: String,
}

/// The census report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Census {
    /// Every need: the company's catalogue and what the touchpoints declare.
    pub needs: Vec<String>,
    pub coverage: Vec<NeedCoverage>,
    pub uncovered_needs: Vec<String>,
    /// Active touchpoints that declare no need.
    pub touchpoints_without_needs: Vec<String>,
    pub usage: Vec<TouchpointUsage>,
    pub unregistered_channels: Vec<UnregisteredChannel>,
    pub recommendations: Vec<Recommendation>,
}

/// The census over the view's period, from its KPI report.
pub fn census(view: &View, kpis: &KpiReport) -> Census {
    let registry = view.touchpoints;
    let active = |t: &&Touchpoint| t.status == TouchpointStatus::Active;
    let needs: BTreeSet<String> = view
        .rules
        .config
        .needs
        .iter()
        .cloned()
        .chain(registry.iter().flat_map(|t| t.needs.iter().cloned()))
        .collect();
    let serving = |need: &str, status: TouchpointStatus| -> Vec<String> {
        registry
            .iter()
            .filter(|t| t.status == status && t.needs.iter().any(|n| n == need))
            .map(|t| t.id.clone())
            .collect()
    };
    let coverage: Vec<NeedCoverage> = needs
        .iter()
        .map(|need| NeedCoverage {
            need: need.clone(),
            active: serving(need, TouchpointStatus::Active),
            planned: serving(need, TouchpointStatus::Planned),
        })
        .collect();
    let uncovered_needs: Vec<String> = coverage
        .iter()
        .filter(|c| c.active.is_empty())
        .map(|c| c.need.clone())
        .collect();
    let touchpoints_without_needs: Vec<String> = registry
        .iter()
        .filter(active)
        .filter(|t| t.needs.is_empty())
        .map(|t| t.id.clone())
        .collect();
    let kpi_of = |id: &str| {
        kpis.touchpoints
            .iter()
            .find(|k| k.touchpoint.as_deref() == Some(id))
    };
    let usage: Vec<TouchpointUsage> = registry
        .iter()
        .filter(|t| t.status != TouchpointStatus::Planned)
        .map(|t| {
            let k = kpi_of(&t.id);
            TouchpointUsage {
                touchpoint: t.id.clone(),
                name: t.name.clone(),
                channel: t.channel.as_str().to_string(),
                department: t.department.clone(),
                status: t.status,
                needs: t.needs.clone(),
                interactions: k.map_or(0, |k| k.interactions),
                share_of_customers: k.and_then(|k| k.share_of_customers).or(Some(0.0)),
                trend: k.and_then(|k| k.trend),
                csat: k.and_then(|k| k.csat),
                nps: k.and_then(|k| k.nps),
                first_contact_resolution: k.and_then(|k| k.first_contact_resolution),
                repeat_contact_rate: k.and_then(|k| k.repeat_contact_rate),
            }
        })
        .collect();
    let unregistered_channels = unregistered(view);
    let recommendations = recommend(
        view,
        &coverage,
        &touchpoints_without_needs,
        &usage,
        &unregistered_channels,
        kpis,
    );
    Census {
        needs: needs.into_iter().collect(),
        coverage,
        uncovered_needs,
        touchpoints_without_needs,
        usage,
        unregistered_channels,
        recommendations,
    }
}

/// Events in the period whose touchpoint is not registered, or whose channel no
/// registered touchpoint has, grouped by (touchpoint, channel).
fn unregistered(view: &View) -> Vec<UnregisteredChannel> {
    let rows = view.table.rows();
    let symbols = &view.table.symbols;
    // Looked up once, not per row.
    let registered_touchpoints: BTreeSet<Sym> = view
        .touchpoints
        .iter()
        .filter_map(|t| symbols.get(&t.id))
        .collect();
    let registered_channels: BTreeSet<Sym> = view
        .touchpoints
        .iter()
        .filter_map(|t| symbols.get(t.channel.as_str()))
        .collect();
    let channel_registered = |c: Sym| registered_channels.contains(&c);
    let mut groups: BTreeMap<(Sym, Sym), (u64, u64)> = BTreeMap::new();
    let mut seen: Vec<(Sym, Sym)> = Vec::new();
    for (_, history) in view.histories().iter() {
        seen.clear();
        for &r in history {
            let row = &rows[r as usize];
            if !view.period.contains(row.at) {
                continue;
            }
            let Origin {
                touchpoint,
                channel,
            } = view.table.origin(row);
            let unknown_touchpoint =
                !touchpoint.is_none() && !registered_touchpoints.contains(&touchpoint);
            let unknown_channel = !channel.is_none() && !channel_registered(channel);
            if !unknown_touchpoint && !unknown_channel {
                continue;
            }
            let key = (touchpoint, channel);
            let group = groups.entry(key).or_default();
            group.0 += 1;
            if !seen.contains(&key) {
                seen.push(key);
                group.1 += 1;
            }
        }
    }
    let name = |s: Sym| (!s.is_none()).then(|| symbols.name(s).to_string());
    let mut list: Vec<UnregisteredChannel> = groups
        .into_iter()
        .map(|((t, c), (interactions, people))| UnregisteredChannel {
            touchpoint: name(t),
            channel: name(c),
            channel_unregistered: !c.is_none() && !channel_registered(c),
            interactions,
            people,
        })
        .collect();
    list.sort_by(|a, b| {
        (b.people, b.interactions, &a.touchpoint, &a.channel).cmp(&(
            a.people,
            a.interactions,
            &b.touchpoint,
            &b.channel,
        ))
    });
    list
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Why a touchpoint serves its customers poorly, if it does.
fn low_quality(view: &View, k: &Kpis) -> Option<String> {
    let config = &view.rules.config;
    if let Some(csat) = k.csat.filter(|c| *c < config.low_csat) {
        return Some(format!(
            "only {} of its CSAT answers are satisfied",
            percent(csat)
        ));
    }
    if let Some(repeat) = k
        .repeat_contact_rate
        .filter(|r| *r > config.high_repeat_contact)
    {
        return Some(format!(
            "{} of the cases opened there needed more than one contact",
            percent(repeat)
        ));
    }
    if let Some(nps) = k.nps.filter(|n| *n < 0.0) {
        return Some(format!("its NPS is {:.0}", nps * 100.0));
    }
    None
}

fn recommend(
    view: &View,
    coverage: &[NeedCoverage],
    touchpoints_without_needs: &[String],
    usage: &[TouchpointUsage],
    unregistered: &[UnregisteredChannel],
    kpis: &KpiReport,
) -> Vec<Recommendation> {
    let config = &view.rules.config;
    let mut out = Vec::new();
    for c in coverage.iter().filter(|c| c.active.is_empty()) {
        let text = match c.planned.first() {
            Some(planned) => format!(
                "No active touchpoint serves the need \"{}\"; {planned} is planned for it: bring it live.",
                c.need
            ),
            None => format!(
                "No active touchpoint serves the need \"{}\": add one, or extend a touchpoint customers already use to serve it.",
                c.need
            ),
        };
        out.push(Recommendation {
            kind: RecommendationKind::Cover,
            subject: c.need.clone(),
            text,
        });
    }
    for u in unregistered
        .iter()
        .filter(|u| u.people >= config.unregistered_min_people)
    {
        let what = match (&u.touchpoint, &u.channel) {
            (Some(t), Some(c)) => format!("{c} (touchpoint \"{t}\")"),
            (Some(t), None) => format!("the touchpoint \"{t}\""),
            (None, Some(c)) => c.clone(),
            (None, None) => continue,
        };
        out.push(Recommendation {
            kind: RecommendationKind::Invest,
            subject: u.touchpoint.clone().or(u.channel.clone()).unwrap_or_default(),
            text: format!(
                "Customers reach for {what}: {} interactions from {} people in the period, yet it is not a registered touchpoint. Register it, give it an owner and answer there.",
                u.interactions, u.people
            ),
        });
    }
    for u in usage
        .iter()
        .filter(|u| u.status == TouchpointStatus::Active)
    {
        let Some(k) = kpis
            .touchpoints
            .iter()
            .find(|k| k.touchpoint.as_deref() == Some(u.touchpoint.as_str()))
        else {
            out.push(Recommendation {
                kind: RecommendationKind::Review,
                subject: u.touchpoint.clone(),
                text: format!(
                    "{} had no interactions in the period: check that its events are tracked, or retire it.",
                    u.touchpoint
                ),
            });
            continue;
        };
        let share = k.share_of_customers.unwrap_or(0.0);
        let Some(why) = low_quality(view, k) else {
            continue;
        };
        if share < config.little_used_share {
            let alternative = usage
                .iter()
                .filter(|o| {
                    o.touchpoint != u.touchpoint
                        && o.status == TouchpointStatus::Active
                        && !u.needs.is_empty()
                        && u.needs.iter().all(|n| o.needs.contains(n))
                })
                .max_by(|a, b| {
                    a.share_of_customers
                        .unwrap_or(0.0)
                        .total_cmp(&b.share_of_customers.unwrap_or(0.0))
                });
            let advice = match alternative {
                Some(o) => format!(
                    "consider moving its customers to {}, which serves the same needs",
                    o.touchpoint
                ),
                None => {
                    "consider consolidating it with another touchpoint or retiring it".to_string()
                }
            };
            out.push(Recommendation {
                kind: RecommendationKind::Consolidate,
                subject: u.touchpoint.clone(),
                text: format!(
                    "{} is little used ({} of customers) and {why}: {advice}.",
                    u.touchpoint,
                    percent(share)
                ),
            });
        } else {
            out.push(Recommendation {
                kind: RecommendationKind::Improve,
                subject: u.touchpoint.clone(),
                text: format!(
                    "{} serves {} of customers but {why}: improve it before adding channels.",
                    u.touchpoint,
                    percent(share)
                ),
            });
        }
    }
    for t in touchpoints_without_needs {
        out.push(Recommendation {
            kind: RecommendationKind::Declare,
            subject: t.clone(),
            text: format!(
                "{t} serves no declared customer need: declare what it is for, or retire it."
            ),
        });
    }
    out
}
