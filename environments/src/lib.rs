//! splitbrain-environments (being built; see the crate description).
