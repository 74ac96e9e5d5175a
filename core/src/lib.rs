//! Core of splitbrain: the history model, SSH control of nodes and the cluster
//! model that every other crate builds on.
#![warn(missing_docs)]

pub mod cluster;
pub mod control;
pub mod db;
pub mod firewall;
pub mod history;
pub mod slug;
