//! The operator's dashboard, served by the admin port: `GET /` answers [`PAGE`] and
//! `GET /map.svg` answers [`MAP_SVG`].
//!
//! This module owns the two static assets and nothing else. The page is one self-contained
//! HTML file (inline CSS and vanilla JS, no external resources) that reads the same admin API
//! every other client uses, with the bearer token the operator pastes into it: `/v1/stats`
//! every 5 seconds, `/v1/families?level=…` for a short list and `/v1/families/{id}` for one
//! family's record. The server gives the page no extra powers: a viewer's token sees aggregates
//! and masked lists, and gets the same 403 for a family record that it gets from any client.
//!
//! The map is a schematic tiling of Kazakhstan's 20 ISO 3166-2:KZ units (17 regions and the
//! cities Astana, Almaty and Shymkent): one `<path id="KZ-xx">` each, neighbours sharing
//! borders, roughly where they lie. The page inlines it and shades each unit by its share of
//! families at levels D and E. It is not cartographically exact.

/// The dashboard page (`GET /` on the admin port).
pub const PAGE: &str = include_str!("dashboard/index.html");

/// The schematic region map the page inlines (`GET /map.svg` on the admin port).
pub const MAP_SVG: &str = include_str!("dashboard/map.svg");

#[cfg(test)]
mod tests {
    use super::{MAP_SVG, PAGE};

    /// ISO 3166-2:KZ, as in DOMAIN.md: 17 regions and 3 cities of republican significance.
    const CODES: [&str; 20] = [
        "KZ-10", "KZ-11", "KZ-15", "KZ-19", "KZ-23", "KZ-27", "KZ-31", "KZ-33", "KZ-35", "KZ-39",
        "KZ-43", "KZ-47", "KZ-55", "KZ-59", "KZ-61", "KZ-62", "KZ-63", "KZ-71", "KZ-75", "KZ-79",
    ];

    #[test]
    fn the_codes_are_the_regions_the_store_knows() {
        let mut known: Vec<&str> = storage::ids::Region::ALL.iter().map(|r| r.code()).collect();
        known.sort_unstable();
        assert_eq!(known, CODES);
    }

    #[test]
    fn page_names_every_region() {
        for code in CODES {
            assert!(
                PAGE.contains(&format!("\"{code}\"")),
                "the page does not name {code}"
            );
        }
    }

    #[test]
    fn page_has_the_ids_browser_tests_rely_on() {
        let ids = [
            "token",
            "status",
            "updated-at",
            "families-total",
            "citizens-total",
            "paid-total",
            "level-A",
            "level-B",
            "level-C",
            "level-D",
            "level-E",
            "map",
            "pipeline",
            "lookup-input",
            "lookup-button",
            "lookup-result",
        ];
        for id in ids {
            let attribute = format!("id=\"{id}\"");
            assert_eq!(
                PAGE.matches(&attribute).count(),
                1,
                "the page needs exactly one {attribute}"
            );
        }
        assert!(
            PAGE.contains("dataset.loaded = state"),
            "the page reports loading in body[data-loaded]"
        );
    }

    #[test]
    fn page_loads_nothing_from_elsewhere() {
        assert!(
            !PAGE.contains("://"),
            "the page must not reference another origin"
        );
        assert!(!PAGE.contains("@import"));
        assert!(PAGE.trim_start().starts_with("<!doctype html>"));
        assert!(PAGE.trim_end().ends_with("</html>"));
    }

    #[test]
    fn map_has_one_titled_shape_per_region() {
        for code in CODES {
            let attribute = format!("id=\"{code}\"");
            assert_eq!(
                MAP_SVG.matches(&attribute).count(),
                1,
                "the map needs exactly one {attribute}"
            );
            let at = MAP_SVG.find(&attribute).unwrap();
            let open = MAP_SVG[..at].rfind('<').unwrap();
            let tag = &MAP_SVG[open..at];
            assert!(
                tag.starts_with("<path ") || tag.starts_with("<polygon "),
                "{code} is not a path or polygon: {tag}"
            );
            let end = open
                + MAP_SVG[open..]
                    .find("</path>")
                    .expect("a region path has a body");
            assert!(
                MAP_SVG[open..end].contains("<title>"),
                "{code} has no <title>"
            );
        }
    }

    #[test]
    fn map_is_well_formed_and_self_contained() {
        assert!(MAP_SVG.trim_start().starts_with("<svg "));
        assert!(MAP_SVG.trim_end().ends_with("</svg>"));
        assert!(MAP_SVG.contains("viewBox=\"0 0 1000 560\""));
        assert_eq!(
            MAP_SVG.matches("://").count(),
            MAP_SVG.matches("http://www.w3.org/2000/svg").count(),
            "the map references nothing but its namespace"
        );
        // Every element opened is closed, in order.
        let mut open: Vec<&str> = Vec::new();
        let mut rest = MAP_SVG;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>').expect("an unterminated tag");
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    open.pop(),
                    Some(name.trim()),
                    "</{name}> closes the wrong element"
                );
            } else if !tag.ends_with('/') && !tag.starts_with('!') && !tag.starts_with('?') {
                open.push(tag.split_whitespace().next().unwrap_or(tag));
            }
        }
        assert!(open.is_empty(), "unclosed elements: {open:?}");
    }
}
