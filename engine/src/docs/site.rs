//! `docs/index.html`: one self-contained page. The layout (dagre) and Markdown (marked)
//! libraries are vendored under `site/vendor/` with their licences and inlined, as is the data:
//! the page opens from disk on a machine with no network.

use serde_json::Value;

const PAGE: &str = include_str!("site/page.html");
const DAGRE: &str = include_str!("site/vendor/dagre.min.js");
const MARKED: &str = include_str!("site/vendor/marked.min.js");

/// The page of project `title`, showing `data` (`{manifest, catalog, lineage, run_results}`).
pub fn page(title: &str, data: &Value) -> String {
    let json = serde_json::to_string(data)
        .expect("JSON values serialize")
        // Inside a <script> element, `</` could end it early and `<!--` change how it ends.
        .replace("</", "<\\/")
        .replace("<!--", "\\u003c!--");
    let vendor = format!("<script>{DAGRE}</script>\n<script>{MARKED}</script>");
    let data = format!(r#"<script id="dp-data" type="application/json">{json}</script>"#);
    PAGE.replacen("<!--DP:TITLE-->", &escape_html(title), 1)
        .replacen("<!--DP:VENDOR-->", &vendor, 1)
        .replacen("<!--DP:DATA-->", &data, 1)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
