//! What-if and a rules change: the simulation has no side effects; the reload
//! re-evaluates only the families whose outcome changes, through the normal
//! consent machinery.

use std::time::Duration;

use serde_json::json;

use crate::feeds::{wait_family, world_edited, World};
use crate::support::*;

const PATCH: &str = "version = \"2026.whatif\"\n[[program]]\ncode = \"large_family\"\nmin_children = 3\namounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]\n";

async fn two_families() -> (World, std::path::PathBuf) {
    let world = world_edited(
        Default::default(),
        Default::default(),
        ("72h", "48h"),
        "",
        |text, dir| {
            // A catalogue of its own, which the test changes.
            let catalogue = dir.join("programs.toml");
            std::fs::copy(catalogue_path(), &catalogue).unwrap();
            text.replace(
                &catalogue_path().display().to_string(),
                &catalogue.display().to_string(),
            )
        },
    )
    .await;
    let (four, _, _) = large_family("F-FOUR", 4, 301, "+77015550301");
    let (three, _, _) = large_family("F-THREE", 3, 401, "+77015550401");
    send_all(&world.server, &four).await;
    send_all(&world.server, &three).await;
    wait_family(&world.server, "F-THREE", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 5)
    })
    .await;
    wait_family(&world.server, "F-FOUR", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 6)
    })
    .await;
    applied(&world.server).await;
    let catalogue = world.dir.path().join("programs.toml");
    (world, catalogue)
}

fn catalogue_path() -> std::path::PathBuf {
    catalogue()
}

#[actix_rt::test]
async fn whatif_counts_gains_and_costs_without_side_effects() {
    let (world, _) = two_families().await;
    let (_, stats_before) = get(&world.server, "/v1/stats", VIEWER).await;
    let sms_before = world.sms.messages().len();
    let (status, answer) = post(
        &world.server,
        "/v1/whatif",
        OPERATOR,
        json!({"patch_toml": PATCH}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["families"], 2);
    let large = &answer["programs"]["large_family"];
    assert_eq!(large["eligible_now"], 1, "{answer}");
    assert_eq!(large["eligible_whatif"], 2, "{answer}");
    assert_eq!(
        (large["gain"].as_u64(), large["lose"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(large["sample_gain"], json!(["F-THREE"]));
    // 12 MCI for three children (51,900.00) plus 16.03 MCI for four (69,329.75).
    assert_eq!(large["monthly_cost_now"], "69329.75");
    assert_eq!(large["monthly_cost_whatif"], "121229.75");
    assert_eq!(large["by_region_whatif"]["KZ-35"]["eligible"], 2);
    // Nothing changed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, stats_after) = get(&world.server, "/v1/stats", VIEWER).await;
    assert_eq!(stats_before, stats_after);
    assert_eq!(world.sms.messages().len(), sms_before);
    let three = wait_family(&world.server, "F-THREE", |_| true).await;
    assert!(three["entitlements"].as_array().unwrap().is_empty());
    // Bad proposals are refused with the reason; viewers may not simulate.
    let (status, answer) = post(
        &world.server,
        "/v1/whatif",
        OPERATOR,
        json!({"patch_toml": "[[program]]\ncode = \"large_family\"\nmin_children = \"many\"\n"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("min_children"),
        "{answer}"
    );
    assert_eq!(
        post(
            &world.server,
            "/v1/whatif",
            VIEWER,
            json!({"patch_toml": PATCH})
        )
        .await
        .0,
        403
    );
}

#[actix_rt::test]
async fn a_rules_reload_wakes_only_the_families_whose_outcome_changes() {
    let (world, catalogue) = two_families().await;
    let mut text = std::fs::read_to_string(&catalogue).unwrap();
    text = text.replacen("version = \"2026.1\"", "version = \"2026.2\"", 1);
    text = text.replacen("min_children = 4", "min_children = 3", 1);
    text = text.replacen(
        "amounts_mci = [\"16.03\", \"20.04\", \"24.05\", \"28.06\"]",
        "amounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]",
        1,
    );
    std::fs::write(&catalogue, text).unwrap();
    let (status, answer) = post(&world.server, "/v1/rules/reload", OPERATOR, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rules_version"], "2026.2");
    assert_eq!(answer["families"], 2);
    assert_eq!(answer["families_changed"], 1, "{answer}");
    let three = wait_family(&world.server, "F-THREE", |f| {
        f["entitlements"][0]["state"] == "offered"
    })
    .await;
    assert_eq!(three["entitlements"][0]["amount"], "51900.00");
    assert_eq!(three["rules_version"], "2026.2");
    let four = wait_family(&world.server, "F-FOUR", |_| true).await;
    assert_eq!(
        four["rules_version"], "2026.1",
        "an unchanged family is not re-evaluated"
    );
    // Records keep no reasons: each is written again under the catalogue that
    // made the decision, the new one or the one the store kept.
    assert_reasons(&three, "large_family", "(3+ required)");
    assert_reasons(&four, "large_family", "(4+ required)");
}

/// The program's reasons are words written under the catalogue that decided,
/// and one of them says `words`.
fn assert_reasons(family: &serde_json::Value, code: &str, words: &str) {
    let program = family["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {family}"));
    let reasons = program["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r.as_str().unwrap().contains(words)),
        "{code}: {reasons:?}"
    );
}

#[actix_rt::test]
async fn a_reload_after_a_restart_with_a_changed_catalogue_still_finds_who_changes() {
    let (mut world, catalogue) = two_families().await;
    // The operator edits the catalogue and restarts instead of reloading: the
    // stored outcomes still agree with the catalogue in force.
    assert!(world.server.terminate().success());
    let text = std::fs::read_to_string(&catalogue).unwrap();
    let text = text
        .replacen("version = \"2026.1\"", "version = \"2026.2\"", 1)
        .replacen("min_children = 4", "min_children = 3", 1)
        .replacen(
            "amounts_mci = [\"16.03\", \"20.04\", \"24.05\", \"28.06\"]",
            "amounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]",
            1,
        );
    std::fs::write(&catalogue, text).unwrap();
    world.server.restart();
    let (status, answer) = post_when_ready(
        &world.server,
        "/v1/whatif",
        OPERATOR,
        json!({"patch_toml": ""}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["programs"]["large_family"]["gain"], 1, "{answer}");
    let passivated = || async {
        (metric(&world.server, "dfm_families_passivated_total").await)
            .and_then(|value| value.parse::<u64>().ok())
    };
    let passivated_before = passivated().await.unwrap_or(0);
    let (status, answer) = post(&world.server, "/v1/rules/reload", OPERATOR, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["families_changed"], 1, "{answer}");
    // The family the re-score woke is passivated once its re-evaluation is
    // applied: a rules change does not fill the active families.
    applied(&world.server).await;
    eventually(
        "the woken family passivated",
        Duration::from_secs(10),
        || async { (passivated().await? == passivated_before + 1).then_some(()) },
    )
    .await;
    let three = wait_family(&world.server, "F-THREE", |f| {
        f["entitlements"][0]["state"] == "offered"
    })
    .await;
    assert_eq!(three["rules_version"], "2026.2");
    // The catalogue of the first start is kept: the unchanged family's reasons
    // are still written under it.
    let four = wait_family(&world.server, "F-FOUR", |_| true).await;
    assert_eq!(four["rules_version"], "2026.1");
    assert_reasons(&four, "large_family", "(4+ required)");
    // Now in force: the same catalogue changes nobody.
    let (status, answer) = post(&world.server, "/v1/rules/reload", OPERATOR, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["families_changed"], 0, "{answer}");
}
