//! Consent-then-payout, black-box: offers by SMS, replies through the callback,
//! payments to the bank simulator, with the gateways failing in the ways the
//! contract allows.

use std::time::Duration;

use dfm::simulators::{BankSimulatorOptions, SmsSimulatorOptions};
use serde_json::{json, Value};

use crate::feeds::{wait_family, world, world_with, World};
use crate::support::*;

/// The code (`#1234`) of the newest offer SMS sent to `phone` for a benefit
/// whose name contains `benefit`.
pub async fn offer_code(world: &World, phone: &str, benefit: &str) -> String {
    eventually(
        &format!("offer SMS to {phone}"),
        Duration::from_secs(20),
        || async {
            world
                .sms
                .messages()
                .into_iter()
                .rev()
                .find(|m| {
                    m.to == phone && m.text.contains(benefit) && m.reference.contains("-offer-")
                })
                .and_then(|m| {
                    let at = m.text.find('#')?;
                    Some(m.text[at + 1..at + 5].to_owned())
                })
        },
    )
    .await
}

fn entitlement<'a>(family: &'a Value, program: &str) -> Option<&'a Value> {
    family["entitlements"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["program"] == program)
}

fn state_of(family: &Value, program: &str) -> String {
    entitlement(family, program).map_or_else(String::new, |e| {
        e["state"].as_str().unwrap_or("").to_owned()
    })
}

pub async fn wait_state(world: &World, family_id: &str, program: &str, state: &str) -> Value {
    wait_family(&world.server, family_id, |f| state_of(f, program) == state).await
}

fn this_month() -> String {
    local_today().format("%Y-%m").to_string()
}

