//! KPIs per touchpoint and per channel: how much each is used, whether it converts, what
//! it costs, and how well it serves (CSAT, NPS, cases resolved at the first contact,
//! repeat contacts, channel switching, abandonment).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{CaseStep, Origin, Sym, View, ratio};

const MICROS_PER_DAY: i64 = 86_400_000_000;
const MICROS_PER_HOUR: f64 = 3_600_000_000.0;

/// One touchpoint's (or channel's) figures over the period. Rates are fractions 0..1;
/// `None` (JSON `null`) where the figure is undefined (nothing to divide by).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    /// The touchpoint; `None` in the per-channel table.
    pub touchpoint: Option<String>,
    /// The touchpoint's channel (registered, else as its events say).
    pub channel: Option<String>,
    /// Whether the touchpoint is in the registry.
    pub registered: bool,
    pub interactions: u64,
    /// Distinct people who interacted.
    pub reach: u64,
    /// `reach` over every person who interacted anywhere in the period.
    pub share_of_customers: Option<f64>,
    /// People who reached a goal within the conversion window after interacting here.
    pub conversions: u64,
    pub conversion_rate: Option<f64>,
    /// Declared cost per interaction × interactions.
    pub cost: Option<f64>,
    pub cost_per_interaction: Option<f64>,
    pub cost_per_conversion: Option<f64>,
    /// Share of CSAT answers of 4 or 5 (on 1-5) about this touchpoint.
    pub csat: Option<f64>,
    pub csat_average: Option<f64>,
    pub csat_answers: u64,
    /// Net Promoter Score as a fraction: promoters (9-10) minus detractors (0-6), over
    /// answers about this touchpoint.
    pub nps: Option<f64>,
    pub nps_answers: u64,
    /// Cases opened here in the period.
    pub cases: u64,
    /// Cases resolved after a single contact.
    pub first_contact_resolution: Option<f64>,
    /// Cases that took more than one contact ("I had to repeat my problem").
    pub repeat_contact_rate: Option<f64>,
    /// Cases whose contacts came through more than one channel.
    pub cross_channel_repeat_rate: Option<f64>,
    /// Mean hours from opening to resolution, over cases resolved.
    pub time_to_resolution_hours: Option<f64>,
    /// Of the case contacts made here that were followed by another contact about the
    /// same case, the share where that next contact came through another channel.
    pub channel_switch_rate: Option<f64>,
    pub abandoned: u64,
    /// Abandoned contacts over interactions.
    pub abandonment_rate: Option<f64>,
    /// Change in interactions from the first half of the period to the second.
    pub trend: Option<f64>,
}

/// The KPI report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiReport {
    /// People who interacted in the period (counted ones).
    pub people: u64,
    pub interactions: u64,
    pub touchpoints: Vec<Kpis>,
    pub channels: Vec<Kpis>,
}

#[derive(Default)]
struct Tally {
    interactions: u64,
    first_half: u64,
    second_half: u64,
    reach: u64,
    conversions: u64,
    csat_answers: u64,
    csat_satisfied: u64,
    csat_sum: u64,
    nps_answers: u64,
    promoters: u64,
    detractors: u64,
    cases: u64,
    first_contact: u64,
    repeat: u64,
    cross_channel: u64,
    resolved: u64,
    resolution_hours: f64,
    followed: u64,
    switched: u64,
    abandoned: u64,
    /// The channel seen most often on its rows.
    channels: HashMap<Sym, u64>,
}

