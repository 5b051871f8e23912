//! The operator dashboard (placeholder until the page lands).
pub const PAGE: &str = "<html><body>dashboard</body></html>";
pub const MAP_SVG: &str = include_str!("dashboard/map.svg");
