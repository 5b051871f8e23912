//! The admin port: operators, viewers and auditors by bearer token.
//!
//! `viewer` sees aggregates and family lists with IINs masked, never one family's
//! or citizen's record; `operator` sees and acts on families; `auditor` reads the
//! audit log. Every read of a person's data and every action is appended to the
//! audit log before the answer is sent. Actions travel through the feed log like
//! any other input, so they are ordered with the family's other inputs and
//! survive a crash.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use storage::compact::IncomeNeed;
use storage::event::{LogEntry, OperatorAction};
use storage::ids::{FamilyId, Iin, Month, Region};
use storage::projection::Outcome;
use storage::record::{EntitlementState, FamilyRecord, Level, ReviewVerdict};
use storage::store::{counter, AuditEntry};

use ::actors::rules::Rules;
use ::actors::whatif::{Proposal, WhatIfTally};

use super::{bearer, same_secret, ApiError};
use crate::config::{Operator, Role};
use crate::service::AppState;

/// Most families in one page of the list.
pub const PAGE_LIMIT_MAX: usize = 500;
/// Most family records one list request examines before it returns a cursor,
/// so that a rare filter cannot turn one request into a full scan.
pub const LIST_SCAN_MAX: usize = 20_000;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().body("ok") }),
        )
        .route("/", web::get().to(dashboard))
        .route("/map.svg", web::get().to(map_svg))
        .route("/metrics", web::get().to(metrics))
        .route("/v1/stats", web::get().to(stats))
        .route("/v1/families", web::get().to(list_families))
        .route("/v1/families/{family_id}", web::get().to(family))
        .route(
            "/v1/families/{family_id}/reevaluate",
            web::post().to(reevaluate),
        )
        .route("/v1/families/{family_id}/review", web::post().to(review))
        .route(
            "/v1/families/{family_id}/entitlements/{entitlement_id}/reoffer",
            web::post().to(reoffer),
        )
        .route("/v1/citizens/{iin}", web::get().to(citizen))
        .route("/v1/cycles/{month}/run", web::post().to(run_cycle))
        .route("/v1/audit", web::get().to(audit_log))
        .route("/v1/quarantine", web::get().to(quarantine))
        .route("/v1/whatif", web::post().to(whatif))
        .route("/v1/rules/reload", web::post().to(reload_rules));
}

fn authorize(
    state: &AppState,
    request: &HttpRequest,
    allowed: &[Role],
) -> Result<Operator, ApiError> {
    let token = bearer(request).ok_or(ApiError::Unauthorized)?;
    let operator = state
        .credentials()
        .operators
        .iter()
        .find(|operator| same_secret(token, &operator.token))
        .cloned()
        .ok_or(ApiError::Unauthorized)?;
    super::require_certificate(
        request,
        operator.client_cert_name.as_ref(),
        &format!("operator {}", operator.name),
    )?;
    if !allowed.contains(&operator.role) {
        return Err(ApiError::Forbidden(format!(
            "role {} may not do this",
            operator.role.as_str()
        )));
    }
    Ok(operator)
}

fn audit(
    state: &AppState,
    operator: &Operator,
    request: &HttpRequest,
    action: &str,
    target: String,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        at: state.clock.now(),
        operator: operator.name.clone(),
        role: operator.role.as_str().to_owned(),
        remote_addr: request
            .peer_addr()
            .map_or_else(|| "unknown".to_owned(), |addr| addr.ip().to_string()),
        action: action.to_owned(),
        target,
    };
    state.store.audit(&entry).map_err(ApiError::internal)?;
    Ok(())
}

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(crate::dashboard::PAGE)
}

async fn map_svg() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .body(crate::dashboard::MAP_SVG)
}

