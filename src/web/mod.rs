//! The web consoles: `hactor-sim serve` (the simulator in the browser)
//! and the daemon's read-only live view (`[web]` in the node TOML).
//!
//! Both serve the same page (plain HTML, CSS and JavaScript embedded in the
//! binary, no build step) and stream the same view (nodes, services, the
//! timeline, the log) over server-sent events.
//!
//! | module | what |
//! |---|---|
//! | [`http`] | the HTTP/1.1 server on hyper: bounded connections, timeouts, write deadlines |
//! | [`board`] | the latest view and log, and one bounded event stream per client |
//! | [`lanes`] | the timeline picture's bars and marks, from successive observations |
//! | [`sim_console`] | the interactive simulator over [`crate::sim::session`] |
//! | [`live`] | the daemon's view over LockActor snapshots |
//!
//! Layering: this folder sits above `sim`, `api` and `actors`; nothing
//! below imports it.

pub mod board;
pub mod http;
pub mod lanes;
pub mod live;
pub mod sim_console;

use hyper::StatusCode;

/// The embedded files: path, content type, content.
pub const ASSETS: [(&str, &str, &str); 3] = [
    ("/", "text/html; charset=utf-8", include_str!("assets/index.html")),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
];

/// The response for an embedded file, if `path` names one.
pub fn asset(path: &str) -> Option<http::Resp> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, content_type, body)| http::full(StatusCode::OK, content_type, *body))
}
