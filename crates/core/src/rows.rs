//! Where the projections' per-event rows live.
//!
//! Some state grows with every event: the interaction table's row, the identity graph's
//! link from each event to its profile's previous one. Held on the heap, it would make a
//! node's memory grow with its log for ever. So the core keeps such rows in [`Rows`],
//! over a [`RowStore`]: a `Vec` by default (tests, tools, nodes without a data folder),
//! or a store the caller supplies — the projections crate maps a file of the data folder
//! into memory, whose pages the kernel writes back and can drop. The core itself only
//! calls the trait: it does no I/O.
//!
//! Rows are plain data ([`bytemuck::Pod`]): any bytes are some row, so a store can hold
//! them as bytes, and [`Rows`] gives and takes them as bytes (native byte order:
//! snapshots, which write them so, are tied to the build that wrote them).
//!
//! Such rows are one per log position, in log order: [`LogRows`] keeps the positions
//! apart, as runs of consecutive positions ([`Runs`]), rather than 8 bytes in every row.
//! Positions are dense but where a transaction was rolled back or events were erased,
//! so the runs are few.

use std::fmt;

use bytemuck::Pod;

/// A growable sequence of rows.
pub trait RowStore<T>: Send + Sync {
    fn as_slice(&self) -> &[T];
    fn as_mut_slice(&mut self) -> &mut [T];
    fn push(&mut self, row: T);
    /// Keeps the first `len` rows.
    fn truncate(&mut self, len: usize);
    /// Makes room for `additional` more rows at once.
    fn reserve(&mut self, additional: usize);
    /// Bytes held on the heap (not counting what a store keeps in mapped files).
    fn heap_bytes(&self) -> usize;
}

impl<T: Pod + Send + Sync> RowStore<T> for Vec<T> {
    fn as_slice(&self) -> &[T] {
        self
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }

    fn push(&mut self, row: T) {
        Vec::push(self, row);
    }

    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }

    fn reserve(&mut self, additional: usize) {
        self.reserve_exact(additional);
    }

    fn heap_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>()
    }
}

/// Rows of `T` in some [`RowStore`] (a `Vec` unless given another with [`Rows::new_in`]).
pub struct Rows<T> {
    store: Box<dyn RowStore<T>>,
}

impl<T: Pod + Send + Sync> Rows<T> {
    /// Empty rows kept in `store` (whatever it held is dropped).
    pub fn new_in(mut store: Box<dyn RowStore<T>>) -> Self {
        store.truncate(0);
        Rows { store }
    }

    pub fn as_slice(&self) -> &[T] {
        self.store.as_slice()
    }

    /// The rows as bytes (native byte order), e.g. to write them to a file.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.as_slice())
    }

    /// Appends the rows `bytes` holds, as [`Self::as_bytes`] gives them: refused unless
    /// they are whole rows.
    pub fn extend_from_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        let size = std::mem::size_of::<T>();
        if !bytes.len().is_multiple_of(size) {
            return Err(format!(
                "{} bytes are not whole rows of {size} bytes",
                bytes.len()
            ));
        }
        self.reserve(bytes.len() / size);
        match bytemuck::try_cast_slice::<u8, T>(bytes) {
            Ok(rows) => rows.iter().for_each(|row| self.push(*row)),
            Err(_) => bytes
                .chunks_exact(size)
                .for_each(|row| self.push(bytemuck::pod_read_unaligned(row))),
        }
        Ok(())
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.store.as_mut_slice()
    }

    pub fn push(&mut self, row: T) {
        self.store.push(row);
    }

    pub fn truncate(&mut self, len: usize) {
        self.store.truncate(len);
    }

    pub fn reserve(&mut self, additional: usize) {
        self.store.reserve(additional);
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn last(&self) -> Option<&T> {
        self.as_slice().last()
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.store.heap_bytes()
    }
}

impl<T: Pod + Send + Sync> Default for Rows<T> {
    fn default() -> Self {
        Rows {
            store: Box::new(Vec::new()),
        }
    }
}

impl<T: Pod + Send + Sync> Clone for Rows<T> {
    /// A copy on the heap.
    fn clone(&self) -> Self {
        Rows {
            store: Box::new(self.as_slice().to_vec()),
        }
    }
}

