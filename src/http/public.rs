//! The public port: agency feeds and the SMS gateway's reply callback.
//!
//! Both answer only once what they accepted is durable (group commit). A feed
//! event is validated alone: a bad one is rejected with its line and reason and
//! the rest of the batch goes on. Nothing is half-applied on 400, 401, 413 or 503.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use storage::event::{self, LogEntry};
use storage::ids::Phone;
use storage::store::SmsOrder;

use super::{bearer, require_certificate, same_secret, ApiError};
use crate::service::AppState;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/v1/feeds/{agency}/events", web::post().to(feed))
        .route("/v1/feeds/{agency}/events/{id}", web::get().to(feed_event))
        .route("/v1/sms/inbound", web::post().to(sms_inbound))
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().body("ok") }),
        );
}

/// On every feed answer: accepted events not applied yet (dfm's addition).
pub const BACKLOG_HEADER: &str = "X-Dfm-Backlog";

/// Each agency's accepted events not applied yet, so that one agency's flood
/// gets 503 at `server.agency_backlog_max` and leaves the rest of the shared
/// backlog (`server.log_backlog_max`) to the others. Like the shared limit it
/// is checked before a request is read, so one request may go past it. At
/// start it counts what the log holds unapplied ([`AgencyBacklog::from_log`]),
/// so a restart does not reset an agency's share.
#[derive(Debug, Default)]
pub struct AgencyBacklog {
    agencies: Mutex<HashMap<String, Pending>>,
}

#[derive(Debug, Default)]
struct Pending {
    /// The last sequence number of each accepted append, and its events.
    appends: BTreeMap<u64, u64>,
    events: u64,
}

/// Log entries read per step when [`AgencyBacklog::from_log`] counts the log.
const BACKLOG_READ_PAGE: usize = 20_000;

impl AgencyBacklog {
    /// Each agency's feed events in the log after `applied`: what a process
    /// that stopped (or crashed) had accepted and not applied yet.
    pub fn from_log(store: &storage::Store, applied: u64) -> storage::store::Result<Self> {
        let backlog = AgencyBacklog::default();
        let mut after = applied;
        loop {
            let page = store.read_log(after, BACKLOG_READ_PAGE)?;
            let Some(&(last, _)) = page.last() else {
                return Ok(backlog);
            };
            let mut by_agency: HashMap<String, Vec<u64>> = HashMap::new();
            for (seq, entry) in page {
                if let LogEntry::Feed { agency, .. } = entry {
                    by_agency.entry(agency).or_default().push(seq);
                }
            }
            for (agency, seqs) in by_agency {
                backlog.accepted(&agency, &seqs);
            }
            after = last;
        }
    }

    /// `agency`'s accepted events not applied yet, when everything through
    /// `applied` is. Forgets the appends that are applied.
    pub fn pending(&self, agency: &str, applied: u64) -> u64 {
        let mut agencies = self.agencies.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pending) = agencies.get_mut(agency) else {
            return 0;
        };
        let later = pending.appends.split_off(&applied.saturating_add(1));
        let done = std::mem::replace(&mut pending.appends, later);
        pending.events -= done.values().sum::<u64>();
        pending.events
    }

    /// Counts an append of `agency` (its sequence numbers, ascending).
    pub fn accepted(&self, agency: &str, seqs: &[u64]) {
        let Some(&last) = seqs.last() else {
            return;
        };
        let count = u64::try_from(seqs.len()).unwrap_or(u64::MAX);
        let mut agencies = self.agencies.lock().unwrap_or_else(|e| e.into_inner());
        let pending = agencies.entry(agency.to_owned()).or_default();
        *pending.appends.entry(last).or_insert(0) += count;
        pending.events += count;
    }
}

#[derive(Serialize)]
struct Rejected {
    line: usize,
    id: Option<String>,
    error: String,
}

