//! Do event names read as facts that already happened?
//!
//! An event is named `<Subject><PastVerb>` (`OrderPlaced`, `EmailSent`). The last word of the
//! name must be a past participle: a known irregular form, or a regular `-ed` form that is not
//! one of the nouns/adjectives that merely end in `-ed` (`Feed`, `Speed`, `Hundred`). This one
//! implementation serves the validator and `#[derive(pactum::Event)]`.

use heck::{ToPascalCase, ToSnakeCase};

/// Irregular (and base-identical) past participles and simple pasts.
const IRREGULAR_PAST: &[&str] = &[
    "ate",
    "became",
    "been",
    "began",
    "begun",
    "bent",
    "bitten",
    "bled",
    "blew",
    "blown",
    "bore",
    "born",
    "borne",
    "bought",
    "bound",
    "bred",
    "broadcast",
    "broke",
    "broken",
    "brought",
    "built",
    "burnt",
    "came",
    "cast",
    "caught",
    "chose",
    "chosen",
    "cut",
    "dealt",
    "did",
    "done",
    "drank",
    "drawn",
    "dreamt",
    "drew",
    "driven",
    "drove",
    "drunk",
    "eaten",
    "fed",
    "fell",
    "fallen",
    "felt",
    "fled",
    "flew",
    "flown",
    "forbidden",
    "forgiven",
    "forgot",
    "forgotten",
    "fought",
    "found",
    "froze",
    "frozen",
    "gave",
    "given",
    "gone",
    "got",
    "gotten",
    "ground",
    "grew",
    "grown",
    "had",
    "heard",
    "held",
    "hid",
    "hidden",
    "hung",
    "kept",
    "knew",
    "known",
    "laid",
    "lain",
    "led",
    "left",
    "lent",
    "lit",
    "lost",
    "made",
    "meant",
    "met",
    "mistaken",
    "overridden",
    "overtaken",
    "paid",
    "prepaid",
    "put",
    "quit",
    "ran",
    "rebuilt",
    "redone",
    "repaid",
    "reset",
    "resold",
    "resent",
    "rewritten",
    "rode",
    "ridden",
    "rose",
    "risen",
    "rung",
    "said",
    "sang",
    "sat",
    "saw",
    "seen",
    "sent",
    "set",
    "shaken",
    "shone",
    "shot",
    "shown",
    "shut",
    "slept",
    "sold",
    "sought",
    "spent",
    "split",
    "spoke",
    "spoken",
    "spun",
    "stole",
    "stolen",
    "stood",
    "struck",
    "stuck",
    "sung",
    "sunk",
    "swept",
    "swore",
    "sworn",
    "taken",
    "taught",
    "thought",
    "threw",
    "thrown",
    "told",
    "took",
    "tore",
    "torn",
    "undone",
    "understood",
    "upheld",
    "upset",
    "withdrawn",
    "withdrew",
    "withheld",
    "woke",
    "woken",
    "won",
    "wore",
    "worn",
    "wound",
    "wrote",
    "written",
];

/// Words ending in `-ed` that are not past forms.
const NOT_PAST_ED: &[&str] = &[
    "bed", "biped", "embed", "feed", "hatred", "hundred", "infrared", "kindred", "naked", "need",
    "red", "rugged", "sacred", "seabed", "seed", "shed", "shred", "sled", "speed", "wed", "wicked",
    "breed", "bleed", "greed", "weed", "deed", "reed", "steed", "heed", "proceed", "exceed",
    "succeed", "tweed", "creed", "screed",
];

/// `-eed` words that are past forms (every other `-eed` word is not).
const PAST_EED: &[&str] = &[
    "agreed",
    "decreed",
    "disagreed",
    "freed",
    "guaranteed",
    "refereed",
    "emceed",
    "teed",
];

