//! Running the real `dfm` binary against gateways started by the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const POPULATION: &str = "pop-secret";
pub const OPERATOR: &str = "alice-secret";
pub const VIEWER: &str = "victor-secret";
pub const AUDITOR: &str = "aigerim-secret";
pub const SMS_TOKEN: &str = "sms-secret";

pub fn catalogue() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/programs.toml")
}

/// A configuration for the binary: loopback port 0, the given gateways.
pub fn config_text(
    store: &Path,
    sms_url: &str,
    bank_url: &str,
    consent: (&str, &str),
    extra: &str,
) -> String {
    format!(
        r#"
[server]
public_addr = "127.0.0.1:0"
admin_addr = "127.0.0.1:0"
[storage]
path = "{store}"
[sms]
url = "{sms_url}"
callback_token = "{SMS_TOKEN}"
timeout = "1s"
retry_delay_ms_min = 20
retry_delay_ms_max = 200
[bank]
url = "{bank_url}"
payer_fa = "KZ86125KZT5004100100@125"
timeout = "1s"
retry_delay_ms_min = 20
retry_delay_ms_max = 200
[consent]
reply_window = "{window}"
reminder_after = "{reminder}"
[[agency]]
name = "population"
token = "{POPULATION}"
[[agency]]
name = "income"
token = "income-secret"
[[agency]]
name = "health"
token = "health-secret"
[[agency]]
name = "housing"
token = "housing-secret"
[[agency]]
name = "education"
token = "education-secret"
[[agency]]
name = "social"
token = "social-secret"
[[agency]]
name = "payments"
token = "payments-secret"
[[operator]]
name = "alice"
role = "operator"
token = "{OPERATOR}"
[[operator]]
name = "victor"
role = "viewer"
token = "{VIEWER}"
[[operator]]
name = "aigerim"
role = "auditor"
token = "{AUDITOR}"
[programs]
catalogue = "{catalogue}"
year = 2026
[cycle]
timer_tick = "100ms"
{extra}
"#,
        store = store.display(),
        window = consent.0,
        reminder = consent.1,
        catalogue = catalogue().display(),
    )
}

