//! splitbrain-workloads (being built; see the crate description).
