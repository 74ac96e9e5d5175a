//! splitbrain-nemeses (being built; see the crate description).
