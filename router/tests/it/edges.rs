//! Hardened service edges: what the router does when a provider or its own database misbehaves.

mod blocking_store;
mod corrupt_database;
mod held_lock;
mod hung_provider;
