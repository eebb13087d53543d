//! Turns at the store readers: jobs wait in one queue per connection, and the connections with
//! a job waiting take turns, one job each. A connection that pipelines hundreds of lists or
//! gets therefore delays another connection's offer by one job of its own, not by all of them.
//!
//! A connection has at most one job at a reader at a time, so its answers leave in the order
//! its requests came, as they did with a single reader, and one connection can never occupy
//! more than one reader thread.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{ConnId, ReadJob};

/// The read jobs waiting, by connection, and whose turn is next.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    queues: HashMap<ConnId, VecDeque<ReadJob>>,
    /// Connections with a job waiting and none at a reader, in the order of their turns.
    ready: VecDeque<ConnId>,
    /// Connections with a job at a reader.
    running: HashSet<ConnId>,
}

impl Turns {
    /// Queues `job` behind its connection's earlier jobs.
    pub(crate) fn push(&mut self, job: ReadJob) {
        let conn = job.conn();
        let queue = self.queues.entry(conn).or_default();
        if queue.is_empty() && !self.running.contains(&conn) {
            self.ready.push_back(conn);
        }
        queue.push_back(job);
    }

    /// The oldest job of the connection whose turn it is, which is now at a reader until
    /// [`Turns::finish`]; `None` when no connection without a job at a reader has one waiting.
    pub(crate) fn take(&mut self) -> Option<ReadJob> {
        let conn = self.ready.pop_front()?;
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
        if self.queues.remove(&conn).is_some() {
            self.ready.retain(|waiting| *waiting != conn);
        }
    }

    /// `conn`'s job at a reader is answered: its next job, if it has one, waits for a turn
    /// behind every connection already waiting.
    pub(crate) fn finish(&mut self, conn: ConnId) {
        self.running.remove(&conn);
        if self
            .queues
            .get(&conn)
            .is_some_and(|queue| !queue.is_empty())
        {
            self.ready.push_back(conn);
        } else {
            self.queues.remove(&conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use storage::PartName;

    use super::*;

    fn conn(slot: usize) -> ConnId {
        ConnId { slot, serial: 1 }
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
    }
}
