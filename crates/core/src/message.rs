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
/// The most filters one tag may apply: some make their text longer (escape, join).
pub const MAX_FILTERS_PER_TAG: usize = 6;
/// Instructions one rendering may run (loops over a person's traits included).
pub const TEMPLATE_FUEL: u64 = 200_000;
/// The longest rendering, in bytes.
pub const MAX_RENDERED_BYTES: usize = 1 << 20;
/// Filters whose argument sets the size of their result (`indent(1000000000)`).
const SIZED_FILTERS: [&str; 7] = [
    "indent", "format", "replace", "batch", "slice", "tojson", "pprint",
];

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
        templates.set_fuel(Some(TEMPLATE_FUEL));
        let sources: Vec<(&str, &str)> = config.sources();
        if sources.is_empty() {
            return Err(fail(
                "channels",
                "give at least one of email, sms, whatsapp, push, call_task".into(),
            ));
        }
        for (name, source) in &sources {
            if let Some(problem) = unbounded(source) {
                return Err(fail(name, problem));
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
            let mut out = Capped::default();
            template
                .render_captured_to(&person.variables, &mut out)
                .map_err(|e| match out.full {
                    true => fail(
                        name,
                        format!("cannot be rendered: it is longer than {MAX_RENDERED_BYTES} bytes"),
                    ),
                    false => fail(name, format!("cannot be rendered: {e}")),
                })?;
            Ok(String::from_utf8_lossy(&out.text).trim().to_string())
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

/// A rendering's output, refusing to grow past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct Capped {
    text: Vec<u8>,
    /// Whether a write was refused.
    full: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > MAX_RENDERED_BYTES {
            self.full = true;
            return Err(std::io::Error::other("the rendering is too long"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

/// Why a template could take too much stack, time or memory to compile or render, if
/// it could: a tag longer than [`MAX_TAG_BYTES`], a statement other than `if` and
/// `for` (`set`, `macro` and the like let a value feed on itself), `*` (repeats text),
/// more than [`MAX_FILTERS_PER_TAG`] filters in a tag, or a filter whose argument sets
/// the size of its result. Comments and `{% raw %}` blocks are passed over.
fn unbounded(source: &str) -> Option<String> {
    let mut rest = source;
    while let Some(start) = rest.find('{') {
        let tag = &rest[start..];
        let close = match tag.as_bytes().get(1) {
            Some(b'#') => {
                rest = &tag[2..];
                match rest.find("#}") {
                    Some(end) => rest = &rest[end + 2..],
                    None => break,
                }
                continue;
            }
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            _ => {
                rest = &tag[1..];
                continue;
            }
        };
        // Unclosed, the template does not parse: as long as the rest.
        let (end, code) = tag_end(tag, close).unwrap_or((tag.len(), String::new()));
        if end > MAX_TAG_BYTES {
            return Some(format!(
                "a tag is {end} bytes long; at most {MAX_TAG_BYTES}"
            ));
        }
        rest = &tag[end..];
        let code = code.trim_matches(|c: char| c.is_whitespace() || "-+~".contains(c));
        if close == "%}" {
            let statement = code
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next();
            match statement.unwrap_or_default() {
                "if" | "elif" | "else" | "endif" | "for" | "endfor" | "autoescape"
                | "endautoescape" | "break" | "continue" => {}
                "raw" => match rest.find("endraw") {
                    Some(at) => rest = &rest[at..],
                    None => break,
                },
                other => {
                    return Some(format!(
                        "{{% {other} %}} is not allowed in a message; use {{{{ }}}}, if and for"
                    ));
                }
            }
        }
        if code.contains('*') {
            return Some("`*` is not allowed in a message (it repeats text without limit)".into());
        }
        let filters: Vec<&str> = code
            .split('|')
            .skip(1)
            .map(|f| {
                f.trim_start()
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or_default()
            })
            .collect();
        if filters.len() > MAX_FILTERS_PER_TAG {
            return Some(format!(
                "a tag applies {} filters; at most {MAX_FILTERS_PER_TAG}",
                filters.len()
            ));
        }
        if let Some(f) = filters.iter().find(|f| SIZED_FILTERS.contains(f)) {
            return Some(format!(
                "the {f} filter is not allowed in a message (its argument sets the size of its result)"
            ));
        }
    }
    None
}

/// Where a tag starting at the beginning of `tag` ends (after `close`), passing over
/// quoted strings, and its code with the strings' contents left out.
fn tag_end(tag: &str, close: &str) -> Option<(usize, String)> {
    let mut code = String::new();
    let mut chars = tag.char_indices().skip(2);
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                code.push_str("''");
                while let Some((_, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            _ if tag[at..].starts_with(close) => return Some((at + close.len(), code)),
            _ => code.push(c),
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
