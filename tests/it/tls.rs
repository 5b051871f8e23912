//! TLS, black-box: both ports over HTTPS with `[server] tls_cert`/`tls_key`,
//! and both gateways over HTTPS, trusted through `[sms]`/`[bank] ca_cert`.

use std::time::Duration;

use dfm::simulators::{BankSimulatorOptions, SmsSimulatorOptions};

use crate::feeds::{world_edited, World};
use crate::payout::{offer_code, wait_state};
use crate::support::*;

/// A world whose gateways speak HTTPS with the test certificate; `server_tls`
/// turns it on for dfm's ports too, `trust` names the test CA in both
/// gateways' `ca_cert`.
async fn tls_world(server_tls: bool, trust: bool) -> World {
    let tls =
        dfm::tls::ServerTls::from_files(&tls_fixture("server.pem"), &tls_fixture("server.key"))
            .expect("the test certificate")
            .config;
    world_edited(
        SmsSimulatorOptions {
            tls: Some(tls.clone()),
            ..Default::default()
        },
        BankSimulatorOptions {
            tls: Some(tls),
            ..Default::default()
        },
        ("72h", "48h"),
        "",
        |mut text, _| {
            if server_tls {
                text = text.replace(
                    "[server]\n",
                    &format!(
                        "[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
                        tls_fixture("server.pem"),
                        tls_fixture("server.key")
                    ),
                );
            }
            if trust {
                let ca = format!("ca_cert = {:?}\n", tls_fixture("ca.pem"));
                text = text
                    .replace("[sms]\n", &format!("[sms]\n{ca}"))
                    .replace("[bank]\n", &format!("[bank]\n{ca}"));
            }
            text
        },
    )
    .await
}

#[actix_rt::test]
async fn a_family_is_offered_consents_and_is_paid_with_every_hop_over_tls() {
    let world = tls_world(true, true).await;
    let server = &world.server;
    assert!(server.public.starts_with("https://"), "{}", server.public);
    assert!(server.admin.starts_with("https://"), "{}", server.admin);
    assert!(world.sms.url().starts_with("https://"));
    // Plain HTTP gets no answer from either port, and a client that does not
    // trust the certificate's authority does not get one either.
    for base in [&server.public, &server.admin] {
        let plain = base.replacen("https://", "http://", 1);
        let answer = reqwest::Client::new()
            .get(format!("{plain}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        assert!(answer.is_err(), "plain HTTP to {base}: {answer:?}");
        let untrusting = reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await;
        assert!(untrusting.is_err(), "{base} without the CA: {untrusting:?}");
    }
    let (status, _) = get(server, "/healthz", OPERATOR).await;
    assert_eq!(status, 200);
    // The feed, the offer SMS, the reply callback and the payment.
    let phone = "+77015550901";
    let (events, _, _) = large_family("F-TLS", 4, 71, phone);
    send_all(server, &events).await;
    let code = offer_code(&world, phone, "многодетн").await;
    assert_eq!(
        sms_reply(server, "tls-in-1", phone, &format!("YES {code}")).await,
        200
    );
    wait_state(&world, "F-TLS", "large_family", "active").await;
    let paid = world.bank.payments();
    assert_eq!(paid.len(), 1, "{paid:?}");
    assert_eq!(paid[0].purpose.split(' ').next(), Some("large_family"));
}

#[actix_rt::test]
async fn a_gateway_whose_authority_is_not_trusted_gets_nothing_and_is_retried() {
    let world = tls_world(false, false).await;
    let (events, _, _) = large_family("F-UNTRUSTED", 4, 72, "+77015550902");
    send_all(&world.server, &events).await;
    let retried = eventually(
        "SMS attempts refused by the certificate check",
        Duration::from_secs(20),
        || async {
            metric(&world.server, "dfm_sms_total{outcome=\"retried\"}")
                .await
                .and_then(|value| value.parse::<u64>().ok())
                .filter(|retried| *retried >= 2)
        },
    )
    .await;
    assert!(retried >= 2);
    assert_eq!(world.sms.requests(), 0, "no request got past the handshake");
    assert!(world.sms.messages().is_empty());
}

/// A new client that trusts `authority` (a fixture) alone: no connection and
/// no TLS session of an earlier request, which would resume without being
/// shown the certificate.
fn client_trusting(authority: &str) -> reqwest::Client {
    let pem = std::fs::read(tls_fixture(authority)).expect("a test authority");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Whether a client trusting `authority` alone gets an answer from the admin port.
async fn healthy(authority: &str, server: &Server) -> bool {
    client_trusting(authority)
        .get(format!("{}/healthz", server.admin))
        .send()
        .await
        .is_ok_and(|answer| answer.status() == 200)
}

#[actix_rt::test]
async fn sighup_presents_the_certificate_now_in_the_files_unless_they_are_refused() {
    let put = |dir: &std::path::Path, cert: &str, key: &str| {
        std::fs::copy(tls_fixture(cert), dir.join("cert.pem")).expect("certificate copied");
        std::fs::copy(tls_fixture(key), dir.join("key.pem")).expect("key copied");
    };
    let world = world_edited(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "",
        |text, dir| {
            put(dir, "server.pem", "server.key");
            text.replace(
                "[server]\n",
                &format!(
                    "[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
                    dir.join("cert.pem"),
                    dir.join("key.pem")
                ),
            )
        },
    )
    .await;
    let server = &world.server;
    let (first, second) = ("ca.pem", "ca2.pem");
    assert!(healthy(first, server).await);
    assert!(!healthy(second, server).await);
    put(world.dir.path(), "server2.pem", "server2.key");
    server.hangup();
    eventually("the new certificate", Duration::from_secs(10), || async {
        healthy(second, server).await.then_some(())
    })
    .await;
    assert!(!healthy(first, server).await);
    // A key that is not the certificate's: the configuration is refused and
    // the certificate in use stays.
    put(world.dir.path(), "server2.pem", "server.key");
    server.hangup();
    eventually(
        "the refusal in the log",
        Duration::from_secs(10),
        || async {
            std::fs::read_to_string(&server.log)
                .ok()
                .filter(|log| log.contains("SIGHUP: the configuration is refused"))
        },
    )
    .await;
    assert!(healthy(second, server).await);
}

/// A new client that trusts the test CA and shows the client certificate
/// `identity` (a fixture pair: `NAME.pem` and `NAME.key`) if given. It keeps
/// no connection: each request opens one.
fn client_showing(identity: Option<&str>) -> reqwest::Client {
    let authority = std::fs::read(tls_fixture("ca.pem")).expect("the test CA");
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&authority).expect("a PEM"))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5));
    if let Some(name) = identity {
        let mut pem = std::fs::read(tls_fixture(&format!("{name}.pem"))).expect("certificate");
        pem.extend(std::fs::read(tls_fixture(&format!("{name}.key"))).expect("key"));
        builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("an identity"));
    }
    builder.build().expect("client")
}

