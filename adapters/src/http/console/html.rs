//! The console's HTML: escaping, and the one page layout (embedded styles, a skip link,
//! labelled navigation). Every value that comes from the store passes [`esc`].

use axum::response::Html;
use std::fmt::Write as _;

/// The embedded stylesheet: no asset to build or serve.
const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b}\
header{background:#12355b;color:#fff;padding:.5rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}\
header a{color:#fff}main{padding:1rem;max-width:75rem}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#eef}code{font-size:90%}label{display:inline-block;margin:.25rem .5rem .25rem 0}\
input,select,button{font:inherit;padding:.2rem .4rem}button{cursor:pointer}\
a:focus,button:focus,input:focus,select:focus{outline:3px solid #f90;outline-offset:1px}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#000;padding:.5rem}\
.note{background:#ffd;border:1px solid #cc9;padding:.5rem}.error{background:#fee;border:1px solid #c99;padding:.5rem}\
pre{background:#f4f4f4;padding:.5rem;overflow:auto;white-space:pre-wrap}";

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` escaped for a URL query value.
pub fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A whole page: `title`, the tenant's navigation when there is one, and `body` (HTML).
pub fn page(title: &str, tenant: Option<&str>, csrf: Option<&str>, body: &str) -> Html<String> {
    let mut nav = String::new();
    if let Some(t) = tenant {
        let t = esc(t);
        for (href, label) in [
            ("", "Dashboard"),
            ("/dead-letters", "Dead letters"),
            ("/messages", "Messages"),
            ("/mappings", "Mappings"),
            ("/audit", "Audit log"),
        ] {
            let _ = write!(nav, "<a href=\"/console/t/{t}{href}\">{label}</a> ");
        }
    }
    let logout = match csrf {
        Some(c) => format!(
            "<form method=\"post\" action=\"/console/logout\" style=\"margin-left:auto\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Log out</button></form>",
            esc(c)
        ),
        None => String::new(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · intake</title><style>{STYLE}</style></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><strong><a href=\"/console\">intake</a></strong>\
         <nav aria-label=\"Tenant\">{nav}</nav>{logout}</header>\
         <main id=\"main\"><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title),
    ))
}

/// A hidden CSRF field for a form.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A table of `rows` (already HTML) under `headers`.
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = format!("<table><caption>{}</caption><thead><tr>", esc(caption));
    for h in headers {
        let _ = write!(t, "<th scope=\"col\">{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        t.push_str("<tr>");
        for cell in r {
            let _ = write!(t, "<td>{cell}</td>");
        }
        t.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(t, "<tr><td colspan=\"{}\">None.</td></tr>", headers.len());
    }
    t.push_str("</tbody></table>");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_for_html_and_urls() {
        assert_eq!(
            esc("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(url("ADT^A01 x&y"), "ADT%5EA01%20x%26y");
    }
}
