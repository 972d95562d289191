//! JUnit XML reports for `intake check --junit FILE` and `intake test --junit FILE`: the
//! format CI systems (GitLab, Jenkins, GitHub actions' test reporters) read.
//!
//! One `<testsuite>` per tenant, one `<testcase>` per checked unit (a tenant's mapping
//! files, a sample case), and one `<failure>` per failing unit holding its problems, one
//! per line. The text is the same as the command prints: mapping-file positions and
//! differences of mapped values, never more than the sample files hold.

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// A suite: one tenant's cases.
pub struct Suite {
    /// The suite name, e.g. `intake test demo`.
    pub name: String,
    /// Its cases, in order.
    pub cases: Vec<Case>,
}

/// One test case; it failed when it has problems.
pub struct Case {
    /// The case name, e.g. `a01-admit`.
    pub name: String,
    /// The dotted class name CI tools group by, e.g. `intake.test.demo`.
    pub classname: String,
    /// What went wrong, one line each; empty for a pass.
    pub problems: Vec<String>,
}

/// Writes `suites` as a JUnit XML document to `path`.
pub fn write(path: &Path, name: &str, suites: &[Suite]) -> Result<()> {
    std::fs::write(path, render(name, suites))
        .with_context(|| format!("writing the JUnit report {}", path.display()))
}

/// The JUnit XML text of `suites`.
fn render(name: &str, suites: &[Suite]) -> String {
    let failures = |cases: &[Case]| cases.iter().filter(|c| !c.problems.is_empty()).count();
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failed: usize = suites.iter().map(|s| failures(&s.cases)).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failed}\">",
        escape(name)
    );
    for suite in suites {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\">",
            escape(&suite.name),
            suite.cases.len(),
            failures(&suite.cases)
        );
        for case in &suite.cases {
            let head = format!(
                "    <testcase name=\"{}\" classname=\"{}\"",
                escape(&case.name),
                escape(&case.classname)
            );
            if case.problems.is_empty() {
                let _ = writeln!(x, "{head}/>");
                continue;
            }
            let n = case.problems.len();
            let _ = writeln!(x, "{head}>");
            let _ = writeln!(
                x,
                "      <failure message=\"{n} problem(s)\" type=\"{}\">{}</failure>",
                escape(&case.classname),
                escape(&case.problems.join("\n"))
            );
            let _ = writeln!(x, "    </testcase>");
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    x.push_str("</testsuites>\n");
    x
}

/// XML-escapes text for an attribute or element; drops the control characters XML 1.0
/// cannot hold (an HL7 segment separator in a difference, say).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_counts_failures_and_escapes_text() {
        let suites = [Suite {
            name: "intake test demo".into(),
            cases: vec![
                Case {
                    name: "a01".into(),
                    classname: "intake.test.demo".into(),
                    problems: vec![],
                },
                Case {
                    name: "a<02>".into(),
                    classname: "intake.test.demo".into(),
                    problems: vec!["data.x: - \"a&b\"  + null".into(), "two\rlines".into()],
                },
            ],
        }];
        let xml = render("intake test", &suites);
        assert!(xml.contains("<testsuites name=\"intake test\" tests=\"2\" failures=\"1\">"));
        assert!(xml.contains("<testcase name=\"a01\" classname=\"intake.test.demo\"/>"));
        assert!(xml.contains("<testcase name=\"a&lt;02&gt;\""));
        assert!(xml.contains(
            "<failure message=\"2 problem(s)\" type=\"intake.test.demo\">data.x: - &quot;a&amp;b&quot;  + null\ntwo lines</failure>"
        ));
    }
}
