//! Realistic omnichannel customer histories with ground truth.
//!
//! Each generated person leaves traces the way real customers do: anonymous web visits
//! that later log in, app sessions on their own devices, store purchases by loyalty card,
//! calls to the call center that carry only a phone number, sign-up forms typed by store
//! staff (with the occasional typo), a family sharing one e-mail address, and a store's
//! own phone number typed by cashiers for walk-in customers who gave none. The truth —
//! which person each message came from — is returned beside the messages and never sent.

use std::collections::HashMap;

mod histories;
mod sdk;
pub use histories::{HistoryDataset, touchpoint_histories, touchpoint_histories_of};
pub use sdk::sdk_message;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

/// Messages in time order, and who really sent each (by `messageId`).
pub struct Dataset {
    pub messages: Vec<Map<String, Value>>,
    pub truth: HashMap<String, usize>,
    pub people: Vec<Person>,
}

/// One generated person and their identifiers.
#[derive(Debug, Clone)]
pub struct Person {
    pub index: usize,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub birth_date: String,
    pub postcode: String,
    pub city: &'static str,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub loyalty_id: Option<String>,
    pub devices: Vec<String>,
}

/// The phone number of the store, typed by cashiers for customers who give none.
pub const STORE_PHONE: &str = "06 6789 1234";

/// Italian first names.
pub const FIRST_NAMES: [&str; 40] = [
    "Giulia",
    "Marco",
    "Francesca",
    "Luca",
    "Chiara",
    "Alessandro",
    "Sara",
    "Matteo",
    "Elena",
    "Davide",
    "Martina",
    "Simone",
    "Valentina",
    "Andrea",
    "Federica",
    "Paolo",
    "Anna",
    "Giorgio",
    "Laura",
    "Stefano",
    "Silvia",
    "Roberto",
    "Alessia",
    "Fabio",
    "Elisa",
    "Riccardo",
    "Ilaria",
    "Daniele",
    "Giorgia",
    "Lorenzo",
    "Beatrice",
    "Tommaso",
    "Aurora",
    "Nicola",
    "Camilla",
    "Emanuele",
    "Serena",
    "Pietro",
    "Noemi",
    "Filippo",
];
/// Italian family names.
pub const LAST_NAMES: [&str; 40] = [
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Romano",
    "Colombo",
    "Ricci",
    "Marino",
    "Greco",
    "Bruno",
    "Gallo",
    "Conti",
    "De Luca",
    "Costa",
    "Giordano",
    "Mancini",
    "Rizzo",
    "Lombardi",
    "Moretti",
    "Barbieri",
    "Fontana",
    "Santoro",
    "Mariani",
    "Rinaldi",
    "Caruso",
    "Ferrara",
    "Galli",
    "Martini",
    "Leone",
    "Longo",
    "Gentile",
    "Martinelli",
    "Vitale",
    "Lombardo",
    "Serra",
    "Coppola",
    "De Santis",
    "D'Angelo",
    "Marchetti",
];
/// Italian mobile prefixes in use.
const MOBILE_PREFIXES: [&str; 20] = [
    "320", "324", "327", "328", "329", "330", "331", "333", "334", "335", "338", "339", "340",
    "342", "345", "347", "348", "349", "366", "393",
];
const CITIES: [(&str, &str); 6] = [
    ("Roma", "001"),
    ("Milano", "201"),
    ("Torino", "101"),
    ("Napoli", "801"),
    ("Bologna", "401"),
    ("Firenze", "501"),
];

struct Builder {
    rng: fastrand::Rng,
    start: Timestamp,
    days: i64,
    messages: Vec<(Timestamp, Map<String, Value>, usize)>,
    receipts: u64,
}

impl Builder {
    fn at(&mut self) -> Timestamp {
        self.start + SignedDuration::from_secs(self.rng.i64(0..self.days * 86_400))
    }

    fn push(&mut self, at: Timestamp, person: usize, message: Value) {
        if let Value::Object(mut m) = message {
            m.insert("timestamp".into(), at.to_string().into());
            self.messages.push((at, m, person));
        }
    }

    fn anonymous(&mut self, prefix: &str) -> String {
        self.receipts += 1;
        format!("{prefix}-{:08x}-{}", self.rng.u32(..), self.receipts)
    }
}

