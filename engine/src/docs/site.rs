//! `docs/index.html`: one self-contained page. The layout (dagre) and Markdown (marked)
//! libraries are vendored under `site/vendor/` with their licences and inlined, as is the data:
//! the page opens from disk on a machine with no network.

const PAGE: &str = include_str!("site/page.html");
const DAGRE: &str = include_str!("site/vendor/dagre.min.js");
const MARKED: &str = include_str!("site/vendor/marked.min.js");

/// The page of project `title`, showing `data`, the JSON text of
/// `{manifest, catalog, lineage, run_results}`. Secrets are masked before anything is escaped:
/// once escaped (`</` as `<\/`), a secret is no longer found by [`crate::report::mask`].
pub fn page(title: &str, data: &str) -> String {
    let title = crate::report::mask(title);
    let json = crate::report::mask(data)
        // Inside a <script> element, `</` could end it early and `<!--` change how it ends.
        .replace("</", "<\\/")
        .replace("<!--", "\\u003c!--");
    let vendor = format!("<script>{DAGRE}</script>\n<script>{MARKED}</script>");
    let data = format!(r#"<script id="dp-data" type="application/json">{json}</script>"#);
    PAGE.replacen("<!--DP:TITLE-->", &escape_html(&title), 1)
        .replacen("<!--DP:VENDOR-->", &vendor, 1)
        .replacen("<!--DP:DATA-->", &data, 1)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn data_that_looks_like_markup_stays_data() {
        let hostile = "</script><script>alert(1)</script><!-- <script>";
        let data = serde_json::json!({"description": hostile});
        let html = page("a<b>&\"c\"", &data.to_string());
        let start = html
            .find(r#"<script id="dp-data" type="application/json">"#)
            .unwrap();
        let json_start = html[start..].find('>').unwrap() + start + 1;
        let json_end = html[json_start..].find("</script>").unwrap() + json_start;
        // The element ends where dp ended it, and its text parses back to the same data.
        let parsed: Value = serde_json::from_str(&html[json_start..json_end]).unwrap();
        assert_eq!(parsed, data);
        assert!(!html[json_start..json_end].contains("<!--"));
        assert!(html.contains("<title>a&lt;b&gt;&amp;&quot;c&quot; · dp docs</title>"));
    }

    #[test]
    fn a_secret_that_escaping_changes_is_masked_first() {
        let secret = "kq7z</script><!--w3vq";
        crate::report::register_secret(secret);
        let data = serde_json::json!({"compiled_code": format!("select '{secret}'")});
        let html = page(&format!("p {secret}"), &data.to_string());
        for form in [
            secret.to_string(),
            secret.replace("</", "<\\/"),
            secret.replace("<!--", "\\u003c!--"),
            secret.replace("</", "<\\/").replace("<!--", "\\u003c!--"),
            escape_html(secret),
            "kq7z".to_string(),
            "w3vq".to_string(),
        ] {
            assert!(!html.contains(&form), "the page holds {form}");
        }
        assert!(html.contains("select '****'"));
        assert!(html.contains("<title>p **** · dp docs</title>"));
    }
}
