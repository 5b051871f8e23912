//! The agency feed API, black-box through the real binary: scoring after the
//! feed, duplicates, rejected lines, 401/403/413, one agency's flood (503),
//! out-of-order facts, a panicking handler, and SIGKILL right after a 200.

use std::time::Duration;

use dfm::simulators::{BankSimulator, BankSimulatorOptions, SmsSimulator, SmsSimulatorOptions};
use serde_json::json;

use crate::support::*;

#[allow(dead_code)]
pub struct World {
    pub dir: tempfile::TempDir,
    pub sms: SmsSimulator,
    pub bank: BankSimulator,
    pub server: Server,
}

pub async fn world_with(
    sms: SmsSimulatorOptions,
    bank: BankSimulatorOptions,
    consent: (&str, &str),
    extra: &str,
) -> World {
    world_edited(sms, bank, consent, extra, |text, _| text).await
}

/// A world whose configuration text `edit` changes first (it also gets the
/// world's directory).
pub async fn world_edited(
    sms: SmsSimulatorOptions,
    bank: BankSimulatorOptions,
    consent: (&str, &str),
    extra: &str,
    edit: impl FnOnce(String, &std::path::Path) -> String,
) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let sms = SmsSimulator::start(sms).expect("sms simulator");
    let bank = BankSimulator::start(bank).expect("bank simulator");
    let config = dir.path().join("dfm.toml");
    let text = config_text(
        &dir.path().join("store"),
        &sms.url(),
        &bank.url(),
        consent,
        extra,
    );
    std::fs::write(&config, edit(text, dir.path())).expect("config written");
    let server = Server::start(&config, &dir.path().join("dfm.log"));
    World {
        dir,
        sms,
        bank,
        server,
    }
}

pub async fn world() -> World {
    world_with(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "",
    )
    .await
}

pub async fn family_json(server: &Server, family_id: &str) -> Option<serde_json::Value> {
    let (status, body) = get(server, &format!("/v1/families/{family_id}"), OPERATOR).await;
    (status == 200).then_some(body)
}

pub async fn wait_family(
    server: &Server,
    family_id: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(
        &format!("family {family_id}"),
        Duration::from_secs(20),
        || async { family_json(server, family_id).await.filter(|f| check(f)) },
    )
    .await
}

#[actix_rt::test]
async fn a_large_family_is_scored_and_found_eligible_after_the_feed() {
    let world = world().await;
    let (events, _, _) = large_family("F-LARGE", 4, 1, "+77011234567");
    send_all(&world.server, &events).await;
    let family = wait_family(&world.server, "F-LARGE", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 6)
    })
    .await;
    assert_eq!(family["region"], "KZ-35");
    assert!(["A", "B", "C", "D", "E"].contains(&family["level"].as_str().unwrap()));
    assert!(family["criteria"]["economic"].is_string());
    let large = family["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "large_family")
        .unwrap();
    assert_eq!(large["eligible"], true, "{large}");
    assert!(!large["reasons"].as_array().unwrap().is_empty());
    assert!(family["explanation"].is_array());
}

#[actix_rt::test]
async fn three_children_are_not_a_large_family() {
    let world = world().await;
    let (events, _, _) = large_family("F-THREE", 3, 2, "+77011234568");
    send_all(&world.server, &events).await;
    let family = wait_family(&world.server, "F-THREE", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 5)
    })
    .await;
    let large = family["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "large_family")
        .unwrap();
    assert_eq!(large["eligible"], false, "{large}");
}