#[derive(Serialize)]
struct FeedAnswer {
    accepted: usize,
    duplicates: usize,
    rejected: Vec<Rejected>,
}

/// The agency the path names, if the request carries its token (401
/// otherwise) and, for an agency with a `client_cert_name`, comes over a
/// connection whose client certificate is for that name (403 otherwise).
fn authorize_agency(
    state: &AppState,
    request: &HttpRequest,
    name: &str,
) -> Result<crate::config::Agency, ApiError> {
    let agency = state
        .credentials()
        .agencies
        .iter()
        .find(|a| a.name == name)
        .filter(|a| bearer(request).is_some_and(|token| same_secret(token, &a.token)))
        .cloned()
        .ok_or(ApiError::Unauthorized)?;
    require_certificate(
        request,
        agency.client_cert_name.as_ref(),
        &format!("agency {name}"),
    )?;
    Ok(agency)
}

#[derive(Serialize)]
struct EventStatus {
    id: String,
    seq: u64,
    /// Applied to its family (or citizen) and written.
    applied: bool,
    /// Not applied, and never will be by itself: applying it crashed its
    /// family's actor every time it was tried, so it waits for an operator
    /// (`GET /v1/quarantine` on the admin port).
    set_aside: bool,
}

/// An agency asks what became of one of its events (dfm's addition): 404 if
/// dfm never accepted that id from it.
async fn feed_event(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (agency_name, id) = path.into_inner();
    let agency = &authorize_agency(&state, &request, &agency_name)?;
    let seq = state
        .store
        .feed_event_seq(&agency.name, &id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no event {id} accepted from {agency_name}")))?;
    let done = seq <= state.store.applied_through().map_err(ApiError::internal)?;
    let set_aside = done
        && state
            .store
            .is_quarantined(seq)
            .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(EventStatus {
        id,
        seq,
        applied: done && !set_aside,
        set_aside,
    }))
}

/// Splits a body into events, each with its line (NDJSON) or array position,
/// and validates each in one pass over its text. `Err` when the body is not
/// NDJSON or JSON at all.
fn parse_body(body: &[u8]) -> Result<Vec<(usize, event::ParsedEvent)>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("body is not UTF-8".to_owned()))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ApiError::BadRequest(
            "empty body: send NDJSON or a JSON array of events".to_owned(),
        ));
    }
    if trimmed.starts_with('[') {
        let elements: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("body is not a JSON array: {e}")))?;
        return Ok(elements
            .into_iter()
            .enumerate()
            .map(|(index, element)| (index + 1, event::parse_event_text(element.get())))
            .collect());
    }
    let lines: Vec<(usize, event::ParsedEvent)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, event::parse_event_text(line)))
        .collect();
    if lines.iter().all(|(_, parsed)| parsed.not_json) {
        return Err(ApiError::BadRequest(
            "body is neither NDJSON nor a JSON array".to_owned(),
        ));
    }
    Ok(lines)
}