/// Generates `people` people's histories over `days` days from `start`, from `seed`.
pub fn omnichannel(people: usize, seed: u64, start: Timestamp, days: i64) -> Dataset {
    let mut b = Builder {
        rng: fastrand::Rng::with_seed(seed),
        start,
        days: days.max(1),
        messages: Vec::new(),
        receipts: 0,
    };
    let mut persons = Vec::with_capacity(people);
    let mut family_email: Option<String> = None;
    for index in 0..people {
        let first_name = FIRST_NAMES[b.rng.usize(..FIRST_NAMES.len())];
        let last_name = LAST_NAMES[b.rng.usize(..LAST_NAMES.len())];
        let (city, prefix) = CITIES[b.rng.usize(..CITIES.len())];
        let slug = |s: &str| s.to_lowercase().replace(['\'', ' '], "");
        let online = b.rng.f32() < 0.75;
        // Every 25th person shares the previous person's family e-mail.
        let email = if index % 25 == 1 && family_email.is_some() {
            family_email.clone()
        } else if b.rng.f32() < 0.9 {
            Some(format!(
                "{}.{}{}@example.com",
                slug(first_name),
                slug(last_name),
                index
            ))
        } else {
            None
        };
        if index % 25 == 0 {
            family_email = email.clone();
        }
        let person = Person {
            index,
            first_name,
            last_name,
            birth_date: format!(
                "{}-{:02}-{:02}",
                b.rng.u32(1945..2005),
                b.rng.u32(1..13),
                b.rng.u32(1..29)
            ),
            postcode: format!("{prefix}{:02}", b.rng.u32(0..100)),
            city,
            user_id: online.then(|| format!("user-{index:06}")),
            email,
            phone: (b.rng.f32() < 0.8).then(|| {
                let prefix = MOBILE_PREFIXES[b.rng.usize(..MOBILE_PREFIXES.len())];
                format!("{prefix} {:07}", b.rng.u32(1_000_000..9_999_999))
            }),
            loyalty_id: (b.rng.f32() < 0.55).then(|| format!("L{:07}", 1_000_000 + index)),
            devices: (0..b.rng.usize(0..3))
                .map(|_| format!("dev-{:012x}", b.rng.u64(..)))
                .collect(),
        };
        history(&mut b, &person);
        persons.push(person);
    }
    b.messages.sort_by_key(|(at, _, _)| *at);
    let mut truth = HashMap::new();
    let messages = b
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, (_, mut m, person))| {
            let id = format!("syn-{seed}-{i}");
            m.insert("messageId".into(), id.clone().into());
            truth.insert(id, person);
            m
        })
        .collect();
    Dataset {
        messages,
        truth,
        people: persons,
    }
}

