//! Messages: one message, rendered in each channel's own style and personalised from
//! the profile — an e-mail (subject, HTML and text, unsubscribe link), an SMS (GSM-7 or
//! UCS-2, counted in segments), a WhatsApp message (conversational, up to three
//! quick-reply buttons), a push notification (title and body within limits) and a
//! call-center task.
//!
//! Templates are minijinja. Everything is checked when the message is defined: the
//! templates parse, use only the variables a person has ([`VARIABLES`]), and, rendered
//! for a sample person, fit their channel's limits.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::identity::ProfileId;
use crate::profile::ProfileFacts;

/// The variables a template may use.
pub const VARIABLES: [&str; 7] = [
    "first_name",
    "name",
    "traits",
    "computed",
    "stage",
    "profile_id",
    "unsubscribe_url",
];

/// Push titles and bodies longer than this are cut by phones.
pub const PUSH_TITLE_MAX: usize = 65;
pub const PUSH_BODY_MAX: usize = 240;
/// WhatsApp quick replies: at most three buttons of at most 20 characters.
pub const WHATSAPP_BUTTONS_MAX: usize = 3;
pub const WHATSAPP_BUTTON_CHARS: usize = 20;
pub const WHATSAPP_TEXT_MAX: usize = 1024;

/// The longest `{{ .. }}` or `{% .. %}` tag a template may hold, in bytes: compiling
/// recurses once per operator of an expression, so a much longer one (`1+1+...`) could
/// overflow a thread's stack.
pub const MAX_TAG_BYTES: usize = 4096;

/// A message as written in `[[messages]]` or sent to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageConfig {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsAppTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_task: Option<CallTaskTemplate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTemplate {
    pub subject: String,
    /// HTML; values are escaped. The unsubscribe link is added when it is not used.
    pub html: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsTemplate {
    pub text: String,
    /// The most segments one SMS may take (default 2).
    #[serde(default = "two")]
    pub max_segments: usize,
}

