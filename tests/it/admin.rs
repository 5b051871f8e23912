//! The admin port: roles, the audit log, pagination, stats, operator actions,
//! metrics, and that no personal data reaches the service's logs.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::feeds::{wait_family, world};
use crate::support::*;

#[actix_rt::test]
async fn roles_masking_and_the_audit_log() {
    let world = world().await;
    let (events, mother, father) = large_family("F-ADMIN", 4, 91, "+77015550091");
    send_all(&world.server, &events).await;
    wait_family(&world.server, "F-ADMIN", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 6)
    })
    .await;
    // healthz and the page need no token; everything else does.
    let health = client()
        .get(format!("{}/healthz", world.server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let page = client()
        .get(format!("{}/", world.server.admin))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("lookup-input"));
    assert_eq!(get(&world.server, "/v1/stats", "").await.0, 401);
    // The viewer sees lists with masked IINs, never a record.
    let (status, list) = get(&world.server, "/v1/families", VIEWER).await;
    assert_eq!(status, 200);
    let head = list["families"][0]["head_iin"].as_str().unwrap().to_owned();
    assert!(
        head.contains("******") && !head.contains(&father[4..10]),
        "{head}"
    );
    assert_eq!(
        get(&world.server, "/v1/families/F-ADMIN", VIEWER).await.0,
        403
    );
    assert_eq!(
        get(&world.server, &format!("/v1/citizens/{mother}"), VIEWER)
            .await
            .0,
        403
    );
    assert_eq!(get(&world.server, "/v1/audit", VIEWER).await.0, 403);
    // The operator reads a family and a citizen; both reads are audited.
    let (status, family) = get(&world.server, "/v1/families/F-ADMIN", OPERATOR).await;
    assert_eq!(status, 200);
    assert_eq!(family["members"].as_array().unwrap().len(), 6);
    let (status, citizen) = get(&world.server, &format!("/v1/citizens/{mother}"), OPERATOR).await;
    assert_eq!(status, 200, "{citizen}");
    assert_eq!(citizen["family_id"], "F-ADMIN");
    assert_eq!(
        get(&world.server, "/v1/citizens/061211600013", OPERATOR)
            .await
            .0,
        400
    );
    assert_eq!(
        get(&world.server, "/v1/families/F-NOBODY", OPERATOR)
            .await
            .0,
        404
    );
    assert_eq!(get(&world.server, "/v1/audit", OPERATOR).await.0, 403);
    let (status, audit) = get(&world.server, "/v1/audit?limit=100", AUDITOR).await;
    assert_eq!(status, 200);
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["operator"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("alice", "read_family", "F-ADMIN")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("alice", "read_citizen", mother.as_str())),
        "{actions:?}"
    );
    assert!(entries
        .iter()
        .all(|e| e["remote_addr"] == "127.0.0.1" && e["at"].is_string()));
    // Operator actions are audited and take effect through the log.
    let (status, _) = post(
        &world.server,
        "/v1/families/F-ADMIN/review",
        OPERATOR,
        json!({"verdict": "verified", "note": "checked by the working group"}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = post(
        &world.server,
        "/v1/families/F-ADMIN/reevaluate",
        OPERATOR,
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        post(
            &world.server,
            "/v1/families/F-ADMIN/review",
            VIEWER,
            json!({"verdict": "verified"})
        )
        .await
        .0,
        403
    );
    assert_eq!(
        post(
            &world.server,
            "/v1/families/F-ADMIN/review",
            OPERATOR,
            json!({"verdict": "maybe"})
        )
        .await
        .0,
        400
    );
    let family = wait_family(&world.server, "F-ADMIN", |f| {
        f["review"]["verdict"] == "verified"
    })
    .await;
    assert!(
        family["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["what"]
                .as_str()
                .unwrap()
                .contains("re-evaluated by operator alice")),
        "{family}"
    );
    applied(&world.server).await;
    let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
    assert_eq!(stats["reviews"]["verified"], 1, "{stats}");
    let (_, audit) = get(&world.server, "/v1/audit?limit=100", AUDITOR).await;
    let actions: BTreeSet<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        actions.contains("review") && actions.contains("reevaluate"),
        "{actions:?}"
    );
    // Audit pagination walks the whole log once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/audit?limit=2&cursor={cursor}"),
            None => "/v1/audit?limit=2".to_owned(),
        };
        let (_, page) = get(&world.server, &path, AUDITOR).await;
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len());
    assert!(seen.len() >= 5);
}

