//! The oid → data record position map that FileStorage keeps (`fsIndex`),
//! and its `.index` file format.
//!
//! The map has ZODB's shape so that saving it gives the same bytes: oids
//! are split into a 6-byte prefix and a 2-byte suffix; each prefix owns a
//! bucket of (suffix, 48-bit position) pairs sorted by suffix. A bucket is a
//! single `Vec<u64>` of `suffix << 48 | pos`, which sorts by suffix and costs
//! 8 bytes per object, as ZODB's C `fsBucket` does.

mod pickle;

pub use pickle::{
    IndexError, load, load_file, load_from, peek_pos, peek_pos_file, peek_pos_from, save, write_to,
};

use std::collections::BTreeMap;

/// Largest position an index entry can hold (ZODB keeps the low 48 bits).
pub const MAX_POS: u64 = (1 << 48) - 1;

/// An oid → position map with fsIndex's prefix/bucket structure.
///
/// Invariant: every bucket is sorted by suffix with no duplicate suffix, and
/// every position is ≤ [`MAX_POS`]. Empty buckets can exist only when
/// loaded from a file that had them; they are saved back unchanged, as ZODB
/// does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    buckets: BTreeMap<[u8; 6], Vec<u64>>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position recorded for `oid`, if any.
    pub fn get(&self, oid: u64) -> Option<u64> {
        let (prefix, suffix) = split(oid);
        let bucket = self.buckets.get(&prefix)?;
        let i = bucket.partition_point(|e| (e >> 48) < u64::from(suffix));
        bucket
            .get(i)
            .filter(|e| (*e >> 48) == u64::from(suffix))
            .map(|e| e & MAX_POS)
    }

    /// Records `pos` for `oid`, replacing an earlier position.
    ///
    /// # Panics
    /// If `pos` exceeds [`MAX_POS`]; callers check this first (a 256 TiB
    /// Data.fs is out of any index's reach).
    pub fn insert(&mut self, oid: u64, pos: u64) {
        assert!(pos <= MAX_POS, "index position {pos} exceeds 48 bits");
        let (prefix, suffix) = split(oid);
        let bucket = self.buckets.entry(prefix).or_default();
        let entry = u64::from(suffix) << 48 | pos;
        // New oids are allocated in increasing order, so appending is the
        // common case.
        match bucket.last() {
            Some(last) if (last >> 48) < u64::from(suffix) => bucket.push(entry),
            None => bucket.push(entry),
            Some(_) => {
                let i = bucket.partition_point(|e| (e >> 48) < u64::from(suffix));
                if bucket
                    .get(i)
                    .is_some_and(|e| (e >> 48) == u64::from(suffix))
                {
                    bucket[i] = entry;
                } else {
                    bucket.insert(i, entry);
                }
            }
        }
    }

    /// Number of objects in the index.
    pub fn len(&self) -> usize {
        self.buckets.values().map(Vec::len).sum()
    }

    /// True if and only if no object is recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.values().all(Vec::is_empty)
    }

    /// Every (oid, position), in ascending oid order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets.iter().flat_map(|(prefix, bucket)| {
            let mut oid = [0u8; 8];
            oid[..6].copy_from_slice(prefix);
            bucket.iter().map(move |e| {
                let [hi, lo] = ((e >> 48) as u16).to_be_bytes();
                let mut oid = oid;
                oid[6] = hi;
                oid[7] = lo;
                (u64::from_be_bytes(oid), e & MAX_POS)
            })
        })
    }

    /// The first oid (ascending) whose position differs between `self`
    /// and `other`, with its position in each (`None` where it is absent);
    /// `None` if both hold the same entries.
    pub fn first_difference(&self, other: &Index) -> Option<(u64, Option<u64>, Option<u64>)> {
        let (mut a, mut b) = (self.iter().peekable(), other.iter().peekable());
        loop {
            match (a.peek().copied(), b.peek().copied()) {
                (None, None) => return None,
                (Some((oid, p)), None) => return Some((oid, Some(p), None)),
                (None, Some((oid, q))) => return Some((oid, None, Some(q))),
                (Some((x, p)), Some((y, q))) => {
                    if x < y {
                        return Some((x, Some(p), None));
                    }
                    if y < x {
                        return Some((y, None, Some(q)));
                    }
                    if p != q {
                        return Some((x, Some(p), Some(q)));
                    }
                    a.next();
                    b.next();
                }
            }
        }
    }

    /// Buckets in ascending prefix order, as `(prefix, entries)`.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (&[u8; 6], &[u64])> {
        self.buckets.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// Inserts a whole bucket read from a file; `entries` must already be
    /// sorted by suffix. A later bucket for the same prefix replaces it, as
    /// in fsIndex.load.
    pub(crate) fn put_bucket(&mut self, prefix: [u8; 6], entries: Vec<u64>) {
        self.buckets.insert(prefix, entries);
    }
}

fn split(oid: u64) -> ([u8; 6], u16) {
    let b = oid.to_be_bytes();
    (
        b[..6].try_into().expect("6 bytes"),
        u16::from_be_bytes([b[6], b[7]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_positions_replace_earlier_ones() {
        let mut ix = Index::new();
        ix.insert(1, 100);
        ix.insert(1, 200);
        assert_eq!(ix.get(1), Some(200));
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn the_first_difference_is_the_lowest_oid_that_differs() {
        let mut a = Index::new();
        let mut b = Index::new();
        for oid in [1u64, 2, 0x1_0003] {
            a.insert(oid, oid + 100);
            b.insert(oid, oid + 100);
        }
        assert_eq!(a.first_difference(&b), None);
        b.insert(0x1_0003, 7);
        b.insert(0x2_0000, 9);
        assert_eq!(
            a.first_difference(&b),
            Some((0x1_0003, Some(0x1_0003 + 100), Some(7)))
        );
        a.insert(0, 5);
        assert_eq!(a.first_difference(&b), Some((0, Some(5), None)));
        assert_eq!(b.first_difference(&a), Some((0, None, Some(5))));
    }

    #[test]
    fn out_of_order_inserts_keep_buckets_sorted() {
        let mut ix = Index::new();
        for oid in [5u64, 1, 3, 0x1_0000, 2] {
            ix.insert(oid, oid + 10);
        }
        let all: Vec<_> = ix
            .buckets()
            .flat_map(|(_, b)| b.iter().map(|e| e >> 48))
            .collect();
        assert_eq!(all, vec![1, 2, 3, 5, 0]);
        let oids: Vec<u64> = ix.iter().map(|(oid, _)| oid).collect();
        assert_eq!(oids, vec![1, 2, 3, 5, 0x1_0000]);
        assert_eq!(ix.get(0x1_0000), Some(0x1_0000 + 10));
        assert_eq!(ix.get(4), None);
    }
}
