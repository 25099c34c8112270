//! An in-process network between Raft members, for the seeded
//! actor-level harness (`sim::chaos`): every member of a cluster runs in
//! one process on one thread and virtual time, and their requests travel
//! through a [`MemoryNet`] instead of QUIC.
//!
//! Requests and replies are codec frames, as on the wire, so the harness
//! exercises the encoding too. The net is where the harness injects
//! network faults: a directed link cut (asymmetric partitions), delay,
//! loss and duplication drawn from a seeded generator, and frozen
//! members (a paused process: what is sent to it waits until it thaws,
//! and so does what it sends). A lost request or reply leaves the caller
//! waiting until its call times out, as a lost datagram would. Nothing
//! here reads the wall clock: delays are `tokio::time` sleeps, virtual
//! under the harness's paused runtime, and the draws happen in call
//! order on one thread, so a seed replays exactly.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::quic::{CALL_TIMEOUT, RemoteError, RequestEnvelope, TransportError, answer_of, lock, request_frame};

type Reply = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;
type Handler = Arc<dyn Fn(Vec<u8>) -> Reply + Send + Sync>;

/// How often a waiting frame looks whether its frozen end thawed.
const THAW_POLL: Duration = Duration::from_millis(20);

/// Link faults that apply to every frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFaults {
    /// One-way delay of a frame, drawn in `[min, max]` ms.
    pub delay_ms: (u64, u64),
    /// Chance (per mille) that a frame is lost.
    pub loss_per_mille: u64,
    /// Chance (per mille) that a request is delivered twice.
    pub duplicate_per_mille: u64,
}

struct Server {
    handler: Handler,
    /// Bumped at every registration: a reply from an earlier incarnation
    /// of a member is never delivered.
    generation: u64,
}

#[derive(Default)]
struct NetState {
    servers: HashMap<String, Server>,
    generation: u64,
    /// Directed cuts: frames from `.0` to `.1` are lost.
    cut: BTreeSet<(String, String)>,
    frozen: BTreeSet<String>,
    faults: LinkFaults,
    rng: u64,
    /// Every member's address (a fake one: nothing listens on it).
    addrs: HashMap<String, SocketAddr>,
}

impl NetState {
    /// splitmix64: the net's own draws, seeded by the harness.
    fn draw(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        per_mille > 0 && self.draw() % 1000 < per_mille
    }

    fn delay(&mut self) -> Duration {
        let (low, high) = self.faults.delay_ms;
        let span = high.saturating_sub(low);
        let extra = if span == 0 { 0 } else { self.draw() % (span + 1) };
        Duration::from_millis(low + extra)
    }

    /// Whether a frame from `from` to `to` is lost on the way.
    fn lost(&mut self, from: &str, to: &str) -> bool {
        self.cut.contains(&(from.to_string(), to.to_string())) || {
            let loss = self.faults.loss_per_mille;
            self.chance(loss)
        }
    }
}

/// The network of one simulated cluster; clones share it.
#[derive(Clone, Default)]
pub struct MemoryNet {
    state: Arc<Mutex<NetState>>,
}

impl MemoryNet {
    /// A network whose delays, losses and duplicates come from `seed`.
    pub fn new(seed: u64) -> MemoryNet {
        let net = MemoryNet::default();
        lock(&net.state).rng = seed;
        net
    }

