//! The interaction table: one compact row per event, all the reports need.
//!
//! Reports run over millions of events, so each event is reduced once, when it is
//! applied, to a fixed-size row of interned symbols and small numbers; the reports then
//! never parse a message again.

use std::collections::HashMap;

use crate::event::{Event, EventType};
use crate::profile::{CaseEvent, case_event, case_id};
use crate::rows::{LogRows, RowStore, Rows, Runs};

use super::rules::{AnalyticsRules, number};

/// An interned string; `Sym::NONE` stands for "absent".
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
    bytemuck::Pod,
    bytemuck::Zeroable,
)]
#[repr(transparent)]
pub struct Sym(pub u32);

impl Sym {
    pub const NONE: Sym = Sym(0);

    pub fn is_none(self) -> bool {
        self == Sym::NONE
    }
}

/// Interned strings (touchpoints, channels, case ids). Serialised as their texts in
/// order; the index is rebuilt when read back.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "Vec<Box<str>>")]
pub struct Symbols {
    names: Vec<Box<str>>,
    /// foldhash: cheap on short keys, seeded per process.
    ids: HashMap<Box<str>, Sym, foldhash::quality::RandomState>,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols {
            names: vec!["".into()],
            ids: HashMap::default(),
        }
    }
}

impl From<Vec<Box<str>>> for Symbols {
    fn from(names: Vec<Box<str>>) -> Self {
        let mut symbols = Symbols::default();
        for name in names.into_iter().skip(1) {
            let sym = Sym(symbols.names.len() as u32);
            symbols.ids.insert(name.clone(), sym);
            symbols.names.push(name);
        }
        symbols
    }
}

impl serde::Serialize for Symbols {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names.serialize(s)
    }
}

impl PartialEq for Symbols {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Symbols {
    /// The symbol for `text`, interned if new.
    pub fn intern(&mut self, text: &str) -> Sym {
        if let Some(sym) = self.ids.get(text) {
            return *sym;
        }
        let sym = Sym(self.names.len() as u32);
        self.names.push(text.into());
        self.ids.insert(text.into(), sym);
        sym
    }

    /// The symbol for `text`, if it was ever interned.
    pub fn get(&self, text: &str) -> Option<Sym> {
        self.ids.get(text).copied()
    }

    /// The text of a symbol (`""` for `Sym::NONE`).
    pub fn name(&self, sym: Sym) -> &str {
        self.names.get(sym.0 as usize).map_or("", |s| s)
    }

    fn heap_bytes(&self) -> usize {
        let text: usize = self.names.iter().map(|s| s.len()).sum();
        // Each text is held twice (list and map); a map slot is about key + value + control.
        2 * text + self.names.capacity() * 16 + self.ids.capacity() * 25
    }
}

/// What an event does to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CaseStep {
    Opened,
    Updated,
    Resolved,
}

/// One event, reduced to what the reports count: 32 bytes of plain data (see
/// [`crate::rows`]), so the table can live in a mapped file; its log position is held
/// apart ([`crate::rows::LogRows`]).
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Interaction {
    /// When it happened, microseconds since the Unix epoch.
    pub at: i64,
    pub touchpoint: Sym,
    pub channel: Sym,
    /// The case it is about (what it does to it: [`Self::case_step`]).
    pub case: Sym,
    /// For a survey answer: the touchpoint it rates (`properties.about_touchpoint`,
    /// else the event's own touchpoint).
    pub rates: Sym,
    /// CSAT answer, 1-5; `-1` when none.
    pub csat: i8,
    /// NPS answer, 0-10; `-1` when none.
    pub nps: i8,
    /// Funnel stages shown (bit `i` = stage `i` of the rules).
    pub stages: u8,
    /// 0: none, else [`CaseStep`] + 1.
    case_step: u8,
    /// [`GOAL`] and [`ABANDONED`].
    flags: u8,
    _padding: [u8; 3],
}

const GOAL: u8 = 1;
const ABANDONED: u8 = 2;

impl Interaction {
    /// What it does to its case.
    pub fn case_step(&self) -> Option<CaseStep> {
        match self.case_step {
            1 => Some(CaseStep::Opened),
            2 => Some(CaseStep::Updated),
            3 => Some(CaseStep::Resolved),
            _ => None,
        }
    }

    /// Whether it is a goal of the analytics rules.
    pub fn goal(&self) -> bool {
        self.flags & GOAL != 0
    }

    /// Whether it is an abandoned contact.
    pub fn abandoned(&self) -> bool {
        self.flags & ABANDONED != 0
    }
}

/// Every event's interaction, in log order, with the symbols they use. Serialised
/// without its rows; read back with [`TableParts`] and [`InteractionTable::from_parts`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct InteractionTable {
    pub symbols: Symbols,
    /// Serialised as their positions; the rows are written and read as raw rows (see
    /// [`Self::raw_rows`]).
    rows: LogRows<Interaction>,
}

/// A serialised [`InteractionTable`] read back, waiting for its rows.
#[derive(Debug, serde::Deserialize)]
pub struct TableParts {
    symbols: Symbols,
    /// The rows' positions.
    rows: Runs,
}

