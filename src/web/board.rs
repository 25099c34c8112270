//! What a console shows right now, and the event streams that carry it to
//! the browsers.
//!
//! One [`Board`] per server holds the latest view (rendered once per
//! change, whatever the number of clients) and the log. Each client's
//! stream is fed by its own small task that wakes on a change, sends the
//! view and the log lines the client has not seen yet, and waits again: a
//! client that falls behind skips intermediate views (it always gets the
//! newest one) and one that stops reading is dropped after the write
//! timeout. Nothing a client does reaches the simulator or the store.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Bytes;
use tokio::sync::{mpsc, watch};

use super::http::{self, Resp, STREAM_QUEUE};

/// Log lines kept for clients that connect later.
pub const MAX_LOG: usize = 20_000;
/// Log lines sent in one event (a new client gets the newest ones).
pub const MAX_LOG_PER_EVENT: usize = 2_000;

pub struct Board {
    view: Rc<str>,
    log: VecDeque<String>,
    /// Number of lines dropped from the front of `log`.
    log_base: usize,
    changed: watch::Sender<u64>,
}

impl Default for Board {
    fn default() -> Board {
        Board {
            view: Rc::from("null"),
            log: VecDeque::new(),
            log_base: 0,
            changed: watch::channel(0).0,
        }
    }
}

/// Wall-clock milliseconds, stamped on each view so that a page can tell
/// how long the update took to reach it.
pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Board {
    /// All log lines ever appended.
    pub fn log_total(&self) -> usize {
        self.log_base + self.log.len()
    }

    pub fn push_log(&mut self, line: String) {
        self.log.push_back(line);
        if self.log.len() > MAX_LOG {
            self.log.pop_front();
            self.log_base += 1;
        }
    }

    pub fn view(&self) -> Rc<str> {
        self.view.clone()
    }

    /// Publishes a new view (JSON) and wakes every stream.
    pub fn publish(&mut self, view: String) {
        self.view = Rc::from(view);
        self.changed.send_modify(|seq| *seq += 1);
    }

    /// The next event for a client that has seen the log up to `cursor`.
    fn event(&self, cursor: &mut Option<usize>) -> Bytes {
        let total = self.log_total();
        let from = cursor
            .unwrap_or(0)
            .max(self.log_base)
            .max(total.saturating_sub(MAX_LOG_PER_EVENT));
        let lines: Vec<&String> = self.log.iter().skip(from - self.log_base).collect();
        *cursor = Some(total);
        let log = serde_json::to_string(&lines).unwrap_or_else(|_| "[]".into());
        Bytes::from(format!(
            "data: {{\"view\":{},\"log_from\":{from},\"log\":{log}}}\n\n",
            self.view
        ))
    }
}

/// Opens an event stream on `board` for one client.
pub fn subscribe(board: &Rc<RefCell<Board>>, write_timeout: Duration) -> Resp {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let mut changed = board.borrow().changed.subscribe();
    let board = board.clone();
    tokio::task::spawn_local(async move {
        let mut cursor = None;
        loop {
            let event = board.borrow().event(&mut cursor);
            match tokio::time::timeout(write_timeout, tx.send(event)).await {
                Ok(Ok(())) => {}
                // Gone, or not reading: the stream ends.
                _ => return,
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    });
    http::event_stream(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_unseen_log_and_the_newest_view() {
        let mut board = Board::default();
        for i in 0..5 {
            board.push_log(format!("line {i}"));
        }
        board.publish("{\"a\":1}".into());
        let mut cursor = None;
        let first = String::from_utf8(board.event(&mut cursor).to_vec()).unwrap();
        assert_eq!(
            first,
            "data: {\"view\":{\"a\":1},\"log_from\":0,\"log\":[\"line 0\",\"line 1\",\"line 2\",\"line 3\",\"line 4\"]}\n\n"
        );
        board.push_log("line 5".into());
        board.publish("{\"a\":2}".into());
        let second = String::from_utf8(board.event(&mut cursor).to_vec()).unwrap();
        assert!(second.contains("\"log_from\":5,\"log\":[\"line 5\"]"), "{second}");
        for i in 0..(MAX_LOG + 10) {
            board.push_log(format!("x{i}"));
        }
        assert_eq!(board.log_total(), MAX_LOG + 16);
        let mut fresh = None;
        let late = String::from_utf8(board.event(&mut fresh).to_vec()).unwrap();
        let from = MAX_LOG + 16 - MAX_LOG_PER_EVENT;
        assert!(
            late.contains(&format!("\"log_from\":{from},")),
            "a new client gets the newest lines"
        );
    }
}
