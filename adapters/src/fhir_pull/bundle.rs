//! What a search page holds: the entry resources of the searched type, the next link,
//! and the `meta.lastUpdated` values that make the cursor.

use serde_json::Value;

/// `meta.lastUpdated` values seen in a result: the greatest, and the greatest below it.
#[derive(Debug, Default)]
pub struct Seen {
    /// The greatest value seen, parsed and as written.
    pub max: Option<(chrono::DateTime<chrono::FixedOffset>, String)>,
    /// The greatest value seen below `max`.
    pub below_max: Option<(chrono::DateTime<chrono::FixedOffset>, String)>,
}

impl Seen {
    /// Notes one `meta.lastUpdated` value (ignored unless RFC 3339).
    pub fn add(&mut self, text: &str) {
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) else {
            return;
        };
        let value = Some((t, text.to_string()));
        match &self.max {
            Some((m, _)) if t == *m => {}
            Some((m, _)) if t < *m => {
                if self.below_max.as_ref().is_none_or(|(b, _)| t > *b) {
                    self.below_max = value;
                }
            }
            _ => self.below_max = std::mem::replace(&mut self.max, value),
        }
    }
}

/// The entry resources of `resource_type` in a searchset Bundle, and how many entries
/// were skipped (included resources, OperationOutcomes, entries without a resource);
/// `None` when `bundle` is not a Bundle.
pub fn resources_of<'a>(bundle: &'a Value, resource_type: &str) -> Option<(Vec<&'a Value>, usize)> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return None;
    }
    let entries = match bundle.get("entry") {
        None => return Some((Vec::new(), 0)),
        Some(e) => e.as_array()?,
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let mode = e.pointer("/search/mode").and_then(Value::as_str);
        match e.get("resource") {
            Some(r)
                if r.get("resourceType").and_then(Value::as_str) == Some(resource_type)
                    && matches!(mode, None | Some("match")) =>
            {
                out.push(r)
            }
            _ => {}
        }
    }
    let skipped = entries.len() - out.len();
    Some((out, skipped))
}

/// `Bundle.link[relation=next].url`.
pub fn next_link(bundle: &Value) -> Option<&str> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bundles_yield_matches_of_the_type_and_the_next_link() {
        let b = json!({
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "self", "url": "a"}, {"relation": "next", "url": "http://h/next"}],
            "entry": [
                {"resource": {"resourceType": "Patient", "id": "1"}, "search": {"mode": "match"}},
                {"resource": {"resourceType": "Patient", "id": "2"}},
                {"resource": {"resourceType": "Organization", "id": "o"}, "search": {"mode": "include"}},
                {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
                {"fullUrl": "x"}
            ]
        });
        let (r, skipped) = resources_of(&b, "Patient").unwrap();
        assert_eq!((r.len(), skipped), (2, 3));
        assert_eq!(next_link(&b), Some("http://h/next"));
        assert!(resources_of(&json!({"resourceType": "Patient"}), "Patient").is_none());
        assert_eq!(
            resources_of(&json!({"resourceType": "Bundle"}), "Patient")
                .unwrap()
                .0
                .len(),
            0
        );
    }

    #[test]
    fn the_cursor_mid_result_stays_below_the_last_timestamp() {
        let mut s = Seen::default();
        for t in [
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:03Z",
            "2026-01-01T01:00:02+01:00",
            "2026-01-01T00:00:03Z",
            "garbage",
        ] {
            s.add(t);
        }
        assert_eq!(s.max.as_ref().unwrap().1, "2026-01-01T00:00:03Z");
        assert_eq!(s.below_max.as_ref().unwrap().1, "2026-01-01T01:00:02+01:00");
    }
}
