//! The store reader: answers offers, lists, gets and stats one at a time, in arrival order.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use storage::{PartHash, PartStore};

use super::{Done, Outbox, ReadJob, done, rejection};
use crate::message::{Response, WireEntry};

/// Serves [`ReadJob`]s until the loop drops its sender.
pub(crate) fn run_reader(store: Arc<dyn PartStore>, jobs: Receiver<ReadJob>, outbox: Outbox) {
    while let Ok(job) = jobs.recv() {
        outbox.send(answer(store.as_ref(), job));
        while let Ok(job) = jobs.try_recv() {
            outbox.send(answer(store.as_ref(), job));
        }
        outbox.wake();
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
                Ok(Some(held)) if held.hash == hash => Response::Have { id },
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
        } => {
            let response = match store.list() {
                Ok(parts) => {
                    let start = after.map_or(0, |after| {
                        parts.partition_point(|part| part.name.as_str() <= after.as_str())
                    });
                    let page = &parts[start..parts.len().min(start + limit as usize)];
                    let next = (start + page.len() < parts.len())
                        .then(|| page.last().map(|part| part.name.as_str().to_owned()))
                        .flatten();
                    Response::Page {
                        id,
                        parts: page.iter().map(WireEntry::from).collect(),
                        next,
                    }
                }
                Err(err) => rejection(id, &err),
            };
            done(conn, id, response)
        }
        ReadJob::Get { conn, id, name } => match store.get(&name) {
            Ok(bytes) => Done {
                conn,
                id,
                response: Response::Part {
                    id,
                    hash: *PartHash::of(&bytes).as_bytes(),
                    size: bytes.len() as u64,
                },
                body: bytes,
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