#[actix_rt::test]
async fn a_monthly_benefit_is_offered_consented_paid_and_paid_again_by_the_cycle_once() {
    let world = world().await;
    let phone = "+77015550001";
    let (events, _, _) = large_family("F-PAY", 4, 41, phone);
    send_all(&world.server, &events).await;
    let code = offer_code(&world, phone, "многодетн").await;
    let offer = world
        .sms
        .messages()
        .into_iter()
        .find(|m| m.to == phone)
        .unwrap();
    assert!(offer.text.contains("69329.75"), "{}", offer.text);
    assert!(
        offer.text.contains("ИӘ") && offer.text.contains("ДА"),
        "{}",
        offer.text
    );
    wait_state(&world, "F-PAY", "large_family", "offered").await;
    assert_eq!(
        sms_reply(&world.server, "in-1", phone, &format!("YES {code}")).await,
        200
    );
    let family = wait_state(&world, "F-PAY", "large_family", "active").await;
    let payments = entitlement(&family, "large_family").unwrap()["payments"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(payments.len(), 1, "{family}");
    assert_eq!(payments[0]["period"], this_month());
    assert_eq!(payments[0]["amount"], "69329.75");
    let paid = world.bank.payments();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].payee_fa, "KZ86125KZT5004100100@125");
    assert_eq!(paid[0].purpose, format!("large_family {}", this_month()));
    assert_eq!(paid[0].amount, "69329.75");
    // The next month's cycle pays once, however often it runs; this month's
    // cycle pays nothing more.
    let next = chrono::Datelike::with_day(&local_today(), 1).unwrap() + chrono::Duration::days(32);
    let next_month = next.format("%Y-%m").to_string();
    for _ in 0..2 {
        let (status, _) = post(
            &world.server,
            &format!("/v1/cycles/{next_month}/run"),
            OPERATOR,
            json!({}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = post(
            &world.server,
            &format!("/v1/cycles/{}/run", this_month()),
            OPERATOR,
            json!({}),
        )
        .await;
        assert_eq!(status, 200);
    }
    eventually(
        "the next month's payment",
        Duration::from_secs(20),
        || async { (world.bank.payments().len() == 2).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paid = world.bank.payments();
    assert_eq!(paid.len(), 2, "{paid:?}");
    assert_eq!(paid[1].purpose, format!("large_family {next_month}"));
    // A replayed SMS id changes nothing.
    assert_eq!(
        sms_reply(&world.server, "in-1", phone, &format!("YES {code}")).await,
        200
    );
    let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
    assert_eq!(stats["entitlements"]["active"], 1, "{stats}");
    assert_eq!(stats["paid_total"], "138659.50", "{stats}");
}

/// A mother with a baby born two months ago: birth allowance (one-off) and
/// childcare allowance (monthly) are both offered to her phone.
async fn newborn_family(
    world: &World,
    family_id: &str,
    serial: u32,
    phone: &str,
    with_account: bool,
) -> String {
    let today = local_today();
    let born = today - chrono::Duration::days(60);
    let mother = iin("1994-09-09", false, serial);
    let baby = iin(&born.to_string(), true, serial);
    let mut events = vec![
        (
            "population",
            event(
                &format!("{family_id}-1"),
                "family.member_added",
                json!({"family_id": family_id, "iin": mother, "role": "head"}),
            ),
        ),
        (
            "population",
            event(
                &format!("{family_id}-2"),
                "family.member_added",
                json!({"family_id": family_id, "iin": baby, "role": "child"}),
            ),
        ),
        (
            "population",
            event(
                &format!("{family_id}-3"),
                "citizen.contact_changed",
                json!({"iin": mother, "phone": phone}),
            ),
        ),
        (
            "population",
            event(
                &format!("{family_id}-4"),
                "family.address_changed",
                json!({"family_id": family_id, "region": "KZ-61", "locality": "rural"}),
            ),
        ),
    ];
    if with_account {
        events.push((
            "payments",
            event(
                &format!("{family_id}-5"),
                "payout.account_changed",
                json!({"iin": mother, "iban": "KZ45722S000054326792"}),
            ),
        ));
    }
    send_all(&world.server, &events).await;
    mother
}

#[actix_rt::test]
async fn a_one_off_goes_to_the_social_wallet_and_two_open_requests_need_their_codes() {
    let world = world().await;
    let phone = "+77015550002";
    let mother = newborn_family(&world, "F-BIRTH", 51, phone, true).await;
    let birth_code = offer_code(&world, phone, "рождение").await;
    let care_code = offer_code(&world, phone, "уходу").await;
    assert_ne!(birth_code, care_code);
    // Two requests open on one phone: an answer without a code gets help.
    assert_eq!(sms_reply(&world.server, "in-b1", phone, "ДА").await, 200);
    eventually("help SMS", Duration::from_secs(10), || async {
        world
            .sms
            .messages()
            .iter()
            .any(|m| m.to == phone && m.reference == "help-in-b1")
            .then_some(())
    })
    .await;
    let family = wait_state(&world, "F-BIRTH", "birth_allowance", "offered").await;
    assert_eq!(state_of(&family, "childcare_allowance"), "offered");
    // The wallet for the birth allowance, a refusal for childcare.
    assert_eq!(
        sms_reply(
            &world.server,
            "in-b2",
            phone,
            &format!("#{birth_code} әмиян")
        )
        .await,
        200
    );
    assert_eq!(
        sms_reply(&world.server, "in-b3", phone, &format!("{care_code} нет")).await,
        200
    );
    let family = wait_state(&world, "F-BIRTH", "birth_allowance", "paid").await;
    assert_eq!(state_of(&family, "childcare_allowance"), "declined");
    let paid = world.bank.payments();
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(paid[0].payee_fa, format!("{mother}@social-wallet"));
    let born = local_today() - chrono::Duration::days(60);
    assert_eq!(
        paid[0].purpose,
        format!("birth_allowance {}", born.format("%Y-%m"))
    );
    // 38 MCI × 4,325 KZT for a first child.
    assert_eq!(paid[0].amount, "164350.00");
    // An unknown phone gets help and changes nothing.
    assert_eq!(
        sms_reply(&world.server, "in-b4", "+77779999999", "YES").await,
        200
    );
    eventually("help to a stranger", Duration::from_secs(10), || async {
        world
            .sms
            .messages()
            .iter()
            .any(|m| m.reference == "help-in-b4")
            .then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn no_answer_gets_one_reminder_with_the_same_code_then_expires() {
    let world = world_with(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("3s", "1s"),
        "",
    )
    .await;
    let phone = "+77015550003";
    let (events, _, _) = large_family("F-SILENT", 5, 61, phone);
    send_all(&world.server, &events).await;
    let code = offer_code(&world, phone, "многодетн").await;
    let family = wait_state(&world, "F-SILENT", "large_family", "expired").await;
    let to_phone: Vec<_> = world
        .sms
        .messages()
        .into_iter()
        .filter(|m| m.to == phone)
        .collect();
    let reminders: Vec<_> = to_phone
        .iter()
        .filter(|m| m.reference.contains("-reminder-"))
        .collect();
    assert_eq!(reminders.len(), 1, "{to_phone:?}");
    assert!(reminders[0].text.contains(&format!("#{code}")));
    // A late answer finds no open request: help, nothing paid.
    assert_eq!(
        sms_reply(&world.server, "late-1", phone, &format!("YES {code}")).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(world.bank.payments().is_empty());
    assert_eq!(state_of(&family, "large_family"), "expired");
    // An operator re-offers it: a new SMS, and the answer is honoured.
    let id = entitlement(&family, "large_family").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = post(
        &world.server,
        &format!("/v1/families/F-SILENT/entitlements/{id}/reoffer"),
        OPERATOR,
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_state(&world, "F-SILENT", "large_family", "offered").await;
    assert_eq!(sms_reply(&world.server, "late-2", phone, "1").await, 200);
    wait_state(&world, "F-SILENT", "large_family", "active").await;
}

#[actix_rt::test]
async fn gateways_that_fail_time_out_and_hesitate_still_pay_exactly_once() {
    let world = world_with(
        SmsSimulatorOptions {
            fail_first: 3,
            ..Default::default()
        },
        BankSimulatorOptions {
            fail_first: 2,
            delay_first: 1,
            delay: Duration::from_secs(3),
            pending_first: 1,
            ..Default::default()
        },
        ("72h", "48h"),
        "",
    )
    .await;
    let phone = "+77015550004";
    let (events, _, _) = large_family("F-FAULT", 6, 71, phone);
    send_all(&world.server, &events).await;
    let code = offer_code(&world, phone, "многодетн").await;
    assert!(world.sms.requests() > 3, "the SMS was retried after 500s");
    assert_eq!(
        sms_reply(&world.server, "in-f1", phone, &format!("да {code}")).await,
        200
    );
    let family = wait_state(&world, "F-FAULT", "large_family", "active").await;
    let paid = world.bank.payments();
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(paid[0].status, "SUCC");
    assert!(
        world.bank.requests() > 3,
        "the bank was retried and asked for status"
    );
    let payments = entitlement(&family, "large_family").unwrap()["payments"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "succeeded");
}

#[actix_rt::test]
async fn a_rejected_payment_waits_for_a_new_account_and_is_paid_with_a_new_reference() {
    let world = world_with(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions {
            reject_payee_prefix: Some("KZ86125".to_owned()),
            ..Default::default()
        },
        ("72h", "48h"),
        "",
    )
    .await;
    let phone = "+77015550005";
    let (events, _, father) = large_family("F-RJCT", 4, 81, phone);
    send_all(&world.server, &events).await;
    let code = offer_code(&world, phone, "многодетн").await;
    assert_eq!(
        sms_reply(&world.server, "in-r1", phone, &format!("YES #{code}")).await,
        200
    );
    let family = wait_state(&world, "F-RJCT", "large_family", "payment_failed").await;
    let first = entitlement(&family, "large_family").unwrap()["payments"][0]["reference_id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("payment-failed SMS", Duration::from_secs(10), || async {
        world
            .sms
            .messages()
            .iter()
            .any(|m| m.to == phone && m.reference.contains("payment-failed"))
            .then_some(())
    })
    .await;
    let account = event(
        "F-RJCT-acct2",
        "payout.account_changed",
        json!({"iin": father, "iban": "KZ45722S000054326792"}),
    );
    assert_eq!(
        feed(
            &world.server,
            "payments",
            "payments-secret",
            ndjson(&[account])
        )
        .await
        .0,
        200
    );
    let family = wait_state(&world, "F-RJCT", "large_family", "active").await;
    let payments = entitlement(&family, "large_family").unwrap()["payments"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(payments.len(), 2, "{family}");
    assert_ne!(payments[1]["reference_id"].as_str().unwrap(), first);
    assert_eq!(payments[1]["status"], "succeeded");
    let paid: Vec<_> = world
        .bank
        .payments()
        .into_iter()
        .filter(|p| p.status == "SUCC")
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].payee_fa, "KZ45722S000054326792@722");
}

/// An SMS gateway that stays down holds its own orders in the outbox, not the
/// rest of the service: more offers than the notifier can hold in its mailbox
/// and in flight (1,024 + 64) are decided, and every family is still applied.
#[actix_rt::test]
async fn an_sms_gateway_that_stays_down_does_not_hold_back_the_feeds() {
    const FAMILIES: u32 = 1_300;
    let world = world_with(
        SmsSimulatorOptions {
            fail_first: u32::MAX,
            ..Default::default()
        },
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "",
    )
    .await;
    let mut events = Vec::new();
    for index in 0..FAMILIES {
        let (family, _, _) = large_family(
            &format!("F-DOWN-{index}"),
            4,
            1 + index * 7,
            &format!("+7705{index:07}"),
        );
        events.extend(family);
    }
    send_all(&world.server, &events).await;
    let stats = eventually("every family applied", Duration::from_secs(120), || async {
        let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
        (stats["entitlements"]["offered"] == FAMILIES).then_some(stats)
    })
    .await;
    assert_eq!(stats["families"], FAMILIES, "{stats}");
    // Nothing was delivered: every offer is still waiting, none was lost.
    assert!(world.sms.messages().is_empty());
}