#[actix_rt::test]
async fn duplicates_count_once_and_bad_lines_are_rejected_alone() {
    let world = world().await;
    let person = iin("1990-01-05", true, 7);
    let good = event(
        "d-1",
        "citizen.registered",
        json!({"iin": person, "full_name": "Асхат Нұрланов", "birth_date": "1990-01-05", "sex": "male"}),
    );
    let bad_iin = event(
        "d-2",
        "citizen.registered",
        json!({"iin": "061211600013", "full_name": "X", "birth_date": "2006-12-11", "sex": "female"}),
    );
    let wrong_sex = event(
        "d-3",
        "citizen.registered",
        json!({"iin": person, "full_name": "Y", "birth_date": "1990-01-05", "sex": "female"}),
    );
    let unknown = event("d-4", "citizen.teleported", json!({"iin": person}));
    let foreign = event(
        "d-5",
        "income.reported",
        json!({"iin": person, "month": "2026-10", "amount": "1.00", "source": "salary"}),
    );
    let body = format!(
        "{}\n{}\nthis is not json\n{}\n{}\n{}\n{}\n",
        good, bad_iin, wrong_sex, unknown, foreign, good
    );
    let (status, answer) = feed(&world.server, "population", POPULATION, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["duplicates"], 1, "{answer}");
    let rejected = answer["rejected"].as_array().unwrap();
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6], "{answer}");
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("check digit"),
        "{answer}"
    );
    assert_eq!(rejected[0]["id"], "d-2");
    assert!(
        rejected[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("line is not JSON"),
        "{answer}"
    );
    assert!(rejected[1]["id"].is_null(), "{answer}");
    assert!(
        rejected[2]["error"].as_str().unwrap().contains("sex"),
        "{answer}"
    );
    assert!(
        rejected[3]["error"]
            .as_str()
            .unwrap()
            .contains("unknown event type"),
        "{answer}"
    );
    assert!(
        rejected[4]["error"]
            .as_str()
            .unwrap()
            .contains("may not send"),
        "{answer}"
    );
    // Every answer says how many accepted events are not applied yet.
    let response = client()
        .post(format!(
            "{}/v1/feeds/population/events",
            world.server.public
        ))
        .bearer_auth(POPULATION)
        .body(format!("{good}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let backlog = response.headers()["x-dfm-backlog"].to_str().unwrap();
    assert!(backlog.parse::<u64>().is_ok(), "{backlog}");
    // The same id again, alone, as a JSON array: a duplicate, nothing new.
    let (status, answer) = feed(&world.server, "population", POPULATION, format!("[{good}]")).await;
    assert_eq!(
        (
            status,
            answer["accepted"].as_u64(),
            answer["duplicates"].as_u64()
        ),
        (200, Some(0), Some(1))
    );
    // The agency can ask what became of an event it sent: accepted (with its
    // place in the log), then applied; an id it never sent, or a rejected one, is
    // unknown; another agency's token is refused.
    let status_of = |id: &str, token: &str| {
        client()
            .get(format!(
                "{}/v1/feeds/population/events/{id}",
                world.server.public
            ))
            .bearer_auth(token)
            .send()
    };
    let applied = eventually("d-1 applied", Duration::from_secs(10), || async {
        let answer: serde_json::Value = status_of("d-1", POPULATION)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (answer["applied"] == true).then_some(answer)
    })
    .await;
    assert_eq!(applied["id"], "d-1");
    assert!(applied["seq"].as_u64().unwrap() > 0, "{applied}");
    assert_eq!(status_of("d-2", POPULATION).await.unwrap().status(), 404);
    assert_eq!(
        status_of("never-sent", POPULATION).await.unwrap().status(),
        404
    );
    assert_eq!(
        status_of("d-1", "income-secret").await.unwrap().status(),
        401
    );
}

#[actix_rt::test]
async fn tokens_bodies_and_limits_are_enforced() {
    let world = world_with(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "",
    )
    .await;
    let body = ndjson(&[event(
        "t-1",
        "citizen.died",
        json!({"iin": iin("1950-02-02", true, 1), "date": "2026-10-01"}),
    )]);
    assert_eq!(
        feed(&world.server, "population", "wrong", body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        feed(&world.server, "population", "income-secret", body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        feed(&world.server, "nobody", POPULATION, body.clone())
            .await
            .0,
        401
    );
    let response = client()
        .post(format!(
            "{}/v1/feeds/population/events",
            world.server.public
        ))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        feed(
            &world.server,
            "population",
            POPULATION,
            "{{{ not json".to_owned()
        )
        .await
        .0,
        400
    );
    assert_eq!(
        feed(&world.server, "population", POPULATION, "[1, 2".to_owned())
            .await
            .0,
        400
    );
    let huge = "x".repeat(17 * 1024 * 1024);
    assert_eq!(
        feed(&world.server, "population", POPULATION, huge).await.0,
        413
    );
    // Nothing of the refused requests was applied.
    let (status, stats) = get(&world.server, "/v1/stats", VIEWER).await;
    assert_eq!(status, 200);
    assert_eq!(stats["families"], 0);
    // A viewer may not open a family; no token is 401.
    assert_eq!(get(&world.server, "/v1/families/F1", VIEWER).await.0, 403);
    assert_eq!(get(&world.server, "/v1/families/F1", "nope").await.0, 401);
    assert_eq!(get(&world.server, "/v1/audit", OPERATOR).await.0, 403);
}

#[actix_rt::test]
async fn a_flooding_agency_gets_503_and_the_others_go_on() {
    // An agency may hold 100 unapplied events; the shared limit stays 500,000.
    let world = world_edited(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "",
        |text, _| {
            text.replacen(
                "admin_addr = \"127.0.0.1:0\"\n",
                "admin_addr = \"127.0.0.1:0\"\nagency_backlog_max = 100\n",
                1,
            )
        },
    )
    .await;
    let server = &world.server;

    // 20,000 incomes of 2,000 citizens in no family, in one request.
    let flood: Vec<_> = (0..2_000u32)
        .flat_map(|citizen| {
            let born = chrono::NaiveDate::from_ymd_opt(1960, 1, 1).unwrap()
                + chrono::Days::new(u64::from(citizen));
            let person = iin(&born.to_string(), citizen % 2 == 0, 10);
            (1..=10).map(move |month| {
                event(
                    &format!("flood-{citizen}-{month}"),
                    "income.reported",
                    json!({"iin": person, "month": format!("2026-{month:02}"), "amount": "100000.00", "source": "salary"}),
                )
            })
        })
        .collect();
    let (status, answer) = feed(server, "income", "income-secret", ndjson(&flood)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 20_000, "{answer}");

    // Until they are applied, income's next request is refused with a reason
    // and Retry-After; nothing of it is accepted.
    let one_more = ndjson(&[event(
        "flood-more",
        "income.reported",
        json!({"iin": iin("1961-01-01", true, 10), "month": "2026-10", "amount": "1.00", "source": "salary"}),
    )]);
    let response = client()
        .post(format!("{}/v1/feeds/income/events", server.public))
        .bearer_auth("income-secret")
        .body(one_more.clone())
        .send()
        .await
        .expect("feed request");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("Retry-After")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let refusal = response.text().await.unwrap();
    assert!(refusal.contains("agency income"), "{refusal}");

    // Another agency is not held back by income's flood.
    let newborn = ndjson(&[event(
        "born-1",
        "citizen.registered",
        json!({"iin": iin("2026-10-01", false, 10), "full_name": "N", "birth_date": "2026-10-01", "sex": "female"}),
    )]);
    let (status, answer) = feed(server, "population", POPULATION, newborn).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");

    // Once income's events are applied, it is served again.
    eventually("income served again", Duration::from_secs(120), || {
        let body = one_more.clone();
        async move {
            let (status, answer) = feed(server, "income", "income-secret", body).await;
            (status == 200).then_some(answer)
        }
    })
    .await;
}

#[actix_rt::test]
async fn facts_arriving_before_the_family_count_once_it_exists() {
    let world = world().await;
    let person = iin("1979-05-20", false, 11);
    // Health and income facts first, then the registration, then the family.
    let income = event(
        "o-1",
        "income.reported",
        json!({"iin": person, "month": "2026-10", "amount": "95000.00", "source": "salary"}),
    );
    let disability = event(
        "o-2",
        "disability.assessed",
        json!({"iin": person, "group": "2", "until": null}),
    );
    let housing = event(
        "o-3",
        "housing.changed",
        json!({"family_id": "F-ORDER", "tenure": "rented", "area_m2": 18.5, "utilities": ["water"]}),
    );
    assert_eq!(
        feed(&world.server, "income", "income-secret", ndjson(&[income]))
            .await
            .0,
        200
    );
    assert_eq!(
        feed(
            &world.server,
            "health",
            "health-secret",
            ndjson(&[disability])
        )
        .await
        .0,
        200
    );
    assert_eq!(
        feed(
            &world.server,
            "housing",
            "housing-secret",
            ndjson(&[housing])
        )
        .await
        .0,
        200
    );
    let register = event(
        "o-4",
        "citizen.registered",
        json!({"iin": person, "full_name": "Гүлнар Ахметова", "birth_date": "1979-05-20", "sex": "female"}),
    );
    let join = event(
        "o-5",
        "family.member_added",
        json!({"family_id": "F-ORDER", "iin": person, "role": "head"}),
    );
    assert_eq!(
        feed(
            &world.server,
            "population",
            POPULATION,
            ndjson(&[join, register])
        )
        .await
        .0,
        200
    );
    let family = wait_family(&world.server, "F-ORDER", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 1)
    })
    .await;
    let member = &family["members"][0];
    assert_eq!(member["disability"]["group"], "2", "{family}");
    assert_eq!(
        member["incomes"]["2026-10"]["salary"], "95000.00",
        "{family}"
    );
    assert_eq!(member["full_name"], "Гүлнар Ахметова");
    assert_eq!(family["housing"]["tenure"], "rented");
    let disability = family["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "disability")
        .unwrap();
    assert_eq!(disability["eligible"], true, "{disability}");
    // The citizen moves to another family and takes the facts along.
    let other = move_member(&world.server, "o-6", &person, "F-ORDER", "F-OTHER").await;
    assert_eq!(other["members"][0]["disability"]["group"], "2");
    let old = wait_family(&world.server, "F-ORDER", |f| {
        f["members"].as_array().is_some_and(|m| m.is_empty())
    })
    .await;
    assert_eq!(old["family_id"], "F-ORDER");
    // The citizen's next fact goes to the new family, not where the dispatcher
    // last routed the citizen.
    let later = event(
        "o-8",
        "income.reported",
        json!({"iin": person, "month": "2026-09", "amount": "70000.00", "source": "salary"}),
    );
    assert_eq!(
        feed(&world.server, "income", "income-secret", ndjson(&[later]))
            .await
            .0,
        200
    );
    let other = wait_family(&world.server, "F-OTHER", |f| {
        f["members"][0]["incomes"]["2026-09"]["salary"] == "70000.00"
    })
    .await;
    assert_eq!(other["members"].as_array().map(Vec::len), Some(1));
}

#[actix_rt::test]
async fn a_panicking_handler_restarts_its_family_and_spares_the_others() {
    let world = world().await;
    let (events, _, _) = large_family("F-POISON", 4, 21, "+77011230001");
    let (others, _, _) = large_family("F-HEALTHY", 4, 31, "+77011230002");
    send_all(&world.server, &events).await;
    send_all(&world.server, &others).await;
    wait_family(&world.server, "F-POISON", |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 6)
    })
    .await;
    // One event panics every time it is applied, one only the first time.
    let poison = event(
        "failpoint-panic-1",
        "family.address_changed",
        json!({"family_id": "F-POISON", "region": "KZ-71", "locality": "urban"}),
    );
    let flaky = event(
        "failpoint-panic-once-1",
        "family.address_changed",
        json!({"family_id": "F-POISON", "region": "KZ-75", "locality": "urban"}),
    );
    let after = event(
        "after-poison",
        "housing.changed",
        json!({"family_id": "F-POISON", "tenure": "owned", "area_m2": 120, "utilities": ["water", "heating", "sewerage", "gas"]}),
    );
    let healthy = event(
        "healthy-1",
        "family.address_changed",
        json!({"family_id": "F-HEALTHY", "region": "KZ-79", "locality": "urban"}),
    );
    let (status, _) = feed(
        &world.server,
        "population",
        POPULATION,
        ndjson(&[poison, flaky, healthy]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        feed(&world.server, "housing", "housing-secret", ndjson(&[after]))
            .await
            .0,
        200
    );
    // The flaky event applied on retry, the poison one was set aside, and the
    // family kept taking events.
    let family = wait_family(&world.server, "F-POISON", |f| {
        f["housing"]["tenure"] == "owned"
    })
    .await;
    assert_eq!(family["region"], "KZ-75", "{family}");
    assert_eq!(
        family["quarantined_inputs"].as_array().map(Vec::len),
        Some(1),
        "{family}"
    );
    let healthy = wait_family(&world.server, "F-HEALTHY", |f| f["region"] == "KZ-79").await;
    assert_eq!(
        healthy["quarantined_inputs"].as_array().map(Vec::len),
        Some(0)
    );
    // The agency is told which of its events was set aside, and which applied
    // (once the applied watermark, which moves after the records, passes them).
    let settled = |id: &'static str| {
        let url = format!("{}/v1/feeds/population/events/{id}", world.server.public);
        eventually(id, Duration::from_secs(10), move || {
            let url = url.clone();
            async move {
                let answer = client().get(url).bearer_auth(POPULATION).send().await;
                let answer: serde_json::Value = answer.ok()?.json().await.ok()?;
                let outcome = (answer["applied"].clone(), answer["set_aside"].clone());
                (outcome != (json!(false), json!(false))).then_some(outcome)
            }
        })
    };
    assert_eq!(
        settled("failpoint-panic-1").await,
        (json!(false), json!(true))
    );
    assert_eq!(
        settled("failpoint-panic-once-1").await,
        (json!(true), json!(false))
    );
    assert_eq!(settled("healthy-1").await, (json!(true), json!(false)));
}

