//! Subscriptions: a connection that follows what the server newly stores. Each entry of the
//! store's [`Feed`](storage::Feed) after the subscriber's cursor goes out as an `Announced`,
//! as far as the connection's output budget allows; the rest waits in the feed, and a
//! subscriber that falls out of it is told to catch up by listing (`Subscribed`, not
//! resumed). A quiet subscription gets an empty `Announced` now and then, so its client can
//! tell a live server from a dead link.

use std::time::{Duration, Instant};

use storage::{Cursor, Since};

use super::{Pending, Session, Shared};
use crate::message::{ErrorCode, RequestId, Response, WireEntry};

/// How long a subscription goes without a frame before the server says it is still there.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Entries taken from the feed at a time.
const BATCH: usize = 64;

/// A connection's subscription: its request, and the last entry it was sent.
#[derive(Debug)]
pub(crate) struct Subscription {
    id: RequestId,
    cursor: Cursor,
    last_sent: Instant,
}

impl Session {
    pub(super) fn subscribe(
        &mut self,
        id: RequestId,
        cursor: Cursor,
        shared: &Shared,
        now: Instant,
    ) {
        if !self.begin(id, shared) {
            return;
        }
        if self.subscription.is_some() {
            let message = "this connection already has a subscription".into();
            return self.reject(id, ErrorCode::TooManyRequests, message);
        }
        let resumed = matches!(shared.feed.since(cursor, 0), Since::Entries(_));
        let cursor = if resumed {
            cursor
        } else {
            shared.feed.cursor()
        };
        self.respond(&subscribed(id, cursor, resumed), Vec::new());
        self.active.insert(id, Pending::Subscription);
        self.subscription = Some(Subscription {
            id,
            cursor,
            last_sent: now,
        });
        self.announce(shared, now);
    }

    /// Whether the connection follows the feed.
    pub(crate) fn is_subscribed(&self) -> bool {
        self.subscription.is_some() && self.closing_since.is_none()
    }

    /// Queues what the feed has after the subscriber's cursor, while its unread answers stay
    /// under half its budget and the server's memory has room for them; a heartbeat when it
    /// has had nothing for [`HEARTBEAT`]. The caller charges what was queued.
    pub(crate) fn announce(&mut self, shared: &Shared, now: Instant) {
        let Some(mut subscription) = self.subscription.take() else {
            return;
        };
        let room = shared.limits.max_buffered_per_connection / 2;
        let mut sent = false;
        while (self.conn.pending_output() as u64) < room
            && shared
                .memory
                .has_room_for(self.held(&shared.limits), self.conn.host())
        {
            match shared.feed.since(subscription.cursor, BATCH) {
                Since::Entries(entries) if entries.is_empty() => break,
                Since::Entries(entries) => {
                    for (seq, info) in entries {
                        subscription.cursor.seq = seq;
                        let entry = Some(WireEntry::from(&info));
                        let id = subscription.id;
                        self.respond(&Response::Announced { id, seq, entry }, Vec::new());
                    }
                }
                Since::Gap => {
                    subscription.cursor = shared.feed.cursor();
                    let id = subscription.id;
                    self.respond(&subscribed(id, subscription.cursor, false), Vec::new());
                }
            }
            sent = true;
        }
        if !sent && now.duration_since(subscription.last_sent) >= HEARTBEAT {
            let (id, seq) = (subscription.id, subscription.cursor.seq);
            self.respond(
                &Response::Announced {
                    id,
                    seq,
                    entry: None,
                },
                Vec::new(),
            );
            sent = true;
        }
        if sent {
            subscription.last_sent = now;
        }
        self.subscription = Some(subscription);
    }
}

fn subscribed(id: RequestId, cursor: Cursor, resumed: bool) -> Response {
    Response::Subscribed {
        id,
        epoch: cursor.epoch,
        seq: cursor.seq,
        resumed,
    }
}
