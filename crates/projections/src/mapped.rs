//! Per-event rows in files mapped into memory (a [`RowStore`] for the core's [`Rows`]).
//!
//! The interaction table and the identity graph's event links grow with every event.
//! On the heap they would make a node's memory grow with its log for ever; here they
//! live in unnamed files of the data folder (gone when the process ends: they are
//! rebuilt at start, from a snapshot or the log), mapped into memory. Reading them costs
//! what reading the heap does while their pages are resident; the kernel writes dirty
//! pages back and drops clean ones when memory is short, so the node's anonymous memory
//! stops growing with the log (page cache, like the store's, takes the rest).
//!
//! [`Rows`]: unavoce_core::rows::Rows

use std::fs::File;
use std::path::{Path, PathBuf};

use bytemuck::Pod;
use memmap2::MmapMut;
use unavoce_core::redact::Redacted;
use unavoce_core::rows::RowStore;

/// Rows of `T` in a mapped, unnamed file. A full file is grown by a quarter (its new
/// blocks reserved on disk first, so that writing to the mapping can never fault for
/// want of space) and mapped again. When the disk has no room for that, the rows move to
/// the heap and stay there: the node goes on, with the memory it would have had anyway.
pub struct MappedRows<T> {
    backing: Backing<T>,
    len: usize,
}

enum Backing<T> {
    Mapped {
        file: File,
        map: Option<MmapMut>,
        /// Where the file is, for messages.
        folder: PathBuf,
    },
    Heap(Vec<T>),
}

/// Rows a new file is made for at first.
const FIRST_ROWS: usize = 1 << 16;

impl<T: Pod + Send + Sync> MappedRows<T> {
    /// An empty store in a new unnamed file in `folder`.
    pub fn new_in(folder: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(folder)?;
        Ok(MappedRows {
            backing: Backing::Mapped {
                file: tempfile::tempfile_in(folder)?,
                map: None,
                folder: folder.to_path_buf(),
            },
            len: 0,
        })
    }

    /// Whether the rows are still in their file (not moved to the heap).
    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mapped { .. })
    }

    fn capacity(&self) -> usize {
        match &self.backing {
            Backing::Mapped { map, .. } => map
                .as_ref()
                .map_or(0, |m| m.len() / std::mem::size_of::<T>()),
            Backing::Heap(rows) => rows.capacity(),
        }
    }

    /// Makes room for at least `rows` rows.
    fn grow_to(&mut self, rows: usize) {
        let Backing::Mapped { file, map, folder } = &mut self.backing else {
            if let Backing::Heap(heap) = &mut self.backing {
                heap.reserve(rows.saturating_sub(heap.len()));
            }
            return;
        };
        let capacity = map.as_ref().map_or(0, |m| m.len()) / std::mem::size_of::<T>();
        let rows = rows.max(capacity + capacity / 4).max(FIRST_ROWS);
        let (from, to) = (
            capacity * std::mem::size_of::<T>(),
            rows * std::mem::size_of::<T>(),
        );
        let grown = reserve(file, from, to).and_then(|()| {
            *map = None;
            // SAFETY: the file is unnamed and ours alone (no other process or mapping
            // can change it under us), and the old map is dropped before this one.
            unsafe { MmapMut::map_mut(&*file) }
        });
        match grown {
            Ok(grown) => *map = Some(grown),
            Err(e) => {
                tracing::warn!(
                    folder = %folder.display(),
                    bytes = to,
                    error = %Redacted(&e),
                    "no room to grow a projection's row file; its rows move to memory"
                );
                let mut heap = Vec::with_capacity(rows);
                if let Some(old) = map.as_deref() {
                    let old: &[T] = bytemuck::cast_slice(old);
                    heap.extend_from_slice(&old[..self.len]);
                }
                self.backing = Backing::Heap(heap);
            }
        }
    }

    fn rows(&self) -> &[T] {
        match &self.backing {
            Backing::Mapped { map, .. } => map
                .as_deref()
                .map_or(&[], |bytes| bytemuck::cast_slice(bytes)),
            Backing::Heap(rows) => rows,
        }
    }

    fn rows_mut(&mut self) -> &mut [T] {
        match &mut self.backing {
            Backing::Mapped { map, .. } => map
                .as_deref_mut()
                .map_or(&mut [], |bytes| bytemuck::cast_slice_mut(bytes)),
            Backing::Heap(rows) => rows,
        }
    }
}

/// Reserves the file's bytes `from..to` on disk (`posix_fallocate`), growing it.
fn reserve(file: &File, from: usize, to: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off_t::try_from(from),
        libc::off_t::try_from(to - from),
    ) else {
        return Err(std::io::Error::other("row file too large"));
    };
    // SAFETY: a plain system call on a descriptor we own.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) } {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

impl<T: Pod + Send + Sync> RowStore<T> for MappedRows<T> {
    fn as_slice(&self) -> &[T] {
        &self.rows()[..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        let len = self.len;
        &mut self.rows_mut()[..len]
    }

    fn push(&mut self, row: T) {
        if let Backing::Heap(rows) = &mut self.backing {
            rows.truncate(self.len);
            rows.push(row);
            self.len += 1;
            return;
        }
        if self.len == self.capacity() {
            self.grow_to(self.len + 1);
            if !self.is_mapped() {
                return self.push(row);
            }
        }
        let len = self.len;
        self.rows_mut()[len] = row;
        self.len += 1;
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        if let Backing::Heap(rows) = &mut self.backing {
            rows.truncate(self.len);
        }
    }

    fn reserve(&mut self, additional: usize) {
        if self.len + additional > self.capacity() {
            self.grow_to(self.len + additional);
        }
    }

    fn heap_bytes(&self) -> usize {
        match &self.backing {
            Backing::Mapped { .. } => 0,
            Backing::Heap(rows) => rows.capacity() * std::mem::size_of::<T>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use unavoce_core::rows::LogRows;

    use super::*;

    #[test]
    fn rows_survive_the_file_growing_and_leave_no_file_behind() {
        let folder = tempfile::tempdir().expect("folder");
        let store = MappedRows::<[i64; 2]>::new_in(folder.path()).expect("store");
        let mut rows = LogRows::new_in(Box::new(store));
        let n = 3 * FIRST_ROWS as i64 + 5;
        for k in 1..=n {
            rows.push(k, [k, k * 7]);
        }
        assert_eq!(rows.len(), n as usize);
        assert!(rows.as_slice().iter().all(|r| r[1] == r[0] * 7));
        rows.remove_keys(&[2, 4]);
        assert_eq!(rows.as_slice()[..3], [[1, 7], [3, 21], [5, 35]]);
        assert_eq!(rows.position(5), Some(2));
        // The rows are in the file; only the positions' few runs are on the heap.
        assert_eq!(rows.rows().heap_bytes(), 0);
        let files = std::fs::read_dir(folder.path()).expect("list").count();
        assert_eq!(files, 0, "the row file has no name");
    }
}
