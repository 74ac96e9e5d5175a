//! `report.html`: one self-contained page (inline CSS and SVG, no scripts,
//! nothing fetched): the outcome at the top (PASS / FAIL / ERROR /
//! UNKNOWN), then the checkers' verdict, the anomalies with each example in
//! words (its raw JSON folded under it), the workload's delivery counts, the
//! plots, the fault timeline, the counts and the run's config.

use super::{escape, found, svg, words, Analysis, Outcome, RunInfo};
use serde_json::Value;
use splitbrain_checkers::{catalog, verdict::UNSEEN};
use std::fmt::Write;

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1140px;padding:12px 20px;color:#222}
h1{font-size:1.4em;margin:.3em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
.outcome{padding:14px 18px;border-radius:6px;margin:10px 0;color:#fff}
.outcome .status{font-size:2.6em;font-weight:800;letter-spacing:.04em;line-height:1.1}
.outcome .line{font-size:1.05em;margin-top:4px}.outcome ul{margin:6px 0 0 1.2em;padding:0}
.outcome.pass{background:#2ca02c}.outcome.fail{background:#d62728}.outcome.error{background:#7b2d8e}.outcome.unknown{background:#c77c00}
.verdict{padding:10px 18px;border-radius:6px;font-size:1.1em;font-weight:600;margin:10px 0}
.verdict.valid{background:#e6f4ea;border:2px solid #2ca02c}.verdict.invalid{background:#fdecea;border:2px solid #d62728}
.verdict .sub{font-size:.85em;font-weight:400;margin-top:4px}
details summary{cursor:pointer;color:#555;font-size:.85em}.example{margin:2px 0 6px}
table{border-collapse:collapse;margin:6px 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr.bad td{background:#fdecea}tr.expected td,tr.tolerated td{background:#fff4e0}
td code{word-break:break-all}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:400px}
svg.plot{display:block;margin:8px 0;background:#fff;border:1px solid #eee;max-width:100%;height:auto}
svg .title{font-size:13px;font-weight:600}svg .legend,svg .tick-label,svg .axis-label,svg .lane-label{font-size:11px}
svg .segment-label{font-size:10px;fill:#fff}svg .fault{fill:#ff7f0e;fill-opacity:.13}svg .fault-label{font-size:9px;fill:#b35900}
svg .axis{stroke:#444}svg .tick{stroke:#444}svg .grid{stroke:#eee}svg .empty{font-size:13px;fill:#888}
.note{color:#555;font-size:.9em}
.evidence{margin:2px 0 6px 12px}.timeline{margin:2px 0;padding-left:20px;font-size:.9em}
"#;

/// Renders report.html.
pub fn render(analysis: &Analysis, info: &RunInfo) -> String {
    let v = &analysis.verdict;
    let s = &analysis.stats;
    let outcome = Outcome::of_run(analysis, info);
    let status = outcome.status();
    let class = status.label().to_lowercase();
    let mut h = String::with_capacity(256 * 1024);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>splitbrain: {} — {}</title><style>{CSS}</style></head><body>",
        escape(&info.test),
        status.label()
    );
    let _ = writeln!(h, "<h1>splitbrain report: {}</h1>", escape(&info.test));

    // The outcome first, big: what a reader needs in one glance.
    let _ = write!(
        h,
        "<div id=\"outcome\" class=\"outcome {class}\"><div class=\"status\">{}</div><div class=\"line\">{}</div>",
        status.label(),
        escape(
            outcome
                .describe()
                .trim_start_matches(status.label())
                .trim_start_matches(": ")
        )
    );
    if !outcome.problems.is_empty() {
        h.push_str("<ul id=\"problems\">");
        for p in &outcome.problems {
            let kind = p.to_json()["kind"].as_str().unwrap_or_default().to_string();
            let _ = write!(h, "<li>{kind}: {}</li>", escape(&p.what));
        }
        h.push_str("</ul>");
    }
    h.push_str("</div>\n");

    // Then the checkers' verdict on the history.
    let found = found(v);
    let headline = if v.valid {
        "Checkers: VALID, no anomalies".to_string()
    } else {
        let list: Vec<String> = found
            .iter()
            .map(|n| format!("{n} {}", v.count(n)))
            .collect();
        format!("Checkers: INVALID: {}", list.join(", "))
    };
    let _ = write!(
        h,
        "<div id=\"verdict\" class=\"verdict {}\">{}<div class=\"sub\">Against the test's expectations: {}.</div>",
        if v.valid { "valid" } else { "invalid" },
        escape(&headline),
        escape(&outcome.expectations())
    );
    if !info.expect.is_empty() {
        let _ = write!(
            h,
            "<div class=\"sub\">This test expects exactly these anomalies: {}. It passes when they, and no others, are found.</div>",
            escape(&info.expect.join(", "))
        );
    }
    if !info.tolerate.is_empty() {
        let _ = write!(
            h,
            "<div class=\"sub\">It tolerates (may or may not find): {}.</div>",
            escape(&info.tolerate.join(", "))
        );
    }
    if let Some(why) = &info.interrupted {
        let _ = write!(
            h,
            "<div class=\"sub\">Run ended early ({}): what was recorded until then is checked.</div>",
            escape(why)
        );
    }
    let _ = writeln!(
        h,
        "<div class=\"sub\">{} operations over {:.1} s; checkers: {}</div></div>",
        analysis.operations,
        s.end_ns as f64 / 1e9,
        escape(&v.checkers.join(", "))
    );
    for w in &analysis.warnings {
        let _ = writeln!(h, "<p class=\"note\">warning: {}</p>", escape(w));
    }
    if let Some(ssh) = analysis.events.ssh_sessions_summary() {
        let _ = writeln!(
            h,
            "<p id=\"ssh-sessions\" class=\"note\">{}</p>",
            escape(&ssh)
        );
    }

    // Anomalies: every one that ran, non-zero first; each example in words
    // with its raw JSON folded under it.
    let dlq_status = analysis.events.dlq_status(v.counts.get("dlq").copied());
    let dlq_exercised = !dlq_status.starts_with(super::run_events::DLQ_NOT_EXERCISED);
    h.push_str("<h2>Anomalies</h2>\n");
    if let Some(ev) = &info.evidence {
        let per: Vec<String> = ev
            .summary()
            .get("anomalies")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}: {} example(s), {} confirmed by the segments, {} explained by the logs",
                            v["examples"], v["confirmed"], v["explained"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<p class=\"note\" id=\"evidence-summary\">Servers\u{2019} evidence collected for {} example(s) in {:.1} s{}{}.</p>",
            ev.examples.len(),
            ev.collected_in_ms as f64 / 1000.0,
            if per.is_empty() { "" } else { ": " },
            escape(&per.join("; "))
        );
    }
    h.push_str(
        "<table id=\"anomalies\"><tr><th>anomaly</th><th>count</th><th>examples</th></tr>\n",
    );
    let mut rows: Vec<(&String, &splitbrain_checkers::Anomaly)> = v.anomalies.iter().collect();
    rows.sort_by_key(|(n, a)| (a.count == 0, !catalog::is_anomaly(n), n.as_str()));
    for (name, a) in rows {
        let class = if a.count == 0 || !catalog::is_anomaly(name) {
            ""
        } else if info.expect.contains(name) {
            "expected"
        } else if info.tolerate.contains(name) {
            "tolerated"
        } else {
            "bad"
        };
        let mut ex = String::new();
        for (i, e) in a.examples.iter().take(5).enumerate() {
            let raw = escape(&serde_json::to_string_pretty(e).unwrap_or_default());
            let evidence = info
                .evidence
                .as_ref()
                .and_then(|f| f.example(name, i))
                .map(evidence_html)
                .unwrap_or_default();
            match words::sentence(name, e, &analysis.example_ops) {
                Some(text) => {
                    let _ = write!(
                        ex,
                        "<div class=\"example\"><span class=\"sentence\">{}</span><details><summary>raw JSON</summary><pre>{raw}</pre></details>{evidence}</div>",
                        escape(&text)
                    );
                }
                None => {
                    let _ = write!(
                        ex,
                        "<div class=\"example\"><pre>{raw}</pre>{evidence}</div>"
                    );
                }
            }
        }
        if a.count as usize > a.examples.len().min(5) && a.count > 0 {
            let _ = write!(ex, "<span class=\"note\">… {} in all</span>", a.count);
        }
        let note = if name == UNSEEN && a.count > 0 {
            " <span class=\"note\">(not proof of loss)</span>"
        } else if a.count > 0 && !catalog::is_anomaly(name) {
            " <span class=\"note\">(informational, not an anomaly)</span>"
        } else if class == "expected" {
            " <span class=\"note\">(expected)</span>"
        } else if class == "tolerated" {
            " <span class=\"note\">(tolerated)</span>"
        } else if name == "dlq-lost" && !dlq_exercised {
            " <span class=\"note\">(DLQ not exercised in this run)</span>"
        } else {
            ""
        };
        let description = catalog::lookup(name)
            .map(|i| format!("<br><span class=\"note\">{}</span>", escape(i.description)))
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td>{}{note}{description}</td><td>{}</td><td>{ex}</td></tr>",
            escape(name),
            a.count
        );
    }
    h.push_str("</table>\n");

    // What became of the messages, as the workload counted them.
    h.push_str("<h2>Delivery</h2>\n");
    let _ = writeln!(h, "<p id=\"dlq-status\"><b>{}</b></p>", escape(&dlq_status));
    match &analysis.events.delivery {
        Some(serde_json::Value::Object(d)) => {
            if let Some(summary) = d.get("summary").and_then(|x| x.as_str()) {
                let _ = writeln!(h, "<p class=\"note\">Workload: {}</p>", escape(summary));
            }
            h.push_str("<table id=\"delivery\"><tr><th>count</th><th>value</th></tr>\n");
            for (k, n) in d.iter().filter(|(k, _)| *k != "summary") {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape(k),
                    escape(&n.to_string())
                );
            }
            h.push_str("</table>\n");
        }
        _ => h.push_str("<p class=\"note\">This history has no <code>delivery</code> event (the workload's own counts); the DLQ count above is the checker's.</p>\n"),
    }
    h.push_str("<h2>Latency</h2>\n");
    h.push_str(&svg::latency(s));
    h.push_str("\n<h2>Throughput</h2>\n");
    h.push_str(&svg::throughput(s));
    h.push_str("\n<h2>ZooKeeper servers</h2>\n");
    h.push_str(&svg::zk_modes(s));
    h.push_str("\n<h2>Controllers</h2>\n");
    h.push_str(&svg::controllers(s));
    h.push_str("\n<h2>Partitions</h2>\n");
    h.push_str(&svg::partitions(s));

    h.push_str("\n<h2>Faults</h2>\n");
    if s.nemesis.is_empty() {
        h.push_str("<p class=\"note\">No nemesis events recorded.</p>\n");
    } else {
        h.push_str("<table id=\"faults\"><tr><th>time (s)</th><th>event</th><th>what</th></tr>\n");
        for e in &s.nemesis {
            let _ = writeln!(
                h,
                "<tr><td>{:.2}</td><td>{}</td><td><code>{}</code></td></tr>",
                e.time_ns as f64 / 1e9,
                escape(&e.f),
                escape(&e.value.to_string())
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Statistics</h2>\n<table id=\"stats\"><tr><th>f</th><th>invoke</th><th>ok</th><th>fail</th><th>info</th></tr>\n");
    for (f, types) in &s.ops {
        let get = |t: &str| types.get(t).copied().unwrap_or(0);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(f),
            get("invoke"),
            get("ok"),
            get("fail"),
            get("info")
        );
    }
    h.push_str("</table>\n");
    let stats_json = s.to_json();
    if let Some(lat) = stats_json["latency-ms"].as_object() {
        h.push_str("<table id=\"latency-quantiles\"><tr><th>latency (ms)</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n");
        for (f, q) in lat {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(f),
                q["count"],
                q["p50"],
                q["p90"],
                q["p99"],
                q["max"]
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<table id=\"counts\"><tr><th>count</th><th>value</th></tr>\n");
    for (k, n) in &v.counts {
        let _ = writeln!(h, "<tr><td>{}</td><td>{n}</td></tr>", escape(k));
    }
    h.push_str("</table>\n");

    h.push_str(&super::links::html(analysis, info));
    h.push_str("<h2>Configuration</h2>\n");
    match &info.config {
        Some(c) => {
            let text = serde_json::to_string_pretty(c).unwrap_or_default();
            let _ = writeln!(h, "<pre id=\"config\">{}</pre>", escape(&text));
        }
        None => h.push_str("<p class=\"note\">No test config stored with this history.</p>\n"),
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">History: <code>{}</code>. Generated by splitbrain {}.</p>\n</body></html>",
        escape(&analysis.history.display().to_string()),
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// One example's evidence: the timeline in words, then the servers' raw
/// lines and each replica's segments folded.
fn evidence_html(e: &crate::evidence::ExampleEvidence) -> String {
    let yn = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    let mut h = format!(
        "<div class=\"evidence\"><span class=\"note\">servers\u{2019} evidence: confirmed by the segments: {}; explained by the logs: {}</span><ol class=\"timeline\">",
        yn(e.confirmed),
        yn(e.explained)
    );
    for t in &e.timeline {
        let _ = write!(h, "<li>{}</li>", escape(t));
    }
    h.push_str("</ol>");
    if !e.lines.is_empty() {
        let _ = write!(
            h,
            "<details><summary>{} log line(s)</summary><pre>",
            e.lines.len()
        );
        for l in &e.lines {
            let t = l.time_s.map_or(String::new(), |t| format!("{t:.3} s "));
            let _ = writeln!(h, "{}{} {}", escape(&t), escape(&l.node), escape(&l.text));
        }
        h.push_str("</pre></details>");
    }
    if !e.replicas.is_empty() {
        let text = serde_json::to_string_pretty(&e.replicas).unwrap_or_default();
        let _ = write!(
            h,
            "<details><summary>segments of {} broker(s)</summary><pre>{}</pre></details>",
            e.replicas.len(),
            escape(&text)
        );
    }
    h.push_str("</div>");
    h
}
