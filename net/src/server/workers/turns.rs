//! Turns at the store readers: jobs wait in one queue per connection; the hosts with a
//! connection ready (a job waiting, none at a reader) take turns, and within a host its ready
//! connections do, one job each. A connection that pipelines hundreds of lists or gets
//! therefore delays another connection's offer by one job of its own, not by all of them; and
//! a host holding a thousand such connections delays another host's offer by one job, not by
//! a thousand.
//!
//! A connection has at most one job at a reader at a time, so its answers leave in the order
//! its requests came, as they did with a single reader, and one connection can never occupy
//! more than one reader thread.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use super::{ConnId, ReadJob};

/// The read jobs waiting, by connection, and whose turn is next.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    queues: HashMap<ConnId, VecDeque<ReadJob>>,
    /// Hosts with a connection ready, in the order of their turns: exactly those in `ready`.
    hosts: VecDeque<IpAddr>,
    /// The ready connections of each such host, in the order of their turns; never empty.
    ready: HashMap<IpAddr, VecDeque<ConnId>>,
    /// Connections with a job at a reader.
    running: HashSet<ConnId>,
}

impl Turns {
    /// Queues `job` behind its connection's earlier jobs.
    pub(crate) fn push(&mut self, job: ReadJob) {
        let conn = job.conn();
        let queue = self.queues.entry(conn).or_default();
        let becomes_ready = queue.is_empty() && !self.running.contains(&conn);
        queue.push_back(job);
        if becomes_ready {
            self.make_ready(conn);
        }
    }

    /// The oldest job of the connection whose turn it is, of the host whose turn it is, which
    /// is now at a reader until [`Turns::finish`]; `None` when no connection without a job at
    /// a reader has one waiting.
    pub(crate) fn take(&mut self) -> Option<ReadJob> {
        let host = self.hosts.pop_front()?;
        let waiting = self
            .ready
            .get_mut(&host)
            .expect("a host in turn has a connection ready");
        let conn = waiting
            .pop_front()
            .expect("a host in turn has a connection ready");
        if waiting.is_empty() {
            self.ready.remove(&host);
        } else {
            self.hosts.push_back(host);
        }
        let job = self
            .queues
            .get_mut(&conn)
            .and_then(VecDeque::pop_front)
            .expect("a connection in turn has a job waiting");
        self.running.insert(conn);
        Some(job)
    }

    /// Drops the jobs `conn` has waiting: it is closed, and nobody would read their answers.
    /// A job of it already at a reader is answered, and its answer dropped by the loop.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        if self.queues.remove(&conn).is_none() {
            return;
        }
        if let Some(waiting) = self.ready.get_mut(&conn.host) {
            waiting.retain(|ready| *ready != conn);
            if waiting.is_empty() {
                self.ready.remove(&conn.host);
                self.hosts.retain(|host| *host != conn.host);
            }
        }
    }

    /// `conn`'s job at a reader is answered: its next job, if it has one, waits for a turn
    /// behind every connection of its host already waiting.
    pub(crate) fn finish(&mut self, conn: ConnId) {
        self.running.remove(&conn);
        if self
            .queues
            .get(&conn)
            .is_some_and(|queue| !queue.is_empty())
        {
            self.make_ready(conn);
        } else {
            self.queues.remove(&conn);
        }
    }

    /// Puts `conn`, which has a job waiting and none at a reader, last in its host's line, and
    /// its host last in line if it had none ready.
    fn make_ready(&mut self, conn: ConnId) {
        let waiting = self.ready.entry(conn.host).or_default();
        if waiting.is_empty() {
            self.hosts.push_back(conn.host);
        }
        waiting.push_back(conn);
    }
}

#[cfg(test)]
mod tests {
    use storage::PartName;

    use super::*;

    /// Connection `slot`, of the host 127.0.2.1.
    fn conn(slot: usize) -> ConnId {
        conn_of(slot, 1)
    }

    /// Connection `slot`, of the host 127.0.2.`host`.
    fn conn_of(slot: usize, host: u8) -> ConnId {
        ConnId {
            slot,
            serial: 1,
            host: [127, 0, 2, host].into(),
        }
    }

    fn list(slot: usize, id: u64) -> ReadJob {
        ReadJob::List {
            conn: conn(slot),
            id,
            after: None,
            limit: 1,
        }
    }