impl InteractionTable {
    /// Adds the event at log position `seq`; positions must ascend (an event already
    /// added is ignored, so a replay that overlaps is harmless).
    pub fn push(&mut self, seq: i64, event: &Event, rules: &AnalyticsRules) {
        if self.rows.last_seq().is_some_and(|last| last >= seq) {
            return;
        }
        let mut intern = |text: Option<&str>| match text {
            Some(text) if !text.is_empty() => self.symbols.intern(text),
            _ => Sym::NONE,
        };
        let touchpoint = intern(event.touchpoint.as_deref());
        let channel = intern(event.channel.as_deref());
        let is_track = event.event_type == EventType::Track;
        let case_step = is_track
            .then(|| event.name.as_deref().and_then(case_event))
            .flatten()
            .map(|step| match step {
                CaseEvent::Opened => CaseStep::Opened,
                CaseEvent::Updated => CaseStep::Updated,
                CaseEvent::Resolved => CaseStep::Resolved,
            });
        let case_text = case_step.and(case_id(event));
        let case = intern(case_text.as_deref());
        let score = |name: &str, max: f64| -> i8 {
            event
                .get(&format!("properties.{name}"))
                .and_then(number)
                .filter(|v| (0.0..=max).contains(v))
                .map_or(-1, |v| v.round() as i8)
        };
        let (csat, nps) = if is_track {
            (score("csat", 5.0), score("nps", 10.0))
        } else {
            (-1, -1)
        };
        let csat = if csat == 0 { -1 } else { csat };
        let rates = if csat >= 0 || nps >= 0 {
            let about = event
                .get("properties.about_touchpoint")
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty());
            match about {
                Some(about) => intern(Some(about)),
                None => touchpoint,
            }
        } else {
            Sym::NONE
        };
        let case_step = case_step
            .filter(|_| !case.is_none())
            .map_or(0, |step| match step {
                CaseStep::Opened => 1,
                CaseStep::Updated => 2,
                CaseStep::Resolved => 3,
            });
        let flags = if rules.is_goal(event) { GOAL } else { 0 }
            | if rules.is_abandoned(event) {
                ABANDONED
            } else {
                0
            };
        self.rows.push(
            seq,
            Interaction {
                at: event.timestamp.as_microsecond(),
                touchpoint,
                channel,
                case,
                rates,
                csat,
                nps,
                stages: rules.stage_mask(event),
                case_step,
                flags,
                _padding: [0; 3],
            },
        );
    }

    /// Makes room for `additional` more rows at once, so a replay of a known length
    /// does not grow the table by doubling (which would leave up to half of it unused).
    pub fn reserve(&mut self, additional: usize) {
        self.rows.reserve(additional);
    }

    /// An empty table whose rows are kept in `store`.
    pub fn new_in(store: Box<dyn RowStore<Interaction>>) -> Self {
        InteractionTable {
            symbols: Symbols::default(),
            rows: LogRows::new_in(store),
        }
    }

    /// The table serialised as `parts`, with its `rows` (serialising writes only their
    /// positions): refused when they are not the rows those positions place.
    pub fn from_parts(parts: TableParts, rows: Rows<Interaction>) -> Result<Self, String> {
        Ok(InteractionTable {
            symbols: parts.symbols,
            rows: LogRows::from_parts(rows, parts.rows)
                .map_err(|e| format!("the interaction rows: {e}"))?,
        })
    }

    /// The rows without their positions: what serialising the table leaves out.
    pub fn raw_rows(&self) -> &Rows<Interaction> {
        self.rows.rows()
    }

    /// The log position of the last row.
    pub fn last_seq(&self) -> Option<i64> {
        self.rows.last_seq()
    }

    /// The log position of row `index`.
    pub fn seq_at(&self, index: usize) -> Option<i64> {
        self.rows.seq_at(index)
    }

    /// The rows, in log order.
    pub fn rows(&self) -> &[Interaction] {
        self.rows.as_slice()
    }

    /// The row of log position `seq`.
    pub fn position(&self, seq: i64) -> Option<usize> {
        self.rows.position(seq)
    }

    /// Removes the rows of these log positions (ascending), e.g. an erased person's.
    pub fn remove(&mut self, seqs: &[i64]) {
        self.rows.remove_keys(seqs);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Approximate heap memory held, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes() + self.symbols.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::segment::{IntakeContext, normalise};

    #[test]
    fn rows_of_removed_positions_go_and_the_rest_keep_their_order() {
        let ctx = IntakeContext::new("2026-12-01T00:00:00Z".parse().expect("time"), "web");
        let rules = AnalyticsRules::default();
        let mut table = InteractionTable::default();
        for seq in [1, 2, 4, 5, 7, 9] {
            let message = json!({"type": "track", "userId": "u", "event": "E"});
            let event = normalise(message.as_object().expect("object").clone(), &ctx, || {
                format!("m-{seq}")
            })
            .expect("valid");
            table.push(seq, &event, &rules);
        }
        table.remove(&[2, 3, 5, 9, 10]);
        let left: Vec<i64> = (0..table.len()).filter_map(|i| table.seq_at(i)).collect();
        assert_eq!(left, [1, 4, 7]);
        assert_eq!(table.position(7), Some(2));
        table.remove(&[]);
        assert_eq!(table.len(), 3);
    }
}
