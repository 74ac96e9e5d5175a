//! splitbrain-core (being built; see the crate description).