/// `dfm_feed_ids_unpacked` on the admin port.
async fn unpacked_ids(server: &Server) -> Option<u64> {
    metric(server, "dfm_feed_ids_unpacked").await?.parse().ok()
}

#[actix_rt::test]
async fn an_agencys_ids_stay_duplicates_after_they_are_packed_and_after_a_crash() {
    let mut world = world_edited(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "",
        |text, _| text.replace("[storage]\n", "[storage]\nfeed_ids_pack_at = 3\n"),
    )
    .await;
    let events: Vec<_> = (0..10)
        .map(|n| {
            let person = iin("1991-02-03", n % 2 == 0, 100 + n * 7);
            event(
                &format!("p-{n}"),
                "citizen.registered",
                json!({"iin": person, "full_name": "Ерлан Сапаров", "birth_date": "1991-02-03", "sex": if n % 2 == 0 { "male" } else { "female" }}),
            )
        })
        .collect();
    let (status, answer) = feed(&world.server, "population", POPULATION, ndjson(&events)).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(10)),
        "{answer}"
    );
    // Ten ids waiting, more than `feed_ids_pack_at`: a pass packs them.
    eventually("the ids packed", Duration::from_secs(20), || async {
        (unpacked_ids(&world.server).await == Some(0)).then_some(())
    })
    .await;
    let known: serde_json::Value = client()
        .get(format!(
            "{}/v1/feeds/population/events/p-4",
            world.server.public
        ))
        .bearer_auth(POPULATION)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(known["seq"].as_u64().unwrap() > 0, "{known}");
    // Sent again: duplicates, packed; then after a SIGKILL (no drain, no
    // flush) and a restart, still duplicates.
    for killed in [false, true] {
        if killed {
            world.server.kill();
            world.server.restart();
        }
        let (status, answer) = feed(&world.server, "population", POPULATION, ndjson(&events)).await;
        assert_eq!(
            (
                status,
                answer["accepted"].as_u64(),
                answer["duplicates"].as_u64()
            ),
            (200, Some(0), Some(10)),
            "killed: {killed}, {answer}"
        );
    }
}