fn history(b: &mut Builder, p: &Person) {
    let who = p.index;
    let traits = |extra: Value| {
        let mut t = json!({"firstName": p.first_name, "lastName": p.last_name, "city": p.city});
        if let (Value::Object(t), Value::Object(extra)) = (&mut t, extra) {
            t.extend(extra);
        }
        t
    };
    // The web: anonymous browsing in one or two browsers, each later logging in.
    if let Some(user) = &p.user_id {
        for _ in 0..b.rng.usize(1..3) {
            let cookie = b.anonymous("web");
            let login = b.at();
            for page in ["Home", "Offers", "Pricing"].iter().take(b.rng.usize(1..4)) {
                let at = login - SignedDuration::from_mins(b.rng.i64(1..300));
                b.push(
                    at,
                    who,
                    json!({"type": "page", "anonymousId": cookie, "name": page,
                    "context": {"touchpoint": "web-shop"}}),
                );
            }
            // Registration asks for contact details; most people give them.
            let mut t = json!({});
            if let Some(email) = &p.email {
                t["email"] = email.clone().into();
            }
            if let Some(phone) = p.phone.as_ref().filter(|_| b.rng.f32() < 0.85) {
                t["phone"] = phone.clone().into();
            }
            if let Some(card) = p.loyalty_id.as_ref().filter(|_| b.rng.f32() < 0.7) {
                t["loyalty_id"] = card.clone().into();
            }
            b.push(
                login,
                who,
                json!({"type": "identify", "userId": user, "anonymousId": cookie,
                "traits": traits(t), "context": {"touchpoint": "web-shop"}}),
            );
            b.push(
                login + SignedDuration::from_mins(2),
                who,
                json!({"type": "track", "userId": user,
                "anonymousId": cookie, "event": "Product Viewed", "properties": {"sku": "fibra-1g"},
                "context": {"touchpoint": "web-shop"}}),
            );
        }
        // The app on each of the person's devices, logged in.
        for device in &p.devices {
            for _ in 0..b.rng.usize(1..4) {
                let at = b.at();
                b.push(
                    at,
                    who,
                    json!({"type": "screen", "userId": user, "name": "Consumption",
                    "context": {"touchpoint": "self-care-app", "device": {"id": device}}}),
                );
            }
        }
    } else if let Some(device) = p.devices.first() {
        // App use without an account: the device carries the identity.
        let anon = b.anonymous("app");
        let (phone, email) = (p.phone.clone(), p.email.clone());
        let at = b.at();
        b.push(
            at,
            who,
            json!({"type": "identify", "anonymousId": anon,
            "traits": traits(json!({"phone": phone, "email": email})),
            "context": {"touchpoint": "self-care-app", "device": {"id": device}}}),
        );
    }
    // The store: a loyalty sign-up form, then purchases by card.
    if let Some(card) = &p.loyalty_id {
        let form = b.at();
        let typo = b.rng.f32() < 0.08;
        let email = p.email.as_ref().map(|e| {
            if typo {
                e.replacen('.', "", 1)
            } else {
                e.clone()
            }
        });
        let phone = match &p.phone {
            Some(phone) => phone.clone(),
            // The cashier types the store's own number for customers who give none.
            None => STORE_PHONE.to_string(),
        };
        let receipt = b.anonymous("pos");
        b.push(
            form,
            who,
            json!({"type": "identify", "anonymousId": receipt,
            "traits": traits(json!({"loyalty_id": card, "email": email, "phone": phone,
                "birthDate": p.birth_date, "postcode": p.postcode})),
            "context": {"touchpoint": "store-rome-01"}}),
        );
        for _ in 0..b.rng.usize(0..4) {
            let at = b.at();
            let receipt = b.anonymous("pos");
            let revenue = b.rng.u32(5..300);
            b.push(
                at,
                who,
                json!({"type": "track", "anonymousId": receipt, "event": "Order Completed",
                "traits": {"loyalty_id": card}, "properties": {"revenue": revenue},
                "context": {"touchpoint": "store-rome-01"}}),
            );
        }
    }
    // The call center knows only the number the customer calls from.
    if let Some(phone) = &p.phone {
        for _ in 0..b.rng.usize(0..3) {
            let at = b.at();
            let call = b.anonymous("call");
            b.push(
                at,
                who,
                json!({"type": "track", "anonymousId": call, "event": "Call Received",
                "traits": {"phone": phone}, "context": {"touchpoint": "call-center-milan"}}),
            );
        }
    }
}

/// Pairwise precision and recall of a clustering of messages against the truth.
/// `assigned` maps each `messageId` to its cluster (e.g. a profile id); messages with
/// no cluster count as alone.
pub fn pairwise_quality(
    truth: &HashMap<String, usize>,
    assigned: &HashMap<String, String>,
) -> (f64, f64) {
    let mut cells: HashMap<(usize, &str), u64> = HashMap::new();
    let mut clusters: HashMap<&str, u64> = HashMap::new();
    let mut persons: HashMap<usize, u64> = HashMap::new();
    for (message, person) in truth {
        *persons.entry(*person).or_default() += 1;
        if let Some(cluster) = assigned.get(message) {
            *clusters.entry(cluster.as_str()).or_default() += 1;
            *cells.entry((*person, cluster.as_str())).or_default() += 1;
        }
    }
    let pairs = |n: &u64| n * n.saturating_sub(1) / 2;
    let true_positive: u64 = cells.values().map(pairs).sum();
    let predicted: u64 = clusters.values().map(pairs).sum();
    let actual: u64 = persons.values().map(pairs).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    (
        ratio(true_positive, predicted),
        ratio(true_positive, actual),
    )
}