impl<T: Pod + Send + Sync + PartialEq> PartialEq for Rows<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Pod + Send + Sync> fmt::Debug for Rows<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Rows({} of {} bytes)",
            self.len(),
            std::mem::size_of::<T>()
        )
    }
}

/// The log positions of [`LogRows`]: runs of consecutive positions, each its first
/// row's index and position, both ascending. Serialised as the list of runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Runs(Vec<Run>);

/// A run of rows whose positions follow one another, from row `row` at position `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Run {
    pub row: u64,
    pub seq: i64,
}

impl Runs {
    /// Records that row `len` (the rows held before it) is at position `seq`, later than
    /// the last.
    fn push(&mut self, len: usize, seq: i64) {
        if self
            .last_seq(len)
            .is_none_or(|last| last.checked_add(1) != Some(seq))
        {
            self.0.push(Run {
                row: len as u64,
                seq,
            });
        }
    }

    /// The position of the last of `len` rows.
    fn last_seq(&self, len: usize) -> Option<i64> {
        let run = self.0.last()?;
        let offset = (len as u64).checked_sub(run.row + 1)?;
        run.seq.checked_add(i64::try_from(offset).ok()?)
    }

    /// The run holding row `index`.
    fn run_of_row(&self, index: usize) -> Option<&Run> {
        let i = self.0.partition_point(|r| r.row <= index as u64);
        self.0.get(i.checked_sub(1)?)
    }

    /// Checks that these runs can describe `len` rows: the first at row 0, rows and
    /// positions ascending, every run within the rows.
    fn check(&self, len: usize) -> Result<(), String> {
        match self.0.first() {
            None if len == 0 => return Ok(()),
            None => return Err(format!("{len} rows and no positions for them")),
            Some(first) if first.row != 0 || len == 0 => {
                return Err(format!("positions start at row {} of {len}", first.row));
            }
            Some(_) => {}
        }
        for pair in self.0.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let after_a = (b.row.checked_sub(a.row))
                .and_then(|rows| i64::try_from(rows).ok())
                .and_then(|rows| a.seq.checked_add(rows));
            if b.row <= a.row || after_a.is_none_or(|least| b.seq < least) {
                return Err(format!(
                    "positions out of order: row {} at {}, then row {} at {}",
                    a.row, a.seq, b.row, b.seq
                ));
            }
        }
        match self.0.last() {
            Some(last) if last.row >= len as u64 => {
                Err(format!("a run starts at row {} of {len}", last.row))
            }
            Some(last) if self.last_seq(len).is_none() => Err(format!(
                "the last run, from position {}, goes past the largest",
                last.seq
            )),
            _ => Ok(()),
        }
    }
}

/// Rows one per log position at most, in log order, kept without their positions (see
/// the module docs): a row is found by its position in O(log runs).
pub struct LogRows<T> {
    rows: Rows<T>,
    runs: Runs,
}

impl<T: Pod + Send + Sync> LogRows<T> {
    /// Empty rows kept in `store`.
    pub fn new_in(store: Box<dyn RowStore<T>>) -> Self {
        LogRows {
            rows: Rows::new_in(store),
            runs: Runs::default(),
        }
    }

    /// Rows read back (see [`Rows::extend_from_bytes`]) at the positions `runs` gives:
    /// refused when the two disagree.
    pub fn from_parts(rows: Rows<T>, runs: Runs) -> Result<Self, String> {
        runs.check(rows.len())?;
        Ok(LogRows { rows, runs })
    }

    /// Adds the row of position `seq`; ignored (false) unless `seq` is later than the
    /// last row's.
    pub fn push(&mut self, seq: i64, row: T) -> bool {
        if self.last_seq().is_some_and(|last| last >= seq) {
            return false;
        }
        self.runs.push(self.rows.len(), seq);
        self.rows.push(row);
        true
    }

    /// The position of the last row.
    pub fn last_seq(&self) -> Option<i64> {
        self.runs.last_seq(self.rows.len())
    }