fn two() -> usize {
    2
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppTemplate {
    /// Conversational: written as a person would write it.
    pub text: String,
    #[serde(default)]
    pub buttons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTemplate {
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallTaskTemplate {
    /// What the agent should do and say.
    pub summary: String,
}

/// Why a message cannot be defined or rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("message {message:?}, {at}: {problem}")]
pub struct MessageError {
    pub message: String,
    /// `email.subject`, `sms.text`, ...
    pub at: String,
    pub problem: String,
}

/// How an SMS is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

/// A message rendered for one person on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Rendering {
    Email {
        subject: String,
        html: String,
        text: String,
        /// The `List-Unsubscribe` header's value.
        list_unsubscribe: String,
        /// The `List-Unsubscribe-Post` header's value (one-click, RFC 8058).
        list_unsubscribe_post: &'static str,
    },
    Sms {
        text: String,
        encoding: SmsEncoding,
        /// In the encoding's units (GSM-7 septets, UCS-2 code units).
        characters: usize,
        segments: usize,
    },
    Whatsapp {
        text: String,
        buttons: Vec<String>,
    },
    Push {
        title: String,
        body: String,
    },
    CallTask {
        summary: String,
    },
}

/// A checked message, its templates compiled.
#[derive(Debug)]
pub struct Message {
    pub config: MessageConfig,
    templates: minijinja::Environment<'static>,
}

impl Message {
    /// Checks and compiles a message.
    pub fn new(config: MessageConfig) -> Result<Self, MessageError> {
        let fail = |at: &str, problem: String| MessageError {
            message: config.id.clone(),
            at: at.to_string(),
            problem,
        };
        if !crate::is_valid_name(&config.id) {
            return Err(fail(
                "id",
                "use 1 to 64 letters, digits, '-' or '_', starting with a letter".into(),
            ));
        }
        let mut templates = minijinja::Environment::new();
        let sources: Vec<(&str, &str)> = config.sources();
        if sources.is_empty() {
            return Err(fail(
                "channels",
                "give at least one of email, sms, whatsapp, push, call_task".into(),
            ));
        }
        for (name, source) in &sources {
            let longest = longest_tag(source);
            if longest > MAX_TAG_BYTES {
                return Err(fail(
                    name,
                    format!("a tag is {longest} bytes long; at most {MAX_TAG_BYTES}"),
                ));
            }
            templates
                .add_template_owned(name.to_string(), source.to_string())
                .map_err(|e| fail(name, format!("the template does not parse: {e}")))?;
            let template = templates
                .get_template(name)
                .map_err(|e| fail(name, e.to_string()))?;
            let mut used: Vec<String> = template.undeclared_variables(false).into_iter().collect();
            used.sort();
            if let Some(unknown) = used.iter().find(|v| !VARIABLES.contains(&v.as_str())) {
                return Err(fail(
                    name,
                    format!(
                        "{unknown:?} is not a variable a message can use; use {}",
                        VARIABLES.join(", ")
                    ),
                ));
            }
        }
        if let Some(w) = &config.whatsapp {
            if w.buttons.len() > WHATSAPP_BUTTONS_MAX {
                return Err(fail(
                    "whatsapp.buttons",
                    format!(
                        "{} buttons; WhatsApp allows {WHATSAPP_BUTTONS_MAX}",
                        w.buttons.len()
                    ),
                ));
            }
            if let Some(long) = w
                .buttons
                .iter()
                .find(|b| b.chars().count() > WHATSAPP_BUTTON_CHARS)
            {
                return Err(fail(
                    "whatsapp.buttons",
                    format!("{long:?} is longer than {WHATSAPP_BUTTON_CHARS} characters"),
                ));
            }
        }
        if let Some(sms) = &config.sms
            && sms.max_segments == 0
        {
            return Err(fail("sms.max_segments", "must be at least 1".into()));
        }
        let message = Message { config, templates };
        // Rendered for a sample person, every channel fits its limits.
        for channel in message.channels() {
            message.render(channel, &sample_person())?;
        }
        Ok(message)
    }

    /// The channels the message has a rendering for.
    pub fn channels(&self) -> Vec<&'static str> {
        let c = &self.config;
        [
            ("email", c.email.is_some()),
            ("sms", c.sms.is_some()),
            ("whatsapp", c.whatsapp.is_some()),
            ("push", c.push.is_some()),
            ("call_task", c.call_task.is_some()),
        ]
        .into_iter()
        .filter(|(_, has)| *has)
        .map(|(name, _)| name)
        .collect()
    }

    /// Renders the message for a person on a channel.
    pub fn render(
        &self,
        channel: &str,
        person: &Personalisation,
    ) -> Result<Rendering, MessageError> {
        let fail = |at: &str, problem: String| MessageError {
            message: self.config.id.clone(),
            at: at.to_string(),
            problem,
        };
        let render = |name: &str| -> Result<String, MessageError> {
            let template = self
                .templates
                .get_template(name)
                .map_err(|e| fail(name, e.to_string()))?;
            template
                .render(&person.variables)
                .map(|s| s.trim().to_string())
                .map_err(|e| fail(name, format!("cannot be rendered: {e}")))
        };
        let c = &self.config;
        match channel {
            "email" if c.email.is_some() => {
                let mut html = render("email.html")?;
                let mut text = render("email.txt")?;
                let url = &person.unsubscribe_url;
                if !html.contains(url.as_str()) {
                    html.push_str(&format!(
                        "\n<p style=\"font-size:small\"><a href=\"{url}\">Unsubscribe</a></p>"
                    ));
                }
                if !text.contains(url.as_str()) {
                    text.push_str(&format!("\n\nUnsubscribe: {url}"));
                }
                Ok(Rendering::Email {
                    subject: render("email.subject")?,
                    html,
                    text,
                    list_unsubscribe: format!("<{url}>"),
                    list_unsubscribe_post: "List-Unsubscribe=One-Click",
                })
            }
            "sms" if c.sms.is_some() => {
                let max = c.sms.as_ref().map_or(1, |s| s.max_segments);
                let text = render("sms.text")?;
                let (encoding, characters, segments) = sms_segments(&text);
                if segments > max {
                    return Err(fail(
                        "sms.text",
                        format!(
                            "{characters} {} characters make {segments} segments; at most {max} allowed",
                            match encoding {
                                SmsEncoding::Gsm7 => "GSM-7",
                                SmsEncoding::Ucs2 => "UCS-2",
                            }
                        ),
                    ));
                }
                Ok(Rendering::Sms {
                    text,
                    encoding,
                    characters,
                    segments,
                })
            }
            "whatsapp" if c.whatsapp.is_some() => {
                let text = render("whatsapp.text")?;
                if text.chars().count() > WHATSAPP_TEXT_MAX {
                    return Err(fail(
                        "whatsapp.text",
                        format!("longer than {WHATSAPP_TEXT_MAX} characters"),
                    ));
                }
                Ok(Rendering::Whatsapp {
                    text,
                    buttons: c
                        .whatsapp
                        .as_ref()
                        .map(|w| w.buttons.clone())
                        .unwrap_or_default(),
                })
            }
            "push" if c.push.is_some() => {
                let (title, body) = (render("push.title")?, render("push.body")?);
                for (at, value, max) in [
                    ("push.title", &title, PUSH_TITLE_MAX),
                    ("push.body", &body, PUSH_BODY_MAX),
                ] {
                    let n = value.chars().count();
                    if n > max {
                        return Err(fail(at, format!("{n} characters; at most {max} show")));
                    }
                }
                Ok(Rendering::Push { title, body })
            }
            "call_task" if c.call_task.is_some() => Ok(Rendering::CallTask {
                summary: render("call_task.summary")?,
            }),
            _ => Err(fail(
                "channels",
                format!(
                    "there is no {channel} rendering; it has {}",
                    self.channels().join(", ")
                ),
            )),
        }
    }
}

impl MessageConfig {
    /// Every template, by name (the extension `.html` turns on HTML escaping).
    fn sources(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(e) = &self.email {
            out.extend([
                ("email.subject", e.subject.as_str()),
                ("email.html", e.html.as_str()),
                ("email.txt", e.text.as_str()),
            ]);
        }
        if let Some(s) = &self.sms {
            out.push(("sms.text", s.text.as_str()));
        }
        if let Some(w) = &self.whatsapp {
            out.push(("whatsapp.text", w.text.as_str()));
        }
        if let Some(p) = &self.push {
            out.extend([
                ("push.title", p.title.as_str()),
                ("push.body", p.body.as_str()),
            ]);
        }
        if let Some(t) = &self.call_task {
            out.push(("call_task.summary", t.summary.as_str()));
        }
        out
    }
}

/// What a template knows of a person.
#[derive(Debug, Clone)]
pub struct Personalisation {
    variables: Value,
    unsubscribe_url: String,
}

impl Personalisation {
    /// A person's variables, with the link that withdraws their consent.
    pub fn new(profile_id: ProfileId, facts: &ProfileFacts, unsubscribe_url: String) -> Self {
        let text = |key: &str| facts.traits.get(key).and_then(Value::as_str).unwrap_or("");
        let first_name = [text("firstName"), text("first_name")]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("")
            .to_string();
        let last_name = [text("lastName"), text("last_name")]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("");
        let name = format!("{first_name} {last_name}").trim().to_string();
        Personalisation {
            variables: json!({
                "first_name": first_name,
                "name": name,
                "traits": facts.traits,
                "computed": facts.computed_traits,
                "stage": facts.lifecycle_stage,
                "profile_id": profile_id,
                "unsubscribe_url": unsubscribe_url,
            }),
            unsubscribe_url,
        }
    }
}

/// The length of a template's longest `{{ .. }}` or `{% .. %}` tag, quotes in it
/// included; comments and `{% raw %}` blocks are passed over.
fn longest_tag(source: &str) -> usize {
    let mut longest = 0;
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let tag = &rest[start..];
        let end = match tag.as_bytes().get(1) {
            Some(b'#') => {
                match tag[2..].find("#}") {
                    Some(end) => rest = &tag[end + 4..],
                    None => break,
                }
                continue;
            }
            Some(&open @ (b'{' | b'%')) => {
                let close = if open == b'{' { "}}" } else { "%}" };
                tag_end(tag, close)
            }
            _ => {
                rest = &tag[1..];
                continue;
            }
        };
        let Some(end) = end else {
            // Unclosed: the template does not parse; as long as the rest.
            return longest.max(tag.len());
        };
        longest = longest.max(end);
        let body = tag[2..end - 2].trim_matches(|c: char| c.is_whitespace() || "-+~".contains(c));
        rest = &tag[end..];
        if tag.starts_with("{%") && body == "raw" {
            // Up to the `endraw` tag: what is between is text.
            match rest.find("endraw") {
                Some(at) => rest = &rest[at..],
                None => break,
            }
        }
    }
    longest
}

