//! Where to send: the kind of identifier each channel sends to, and the person's
//! identifier of that kind.

use unavoce_core::identity::ProfileId;
use unavoce_core::policy::address_kind;
use unavoce_projections::IdentityProjection;

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
        // A channel without an address of its own (a call task) carries the phone, if any.
        let to = match address_kind(channel) {
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
        assert_eq!(address_kind("email"), Some("email"));
        for phone in ["sms", "whatsapp", "rcs"] {
            assert_eq!(address_kind(phone), Some("phone"), "{phone}");
        }
        assert_eq!(address_kind("push"), Some("device_id"));
        assert_eq!(address_kind("call_task"), None);
    }
}