#[actix_rt::test]
async fn pagination_never_skips_or_repeats_and_filters_hold() {
    let world = world().await;
    let regions = ["KZ-71", "KZ-75", "KZ-35"];
    let mut events = Vec::new();
    for index in 0..25u32 {
        let family_id = format!("F-PAGE-{index:02}");
        let person = iin("1970-06-06", index % 2 == 0, 100 + index * 60);
        events.push(event(
            &format!("p-{index}-a"),
            "family.member_added",
            json!({"family_id": family_id, "iin": person, "role": "head"}),
        ));
        events.push(event(&format!("p-{index}-b"), "family.address_changed", json!({"family_id": family_id, "region": regions[index as usize % 3], "locality": "urban"})));
    }
    assert_eq!(
        feed(&world.server, "population", POPULATION, ndjson(&events))
            .await
            .0,
        200
    );
    applied(&world.server).await;
    let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
    assert_eq!(stats["families"], 25, "{stats}");
    let walk = |query: &'static str| {
        let server = &world.server;
        async move {
            let mut ids = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(cursor) => format!("/v1/families?{query}&limit=7&cursor={cursor}"),
                    None => format!("/v1/families?{query}&limit=7"),
                };
                let (status, page) = get(server, &path, VIEWER).await;
                assert_eq!(status, 200, "{page}");
                ids.extend(page["families"].as_array().unwrap().iter().map(|f| {
                    (
                        f["family_id"].as_str().unwrap().to_owned(),
                        f["region"].as_str().unwrap_or("").to_owned(),
                    )
                }));
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break ids,
                }
            }
        }
    };
    let all = walk("").await;
    let unique: BTreeSet<&String> = all.iter().map(|(id, _)| id).collect();
    assert_eq!((all.len(), unique.len()), (25, 25));
    let almaty = walk("region=KZ-75").await;
    assert_eq!(almaty.len(), 8);
    assert!(almaty.iter().all(|(_, region)| region == "KZ-75"));
    let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
    let level_sum: i64 = stats["by_level"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(level_sum, 25);
    assert_eq!(stats["by_region"].as_object().unwrap().len(), 20);
    let level = ["A", "B", "C", "D", "E"]
        .into_iter()
        .find(|l| stats["by_level"][l].as_i64() > Some(0))
        .unwrap();
    let by_level = walk(match level {
        "A" => "level=A",
        "B" => "level=B",
        "C" => "level=C",
        "D" => "level=D",
        _ => "level=E",
    })
    .await;
    assert_eq!(
        by_level.len() as i64,
        stats["by_level"][level].as_i64().unwrap()
    );
    assert_eq!(
        get(&world.server, "/v1/families?level=Z", VIEWER).await.0,
        400
    );
    assert_eq!(
        get(&world.server, "/v1/families?state=sleeping", VIEWER)
            .await
            .0,
        400
    );
}