    fn offer(slot: usize, id: u64) -> ReadJob {
        ReadJob::Offer {
            conn: conn(slot),
            id,
            name: PartName::new("part2.txt").unwrap(),
            hash: storage::PartHash::of(b"hello"),
        }
    }

    fn id(job: &ReadJob) -> (usize, u64) {
        match job {
            ReadJob::Offer { conn, id, .. }
            | ReadJob::List { conn, id, .. }
            | ReadJob::Get { conn, id, .. }
            | ReadJob::Stat { conn, id, .. } => (conn.slot, *id),
        }
    }

    /// 300 lists queued by one connection before another's offer: the offer is the second
    /// job served, and each connection's jobs run in their order.
    #[test]
    fn a_flood_from_one_connection_waits_behind_one_offer() {
        let mut turns = Turns::default();
        for n in 0..300 {
            turns.push(list(1, n));
        }
        turns.push(offer(2, 7));
        let mut served = Vec::new();
        while let Some(job) = turns.take() {
            let (slot, id) = id(&job);
            served.push((slot, id));
            turns.finish(conn(slot));
        }
        assert_eq!(served[..3], [(1, 0), (2, 7), (1, 1)]);
        let flood: Vec<u64> = served.iter().filter(|s| s.0 == 1).map(|s| s.1).collect();
        assert_eq!(flood, (0..300).collect::<Vec<_>>());
        assert_eq!(served.len(), 301);
        assert!(turns.queues.is_empty() && turns.running.is_empty());
    }

    /// A connection has one job at a reader at a time, even with readers to spare; its next
    /// job becomes available when that one is answered.
    #[test]
    fn one_job_per_connection_at_a_time() {
        let mut turns = Turns::default();
        turns.push(list(1, 0));
        turns.push(list(1, 1));
        turns.push(list(2, 0));
        assert_eq!(turns.take().as_ref().map(id), Some((1, 0)));
        assert_eq!(turns.take().as_ref().map(id), Some((2, 0)));
        assert!(
            turns.take().is_none(),
            "connection 1 already has a job at a reader"
        );
        turns.push(list(2, 1));
        assert!(turns.take().is_none(), "connection 2 too");
        turns.finish(conn(2));
        assert_eq!(turns.take().as_ref().map(id), Some((2, 1)));
        turns.finish(conn(1));
        assert_eq!(turns.take().as_ref().map(id), Some((1, 1)));
    }

    /// A closed connection's waiting jobs are dropped; the one at a reader still finishes, and
    /// the others' turns go on.
    #[test]
    fn a_closed_connection_gives_up_its_turns() {
        let mut turns = Turns::default();
        for n in 0..3 {
            turns.push(list(1, n));
        }
        turns.push(offer(2, 7));
        assert_eq!(turns.take().as_ref().map(id), Some((1, 0)));
        turns.forget(conn(1));
        assert_eq!(turns.take().as_ref().map(id), Some((2, 7)));
        turns.finish(conn(1));
        turns.finish(conn(2));
        assert!(turns.take().is_none());
        assert!(turns.queues.is_empty() && turns.ready.is_empty() && turns.running.is_empty());
        assert!(turns.hosts.is_empty());
    }

    /// One host's 1,000 connections each queue a list, then another host's connection an
    /// offer: the offer is the second job served, not the 1,001st, and the first host's
    /// connections still take turns among themselves.
    #[test]
    fn a_host_of_many_connections_delays_another_host_by_one_job() {
        let mut turns = Turns::default();
        for slot in 0..1000 {
            turns.push(ReadJob::List {
                conn: conn_of(slot, 1),
                id: 0,
                after: None,
                limit: 1,
            });
        }
        turns.push(ReadJob::Offer {
            conn: conn_of(1000, 2),
            id: 7,
            name: PartName::new("part2.txt").unwrap(),
            hash: storage::PartHash::of(b"hello"),
        });
        let mut served = Vec::new();
        while let Some(job) = turns.take() {
            served.push(id(&job));
            turns.finish(job.conn());
        }
        assert_eq!(served[..3], [(0, 0), (1000, 7), (1, 0)]);
        let first_host: Vec<usize> = served.iter().map(|s| s.0).filter(|&s| s < 1000).collect();
        assert_eq!(first_host, (0..1000).collect::<Vec<_>>());
        assert!(turns.queues.is_empty() && turns.hosts.is_empty() && turns.ready.is_empty());
    }
}
