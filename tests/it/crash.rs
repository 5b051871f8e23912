//! Crashes at any moment lose no accepted input and pay nothing twice: the real
//! binary is killed with SIGKILL several times during a storm of consents and
//! payouts, and restarted on the same store.

use std::collections::BTreeMap;
use std::time::Duration;

use dfm::simulators::{BankSimulatorOptions, SmsSimulatorOptions};
use futures::future::join_all;

use crate::feeds::world_with;
use crate::support::*;

const FAMILIES: u32 = 60;
const KILLS: usize = 4;

#[actix_rt::test]
async fn sigkill_during_a_storm_of_consents_pays_every_benefit_exactly_once() {
    // A slow bank keeps payments in flight when the process dies.
    let mut world = world_with(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions {
            delay_first: 15,
            delay: Duration::from_millis(1500),
            pending_first: 10,
            ..Default::default()
        },
        ("72h", "48h"),
        "",
    )
    .await;
    let phone_of = |index: u32| format!("+7702{index:07}");
    let mut events = Vec::new();
    for index in 0..FAMILIES {
        let (family, _, _) = large_family(
            &format!("F-STORM-{index}"),
            4,
            2000 + index * 100,
            &phone_of(index),
        );
        events.extend(family);
    }
    send_all(&world.server, &events).await;
    // Every family is offered the large-family benefit by SMS.
    let codes: BTreeMap<u32, String> =
        eventually("all offers", Duration::from_secs(60), || async {
            let messages = world.sms.messages();
            let codes: BTreeMap<u32, String> = (0..FAMILIES)
                .filter_map(|index| {
                    let phone = phone_of(index);
                    let offer = messages
                        .iter()
                        .find(|m| m.to == phone && m.reference.contains("-offer-"))?;
                    let at = offer.text.find('#')?;
                    Some((index, offer.text[at + 1..at + 5].to_owned()))
                })
                .collect();
            (codes.len() == FAMILIES as usize).then_some(codes)
        })
        .await;
    // Consents arrive in waves; the process is killed after each wave, while the
    // replies are being applied and the payments are in flight.
    let mut acknowledged = vec![false; FAMILIES as usize];
    let waves = KILLS + 1;
    let per_wave = (FAMILIES as usize).div_ceil(waves);
    for wave in 0..waves {
        let start = wave * per_wave;
        let end = ((wave + 1) * per_wave).min(FAMILIES as usize);
        let server = &world.server;
        let answers = join_all((start..end).map(|index| {
            let phone = phone_of(index as u32);
            let text = format!("YES #{}", codes[&(index as u32)]);
            async move {
                (
                    index,
                    sms_reply(server, &format!("storm-{index}"), &phone, &text).await,
                )
            }
        }))
        .await;
        for (index, status) in answers {
            acknowledged[index] = status == 200;
        }
        if wave < KILLS {
            tokio::time::sleep(Duration::from_millis(150 * wave as u64)).await;
            world.server.kill();
            world.server.restart();
        }
    }
    // Replies that were not acknowledged are sent again, with the same id.
    for (index, done) in acknowledged.iter().enumerate() {
        if !done {
            let text = format!("YES #{}", codes[&(index as u32)]);
            assert_eq!(
                sms_reply(
                    &world.server,
                    &format!("storm-{index}"),
                    &phone_of(index as u32),
                    &text
                )
                .await,
                200
            );
        }
    }
    let stats = eventually("every consent paid", Duration::from_secs(90), || async {
        let (_, stats) = get(&world.server, "/v1/stats", VIEWER).await;
        (stats["entitlements"]["active"] == FAMILIES).then_some(stats)
    })
    .await;
    // The bank saw exactly one successful payment per family and period, no
    // reference reused for another payment, and dfm's books agree.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let succeeded = world.bank.succeeded_by_key();
    let duplicates: Vec<_> = succeeded.iter().filter(|(_, count)| **count > 1).collect();
    assert!(duplicates.is_empty(), "paid twice: {duplicates:?}");
    let paid = world
        .bank
        .payments()
        .into_iter()
        .filter(|p| p.status == "SUCC")
        .count();
    assert_eq!(
        paid,
        FAMILIES as usize,
        "lost: {}",
        FAMILIES as usize - paid
    );
    assert_eq!(world.bank.reference_conflicts(), 0);
    assert_eq!(stats["payments_succeeded"], FAMILIES, "{stats}");
    assert_eq!(
        stats["paid_total"],
        format!(
            "{}.{:02}",
            6_932_975u64 * FAMILIES as u64 / 100,
            6_932_975u64 * FAMILIES as u64 % 100
        )
    );
    eprintln!(
        "crash test: {FAMILIES} families, {KILLS} kills, {paid} payments, 0 duplicates, 0 lost"
    );
}
