//! The operator dashboard in a real browser: Debian's headless Chromium loads
//! the page from the running binary, runs its script against the admin API,
//! and we assert on the DOM it ends with and on the screenshot it takes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::feeds::{wait_family, world};
use crate::support::*;

fn chromium() -> &'static str {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("Debian's chromium is required for the dashboard test: apt-get install chromium (.ci/run does)");
}

fn headless(profile: &Path, extra: &[&str], url: &str) -> std::process::Output {
    let mut command = Command::new(chromium());
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--virtual-time-budget=15000",
        "--window-size=1400,1600",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.args(extra).arg(url);
    command.output().expect("chromium runs")
}

#[actix_rt::test]
async fn the_dashboard_shows_counts_map_and_pipeline_in_a_real_browser() {
    let world = world().await;
    let (events, _, _) = large_family("F-DASH", 4, 95, "+77015550095");
    send_all(&world.server, &events).await;
    wait_family(&world.server, "F-DASH", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 6)
    })
    .await;
    applied(&world.server).await;
    let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
    let level = ["A", "B", "C", "D", "E"]
        .into_iter()
        .find(|l| stats["by_level"][l] == 1)
        .expect("one family has a level");
    let url = format!("{}/#token={VIEWER}", world.server.admin);

    let profile = world.dir.path().join("chromium-dom");
    let dom = headless(&profile, &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page did not load its stats:\n{}",
        &dom[..dom.len().min(3000)]
    );
    let text_of = |id: &str| -> String {
        let marker = format!("id=\"{id}\"");
        let at = dom.find(&marker).unwrap_or_else(|| panic!("#{id} missing"));
        let open = at + dom[at..].find('>').expect("tag closes") + 1;
        let close = open + dom[open..].find('<').expect("text ends");
        dom[open..close].trim().to_owned()
    };
    assert_eq!(text_of("families-total"), "1");
    assert_eq!(text_of("citizens-total"), "6");
    assert_eq!(text_of(&format!("level-{level}")), "1");
    assert!(
        dom.contains("id=\"KZ-35\""),
        "the map of the regions is inlined"
    );
    for code in ["KZ-71", "KZ-75", "KZ-79", "KZ-10", "KZ-62", "KZ-63"] {
        assert!(
            dom.contains(&format!("id=\"{code}\"")),
            "{code} missing from the map"
        );
    }
    assert!(dom.contains("id=\"pipeline\""));
    assert!(dom.contains("id=\"updated-at\""));

    let shot = world.dir.path().join("dashboard.png");
    let profile = world.dir.path().join("chromium-shot");
    let output = headless(
        &profile,
        &[&format!("--screenshot={}", shot.display())],
        &url,
    );
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // A blank page compresses to almost nothing; a drawn dashboard does not.
    assert!(
        png.len() > 40_000,
        "the screenshot looks empty ({} bytes)",
        png.len()
    );
    if let Ok(dir) = std::env::var("DFM_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&shot, Path::new(&dir).join("dashboard.png"));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}
