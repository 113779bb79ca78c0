//! The interaction table: one compact row per event, all the reports need.
//!
//! Reports run over millions of events, so each event is reduced once, when it is
//! applied, to a fixed-size row of interned symbols and small numbers; the reports then
//! never parse a message again.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use crate::event::{Event, EventType};
use crate::profile::{CaseEvent, case_event, case_id};
use crate::rows::{LogRows, RowStore, Rows, Runs};
use crate::small_map::push_snug;

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

/// Values numbered in the order first seen, each held once (in `list`; the index finds a
/// value's number by its hash). Serialised as the list; the index rebuilt when read back.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(
    from = "Vec<T>",
    bound(deserialize = "T: serde::Deserialize<'de> + Hash + Eq")
)]
struct Interned<T> {
    list: Vec<T>,
    ids: hashbrown::HashTable<u32>,
    /// foldhash: cheap on short keys, seeded per process.
    hasher: foldhash::quality::RandomState,
}

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Interned {
            list: Vec::new(),
            ids: hashbrown::HashTable::new(),
            hasher: Default::default(),
        }
    }
}

impl<T: Hash + Eq> From<Vec<T>> for Interned<T> {
    /// Each value keeps its position (its number); one listed twice is found at its
    /// first.
    fn from(list: Vec<T>) -> Self {
        let mut interned = Interned::default();
        for value in list {
            interned.push(value);
        }
        interned
    }
}

impl<T: serde::Serialize> serde::Serialize for Interned<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

impl<T: PartialEq> PartialEq for Interned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl<T: Hash + Eq> Interned<T> {
    /// The number of `value`, if it was ever added.
    fn find<Q: Hash + Eq + ?Sized>(&self, value: &Q) -> Option<u32>
    where
        T: Borrow<Q>,
    {
        let list = &self.list;
        (self.ids)
            .find(self.hasher.hash_one(value), |&i| {
                list[i as usize].borrow() == value
            })
            .copied()
    }

    /// The number of `value`, added (made with `own`) if new.
    fn intern<Q: Hash + Eq + ?Sized>(&mut self, value: &Q, own: impl FnOnce(&Q) -> T) -> u32
    where
        T: Borrow<Q>,
    {
        match self.find(value) {
            Some(i) => i,
            None => self.push(own(value)),
        }
    }

    /// Appends `value` at the next number, found there unless it was already.
    fn push(&mut self, value: T) -> u32 {
        let i = self.list.len() as u32;
        if self.find(&value).is_none() {
            let (list, hasher) = (&self.list, &self.hasher);
            let hash = |&j: &u32| hasher.hash_one(&list[j as usize]);
            self.ids.insert_unique(hasher.hash_one(&value), i, hash);
        }
        self.list.push(value);
        i
    }

    fn get(&self, i: u32) -> Option<&T> {
        self.list.get(i as usize)
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    /// Heap bytes of the list and the index (a slot: a number and a control byte).
    fn heap_bytes(&self) -> usize {
        self.list.capacity() * size_of::<T>() + self.ids.capacity() * 5
    }
}

/// Interned strings (touchpoints, channels, case ids), each text held once; `Sym::NONE`
/// is the empty text. Serialised as their texts in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Symbols(Interned<Box<str>>);

impl Default for Symbols {
    fn default() -> Self {
        Symbols(Interned::from(vec!["".into()]))
    }
}

impl Symbols {
    /// The symbol for `text`, interned if new.
    pub fn intern(&mut self, text: &str) -> Sym {
        Sym(self.0.intern(text, |t| t.into()))
    }

    /// The symbol for `text`, if it was ever interned.
    pub fn get(&self, text: &str) -> Option<Sym> {
        self.0.find(text).map(Sym)
    }

    /// The text of a symbol (`""` for `Sym::NONE`).
    pub fn name(&self, sym: Sym) -> &str {
        self.0.get(sym.0).map_or("", |s| s)
    }

    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes() + self.0.list.iter().map(|s| s.len()).sum::<usize>()
    }
}

/// What an event does to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CaseStep {
    Opened,
    Updated,
    Resolved,
}

