//! An e-mail's links: when it is sent, the HTML part's links go through a signed click
//! redirect and a one-pixel image reports the open; when one is followed or the image
//! loaded, the person's `Message Clicked` or `Message Opened` is recorded.

use jiff::Timestamp;
use unavoce_store::Settlement;

use crate::Dispatcher;
use crate::feedback::ReportError;
use unavoce_core::platform_events::{self, MessageOutcome};

use crate::record::{entry_properties, record_about};

impl Dispatcher {
    /// An e-mail's open pixel was loaded, or one of its links followed (`clicked`: the
    /// destination); false if there is no such entry.
    pub async fn email_engagement(
        &self,
        outbox_id: i64,
        clicked: Option<&str>,
    ) -> Result<bool, ReportError> {
        let Some(entry) = self.platform().outbox.outbox_entry(outbox_id).await? else {
            return Ok(false);
        };
        let mut properties = entry_properties(&entry);
        let outcome = match clicked {
            Some(url) => {
                properties.insert("url".into(), url.into());
                MessageOutcome::Clicked
            }
            None => MessageOutcome::Opened,
        };
        let delivery = outcome.verb();
        let message = platform_events::message_outcome(outcome, properties);
        record_about(self.platform(), entry.profile_id, message).await?;
        if entry.delivery.as_deref() != Some(MessageOutcome::Clicked.verb()) {
            self.platform()
                .outbox
                .settle(vec![Settlement::Reported {
                    id: entry.id,
                    delivery: delivery.into(),
                    error: None,
                    at: Timestamp::now(),
                }])
                .await?;
        }
        Ok(true)
    }
}

/// `html` with every `http(s)` link for which `click` gives a tracked address replaced
/// by it, and the open pixel at `open_url` added at the end of the body.
pub fn track_html(html: &str, open_url: &str, click: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    while let Some(at) = find_href(rest) {
        let (before, after) = rest.split_at(at.start);
        out.push_str(before);
        let target = &after[..at.len];
        let decoded = target.replace("&amp;", "&");
        match click(&decoded) {
            Some(tracked) => out.push_str(&tracked.replace('&', "&amp;")),
            None => out.push_str(target),
        }
        rest = &after[at.len..];
    }
    out.push_str(rest);
    let pixel = format!(
        "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">",
        open_url.replace('&', "&amp;")
    );
    match out.rfind("</body>") {
        Some(end) => out.insert_str(end, &pixel),
        None => out.push_str(&pixel),
    }
    out
}

/// Where the next `href="http…"` value starts and how long it is.
struct Span {
    start: usize,
    len: usize,
}

fn find_href(html: &str) -> Option<Span> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("href=") {
        let value = from + found + "href=".len();
        let quote = html[value..].chars().next()?;
        if quote == '"' || quote == '\'' {
            let start = value + 1;
            if let Some(len) = html[start..].find(quote) {
                let target = &lower[start..start + len];
                if target.starts_with("http://") || target.starts_with("https://") {
                    return Some(Span { start, len });
                }
            }
        }
        from = value;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_tracked_and_the_pixel_goes_inside_the_body() {
        let html = "<html><body><a href=\"https://shop.example/tv?a=1&amp;b=2\">TV</a> \
                    <A HREF='http://x.example'>x</A> <a href=\"mailto:help@shop.example\">mail</a> \
                    <a href=\"https://me/unsubscribe/1/t\">Unsubscribe</a></body></html>";
        let out = track_html(html, "https://me/t/open/7/tok", |url| {
            (!url.starts_with("https://me/")).then(|| format!("https://me/t/click/7?u={url}"))
        });
        assert!(
            out.contains("href=\"https://me/t/click/7?u=https://shop.example/tv?a=1&amp;b=2\""),
            "{out}"
        );
        assert!(
            out.contains("HREF='https://me/t/click/7?u=http://x.example'"),
            "{out}"
        );
        assert!(out.contains("href=\"mailto:help@shop.example\""));
        assert!(out.contains("href=\"https://me/unsubscribe/1/t\""));
        assert!(out.ends_with(
            "<img src=\"https://me/t/open/7/tok\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\"></body></html>"
        ), "{out}");
    }

    #[test]
    fn a_fragment_without_a_body_gets_the_pixel_at_the_end() {
        let out = track_html("<p>Hi</p>", "https://me/o", |_| None);
        assert!(out.starts_with("<p>Hi</p><img src=\"https://me/o\""));
    }
}
