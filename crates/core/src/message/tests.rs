use serde_json::json;

use super::*;

fn message(config: serde_json::Value) -> Result<Message, MessageError> {
    Message::new(serde_json::from_value(config).unwrap())
}

fn giulia() -> Personalisation {
    let facts = crate::testing::person(
        &[
            json!({"type": "identify", "traits": {"firstName": "Giulia", "lastName": "Rossi",
            "plan": "Fibra <100>"}}),
        ],
        "2025-03-01T00:00:00Z",
    );
    Personalisation::new(ProfileId(7), &facts, "https://voce.example/u/p-7".into())
}

fn outage_apology() -> Message {
    message(json!({
        "id": "outage-apology",
        "email": {
            "subject": "{{ first_name }}, your line is back",
            "html": "<p>Dear {{ name }}, your plan {{ traits.plan }} is working again.</p>",
            "text": "Dear {{ name }}, your plan {{ traits.plan }} is working again."
        },
        "sms": {"text": "Voce: {{ first_name }}, your line is back. Sorry for the wait."},
        "whatsapp": {"text": "Hi {{ first_name }} 👋 your line is back! Everything OK?",
            "buttons": ["All good", "Still down"]},
        "push": {"title": "Line restored", "body": "{{ first_name }}, you are back online."},
        "call_task": {"summary": "Call {{ name }} ({{ profile_id }}): confirm the line works"}
    }))
    .unwrap()
}

#[test]
fn one_message_is_rendered_in_each_channels_style() {
    let m = outage_apology();
    let who = giulia();
    let Rendering::Email {
        subject,
        html,
        text,
        list_unsubscribe,
        list_unsubscribe_post,
    } = m.render("email", &who).unwrap()
    else {
        panic!("not an e-mail")
    };
    assert_eq!(subject, "Giulia, your line is back");
    assert!(
        html.contains("Dear Giulia Rossi, your plan Fibra &lt;100&gt;"),
        "{html}"
    );
    assert!(text.contains("Fibra <100>"), "text is not escaped: {text}");
    assert!(html.contains("href=\"https://voce.example/u/p-7\""));
    assert!(text.ends_with("Unsubscribe: https://voce.example/u/p-7"));
    assert_eq!(list_unsubscribe, "<https://voce.example/u/p-7>");
    assert_eq!(list_unsubscribe_post, "List-Unsubscribe=One-Click");

    let Rendering::Sms {
        encoding, segments, ..
    } = m.render("sms", &who).unwrap()
    else {
        panic!("not an SMS")
    };
    assert_eq!((encoding, segments), (SmsEncoding::Gsm7, 1));
    let Rendering::Whatsapp { text, buttons } = m.render("whatsapp", &who).unwrap() else {
        panic!("not WhatsApp")
    };
    assert!(text.starts_with("Hi Giulia 👋"));
    assert_eq!(buttons, ["All good", "Still down"]);
    assert!(matches!(m.render("call_task", &who).unwrap(),
        Rendering::CallTask { summary } if summary == "Call Giulia Rossi (p-7): confirm the line works"));
    assert_eq!(
        m.channels(),
        ["email", "sms", "whatsapp", "push", "call_task"]
    );
}

#[test]
fn sms_length_is_counted_in_gsm7_or_ucs2_segments() {
    let a = |n: usize| "a".repeat(n);
    assert_eq!(sms_segments(&a(160)), (SmsEncoding::Gsm7, 160, 1));
    assert_eq!(sms_segments(&a(161)), (SmsEncoding::Gsm7, 161, 2));
    assert_eq!(sms_segments(&a(306)), (SmsEncoding::Gsm7, 306, 2));
    assert_eq!(sms_segments(&a(307)), (SmsEncoding::Gsm7, 307, 3));
    assert_eq!(
        sms_segments("€5"),
        (SmsEncoding::Gsm7, 3, 1),
        "€ is an extension character"
    );
    assert_eq!(sms_segments("Perché è così"), (SmsEncoding::Gsm7, 13, 1));
    assert_eq!(
        sms_segments(&format!("{}😀", a(68))),
        (SmsEncoding::Ucs2, 70, 1)
    );
    assert_eq!(
        sms_segments(&format!("{}😀", a(69))),
        (SmsEncoding::Ucs2, 71, 2)
    );
    assert_eq!(sms_segments("Привет").0, SmsEncoding::Ucs2);
}

