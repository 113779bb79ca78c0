//! The NATS URL: its servers, the credentials it carries, and how it may be shown.

use async_nats::ServerAddr;
use percent_encoding::percent_decode_str;

use crate::BusError;

/// Credentials from the URL: `nats://user:password@host` or `nats://token@host`.
pub(crate) enum Credentials {
    None,
    Token(String),
    UserPassword(String, String),
}

/// What a NATS URL names.
pub(crate) struct Servers {
    /// The servers, without credentials.
    pub(crate) addrs: Vec<ServerAddr>,
    /// The servers as they may be shown: scheme, host and port.
    pub(crate) shown: String,
    pub(crate) credentials: Credentials,
}

/// Reads `url`: one server or several separated by commas (`nats://` assumed), with
/// credentials taken from the first that has some.
pub(crate) fn parse(url: &str) -> Result<Servers, BusError> {
    let mut addrs = Vec::new();
    let mut shown = Vec::new();
    let mut credentials = Credentials::None;
    for part in url.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // async-nats' messages name the problem, never the URL itself.
        let addr: ServerAddr = part.parse().map_err(|e| BusError::Url(format!("{e}")))?;
        let mut url = addr.into_inner();
        if matches!(credentials, Credentials::None) && !url.username().is_empty() {
            let user = decode(url.username())?;
            credentials = match url.password() {
                Some(password) => Credentials::UserPassword(user, decode(password)?),
                None => Credentials::Token(user),
            };
        }
        // A URL with a host always takes these; without one, parsing failed above.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        shown.push(format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(4222)
        ));
        addrs.push(ServerAddr::from_url(url).map_err(|e| BusError::Url(format!("{e}")))?);
    }
    if addrs.is_empty() {
        return Err(BusError::Url("it names no server".into()));
    }
    Ok(Servers {
        addrs,
        shown: shown.join(","),
        credentials,
    })
}

fn decode(part: &str) -> Result<String, BusError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| BusError::Url("its credentials are not UTF-8 once decoded".into()))
}

/// Whether `name` may be one token of a NATS subject, kept to characters that every
/// NATS tool and permission rule takes as they are.
pub(crate) fn is_token(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_addresses_and_the_shown_form() {
        let servers = parse("nats://ops:s%40cret@10.0.0.5:4223, tls://nats.example").unwrap();
        assert_eq!(
            servers.shown,
            "nats://10.0.0.5:4223,tls://nats.example:4222"
        );
        assert!(
            servers
                .addrs
                .iter()
                .all(|a| a.username().is_none() && a.password().is_none())
        );
        assert!(matches!(
            servers.credentials,
            Credentials::UserPassword(ref u, ref p) if u == "ops" && p == "s@cret"
        ));
        let servers = parse("nats://t0ken@127.0.0.1").unwrap();
        assert!(matches!(servers.credentials, Credentials::Token(ref t) if t == "t0ken"));
        assert_eq!(servers.shown, "nats://127.0.0.1:4222");
        assert_eq!(
            parse("127.0.0.1:4222").unwrap().shown,
            "nats://127.0.0.1:4222"
        );
    }

    #[test]
    fn a_bad_url_says_why_without_repeating_it() {
        for url in [
            "",
            " , ",
            "http://u:hunter2@host",
            "nats://u:hunter2@host:notaport",
        ] {
            let error = parse(url).err().expect("refused").to_string();
            assert!(error.contains("nats://host:4222"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn cluster_names_are_plain_subject_tokens() {
        for good in ["unavoce", "eu-west_1", "A9"] {
            assert!(is_token(good), "{good}");
        }
        for bad in ["", "a.b", "a*", ">", "a b", "é", &"x".repeat(65)] {
            assert!(!is_token(bad), "{bad}");
        }
    }
}
