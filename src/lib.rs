//! `dfm`, the service shell: command line, configuration, HTTP, wiring, the
//! synthetic population, the built-in gateway simulators and the demo. The
//! decisions live in `actors`, the records in `storage`.

pub mod bench;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod generate;
pub mod http;
pub mod load;
pub mod service;
pub mod simulators;
pub mod tls;
