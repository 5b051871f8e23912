//! Admin tests (below).