/// Verbs commonly used in service names, with their past participle. Used to spot command
/// names (`CreateOrder`) and to propose the event name (`OrderCreated`).
const VERBS: &[(&str, &str)] = &[
    ("accept", "accepted"),
    ("activate", "activated"),
    ("add", "added"),
    ("adjust", "adjusted"),
    ("allocate", "allocated"),
    ("apply", "applied"),
    ("approve", "approved"),
    ("archive", "archived"),
    ("assign", "assigned"),
    ("authorize", "authorized"),
    ("bill", "billed"),
    ("block", "blocked"),
    ("book", "booked"),
    ("build", "built"),
    ("buy", "bought"),
    ("calculate", "calculated"),
    ("cancel", "cancelled"),
    ("capture", "captured"),
    ("change", "changed"),
    ("charge", "charged"),
    ("checkout", "checkedOut"),
    ("claim", "claimed"),
    ("clear", "cleared"),
    ("close", "closed"),
    ("commit", "committed"),
    ("complete", "completed"),
    ("compute", "computed"),
    ("confirm", "confirmed"),
    ("create", "created"),
    ("credit", "credited"),
    ("deactivate", "deactivated"),
    ("debit", "debited"),
    ("decline", "declined"),
    ("delete", "deleted"),
    ("deny", "denied"),
    ("deliver", "delivered"),
    ("deposit", "deposited"),
    ("disable", "disabled"),
    ("dispatch", "dispatched"),
    ("do", "done"),
    ("download", "downloaded"),
    ("drop", "dropped"),
    ("emit", "emitted"),
    ("enable", "enabled"),
    ("expire", "expired"),
    ("export", "exported"),
    ("fail", "failed"),
    ("fetch", "fetched"),
    ("find", "found"),
    ("finish", "finished"),
    ("flag", "flagged"),
    ("fulfil", "fulfilled"),
    ("fulfill", "fulfilled"),
    ("generate", "generated"),
    ("grant", "granted"),
    ("get", "got"),
    ("give", "given"),
    ("hold", "held"),
    ("import", "imported"),
    ("insert", "inserted"),
    ("invite", "invited"),
    ("invoice", "invoiced"),
    ("issue", "issued"),
    ("list", "listed"),
    ("load", "loaded"),
    ("lock", "locked"),
    ("log", "logged"),
    ("make", "made"),
    ("mark", "marked"),
    ("merge", "merged"),
    ("move", "moved"),
    ("notify", "notified"),
    ("open", "opened"),
    ("pack", "packed"),
    ("pay", "paid"),
    ("place", "placed"),
    ("plan", "planned"),
    ("post", "posted"),
    ("prepare", "prepared"),
    ("price", "priced"),
    ("process", "processed"),
    ("publish", "published"),
    ("purchase", "purchased"),
    ("put", "put"),
    ("queue", "queued"),
    ("quote", "quoted"),
    ("read", "read"),
    ("receive", "received"),
    ("record", "recorded"),
    ("refund", "refunded"),
    ("register", "registered"),
    ("reject", "rejected"),
    ("release", "released"),
    ("remove", "removed"),
    ("renew", "renewed"),
    ("replace", "replaced"),
    ("request", "requested"),
    ("reserve", "reserved"),
    ("reset", "reset"),
    ("restock", "restocked"),
    ("restore", "restored"),
    ("return", "returned"),
    ("revoke", "revoked"),
    ("run", "run"),
    ("save", "saved"),
    ("schedule", "scheduled"),
    ("sell", "sold"),
    ("send", "sent"),
    ("set", "set"),
    ("settle", "settled"),
    ("ship", "shipped"),
    ("sign", "signed"),
    ("start", "started"),
    ("stop", "stopped"),
    ("submit", "submitted"),
    ("subscribe", "subscribed"),
    ("suspend", "suspended"),
    ("sync", "synced"),
    ("take", "taken"),
    ("track", "tracked"),
    ("transfer", "transferred"),
    ("trigger", "triggered"),
    ("unlock", "unlocked"),
    ("unsubscribe", "unsubscribed"),
    ("update", "updated"),
    ("upload", "uploaded"),
    ("validate", "validated"),
    ("verify", "verified"),
    ("void", "voided"),
    ("withdraw", "withdrawn"),
    ("write", "written"),
];

/// Verbs that are at least as often nouns in service names (`OrderCreate`: "order" is the
/// subject). When a name starts and ends with a verb, the one not listed here is the action.
const NOUN_LIKE: &[&str] = &[
    "bill", "book", "charge", "credit", "debit", "deposit", "invoice", "list", "log", "mark",
    "order", "post", "price", "quote", "record", "refund", "request", "return", "set", "transfer",
];

/// The words of a name, lower case: `OrderPlaced` → `["order", "placed"]`.
pub fn words(name: &str) -> Vec<String> {
    name.to_snake_case()
        .split('_')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Is this single lower-case word a past form?
pub fn is_past_word(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    if IRREGULAR_PAST.contains(&w.as_str()) {
        return true;
    }
    if NOT_PAST_ED.contains(&w.as_str()) {
        return false;
    }
    if w.ends_with("eed") {
        return PAST_EED.contains(&w.as_str());
    }
    // `ed` needs a stem of at least two letters with a vowel: `placed`, `paid`, `synced`.
    w.len() >= 4 && w.ends_with("ed") && w[..w.len() - 2].chars().any(|c| "aeiouy".contains(c))
}

fn verb_past(word: &str) -> Option<&'static str> {
    VERBS
        .iter()
        .find(|(base, _)| *base == word)
        .map(|(_, past)| *past)
}

/// Is this word a known verb in its base (imperative) form?
pub fn is_command_verb(word: &str) -> bool {
    verb_past(&word.to_ascii_lowercase()).is_some()
}