async fn metrics(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(
        &state,
        &request,
        &[Role::Viewer, Role::Operator, Role::Auditor],
    )?;
    // Read at the scrape: a gauge the dispatcher set after its last batch would
    // still say 0 while a new burst of entries waits for the next one.
    let backlog = state.store.backlog().map_err(ApiError::internal)?;
    state.metrics.set(
        "dfm_log_backlog",
        &[],
        i64::try_from(backlog).unwrap_or(i64::MAX),
    );
    state.metrics.set(
        "dfm_feed_ids_unpacked",
        &[],
        i64::try_from(state.store.unpacked_feed_ids()).unwrap_or(i64::MAX),
    );
    state.metrics.set(
        "dfm_reply_codes_reserved",
        &[],
        i64::try_from(state.store.reserved_reply_codes()).unwrap_or(i64::MAX),
    );
    if let Some(table) = state.store.scoring_table() {
        let (families, bytes) = table.size();
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        let metrics = &state.metrics;
        metrics.set("dfm_scoring_table_families", &[], gauge(families));
        metrics.set("dfm_scoring_table_bytes", &[], gauge(bytes));
        metrics.set("dfm_scoring_table_built", &[], i64::from(table.is_built()));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

fn stats_json(counters: &BTreeMap<String, i64>) -> Value {
    let get = |name: &str| counters.get(name).copied().unwrap_or(0);
    let mut by_level = serde_json::Map::new();
    for level in Level::ALL {
        by_level.insert(
            level.as_str().to_owned(),
            json!(get(&counter::level(level))),
        );
    }
    let mut by_region = serde_json::Map::new();
    for region in Region::ALL {
        let mut levels = serde_json::Map::new();
        for level in Level::ALL {
            levels.insert(
                level.as_str().to_owned(),
                json!(get(&counter::region_level(Some(region), level))),
            );
        }
        by_region.insert(region.code().to_owned(), Value::Object(levels));
    }
    let mut entitlements = serde_json::Map::new();
    for state in EntitlementState::ALL {
        entitlements.insert(
            state.as_str().to_owned(),
            json!(get(&counter::state(state))),
        );
    }
    let mut paid_by_program = serde_json::Map::new();
    for (name, value) in counters.range("paid_tiyn:".to_owned()..) {
        let Some(program) = name.strip_prefix("paid_tiyn:") else {
            break;
        };
        paid_by_program.insert(program.to_owned(), json!(money_text(*value)));
    }
    json!({
        "families": get(counter::FAMILIES),
        "citizens": get(counter::CITIZENS),
        "by_level": by_level,
        "by_region": by_region,
        "entitlements": entitlements,
        "paid_total": money_text(get(counter::PAID_TOTAL_TIYN)),
        "payments_succeeded": get(counter::PAYMENTS_SUCCEEDED),
        "paid_by_program": paid_by_program,
        "reviews": {
            "verified": get(&counter::review(ReviewVerdict::Verified)),
            "disputed": get(&counter::review(ReviewVerdict::Disputed)),
        },
    })
}

fn money_text(tiyn: i64) -> String {
    storage::money::Money::from_tiyn(u64::try_from(tiyn).unwrap_or(0)).to_string()
}

async fn stats(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(
        &state,
        &request,
        &[Role::Viewer, Role::Operator, Role::Auditor],
    )?;
    let counters = state.store.stats().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(stats_json(&counters)))
}

#[derive(Deserialize)]
struct ListQuery {
    region: Option<String>,
    level: Option<String>,
    program: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn head_iin(record: &FamilyRecord) -> Option<Iin> {
    record
        .members
        .iter()
        .find(|m| m.role == storage::record::Role::Head)
        .or_else(|| record.members.first())
        .map(|m| m.facts.iin)
}

async fn list_families(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Viewer, Role::Operator])?;
    let region = match &query.region {
        Some(code) => Some(
            code.parse::<Region>()
                .map_err(|e| ApiError::BadRequest(format!("region: {e}")))?,
        ),
        None => None,
    };
    let level = match &query.level {
        Some(text) => Some(
            Level::parse(text)
                .ok_or_else(|| ApiError::BadRequest("level must be A-E".to_owned()))?,
        ),
        None => None,
    };
    let entitlement_state = match &query.state {
        Some(text) => Some(EntitlementState::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("state {text:?} is not an entitlement state"))
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(50).clamp(1, PAGE_LIMIT_MAX);
    let masked = operator.role == Role::Viewer;
    let mut families = Vec::new();
    let mut last_seen: Option<String> = None;
    let mut exhausted = true;
    for (scanned, record) in state
        .store
        .families_after(query.cursor.as_deref(), LIST_SCAN_MAX)
        .enumerate()
    {
        let record = record.map_err(ApiError::internal)?;
        last_seen = Some(record.family_id.to_string());
        let evaluation = record.evaluation.as_ref();
        let matches = region.is_none_or(|r| record.address.is_some_and(|a| a.region == r))
            && level.is_none_or(|l| evaluation.is_some_and(|e| e.level == l))
            && query.program.as_ref().is_none_or(|code| {
                evaluation.is_some_and(|e| e.programs.iter().any(|p| &p.code == code && p.eligible))
            })
            && entitlement_state.is_none_or(|s| {
                record.entitlements.iter().any(|e| {
                    e.state == s && query.program.as_ref().is_none_or(|code| &e.program == code)
                })
            });
        if matches {
            let head = head_iin(&record).map(|iin| {
                if masked {
                    iin.masked()
                } else {
                    iin.to_string()
                }
            });
            families.push(json!({
                "family_id": record.family_id,
                "region": record.address.map(|a| a.region.code()),
                "level": evaluation.map(|e| e.level.as_str()),
                "score": evaluation.map(|e| e.score.to_decimal_string()),
                "members": record.members.len(),
                "head_iin": head,
                "eligible_programs": evaluation.map(|e| e.programs.iter().filter(|p| p.eligible).map(|p| p.code.clone()).collect::<Vec<_>>()),
                "entitlement_states": record.entitlements.iter().map(|e| json!({"program": e.program, "state": e.state.as_str()})).collect::<Vec<_>>(),
                "review": record.review.as_ref().map(|r| r.verdict),
            }));
        }
        if families.len() == limit {
            exhausted = false;
            break;
        }
        if scanned + 1 == LIST_SCAN_MAX {
            exhausted = false;
        }
    }
    let next_cursor = if exhausted { None } else { last_seen };
    if !masked && !families.is_empty() {
        audit(
            &state,
            operator,
            &request,
            "list_families",
            format!("{} families from cursor {:?}", families.len(), query.cursor),
        )?;
    }
    Ok(HttpResponse::Ok().json(json!({ "families": families, "next_cursor": next_cursor })))
}

async fn load_record(
    state: &AppState,
    family_id: &FamilyId,
) -> Result<Option<FamilyRecord>, ApiError> {
    if let Some(address) = state.directory.active(family_id) {
        if let Ok(Some(record)) = address.send(actors::family::GetRecord).await {
            return Ok(Some(record));
        }
    }
    state.store.family(family_id).map_err(ApiError::internal)
}

fn parse_family_id(text: &str) -> Result<FamilyId, ApiError> {
    text.parse()
        .map_err(|e| ApiError::BadRequest(format!("family_id: {e}")))
}

pub fn family_json(
    record: &FamilyRecord,
    today: chrono::NaiveDate,
    quarantined: Vec<u64>,
) -> Value {
    let evaluation = record.evaluation.as_ref();
    let members: Vec<Value> = record
        .members
        .iter()
        .map(|member| {
            let facts = &member.facts;
            json!({
                "iin": facts.iin.to_string(),
                "role": member.role,
                "full_name": facts.registration.as_ref().map(|r| r.full_name.clone()),
                "birth_date": facts.birth_date(),
                "sex": facts.sex(),
                "alive": facts.is_alive_on(today),
                "died_on": facts.died_on,
                "phone": facts.phone.as_ref().map(|p| p.as_str().to_owned()),
                "employment": facts.employment.map(|e| e.status),
                "insured": facts.insured,
                "disability": facts.disability.map(|d| json!({"group": d.group, "until": d.until})),
                "education": facts.education.map(|e| json!({"enrolled": e.enrolled, "attainment": e.attainment})),
                "non_mortgage_debt": facts.non_mortgage_debt,
                "awards": facts.awards,
                "has_bank_account": facts.iban.is_some(),
                "social_wallet": facts.social_wallet,
                "incomes": facts.incomes.iter().map(|(month, by_source)| (month.to_string(), json!(by_source))).collect::<BTreeMap<_, _>>(),
            })
        })
        .collect();
    let criteria = evaluation.map(|e| {
        e.criteria
            .iter()
            .map(|(criterion, value)| {
                (
                    criterion.as_str().to_owned(),
                    json!(value.to_decimal_string()),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    });
    let explanation: Vec<Value> = evaluation
        .map(|e| {
            e.deprivations
                .iter()
                .map(|d| {
                    json!({
                        "criterion": d.criterion.as_str(),
                        "indicator": d.indicator,
                        "weight": d.weight.to_decimal_string(),
                        "facts": d.facts,
                        "rules_version": e.rules_version,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let programs: Vec<Value> = evaluation
        .map(|e| {
            e.programs
                .iter()
                .map(|p| {
                    json!({
                        "code": p.code,
                        "eligible": p.eligible,
                        "reasons": p.reasons,
                        "recipient_iin": p.award.as_ref().map(|a| a.recipient.to_string()),
                        "amount": p.award.as_ref().map(|a| a.amount),
                        "more_awards": p.more_awards.iter().map(|a| json!({"recipient_iin": a.recipient.to_string(), "amount": a.amount})).collect::<Vec<_>>(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let entitlements: Vec<Value> = record
        .entitlements
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "program": e.program,
                "state": e.state.as_str(),
                "recipient_iin": e.recipient.to_string(),
                "amount": e.amount,
                "next_amount": e.next_amount.map(|(from, amount)| json!({"from": from.to_string(), "amount": amount})),
                "one_off": e.one_off,
                "code": format!("{:04}", e.code),
                "payout": e.payout,
                "reason": e.reason,
                "offered_at": e.offered_at,
                "answered_at": e.answered_at,
                "payments": e.payments.iter().map(|p| json!({
                    "period": p.period.to_string(),
                    "reference_id": p.reference_id,
                    "status": p.status.as_str(),
                    "amount": p.amount,
                    "status_reason": p.status_reason,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "family_id": record.family_id,
        "region": record.address.map(|a| a.region.code()),
        "locality": record.address.map(|a| a.locality),
        "members": members,
        "level": evaluation.map(|e| e.level.as_str()),
        "score": evaluation.map(|e| e.score.to_decimal_string()),
        "criteria": criteria,
        "rules_version": evaluation.map(|e| e.rules_version.clone()),
        "evaluated_at": evaluation.map(|e| e.evaluated_at),
        "explanation": explanation,
        "programs": programs,
        "entitlements": entitlements,
        "housing": record.housing.as_ref().map(|h| json!({
            "tenure": h.tenure,
            "area_m2": format!("{}.{}", h.area_decimetres / 10, h.area_decimetres % 10),
            "utilities": h.utilities,
        })),
        "social_contract": record.social_contract,
        "history": record.history.iter().map(|h| json!({"at": h.at, "what": h.what})).collect::<Vec<_>>(),
        "review": record.review.as_ref().map(|r| json!({"verdict": r.verdict, "by": r.by, "at": r.at, "note": r.note})),
        "quarantined_inputs": quarantined,
    })
}

async fn family(
    state: web::Data<AppState>,
    request: HttpRequest,
    family_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Operator])?;
    let family_id = parse_family_id(&family_id)?;
    audit(
        &state,
        operator,
        &request,
        "read_family",
        family_id.to_string(),
    )?;
    let record = load_record(&state, &family_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no family {family_id}")))?;
    let quarantined = state
        .store
        .quarantined()
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|q| q.family_id == family_id)
        .map(|q| q.seq)
        .collect();
    let mut body = family_json(
        &record,
        ::actors::scoring::local_date(state.clock.now()),
        quarantined,
    );
    let explained = explained_programs(&state, &record);
    if let Some(programs) = body["programs"].as_array_mut() {
        for (index, program) in programs.iter_mut().enumerate() {
            program["reasons"] = match &explained {
                Ok(decisions) => json!(decisions[index].reasons),
                Err(why) => json!([format!("the reasons cannot be written again: {why}")]),
            };
        }
    }
    Ok(HttpResponse::Ok().json(body))
}

/// The family's program decisions with their reasons in words, which the
/// record does not keep: decided again under the catalogue its evaluation
/// names (the running one, or one the store kept). `Err` says why not.
fn explained_programs(
    state: &AppState,
    record: &FamilyRecord,
) -> Result<Vec<storage::record::ProgramDecision>, String> {
    let Some(evaluation) = record.evaluation.as_ref() else {
        return Ok(Vec::new());
    };
    let version = &evaluation.rules_version;
    let running = state
        .rules
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let rules = if &running.version == version {
        running
    } else {
        let (year, text) = state
            .store
            .catalogue(version)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("catalogue {version} is not kept in this store"))?;
        state
            .parsed_catalogues
            .parse(&text, year)
            .map_err(|e| format!("catalogue {version} no longer validates: {e}"))?
    };
    ::actors::scoring::explain_programs(record, &rules, evaluation).ok_or_else(|| {
        format!(
            "under catalogue {version} as kept, the family's facts no longer give the decisions stored (was the catalogue changed without a new version?)"
        )
    })
}

async fn citizen(
    state: web::Data<AppState>,
    request: HttpRequest,
    iin: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Operator])?;
    let iin: Iin = iin
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("iin: {e}")))?;
    audit(&state, operator, &request, "read_citizen", iin.to_string())?;
    let today = ::actors::scoring::local_date(state.clock.now());
    if let Some(family_id) = state.store.family_of(&iin).map_err(ApiError::internal)? {
        if let Some(record) = load_record(&state, &family_id).await? {
            if let Some(member) = record.member(&iin) {
                let family = family_json(&record, today, Vec::new());
                let member_json = family["members"]
                    .as_array()
                    .and_then(|members| members.iter().find(|m| m["iin"] == iin.to_string()))
                    .cloned()
                    .unwrap_or(Value::Null);
                let entitlements: Vec<Value> = family["entitlements"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter(|e| e["recipient_iin"] == iin.to_string())
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(HttpResponse::Ok().json(json!({
                    "iin": iin.to_string(),
                    "family_id": record.family_id,
                    "role": member.role,
                    "person": member_json,
                    "family_level": family["level"],
                    "entitlements": entitlements,
                })));
            }
        }
    }
    match state.store.orphan(&iin).map_err(ApiError::internal)? {
        Some(facts) => Ok(HttpResponse::Ok().json(json!({
            "iin": iin.to_string(),
            "family_id": Value::Null,
            "full_name": facts.registration.as_ref().map(|r| r.full_name.clone()),
            "birth_date": facts.birth_date(),
            "alive": facts.is_alive_on(today),
            "note": "known facts kept until the citizen joins a family",
        }))),
        None => Err(ApiError::NotFound("no such citizen".to_owned())),
    }
}

async fn submit_action(
    state: &AppState,
    operator: &Operator,
    family_id: FamilyId,
    action: OperatorAction,
) -> Result<u64, ApiError> {
    if state
        .store
        .family(&family_id)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no family {family_id}")));
    }
    let seqs = state
        .inbox
        .submit(&[LogEntry::Operator {
            family_id,
            operator: operator.name.clone(),
            action,
            at: state.clock.now(),
        }])
        .map_err(ApiError::internal)?;
    state
        .durability
        .durable()
        .await
        .map_err(|e| ApiError::Busy(e.to_string()))?;
    Ok(seqs[0])
}

async fn reevaluate(
    state: web::Data<AppState>,
    request: HttpRequest,
    family_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Operator])?;
    let family_id = parse_family_id(&family_id)?;
    audit(
        &state,
        operator,
        &request,
        "reevaluate",
        family_id.to_string(),
    )?;
    let seq = submit_action(&state, operator, family_id, OperatorAction::Reevaluate).await?;
    Ok(HttpResponse::Accepted().json(json!({"status": "queued", "seq": seq})))
}

#[derive(Deserialize)]
struct ReviewBody {
    verdict: ReviewVerdict,
    #[serde(default)]
    note: String,
}

async fn review(
    state: web::Data<AppState>,
    request: HttpRequest,
    family_id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Operator])?;
    let family_id = parse_family_id(&family_id)?;
    let body: ReviewBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"verdict\":\"verified|disputed\",\"note\":\"…\"}}: {e}"
        ))
    })?;
    if body.note.chars().count() > 1000 {
        return Err(ApiError::BadRequest(
            "note: at most 1000 characters".to_owned(),
        ));
    }
    audit(
        &state,
        operator,
        &request,
        "review",
        format!("{family_id} {:?}", body.verdict).to_lowercase(),
    )?;
    let seq = submit_action(
        &state,
        operator,
        family_id,
        OperatorAction::Review {
            verdict: body.verdict,
            note: body.note,
        },
    )
    .await?;
    Ok(HttpResponse::Accepted().json(json!({"status": "queued", "seq": seq})))
}

async fn reoffer(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Operator])?;
    let (family_id, entitlement_id) = path.into_inner();
    let family_id = parse_family_id(&family_id)?;
    let record = state
        .store
        .family(&family_id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no family {family_id}")))?;
    let entitlement = record
        .entitlements
        .iter()
        .find(|e| e.id == entitlement_id)
        .ok_or_else(|| ApiError::NotFound(format!("no entitlement {entitlement_id}")))?;
    if !matches!(
        entitlement.state,
        EntitlementState::Expired | EntitlementState::NoContact
    ) {
        return Err(ApiError::BadRequest(format!(
            "only expired or no_contact entitlements can be re-offered; this one is {}",
            entitlement.state.as_str()
        )));
    }
    audit(
        &state,
        operator,
        &request,
        "reoffer",
        entitlement_id.clone(),
    )?;
    let seq = submit_action(
        &state,
        operator,
        family_id,
        OperatorAction::Reoffer { entitlement_id },
    )
    .await?;
    Ok(HttpResponse::Accepted().json(json!({"status": "queued", "seq": seq})))
}

async fn run_cycle(
    state: web::Data<AppState>,
    request: HttpRequest,
    month: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Operator])?;
    let month: Month = month
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("month: {e}")))?;
    audit(&state, operator, &request, "run_cycle", month.to_string())?;
    let reached = actors::timers::run_cycle(&state.inbox, month).map_err(ApiError::internal)?;
    state
        .durability
        .durable()
        .await
        .map_err(|e| ApiError::Busy(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({"month": month.to_string(), "families": reached})))
}

