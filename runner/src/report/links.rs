//! A run's links to other runs (its `links.json`: `replay-of`,
//! `shrunk-from`, `shrunk-to`, `shrink`), as results.json and the report
//! show them. A replay's link says whether the anomaly kinds of the
//! original came back: `same-anomalies`, with both sets.

use super::{escape, found, Analysis, RunInfo};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The links with, for a replay, the comparison of anomaly kinds; `None`
/// when the run has no links.
pub fn links_json(analysis: &Analysis, info: &RunInfo) -> Option<Value> {
    Some(compared(info.links.clone()?, &found(&analysis.verdict)))
}

/// `links` with each replay or shrink link's anomaly kinds compared to
/// `now`, this run's.
pub fn compared(mut links: Value, now: &BTreeSet<String>) -> Value {
    for key in ["replay-of", "shrunk-from", "shrink-candidate-of"] {
        if let Some(link) = links.get_mut(key).and_then(Value::as_object_mut) {
            let then: BTreeSet<String> = link
                .get("anomalies")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            link.insert("this-run-anomalies".into(), json!(now));
            link.insert("same-anomalies".into(), json!(&then == now));
        }
    }
    links
}

/// The report's "Related runs" section ("" when there are none).
pub fn html(analysis: &Analysis, info: &RunInfo) -> String {
    let Some(links) = links_json(analysis, info) else {
        return String::new();
    };
    let Some(map) = links.as_object() else {
        return String::new();
    };
    let mut h = String::from("<h2>Related runs</h2>\n<ul id=\"links\">\n");
    for (key, link) in map {
        let run = link
            .get("run")
            .and_then(Value::as_str)
            .or_else(|| link.as_str())
            .unwrap_or("");
        let mut line = format!(
            "<li>{}: <a href=\"/{}/report.html\">{}</a>",
            escape(key),
            escape(run),
            escape(run)
        );
        if let Some(same) = link.get("same-anomalies").and_then(Value::as_bool) {
            line.push_str(&format!(
                " — {} anomaly kinds came back (then: {}; now: {})",
                if same { "the same" } else { "NOT the same" },
                escape(&link["anomalies"].to_string()),
                escape(&link["this-run-anomalies"].to_string())
            ));
        }
        if let Some(summary) = link.get("summary").and_then(Value::as_str) {
            line.push_str(&format!(" — {}", escape(summary)));
        }
        h.push_str(&line);
        h.push_str("</li>\n");
    }
    h.push_str("</ul>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_link_says_whether_the_same_kinds_came_back() {
        let links = json!({"replay-of": {"run": "t/1", "anomalies": ["lost"]}});
        let same = compared(links.clone(), &["lost".to_string()].into());
        assert_eq!(same["replay-of"]["same-anomalies"], true);
        let other = compared(links.clone(), &BTreeSet::new());
        assert_eq!(other["replay-of"]["same-anomalies"], false);
        assert_eq!(other["replay-of"]["this-run-anomalies"], json!([]));
        let more = compared(links, &["lost".to_string(), "duplicate".to_string()].into());
        assert_eq!(more["replay-of"]["same-anomalies"], false);
    }
}