#[actix_rt::test]
async fn sigkill_right_after_a_200_loses_nothing() {
    let mut world = world().await;
    let mut total = 0;
    for round in 0..5 {
        let mut events = Vec::new();
        for index in 0..200 {
            let person = iin(
                "1985-04-04",
                index % 2 == 0,
                1000 + round * 2000 + index * 3,
            );
            let family_id = format!("F-K{round}-{index}");
            events.push(event(
                &format!("k-{round}-{index}-a"),
                "family.member_added",
                json!({"family_id": family_id, "iin": person, "role": "head"}),
            ));
            events.push(event(
                &format!("k-{round}-{index}-b"),
                "family.address_changed",
                json!({"family_id": family_id, "region": "KZ-43", "locality": "rural"}),
            ));
        }
        let (status, answer) = feed(&world.server, "population", POPULATION, ndjson(&events)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], 400);
        total += 200;
        // Killed the moment the answer is in: no drain, no flush.
        world.server.kill();
        world.server.restart();
    }
    let stats = eventually("all families applied", Duration::from_secs(30), || async {
        let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
        (stats["families"] == total).then_some(stats)
    })
    .await;
    assert_eq!(
        stats["by_region"]["KZ-43"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum::<i64>(),
        total
    );
    let family = wait_family(&world.server, "F-K4-199", |f| f["region"] == "KZ-43").await;
    assert_eq!(family["members"].as_array().unwrap().len(), 1);
    // A clean stop drains, writes sled's recovery snapshot (sled writes one only
    // when it opens a store, so the stop opens it once more), and exits 0: the
    // next start replays nothing of this run.
    let store = world.dir.path().join("store");
    let at_start = newest_snapshot(&store);
    assert!(world.server.terminate().success());
    let at_stop = newest_snapshot(&store);
    assert!(at_stop > at_start, "{at_start} then {at_stop}");
    world.server.restart();
    let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
    assert_eq!(stats["families"], total);
}