pub struct Server {
    child: Child,
    pub public: String,
    pub admin: String,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Server {
    pub fn start(config: &Path, log: &Path) -> Server {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dfm"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "debug,actix_server=warn,actix_http=warn,h2=warn,hyper=warn,reqwest=warn,rustls=warn,sled=warn")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("dfm starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("dfm prints its addresses");
        let address = |key: &str| -> String {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key))
                .unwrap_or_else(|| {
                    panic!(
                        "no {key} in {line:?}; log: {}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    )
                })
                .to_owned()
        };
        Server {
            public: address("public="),
            admin: address("admin="),
            child,
            config: config.to_path_buf(),
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }

    /// SIGHUP: the service reads its configuration file again.
    pub fn hangup(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill -HUP");
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        self.child.wait().expect("wait")
    }

    pub fn restart(&mut self) {
        let config = self.config.clone();
        let log = self.log.clone();
        *self = Server::start(&config, &log);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test-only TLS file (`tests/fixtures/tls`).
pub fn tls_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A client that also trusts the test CA, so that every helper works against
/// a server started with TLS.
pub fn client() -> reqwest::Client {
    let authority = std::fs::read(tls_fixture("ca.pem")).expect("the test CA");
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .add_root_certificate(
            reqwest::Certificate::from_pem(&authority).expect("a PEM certificate"),
        )
        .build()
        .expect("client")
}

pub async fn feed(server: &Server, agency: &str, token: &str, body: String) -> (u16, Value) {
    let response = client()
        .post(format!("{}/v1/feeds/{agency}/events", server.public))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("feed request");
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

pub async fn get(server: &Server, path: &str, token: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}{path}", server.admin))
        .bearer_auth(token)
        .send()
        .await
        .expect("admin request");
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

pub async fn post(server: &Server, path: &str, token: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}{path}", server.admin))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("admin request");
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

pub async fn sms_reply(server: &Server, id: &str, from: &str, text: &str) -> u16 {
    client()
        .post(format!("{}/v1/sms/inbound", server.public))
        .bearer_auth(SMS_TOKEN)
        .json(&serde_json::json!({"id": id, "from": from, "text": text, "received_at": chrono::Utc::now().to_rfc3339()}))
        .send()
        .await
        .expect("sms callback")
        .status()
        .as_u16()
}

/// Polls until `check` returns Some, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > timeout {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn event(id: &str, kind: &str, data: Value) -> Value {
    serde_json::json!({"id": id, "type": kind, "occurred_at": "2026-11-02T09:00:00Z", "data": data})
}

pub fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| e.to_string() + "\n").collect()
}

/// Builds valid IINs: birth date, sex and a serial.
pub fn iin(birth: &str, male: bool, serial: u32) -> String {
    let date: chrono::NaiveDate = birth.parse().expect("date");
    let sex = if male {
        storage::ids::Sex::Male
    } else {
        storage::ids::Sex::Female
    };
    (serial..serial + 50)
        .find_map(|s| storage::ids::Iin::from_parts(date, sex, s))
        .expect("some serial is issuable")
        .to_string()
}

/// The events of a large family: two parents with phones and accounts, and
/// `children` children in school, in `region`, with a low income.
pub fn large_family(
    family_id: &str,
    children: u32,
    serial: u32,
    phone: &str,
) -> (Vec<(&'static str, Value)>, String, String) {
    let mother = iin("1988-03-14", false, serial);
    let father = iin("1986-07-02", true, serial);
    let mut events = vec![
        (
            "population",
            event(
                &format!("{family_id}-reg-m"),
                "citizen.registered",
                serde_json::json!({"iin": mother, "full_name": "Айгерім Сәрсенова", "birth_date": "1988-03-14", "sex": "female"}),
            ),
        ),
        (
            "population",
            event(
                &format!("{family_id}-reg-f"),
                "citizen.registered",
                serde_json::json!({"iin": father, "full_name": "Ерлан Сәрсенов", "birth_date": "1986-07-02", "sex": "male"}),
            ),
        ),
        (
            "population",
            event(
                &format!("{family_id}-add-f"),
                "family.member_added",
                serde_json::json!({"family_id": family_id, "iin": father, "role": "head"}),
            ),
        ),
        (
            "population",
            event(
                &format!("{family_id}-add-m"),
                "family.member_added",
                serde_json::json!({"family_id": family_id, "iin": mother, "role": "spouse"}),
            ),
        ),
        (
            "population",
            event(
                &format!("{family_id}-addr"),
                "family.address_changed",
                serde_json::json!({"family_id": family_id, "region": "KZ-35", "locality": "urban"}),
            ),
        ),
        (
            "population",
            event(
                &format!("{family_id}-phone-f"),
                "citizen.contact_changed",
                serde_json::json!({"iin": father, "phone": phone}),
            ),
        ),
        (
            "payments",
            event(
                &format!("{family_id}-acct-f"),
                "payout.account_changed",
                serde_json::json!({"iin": father, "iban": "KZ86125KZT5004100100"}),
            ),
        ),
    ];
    for child in 0..children {
        let birth = format!("201{}-0{}-1{}", child % 8 + 1, child % 9 + 1, child % 9);
        let child_iin = iin(&birth, child % 2 == 0, serial + 100 + child * 60);
        events.push((
            "population",
            event(
                &format!("{family_id}-add-c{child}"),
                "family.member_added",
                serde_json::json!({"family_id": family_id, "iin": child_iin, "role": "child"}),
            ),
        ));
    }
    (events, mother, father)
}

/// Sends events grouped by agency, in order within each agency.
pub async fn send_all(server: &Server, events: &[(&'static str, Value)]) {
    for agency in [
        "population",
        "income",
        "health",
        "housing",
        "education",
        "social",
        "payments",
    ] {
        let batch: Vec<Value> = events
            .iter()
            .filter(|(a, _)| *a == agency)
            .map(|(_, e)| e.clone())
            .collect();
        if batch.is_empty() {
            continue;
        }
        let token = if agency == "population" {
            POPULATION.to_owned()
        } else {
            format!("{agency}-secret")
        };
        let (status, answer) = feed(server, agency, &token, ndjson(&batch)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["rejected"].as_array().map(Vec::len),
            Some(0),
            "{answer}"
        );
    }
}

/// Today in Kazakhstan (UTC+5), the date the service's rules use.
pub fn local_today() -> chrono::NaiveDate {
    actors::scoring::local_date(chrono::Utc::now())
}

/// Posts as an operator's client does: a 503 (after a start, while the
/// scoring table is being built) is tried again after its `Retry-After`.
pub async fn post_when_ready(
    server: &Server,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    for _ in 0..300 {
        let (status, answer) = post(server, path, token, body.clone()).await;
        if status != 503 {
            return (status, answer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} still answers 503 after 30 s");
}

/// One metric's value on the admin port, as the scrape writes it.
pub async fn metric(server: &Server, name: &str) -> Option<String> {
    let metrics = client()
        .get(format!("{}/metrics", server.admin))
        .bearer_auth(VIEWER)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        Some(value.trim().to_owned())
    })
}

/// Waits until every accepted event is applied and written (the log's backlog
/// is 0). A family's actor answers reads as soon as it has applied an event;
/// the counters of `/v1/stats` and the stored record follow its batch's commit,
/// which the dispatcher's commit thread writes a moment later.
pub async fn applied(server: &Server) {
    eventually("the log applied", Duration::from_secs(20), || async {
        (metric(server, "dfm_log_backlog").await? == "0").then_some(())
    })
    .await
}