/// A world whose ports speak TLS and both ask for client certificates signed
/// by the test agencies' authority (`tls_client_ca` and `tls_operator_ca`),
/// with `from` replaced by `to` in the configuration.
async fn client_certificate_world(from: &str, to: &str) -> World {
    world_edited(
        SmsSimulatorOptions::default(),
        BankSimulatorOptions::default(),
        ("72h", "48h"),
        "",
        |text, _| {
            text.replace(
                "[server]\n",
                &format!(
                    "[server]\ntls_cert = {:?}\ntls_key = {:?}\ntls_client_ca = {ca:?}\ntls_operator_ca = {ca:?}\n",
                    tls_fixture("server.pem"),
                    tls_fixture("server.key"),
                    ca = tls_fixture("agencies-ca.pem")
                ),
            )
            .replacen(from, to, 1)
        },
    )
    .await
}

/// Posts `body` as `agency` with its token over a connection showing
/// `identity`: the status and body, or `None` if no answer came.
async fn post_showing(
    server: &Server,
    identity: Option<&str>,
    agency: &str,
    token: &str,
    body: &str,
) -> Option<(u16, String)> {
    let answer = client_showing(identity)
        .post(format!("{}/v1/feeds/{agency}/events", server.public))
        .bearer_auth(token)
        .body(body.to_owned())
        .send()
        .await
        .ok()?;
    Some((answer.status().as_u16(), answer.text().await.ok()?))
}