/// Where a tag starting at the beginning of `tag` ends (after `close`), passing over
/// quoted strings.
fn tag_end(tag: &str, close: &str) -> Option<usize> {
    let mut chars = tag.char_indices().skip(2);
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                while let Some((_, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            _ if tag[at..].starts_with(close) => return Some(at + close.len()),
            _ => {}
        }
    }
    None
}

/// The person a message is checked against when defined: long but plausible values.
fn sample_person() -> Personalisation {
    let facts = crate::profile::ProfileState::default().facts(&[], jiff::Timestamp::UNIX_EPOCH);
    let mut facts = facts;
    for (key, value) in [
        ("firstName", "Massimiliano"),
        ("lastName", "Bianchi-Esposito"),
        ("city", "Reggio Calabria"),
        ("email", "massimiliano.bianchi@example.com"),
    ] {
        facts.traits.insert(key.into(), value.into());
    }
    Personalisation::new(
        ProfileId(1_000_000),
        &facts,
        "https://example.com/u/p-1000000".into(),
    )
}

/// An SMS's encoding, length in that encoding's units, and segments: GSM-7 when every
/// character is in the GSM 03.38 alphabet (extension characters count twice), 160 in one
/// segment, 153 each when concatenated; otherwise UCS-2, 70 and 67 (UTF-16 units).
pub fn sms_segments(text: &str) -> (SmsEncoding, usize, usize) {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "^{}\\[~]|€\u{c}";
    let gsm: Option<usize> = text.chars().try_fold(0, |n, c| {
        if BASIC.contains(c) {
            Some(n + 1)
        } else if EXTENSION.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    });
    let (encoding, units, single, part) = match gsm {
        Some(septets) => (SmsEncoding::Gsm7, septets, 160, 153),
        None => (SmsEncoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(part)
    };
    (encoding, units, segments)
}

#[cfg(test)]
mod tests;
