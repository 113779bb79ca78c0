//! Where to send: the kind of identifier each channel sends to, and the person's
//! identifier of that kind.

use unavoce_core::identity::ProfileId;
use unavoce_projections::IdentityProjection;

/// The kind of identifier a message on `channel` goes to; `None` for a channel with no
/// address of its own (a call task, which carries the person's phone if they have one).
fn kind_for(channel: &str) -> Option<&'static str> {
    match channel {
        "email" => Some("email"),
        "sms" | "whatsapp" | "rcs" => Some("phone"),
        "push" => Some("device_id"),
        _ => None,
    }
}

/// Why a message has nowhere to go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoAddress {
    #[error("the profile no longer exists")]
    NoProfile,
    #[error("the person has no {0} to send to")]
    NoIdentifier(&'static str),
}

/// Where a message on `channel` to profile `id` goes: the profile it is now (merges
/// followed) and its most recent identifier of the channel's kind — for a channel
/// without one, their phone, or nothing.
pub(crate) fn find(
    identity: &IdentityProjection,
    id: ProfileId,
    channel: &str,
) -> Result<(ProfileId, String), NoAddress> {
    identity.read(|g| {
        let node = g.profile(id).ok_or(NoAddress::NoProfile)?;
        let to = match kind_for(channel) {
            Some(kind) => identity
                .identifier_of_kind(node, kind)
                .ok_or(NoAddress::NoIdentifier(kind))?,
            None => identity
                .identifier_of_kind(node, "phone")
                .unwrap_or_default(),
        };
        Ok((node.id, to))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_sends_to_its_kind_of_identifier() {
        assert_eq!(kind_for("email"), Some("email"));
        for phone in ["sms", "whatsapp", "rcs"] {
            assert_eq!(kind_for(phone), Some("phone"), "{phone}");
        }
        assert_eq!(kind_for("push"), Some("device_id"));
        assert_eq!(kind_for("call_task"), None);
    }
}