#[actix_rt::test]
async fn an_agency_bound_to_its_client_certificate_is_served_only_over_a_connection_showing_it() {
    let world = client_certificate_world(
        &format!("token = \"{POPULATION}\"\n"),
        &format!("token = \"{POPULATION}\"\nclient_cert_name = \"population.agencies.test\"\n"),
    )
    .await;
    let server = &world.server;
    let registration = |id: &str, serial: u32| {
        ndjson(&[event(
            id,
            "citizen.registered",
            serde_json::json!({"iin": iin("1990-05-01", true, serial), "full_name": "Тест Тестов", "birth_date": "1990-05-01", "sex": "male"}),
        )])
    };
    // The token alone, or with a certificate for another name, is refused
    // with the reason; nothing is accepted.
    let first = registration("m-1", 11);
    let as_population = |identity| post_showing(server, identity, "population", POPULATION, &first);
    let (status, body) = as_population(None)
        .await
        .expect("an answer without a certificate");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("shows no client certificate"), "{body}");
    let (status, body) = as_population(Some("client-income"))
        .await
        .expect("an answer with another agency's certificate");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("not for its client certificate name"),
        "{body}"
    );
    // A certificate for the right name that the agencies' authority did not
    // sign gets no answer: the handshake is refused.
    let rogue = as_population(Some("client-rogue")).await;
    assert!(rogue.is_none(), "{rogue:?}");
    // Its own certificate and its token: accepted, and the event's status
    // is read the same way.
    let (status, body) = as_population(Some("client-population"))
        .await
        .expect("an answer with the agency's certificate");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accepted\":1"), "{body}");
    let status_of = |identity: Option<&'static str>| {
        let url = format!("{}/v1/feeds/population/events/m-1", server.public);
        async move {
            client_showing(identity)
                .get(url)
                .bearer_auth(POPULATION)
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status_of(Some("client-population")).await, 200);
    assert_eq!(status_of(None).await, 403);
    // One client, each request on a new connection (resuming the TLS
    // session where client and server agree to): known by its certificate
    // each time.
    let agency = client_showing(Some("client-population"));
    for id in ["m-3", "m-4", "m-5"] {
        let answer = agency
            .post(format!("{}/v1/feeds/population/events", server.public))
            .bearer_auth(POPULATION)
            .body(registration(id, 13))
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), 200, "{id}");
    }
    // The certificate does not stand in for the token.
    let (status, _) = post_showing(
        server,
        Some("client-population"),
        "population",
        "wrong-token",
        &registration("m-2", 12),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 401);
    // An agency with no client_cert_name, and the SMS gateway's callback,
    // still connect without a certificate.
    let income = ndjson(&[event(
        "i-1",
        "income.reported",
        serde_json::json!({"iin": iin("1990-05-01", true, 11), "month": "2026-10", "amount": "250000.00", "source": "salary"}),
    )]);
    let (status, body) = post_showing(server, None, "income", "income-secret", &income)
        .await
        .expect("an answer to income");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sms_reply(server, "in-1", "+77015550999", "YES 1234").await,
        200
    );
}

#[actix_rt::test]
async fn the_sms_gateway_bound_to_its_client_certificate_is_heard_only_over_a_connection_showing_it(
) {
    let world = client_certificate_world(
        "[sms]\n",
        "[sms]\ncallback_cert_name = \"sms.gateway.test\"\n",
    )
    .await;
    let reply = |identity: Option<&'static str>, id: &'static str| {
        let url = format!("{}/v1/sms/inbound", world.server.public);
        async move {
            let answer = client_showing(identity)
                .post(url)
                .bearer_auth(SMS_TOKEN)
                .json(&serde_json::json!({"id": id, "from": "+77015550998", "text": "YES 1234"}))
                .send()
                .await
                .expect("an answer");
            (
                answer.status().as_u16(),
                answer.text().await.unwrap_or_default(),
            )
        }
    };
    let (status, body) = reply(None, "in-1").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("the SMS gateway must connect"), "{body}");
    let (status, body) = reply(Some("client-population"), "in-1").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(reply(Some("client-sms"), "in-1").await.0, 200);
}

#[actix_rt::test]
async fn an_operator_bound_to_a_client_certificate_is_served_only_over_a_connection_showing_it() {
    let world = client_certificate_world(
        &format!("token = \"{OPERATOR}\"\n"),
        &format!("token = \"{OPERATOR}\"\nclient_cert_name = \"alice.operators.test\"\n"),
    )
    .await;
    let stats = |identity: Option<&'static str>, token: &'static str| {
        let url = format!("{}/v1/stats", world.server.admin);
        async move {
            let answer = client_showing(identity)
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .ok()?;
            Some((
                answer.status().as_u16(),
                answer.text().await.unwrap_or_default(),
            ))
        }
    };
    let (status, body) = stats(None, OPERATOR).await.expect("an answer");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("operator alice must connect"), "{body}");
    let (status, body) = stats(Some("client-population"), OPERATOR)
        .await
        .expect("an answer");
    assert_eq!(status, 403, "{body}");
    assert!(stats(Some("client-rogue"), OPERATOR).await.is_none());
    assert_eq!(
        stats(Some("client-alice"), OPERATOR).await.map(|a| a.0),
        Some(200)
    );
    // Another operator, not bound, still needs only the token.
    assert_eq!(stats(None, VIEWER).await.map(|a| a.0), Some(200));
    // SIGHUP takes a new name with the tokens: the operator's certificate no
    // longer names it, and another certificate the authority signed does.
    let config = world.dir.path().join("dfm.toml");
    let text = std::fs::read_to_string(&config).expect("the configuration");
    let renamed = text.replace("alice.operators.test", "population.agencies.test");
    std::fs::write(&config, renamed).expect("the configuration written");
    world.server.hangup();
    eventually("the new name", Duration::from_secs(10), || async {
        (stats(Some("client-population"), OPERATOR)
            .await
            .map(|a| a.0)
            == Some(200))
        .then_some(())
    })
    .await;
    assert_eq!(
        stats(Some("client-alice"), OPERATOR).await.map(|a| a.0),
        Some(403)
    );
}