#[test]
fn a_message_that_breaks_a_rule_is_refused_when_defined() {
    let err = |config: serde_json::Value| message(config).unwrap_err().to_string();
    let e = err(json!({"id": "m", "sms": {"text": "Hi {{ frist_name }}"}}));
    assert!(
        e.contains("sms.text") && e.contains("\"frist_name\""),
        "{e}"
    );
    let e = err(json!({"id": "m", "sms": {"text": "Hi {{ first_name "}}));
    assert!(e.contains("does not parse"), "{e}");
    let e = err(json!({"id": "m", "whatsapp": {"text": "Hi", "buttons": ["a", "b", "c", "d"]}}));
    assert!(e.contains("4 buttons"), "{e}");
    let e = err(
        json!({"id": "m", "whatsapp": {"text": "Hi", "buttons": ["A button far too long to fit"]}}),
    );
    assert!(e.contains("longer than 20"), "{e}");
    let long = "x".repeat(300);
    let e = err(
        json!({"id": "m", "sms": {"text": format!("{long} {{{{ first_name }}}}"), "max_segments": 2}}),
    );
    assert!(e.contains("3 segments; at most 2"), "{e}");
    let e = err(json!({"id": "m", "push": {"title": "x".repeat(70), "body": "b"}}));
    assert!(
        e.contains("push.title") && e.contains("70 characters"),
        "{e}"
    );
    let e = err(json!({"id": "m"}));
    assert!(e.contains("at least one of"), "{e}");
    let e = outage_apology()
        .render("fax", &giulia())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no fax rendering"), "{e}");
}

/// Templates that overflowed the stack, ran out of memory or hung in the
/// message_template fuzz target (kept in fuzz/regressions/message_template): refused
/// when defined, or stopped with a reason when rendered.
#[test]
fn templates_that_would_overflow_exhaust_memory_or_hang_are_refused() {
    let refused = |text: String, because: &str| {
        let e = message(json!({"id": "m", "sms": {"text": text}}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sms.text") && e.contains(because),
            "{because}: {e}"
        );
    };
    // The stack: compiling recurses once per operator or filter.
    refused(
        format!("{{{{ 1{} }}}}", "+1".repeat(20_000)),
        "at most 4096",
    );
    refused(
        format!("{{{{ 1{} }}}}", "|string".repeat(20_000)),
        "at most 4096",
    );
    refused(
        format!("{{% if 1{} %}}x{{% endif %}}", "+1".repeat(3_000)),
        "at most 4096",
    );
    refused(format!("{{{{ 1{}", "+1".repeat(3_000)), "at most 4096");
    // Memory: text repeated, a value feeding on itself, a filter sized by its argument,
    // filters that each make their text longer.
    refused("{{ 'x' * 100000000 }}".repeat(20), "`*` is not allowed");
    refused(
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}\
         {% endif %}{% endmacro %}{{ d('x', 40) }}"
            .into(),
        "{% macro %} is not allowed",
    );
    refused(
        format!(
            "{{% set a = 'xxxxxxxxxxxxxxxx' %}}{}{{{{ a|length }}}}",
            "{% set a = a ~ a %}".repeat(36)
        ),
        "{% set %} is not allowed",
    );
    refused("{{ 'a'|indent(1000000000, true) }}".into(), "indent filter");
    refused(
        format!("{{{{ first_name{} }}}}", "|urlencode".repeat(7)),
        "at most 6",
    );

    // Time and output, when rendered for a person with many traits: six loops inside
    // each other run out of fuel; a long trait printed in a loop outgrows the limit.
    let loops = "{% for a in traits %}{% for b in traits %}{% for c in traits %}\
                 {% for d in traits %}{% for e in traits %}{% for f in traits %}x\
                 {% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
    let printed = "{% for k in traits %}{{ traits.long }}{% endfor %}";
    let mut traits: serde_json::Map<String, serde_json::Value> =
        (0..100).map(|i| (format!("k{i}"), json!(i))).collect();
    traits.insert("long".into(), json!("x".repeat(20_000)));
    let facts = crate::testing::person(
        &[json!({"type": "identify", "traits": traits})],
        "2025-03-01T00:00:00Z",
    );
    let many = Personalisation::new(ProfileId(8), &facts, "https://voce.example/u/p-8".into());
    for (text, because) in [(loops, "fuel"), (printed, "longer than 1048576 bytes")] {
        let m = message(json!({"id": "m", "call_task": {"summary": text}})).unwrap();
        let e = m.render("call_task", &many).unwrap_err().to_string();
        assert!(e.contains(because), "{because}: {e}");
    }

    // Long text, comments, raw blocks, and strings holding a tag's end, `*` or `|` are
    // no tag; if, for and a few filters are what messages use.
    let long = "x".repeat(10_000);
    let html = format!(
        "<p>{long}</p>{{# {long} {{% set %}} #}}{{% raw %}}{{{{ {long}{{% set %}}{{% endraw %}}\
         {{{{ first_name ~ '}}}} * | %}}' ~ \"%}}\" }}}}{{% if first_name %}}{{% for k, v in \
         traits|items %}}{{{{ k|upper }}}}={{{{ v|string|trim|title|capitalize|lower|e }}}}\
         {{% endfor %}}{{% else %}}?{{% endif %}}"
    );
    message(json!({"id": "m", "email": {"subject": "s", "html": html, "text": "t"}})).unwrap();
    // The longest tag allowed compiles on a thread's smallest stack (tokio's 2 MiB).
    let sum = format!("{{{{ 1{} }}}}", "+1".repeat((MAX_TAG_BYTES - 8) / 2));
    assert!(sum.len() <= MAX_TAG_BYTES);
    let defined = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            message(json!({"id": "m", "call_task": {"summary": sum}})).map(|m| m.channels())
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(defined, Ok(vec!["call_task"]));
}
