//! Per-message state indexed by the message number: a dense vector while
//! the numbers are dense (the usual case, a counter), a hash map for numbers
//! far beyond what was seen. Shared by the queue and effects checkers, whose
//! hot loops look a message up once per record.

use rustc_hash::FxHashMap;

/// A message's state as a table slot: a value that means "nothing known".
pub(crate) trait Slot: Clone {
    /// The empty slot.
    const EMPTY: Self;
    /// Whether nothing is known of this message.
    fn is_empty(&self) -> bool;
}

/// Messages by number.
pub(crate) struct MsgTable<S> {
    dense: Vec<S>,
    dense_used: usize,
    sparse: FxHashMap<u64, S>,
}

impl<S> Default for MsgTable<S> {
    fn default() -> Self {
        MsgTable {
            dense: Vec::new(),
            dense_used: 0,
            sparse: FxHashMap::default(),
        }
    }
}

impl<S: Slot> MsgTable<S> {
    /// The slot of `msg`, made if absent.
    #[inline]
    pub(crate) fn get_mut(&mut self, msg: u64) -> &mut S {
        // A message once put in the sparse part stays there.
        if !self.sparse.is_empty() && self.sparse.contains_key(&msg) {
            return self.sparse.get_mut(&msg).expect("just checked");
        }
        if (msg as usize as u64) == msg && (msg as usize) < self.dense.len() {
            let s = &mut self.dense[msg as usize];
            if s.is_empty() {
                self.dense_used += 1;
            }
            return s;
        }
        // Grow the dense part when that wastes at most about half of it.
        let limit = (self.dense_used as u64).saturating_mul(2) + (1 << 20);
        if msg < limit {
            let new_len = (msg as usize + 1).max(self.dense.len() * 3 / 2);
            self.dense.resize(new_len, S::EMPTY);
            self.dense_used += 1;
            return &mut self.dense[msg as usize];
        }
        self.sparse.entry(msg).or_insert(S::EMPTY)
    }

    /// The slot of `msg`, if anything is known of it.
    pub(crate) fn get(&self, msg: u64) -> Option<&S> {
        if let Some(s) = self.sparse.get(&msg) {
            return Some(s);
        }
        if (msg as usize as u64) == msg && (msg as usize) < self.dense.len() {
            let s = &self.dense[msg as usize];
            return (!s.is_empty()).then_some(s);
        }
        None
    }

    /// Every message something is known of, with its slot (dense part in
    /// number order, then the sparse part in no order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &S)> {
        self.dense
            .iter()
            .enumerate()
            .map(|(m, s)| (m as u64, s))
            .chain(self.sparse.iter().map(|(m, s)| (*m, s)))
            .filter(|(_, s)| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Count(u32);
    impl Slot for Count {
        const EMPTY: Self = Count(0);
        fn is_empty(&self) -> bool {
            self.0 == 0
        }
    }

    #[test]
    fn dense_sparse_and_a_sparse_entry_overtaken_by_the_dense_part() {
        let mut t = MsgTable::<Count>::default();
        t.get_mut(3).0 += 1;
        // Far beyond: sparse.
        let far = 10_000_000;
        t.get_mut(far).0 += 1;
        // The dense part grows past `far`'s neighbourhood only when dense
        // enough; `far` stays where it was put, and is found there.
        for m in 0..2_000_000 {
            t.get_mut(m).0 += 1;
        }
        t.get_mut(far).0 += 1;
        assert_eq!(t.get(far), Some(&Count(2)));
        assert_eq!(t.get(3), Some(&Count(2)));
        assert_eq!(t.get(far + 1), None);
        assert_eq!(t.iter().filter(|(m, _)| *m == far).count(), 1);
        assert_eq!(t.iter().count(), 2_000_001);
    }
}