    /// Member `node`'s endpoint on this net.
    pub fn endpoint(&self, node: &str) -> MemoryTransport {
        let addr = {
            let mut state = lock(&self.state);
            let next = state.addrs.len() as u32 + 1;
            *state
                .addrs
                .entry(node.to_string())
                .or_insert_with(|| SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + next), 5404)))
        };
        MemoryTransport {
            node: node.to_string(),
            addr,
            net: self.clone(),
            blocked: Arc::new(Mutex::new(BTreeSet::new())),
            open: Arc::new(AtomicBool::new(true)),
            served: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Frames from `from` to `to` are lost until [`MemoryNet::heal`].
    pub fn cut(&self, from: &str, to: &str) {
        lock(&self.state).cut.insert((from.to_string(), to.to_string()));
    }

    /// Frames from `from` to `to` flow again.
    pub fn heal(&self, from: &str, to: &str) {
        lock(&self.state).cut.remove(&(from.to_string(), to.to_string()));
    }

    /// Every cut healed.
    pub fn heal_all(&self) {
        lock(&self.state).cut.clear();
    }

    /// Whether frames from `from` to `to` are cut.
    pub fn is_cut(&self, from: &str, to: &str) -> bool {
        lock(&self.state).cut.contains(&(from.to_string(), to.to_string()))
    }

    pub fn set_faults(&self, faults: LinkFaults) {
        lock(&self.state).faults = faults;
    }

    /// A frozen member neither receives nor sends until thawed.
    pub fn freeze(&self, node: &str) {
        lock(&self.state).frozen.insert(node.to_string());
    }

    pub fn thaw(&self, node: &str) {
        lock(&self.state).frozen.remove(node);
    }

    /// Member `node` is gone (crashed): its server answers nothing more,
    /// if it is still the one of registration `generation`. A crashed
    /// incarnation whose shutdown ends late (its core in a slow write)
    /// must not take down the server of the next one.
    fn unregister_generation(&self, node: &str, generation: u64) {
        let mut state = lock(&self.state);
        if state.servers.get(node).is_some_and(|s| s.generation == generation) {
            state.servers.remove(node);
        }
    }

    fn frozen(&self, node: &str) -> bool {
        lock(&self.state).frozen.contains(node)
    }

    /// Waits while `node` is frozen.
    async fn until_thawed(&self, node: &str) {
        while self.frozen(node) {
            tokio::time::sleep(THAW_POLL).await;
        }
    }

    /// Carries one request frame from `from` to `to` and its reply back;
    /// `None` if a frame was lost (the caller's timeout ends the wait).
    async fn exchange(&self, from: &str, to: &str, frame: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        self.until_thawed(from).await;
        let (delay, lost, twice) = {
            let mut state = lock(&self.state);
            let delay = state.delay();
            let lost = state.lost(from, to);
            let duplicate = state.faults.duplicate_per_mille;
            let twice = state.chance(duplicate);
            (delay, lost, twice)
        };
        tokio::time::sleep(delay).await;
        if lost {
            return std::future::pending().await;
        }
        self.until_thawed(to).await;
        let Some((handler, generation)) = lock(&self.state)
            .servers
            .get(to)
            .map(|s| (s.handler.clone(), s.generation))
        else {
            // Nobody listens: as a QUIC handshake to a dead member, the
            // call times out.
            return std::future::pending().await;
        };
        if twice {
            tokio::spawn(handler(frame.clone()));
        }
        // The server's work runs on its own, as it would in the member's
        // process: a caller that stops waiting does not cancel it.
        let reply = tokio::spawn(handler(frame))
            .await
            .map_err(|e| TransportError::Unreachable {
                peer: to.to_string(),
                reason: e.to_string(),
            })?;
        let (delay, lost, current) = {
            let mut state = lock(&self.state);
            let current = state.servers.get(to).is_some_and(|s| s.generation == generation);
            (state.delay(), state.lost(to, from), current)
        };
        tokio::time::sleep(delay).await;
        if lost || !current {
            return std::future::pending().await;
        }
        self.until_thawed(to).await;
        Ok(reply)
    }
}

/// One member's endpoint on a [`MemoryNet`]; clones share it.
#[derive(Clone)]
pub struct MemoryTransport {
    node: String,
    addr: SocketAddr,
    net: MemoryNet,
    /// Peers blocked by the daemon's own fault injection switch.
    blocked: Arc<Mutex<BTreeSet<String>>>,
    /// Cleared by [`MemoryTransport::close`]: a crashed member's core may
    /// still run until its shutdown ends, but nothing it sends arrives.
    open: Arc<AtomicBool>,
    /// The generation of the server this endpoint registered (0: none),
    /// so that its close unregisters that one and no later incarnation's.
    served: Arc<AtomicU64>,
}

