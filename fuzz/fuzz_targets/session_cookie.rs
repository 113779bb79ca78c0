//! What the server reads from request headers to know who calls: dashboard session
//! cookies (`claims`: `unavoce_session=name.expires.signature` among other cookies,
//! in one or more `Cookie` headers) and the tracking API's write key in
//! `Authorization: Basic` (`auth::basic_username`). Each claim is a part of the header
//! as sent; nothing panics.
//!
//! Input: header values, one a line: `Cookie` headers, then after an empty line the
//! `Authorization` header.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use unavoce_server::auth::basic_username;
use unavoce_server::claims;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut lines = data.split(|&b| b == b'\n');
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, value);
        }
    }
    if let Some(Ok(value)) = lines.next().map(HeaderValue::from_bytes) {
        headers.insert(header::AUTHORIZATION, value);
    }
    let cookies: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for (name, expires, signature) in claims(&headers) {
        let claim = format!("{name}.{expires}.{signature}");
        assert!(
            cookies
                .iter()
                .any(|c| c.contains(name) && c.contains(signature)),
            "{claim:?} is not in {cookies:?}"
        );
        assert!(!signature.contains('.') && !signature.contains(';'));
    }
    if let Some(user) = basic_username(&headers) {
        assert!(!user.is_empty() && !user.contains(':'));
    }
});