    /// The index of the row of position `seq`.
    pub fn position(&self, seq: i64) -> Option<usize> {
        let i = self.runs.0.partition_point(|r| r.seq <= seq);
        let run = self.runs.0.get(i.checked_sub(1)?)?;
        let end = self.runs.0.get(i).map_or(self.rows.len() as u64, |r| r.row);
        let index = run
            .row
            .checked_add(u64::try_from(seq.checked_sub(run.seq)?).ok()?)?;
        (index < end).then_some(index as usize)
    }

    /// The row of position `seq`.
    pub fn get(&self, seq: i64) -> Option<&T> {
        self.position(seq).map(|i| &self.as_slice()[i])
    }

    /// The position of row `index` (`None` past the end).
    pub fn seq_at(&self, index: usize) -> Option<i64> {
        if index >= self.rows.len() {
            return None;
        }
        let run = self.runs.run_of_row(index)?;
        Some(run.seq + (index as u64 - run.row) as i64)
    }

    /// Each row with its position, in log order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &T)> + '_ {
        let mut runs = self.runs.0.iter().peekable();
        let mut current = Run { row: 0, seq: 0 };
        self.as_slice().iter().enumerate().map(move |(i, row)| {
            while let Some(next) = runs.next_if(|r| r.row <= i as u64) {
                current = *next;
            }
            (current.seq + (i as u64 - current.row) as i64, row)
        })
    }

    /// Removes the rows of the positions in `doomed` (ascending), keeping the others in
    /// order.
    pub fn remove_keys(&mut self, doomed: &[i64]) {
        let Some(&first) = doomed.first() else { return };
        let start = self.first_from(first);
        let old = std::mem::take(&mut self.runs);
        let mut runs = Runs(
            (old.0.iter())
                .take_while(|r| r.row < start as u64)
                .copied()
                .collect(),
        );
        let mut current = old.run_of_row(start).copied();
        let mut next = old.0.partition_point(|r| r.row <= start as u64);
        let len = self.rows.len();
        let rows = self.rows.as_mut_slice();
        let mut doomed = doomed.iter().peekable();
        let mut kept = start;
        for i in start..len {
            while let Some(run) = old.0.get(next).filter(|r| r.row <= i as u64) {
                current = Some(*run);
                next += 1;
            }
            let Some(run) = current else { break };
            let seq = run.seq + (i as u64 - run.row) as i64;
            while doomed.next_if(|&&d| d < seq).is_some() {}
            if doomed.peek() == Some(&&seq) {
                continue;
            }
            rows.swap(kept, i);
            runs.push(kept, seq);
            kept += 1;
        }
        self.rows.truncate(kept);
        self.runs = runs;
    }

    /// The index of the first row at position `seq` or later (the length if none is).
    fn first_from(&self, seq: i64) -> usize {
        let i = self.runs.0.partition_point(|r| r.seq <= seq);
        let end = self.runs.0.get(i).map_or(self.rows.len() as u64, |r| r.row);
        match i.checked_sub(1).map(|j| self.runs.0[j]) {
            None => 0,
            Some(run) => {
                let offset = seq.checked_sub(run.seq).map_or(u64::MAX, |o| o as u64);
                run.row.saturating_add(offset).min(end) as usize
            }
        }
    }

    pub fn as_slice(&self) -> &[T] {
        self.rows.as_slice()
    }

    /// The rows without their positions (see [`Self::runs`]), e.g. to write as bytes.
    pub fn rows(&self) -> &Rows<T> {
        &self.rows
    }

    /// The rows' positions.
    pub fn runs(&self) -> &Runs {
        &self.runs
    }

    pub fn reserve(&mut self, additional: usize) {
        self.rows.reserve(additional);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes held on the heap: the rows' (nothing when kept in a mapped file) and the
    /// runs'.
    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes() + self.runs.0.capacity() * std::mem::size_of::<Run>()
    }
}

/// Serialised as its positions only: the rows are written apart, as raw rows (see
/// [`LogRows::from_parts`]).
impl<T> serde::Serialize for LogRows<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.runs, s)
    }
}

impl<T: Pod + Send + Sync> Default for LogRows<T> {
    fn default() -> Self {
        LogRows {
            rows: Rows::default(),
            runs: Runs::default(),
        }
    }
}

impl<T: Pod + Send + Sync> Clone for LogRows<T> {
    /// A copy on the heap.
    fn clone(&self) -> Self {
        LogRows {
            rows: self.rows.clone(),
            runs: self.runs.clone(),
        }
    }
}

