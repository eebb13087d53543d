//! The acknowledging thread, there only when the caller gave the server a [`BeforeAck`]: it
//! takes each commit's answers from the writer, runs the hook on the parts newly stored, and
//! only then hands the answers to the loop. The writer goes on committing meanwhile, and the
//! loop never waits on the hook's disk.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use storage::VerifiedPart;

use super::{Done, Outbox};
use crate::message::{ErrorCode, Response};
use crate::server::before_ack::BeforeAck;
use crate::server::body_pool::BodyPool;

/// One commit's answers, in the order of its uploads, and the parts it newly stored, each with
/// the position of its answer.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub(crate) answers: Vec<Done>,
    pub(crate) stored: Vec<(usize, VerifiedPart)>,
}

/// Where the writer's answers go: straight to the loop, or through the acknowledging thread.
pub(crate) enum Acks {
    Now(Outbox),
    AfterHook(Sender<Committed>),
}

impl Committed {
    /// Gives the stored parts' buffers back for the next bodies.
    fn recycle(self, bodies: &BodyPool) {
        for (_, part) in self.stored {
            bodies.give(part.into_bytes());
        }
    }
}

impl Acks {
    /// Sends a commit's answers on, giving the buffers of the parts it stored back to
    /// `bodies` once nothing needs them.
    pub(crate) fn deliver(&self, mut committed: Committed, bodies: &BodyPool) {
        match self {
            Self::Now(outbox) => {
                send_all(outbox, std::mem::take(&mut committed.answers));
                committed.recycle(bodies);
            }
            // A send fails only when the acknowledging thread died, which the loop notices.
            Self::AfterHook(acker) => drop(acker.send(committed)),
        }
    }
}

/// Runs `hook` on what each commit stored, then releases its answers, until the writer ends.
/// Commits that queued up while the hook ran are taken together, so the hook's own syncs
/// (a directory's, for an export) are shared by them.
pub(crate) fn run_acker(
    hook: Arc<dyn BeforeAck>,
    commits: Receiver<Committed>,
    outbox: Outbox,
    bodies: &BodyPool,
) {
    while let Ok(first) = commits.recv() {
        let mut group: Vec<Committed> = std::iter::once(first).chain(commits.try_iter()).collect();
        let parts: Vec<&VerifiedPart> = group
            .iter()
            .flat_map(|committed| committed.stored.iter().map(|(_, part)| part))
            .collect();
        let not_done = if parts.is_empty() {
            Vec::new()
        } else {
            hook.stored(&parts)
        };
        for committed in &mut group {
            for (index, part) in &committed.stored {
                let failed = not_done.iter().find(|failed| failed.name == *part.name());
                if let Some(failed) = failed {
                    let answer = &mut committed.answers[*index];
                    answer.response = Response::Rejected {
                        id: answer.id,
                        code: ErrorCode::ExportFailed,
                        message: format!("{} is stored, but {}", part.name(), failed.reason),
                    };
                }
            }
        }
        for mut committed in group {
            send_all(&outbox, std::mem::take(&mut committed.answers));
            committed.recycle(bodies);
        }
    }
}

fn send_all(outbox: &Outbox, answers: Vec<Done>) {
    for done in answers {
        outbox.send(done);
    }
    outbox.wake();
}
