//! WatchdogActor: upstream's watchdog-mux inside the daemon. Runs on its
//! own arbiter (thread) so a busy or failing sibling never delays a feed;
//! feeds the backend every tick while every armed client (CRM, LRM) is
//! fresh ([`WatchdogMux`]). Client registrations live here, not in the
//! clients, so a client actor's restart neither fences nor disarms.
//!
//! Note about why crashing is safe here: the backend fences the node when
//! feeding stops, so any failure of this actor (or of the process) ends in
//! fencing, never in an unprotected node.

use std::time::Duration;

// tokio's clock is the system's in the daemon and the paused, virtual
// one in the actor-level simulator (`sim::chaos`).
use tokio::time::Instant;

use actix::{Actor, AsyncContext, Context, Handler, Message, MessageResult};

use crate::core::watchdog::{Client, Feed, WatchdogMux};
use crate::watchdog::Backend;

/// Client operations and process-group bookkeeping.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum WatchdogCmd {
    Arm(Client),
    /// [`crate::core::watchdog::WatchdogMux::arm_ahead`].
    ArmAhead(Client),
    Pet(Client),
    Close(Client),
    Track(i32),
    Untrack(i32),
}

/// The daemon is exiting: magic close if no client is armed.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct WatchdogShutdown;

/// What the watchdog is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogState {
    pub armed: Vec<Client>,
    pub expired: Option<Client>,
    pub feeds: u64,
}

#[derive(Message)]
#[rtype(result = "WatchdogState")]
pub struct GetWatchdogState;

pub struct WatchdogActor {
    mux: WatchdogMux,
    backend: Box<dyn Backend>,
    tick: Duration,
    epoch: Instant,
    feeds: u64,
    reported_expiry: bool,
}

impl WatchdogActor {
    pub fn new(backend: Box<dyn Backend>, client_timeout: Duration, tick: Duration) -> WatchdogActor {
        let timeout_ms = u64::try_from(client_timeout.as_millis()).unwrap_or(u64::MAX);
        WatchdogActor {
            mux: WatchdogMux::new(timeout_ms),
            backend,
            tick,
            epoch: Instant::now(),
            feeds: 0,
            reported_expiry: false,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn on_tick(&mut self) {
        match self.mux.tick(self.now_ms()) {
            Feed::Keepalive | Feed::Idle => match self.backend.keepalive() {
                Ok(()) => self.feeds += 1,
                Err(e) => tracing::error!("watchdog keepalive failed - {e}"),
            },
            Feed::Expired(client) => {
                if !self.reported_expiry {
                    self.reported_expiry = true;
                    tracing::error!(
                        client = client.as_str(),
                        "watchdog client expired - disable watchdog updates, node will be fenced"
                    );
                }
            }
        }
    }
}

impl Actor for WatchdogActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.on_tick();
        ctx.run_interval(self.tick, |act, _| act.on_tick());
    }
}

impl Handler<WatchdogCmd> for WatchdogActor {
    type Result = ();

    fn handle(&mut self, msg: WatchdogCmd, _ctx: &mut Context<Self>) {
        let now = self.now_ms();
        match msg {
            WatchdogCmd::Arm(client) | WatchdogCmd::ArmAhead(client) => {
                if !self.mux.armed(client) {
                    tracing::info!(client = client.as_str(), "watchdog active");
                }
                if matches!(msg, WatchdogCmd::Arm(_)) {
                    self.mux.arm(client, now);
                } else {
                    self.mux.arm_ahead(client, now);
                }
            }
            WatchdogCmd::Pet(client) => self.mux.pet(client, now),
            WatchdogCmd::Close(client) => {
                if self.mux.armed(client) {
                    tracing::info!(client = client.as_str(), "watchdog closed (disabled)");
                }
                self.mux.close(client);
            }
            WatchdogCmd::Track(pgid) => self.backend.track(pgid),
            WatchdogCmd::Untrack(pgid) => self.backend.untrack(pgid),
        }
    }
}

impl Handler<WatchdogShutdown> for WatchdogActor {
    type Result = bool;

    fn handle(&mut self, _msg: WatchdogShutdown, _ctx: &mut Context<Self>) -> bool {
        if self.mux.is_armed() || self.mux.expired().is_some() {
            tracing::error!("exit watchdog with active clients - node will be fenced");
            return false;
        }
        match self.backend.disarm() {
            Ok(()) => {
                tracing::info!("watchdog disarmed cleanly");
                true
            }
            Err(e) => {
                tracing::error!("watchdog magic close failed - {e}");
                false
            }
        }
    }
}

impl Handler<GetWatchdogState> for WatchdogActor {
    type Result = MessageResult<GetWatchdogState>;

    fn handle(&mut self, _msg: GetWatchdogState, _ctx: &mut Context<Self>) -> Self::Result {
        let armed = [Client::Crm, Client::Lrm]
            .into_iter()
            .filter(|c| self.mux.armed(*c))
            .collect();
        MessageResult(WatchdogState {
            armed,
            expired: self.mux.expired(),
            feeds: self.feeds,
        })
    }
}