async fn feed(
    state: web::Data<AppState>,
    request: HttpRequest,
    agency: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let agency_name = agency.into_inner();
    let agency = &authorize_agency(&state, &request, &agency_name)?;
    let backlog = state.store.backlog().map_err(ApiError::internal)?;
    if backlog >= state.config.log_backlog_max {
        state
            .metrics
            .inc("dfm_feed_busy_total", &[("limit", "shared")]);
        return Err(ApiError::Busy(format!(
            "{backlog} accepted events are waiting to be applied; retry shortly"
        )));
    }
    let applied = state.store.applied_through().map_err(ApiError::internal)?;
    let own = state.agency_backlog.pending(&agency.name, applied);
    if own >= state.config.agency_backlog_max {
        state
            .metrics
            .inc("dfm_feed_busy_total", &[("limit", "agency")]);
        return Err(ApiError::Busy(format!(
            "{own} events of agency {} are waiting to be applied (at most {} an agency); retry shortly",
            agency.name, state.config.agency_backlog_max
        )));
    }
    let events = parse_body(&body)?;
    if events.len() > state.config.events_per_request_max {
        return Err(ApiError::TooLarge(format!(
            "{} events in one request; at most {}",
            events.len(),
            state.config.events_per_request_max
        )));
    }
    let mut rejected = Vec::new();
    let mut entries = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut rejected_types: Vec<&'static str> = Vec::new();
    for (line, parsed) in events {
        match parsed.event {
            Ok(event) => {
                let type_name = event.data.type_name();
                if !agency.types.contains(type_name) {
                    rejected_types.push(type_name);
                    rejected.push(Rejected {
                        line,
                        id: parsed.id,
                        error: format!("agency {} may not send {type_name}", agency.name),
                    });
                    continue;
                }
                types.push(type_name);
                entries.push(LogEntry::Feed {
                    agency: agency.name.clone(),
                    event,
                });
            }
            Err(error) => {
                rejected_types.push(parsed.claimed_type.unwrap_or("unknown"));
                rejected.push(Rejected {
                    line,
                    id: parsed.id,
                    error: if parsed.not_json {
                        format!("line is {error}")
                    } else {
                        error.to_string()
                    },
                });
            }
        }
    }
    let appended = state
        .store
        .append_feed(&agency.name, entries)
        .map_err(ApiError::internal)?;
    state.agency_backlog.accepted(&agency.name, &appended.seqs);
    state
        .durability
        .durable()
        .await
        .map_err(|e| ApiError::Busy(format!("could not make the events durable: {e}")))?;
    state.inbox.wake();
    // One metrics update per (type, outcome), not per event.
    let duplicates: std::collections::BTreeSet<usize> =
        appended.duplicates.iter().copied().collect();
    let mut counts: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
    for (index, type_name) in types.iter().enumerate() {
        let outcome = if duplicates.contains(&index) {
            "duplicate"
        } else {
            "accepted"
        };
        *counts.entry((type_name, outcome)).or_insert(0) += 1;
    }
    for type_name in rejected_types {
        *counts.entry((type_name, "rejected")).or_insert(0) += 1;
    }
    for ((type_name, outcome), count) in counts {
        state.metrics.add(
            "dfm_events_total",
            &[
                ("agency", &agency.name),
                ("type", type_name),
                ("outcome", outcome),
            ],
            count,
        );
    }
    state
        .metrics
        .observe("dfm_feed_request_seconds", &[], started.elapsed());
    // How far applying is behind, this request included: an integrator can pace
    // itself before the 503 comes.
    let backlog = state.store.backlog().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((BACKLOG_HEADER, backlog.to_string()))
        .json(FeedAnswer {
            accepted: appended.seqs.len(),
            duplicates: appended.duplicates.len(),
            rejected,
        }))
}

#[derive(Deserialize)]
struct Inbound {
    id: String,
    from: String,
    text: String,
    received_at: Option<String>,
}

