//! splitbrain-environments: where splitbrain's nodes come from (netns, ssh,
//! docker) and how ZooKeeper and Kafka run on them.
#![warn(missing_docs)]

pub mod docker;