#[derive(Deserialize)]
struct AuditQuery {
    cursor: Option<u64>,
    limit: Option<usize>,
}

async fn audit_log(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request, &[Role::Auditor])?;
    let limit = query.limit.unwrap_or(100).clamp(1, PAGE_LIMIT_MAX);
    let entries = state
        .store
        .audit_after(query.cursor.unwrap_or(0), limit)
        .map_err(ApiError::internal)?;
    let next_cursor = if entries.len() == limit {
        entries.last().map(|(seq, _)| seq.to_string())
    } else {
        None
    };
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|(seq, entry)| {
            json!({
                "seq": seq,
                "at": entry.at,
                "operator": entry.operator,
                "role": entry.role,
                "remote_addr": entry.remote_addr,
                "action": entry.action,
                "target": entry.target,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"entries": entries, "next_cursor": next_cursor})))
}

async fn quarantine(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &request, &[Role::Operator])?;
    let records: Vec<Value> = state
        .store
        .quarantined()
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|q| json!({"seq": q.seq, "family_id": q.family_id, "reason": q.reason, "at": q.at}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "quarantined": records })))
}

/// Runs `work` over every family's scoring projection (its scoring inputs and
/// stored outcome), split across the cores, and merges the per-thread results,
/// each begun with `start`; returns how many families it read. Reads the
/// scoring table (503 while `serve` is still building it after a start), its
/// incomes as `need` says, or, with `storage.scoring_table = false`, every
/// family record whole. Families come in no particular order; each is read at
/// once, but the scan is not a snapshot of the whole store.
pub fn scan_families<T, S, W, M>(
    store: &storage::Store,
    need: IncomeNeed,
    start: S,
    work: W,
    mut merge: M,
) -> Result<u64, ApiError>
where
    T: Send,
    S: Fn() -> T + Sync,
    W: Fn(&mut T, &FamilyRecord, Option<&Outcome>) + Sync,
    M: FnMut(T),
{
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(1);
    let Some(table) = store.scoring_table() else {
        let (read, parts) = store
            .scan_records(
                threads,
                || false,
                start,
                |accumulator, record| {
                    work(accumulator, &record, record.stored_outcome().as_ref());
                },
            )
            .map_err(ApiError::internal)?;
        parts.into_iter().for_each(merge);
        return Ok(read);
    };
    if !table.is_built() {
        let (families, _) = table.size();
        return Err(ApiError::Busy(format!(
            "the scoring table is being built after the start ({families} families read so far, about 10 s a million families, see the log); try again after the time in Retry-After"
        )));
    }
    let parts = table
        .scan(
            threads,
            need,
            || (start(), 0u64),
            |(accumulator, scanned), record, outcome| {
                *scanned += 1;
                work(accumulator, record, outcome);
            },
        )
        .map_err(ApiError::internal)?;
    let mut scanned = 0;
    for (part, count) in parts {
        scanned += count;
        merge(part);
    }
    Ok(scanned)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhatIfBody {
    /// A whole catalogue to try instead of the current one.
    catalogue_toml: Option<String>,
    /// A TOML fragment merged over the current catalogue; `[[program]]` entries
    /// are merged into the program with the same `code`.
    patch_toml: Option<String>,
    year: Option<i32>,
}

/// The catalogue text `base` with the TOML `patch` merged over it, as
/// `POST /v1/whatif` merges a `patch_toml` (`[[program]]` entries by `code`).
pub fn patch_catalogue(base: &str, patch: &str) -> Result<String, ApiError> {
    let mut value: toml::Value =
        toml::from_str(base).map_err(|e| ApiError::BadRequest(format!("catalogue_toml: {e}")))?;
    let patch: toml::Value =
        toml::from_str(patch).map_err(|e| ApiError::BadRequest(format!("patch_toml: {e}")))?;
    merge_toml(&mut value, patch);
    toml::to_string(&value).map_err(ApiError::internal)
}

/// The rules of the catalogue at `catalogue` with `patch` merged over it.
pub fn patched_rules(catalogue: &std::path::Path, patch: &str, year: i32) -> anyhow::Result<Rules> {
    let text = patch_catalogue(&std::fs::read_to_string(catalogue)?, patch)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Rules::from_toml_str(&text, year)?)
}

