//! A connection's answers waiting to be written, in order. Headers and small bodies are packed
//! together; a large body is queued as its own segment, moved in without a copy, and written
//! with the segments around it in one vectored write.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Write};

use crate::frame::{self, FrameError};
use crate::message::Response;

/// Bodies at least this long get a segment of their own instead of being copied.
const OWN_SEGMENT: usize = 64 * 1024;

/// Segments handed to one vectored write.
const SEGMENTS_PER_WRITE: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct Output {
    segments: VecDeque<Vec<u8>>,
    /// Bytes of the first segment already written.
    written: usize,
    /// Bytes queued and not yet written.
    pending: usize,
}

impl Output {
    /// Queues a response header, and the raw bytes after it.
    ///
    /// # Errors
    /// When the header does not encode within the response limit.
    pub(crate) fn queue(&mut self, response: &Response, body: Vec<u8>) -> Result<(), FrameError> {
        let packable = |segment: &Vec<u8>| segment.len() < OWN_SEGMENT;
        if !self.segments.back().is_some_and(packable) {
            self.segments.push_back(Vec::new());
        }
        let tail = self
            .segments
            .back_mut()
            .expect("a segment was just ensured");
        let before = tail.len();
        frame::encode_into::<{ frame::MAX_RESPONSE_HEADER }>(response, tail)?;
        self.pending += tail.len() - before + body.len();
        if body.len() >= OWN_SEGMENT {
            self.segments.push_back(body);
        } else {
            tail.extend_from_slice(&body);
        }
        Ok(())
    }

    /// Writes until everything is written or `stream` is full; returns whether output
    /// remains (and so write interest is needed).
    ///
    /// # Errors
    /// The stream's errors other than `WouldBlock` and `Interrupted`.
    pub(crate) fn flush(&mut self, stream: &mut impl Write) -> io::Result<bool> {
        while !self.segments.is_empty() {
            let mut slices = Vec::with_capacity(SEGMENTS_PER_WRITE);
            for (index, segment) in self.segments.iter().take(SEGMENTS_PER_WRITE).enumerate() {
                let start = if index == 0 { self.written } else { 0 };
                slices.push(IoSlice::new(&segment[start..]));
            }
            match stream.write_vectored(&slices) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(count) => self.advance(count),
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.segments = VecDeque::new();
        Ok(false)
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Bytes the queued segments take.
    pub(crate) fn held(&self) -> usize {
        self.segments.iter().map(Vec::capacity).sum()
    }

    fn advance(&mut self, mut count: usize) {
        self.pending -= count;
        while let Some(front) = self.segments.front() {
            let left = front.len() - self.written;
            if count < left {
                self.written += count;
                return;
            }
            count -= left;
            self.written = 0;
            self.segments.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `chunk` bytes a call, as a full socket does.
    struct Trickle {
        taken: Vec<u8>,
        chunk: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let count = bytes.len().min(self.chunk);
            self.taken.extend_from_slice(&bytes[..count]);
            Ok(count)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn answers_leave_in_order_whatever_the_write_sizes() {
        let answers: Vec<(Response, Vec<u8>)> = [10, OWN_SEGMENT, 3, 2 * OWN_SEGMENT + 1, 0]
            .into_iter()
            .enumerate()
            .map(|(id, len)| {
                let response = Response::Part {
                    id: id as u64,
                    hash: [id as u8; 32],
                    size: len as u64,
                };
                (response, vec![id as u8; len])
            })
            .collect();
        let mut expected = Vec::new();
        for (response, body) in &answers {
            expected.extend(frame::encode_response(response).unwrap());
            expected.extend_from_slice(body);
        }
        for chunk in [1, 7, 4096, usize::MAX] {
            let mut output = Output::default();
            for (response, body) in &answers {
                output.queue(response, body.clone()).unwrap();
            }
            assert_eq!(output.pending(), expected.len());
            let mut socket = Trickle {
                taken: Vec::new(),
                chunk,
            };
            assert!(!output.flush(&mut socket).unwrap());
            assert_eq!(socket.taken, expected, "chunk {chunk}");
            assert_eq!((output.pending(), output.held()), (0, 0));
        }
    }
}
