//! `junit.xml`: one test case per checker that ran (plus one for the test's
//! expectations when it has any), failed with the anomaly summary when the
//! checker found anomalies, so CI systems show them; and one case `run`,
//! with an `<error>` when the run is ERROR or UNKNOWN (a fault error, the
//! observer stopped early, an incomplete final read).

use super::run_events::ProblemKind;
use super::{checker_of, escape, Analysis, Outcome, RunInfo, Status};
use splitbrain_checkers::{catalog, verdict::UNSEEN};
use std::fmt::Write;

/// Renders junit.xml.
pub fn render(analysis: &Analysis, info: &RunInfo) -> String {
    let v = &analysis.verdict;
    let secs = analysis.stats.end_ns as f64 / 1e9;
    let mut cases = String::new();
    let mut failures = 0;
    for checker in &v.checkers {
        let found: Vec<(&String, u64)> = v
            .anomalies
            .iter()
            .filter(|(n, a)| checker_of(n) == checker && a.count > 0 && catalog::is_anomaly(n))
            .map(|(n, a)| (n, a.count))
            .collect();
        let _ = writeln!(
            cases,
            "  <testcase classname=\"splitbrain.{}\" name=\"{}\" time=\"{secs:.3}\">",
            escape(&info.test),
            escape(checker)
        );
        // Expected anomalies do not fail the case; they are listed instead.
        let (expected, found): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|(n, _)| info.expect.contains(n));
        if !found.is_empty() {
            failures += 1;
            let summary: Vec<String> = found.iter().map(|(n, c)| format!("{n} {c}")).collect();
            let mut body = String::new();
            for (name, _) in &found {
                for ex in v.anomalies[*name].examples.iter().take(5) {
                    let _ = writeln!(body, "{name}: {ex}");
                }
            }
            let _ = writeln!(
                cases,
                "    <failure message=\"{}\" type=\"anomalies\">{}</failure>",
                escape(&format!("anomalies found: {}", summary.join(", "))),
                escape(&body)
            );
        }
        let mut notes: Vec<String> = expected
            .iter()
            .map(|(n, c)| {
                let how = if info.expect.contains(n) {
                    "expected"
                } else {
                    "tolerated"
                };
                format!("{n} {c} ({how} by the test)")
            })
            .collect();
        let unseen = v.count(UNSEEN);
        if checker == "queue" && unseen > 0 {
            notes.push(format!(
                "unseen {unseen}: acknowledged messages nobody read that far (not proof of loss)"
            ));
        }
        if !notes.is_empty() {
            let _ = writeln!(
                cases,
                "    <system-out>{}</system-out>",
                escape(&notes.join("\n"))
            );
        }
        cases.push_str("  </testcase>\n");
    }
    let mut tests = v.checkers.len();
    let outcome = Outcome::of_run(analysis, info);
    if !info.expect.is_empty() || !info.tolerate.is_empty() {
        tests += 1;
        let _ = writeln!(
            cases,
            "  <testcase classname=\"splitbrain.{}\" name=\"expectations\" time=\"0\">",
            escape(&info.test)
        );
        if outcome.status() == Status::Fail {
            failures += 1;
            let _ = writeln!(
                cases,
                "    <failure message=\"{}\" type=\"expectations\"/>",
                escape(&outcome.describe())
            );
        }
        cases.push_str("  </testcase>\n");
    }
    // The run itself: did it test what it planned, and read everything back?
    tests += 1;
    let mut errors = 0;
    let _ = writeln!(
        cases,
        "  <testcase classname=\"splitbrain.{}\" name=\"run\" time=\"{secs:.3}\">",
        escape(&info.test)
    );
    let status = outcome.status();
    if matches!(status, Status::Error | Status::Unknown) {
        errors += 1;
        let kind = if status == Status::Error {
            ProblemKind::Error
        } else {
            ProblemKind::Unknown
        };
        let body: Vec<&str> = outcome
            .problems
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.what.as_str())
            .collect();
        let _ = writeln!(
            cases,
            "    <error message=\"{}\" type=\"{}\">{}</error>",
            escape(&outcome.describe()),
            status.label(),
            escape(&body.join("\n"))
        );
    }
    cases.push_str("  </testcase>\n");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{secs:.3}\">\n{cases}</testsuite>\n",
        escape(&info.test)
    )
}
