//! How providers sign their callbacks, computed as they do (what a test server sends).
//! Each provider's own check is in its folder, `providers/<name>/signature.rs`; these
//! stay here under the paths callers know.

pub use crate::providers::twilio::twilio_signature;
pub use crate::providers::whatsapp::whatsapp_signature;
