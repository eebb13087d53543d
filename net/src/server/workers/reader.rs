//! The store readers: [`READERS`] threads answering offers, lists, gets and stats, fed by a
//! dispatcher thread that sorts the loop's jobs into per-connection queues (`turns.rs`), so
//! hosts, then a host's connections, take turns, and neither one connection's pipelined
//! requests nor one host's many connections can hold another's.

use std::io;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use storage::PartStore;

use super::turns::Turns;
use super::{Done, Outbox, ReadJob, ToReaders, done, rejection, spawn};
use crate::message::{RequestId, Response, WireEntry};

/// Reader threads. More than one, so that a slow read (a large get, a cold disk) does not hold
/// every other connection; few, because each may hold a whole part in memory while it reads
/// and verifies it. One connection uses at most one of them at a time (`turns.rs`).
const READERS: usize = 2;

/// What the dispatcher and the readers share.
#[derive(Default)]
struct Board {
    state: Mutex<State>,
    /// Signalled when jobs arrive and when the loop stops sending them.
    arrived: Condvar,
}

#[derive(Default)]
struct State {
    turns: Turns,
    /// Whether the loop may still send jobs.
    closed: bool,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next job whose turn it is, waiting for one; `None` once the loop has stopped
    /// sending jobs and none is left that this reader may take.
    fn next(&self) -> Option<ReadJob> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.turns.take() {
                return Some(job);
            }
            // Jobs still queued belong to connections whose job is at another reader; that
            // reader serves them when it finishes.
            if state.closed {
                return None;
            }
            state = self
                .arrived
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Starts the dispatcher and the readers; they serve [`ReadJob`]s until the loop drops its
/// sender, then finish every job queued and stop.
pub(crate) fn spawn_readers(
    store: Arc<dyn PartStore>,
    jobs: Receiver<ToReaders>,
    outbox: Outbox,
) -> io::Result<Vec<JoinHandle<()>>> {
    let board = Arc::new(Board::default());
    let mut handles = Vec::with_capacity(READERS + 1);
    handles.push(spawn("store-reads", {
        let board = Arc::clone(&board);
        move || dispatch(&jobs, &board)
    })?);
    for n in 0..READERS {
        let (store, outbox, board) = (Arc::clone(&store), outbox.clone(), Arc::clone(&board));
        handles.push(spawn(&format!("store-reader-{n}"), move || {
            serve(store.as_ref(), &board, &outbox);
        })?);
    }
    Ok(handles)
}

/// Moves jobs from the loop's channel into the per-connection queues.
fn dispatch(jobs: &Receiver<ToReaders>, board: &Board) {
    while let Ok(first) = jobs.recv() {
        let mut state = board.lock();
        for message in std::iter::once(first).chain(jobs.try_iter()) {
            match message {
                ToReaders::Job(job) => state.turns.push(job),
                ToReaders::Forget(conn) => state.turns.forget(conn),
            }
        }
        drop(state);
        board.arrived.notify_all();
    }
    board.lock().closed = true;
    board.arrived.notify_all();
}

/// Answers one job at a time, in turn. The answer is sent before the connection's next job
/// can start, so each connection's answers keep the order of its requests.
fn serve(store: &dyn PartStore, board: &Board, outbox: &Outbox) {
    while let Some(job) = board.next() {
        let conn = job.conn();
        outbox.send(answer(store, job));
        outbox.wake();
        board.lock().turns.finish(conn);
    }
}

fn answer(store: &dyn PartStore, job: ReadJob) -> Done {
    match job {
        ReadJob::Offer {
            conn,
            id,
            name,
            hash,
        } => {
            let response = match store.lookup(&name) {
                Ok(None) => Response::Want { id },
                // A part whose body is gone or known damaged is not held: the peer's bytes
                // repair it.
                Ok(Some(held)) if held.hash == hash => match store.known_damaged(&held) {
                    Ok(false) => Response::Have { id },
                    Ok(true) => Response::Want { id },
                    Err(err) => rejection(id, &err),
                },
                Ok(Some(held)) => Response::Conflict {
                    id,
                    existing: *held.hash.as_bytes(),
                },
                Err(err) => rejection(id, &err),
            };
            done(conn, id, response)
        }
        ReadJob::List {
            conn,
            id,
            after,
            limit,
        } => done(conn, id, page(store, id, after.as_deref(), limit)),
        // The store hashed the bytes as it read them; that hash is the one sent.
        ReadJob::Get { conn, id, name } => match store.get_part(&name) {
            Ok(part) => Done {
                conn,
                id,
                response: Response::Part {
                    id,
                    hash: *part.hash().as_bytes(),
                    size: part.size(),
                },
                body: part.into_bytes(),
                released: 0,
            },
            Err(err) => done(conn, id, rejection(id, &err)),
        },
        ReadJob::Stat { conn, id, name } => {
            let response = match store.lookup(&name) {
                Ok(held) => Response::Entry {
                    id,
                    entry: held.as_ref().map(WireEntry::from),
                },
                Err(err) => rejection(id, &err),
            };
            done(conn, id, response)
        }
    }
}

/// One page of a listing. It reads one entry more than it sends, so it knows whether another
/// page follows without reading further: the cost is the page's, not the store's.
fn page(store: &dyn PartStore, id: RequestId, after: Option<&str>, limit: u32) -> Response {
    // The session clamps the limit to 1..; at 0, an empty page with a `next` could not be sent.
    let limit = (limit as usize).max(1);
    match store.list_page(after, limit + 1) {
        Ok(mut parts) => {
            let more = parts.len() > limit;
            parts.truncate(limit);
            let next = parts
                .last()
                .filter(|_| more)
                .map(|part| part.name.as_str().to_owned());
            Response::Page {
                id,
                parts: parts.iter().map(WireEntry::from).collect(),
                next,
            }
        }
        Err(err) => rejection(id, &err),
    }
}
