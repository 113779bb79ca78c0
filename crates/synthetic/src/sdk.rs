//! SDK-shaped traffic of a returning customer base: what `analytics.js` on the website
//! and the iOS SDK in the app send (identify, page, screen, track with a full context),
//! for soaks and memory tests that need many events from a fixed population.

use serde_json::{Value, json};

use super::FIRST_NAMES;

const CITIES: [&str; 5] = ["Roma", "Milano", "Napoli", "Torino", "Bologna"];
const PLANS: [&str; 3] = ["fibra", "mobile", "tv"];
const PAGES: [(&str, &str); 6] = [
    ("/", "Home"),
    ("/offerte", "Offerte"),
    ("/fibra", "Fibra"),
    ("/mobile", "Mobile"),
    ("/assistenza", "Assistenza"),
    ("/checkout", "Checkout"),
];
const PRODUCTS: [(&str, &str, f64); 4] = [
    ("fibra-1000", "Fibra 1 Gbit", 29.9),
    ("mobile-100", "Mobile 100 GB", 9.9),
    ("tv-sport", "TV Sport", 14.9),
    ("modem-wifi6", "Modem Wi-Fi 6", 79.0),
];

/// One message as an SDK sends it, from one of `people` people (a third use the app):
/// a web visitor through `analytics.js` (page, track) or an app user through the iOS
/// SDK (screen, track), identified most of the time. Without `messageId` and
/// `timestamp`, which the caller sets.
pub fn sdk_message(rng: &mut fastrand::Rng, people: usize) -> Value {
    let p = rng.usize(..people);
    let app = p.is_multiple_of(3);
    let user = format!("user-{p:06}");
    let (path, title) = PAGES[rng.usize(..PAGES.len())];
    let mut context = if app {
        json!({
            "library": {"name": "analytics-ios", "version": "4.1.8"},
            "app": {"name": "Voce", "version": "5.2.0", "build": "5200"},
            "device": {"id": format!("device-{p:06}"), "manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"},
            "os": {"name": "iOS", "version": "17.4"},
            "network": {"wifi": rng.bool(), "carrier": "Voce"},
            "screen": {"width": 393, "height": 852},
            "locale": "it-IT",
            "timezone": "Europe/Rome",
        })
    } else {
        json!({
            "library": {"name": "analytics.js", "version": "next-1.64.0"},
            "ip": format!("93.44.{}.{}", p % 250, (p / 250) % 250),
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            "page": {"path": path, "url": format!("https://voce.example{path}"), "title": title, "referrer": "https://www.google.com/"},
            "locale": "it-IT",
        })
    };
    let kind = rng.u32(..1_000);
    let mut m = if kind < 100 {
        context["traits"] = json!({"email": format!("{user}@example.com")});
        json!({"type": "identify", "userId": user, "traits": {
            "email": format!("{user}@example.com"),
            "first_name": FIRST_NAMES[p % FIRST_NAMES.len()],
            "city": CITIES[p % CITIES.len()],
            "plan": PLANS[p % PLANS.len()],
        }})
    } else if kind < 450 {
        if app {
            json!({"type": "screen", "name": title, "properties": {"name": title}})
        } else {
            json!({"type": "page", "name": title, "properties": {
                "path": path, "url": format!("https://voce.example{path}"), "title": title,
                "referrer": "https://www.google.com/"}})
        }
    } else {
        let (id, name, price) = PRODUCTS[rng.usize(..PRODUCTS.len())];
        let product = json!({"product_id": id, "name": name, "price": price, "currency": "EUR"});
        match kind {
            450..=749 => json!({"type": "track", "event": "Product Viewed", "properties": product}),
            750..=879 => json!({"type": "track", "event": "Product Added", "properties": product}),
            880..=939 => {
                json!({"type": "track", "event": "Checkout Started", "properties": {"value": price, "currency": "EUR"}})
            }
            940..=979 => json!({"type": "track", "event": "Order Completed", "properties": {
                "order_id": format!("o-{p}-{}", rng.u32(..1_000_000)), "revenue": price,
                "currency": "EUR", "products": [product]}}),
            980..=996 => {
                json!({"type": "track", "event": "Signed In", "properties": {"method": "password"}})
            }
            _ => {
                json!({"type": "track", "event": "Trial Started", "properties": {"plan": PLANS[p % PLANS.len()]}})
            }
        }
    };
    if m["type"] != "identify" && rng.u32(..10) < 7 {
        m["userId"] = user.into();
    }
    m["anonymousId"] = format!("anon-{p:06}-{}", if app { "app" } else { "web" }).into();
    m["context"] = context;
    m["integrations"] = json!({});
    m
}
