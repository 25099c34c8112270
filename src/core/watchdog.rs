//! Watchdog multiplexer policy (upstream `watchdog-mux`, spec §11.2):
//! clients (the CRM, the LRM) arm, pet and close; the device is fed only
//! while every armed client is fresh. Pure: time comes in as milliseconds.
//!
//! Note about why feeding never resumes: once a client went stale, the
//! node may already be considered dead by the others (its lease may run
//! out while it is stale), so a late pet must not keep it alive; the
//! device runs out and fences the node.

use std::collections::BTreeMap;

/// A watchdog client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Client {
    Crm,
    Lrm,
}

impl Client {
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Crm => "crm",
            Client::Lrm => "lrm",
        }
    }
}

/// What the mux decided at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Keep the device alive.
    Keepalive,
    /// Nobody is armed: nothing to protect, the device may stay idle.
    Idle,
    /// A client expired: stop feeding for good.
    Expired(Client),
}

/// The multiplexer's state.
#[derive(Debug, Clone)]
pub struct WatchdogMux {
    /// Armed clients and when each was last heard from.
    clients: BTreeMap<Client, u64>,
    client_timeout_ms: u64,
    /// Set once a client expired; never cleared.
    expired: Option<Client>,
}

impl WatchdogMux {
    pub fn new(client_timeout_ms: u64) -> WatchdogMux {
        WatchdogMux {
            clients: BTreeMap::new(),
            client_timeout_ms,
            expired: None,
        }
    }

    /// A client opens (or re-opens after its own restart) its connection.
    /// Arming an armed client just refreshes it: a restart inside the
    /// timeout neither fences nor disarms the node.
    pub fn arm(&mut self, client: Client, now_ms: u64) {
        self.clients.insert(client, now_ms);
    }

    /// Arms a client ahead of a lease it may or may not get (see
    /// [`crate::core::env::Env::watchdog_arm_ahead`]): its time runs from
    /// now, and a client already armed keeps its own, so arming ahead
    /// again never moves a deadline that no confirmed renewal moved.
    pub fn arm_ahead(&mut self, client: Client, now_ms: u64) {
        self.clients.entry(client).or_insert(now_ms);
    }

    /// A client proves it is alive (right after a successful lease renewal).
    /// Ignored for clients that are not armed.
    pub fn pet(&mut self, client: Client, now_ms: u64) {
        if let Some(last) = self.clients.get_mut(&client) {
            *last = now_ms.max(*last);
        }
    }

    /// Magic close: the client is done and it is safe (nothing runs that
    /// needs protection).
    pub fn close(&mut self, client: Client) {
        self.clients.remove(&client);
    }

    pub fn is_armed(&self) -> bool {
        !self.clients.is_empty()
    }

    pub fn armed(&self, client: Client) -> bool {
        self.clients.contains_key(&client)
    }

    pub fn expired(&self) -> Option<Client> {
        self.expired
    }

    /// Decides whether to feed the device at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Feed {
        if let Some(client) = self.expired {
            return Feed::Expired(client);
        }
        for (client, last) in &self.clients {
            if now_ms.saturating_sub(*last) > self.client_timeout_ms {
                self.expired = Some(*client);
                return Feed::Expired(*client);
            }
        }
        if self.clients.is_empty() {
            Feed::Idle
        } else {
            Feed::Keepalive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_ahead_keeps_an_armed_clients_deadline() {
        let mut mux = WatchdogMux::new(4_000);
        mux.arm_ahead(Client::Lrm, 1_000);
        mux.arm_ahead(Client::Lrm, 3_000);
        assert!(mux.armed(Client::Lrm));
        assert_eq!(mux.clients[&Client::Lrm], 1_000, "a second arm ahead moved nothing");
        mux.pet(Client::Lrm, 3_500);
        assert_eq!(mux.clients[&Client::Lrm], 3_500, "a pet (a confirmed renewal) does");
    }

    #[test]
    fn feeds_only_while_every_armed_client_is_fresh() {
        let mut mux = WatchdogMux::new(2000);
        assert_eq!(mux.tick(0), Feed::Idle);
        mux.arm(Client::Lrm, 0);
        mux.arm(Client::Crm, 0);
        mux.pet(Client::Lrm, 1500);
        assert_eq!(mux.tick(2000), Feed::Keepalive);
        mux.pet(Client::Lrm, 2500);
        assert_eq!(mux.tick(2001), Feed::Expired(Client::Crm), "crm was silent for 2001 ms");
        mux.pet(Client::Crm, 2600);
        assert_eq!(mux.tick(2700), Feed::Expired(Client::Crm), "feeding never resumes");
    }

    #[test]
    fn rearming_refreshes_and_closing_disarms() {
        let mut mux = WatchdogMux::new(1000);
        mux.arm(Client::Lrm, 0);
        mux.arm(Client::Lrm, 900);
        assert_eq!(mux.tick(1800), Feed::Keepalive);
        mux.close(Client::Lrm);
        assert_eq!(mux.tick(10_000), Feed::Idle);
        mux.pet(Client::Lrm, 10_000);
        assert!(!mux.armed(Client::Lrm), "a pet does not arm");
    }
}