/// Records of people for record linkage, a third of them twice with typos or a missing
/// field, as sign-up forms typed by hand; ids are `p{n}` and `p{n}-dup`. Returns the
/// header and the rows (id first).
pub fn people_with_duplicates(people: usize, seed: u64) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    const SYLLABLES: [&str; 24] = [
        "ri", "ni", "ca", "lo", "ta", "ve", "mo", "sa", "to", "bel", "gar", "mar", "fer", "dan",
        "tel", "rel", "pin", "cor", "zan", "bo", "gi", "lu", "se", "do",
    ];
    let header = [
        "id",
        "first_name",
        "surname",
        "date_of_birth",
        "postcode",
        "city",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::with_capacity(people * 4 / 3);
    for person in 0..people {
        // Surnames as many as in a real population: a family name, sometimes extended.
        let mut surname = LAST_NAMES[rng.usize(..LAST_NAMES.len())]
            .to_lowercase()
            .replace(['\'', ' '], "");
        for _ in 0..rng.usize(0..3) {
            surname.push_str(SYLLABLES[rng.usize(..SYLLABLES.len())]);
        }
        let (city, prefix) = CITIES[rng.usize(..CITIES.len())];
        let record = vec![
            format!("p{person}"),
            FIRST_NAMES[rng.usize(..FIRST_NAMES.len())].to_lowercase(),
            surname,
            format!(
                "{}{:02}{:02}",
                rng.u32(1930..2008),
                rng.u32(1..13),
                rng.u32(1..29)
            ),
            format!("{prefix}{:02}", rng.u32(0..100)),
            city.to_lowercase(),
        ];
        if rng.f32() < 0.33 {
            let mut copy = record.clone();
            copy[0] = format!("p{person}-dup");
            for _ in 0..rng.usize(1..3) {
                let field = rng.usize(1..5);
                copy[field] = if rng.f32() < 0.15 {
                    String::new()
                } else {
                    typo(&mut rng, &copy[field])
                };
            }
            rows.push(record);
            rows.push(copy);
        } else {
            rows.push(record);
        }
    }
    (header, rows)
}

/// One keying error: two letters swapped, one dropped, or one replaced.
pub fn typo(rng: &mut fastrand::Rng, value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    if chars.len() < 3 {
        return value.to_string();
    }
    let i = rng.usize(1..chars.len() - 1);
    match rng.u8(0..3) {
        0 => chars.swap(i, i + 1),
        1 => {
            chars.remove(i);
        }
        _ => {
            chars[i] = if chars[i].is_ascii_digit() {
                (b'0' + rng.u8(0..10)) as char
            } else {
                (b'a' + rng.u8(0..26)) as char
            }
        }
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_quality_counts_pairs() {
        let truth: HashMap<String, usize> = [("a", 1), ("b", 1), ("c", 1), ("d", 2)]
            .iter()
            .map(|(m, p)| (m.to_string(), *p))
            .collect();
        let perfect: HashMap<String, String> = [("a", "x"), ("b", "x"), ("c", "x"), ("d", "y")]
            .iter()
            .map(|(m, c)| (m.to_string(), c.to_string()))
            .collect();
        assert_eq!(pairwise_quality(&truth, &perfect), (1.0, 1.0));
        let split: HashMap<String, String> = [("a", "x"), ("b", "x"), ("c", "z"), ("d", "y")]
            .iter()
            .map(|(m, c)| (m.to_string(), c.to_string()))
            .collect();
        assert_eq!(pairwise_quality(&truth, &split), (1.0, 1.0 / 3.0));
        let fused: HashMap<String, String> = [("a", "x"), ("b", "x"), ("c", "x"), ("d", "x")]
            .iter()
            .map(|(m, c)| (m.to_string(), c.to_string()))
            .collect();
        assert_eq!(pairwise_quality(&truth, &fused), (0.5, 1.0));
    }

    #[test]
    fn generation_is_deterministic_and_covers_every_scenario() {
        let start: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let a = omnichannel(300, 7, start, 90);
        let b = omnichannel(300, 7, start, 90);
        assert_eq!(a.messages, b.messages);
        let text = serde_json::to_string(&a.messages).unwrap();
        for needle in [
            STORE_PHONE,
            "call-center-milan",
            "self-care-app",
            "loyalty_id",
            "\"page\"",
        ] {
            assert!(text.contains(needle), "no {needle}");
        }
        let shared = a
            .people
            .iter()
            .filter(|p| {
                p.email.is_some() && a.people.iter().filter(|q| q.email == p.email).count() > 1
            })
            .count();
        assert!(shared >= 2, "no family e-mail");
    }
}
