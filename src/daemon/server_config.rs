//! What the daemon serves besides its actors: the API socket's settings
//! and the read-only live view's (`[web]`), from the node configuration.

use std::time::Duration;

use crate::node::config::NodeConfig;

/// How the API answers on this node.
pub fn api_config(config: &NodeConfig) -> crate::api::server::ServerConfig {
    // Upstream calls a status stale after 30 s, three of its rounds.
    let round_secs = i64::try_from(config.timings.round_ms.div_ceil(1000)).unwrap_or(i64::MAX);
    crate::api::server::ServerConfig {
        socket: config.socket.clone(),
        plan: crate::api::plan::PlanContext {
            node: config.node.clone(),
            proc_services: config.proc_services.keys().cloned().collect(),
        },
        fresh_secs: round_secs.saturating_mul(3).max(5),
        crs: "basic".into(),
        store_timeout: Duration::from_secs(30),
    }
}

/// The live view's settings (`[web]`): the token file is read here, so
/// that a missing or short token stops the daemon at start.
pub fn live_config(
    config: &NodeConfig,
    web: &crate::node::config::WebConfig,
) -> Result<crate::web::live::LiveConfig, String> {
    let api = api_config(config);
    Ok(crate::web::live::LiveConfig {
        listen: web.listen,
        tls: web.tls.clone(),
        token: web
            .token_file
            .as_deref()
            .map(crate::web::live::read_token)
            .transpose()?,
        poll: Duration::from_millis(web.poll_ms),
        limits: crate::web::http::Limits::default(),
        node: config.node.clone(),
        fresh_secs: api.fresh_secs,
    })
}