/// Touchpoint KPIs and channel KPIs over the view's period.
pub fn kpi_report(view: &View) -> KpiReport {
    let rows = view.table.rows();
    let period = view.period;
    let conversion_window = i64::from(view.rules.config.conversion_days) * MICROS_PER_DAY;
    let histories = view.histories();

    // The period's middle, for the trend: from its bounds, else from the data.
    let in_period = || {
        histories
            .iter()
            .flat_map(|(_, r)| r.iter())
            .map(|&r| &rows[r as usize])
            .filter(|r| period.contains(r.at))
    };
    let lo = period
        .from
        .map(|t| t.as_microsecond())
        .or_else(|| in_period().map(|r| r.at).min());
    let hi = period
        .to
        .map(|t| t.as_microsecond())
        .or_else(|| in_period().map(|r| r.at).max().map(|m| m + 1));
    let middle = lo.zip(hi).map(|(lo, hi)| lo + (hi - lo) / 2);

    let mut by_touchpoint: BTreeMap<Sym, Tally> = BTreeMap::new();
    let mut by_channel: BTreeMap<Sym, Tally> = BTreeMap::new();
    let mut people = 0u64;
    let mut interactions = 0u64;
    let mut goals: Vec<i64> = Vec::new();
    let mut touched: Vec<(Sym, bool, bool)> = Vec::new(); // (key, is channel, converted)
    for (_, history) in histories.iter() {
        goals.clear();
        touched.clear();
        goals.extend(
            history
                .iter()
                .map(|&r| &rows[r as usize])
                .filter(|r| r.goal())
                .map(|r| r.at),
        );
        let mut active = false;
        for &r in history {
            let row = &rows[r as usize];
            if !period.contains(row.at) {
                continue;
            }
            active = true;
            interactions += 1;
            let origin = view.table.origin(row);
            let converts = {
                let first = goals.partition_point(|&g| g < row.at);
                goals
                    .get(first)
                    .is_some_and(|&g| g - row.at <= conversion_window)
            };
            for (key, is_channel) in [(origin.touchpoint, false), (origin.channel, true)] {
                if key.is_none() {
                    continue;
                }
                let tally = if is_channel {
                    by_channel.entry(key).or_default()
                } else {
                    by_touchpoint.entry(key).or_default()
                };
                tally.interactions += 1;
                match middle {
                    Some(m) if row.at >= m => tally.second_half += 1,
                    _ => tally.first_half += 1,
                }
                tally.abandoned += u64::from(row.abandoned());
                if !is_channel && !origin.channel.is_none() {
                    *tally.channels.entry(origin.channel).or_default() += 1;
                }
                match touched
                    .iter_mut()
                    .find(|(k, c, _)| *k == key && *c == is_channel)
                {
                    Some(entry) => entry.2 |= converts,
                    None => touched.push((key, is_channel, converts)),
                }
            }
            // A survey answer counts for the touchpoint it rates and that one's channel.
            if let Some(answer) = view.table.detail(r as usize).filter(|d| !d.rates.is_none()) {
                let rated_channel = rated_channel(view, answer.rates, origin.channel);
                let record = |tally: &mut Tally| {
                    if answer.csat >= 1 {
                        tally.csat_answers += 1;
                        tally.csat_sum += answer.csat as u64;
                        tally.csat_satisfied += u64::from(answer.csat >= 4);
                    }
                    if answer.nps >= 0 {
                        tally.nps_answers += 1;
                        tally.promoters += u64::from(answer.nps >= 9);
                        tally.detractors += u64::from(answer.nps <= 6);
                    }
                };
                record(by_touchpoint.entry(answer.rates).or_default());
                if !rated_channel.is_none() {
                    record(by_channel.entry(rated_channel).or_default());
                }
            }
        }
        if active {
            people += 1;
        }
        for &(key, is_channel, converted) in &touched {
            let tally = if is_channel {
                by_channel.entry(key).or_default()
            } else {
                by_touchpoint.entry(key).or_default()
            };
            tally.reach += 1;
            tally.conversions += u64::from(converted);
        }
    }

    tally_cases(view, &mut by_touchpoint, &mut by_channel);

    let touchpoints = by_touchpoint
        .into_iter()
        .map(|(sym, tally)| {
            let registered = view.registered(sym);
            let channel = match registered {
                Some(t) => Some(t.channel.as_str().to_string()),
                None => tally
                    .channels
                    .iter()
                    .max_by_key(|(s, n)| (**n, std::cmp::Reverse(**s)))
                    .map(|(s, _)| view.table.symbols.name(*s).to_string()),
            };
            let cost = registered.and_then(|t| t.cost_per_interaction);
            finish(
                Some(view.table.symbols.name(sym).to_string()),
                channel,
                registered.is_some(),
                cost,
                &tally,
                people,
            )
        })
        .collect();
    let channels = by_channel
        .into_iter()
        .map(|(sym, tally)| {
            let name = view.table.symbols.name(sym).to_string();
            let registered = view.touchpoints.iter().any(|t| t.channel.as_str() == name);
            finish(None, Some(name), registered, None, &tally, people)
        })
        .collect();
    KpiReport {
        people,
        interactions,
        touchpoints,
        channels,
    }
}

/// The channel of a rated touchpoint: registered, else the survey's own channel.
fn rated_channel(view: &View, rated: Sym, own: Sym) -> Sym {
    match view.registered(rated) {
        Some(t) => view
            .table
            .symbols
            .get(t.channel.as_str())
            .unwrap_or(Sym::NONE),
        None => own,
    }
}

