//! splitbrain-checkers (being built; see the crate description).
