//! Hash tables that give their room back. A Rust hash table keeps its slots when entries go:
//! after 10,000 connections are deleted, the operator's tables would hold room for 10,000
//! until it restarts. After a removal, [`GiveBack::give_back`] shrinks a table left less than
//! a quarter full to twice its entries, so each shrink is paid for by the removals before it.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

/// Below this many slots a table keeps its room: it is too small to matter.
const KEPT_SLOTS: usize = 64;

/// Whether a table with `len` entries in `capacity` slots should shrink.
fn sparse(len: usize, capacity: usize) -> bool {
    capacity > KEPT_SLOTS && len.saturating_mul(4) < capacity
}

/// A table that can give back its room.
pub trait GiveBack {
    /// Call after removing entries: shrinks the table when it is mostly empty.
    fn give_back(&mut self);
}

impl<K: Eq + Hash, V, S: BuildHasher> GiveBack for HashMap<K, V, S> {
    fn give_back(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len() * 2);
        }
    }
}

impl<T: Eq + Hash, S: BuildHasher> GiveBack for HashSet<T, S> {
    fn give_back(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_emptied_by_removals_gives_its_room_back() {
        let mut table: HashMap<usize, [u8; 64]> = (0..10_000).map(|i| (i, [0; 64])).collect();
        let full = table.capacity();
        for i in 0..10_000 {
            table.remove(&i);
            table.give_back();
        }
        assert!(
            table.capacity() <= KEPT_SLOTS,
            "{} of {full} slots kept",
            table.capacity()
        );
        // Half gone: the room stays, a table that shrinks on every removal would cost more.
        let mut half: HashSet<usize> = (0..1_000).collect();
        half.retain(|i| i % 2 == 0);
        half.give_back();
        assert!(half.capacity() >= 1_000, "{}", half.capacity());
        // A few left of many: room for twice them.
        half.retain(|i| *i < 20);
        half.give_back();
        assert!(
            half.capacity() >= 10 && half.capacity() <= KEPT_SLOTS,
            "{}",
            half.capacity()
        );
    }
}