fn merge_toml(base: &mut toml::Value, patch: toml::Value) {
    match (base, patch) {
        (toml::Value::Table(base), toml::Value::Table(patch)) => {
            for (key, value) in patch {
                if key == "program" {
                    if let (Some(toml::Value::Array(programs)), toml::Value::Array(changes)) =
                        (base.get_mut("program"), &value)
                    {
                        for change in changes {
                            let code = change.get("code").and_then(|c| c.as_str());
                            match programs
                                .iter_mut()
                                .find(|p| p.get("code").and_then(|c| c.as_str()) == code)
                            {
                                Some(program) => merge_toml(program, change.clone()),
                                None => programs.push(change.clone()),
                            }
                        }
                        continue;
                    }
                }
                match base.get_mut(&key) {
                    Some(existing) => merge_toml(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn proposed_rules(state: &AppState, body: WhatIfBody) -> Result<Rules, ApiError> {
    let base = match body.catalogue_toml {
        Some(text) => text,
        None => state
            .catalogue_text
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    };
    let text = match body.patch_toml {
        Some(patch) => patch_catalogue(&base, &patch)?,
        None => base,
    };
    Rules::from_toml_str(&text, body.year.unwrap_or(state.config.year))
        .map_err(|e| ApiError::BadRequest(format!("the proposed rules are refused: {e}")))
}

async fn whatif(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Operator])?;
    let body: WhatIfBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"patch_toml\": \"…\"}} or {{\"catalogue_toml\": \"…\"}}: {e}"
        ))
    })?;
    let proposed = proposed_rules(&state, body)?;
    audit(
        &state,
        operator,
        &request,
        "whatif",
        format!("rules version {}", proposed.version),
    )?;
    let started = std::time::Instant::now();
    let today = ::actors::scoring::local_date(state.clock.now());
    let bases = rules_behind_stored_outcomes(&state)?;
    let worker_state = state.clone();
    let (result, scanned) = web::block(move || {
        let bases: Vec<&Rules> = bases.iter().map(|rules| &**rules).collect();
        let proposal = Proposal::new(&bases, &proposed);
        let mut total = WhatIfTally::new(&proposal);
        let scanned = scan_families(
            &worker_state.store,
            proposal.income_need(),
            || WhatIfTally::new(&proposal),
            |tally: &mut WhatIfTally, record, stored| tally.add(&proposal, record, stored, today),
            |part| total.merge(part),
        )?;
        Ok::<_, ApiError>((total.report(), scanned))
    })
    .await
    .map_err(ApiError::internal)??;
    let money = |tiyn: u64| storage::money::Money::from_tiyn(tiyn).to_string();
    let programs: serde_json::Map<String, Value> = result
        .programs
        .iter()
        .map(|(code, p)| {
            (
                code.clone(),
                json!({
                    "eligible_now": p.eligible_now,
                    "eligible_whatif": p.eligible_whatif,
                    "gain": p.gain,
                    "lose": p.lose,
                    "monthly_cost_now": money(p.monthly_cost_now_tiyn),
                    "monthly_cost_whatif": money(p.monthly_cost_whatif_tiyn),
                    "one_off_cost_whatif": money(p.one_off_cost_whatif_tiyn),
                    "by_region_whatif": p.by_region_whatif.iter().map(|(region, r)| (region.clone(), json!({"eligible": r.eligible, "monthly_cost": money(r.monthly_cost_tiyn)}))).collect::<serde_json::Map<_, _>>(),
                    "sample_gain": p.sample_gain,
                    "sample_lose": p.sample_lose,
                }),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "families": scanned,
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "programs": programs,
        "levels_now": result.levels_now,
        "levels_whatif": result.levels_whatif,
        "level_shifts": result.level_shifts,
        "side_effects": "none",
    })))
}

