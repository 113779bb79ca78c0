//! The demo company's customers and their histories across every touchpoint, generated
//! deterministically from a seed.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use unavoce_synthetic::{FIRST_NAMES, LAST_NAMES, typo};

struct Customer {
    user_id: String,
    email: String,
    phone: String,
    loyalty_id: String,
    first_name: &'static str,
    last_name: &'static str,
    city: &'static str,
    store: &'static str,
    birth_date: String,
    postcode: String,
}

const CITIES: [(&str, &str); 4] = [
    ("Roma", "store-rome-01"),
    ("Milano", "store-milan-02"),
    ("Torino", "store-milan-02"),
    ("Napoli", "store-rome-01"),
];
const PRODUCTS: [(&str, &str, f64); 6] = [
    ("fibra-1g", "broadband", 29.9),
    ("mobile-100gb", "mobile", 9.9),
    ("router-wifi7", "devices", 149.0),
    ("tv-sport", "tv", 19.9),
    ("phone-a55", "devices", 379.0),
    ("insurance", "services", 4.9),
];

/// Generates the demo's messages, oldest first, deterministically from `seed`.
pub fn generate(customers: usize, now: Timestamp, seed: u64) -> Vec<Map<String, Value>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out: Vec<(Timestamp, Map<String, Value>)> = Vec::new();
    let mut push = |at: Timestamp, value: Value| {
        if let Value::Object(mut m) = value {
            m.insert("timestamp".into(), at.to_string().into());
            out.push((at, m));
        }
    };
    for n in 1..=customers {
        let (city, store) = CITIES[rng.usize(..CITIES.len())];
        let c = Customer {
            user_id: format!("cust-{n:05}"),
            email: format!("customer{n}@example.com"),
            phone: format!("+39 3{:02} {:07}", rng.u32(20..99), rng.u32(0..10_000_000)),
            loyalty_id: format!("L{:08}", n * 7919 % 100_000_000),
            first_name: FIRST_NAMES[rng.usize(..FIRST_NAMES.len())],
            last_name: LAST_NAMES[rng.usize(..LAST_NAMES.len())],
            city,
            store,
            birth_date: format!(
                "{}-{:02}-{:02}",
                rng.u32(1950..2004),
                rng.u32(1..13),
                rng.u32(1..29)
            ),
            postcode: format!("{:05}", rng.u32(100..99_000)),
        };
        let ago = |rng: &mut fastrand::Rng, max_days: i64| {
            now - SignedDuration::from_secs(rng.i64(3600..max_days * 86_400))
        };
        let signup = ago(&mut rng, 90);
        let anon = format!("anon-{n:05}-{}", rng.u32(1000..9999));
        // Anonymous browsing, then sign-up on the web.
        for page in ["Home", "Offers", "Fibra 1 Gbit", "Pricing"]
            .iter()
            .take(rng.usize(1..5))
        {
            let at = signup - SignedDuration::from_mins(rng.i64(5..600));
            push(
                at,
                json!({"type": "page", "anonymousId": anon, "name": page,
                "context": {"touchpoint": "web-shop", "library": {"name": "analytics.js"}}}),
            );
        }
        push(
            signup,
            json!({"type": "identify", "userId": c.user_id, "anonymousId": anon,
            "traits": {"email": c.email, "phone": c.phone, "firstName": c.first_name,
                "lastName": c.last_name, "city": c.city, "loyalty_id": c.loyalty_id,
                "birthDate": c.birth_date, "postcode": c.postcode},
            "context": {"touchpoint": "web-shop"}}),
        );
        // Some fill in a paper form at the store too: no identifier the web knows, only
        // details typed by staff, sometimes with a typo. Matching links them.
        if rng.f32() < 0.08 {
            let last_name = if rng.bool() {
                c.last_name.to_string()
            } else {
                typo(&mut rng, c.last_name)
            };
            // A quarter of the forms also get the day of birth wrong: harder to match.
            let birth_date = if rng.f32() < 0.25 {
                format!("{}{:02}", &c.birth_date[..8], rng.u32(1..29))
            } else {
                c.birth_date.clone()
            };
            // A fifth leave everything but the name and the city blank: a person must judge.
            let traits = if rng.f32() < 0.2 {
                json!({"firstName": c.first_name, "lastName": last_name, "city": c.city})
            } else {
                json!({"firstName": c.first_name, "lastName": last_name, "birthDate": birth_date,
                    "postcode": c.postcode, "city": c.city})
            };
            push(
                ago(&mut rng, 60),
                json!({"type": "identify", "anonymousId": format!("form-{n:05}"), "traits": traits,
                "context": {"touchpoint": c.store, "channel": "store"}}),
            );
        }
        let (sku, category, price) = PRODUCTS[rng.usize(..2)];
        push(
            signup + SignedDuration::from_mins(3),
            json!({"type": "track", "userId": c.user_id,
            "event": "Order Completed", "properties": {"order_id": format!("W{n:06}"),
            "revenue": price, "currency": "EUR", "products": [{"sku": sku, "category": category}]},
            "context": {"touchpoint": "web-shop"}}),
        );
        // Consent asked at sign-up; some later withdraw it for SMS.
        push(
            signup + SignedDuration::from_mins(1),
            json!({"type": "track", "userId": c.user_id,
            "event": "Consent Given", "properties": {"purpose": "service"},
            "context": {"touchpoint": "web-shop"}}),
        );
        if rng.f32() < 0.7 {
            push(
                signup + SignedDuration::from_mins(1),
                json!({"type": "track", "userId": c.user_id,
                "event": "Consent Given", "properties": {"purpose": "promotional"},
                "context": {"touchpoint": "web-shop"}}),
            );
            if rng.f32() < 0.1 {
                push(
                    ago(&mut rng, 20),
                    json!({"type": "track", "userId": c.user_id,
                    "event": "Consent Withdrawn", "properties": {"purpose": "promotional", "channel": "sms"},
                    "context": {"touchpoint": "sms-alerts"}}),
                );
            }
        }
        // The app.
        if rng.f32() < 0.6 {
            let device = format!("dev-{:08x}", rng.u32(..));
            for _ in 0..rng.usize(1..6) {
                let at = ago(&mut rng, 80);
                push(
                    at,
                    json!({"type": "screen", "userId": c.user_id, "name": "Consumption",
                    "context": {"touchpoint": "self-care-app", "device": {"id": device, "type": "android"},
                    "library": {"name": "analytics-android"}}}),
                );
            }
            if rng.bool() {
                push(
                    ago(&mut rng, 60),
                    json!({"type": "track", "userId": c.user_id, "event": "Push Opened",
                    "properties": {"campaign": "tv-sport-launch"}, "context": {"touchpoint": "app-push"}}),
                );
            }
        }
        // Store purchases by loyalty card.
        for _ in 0..rng.usize(0..3) {
            let (sku, category, price) = PRODUCTS[rng.usize(..PRODUCTS.len())];
            let at = ago(&mut rng, 85);
            push(
                at,
                json!({"type": "track", "userId": c.user_id, "event": "Order Completed",
                "traits": {"loyalty_id": c.loyalty_id},
                "properties": {"order_id": format!("S{}", rng.u32(..)), "revenue": price, "currency": "EUR",
                    "products": [{"sku": sku, "category": category}]},
                "context": {"touchpoint": c.store, "channel": "store"}}),
            );
        }
        // Campaign e-mails.
        for campaign in ["spring-offers", "tv-sport-launch"] {
            let at = ago(&mut rng, 60);
            push(
                at,
                json!({"type": "track", "userId": c.user_id, "event": "Email Sent",
                "properties": {"campaign": campaign}, "context": {"touchpoint": "newsletter"}}),
            );
            if rng.f32() < 0.4 {
                push(
                    at + SignedDuration::from_mins(rng.i64(5..2000)),
                    json!({"type": "track",
                    "userId": c.user_id, "event": "Email Opened", "properties": {"campaign": campaign},
                    "context": {"touchpoint": "newsletter"}}),
                );
            }
        }
        // A line outage for some: router alarm, a call, a case, maybe chat and WhatsApp follow-ups.
        if rng.f32() < 0.15 {
            let down = ago(&mut rng, 45);
            let case_id = format!("CASE-{n:05}");
            push(
                down,
                json!({"type": "track", "userId": c.user_id, "event": "Line Down",
                "context": {"touchpoint": "smart-router"}}),
            );
            let call = down + SignedDuration::from_mins(rng.i64(10..240));
            if rng.f32() < 0.4 {
                // The first try hung up in the queue.
                push(
                    call - SignedDuration::from_mins(rng.i64(3..9)),
                    json!({"type": "track", "userId": c.user_id, "event": "Call Abandoned",
                    "properties": {"wait_seconds": rng.u32(300..1500)},
                    "context": {"touchpoint": "call-center-milan"}}),
                );
            }
            push(
                call,
                json!({"type": "track", "userId": c.user_id, "event": "Call Received",
                "properties": {"wait_seconds": rng.u32(30..1500), "reason": "outage"},
                "traits": {"phone": c.phone}, "context": {"touchpoint": "call-center-milan"}}),
            );
            push(
                call + SignedDuration::from_mins(6),
                json!({"type": "track", "userId": c.user_id,
                "event": "Case Opened", "properties": {"case_id": case_id, "subject": "Internet outage",
                "category": "network"}, "context": {"touchpoint": "call-center-milan"}}),
            );
            let followups = ["live-chat", "whatsapp-business", "store-rome-01"];
            for tp in followups.iter().take(rng.usize(0..3)) {
                push(
                    call + SignedDuration::from_hours(rng.i64(2..40)),
                    json!({"type": "track",
                    "userId": c.user_id, "event": "Case Updated", "properties": {"case_id": case_id,
                    "note": "customer asked for news"}, "context": {"touchpoint": tp}}),
                );
            }
            if rng.f32() < 0.7 {
                let fixed = call + SignedDuration::from_hours(rng.i64(4..72));
                push(
                    fixed,
                    json!({"type": "track", "userId": c.user_id, "event": "Case Resolved",
                    "properties": {"case_id": case_id}, "context": {"touchpoint": "call-center-milan"}}),
                );
                push(
                    fixed + SignedDuration::from_hours(2),
                    json!({"type": "track", "userId": c.user_id,
                    "event": "Survey Answered", "properties": {"case_id": case_id,
                    "csat": rng.u8(1..6), "nps": rng.u8(0..11), "about_touchpoint": "call-center-milan"},
                    "context": {"touchpoint": "nps-survey"}}),
                );
            }
        }
        // Ads on Instagram and tickets at the station kiosk for a few.
        if rng.f32() < 0.1 {
            push(
                ago(&mut rng, 70),
                json!({"type": "track", "userId": c.user_id, "event": "Ad Clicked",
                "properties": {"campaign": "tv-sport-launch"}, "context": {"touchpoint": "instagram"}}),
            );
        }
        if rng.f32() < 0.04 {
            push(
                ago(&mut rng, 70),
                json!({"type": "track", "userId": c.user_id, "event": "Ticket Printed",
                "traits": {"loyalty_id": c.loyalty_id}, "context": {"touchpoint": "kiosk-roma-termini"}}),
            );
        }
        // Chatbot, social and kiosk contacts for a few.
        if rng.f32() < 0.2 {
            push(
                ago(&mut rng, 70),
                json!({"type": "track", "userId": c.user_id, "event": "Chat Started",
                "properties": {"topic": "billing"}, "context": {"touchpoint": "virtual-assistant"}}),
            );
        }
        if rng.f32() < 0.1 {
            push(
                ago(&mut rng, 70),
                json!({"type": "track", "userId": c.user_id, "event": "Comment Posted",
                "properties": {"sentiment": "negative"}, "context": {"touchpoint": "facebook"}}),
            );
        }
        if rng.f32() < 0.05 {
            push(
                ago(&mut rng, 30),
                json!({"type": "track", "userId": c.user_id, "event": "Message Received",
                "context": {"touchpoint": "telegram-bot", "channel": "telegram"}}),
            );
        }
    }
    // A misconfigured kiosk sends events without any identity: they land in the quarantine.
    for i in 0..12 {
        push(
            now - SignedDuration::from_hours(i + 1),
            json!({"type": "track", "event": "Ticket Printed",
            "context": {"touchpoint": "kiosk-roma-termini"}}),
        );
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter()
        .enumerate()
        .map(|(i, (_, mut m))| {
            m.insert("messageId".into(), format!("demo-{seed}-{i}").into());
            m
        })
        .collect()
}
