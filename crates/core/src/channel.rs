//! Channel kinds: the families of contact points a customer can use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of a contact channel (PRODUCT §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelKind {
    Web,
    App,
    Email,
    Sms,
    Whatsapp,
    Rcs,
    Push,
    Phone,
    Chat,
    Chatbot,
    Social,
    Store,
    Kiosk,
    Signage,
    Iot,
    Fax,
    SalesRep,
    Survey,
    Other,
}

impl ChannelKind {
    /// Every channel kind, in declaration order.
    pub const ALL: [ChannelKind; 19] = [
        Self::Web,
        Self::App,
        Self::Email,
        Self::Sms,
        Self::Whatsapp,
        Self::Rcs,
        Self::Push,
        Self::Phone,
        Self::Chat,
        Self::Chatbot,
        Self::Social,
        Self::Store,
        Self::Kiosk,
        Self::Signage,
        Self::Iot,
        Self::Fax,
        Self::SalesRep,
        Self::Survey,
        Self::Other,
    ];

    /// The canonical name, as used in config files and `context.channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::App => "app",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Whatsapp => "whatsapp",
            Self::Rcs => "rcs",
            Self::Push => "push",
            Self::Phone => "phone",
            Self::Chat => "chat",
            Self::Chatbot => "chatbot",
            Self::Social => "social",
            Self::Store => "store",
            Self::Kiosk => "kiosk",
            Self::Signage => "signage",
            Self::Iot => "iot",
            Self::Fax => "fax",
            Self::SalesRep => "sales-rep",
            Self::Survey => "survey",
            Self::Other => "other",
        }
    }

    /// Whether a touchpoint of this kind is usually a physical place or device.
    pub fn is_usually_physical(self) -> bool {
        matches!(
            self,
            Self::Store | Self::Kiosk | Self::Signage | Self::Iot | Self::Fax | Self::SalesRep
        )
    }

    /// Recognises a channel name as senders write it: canonical names, common synonyms
    /// and spellings (`website`, `call-center`, `pos`, `instagram`, ...), any case.
    pub fn recognise(name: &str) -> Option<ChannelKind> {
        let key: String = name
            .trim()
            .chars()
            .map(|c| match c {
                '_' | ' ' => '-',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        let kind = match key.as_str() {
            "web" | "website" | "browser" | "web-site" | "ecommerce" | "e-commerce" => Self::Web,
            "app" | "mobile" | "mobile-app" | "ios" | "android" => Self::App,
            "email" | "e-mail" | "mail" | "newsletter" => Self::Email,
            "sms" | "text" | "mms" => Self::Sms,
            "whatsapp" | "whats-app" => Self::Whatsapp,
            "rcs" => Self::Rcs,
            "push" | "push-notification" | "notification" => Self::Push,
            "phone" | "call" | "call-center" | "callcenter" | "call-centre" | "contact-center"
            | "voice" | "ivr" | "telephone" => Self::Phone,
            "chat" | "live-chat" | "livechat" => Self::Chat,
            "chatbot" | "bot" | "virtual-assistant" => Self::Chatbot,
            "social" | "facebook" | "instagram" | "twitter" | "x" | "pinterest" | "tiktok"
            | "linkedin" | "messenger" => Self::Social,
            "store" | "shop" | "pos" | "till" | "branch" | "retail" => Self::Store,
            "kiosk" | "totem" => Self::Kiosk,
            "signage" | "digital-signage" => Self::Signage,
            "iot" | "device" => Self::Iot,
            "fax" => Self::Fax,
            "sales-rep" | "salesrep" | "agent" | "field-sales" => Self::SalesRep,
            "survey" | "review" | "reviews" => Self::Survey,
            "other" => Self::Other,
            _ => return None,
        };
        Some(kind)
    }
}

/// A channel name as the platform records it: the canonical kind when recognised,
/// otherwise the name trimmed and lower-cased (an unregistered channel, kept as said).
pub fn canonical_name(name: &str) -> String {
    match ChannelKind::recognise(name) {
        Some(kind) => kind.as_str().to_string(),
        None => name.trim().to_lowercase(),
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a channel name that is not a known kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown channel kind {0:?}; expected one of: web, app, email, sms, whatsapp, rcs, push, phone, chat, chatbot, social, store, kiosk, signage, iot, fax, sales-rep, survey, other"
)]
pub struct UnknownChannel(pub String);

impl FromStr for ChannelKind {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::recognise(s).ok_or_else(|| UnknownChannel(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_round_trip() {
        for kind in ChannelKind::ALL {
            assert_eq!(ChannelKind::recognise(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn synonyms_are_recognised_in_any_case() {
        assert_eq!(
            ChannelKind::recognise("Call Center"),
            Some(ChannelKind::Phone)
        );
        assert_eq!(ChannelKind::recognise("POS"), Some(ChannelKind::Store));
        assert_eq!(
            ChannelKind::recognise("Instagram"),
            Some(ChannelKind::Social)
        );
        assert_eq!(
            ChannelKind::recognise("sales_rep"),
            Some(ChannelKind::SalesRep)
        );
        assert_eq!(ChannelKind::recognise("carrier pigeon"), None);
    }
}
