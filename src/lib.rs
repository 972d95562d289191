//! The `intake` library target: only the configuration file's types and parsing
//! ([`config`]), so that tools outside the binary (the fuzz targets) can reach them. The
//! command-line program is the binary target (`src/main.rs`).

pub mod config;
