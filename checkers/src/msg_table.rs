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

    /// The slot of `msg` to change, if anything is known of it.
    pub(crate) fn get_known_mut(&mut self, msg: u64) -> Option<&mut S> {
        if !self.sparse.is_empty() && self.sparse.contains_key(&msg) {
            return self.sparse.get_mut(&msg);
        }
        if (msg as usize as u64) == msg && (msg as usize) < self.dense.len() {
            let s = &mut self.dense[msg as usize];
            return (!s.is_empty()).then_some(s);
        }
        None
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

/// A slot that knows the log (interned key) its message belongs to.
pub(crate) trait KeyedSlot: Slot {
    /// The log, or [`NO_KEY`] while none is known.
    fn key(&self) -> u32;
    /// Sets the log.
    fn set_key(&mut self, key: u32);
}

/// No log known yet.
pub(crate) const NO_KEY: u32 = u32::MAX;

/// Messages by their identity `(log, msg)`. Fast path: the first log that
/// names a message owns its slot in a [`MsgTable`] indexed by the message
/// alone, so histories whose messages are unique across logs (splitbrain's
/// own) cost one vector index per lookup, as before. The same number in
/// another log (foreign histories number each log apart) gets a slot of its
/// own in a hash map by `(log, msg)`.
pub(crate) struct KeyedMsgTable<S> {
    first: MsgTable<S>,
    others: FxHashMap<(u32, u64), S>,
}

impl<S> Default for KeyedMsgTable<S> {
    fn default() -> Self {
        KeyedMsgTable {
            first: MsgTable::default(),
            others: FxHashMap::default(),
        }
    }
}

impl<S: KeyedSlot> KeyedMsgTable<S> {
    /// The slot of message `msg` of log `key`, made if absent.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: u32, msg: u64) -> &mut S {
        let s = self.first.get_mut(msg);
        if s.key() == key {
            return s;
        }
        if s.key() == NO_KEY {
            s.set_key(key);
            return s;
        }
        self.others.entry((key, msg)).or_insert_with(|| {
            let mut e = S::EMPTY;
            e.set_key(key);
            e
        })
    }

    /// The slot of message `msg` of log `key`, if anything is known of it.
    pub(crate) fn get(&self, key: u32, msg: u64) -> Option<&S> {
        match self.first.get(msg) {
            Some(s) if s.key() == key => Some(s),
            Some(_) => self.others.get(&(key, msg)),
            None => None,
        }
    }

    /// The slot of the first log that named `msg`, if any: what splitbrain's
    /// own format (one log per message) compares a new log against.
    pub(crate) fn first_of(&self, msg: u64) -> Option<&S> {
        self.first.get(msg)
    }

    /// [`Self::first_of`], to change.
    pub(crate) fn first_of_mut(&mut self, msg: u64) -> Option<&mut S> {
        self.first.get_known_mut(msg)
    }

    /// Every message something is known of, with its slot (first slots in
    /// number order, then the others in no order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &S)> {
        self.first
            .iter()
            .chain(self.others.iter().map(|((_, m), s)| (*m, s)))
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

    #[derive(Clone, Debug, PartialEq)]
    struct Keyed(u32, u32);
    impl Slot for Keyed {
        const EMPTY: Self = Keyed(NO_KEY, 0);
        fn is_empty(&self) -> bool {
            self.0 == NO_KEY
        }
    }
    impl KeyedSlot for Keyed {
        fn key(&self) -> u32 {
            self.0
        }
        fn set_key(&mut self, key: u32) {
            self.0 = key;
        }
    }

    #[test]
    fn one_number_in_two_logs_is_two_messages() {
        let mut t = KeyedMsgTable::<Keyed>::default();
        t.get_mut(0, 5).1 += 1;
        t.get_mut(1, 5).1 += 10;
        t.get_mut(0, 5).1 += 1;
        assert_eq!(t.get(0, 5), Some(&Keyed(0, 2)));
        assert_eq!(t.get(1, 5), Some(&Keyed(1, 10)));
        assert_eq!(t.get(2, 5), None);
        assert_eq!(t.first_of(5), Some(&Keyed(0, 2)));
        assert_eq!(t.iter().count(), 2);
    }
}
