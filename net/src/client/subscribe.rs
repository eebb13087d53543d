//! Following what a server newly stores (PROTOCOL.md §8.4): one `Subscribe`, then the news
//! as it comes, read one item at a time.

use storage::{Cursor, PartInfo};

use super::{Client, ClientError, unexpected};
use crate::message::{Request, RequestId, Response};

/// What a subscription brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum News {
    /// The server stored this plain part or file; the cursor is now at it.
    Stored { cursor: Cursor, info: PartInfo },
    /// The server could not resume from the cursor given (or this client fell too far
    /// behind): what it holds up to `cursor` must be caught up with by listing, and news
    /// follows `cursor`.
    CatchUp { cursor: Cursor },
    /// Nothing new; the server is there, at `cursor`.
    Quiet { cursor: Cursor },
}

/// A connection that follows a server's store.
pub struct Subscription {
    client: Client,
    id: RequestId,
    epoch: u64,
}

impl Client {
    /// Subscribes to what the server newly stores, from `cursor` (the default cursor for
    /// none). The first news says whether the server resumed from it: anything but
    /// [`News::CatchUp`] first means nothing after the cursor was missed.
    ///
    /// # Errors
    /// When the connection fails or the server refuses.
    pub fn subscribe(mut self, cursor: Cursor) -> Result<(Subscription, News), ClientError> {
        let id = self.next_id();
        self.send(&Request::Subscribe {
            id,
            epoch: cursor.epoch,
            after: cursor.seq,
        })?;
        let mut subscription = Subscription {
            client: self,
            id,
            epoch: cursor.epoch,
        };
        let first = match subscription.client.receive()? {
            Response::Subscribed {
                id: answered,
                epoch,
                seq,
                resumed,
            } if answered == id => {
                subscription.epoch = epoch;
                let cursor = Cursor { epoch, seq };
                if resumed {
                    News::Quiet { cursor }
                } else {
                    News::CatchUp { cursor }
                }
            }
            Response::Rejected { code, message, .. } => {
                return Err(ClientError::Refused { code, message });
            }
            other => return Err(unexpected(&other)),
        };
        Ok((subscription, first))
    }
}

impl Subscription {
    /// The next news if it has already arrived whole, without waiting for the peer: to take
    /// a burst of announcements together.
    ///
    /// # Errors
    /// As [`Subscription::next_news`].
    pub fn ready_news(&mut self) -> Result<Option<News>, ClientError> {
        if self.client.has_whole_frame() {
            self.next_news().map(Some)
        } else {
            Ok(None)
        }
    }

    /// A handle to the connection's socket: shutting it down ends a [`Subscription::next_news`]
    /// waiting on another thread.
    ///
    /// # Errors
    /// When the socket cannot be duplicated.
    pub fn socket(&self) -> std::io::Result<std::net::TcpStream> {
        self.client.reader.get_ref().tcp().try_clone()
    }

    /// Waits for the next news, at most the client's timeout: the server says something at
    /// least every 15 s, so a timeout means the link or the server is gone.
    ///
    /// # Errors
    /// When the connection fails or times out, or the server sends what a subscription does
    /// not (an entry whose name breaks the rules included).
    pub fn next_news(&mut self) -> Result<News, ClientError> {
        match self.client.receive()? {
            Response::Announced { id, seq, entry } if id == self.id => {
                let cursor = Cursor {
                    epoch: self.epoch,
                    seq,
                };
                let Some(entry) = entry else {
                    return Ok(News::Quiet { cursor });
                };
                let info = entry
                    .into_info()
                    .map_err(|err| ClientError::Protocol(err.to_string()))?;
                Ok(News::Stored { cursor, info })
            }
            Response::Subscribed { id, epoch, seq, .. } if id == self.id => {
                self.epoch = epoch;
                Ok(News::CatchUp {
                    cursor: Cursor { epoch, seq },
                })
            }
            other => Err(unexpected(&other)),
        }
    }
}
