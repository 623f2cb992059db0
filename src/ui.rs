//! The web pages' files (`ui/` in the repository: the pool's dashboard, the miner's page, and
//! KaTeX and uPlot as vendored from npm by `scripts/fetch-ui-vendor.sh`), embedded in the
//! binary at build time (see build.rs), so the pages work offline and nothing is fetched at
//! run time.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The embedded file at `path` (relative to `ui/`).
pub fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// The media type of a file, by its extension.
pub fn media_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        _ => "text/plain; charset=utf-8",
    }
}

/// The file at `path` as an answer (404 when there is none). Vendored libraries are cached
/// by browsers for a day; the pages and their scripts are revalidated.
pub fn serve(path: &str) -> Response {
    match asset(path) {
        Some(bytes) => {
            let cache = if path.starts_with("vendor/") {
                "public, max-age=86400"
            } else {
                "no-cache"
            };
            (
                [
                    (header::CONTENT_TYPE, media_type(path)),
                    (header::CACHE_CONTROL, cache),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    (header::CONTENT_SECURITY_POLICY, CSP),
                ],
                bytes,
            )
                .into_response()
        }
        None => not_found_page("page", path),
    }
}

/// HTML-escape text for an element or an attribute (the search report's escaping).
pub use crate::evolve::report::escape;

/// The Content-Security-Policy of the pages: their own files only, no inline scripts.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The generic sentence of `ui/pool/404.html` that [`not_found_page`] replaces.
const NOT_FOUND_GENERIC: &str = "This pool has no function or page at this address.";

/// A readable 404 page naming what was not found (escaped): `ui/pool/404.html` with its
/// sentence made specific.
pub fn not_found_page(what: &str, name: &str) -> Response {
    let specific = format!(
        "There is no {} <code>{}</code> here.",
        escape(what),
        escape(name)
    );
    let body = match asset("pool/404.html").map(String::from_utf8_lossy) {
        Some(page) if page.contains(NOT_FOUND_GENERIC) => {
            page.replace(NOT_FOUND_GENERIC, &specific)
        }
        _ => format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title>\
             <link rel=\"stylesheet\" href=\"/ui/app.css\"></head><body><main class=\"notfound\">\
             <h1>Not found</h1><p>{specific}</p><p><a href=\"/\">Back to the dashboard</a></p>\
             </main></body></html>"
        ),
    };
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<img src=x onerror='a(1)'>&\""),
            "&lt;img src=x onerror=&#39;a(1)&#39;&gt;&amp;&quot;"
        );
    }

    #[test]
    fn media_types_by_extension() {
        assert_eq!(
            media_type("vendor/katex/fonts/KaTeX_Main-Regular.woff2"),
            "font/woff2"
        );
        assert!(media_type("pool/index.html").starts_with("text/html"));
    }
}
