//! The pure event applier: one feed event changes the facts of one citizen or
//! one family. No IO, no clock: the caller hands in the records and gets them back
//! changed, or an explanation of why the event does not apply.
//!
//! Membership changes move facts between a family and the orphan store; this
//! module only does the in-memory half ([`attach`] and [`detach`]). The actor
//! and the dispatcher do the moving.

use storage::event::{EventData, FeedEvent};
use storage::ids::Iin;
use storage::record::{
    Address, CitizenFacts, Disability, Education, Employment, FamilyRecord, Housing, Member,
    Registration, Role, INCOME_MONTHS_KEPT,
};

/// Why an accepted event changed nothing. It is still consumed (the log moves
/// on); the reason is counted and logged for operators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{0} is a family event and needs the family record")]
    NeedsFamily(&'static str),
    #[error("citizen {0} is not a member of family {1}")]
    NotAMember(String, String),
    #[error("{0} does not apply to a citizen")]
    NotACitizenEvent(&'static str),
    #[error("membership events are routed through attach and detach")]
    Membership,
}

/// Applies a citizen event to that citizen's facts.
pub fn apply_to_citizen(facts: &mut CitizenFacts, event: &FeedEvent) -> Result<(), ApplyError> {
    use EventData::*;
    match &event.data {
        CitizenRegistered {
            full_name,
            birth_date,
            sex,
            ..
        } => {
            facts.registration = Some(Registration {
                full_name: full_name.clone(),
                birth_date: *birth_date,
                sex: *sex,
            });
        }
        CitizenDied { date, .. } => facts.died_on = Some(*date),
        ContactChanged { phone, .. } => facts.phone = Some(phone.clone()),
        IncomeReported {
            month,
            amount,
            source,
            ..
        } => {
            facts
                .incomes
                .entry(*month)
                .or_default()
                .insert(*source, *amount);
            while facts.incomes.len() > INCOME_MONTHS_KEPT {
                facts.incomes.pop_first();
            }
        }
        EmploymentChanged { status, .. } => {
            let previous = facts.employment.map(|employment| employment.status);
            if previous != Some(*status) {
                facts.employment = Some(Employment {
                    status: *status,
                    since: event.occurred_at,
                    previous,
                });
            }
        }
        DebtChanged {
            non_mortgage_debt, ..
        } => facts.non_mortgage_debt = *non_mortgage_debt,
        InsuranceChanged { insured, .. } => facts.insured = Some(*insured),
        DisabilityAssessed { group, until, .. } => {
            facts.disability = Some(Disability {
                group: *group,
                until: *until,
            });
        }
        DisabilityEnded { date, .. } => {
            // An end date closes the assessment from that day on; a later
            // assessment replaces it again.
            if let Some(disability) = &mut facts.disability {
                let last_day = date.pred_opt().unwrap_or(*date);
                disability.until = Some(disability.until.map_or(last_day, |u| u.min(last_day)));
            }
        }
        EducationChanged {
            enrolled,
            attainment,
            ..
        } => {
            facts.education = Some(Education {
                enrolled: *enrolled,
                attainment: *attainment,
            });
        }
        AwardGranted { award, .. } => {
            facts.awards.insert(*award);
        }
        PayoutAccountChanged { iban, .. } => facts.iban = Some(iban.clone()),
        SocialWalletOpened { .. } => facts.social_wallet = true,
        MemberAdded { .. } | MemberRemoved { .. } => return Err(ApplyError::Membership),
        AddressChanged { .. } | HousingChanged { .. } | SocialContractChanged { .. } => {
            return Err(ApplyError::NotACitizenEvent(event.data.type_name()))
        }
    }
    Ok(())
}

/// Applies a family event, or a citizen event for one of its members.
pub fn apply_to_family(record: &mut FamilyRecord, event: &FeedEvent) -> Result<(), ApplyError> {
    use EventData::*;
    match &event.data {
        AddressChanged {
            region, locality, ..
        } => {
            record.address = Some(Address {
                region: *region,
                locality: *locality,
            });
            Ok(())
        }
        HousingChanged {
            tenure,
            area_decimetres,
            utilities,
            ..
        } => {
            record.housing = Some(Housing {
                tenure: *tenure,
                area_decimetres: *area_decimetres,
                utilities: utilities.clone(),
            });
            Ok(())
        }
        SocialContractChanged { signed, .. } => {
            record.social_contract = *signed;
            Ok(())
        }
        MemberAdded { iin, role, .. } => match record.member_mut(iin) {
            // Adding a member who is already there changes their role only.
            Some(member) => {
                member.role = *role;
                Ok(())
            }
            None => Err(ApplyError::Membership),
        },
        MemberRemoved { .. } => Err(ApplyError::Membership),
        _ => {
            let storage::event::Subject::Citizen(iin) = event.data.subject() else {
                unreachable!("every other event is a citizen event")
            };
            let family_id = record.family_id.to_string();
            let member = record
                .member_mut(iin)
                .ok_or_else(|| ApplyError::NotAMember(iin.masked(), family_id))?;
            apply_to_citizen(&mut member.facts, event)
        }
    }
}

/// Adds a citizen with their facts so far (or none yet) to the family.
pub fn attach(record: &mut FamilyRecord, iin: Iin, role: Role, facts: Option<CitizenFacts>) {
    if let Some(member) = record.member_mut(&iin) {
        member.role = role;
        return;
    }
    let mut facts = facts.unwrap_or_else(|| CitizenFacts::new(iin));
    facts.applied_seq = 0;
    record.members.push(Member { role, facts });
}

/// Takes a citizen out of the family, returning their facts to be kept on their
/// own until they join another family. `None` when they were not a member.
pub fn detach(record: &mut FamilyRecord, iin: &Iin) -> Option<CitizenFacts> {
    let index = record
        .members
        .iter()
        .position(|member| &member.facts.iin == iin)?;
    Some(record.members.remove(index).facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use storage::event::parse_event;
    use storage::ids::FamilyId;

    fn event(kind: &str, data: serde_json::Value) -> FeedEvent {
        parse_event(serde_json::json!({
            "id": "e-1", "type": kind, "occurred_at": "2026-11-02T09:00:00Z", "data": data
        }))
        .expect("test events are valid")
    }

    const IIN: &str = "061211600012";

    fn family_with_member() -> FamilyRecord {
        let mut record = FamilyRecord::new("F1".parse::<FamilyId>().unwrap());
        attach(&mut record, IIN.parse().unwrap(), Role::Head, None);
        record
    }

    #[test]
    fn citizen_facts_follow_events() {
        let mut record = family_with_member();
        let events = [
            event(
                "citizen.contact_changed",
                serde_json::json!({"iin": IIN, "phone": "+77011234567"}),
            ),
            event(
                "income.reported",
                serde_json::json!({"iin": IIN, "month": "2026-10", "amount": "120000.50", "source": "salary"}),
            ),
            event(
                "debt.changed",
                serde_json::json!({"iin": IIN, "non_mortgage_debt": true}),
            ),
            event(
                "insurance.changed",
                serde_json::json!({"iin": IIN, "insured": false}),
            ),
            event(
                "award.granted",
                serde_json::json!({"iin": IIN, "award": "altyn_alka"}),
            ),
            event(
                "payout.account_changed",
                serde_json::json!({"iin": IIN, "iban": "KZ86125KZT5004100100"}),
            ),
            event("social_wallet.opened", serde_json::json!({"iin": IIN})),
        ];
        for event in &events {
            apply_to_family(&mut record, event).unwrap();
        }
        let facts = &record.members[0].facts;
        assert_eq!(facts.phone.as_ref().unwrap().as_str(), "+77011234567");
        assert_eq!(
            facts.income_in("2026-10".parse().unwrap()).to_string(),
            "120000.50"
        );
        assert!(facts.non_mortgage_debt);
        assert_eq!(facts.insured, Some(false));
        assert_eq!(facts.awards.len(), 1);
        assert!(facts.iban.is_some());
        assert!(facts.social_wallet);
    }

    #[test]
    fn income_keeps_a_bounded_number_of_months() {
        let mut facts = CitizenFacts::new(IIN.parse().unwrap());
        for month in 1..=12 {
            for year in [2024, 2025, 2026] {
                let event = event(
                    "income.reported",
                    serde_json::json!({"iin": IIN, "month": format!("{year}-{month:02}"), "amount": "1.00", "source": "salary"}),
                );
                apply_to_citizen(&mut facts, &event).unwrap();
            }
        }
        assert_eq!(facts.incomes.len(), INCOME_MONTHS_KEPT);
        assert_eq!(facts.incomes.keys().next().unwrap().to_string(), "2025-01");
    }

    #[test]
    fn employment_remembers_the_previous_status() {
        let mut facts = CitizenFacts::new(IIN.parse().unwrap());
        for status in ["employed", "unemployed"] {
            let event = event(
                "employment.changed",
                serde_json::json!({"iin": IIN, "status": status}),
            );
            apply_to_citizen(&mut facts, &event).unwrap();
        }
        let employment = facts.employment.unwrap();
        assert_eq!(
            employment.previous,
            Some(storage::record::EmploymentStatus::Employed)
        );
        assert_eq!(
            employment.since,
            Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
        );
    }

    #[test]
    fn disability_end_closes_the_assessment() {
        let mut facts = CitizenFacts::new(IIN.parse().unwrap());
        let assessed = event(
            "disability.assessed",
            serde_json::json!({"iin": IIN, "group": "2", "until": null}),
        );
        let ended = event(
            "disability.ended",
            serde_json::json!({"iin": IIN, "date": "2026-10-01"}),
        );
        apply_to_citizen(&mut facts, &assessed).unwrap();
        apply_to_citizen(&mut facts, &ended).unwrap();
        assert_eq!(
            facts.disability.unwrap().until,
            Some("2026-09-30".parse().unwrap())
        );
    }

    #[test]
    fn a_citizen_event_for_a_stranger_is_refused() {
        let mut record = FamilyRecord::new("F1".parse().unwrap());
        let event = event(
            "debt.changed",
            serde_json::json!({"iin": IIN, "non_mortgage_debt": true}),
        );
        assert!(matches!(
            apply_to_family(&mut record, &event),
            Err(ApplyError::NotAMember(..))
        ));
    }

    #[test]
    fn family_events_set_address_housing_and_contract() {
        let mut record = family_with_member();
        apply_to_family(
            &mut record,
            &event(
                "family.address_changed",
                serde_json::json!({"family_id": "F1", "region": "KZ-35", "locality": "rural"}),
            ),
        )
        .unwrap();
        apply_to_family(&mut record, &event("housing.changed", serde_json::json!({"family_id": "F1", "tenure": "rented", "area_m2": 54.5, "utilities": ["water", "gas"]}))).unwrap();
        apply_to_family(
            &mut record,
            &event(
                "social_contract.changed",
                serde_json::json!({"family_id": "F1", "signed": true}),
            ),
        )
        .unwrap();
        assert_eq!(record.address.unwrap().region.code(), "KZ-35");
        assert_eq!(record.housing.as_ref().unwrap().area_decimetres, 545);
        assert!(record.social_contract);
    }

    #[test]
    fn attach_and_detach_move_facts() {
        let mut record = family_with_member();
        let iin: Iin = IIN.parse().unwrap();
        let mut facts = detach(&mut record, &iin).expect("was a member");
        assert!(record.members.is_empty());
        facts.non_mortgage_debt = true;
        attach(&mut record, iin, Role::Spouse, Some(facts));
        assert!(record.members[0].facts.non_mortgage_debt);
        assert_eq!(record.members[0].role, Role::Spouse);
        assert!(detach(&mut record, &"061211600012".parse().unwrap()).is_some());
        assert!(detach(&mut record, &iin).is_none());
    }
}
