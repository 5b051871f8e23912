//! `dfm generate` and `dfm load` through the real binary, then `dfm serve` on
//! the loaded store: the same families and scores as the feed would give.

use std::process::Command;
use std::time::Duration;

use dfm::simulators::{BankSimulator, BankSimulatorOptions, SmsSimulator, SmsSimulatorOptions};

use serde_json::json;

use crate::support::*;

fn dfm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dfm"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("dfm runs")
}

#[actix_rt::test]
async fn generate_then_load_then_serve() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("population.ndjson");
    let events_text = events.to_str().unwrap();
    let output = dfm(&[
        "generate",
        "--families",
        "300",
        "--seed",
        "5",
        "--out",
        events_text,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again = dir.path().join("again.ndjson");
    dfm(&[
        "generate",
        "--families",
        "300",
        "--seed",
        "5",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&events).unwrap(),
        std::fs::read(&again).unwrap(),
        "generate is deterministic for a seed"
    );
    // A bad line is rejected alone.
    let mut text = std::fs::read_to_string(&events).unwrap();
    text.push_str("{\"agency\":\"population\",\"id\":\"bad-1\",\"type\":\"citizen.died\",\"occurred_at\":\"2026-11-02T09:00:00Z\",\"data\":{\"iin\":\"061211600013\",\"date\":\"2026-10-01\"}}\n");
    std::fs::write(&events, text).unwrap();

    let sms = SmsSimulator::start(SmsSimulatorOptions::default()).unwrap();
    let bank = BankSimulator::start(BankSimulatorOptions::default()).unwrap();
    // A configuration named `{name}.toml` for the store `name`, both in `dir`.
    let configured = |name: &str| {
        let config = dir.path().join(format!("{name}.toml"));
        let text = config_text(
            &dir.path().join(name),
            &sms.url(),
            &bank.url(),
            ("72h", "48h"),
            "",
        );
        std::fs::write(&config, text).unwrap();
        config
    };
    let config = configured("store");
    let config_text_path = config.to_str().unwrap();

    // A load that stops midway (here: a line that is not UTF-8) leaves the
    // store marked, and `serve` refuses it in one line until a load finishes.
    let broken = dir.path().join("broken.ndjson");
    let mut bytes = std::fs::read(&events).unwrap()[..20_000].to_vec();
    bytes.extend_from_slice(b"\n\xff\xfe\n");
    std::fs::write(&broken, bytes).unwrap();
    let output = dfm(&[
        "load",
        "--config",
        config_text_path,
        broken.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_dfm"))
        .args(["serve", "--config", config_text_path])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dfm runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            serve.kill().unwrap();
            panic!("serve started on a store whose load did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("did not finish"), "{stderr}");

    let output = dfm(&["load", "--config", config_text_path, events_text]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 rejected") && stderr.contains("300 families"),
        "{stderr}"
    );
    // Loading the same file again changes nothing.
    let output = dfm(&["load", "--config", config_text_path, events_text]);
    assert!(output.status.success());

    let server = Server::start(&config, &dir.path().join("dfm.log"));
    let (_, stats) = get(&server, "/v1/stats", VIEWER).await;
    assert_eq!(stats["families"], 300, "{stats}");
    let levels: i64 = stats["by_level"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(levels, 300);
    let citizens = stats["citizens"].as_i64().unwrap();
    assert!(
        (850..=1100).contains(&citizens),
        "about 3.2 people a family: {citizens}"
    );
    let (status, family) = get(&server, "/v1/families/F00000007", OPERATOR).await;
    assert_eq!(status, 200, "{family}");
    assert!(!family["members"].as_array().unwrap().is_empty());
    assert!(family["level"].is_string());
    // Citizens' events after the start reach their families. The dispatcher
    // has routed none of these citizens yet, so it reads the index for the
    // batch's citizens at once, on several threads (`prefetch_routes`).
    let mut members = Vec::new();
    for n in 1..=40 {
        let id = format!("F{n:08}");
        let (_, family) = get(&server, &format!("/v1/families/{id}"), OPERATOR).await;
        for member in family["members"].as_array().unwrap() {
            members.push((id.clone(), member["iin"].as_str().unwrap().to_owned()));
        }
    }
    assert!(members.len() > 100, "{}", members.len());
    let incomes: Vec<serde_json::Value> = members
        .iter()
        .enumerate()
        .map(|(n, (_, iin))| {
            event(
                &format!("after-load-{n}"),
                "income.reported",
                json!({"iin": iin, "month": "2019-01", "amount": "1234.00", "source": "other"}),
            )
        })
        .collect();
    let (status, answer) = feed(&server, "income", "income-secret", ndjson(&incomes)).await;
    assert_eq!(status, 200, "{answer}");
    applied(&server).await;
    for (family_id, iin) in &members {
        let (_, family) = get(&server, &format!("/v1/families/{family_id}"), OPERATOR).await;
        let member = family["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["iin"] == iin.as_str())
            .unwrap_or_else(|| panic!("{iin} left {family_id}"));
        assert_eq!(
            member["incomes"]["2019-01"]["other"], "1234.00",
            "{family_id}: {member}"
        );
    }
    // Offers decided during the load are sent once the service runs.
    let offered = stats["entitlements"]["offered"].as_i64().unwrap();
    assert!(offered > 0, "{stats}");
    eventually(
        "offers sent after the load",
        Duration::from_secs(20),
        || async {
            (sms.messages()
                .iter()
                .filter(|m| m.reference.contains("-offer-"))
                .count() as i64
                >= offered)
                .then_some(())
        },
    )
    .await;

    // Into an empty store, the load also saves the scoring table: the first
    // start reads it instead of every record, and what-ifs agree with a table
    // built from the records (the first store's, loaded over a broken load).
    let fresh = configured("fresh");
    let output = dfm(&["load", "--config", fresh.to_str().unwrap(), events_text]);
    assert!(output.status.success());
    assert!(dir.path().join("fresh/dfm-scoring-table").exists());
    let log = dir.path().join("fresh.log");
    let loaded = Server::start(&fresh, &log);
    let patch = json!({"patch_toml": "[[program]]\ncode = \"large_family\"\nmin_children = 3\namounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]\n"});
    let (status, mut from_records) =
        post_when_ready(&server, "/v1/whatif", OPERATOR, patch.clone()).await;
    assert_eq!(status, 200, "{from_records}");
    let (status, mut from_load) = post_when_ready(&loaded, "/v1/whatif", OPERATOR, patch).await;
    assert_eq!(status, 200, "{from_load}");
    for answer in [&mut from_records, &mut from_load] {
        answer.as_object_mut().unwrap().remove("elapsed_ms");
    }
    assert_eq!(from_records, from_load);
    assert_eq!(from_load["families"], 300);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("loaded the scoring table that the last clean stop or load saved"),
        "{log}"
    );
}

#[test]
fn a_bad_config_is_refused_in_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dfm.toml");
    let text = config_text(
        &dir.path().join("store"),
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        ("soon", "48h"),
        "",
    );
    std::fs::write(&config, text).unwrap();
    let output = dfm(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("dfm:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("consent.reply_window") && lines[0].contains("invalid duration"),
        "{stderr}"
    );
    let missing = dfm(&[
        "load",
        "--config",
        config.to_str().unwrap(),
        "/nonexistent.ndjson",
    ]);
    assert!(!missing.status.success());
}