/// One event, reduced to what the reports count: 16 bytes of plain data (see
/// [`crate::rows`]), so the table can live in a mapped file; its log position is held
/// apart ([`crate::rows::LogRows`]), and so is what few events say besides (a survey
/// answer, a step of a case: [`Detail`]).
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Interaction {
    /// When it happened, microseconds since the Unix epoch.
    pub at: i64,
    /// Where it came from: an index into the table's [`Origin`]s
    /// ([`InteractionTable::origin`]).
    origin: u32,
    /// Funnel stages shown (bit `i` = stage `i` of the rules).
    pub stages: u8,
    /// [`GOAL`], [`ABANDONED`] and [`DETAILED`].
    flags: u8,
    _padding: [u8; 2],
}

const GOAL: u8 = 1;
const ABANDONED: u8 = 2;
/// The event has a [`Detail`].
const DETAILED: u8 = 4;

impl Interaction {
    /// Whether it is a goal of the analytics rules.
    pub fn goal(&self) -> bool {
        self.flags & GOAL != 0
    }

    /// Whether it is an abandoned contact.
    pub fn abandoned(&self) -> bool {
        self.flags & ABANDONED != 0
    }

    /// Whether it has a [`Detail`] ([`InteractionTable::detail`]).
    pub fn detailed(&self) -> bool {
        self.flags & DETAILED != 0
    }
}

/// The touchpoint and channel an interaction came through. Rows hold the pair as one
/// number: the pairs seen are few.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Origin {
    pub touchpoint: Sym,
    pub channel: Sym,
}

/// What an event says besides what every row holds, when it says it: a survey answer,
/// a step of a case. Few events do, so it is held beside the rows, by log position.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detail {
    /// The case it is about (what it does to it: [`Self::case_step`]).
    pub case: Sym,
    /// For a survey answer: the touchpoint it rates (`properties.about_touchpoint`,
    /// else the event's own touchpoint).
    pub rates: Sym,
    /// CSAT answer, 1-5; `-1` when none.
    pub csat: i8,
    /// NPS answer, 0-10; `-1` when none.
    pub nps: i8,
    /// What it does to its case.
    pub case_step: Option<CaseStep>,
}

/// Every event's interaction, in log order, with the symbols and origins they use and
/// the details few of them have. Serialised without its rows; read back with
/// [`TableParts`] and [`InteractionTable::from_parts`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct InteractionTable {
    pub symbols: Symbols,
    origins: Interned<Origin>,
    /// Serialised as their positions; the rows are written and read as raw rows (see
    /// [`Self::raw_rows`]).
    rows: LogRows<Interaction>,
    /// The details of the rows that have one, by log position, ascending.
    details: Vec<(i64, Detail)>,
}