#[actix_rt::test]
async fn metrics_cover_the_pipeline_and_logs_hold_no_personal_data() {
    let world = world().await;
    let phone = "+77015550092";
    let (events, mother, father) = large_family("F-PRIVATE", 4, 93, phone);
    send_all(&world.server, &events).await;
    let code = eventually("offer", Duration::from_secs(20), || async {
        let offer = world.sms.messages().into_iter().find(|m| m.to == phone)?;
        let at = offer.text.find('#')?;
        Some(offer.text[at + 1..at + 5].to_owned())
    })
    .await;
    assert_eq!(
        sms_reply(&world.server, "priv-1", phone, &format!("yes {code}")).await,
        200
    );
    assert_eq!(
        sms_reply(&world.server, "priv-2", "+77010000000", "hello").await,
        200
    );
    wait_family(&world.server, "F-PRIVATE", |f| {
        f["entitlements"][0]["state"] == "active"
    })
    .await;
    get(&world.server, &format!("/v1/citizens/{father}"), OPERATOR).await;
    let bad = event(
        "m-bad",
        "citizen.registered",
        json!({"iin": "061211600013", "full_name": "X", "birth_date": "2006-12-11", "sex": "female"}),
    );
    assert_eq!(
        feed(&world.server, "population", POPULATION, ndjson(&[bad]))
            .await
            .0,
        200
    );
    let (status, text) = {
        let response = client()
            .get(format!("{}/metrics", world.server.admin))
            .bearer_auth(VIEWER)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(status, 200);
    for name in [
        "dfm_events_total{agency=\"population\",type=\"family.member_added\",outcome=\"accepted\"}",
        "dfm_sms_total",
        "dfm_payments_total",
        "dfm_reevaluations_total",
        "dfm_families_active",
        "dfm_log_backlog",
        "dfm_feed_request_seconds_bucket",
        "dfm_sms_inbound_total",
        "dfm_events_total{agency=\"population\",type=\"citizen.registered\",outcome=\"rejected\"} 1",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    // The whole scenario ran with debug logging; no IIN, name or phone in clear.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(&world.server.log).unwrap();
    assert!(log.len() > 1000, "the log has content");
    let family: Value = get(&world.server, "/v1/families/F-PRIVATE", OPERATOR)
        .await
        .1;
    let mut secrets: Vec<String> = vec![
        mother,
        father,
        phone.to_owned(),
        "+77010000000".to_owned(),
        "Сәрсенов".to_owned(),
        "Айгерім".to_owned(),
    ];
    secrets.extend(
        family["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["iin"].as_str().unwrap().to_owned()),
    );
    for secret in secrets {
        assert!(
            !log.contains(&secret),
            "{secret} appears in the service log"
        );
    }
}

#[actix_rt::test]
async fn tokens_are_rotated_on_sighup_without_a_restart() {
    let world = world().await;
    let person = iin("1988-08-08", true, 11);
    let body = || {
        ndjson(&[event(
            &format!("rot-{}", rand_suffix()),
            "citizen.registered",
            json!({"iin": person, "full_name": "Ерлан", "birth_date": "1988-08-08", "sex": "male"}),
        )])
    };
    let config = world.server.config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(POPULATION, "pop-rotated")
            .replace(VIEWER, "victor-rotated"),
    )
    .unwrap();
    world.server.hangup();
    eventually("the new tokens taken", Duration::from_secs(10), || async {
        let (status, _) = feed(&world.server, "population", "pop-rotated", body()).await;
        (status == 200).then_some(())
    })
    .await;
    assert_eq!(
        feed(&world.server, "population", POPULATION, body())
            .await
            .0,
        401
    );
    assert_eq!(
        get(&world.server, "/v1/stats", "victor-rotated").await.0,
        200
    );
    assert_eq!(get(&world.server, "/v1/stats", VIEWER).await.0, 401);
    // A file that no longer validates changes nothing.
    let rotated = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        rotated
            .replace("pop-rotated", "pop-third")
            .replace("[storage]", "[storage]\ncache_mb = 0"),
    )
    .unwrap();
    world.server.hangup();
    eventually("the refusal logged", Duration::from_secs(10), || async {
        let log = std::fs::read_to_string(&world.server.log).unwrap_or_default();
        log.contains("SIGHUP: the configuration is refused")
            .then_some(())
    })
    .await;
    assert_eq!(
        feed(&world.server, "population", "pop-rotated", body())
            .await
            .0,
        200
    );
    assert_eq!(
        feed(&world.server, "population", "pop-third", body())
            .await
            .0,
        401
    );
}

/// A fresh suffix for event ids, so that each request is new.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