async fn sms_inbound(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let credentials = state.credentials();
    if !bearer(&request).is_some_and(|token| same_secret(token, &credentials.sms_callback_token)) {
        return Err(ApiError::Unauthorized);
    }
    require_certificate(
        &request,
        credentials.sms_callback_cert_name.as_ref(),
        "the SMS gateway",
    )?;
    let started = Instant::now();
    let inbound: Inbound = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not an inbound SMS: {e}")))?;
    if inbound.id.is_empty() || inbound.id.len() > event::EVENT_ID_LENGTH_MAX {
        return Err(ApiError::BadRequest(
            "id must be 1-128 characters".to_owned(),
        ));
    }
    let received_at: DateTime<Utc> = match &inbound.received_at {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|e| ApiError::BadRequest(format!("received_at is not RFC 3339: {e}")))?
            .with_timezone(&Utc),
        None => state.clock.now(),
    };
    let phone: Option<Phone> = inbound.from.parse().ok();
    let reply = actors::reply::parse(&inbound.text);
    let mut entry = None;
    let mut outcome = "help";
    if let (Some(phone), Some(reply)) = (&phone, reply) {
        let requests = state
            .store
            .open_requests(phone)
            .map_err(ApiError::internal)?;
        let candidates: Vec<_> = requests
            .into_iter()
            .filter(|request| reply.code.is_none_or(|code| code == request.code))
            .collect();
        if let [request] = candidates.as_slice() {
            outcome = "matched";
            entry = Some(LogEntry::SmsReply {
                family_id: request.family_id.clone(),
                entitlement_id: request.entitlement_id.clone(),
                answer: reply.answer,
                received_at,
            });
        } else if candidates.len() > 1 {
            outcome = "ambiguous";
        } else {
            outcome = "unmatched";
        }
    }
    let help_needed = entry.is_none();
    let stored = state
        .store
        .append_sms_reply(&inbound.id, entry)
        .map_err(ApiError::internal)?;
    if stored.is_none() {
        state
            .metrics
            .inc("dfm_sms_inbound_total", &[("outcome", "duplicate")]);
        return Ok(HttpResponse::Ok().json(serde_json::json!({"status": "duplicate"})));
    }
    let mut help = None;
    if help_needed {
        if let Some(phone) = phone {
            let order = SmsOrder {
                reference: format!("help-{}", inbound.id),
                to: phone,
                text: actors::texts::help(),
                family_id: None,
                created_at: state.clock.now(),
            };
            state.store.put_sms(&order).map_err(ApiError::internal)?;
            help = Some(order);
        }
    }
    let stored_at = Instant::now();
    state
        .durability
        .durable()
        .await
        .map_err(|e| ApiError::Busy(format!("could not store the reply: {e}")))?;
    state.inbox.wake();
    state
        .metrics
        .inc("dfm_sms_inbound_total", &[("outcome", outcome)]);
    state
        .metrics
        .observe("dfm_sms_inbound_durable_seconds", &[], stored_at.elapsed());
    state
        .metrics
        .observe("dfm_sms_inbound_seconds", &[], started.elapsed());
    if let Some(order) = help {
        let _ = state.notifier.send(actors::notifier::SendSms(order)).await;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "stored", "outcome": outcome})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::event::{EventData, FeedEvent};
    use storage::ids::{Iin, Sex};

    fn events(agency: &str, ids: &[&str]) -> Vec<LogEntry> {
        let born = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
        let iin = Iin::from_parts(born, Sex::Male, 1).unwrap();
        ids.iter()
            .map(|id| LogEntry::Feed {
                agency: agency.to_owned(),
                event: FeedEvent {
                    id: (*id).to_owned(),
                    occurred_at: Utc::now(),
                    data: EventData::SocialWalletOpened { iin },
                },
            })
            .collect()
    }

    #[test]
    fn a_restart_counts_each_agencys_unapplied_events_from_the_log() {
        let store = storage::Store::open_temporary().unwrap();
        for (agency, ids) in [
            ("income", &["i1", "i2", "i3"][..]),
            ("health", &["h1", "h2"][..]),
            ("income", &["i4"][..]),
        ] {
            store.append_feed(agency, events(agency, ids)).unwrap();
        }
        let nothing_applied = AgencyBacklog::from_log(&store, 0).unwrap();
        assert_eq!(nothing_applied.pending("income", 0), 4);
        assert_eq!(nothing_applied.pending("health", 0), 2);
        assert_eq!(nothing_applied.pending("education", 0), 0);
        // Applied through the first append: its events are not counted.
        let some_applied = AgencyBacklog::from_log(&store, 3).unwrap();
        assert_eq!(some_applied.pending("income", 3), 1);
        assert_eq!(some_applied.pending("health", 3), 2);
        assert_eq!(some_applied.pending("income", 6), 0);
        assert_eq!(some_applied.pending("health", 6), 0);
    }
}
