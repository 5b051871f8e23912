//! Reading a citizen's SMS reply: an answer word in Kazakh, Russian or English
//! (or a digit) and, optionally, the 4-digit code with or without `#`, in either
//! order and any case. Pure.

use storage::event::ReplyAnswer;
use storage::record::PayoutChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub answer: ReplyAnswer,
    pub code: Option<u16>,
}

fn answer_of(word: &str) -> Option<ReplyAnswer> {
    match word {
        "yes" | "да" | "иә" | "ия" | "1" => {
            Some(ReplyAnswer::Consent(PayoutChoice::BankAccount))
        }
        "wallet" | "кошелек" | "кошелёк" | "әмиян" | "2" => {
            Some(ReplyAnswer::Consent(PayoutChoice::SocialWallet))
        }
        "no" | "нет" | "жоқ" | "0" => Some(ReplyAnswer::Refuse),
        _ => None,
    }
}

/// `None` when the text is not one answer word with at most one code.
pub fn parse(text: &str) -> Option<Reply> {
    let mut answer = None;
    let mut code = None;
    let lowered = text.to_lowercase();
    let words = lowered
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | ';' | ':'))
        .filter(|word| !word.is_empty());
    for word in words {
        let (hashed, bare) = match word.strip_prefix('#') {
            Some(rest) => (true, rest),
            None => (false, word),
        };
        if bare.len() == 4 && bare.bytes().all(|b| b.is_ascii_digit()) {
            if code.is_some() {
                return None;
            }
            code = Some(bare.parse::<u16>().ok()?);
            continue;
        }
        if hashed {
            return None;
        }
        let found = answer_of(bare)?;
        if answer.is_some_and(|previous| previous != found) {
            return None;
        }
        answer = Some(found);
    }
    Some(Reply {
        answer: answer?,
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BANK: ReplyAnswer = ReplyAnswer::Consent(PayoutChoice::BankAccount);
    const WALLET: ReplyAnswer = ReplyAnswer::Consent(PayoutChoice::SocialWallet);
    const NO: ReplyAnswer = ReplyAnswer::Refuse;

    fn check(text: &str, expected: Option<(ReplyAnswer, Option<u16>)>) {
        let got = parse(text).map(|reply| (reply.answer, reply.code));
        assert_eq!(got, expected, "for {text:?}");
    }

    #[test]
    fn answers_in_three_languages_digits_and_codes() {
        check("YES 4821", Some((BANK, Some(4821))));
        check("4821 yes", Some((BANK, Some(4821))));
        check("да #4821", Some((BANK, Some(4821))));
        check("ИӘ", Some((BANK, None)));
        check("1", Some((BANK, None)));
        check("Wallet", Some((WALLET, None)));
        check("КОШЕЛЕК #1234", Some((WALLET, Some(1234))));
        check("ӘМИЯН", Some((WALLET, None)));
        check("2 #0042", Some((WALLET, Some(42))));
        check("NO", Some((NO, None)));
        check("нет", Some((NO, None)));
        check("ЖОҚ 7777", Some((NO, Some(7777))));
        check("0", Some((NO, None)));
        check("  yes!  ", Some((BANK, None)));
    }

    #[test]
    fn anything_else_is_unreadable() {
        check("", None);
        check("maybe", None);
        check("4821", None);
        check("yes no", None);
        check("yes 4821 1234", None);
        check("yes #48", None);
        check("hello yes", None);
    }
}
