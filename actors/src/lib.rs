//! `actors`: what happens in dfm.
//!
//! The pure core (scoring, eligibility, the event applier and the entitlement
//! state machine) takes `(state, input, now)` and returns the new state and the
//! commands to run; it touches no actix, sled, clock or network. Around it run the
//! actors: one per active family, the dispatcher and directory that feed them from
//! the durable log, the notifier (SMS) and the bank gateway.

pub mod apply;
pub mod backoff;
pub mod bank;
pub mod clock;
pub mod dispatcher;
pub mod durability;
pub mod eligibility;
pub mod entitlement;
pub mod family;
pub mod inbox;
pub mod metrics;
pub mod notifier;
pub mod outbox;
pub mod reply;
pub mod rules;
pub mod scoring;
pub mod texts;
pub mod timers;
pub mod whatif;
