//! dfm's integration tests: one binary, a module per area. Servers bind
//! 127.0.0.1:0; the gateways are real HTTP servers started here (the project's
//! simulators), never a mock of the HTTP client.

mod support;

mod admin;
mod crash;
mod dashboard;
mod feeds;
mod load;
mod payout;
mod tls;
mod whatif;