/// Case figures: each case opened in the period, attributed to where it was opened.
fn tally_cases(
    view: &View,
    by_touchpoint: &mut BTreeMap<Sym, Tally>,
    by_channel: &mut BTreeMap<Sym, Tally>,
) {
    let table = view.table;
    let rows = table.rows();
    /// A row about a case: the case, what the row does to it, when, where, its index.
    struct Step {
        case: Sym,
        step: Option<CaseStep>,
        at: i64,
        origin: Origin,
        row: usize,
    }
    let mut steps: Vec<Step> = table
        .details()
        .filter(|(r, d)| !d.case.is_none() && view.counts(view.people[*r]))
        .map(|(r, d)| Step {
            case: d.case,
            step: d.case_step,
            at: rows[r].at,
            origin: table.origin(&rows[r]),
            row: r,
        })
        .collect();
    // Rows are in log order: a row's index breaks ties as its position would.
    steps.sort_unstable_by_key(|s| (s.case, s.at, s.row));
    for case in steps.chunk_by(|a, b| a.case == b.case) {
        let first = &case[0];
        if !view.period.contains(first.at) {
            continue;
        }
        let contacts: Vec<&Step> = case
            .iter()
            .filter(|s| s.step != Some(CaseStep::Resolved))
            .collect();
        let last = &case[case.len() - 1];
        let resolved_at = (last.step == Some(CaseStep::Resolved)).then_some(last.at);
        let mut channels: Vec<Sym> = contacts.iter().map(|s| s.origin.channel).collect();
        channels.sort_unstable();
        channels.dedup();
        for (key, tallies) in [
            (first.origin.touchpoint, &mut *by_touchpoint),
            (first.origin.channel, &mut *by_channel),
        ] {
            if key.is_none() {
                continue;
            }
            let tally = tallies.entry(key).or_default();
            tally.cases += 1;
            tally.first_contact += u64::from(resolved_at.is_some() && contacts.len() <= 1);
            tally.repeat += u64::from(contacts.len() > 1);
            tally.cross_channel += u64::from(channels.len() > 1);
            if let Some(resolved_at) = resolved_at {
                tally.resolved += 1;
                tally.resolution_hours += (resolved_at - first.at) as f64 / MICROS_PER_HOUR;
            }
        }
        for pair in contacts.windows(2) {
            let switched = pair[0].origin.channel != pair[1].origin.channel;
            for (key, tallies) in [
                (pair[0].origin.touchpoint, &mut *by_touchpoint),
                (pair[0].origin.channel, &mut *by_channel),
            ] {
                if key.is_none() {
                    continue;
                }
                let tally = tallies.entry(key).or_default();
                tally.followed += 1;
                tally.switched += u64::from(switched);
            }
        }
    }
}

fn finish(
    touchpoint: Option<String>,
    channel: Option<String>,
    registered: bool,
    cost_per_interaction: Option<f64>,
    t: &Tally,
    people: u64,
) -> Kpis {
    let cost = cost_per_interaction.map(|c| c * t.interactions as f64);
    Kpis {
        touchpoint,
        channel,
        registered,
        interactions: t.interactions,
        reach: t.reach,
        share_of_customers: ratio(t.reach, people),
        conversions: t.conversions,
        conversion_rate: ratio(t.conversions, t.reach),
        cost,
        cost_per_interaction,
        cost_per_conversion: cost
            .filter(|_| t.conversions > 0)
            .map(|c| c / t.conversions as f64),
        csat: ratio(t.csat_satisfied, t.csat_answers),
        csat_average: ratio(t.csat_sum, t.csat_answers),
        csat_answers: t.csat_answers,
        nps: (t.nps_answers > 0)
            .then(|| (t.promoters as f64 - t.detractors as f64) / t.nps_answers as f64),
        nps_answers: t.nps_answers,
        cases: t.cases,
        first_contact_resolution: ratio(t.first_contact, t.cases),
        repeat_contact_rate: ratio(t.repeat, t.cases),
        cross_channel_repeat_rate: ratio(t.cross_channel, t.cases),
        time_to_resolution_hours: (t.resolved > 0).then(|| t.resolution_hours / t.resolved as f64),
        channel_switch_rate: ratio(t.switched, t.followed),
        abandoned: t.abandoned,
        abandonment_rate: ratio(t.abandoned, t.interactions),
        trend: (t.first_half > 0)
            .then(|| (t.second_half as f64 - t.first_half as f64) / t.first_half as f64),
    }
}