/// A serialised [`InteractionTable`] read back, waiting for its rows.
#[derive(Debug, serde::Deserialize)]
pub struct TableParts {
    symbols: Symbols,
    origins: Interned<Origin>,
    /// The rows' positions.
    rows: Runs,
    details: Vec<(i64, Detail)>,
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
        let case_step = case_step.filter(|_| !case.is_none());
        let detailed = !case.is_none() || !rates.is_none();
        if detailed {
            let detail = Detail {
                case,
                rates,
                csat,
                nps,
                case_step,
            };
            push_snug(&mut self.details, (seq, detail));
        }
        let flags = if rules.is_goal(event) { GOAL } else { 0 }
            | if rules.is_abandoned(event) {
                ABANDONED
            } else {
                0
            }
            | if detailed { DETAILED } else { 0 };
        let origin = Origin {
            touchpoint,
            channel,
        };
        let origin = self.origins.intern(&origin, |o| *o);
        self.rows.push(
            seq,
            Interaction {
                at: event.timestamp.as_microsecond(),
                origin,
                stages: rules.stage_mask(event),
                flags,
                _padding: [0; 2],
            },
        );
    }

    /// Where `row` (one of this table's) came from.
    pub fn origin(&self, row: &Interaction) -> Origin {
        self.origins.get(row.origin).copied().unwrap_or_default()
    }

    /// The detail of row `index`, if it has one.
    pub fn detail(&self, index: usize) -> Option<&Detail> {
        if !self.rows.as_slice().get(index)?.detailed() {
            return None;
        }
        let seq = self.rows.seq_at(index)?;
        let at = self.details.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(&self.details[at].1)
    }

    /// The rows with a detail: each one's index and detail, in log order.
    pub fn details(&self) -> impl Iterator<Item = (usize, &Detail)> + '_ {
        self.details
            .iter()
            .filter_map(|(seq, detail)| Some((self.rows.position(*seq)?, detail)))
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
            origins: Interned::default(),
            rows: LogRows::new_in(store),
            details: Vec::new(),
        }
    }

    /// The table serialised as `parts`, with its `rows` (serialising writes only their
    /// positions): refused when they are not the rows those positions place.
    pub fn from_parts(parts: TableParts, rows: Rows<Interaction>) -> Result<Self, String> {
        let rows = LogRows::from_parts(rows, parts.rows)
            .map_err(|e| format!("the interaction rows: {e}"))?;
        let origins = parts.origins.len();
        if let Some(row) = rows
            .as_slice()
            .iter()
            .find(|r| r.origin as usize >= origins)
        {
            return Err(format!(
                "an interaction row names origin {} of {origins}",
                row.origin
            ));
        }
        if !parts.details.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err("the interactions' details are out of order".into());
        }
        Ok(InteractionTable {
            symbols: parts.symbols,
            origins: parts.origins,
            rows,
            details: parts.details,
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
        self.details
            .retain(|(seq, _)| seqs.binary_search(seq).is_err());
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Approximate heap memory held, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes()
            + self.symbols.heap_bytes()
            + self.origins.heap_bytes()
            + self.details.capacity() * size_of::<(i64, Detail)>()
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

    #[test]
    fn symbols_read_back_keep_their_numbers() {
        let mut symbols = Symbols::default();
        let (web, phone) = (symbols.intern("web"), symbols.intern("phone"));
        assert_eq!(symbols.intern("web"), web);
        assert_eq!(symbols.get("chat"), None);
        let read: Symbols =
            serde_json::from_value(json!(["", "web", "phone", "web", "chat"])).expect("names");
        assert_eq!(
            (read.get("web"), read.get("phone")),
            (Some(web), Some(phone))
        );
        // A name listed twice is found at its first; the rest keep their places.
        assert_eq!(read.get("chat"), Some(Sym(4)));
        assert_eq!(read.name(Sym(3)), "web");
        assert_eq!(read.name(Sym::NONE), "");
    }

    #[test]
    fn a_survey_answer_or_a_case_step_is_held_beside_its_row_and_goes_with_it() {
        let ctx = IntakeContext::new("2026-12-01T00:00:00Z".parse().expect("time"), "web");
        let rules = AnalyticsRules::default();
        let mut table = InteractionTable::default();
        let messages = [
            json!({"type": "track", "userId": "u", "event": "Case Opened",
                   "properties": {"case_id": "c-1"}, "context": {"channel": "phone"}}),
            json!({"type": "page", "userId": "u", "context": {"channel": "web"}}),
            json!({"type": "track", "userId": "u", "event": "Survey Answered",
                   "properties": {"csat": 4, "about_touchpoint": "shop"},
                   "context": {"channel": "email"}}),
            json!({"type": "track", "userId": "u", "event": "Case Resolved",
                   "properties": {"case_id": "c-1"}, "context": {"channel": "phone"}}),
        ];
        for (seq, message) in (10..).zip(messages) {
            let event = normalise(message.as_object().expect("object").clone(), &ctx, || {
                format!("m-{seq}")
            })
            .expect("valid");
            table.push(seq, &event, &rules);
        }
        assert_eq!(size_of::<Interaction>(), 16);
        let opened = table.detail(0).expect("a case step");
        assert_eq!(table.symbols.name(opened.case), "c-1");
        assert_eq!(opened.case_step, Some(CaseStep::Opened));
        assert!(opened.rates.is_none());
        assert_eq!(table.detail(1), None);
        let answer = table.detail(2).expect("an answer");
        assert_eq!((answer.csat, answer.nps), (4, -1));
        assert_eq!(table.symbols.name(answer.rates), "shop");
        assert!(answer.case.is_none());
        let rows = table.rows();
        assert_eq!(table.origin(&rows[0]), table.origin(&rows[3]));
        assert_ne!(table.origin(&rows[0]), table.origin(&rows[1]));
        assert_eq!(table.symbols.name(table.origin(&rows[2]).channel), "email");

        table.remove(&[10, 11]);
        let left: Vec<(usize, Option<CaseStep>)> =
            table.details().map(|(r, d)| (r, d.case_step)).collect();
        assert_eq!(left, [(0, None), (1, Some(CaseStep::Resolved))]);
        assert_eq!(
            table.detail(1).map(|d| d.case_step),
            Some(Some(CaseStep::Resolved))
        );
    }
}
