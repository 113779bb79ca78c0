//! What changed between two versions of a definition, field by field: the diff kept
//! with each version of a segment, journey, message or subscription.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field that changed: where, and its value before and after (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field's path: object keys joined by dots, array items as `[i]`
    /// (`steps[1].duration`); empty for the whole value.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The fields that differ between `before` and `after`, in path order: objects are
/// compared key by key and arrays item by item; anything else changes whole. A null
/// is no value.
pub fn changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut found = Vec::new();
    walk(String::new(), Some(before), Some(after), &mut found);
    found
}

fn walk(path: String, before: Option<&Value>, after: Option<&Value>, found: &mut Vec<FieldChange>) {
    // A field set to null is a field left out (an optional setting not given).
    let (before, after) = (
        before.filter(|v| !v.is_null()),
        after.filter(|v| !v.is_null()),
    );
    match (before, after) {
        (Some(a), Some(b)) if a == b => {}
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let inner = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(inner, a.get(key), b.get(key), found);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(format!("{path}[{i}]"), a.get(i), b.get(i), found);
            }
        }
        (None, None) => {}
        (before, after) => found.push(FieldChange {
            path,
            before: before.cloned(),
            after: after.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_compared_through_objects_and_arrays() {
        let before = json!({"name": "trial", "steps": [{"type": "wait", "duration": "1h"},
            {"type": "send", "message": "a"}], "description": "old"});
        let after = json!({"name": "trial", "steps": [{"type": "wait", "duration": "2h"},
            {"type": "send", "message": "a"}, {"type": "exit"}], "channel": "sms"});
        let found = changes(&before, &after);
        let paths: Vec<&str> = found.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["channel", "description", "steps[0].duration", "steps[2]"]
        );
        assert_eq!(found[0].before, None);
        assert_eq!(found[0].after, Some(json!("sms")));
        assert_eq!(found[1].after, None, "removed");
        assert_eq!(found[2].before, Some(json!("1h")));
        assert_eq!(found[3].after, Some(json!({"type": "exit"})));
        assert!(changes(&before, &before).is_empty());
        assert_eq!(
            changes(&json!(1), &json!("1"))[0].path,
            "",
            "the whole value"
        );
        let unset = changes(&json!({"d": null}), &json!({"d": "x"}));
        assert_eq!(
            (unset[0].before.clone(), unset[0].after.clone()),
            (None, Some(json!("x")))
        );
        assert!(changes(&json!({"d": null}), &json!({})).is_empty());
    }
}