/// The name of the newest sled snapshot in a store (`snap.` and its position in
/// the log, in hex of fixed width, so names order as positions do).
fn newest_snapshot(store: &std::path::Path) -> String {
    std::fs::read_dir(store)
        .expect("store directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with("snap.") && !name.ends_with(".generating"))
        .max()
        .expect("a snapshot")
}

/// A batch's commit is written while the next batch is applied. A family that
/// its own batch passivates (16 active in 16 directory shards: one a shard) and
/// the next batch needs at once must come back with what the first batch did,
/// not from the store before it.
#[actix_rt::test]
async fn a_family_passivated_while_its_last_batch_is_written_comes_back_whole() {
    let world = world_with(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "[actors]\nactive_families_max = 16\nbatch_entries_max = 64\n",
    )
    .await;
    const ROUNDS: u32 = 6;
    const FILLERS: u32 = 126;
    // Families that fill the batches, known beforehand: their events route
    // without reading the store, as a re-score's do.
    let fillers: Vec<serde_json::Value> = (0..ROUNDS * FILLERS)
        .map(|index| {
            let name = format!("F-FILL-{index}");
            let birth = format!("1980-{:02}-{:02}", index / 140 % 12 + 1, index / 5 % 28 + 1);
            event(
                &name,
                "family.member_added",
                json!({"family_id": name, "iin": iin(&birth, true, index % 5 * 60), "role": "head"}),
            )
        })
        .collect();
    assert_eq!(
        feed(&world.server, "population", POPULATION, ndjson(&fillers))
            .await
            .0,
        200
    );
    applied(&world.server).await;
    let filler = |events: &mut Vec<serde_json::Value>, index: u32| {
        events.push(event(
            &format!("fill-moved-{index}"),
            "family.address_changed",
            json!({"family_id": format!("F-FILL-{index}"), "region": "KZ-11", "locality": "rural"}),
        ));
    };
    let mut events = Vec::new();
    for round in 0..ROUNDS {
        // The failpoint writes the family's batches 300 ms late.
        let family_id = format!("failpoint-slow-commit-{round}");
        // One batch: the family's head arrives first, then 63 other families
        // (which passivate it, all but surely).
        events.push(event(&format!("twice-{round}-a"), "family.member_added", json!({"family_id": family_id, "iin": iin("1975-03-03", false, round * 60), "role": "head"})));
        for index in 0..FILLERS / 2 {
            filler(&mut events, round * FILLERS + index);
        }
        // The next batch starts with the family's address.
        events.push(event(
            &format!("twice-{round}-b"),
            "family.address_changed",
            json!({"family_id": family_id, "region": "KZ-15", "locality": "urban"}),
        ));
        for index in FILLERS / 2..FILLERS {
            filler(&mut events, round * FILLERS + index);
        }
    }
    assert_eq!(events.len() as u32, ROUNDS * (FILLERS + 2));
    assert_eq!(
        feed(&world.server, "population", POPULATION, ndjson(&events))
            .await
            .0,
        200
    );
    for round in 0..ROUNDS {
        let family = wait_family(
            &world.server,
            &format!("failpoint-slow-commit-{round}"),
            |f| f["region"] == "KZ-15",
        )
        .await;
        assert_eq!(
            family["members"].as_array().unwrap().len(),
            1,
            "round {round}: {family}"
        );
    }
}

/// A member who leaves a family leaves their facts in the orphan store, written
/// with the family's batch on the commit thread; joining another family at
/// once reads them there. The read must wait for that commit, and only that one.
#[actix_rt::test]
async fn a_member_who_moves_while_the_old_familys_commit_is_written_takes_the_facts_along() {
    let world = world().await;
    // The failpoint writes this family's batches 300 ms late.
    let from = "failpoint-slow-commit-move";
    let person = iin("1982-07-14", true, 31);
    let join = event(
        "mv-1",
        "family.member_added",
        json!({"family_id": from, "iin": person, "role": "head"}),
    );
    assert_eq!(
        feed(&world.server, "population", POPULATION, ndjson(&[join]))
            .await
            .0,
        200
    );
    let disability = event(
        "mv-2",
        "disability.assessed",
        json!({"iin": person, "group": "2", "until": null}),
    );
    assert_eq!(
        feed(
            &world.server,
            "health",
            "health-secret",
            ndjson(&[disability])
        )
        .await
        .0,
        200
    );
    applied(&world.server).await;
    let moved = move_member(&world.server, "mv-3", &person, from, "F-MOVED-TO").await;
    assert_eq!(moved["members"][0]["disability"]["group"], "2", "{moved}");
}

/// The citizen leaves `from` and joins `to` as its head, in one request (event
/// ids `{id}-leave` and `{id}-join`); returns `to` once it has the member.
async fn move_member(
    server: &Server,
    id: &str,
    person: &str,
    from: &str,
    to: &str,
) -> serde_json::Value {
    let leave = event(
        &format!("{id}-leave"),
        "family.member_removed",
        json!({"family_id": from, "iin": person}),
    );
    let join = event(
        &format!("{id}-join"),
        "family.member_added",
        json!({"family_id": to, "iin": person, "role": "head"}),
    );
    assert_eq!(
        feed(server, "population", POPULATION, ndjson(&[leave, join]))
            .await
            .0,
        200
    );
    wait_family(server, to, |f| {
        f["members"].as_array().is_some_and(|m| m.len() == 1)
    })
    .await
}

#[actix_rt::test]
async fn active_families_stay_under_the_cap_and_passivated_ones_come_back() {
    let world = world_with(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "[actors]\nactive_families_max = 16\n",
    )
    .await;
    let mut events = Vec::new();
    for index in 0..120u32 {
        let family_id = format!("F-CAP-{index}");
        events.push(event(&format!("cap-{index}-a"), "family.member_added", json!({"family_id": family_id, "iin": iin("1975-03-03", index % 2 == 0, 100 + index * 60), "role": "head"})));
        events.push(event(
            &format!("cap-{index}-b"),
            "family.address_changed",
            json!({"family_id": family_id, "region": "KZ-15", "locality": "urban"}),
        ));
    }
    assert_eq!(
        feed(&world.server, "population", POPULATION, ndjson(&events))
            .await
            .0,
        200
    );
    eventually("120 families", Duration::from_secs(20), || async {
        let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
        (stats["families"] == 120).then_some(())
    })
    .await;
    // The gauges are set once the dispatcher has finished its batch.
    let passivated = eventually(
        "the passivation gauges",
        Duration::from_secs(10),
        || async {
            let passivated: i64 = metric(&world.server, "dfm_families_passivated_total")
                .await?
                .parse()
                .ok()?;
            (passivated >= 100).then_some(passivated)
        },
    )
    .await;
    let active: i64 = metric(&world.server, "dfm_families_active")
        .await
        .and_then(|v| v.parse().ok())
        .expect("dfm_families_active");
    assert!(active <= 16, "{active} active, {passivated} passivated");
    // A passivated family comes back from sled with all it knew.
    let more = event(
        "cap-0-c",
        "housing.changed",
        json!({"family_id": "F-CAP-0", "tenure": "owned", "area_m2": 70, "utilities": ["water"]}),
    );
    assert_eq!(
        feed(&world.server, "housing", "housing-secret", ndjson(&[more]))
            .await
            .0,
        200
    );
    let family = wait_family(&world.server, "F-CAP-0", |f| {
        f["housing"]["tenure"] == "owned"
    })
    .await;
    assert_eq!(family["region"], "KZ-15");
    assert_eq!(family["members"].as_array().unwrap().len(), 1);
}
