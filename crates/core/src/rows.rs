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

    /// Removes the rows whose keys (ascending, as the rows are) are in `doomed`
    /// (ascending), keeping the others in order.
    pub fn remove_keys(&mut self, doomed: &[i64], key: impl Fn(&T) -> i64) {
        let Some(&first) = doomed.first() else { return };
        let rows = self.as_mut_slice();
        let start = rows.partition_point(|r| key(r) < first);
        let mut doomed = doomed.iter().peekable();
        let mut kept = start;
        for i in start..rows.len() {
            let k = key(&rows[i]);
            while doomed.next_if(|&&d| d < k).is_some() {}
            if doomed.peek() == Some(&&k) {
                continue;
            }
            rows.swap(kept, i);
            kept += 1;
        }
        self.truncate(kept);
    }

    /// The index of the row whose key (ascending, as the rows are) is `key`; keys are
    /// log positions, dense unless a transaction was rolled back, so the direct slot is
    /// tried first.
    pub fn position(&self, key: i64, key_of: impl Fn(&T) -> i64) -> Option<usize> {
        let rows = self.as_slice();
        let first = key_of(rows.first()?);
        let guess = usize::try_from(key - first).ok()?;
        if rows.get(guess).is_some_and(|r| key_of(r) == key) {
            return Some(guess);
        }
        rows.binary_search_by_key(&key, key_of).ok()
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
        rows.remove_keys(&[2, 3, 5, 9, 10], |r| r[0]);
        assert_eq!(rows.as_slice(), [[1, -1], [4, -4], [7, -7]]);
        assert_eq!(rows.position(7, |r| r[0]), Some(2));
        assert_eq!(rows.position(5, |r| r[0]), None);
        rows.remove_keys(&[], |r| r[0]);
        assert_eq!(rows.len(), 3);
    }
}