impl<T: Pod + Send + Sync + PartialEq> PartialEq for LogRows<T> {
    fn eq(&self, other: &Self) -> bool {
        self.runs == other.runs && self.rows == other.rows
    }
}

impl<T: Pod + Send + Sync> fmt::Debug for LogRows<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogRows({:?} in {} runs)", self.rows, self.runs.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_as_bytes_and_removal_keeps_order() {
        let mut rows = Rows::<[i64; 2]>::default();
        for k in [1, 2, 4, 5, 7, 9] {
            rows.push([k, -k]);
        }
        let mut back = Rows::<[i64; 2]>::default();
        back.extend_from_bytes(rows.as_bytes()).expect("whole rows");
        assert_eq!(back, rows);
        // Bytes not aligned for a row are read as well.
        let shifted = [&[0u8][..], rows.as_bytes()].concat();
        let mut unaligned = Rows::<[i64; 2]>::default();
        unaligned
            .extend_from_bytes(&shifted[1..])
            .expect("whole rows");
        assert_eq!(unaligned, rows);
        assert!(
            back.extend_from_bytes(&rows.as_bytes()[1..]).is_err(),
            "a partial row is refused"
        );
        assert_eq!(
            back.len(),
            rows.len(),
            "nothing appended from refused bytes"
        );
    }

    #[test]
    fn log_rows_find_rows_by_position_across_gaps_and_removals() {
        let mut rows = LogRows::<[i64; 2]>::default();
        for k in [1, 2, 4, 5, 7, 9] {
            assert!(rows.push(k, [k, -k]));
        }
        assert!(
            !rows.push(9, [0, 0]),
            "a position not after the last is ignored"
        );
        assert_eq!(rows.runs().0.len(), 4, "{:?}", rows.runs());
        assert_eq!(rows.last_seq(), Some(9));
        for (i, k) in [1, 2, 4, 5, 7, 9].into_iter().enumerate() {
            assert_eq!(rows.position(k), Some(i));
            assert_eq!(rows.seq_at(i), Some(k));
            assert_eq!(rows.get(k), Some(&[k, -k]));
        }
        for missing in [0, 3, 6, 8, 10, i64::MIN, i64::MAX] {
            assert_eq!(rows.position(missing), None, "{missing}");
        }
        let listed: Vec<(i64, [i64; 2])> = rows.iter().map(|(k, r)| (k, *r)).collect();
        assert_eq!(
            listed.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [1, 2, 4, 5, 7, 9]
        );
        assert!(listed.iter().all(|(k, r)| *r == [*k, -*k]));

        // Read back from its parts; parts that disagree are refused.
        let mut bytes = Rows::<[i64; 2]>::default();
        bytes
            .extend_from_bytes(rows.rows().as_bytes())
            .expect("whole rows");
        let back = LogRows::from_parts(bytes.clone(), rows.runs().clone()).expect("parts agree");
        assert_eq!(back, rows);
        assert!(LogRows::from_parts(bytes.clone(), Runs::default()).is_err());
        let mut late = rows.runs().clone();
        late.0.push(Run { row: 6, seq: 20 });
        assert!(
            LogRows::from_parts(bytes.clone(), late).is_err(),
            "a run past the rows"
        );
        let mut unordered = rows.runs().clone();
        unordered.0[1].seq = 1;
        assert!(
            LogRows::from_parts(bytes, unordered).is_err(),
            "positions that go back"
        );

        rows.remove_keys(&[2, 3, 5, 9, 10]);
        assert_eq!(rows.as_slice(), [[1, -1], [4, -4], [7, -7]]);
        assert_eq!(rows.position(7), Some(2));
        assert_eq!(rows.position(5), None);
        assert_eq!(rows.last_seq(), Some(7));
        rows.remove_keys(&[]);
        assert_eq!(rows.len(), 3);
        assert!(rows.push(8, [8, -8]));
        assert_eq!(rows.position(8), Some(3));
        rows.remove_keys(&[1, 4, 7, 8]);
        assert!(rows.is_empty() && rows.last_seq().is_none());
        assert!(rows.push(3, [3, -3]));
        assert_eq!(rows.position(3), Some(0));
    }
}
