//! The words of every SMS, in Kazakh and Russian. The consent SMS names the
//! benefit, the amount, the code written as `#` and four digits, and how to answer.

use storage::money::Money;

use crate::entitlement::Notice;

/// The sender's short number, named in every message.
pub const SHORT_NUMBER: &str = "1414";

/// Names of a benefit in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenefitNames {
    pub kazakh: String,
    pub russian: String,
}

pub fn render(
    notice: Notice,
    names: &BenefitNames,
    amount: Money,
    code: u16,
    one_off: bool,
) -> String {
    let kk = &names.kazakh;
    let ru = &names.russian;
    let (period_kk, period_ru) = if one_off {
        ("", "")
    } else {
        (" айына", " в месяц")
    };
    match notice {
        Notice::Offer => format!(
            "{SHORT_NUMBER}: Сізге «{kk}» {amount} теңге{period_kk} тағайындалуы мүмкін. \
             Келісу: ИӘ #{code:04}, әлеуметтік әмиянға: ӘМИЯН #{code:04}, бас тарту: ЖОҚ #{code:04}. \
             Вам может быть назначено «{ru}»: {amount} тг{period_ru}. \
             Согласие: ДА #{code:04}, на социальный кошелек: КОШЕЛЕК #{code:04}, отказ: НЕТ #{code:04}."
        ),
        Notice::Reminder => format!(
            "{SHORT_NUMBER}: Еске салу: «{kk}» {amount} теңге. Жауап: ИӘ / ӘМИЯН / ЖОҚ #{code:04}. \
             Напоминание: «{ru}» {amount} тг. Ответьте: ДА / КОШЕЛЕК / НЕТ #{code:04}."
        ),
        Notice::Ended => format!(
            "{SHORT_NUMBER}: «{kk}» төлемі тоқтатылды: құқық жоқ. \
             Выплата «{ru}» прекращена: право на нее утрачено."
        ),
        Notice::PaymentFailed => format!(
            "{SHORT_NUMBER}: «{kk}» {amount} теңге аударылмады. Жаңа шот ашып, банкке хабарлаңыз немесе әлеуметтік әмиян ашыңыз. \
             Выплата «{ru}» {amount} тг не прошла. Откройте новый счет или социальный кошелек."
        ),
        Notice::AccountNeeded => format!(
            "{SHORT_NUMBER}: «{kk}» {amount} теңге төлеу үшін банк шоты қажет. \
             Для выплаты «{ru}» {amount} тг нужен банковский счет или социальный кошелек."
        ),
        Notice::Paid => format!(
            "{SHORT_NUMBER}: «{kk}» {amount} теңге аударылды. Выплата «{ru}» {amount} тг зачислена."
        ),
    }
}

/// The answer to a reply that could not be understood or matched.
pub fn help() -> String {
    format!(
        "{SHORT_NUMBER}: Жауап: ИӘ (1), ӘМИЯН (2) немесе ЖОҚ (0) және SMS-тегі #код. \
         Ответ: ДА (1), КОШЕЛЕК (2) или НЕТ (0) и #код из SMS."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_names_benefit_amount_code_and_answers_in_both_languages() {
        let names = BenefitNames {
            kazakh: "Көп балалы отбасыларға жәрдемақы".to_owned(),
            russian: "Пособие многодетным семьям".to_owned(),
        };
        let text = render(
            Notice::Offer,
            &names,
            Money::from_tiyn(6_932_975),
            482,
            false,
        );
        for needle in [
            "Көп балалы",
            "многодетным",
            "69329.75",
            "#0482",
            "ИӘ",
            "ДА",
            "КОШЕЛЕК",
            "ӘМИЯН",
            "ЖОҚ",
            "НЕТ",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }
}
