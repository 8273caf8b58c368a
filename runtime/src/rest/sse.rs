//! Server streams over REST, as Server-Sent Events (the WHATWG HTML `text/event-stream`
//! format): the same `Service` method a gRPC server stream calls, read by a browser's
//! `EventSource`, `curl -N`, or the generated client.
//!
//! On the wire each item is one event whose `data:` is the item's JSON and whose `id:` is
//! its resume id (when the contract declares `resume:`). Two event types close a stream:
//! `end` (the handler's stream finished; nothing more will come) and `problem` (its `data:`
//! an RFC 9457 problem: a declared error, the deadline, a stalled reader), so a client can
//! tell a finished stream from a dropped connection, which it may resume with
//! `Last-Event-ID`.
//!
//! The server never buffers without bound: the handler's stream is polled by a task that
//! hands events to the response through a bounded queue ([`ServerConfig::stream_buffer`]
//! events). A client that reads nothing while the queue stays full for
//! [`ServerConfig::stream_stall`] is cut off: the handler's stream is dropped (releasing
//! what it holds) and, after the queued events, a `problem` event says why.
//!
//! [`ServerConfig::stream_buffer`]: crate::router::ServerConfig::stream_buffer
//! [`ServerConfig::stream_stall`]: crate::router::ServerConfig::stream_stall

use crate::contract::OperationInfo;
use crate::{BoxStream, HandlerError, OperationError, Problem};
use axum::response::sse::Event;
use futures_util::StreamExt;
use serde::Serialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The event type that ends a stream normally.
pub const END_EVENT: &str = "end";
/// The event type that ends a stream with a problem.
pub const PROBLEM_EVENT: &str = "problem";
/// Longest event a client accepts (its `data:` lines together); a longer one ends the stream
/// with an error rather than growing without bound.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// `problem` as an event.
pub(crate) fn problem_event(problem: &Problem) -> Event {
    Event::default()
        .event(PROBLEM_EVENT)
        .data(String::from_utf8_lossy(&problem.to_json()))
}

/// An id fit for an `id:` line: one line, no NUL (which the format ignores ids with).
fn usable_id(id: String) -> Option<String> {
    (!id.contains(['\n', '\r', '\0'])).then_some(id)
}

/// The events of `stream`, produced by a task of their own into a queue of `buffer`; see the
/// module docs. `deadline` ends the stream with a 504 problem; `hold` (the operation's
/// concurrency slot) is kept until the stream ends.
#[allow(clippy::too_many_arguments)]
pub(crate) fn events<O, E, G>(
    op: &'static OperationInfo,
    stream: BoxStream<Result<O, HandlerError<E>>>,
    event_id: Option<fn(&O) -> String>,
    deadline: Option<Instant>,
    buffer: usize,
    stall: Duration,
    problem_of: fn(&'static OperationInfo, HandlerError<E>) -> Problem,
    hold: G,
    span: tracing::Span,
) -> impl futures_core::Stream<Item = Result<Event, Infallible>> + Send + 'static
where
    O: Serialize + Send + 'static,
    E: OperationError + Send + 'static,
    G: Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Event>(buffer.max(1));
    let (last_tx, last_rx) = oneshot::channel::<Event>();
    let produce = async move {
        let _hold = hold;
        let mut stream = stream;
        // Each turn sends one event or ends: bounded by the handler's stream, the deadline
        // and the stall limit.
        let ending = loop {
            // Waiting for the next item ends when the client leaves (the body, and with it
            // the receiver, is dropped), so a quiet stream does not hold its slot for ever.
            let waited = tokio::select! {
                biased;
                _ = tx.closed() => return,
                next = async {
                    match deadline {
                        Some(at) => tokio::time::timeout_at(at, stream.next()).await.ok(),
                        None => Some(stream.next().await),
                    }
                } => next,
            };
            let Some(next) = waited else {
                break Some(problem_event(&problem_of(
                    op,
                    HandlerError::DeadlineExceeded,
                )));
            };
            let event = match next {
                // Not empty: the format drops an event without data.
                None => break Some(Event::default().event(END_EVENT).data("{}")),
                Some(Err(e)) => break Some(problem_event(&problem_of(op, e))),
                Some(Ok(item)) => match serde_json::to_string(&item) {
                    Ok(json) => {
                        let event = Event::default().data(json);
                        match event_id.map(|f| f(&item)) {
                            None => event,
                            Some(id) => match usable_id(id) {
                                Some(id) => event.id(id),
                                // Sent without its id, a resume would repeat it: end instead.
                                None => {
                                    break Some(problem_event(&problem_of(
                                        op,
                                        HandlerError::Internal(
                                            "a stream item's id has a line break or NUL, which an event id cannot carry".into(),
                                        ),
                                    )))
                                }
                            },
                        }
                    }
                    Err(e) => {
                        break Some(problem_event(&problem_of(
                            op,
                            HandlerError::Internal(format!("cannot encode a stream item: {e}")),
                        )))
                    }
                },
            };
            match tx.send_timeout(event, stall).await {
                Ok(()) => {}
                Err(mpsc::error::SendTimeoutError::Closed(_)) => return, // the client left
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    tracing::warn!(
                        operation = op.name,
                        stalled_ms = stall.as_millis() as u64,
                        queued = buffer,
                        "the client stopped reading a stream: cut off"
                    );
                    break Some(problem_event(&Problem::new(
                        503,
                        "Service Unavailable",
                        format!(
                            "the client read nothing for {} ms while {buffer} events waited; the stream was ended to protect the server. Reconnect to continue (with Last-Event-ID where the stream has ids)",
                            stall.as_millis()
                        ),
                    )));
                }
            }
        };
        // Stop producing before the client takes the last event: the handler's stream is
        // dropped here, whatever it holds released.
        drop(stream);
        drop(tx);
        if let Some(event) = ending {
            let _ = last_tx.send(event);
        }
    };
    tokio::spawn(tracing::Instrument::instrument(produce, span));
    futures_util::stream::unfold((rx, Some(last_rx)), |(mut rx, last)| async move {
        if let Some(event) = rx.recv().await {
            return Some((Ok(event), (rx, last)));
        }
        let event = last?.await.ok()?;
        Some((Ok(event), (rx, None)))
    })
}