/// Outcome of checking an event name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Reads as a fact that happened.
    PastFact,
    /// Does not; carries the proposed name, when one can be derived.
    NotPast {
        /// e.g. `OrderCreated` for `CreateOrder`.
        suggestion: Option<String>,
    },
}

/// Checks an event (or webhook) name.
pub fn check_event_name(name: &str) -> Verdict {
    let words = words(name);
    let Some(last) = words.last() else {
        return Verdict::NotPast { suggestion: None };
    };
    if is_past_word(last) {
        return Verdict::PastFact;
    }
    Verdict::NotPast {
        suggestion: suggest(&words),
    }
}

/// Proposes `<Subject><Past>` from a command-like or noun-like name.
fn suggest(words: &[String]) -> Option<String> {
    let pascal = |ws: &[&str]| ws.join("_").to_pascal_case();
    // A verb first (`CreateOrder`) or last (`OrderCreate`).
    let n = words.len();
    let is_verb = |i: usize| n > 1 && verb_past(&words[i]).is_some();
    let noun_like = |i: usize| NOUN_LIKE.contains(&words[i].as_str());
    let verb_at = match (is_verb(0), is_verb(n - 1)) {
        (true, true) if noun_like(0) && !noun_like(n - 1) => Some(n - 1),
        (true, _) => Some(0),
        (false, true) => Some(n - 1),
        (false, false) => None,
    };
    if let Some(i) = verb_at {
        let past = verb_past(&words[i])?;
        let rest: Vec<&str> = words
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, w)| w.as_str())
            .collect();
        return Some(format!("{}{}", pascal(&rest), past.to_pascal_case()));
    }
    // A gerund last (`PaymentProcessing`) → `PaymentProcessed`.
    let last = &words[n - 1];
    if let Some(stem) = last.strip_suffix("ing") {
        let past = verb_past(stem).or_else(|| verb_past(&format!("{stem}e")))?;
        let rest: Vec<&str> = words[..n - 1].iter().map(String::as_str).collect();
        return Some(format!("{}{}", pascal(&rest), past.to_pascal_case()));
    }
    None
}

/// `true` when a past-tense event name starts with an imperative verb and so reads like a
/// command wrapped in an event (`CreateOrderRequested`).
pub fn reads_as_command(name: &str) -> bool {
    let words = words(name);
    words.len() > 2 && is_command_verb(&words[0])
}

/// `true` when an operation name reads like an event (`OrderPlaced`): operations are commands.
pub fn reads_as_event(name: &str) -> bool {
    let words = words(name);
    words.len() > 1 && words.last().is_some_and(|w| is_past_word(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_facts() {
        for name in [
            "OrderPlaced",
            "PaymentCaptured",
            "StockReserved",
            "OrderCancelled",
            "EmailSent",
            "InvoicePaid",
            "ShipmentDispatched",
            "RefundIssued",
            "StockHeld",
            "ImageBuilt",
            "TicketSold",
            "TermsAgreed",
            "PasswordReset",
        ] {
            assert_eq!(check_event_name(name), Verdict::PastFact, "{name}");
        }
    }

    #[test]
    fn refuses_commands_and_nouns_with_suggestions() {
        let cases = [
            ("CreateOrder", Some("OrderCreated")),
            ("OrderCreate", Some("OrderCreated")),
            ("PlaceOrder", Some("OrderPlaced")),
            ("OrderStatus", None),
            ("ProductFeed", None),
            ("SeedData", None),
            ("SpeedLimit", None),
            ("UserNeed", None),
            ("SendEmail", Some("EmailSent")),
            ("PaymentProcessing", Some("PaymentProcessed")),
            ("ShipOrder", Some("OrderShipped")),
            ("RefundPayment", Some("PaymentRefunded")),
            ("GrantAccess", Some("AccessGranted")),
            ("InvoiceCreate", Some("InvoiceCreated")),
            ("RefundIssue", Some("RefundIssued")),
        ];
        for (name, suggestion) in cases {
            assert_eq!(
                check_event_name(name),
                Verdict::NotPast {
                    suggestion: suggestion.map(str::to_string)
                },
                "{name}"
            );
        }
    }

    #[test]
    fn ed_nouns_are_not_past() {
        for w in [
            "feed", "seed", "speed", "need", "hundred", "embed", "bed", "red",
        ] {
            assert!(!is_past_word(w), "{w}");
        }
        for w in ["placed", "synced", "agreed", "paid", "sent", "held"] {
            assert!(is_past_word(w), "{w}");
        }
    }

    #[test]
    fn lints_command_shaped_events_and_event_shaped_operations() {
        assert!(reads_as_command("CreateOrderRequested"));
        assert!(!reads_as_command("OrderPlaced"));
        assert!(reads_as_event("OrderPlaced"));
        assert!(!reads_as_event("PlaceOrder"));
    }
}