/// The catalogues a stored outcome may come from: the rules in force (what
/// the stored outcomes agree with) and, if the service was started with a
/// different catalogue, the rules it runs. A what-if or a re-score decides
/// again whatever a proposal changes against either. An in-force catalogue that
/// no longer validates leaves no base: everything is decided again.
fn rules_behind_stored_outcomes(state: &AppState) -> Result<Vec<std::sync::Arc<Rules>>, ApiError> {
    let running = state
        .rules
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let running_text = state
        .catalogue_text
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match state.store.rules_in_force().map_err(ApiError::internal)? {
        Some((year, text)) if year == state.config.year && text == running_text => {
            Ok(vec![running])
        }
        Some((year, text)) => match state.parsed_catalogues.parse(&text, year) {
            Ok(in_force) => Ok(vec![running, in_force]),
            Err(error) => {
                tracing::warn!(%error, "the catalogue in force no longer validates; every family is decided again");
                Ok(Vec::new())
            }
        },
        None => Ok(vec![running]),
    }
}

/// Re-reads the catalogue file and applies it: families whose level or
/// eligibility would change are re-evaluated through their actors (and so
/// through the consent machinery); the others are not woken.
async fn reload_rules(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let operator = &authorize(&state, &request, &[Role::Operator])?;
    let text = std::fs::read_to_string(&state.config.catalogue)
        .map_err(|e| ApiError::BadRequest(format!("programs.catalogue: {e}")))?;
    let proposed = Rules::from_toml_str(&text, state.config.year)
        .map_err(|e| ApiError::BadRequest(format!("the catalogue is refused: {e}")))?;
    audit(
        &state,
        operator,
        &request,
        "reload_rules",
        format!("rules version {}", proposed.version),
    )?;
    crate::config::keep_catalogue(&state.store, &proposed, state.config.year, &text)
        .map_err(ApiError::internal)?;
    let started = std::time::Instant::now();
    let now = state.clock.now();
    let today = ::actors::scoring::local_date(now);
    let version = proposed.version.clone();
    let proposed = std::sync::Arc::new(proposed);
    let bases = rules_behind_stored_outcomes(&state)?;
    let worker_state = state.clone();
    let worker_rules = proposed.clone();
    let (changed, scanned) = web::block(move || {
        let bases: Vec<&Rules> = bases.iter().map(|rules| &**rules).collect();
        let proposal = Proposal::new(&bases, &worker_rules);
        let mut changed: Vec<FamilyId> = Vec::new();
        let scanned = scan_families(
            &worker_state.store,
            proposal.income_need(),
            Vec::new,
            |changed: &mut Vec<FamilyId>, record, stored| {
                if proposal.changes_outcome(record, stored, today) {
                    changed.push(record.family_id.clone());
                }
            },
            |part| changed.extend(part),
        )?;
        // In id order, as the store keeps families: activations read it in turn.
        changed.sort_unstable();
        Ok::<_, ApiError>((changed, scanned))
    })
    .await
    .map_err(ApiError::internal)??;
    *state.rules.write().unwrap_or_else(|e| e.into_inner()) = proposed;
    *state
        .catalogue_text
        .write()
        .unwrap_or_else(|e| e.into_inner()) = text.clone();
    for chunk in changed.chunks(::actors::timers::CYCLE_CHUNK) {
        let entries: Vec<LogEntry> = chunk
            .iter()
            .map(|family_id| LogEntry::Operator {
                family_id: family_id.clone(),
                operator: operator.name.clone(),
                action: OperatorAction::Reevaluate,
                at: now,
            })
            .collect();
        state.inbox.submit(&entries).map_err(ApiError::internal)?;
    }
    state
        .durability
        .durable()
        .await
        .map_err(|e| ApiError::Busy(e.to_string()))?;
    // Every family whose outcome changes is re-evaluated from the log, durably:
    // the stored outcomes now agree with the new catalogue.
    state
        .store
        .set_rules_in_force(state.config.year, &text)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "rules_version": version,
        "families": scanned,
        "families_changed": changed.len(),
        "elapsed_ms": started.elapsed().as_millis() as u64,
    })))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use ::actors::scoring::{evaluate, local_date};
    use ::actors::whatif::benefit_of;

    use super::*;

    fn catalogue() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/programs.toml")
    }

    fn patched(patch: &str) -> Rules {
        patched_rules(&catalogue(), patch, 2026).unwrap()
    }

    /// A what-if and a re-score re-decide only what a proposal changes and read
    /// the rest from the stored outcome. Over a generated population, that gives
    /// what evaluating each family whole under the proposed rules gives.
    #[test]
    fn deciding_only_what_a_proposal_changes_agrees_with_evaluating_whole() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::for_local(
            dir.path().join("store"),
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            catalogue(),
        );
        let population = dir.path().join("population.ndjson");
        let mut text = String::new();
        crate::generate::generate(
            &crate::generate::GenerateOptions {
                families: 1_500,
                seed: 11,
                today: chrono::Utc::now().date_naive(),
            },
            &mut |line| {
                text.push_str(&line.json);
                text.push('\n');
                Ok(())
            },
        )
        .unwrap();
        std::fs::write(&population, text).unwrap();
        crate::load::load_file(&config, std::fs::File::open(&population).unwrap()).unwrap();
        let store = storage::Store::open(&config.storage_path).unwrap();
        let (values, _) = store.family_values_after(None, 10_000).unwrap();
        assert_eq!(values.len(), 1_500);
        // A what-if's answer, as JSON, from whatever the scan reads.
        let current = Rules::load(&catalogue(), 2026).unwrap();
        let large_family = patched(
            "[[program]]\ncode = \"large_family\"\nmin_children = 3\namounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]\n",
        );
        let today = local_date(chrono::Utc::now());
        let whatif = || {
            let proposal = Proposal::new(&[&current], &large_family);
            let mut total = WhatIfTally::new(&proposal);
            scan_families(
                &store,
                proposal.income_need(),
                || WhatIfTally::new(&proposal),
                |tally: &mut WhatIfTally, record, stored| {
                    tally.add(&proposal, record, stored, today)
                },
                |part| total.merge(part),
            )
            .map(|_| serde_json::to_value(total.report()).unwrap())
        };
        // Without the scoring table (`storage.scoring_table = false`), scans
        // read the records.
        let scan = || {
            scan_families(
                &store,
                IncomeNeed::Read,
                || 0u64,
                |n: &mut u64, _, _| *n += 1,
                |_| {},
            )
        };
        assert_eq!(scan().unwrap(), 1_500);
        let from_records = whatif().unwrap();
        // With it, scans wait (503) until it is built, as after a start, and
        // then give the same answers.
        store.enable_scoring_table();
        assert!(matches!(scan(), Err(ApiError::Busy(_))));
        assert_eq!(store.build_scoring_table(2).unwrap(), 1_500);
        assert_eq!(scan().unwrap(), 1_500);
        assert_eq!(whatif().unwrap(), from_records);
        assert!(from_records["programs"]["large_family"]["gain"].as_u64() > Some(0));

        let current = Rules::load(&catalogue(), 2026).unwrap();
        let proposals = [
            // One program's rule.
            "[[program]]\ncode = \"large_family\"\nmin_children = 3\namounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]\n",
            // The scoring alone.
            "[scoring.levels]\nB = \"0.05\"\nC = \"0.15\"\nD = \"0.25\"\nE = \"0.40\"\n",
            // A constant that scoring and TSA both read.
            "[poverty]\nmedian_share = \"0.45\"\n",
            // One region's median (scoring and TSA).
            "[regions]\n\"KZ-61\" = \"130000\"\n",
            // The MCI, which five kinds of program read and scoring does not.
            "[years.2026]\nmci = \"4500\"\n",
            // The subsistence minimum: scoring (the poverty line's floor)
            // and four kinds of program.
            "[years.2026]\nsubsistence_minimum = \"56000\"\n",
            // Nothing.
            "version = \"same\"\n",
        ];
        // The service was restarted with the large-family change in its file
        // (stored outcomes still agree with the catalogue in force): reloading
        // that file must be diffed against the catalogue in force too.
        let restarted_with = patched(proposals[0]);
        // A catalogue without one of its programs (TSA, the last one).
        let text = std::fs::read_to_string(catalogue()).unwrap();
        let tsa = text.find("\n[[program]]\ncode = \"tsa\"").unwrap();
        let without_tsa = Rules::from_toml_str(&text[..tsa], 2026).unwrap();
        let today = local_date(chrono::Utc::now());
        // The table's projections, read as `need` says, in id order as `values`.
        let read_as = |need: IncomeNeed| {
            let mut decoded = Vec::new();
            scan_families(
                &store,
                need,
                Vec::new,
                |seen: &mut Vec<storage::projection::ScoringProjection>, record, outcome| {
                    seen.push(storage::projection::ScoringProjection {
                        inputs: record.clone(),
                        outcome: outcome.cloned(),
                    });
                },
                |part| decoded.extend(part),
            )
            .unwrap();
            decoded.sort_by(|a, b| a.inputs.family_id.cmp(&b.inputs.family_id));
            decoded
        };
        let decoded = read_as(IncomeNeed::Read);
        let dropping_tsa = Proposal::new(&[&current], &without_tsa);
        let mut tally = WhatIfTally::new(&dropping_tsa);
        for projection in &decoded {
            tally.add(
                &dropping_tsa,
                &projection.inputs,
                projection.outcome.as_ref(),
                today,
            );
        }
        let report = tally.report();
        let tsa_figures = &report.programs["tsa"];
        assert!(tsa_figures.eligible_now > 0, "{tsa_figures:?}");
        assert_eq!(
            (
                tsa_figures.eligible_whatif,
                tsa_figures.lose,
                tsa_figures.gain
            ),
            (0, tsa_figures.eligible_now, 0)
        );
        assert_eq!(report.programs.len(), current.programs.len());
        // Each program decided again alone (its name changed): programs that
        // read no income are decided on families read without them.
        let renamed: Vec<(String, Rules)> = current
            .programs
            .iter()
            .enumerate()
            .map(|(index, program)| {
                let mut rules = current.clone();
                rules.programs[index].name_en.push_str(" (renamed)");
                (format!("{} renamed", program.code), rules)
            })
            .collect();
        let cases = proposals
            .iter()
            .map(|patch| (*patch, vec![&current], patched(patch)))
            .chain(
                renamed
                    .iter()
                    .map(|(name, rules)| (name.as_str(), vec![&current], rules.clone())),
            )
            .chain([
                (
                    "reload after a restart with a changed file",
                    vec![&restarted_with, &current],
                    patched(proposals[0]),
                ),
                (
                    "a catalogue without TSA",
                    vec![&current],
                    without_tsa.clone(),
                ),
            ]);
        let running_alone = Proposal::new(&[&restarted_with], &restarted_with);
        let unseen = decoded.iter().all(|projection| {
            !running_alone.changes_outcome(&projection.inputs, projection.outcome.as_ref(), today)
        });
        assert!(
            unseen,
            "against the running catalogue alone, the change goes unseen"
        );
        let mut skipped = 0;
        for (patch, bases, proposed) in cases {
            let proposal = Proposal::new(&bases, &proposed);
            let need = proposal.income_need();
            skipped += usize::from(need == IncomeNeed::OnlyUndecided);
            let read = read_as(need);
            let (mut differ, mut changed) = (0, 0);
            for (index, value) in values.iter().enumerate() {
                let record: FamilyRecord = storage::codec::decode(value).unwrap();
                let stored = record
                    .evaluation
                    .as_ref()
                    .expect("loaded families are evaluated");
                let now = stored.evaluated_at;
                let today = local_date(now);
                assert_eq!(
                    &evaluate(&record, &current, now),
                    stored,
                    "the stored outcome is the current rules' at its time"
                );
                let whole = evaluate(&record, &proposed, now);
                let projection = &read[index];
                let mut expected = record.scoring_projection();
                if need == IncomeNeed::OnlyUndecided {
                    for member in &mut expected.inputs.members {
                        member.facts.incomes.clear();
                    }
                }
                assert_eq!(projection, &expected);
                let (inputs, outcome) = (&projection.inputs, projection.outcome.as_ref());
                let (level, benefits) = proposal.outcome(inputs, outcome, today);
                assert_eq!(level, whole.level, "{patch}: {}", record.family_id);
                let expected: Vec<_> = whole.programs.iter().map(benefit_of).collect();
                assert_eq!(benefits, expected, "{patch}: {}", record.family_id);
                let outcome_differs = whole.level != stored.level
                    || whole.programs.len() != stored.programs.len()
                    || whole.programs.iter().zip(&stored.programs).any(|(a, b)| {
                        a.code != b.code
                            || a.eligible != b.eligible
                            || a.award != b.award
                            || a.more_awards != b.more_awards
                    });
                let changes = proposal.changes_outcome(inputs, outcome, today);
                assert_eq!(changes, outcome_differs, "{patch}: {}", record.family_id);
                differ += usize::from(outcome_differs);
                changed += usize::from(changes);
            }
            assert_eq!(differ, changed);
            if patch.starts_with("version") || patch.ends_with("renamed") {
                assert_eq!(changed, 0, "the same rules change nobody");
            } else {
                assert!(changed > 0, "{patch} changes some of 1,500 families");
            }
        }
        // Read without incomes: the large-family change (twice), the same
        // rules, the catalogue without TSA, and six of the nine kinds renamed.
        assert_eq!(skipped, 10);
    }
}