impl MemoryTransport {
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The member's (fake) address, unique on its net.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn block(&self, peer: &str) {
        lock(&self.blocked).insert(peer.to_string());
    }

    pub fn unblock(&self, peer: &str) {
        lock(&self.blocked).remove(peer);
    }

    fn is_blocked(&self, peer: &str) -> bool {
        lock(&self.blocked).contains(peer)
    }

    /// Whether `peer` listens and neither direction is cut.
    pub fn connected(&self, peer: &str) -> bool {
        let state = lock(&self.net.state);
        !self.is_blocked(peer)
            && state.servers.contains_key(peer)
            && !state.cut.contains(&(self.node.clone(), peer.to_string()))
            && !state.cut.contains(&(peer.to_string(), self.node.clone()))
    }

    /// Sends `request` to `peer` and waits (at most [`CALL_TIMEOUT`]) for
    /// its answer.
    pub async fn call<Req, Resp>(&self, peer: &str, request: &Req) -> Result<Resp, TransportError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        if self.is_blocked(peer) {
            return Err(TransportError::Blocked(peer.to_string()));
        }
        if !self.open.load(Ordering::SeqCst) {
            return Err(TransportError::Endpoint(format!("{} is closed", self.node)));
        }
        let frame = request_frame(&self.node, peer, request)?;
        let bytes = tokio::time::timeout(CALL_TIMEOUT, self.net.exchange(&self.node, peer, frame))
            .await
            .map_err(|_| TransportError::Timeout(peer.to_string()))??;
        if !self.open.load(Ordering::SeqCst) {
            return Err(TransportError::Endpoint(format!("{} is closed", self.node)));
        }
        answer_of(peer, &bytes)
    }

    /// Answers requests with `handler` until [`MemoryTransport::close`];
    /// the task returned ends then.
    pub fn serve<Req, Resp, H, Fut>(&self, handler: H) -> tokio::task::JoinHandle<()>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        H: Fn(String, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, String>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let blocked = self.blocked.clone();
        let bytes_handler: Handler = Arc::new(move |frame: Vec<u8>| {
            let (handler, blocked) = (handler.clone(), blocked.clone());
            Box::pin(async move {
                let reply: Result<Resp, RemoteError> = match codec::decode::<RequestEnvelope<Req>>(&frame) {
                    Err(e) => Err(RemoteError::Malformed(e.to_string())),
                    Ok(request) if lock(&blocked).contains(&request.from) => {
                        return std::future::pending().await;
                    }
                    Ok(request) => handler(request.from, request.body).await.map_err(RemoteError::Handler),
                };
                codec::encode(&reply).unwrap_or_default()
            })
        });
        {
            let mut state = lock(&self.net.state);
            state.generation += 1;
            let generation = state.generation;
            state.servers.insert(
                self.node.clone(),
                Server {
                    handler: bytes_handler,
                    generation,
                },
            );
            self.served.store(generation, Ordering::SeqCst);
        }
        let (net, node) = (self.net.clone(), self.node.clone());
        tokio::spawn(async move {
            while lock(&net.state).servers.contains_key(&node) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    /// Stops answering and sending (the member crashed or shut down).
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.net
            .unregister_generation(&self.node, self.served.load(Ordering::SeqCst));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_echo(endpoint: &MemoryTransport) {
        let name = endpoint.node().to_string();
        drop(endpoint.serve(move |from: String, body: String| {
            let name = name.clone();
            async move { Ok::<String, String>(format!("{name} heard {body} from {from}")) }
        }));
    }

    #[tokio::test(start_paused = true)]
    async fn frames_travel_and_cuts_are_one_way() {
        let net = MemoryNet::new(1);
        let (a, b) = (net.endpoint("a"), net.endpoint("b"));
        serve_echo(&a);
        serve_echo(&b);
        let reply: String = a.call("b", &"hi".to_string()).await.unwrap();
        assert_eq!(reply, "b heard hi from a");
        assert_ne!(a.addr(), b.addr());
        // a → b cut: a's calls time out, b's requests reach a but the
        // replies are lost.
        net.cut("a", "b");
        assert!(!a.connected("b") && !b.connected("a"));
        let e = a.call::<String, String>("b", &"x".into()).await.unwrap_err();
        assert_eq!(e, TransportError::Timeout("b".into()));
        let e = b.call::<String, String>("a", &"x".into()).await.unwrap_err();
        assert_eq!(e, TransportError::Timeout("a".into()));
        net.heal("a", "b");
        let reply: String = b.call("a", &"back".to_string()).await.unwrap();
        assert_eq!(reply, "a heard back from b");
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_member_answers_after_it_thaws_and_a_closed_one_never() {
        let net = MemoryNet::new(2);
        let (a, b) = (net.endpoint("a"), net.endpoint("b"));
        serve_echo(&b);
        net.freeze("b");
        let call = tokio::spawn(async move { a.call::<String, String>("b", &"late".into()).await });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!call.is_finished(), "answered while frozen");
        net.thaw("b");
        assert_eq!(call.await.unwrap().unwrap(), "b heard late from a");
        let a = net.endpoint("a");
        b.close();
        let e = a.call::<String, String>("b", &"gone".into()).await.unwrap_err();
        assert_eq!(e, TransportError::Timeout("b".into()));
    }

    /// A crashed incarnation's endpoint closed late (its core's shutdown
    /// ended after the next incarnation served) leaves the new server
    /// answering: once a late close unregistered the name, and the
    /// restarted member was unreachable for good.
    #[tokio::test(start_paused = true)]
    async fn a_late_close_of_an_earlier_incarnation_leaves_the_next_one_serving() {
        let net = MemoryNet::new(3);
        let (a, old) = (net.endpoint("a"), net.endpoint("b"));
        serve_echo(&old);
        old.close();
        let new = net.endpoint("b");
        serve_echo(&new);
        old.close();
        let reply: String = a.call("b", &"again".to_string()).await.unwrap();
        assert_eq!(reply, "b heard again from a");
        new.close();
        let e = a.call::<String, String>("b", &"gone".into()).await.unwrap_err();
        assert_eq!(e, TransportError::Timeout("b".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn loss_and_delay_come_from_the_seed() {
        async fn outcomes(seed: u64) -> Vec<bool> {
            let net = MemoryNet::new(seed);
            net.set_faults(LinkFaults {
                delay_ms: (1, 30),
                loss_per_mille: 300,
                duplicate_per_mille: 100,
            });
            let (a, b) = (net.endpoint("a"), net.endpoint("b"));
            serve_echo(&b);
            let mut seen = Vec::new();
            for i in 0..20 {
                seen.push(a.call::<String, String>("b", &i.to_string()).await.is_ok());
            }
            seen
        }
        let first = outcomes(7).await;
        assert_eq!(first, outcomes(7).await, "a seed replays");
        assert!(first.contains(&true) && first.contains(&false), "{first:?}");
    }
}