/// One event as a client reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadEvent {
    /// The event type (`message` when none was given).
    pub event: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
    /// The last `id:` seen so far on the stream, as the format carries it forward.
    pub id: Option<String>,
}

/// The `text/event-stream` parser of the WHATWG HTML standard ("Interpreting an event
/// stream"): lines end in CRLF, LF or CR (also split across chunks), `:` starts a comment,
/// a blank line dispatches. Fed bytes as they arrive; bounded by [`MAX_EVENT_BYTES`].
#[derive(Debug, Default)]
pub struct EventParser {
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting this one belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
}

/// The stream sent an event longer than [`MAX_EVENT_BYTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTooLarge;

impl EventParser {
    /// Parses `chunk`, returning the events it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<ReadEvent>, EventTooLarge> {
        let mut out = Vec::new();
        for &b in chunk {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line) {
                        out.push(event);
                    }
                }
                _ => self.line.push(b),
            }
            if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
                return Err(EventTooLarge);
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<ReadEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            return Some(ReadEvent {
                event: if event.is_empty() {
                    "message".into()
                } else {
                    event
                },
                data,
                id: self.last_id.clone(),
            });
        }
        if line[0] == b':' {
            return None; // a comment (keep-alive)
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            _ => {} // `retry` and unknown fields: ignored, as the standard says
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<ReadEvent> {
        let mut p = EventParser::default();
        chunks.iter().flat_map(|c| p.push(c).unwrap()).collect()
    }

    #[test]
    fn events_split_anywhere_and_any_line_ending_parse_alike() {
        let text = b"id: 1\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: end\ndata:\r\n\r\n";
        let whole = all(&[text]);
        assert_eq!(
            whole,
            [
                ReadEvent {
                    event: "message".into(),
                    data: "{\"a\":1}".into(),
                    id: Some("1".into())
                },
                ReadEvent {
                    event: "end".into(),
                    data: String::new(),
                    id: Some("1".into())
                },
            ]
        );
        // Byte by byte, and with CR line endings split from their LF.
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
        let cr = b"data: x\r\r";
        assert_eq!(all(&[cr])[0].data, "x");
        assert_eq!(all(&[b"data: x\r", b"\n\r", b"\n"])[0].data, "x");
        // Several data lines join with a newline.
        assert_eq!(all(&[b"data: a\ndata: b\n\n"])[0].data, "a\nb");
    }

    #[test]
    fn an_endless_event_is_refused_not_buffered() {
        let mut p = EventParser::default();
        let line = vec![b'x'; 1024 * 1024];
        let mut refused = false;
        for _ in 0..10 {
            p.push(b"data: ").unwrap();
            if p.push(&line).is_err() {
                refused = true;
                break;
            }
            p.push(b"\n").unwrap();
        }
        assert!(refused);
    }

    #[test]
    fn ids_with_line_breaks_are_not_sent() {
        assert_eq!(usable_id("7".into()), Some("7".into()));
        assert_eq!(usable_id("a\nb".into()), None);
        assert_eq!(usable_id("a\rb".into()), None);
    }
}
