//! Cutting a byte stream (TCP, TLS) into messages by Content-Length (RFC 3261 §18.3).
//!
//! The driver pushes whatever bytes arrive and drains frames until [`Framer::next_frame`]
//! returns `Ok(None)` ("need more"). CRLF keep-alives between messages are reported so that
//! a server can answer a ping with a pong (RFC 5626 §3.5.1). WebSocket transports do not need
//! this: every WebSocket message is one SIP message (RFC 7118), so use
//! [`crate::parse_datagram`] on each.
//!
//! Most errors leave the stream in step, because the broken message was still delimited and
//! has been skipped. When the boundary itself is lost (no valid Content-Length, not SIP, over
//! the size limit) the framer is [broken](Framer::is_broken) and the connection must be
//! closed, after answering the error if [`crate::ParseError::disposition`] says so.

use crate::message::Message;
use crate::parser::{Limits, ParseError, ParseErrorKind, StartKind, find_head_end, parse_head};

/// One item cut from the stream.
// Frames are moved to the caller once and never stored in bulk, so boxing the message
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Message(Message),
    /// A double CRLF keep-alive; a server answers with a single CRLF.
    Ping,
    /// A single CRLF, the answer to a ping.
    Pong,
}

/// A stream decoder. See the module documentation.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    limits: Limits,
    /// How far the search for the end of the headers got, so that trickling bytes do not
    /// cause rescans from the start.
    scanned: usize,
    broken: Option<ParseError>,
}

impl Framer {
    pub fn new(limits: Limits) -> Self {
        Self { buf: Vec::new(), limits, scanned: 0, broken: None }
    }

    /// Appends received bytes. Ignored once the framer is broken.
    pub fn push(&mut self, data: &[u8]) {
        if self.broken.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether message boundaries were lost; the connection should be closed.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        if let Some(frame) = self.keepalive() {
            return Ok(frame);
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some(head_end) = find_head_end(&self.buf, self.scanned.saturating_sub(3)) else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.limits.max_message_size {
                let limit = self.limits.max_message_size;
                return Err(self.fatal(ParseErrorKind::TooLarge { limit }, None));
            }
            return Ok(None);
        };
        let head_bytes = self.buf.get(..head_end).unwrap_or_default();
        let head = match parse_head(head_bytes, &self.limits) {
            Ok(head) => head,
            Err(e) => return Err(self.fatal_error(e)),
        };
        // RFC 3261 requires Content-Length on streams; a missing one is read as zero, which
        // is what peers that omit it on bodiless messages mean.
        let body_len = match head.content_length() {
            Ok(len) => len.unwrap_or(0),
            Err(kind) => return Err(self.fatal_error(head.into_error(kind))),
        };
        let total = head_end.saturating_add(body_len);
        let limit = self.limits.max_message_size;
        if total > limit {
            let kind = if head_end > limit {
                ParseErrorKind::TooLarge { limit }
            } else {
                ParseErrorKind::BodyTooLarge { limit }
            };
            return Err(self.fatal_error(head.into_error(kind)));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let body = self.buf.get(head_end..total).unwrap_or_default().to_vec();
        self.buf.drain(..total);
        self.scanned = 0;
        head.into_message(body).map(|m| Some(Frame::Message(m)))
    }

    /// Consumes CRLF keep-alives at a message boundary.
    fn keepalive(&mut self) -> Option<Option<Frame>> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return Some(Some(Frame::Ping));
        }
        match self.buf.as_slice() {
            // Could be the first half of a ping: wait for the rest.
            [b'\r'] | [b'\r', b'\n', b'\r'] => Some(None),
            [b'\r', b'\n', ..] => {
                self.buf.drain(..2);
                Some(Some(Frame::Pong))
            }
            // Stray bare line ends are tolerated and skipped.
            [b'\n', ..] => {
                self.buf.drain(..1);
                self.keepalive()
            }
            _ => None,
        }
    }

    fn fatal(&mut self, kind: ParseErrorKind, start: Option<StartKind>) -> ParseError {
        let err = match parse_head_for_error(&self.buf, &self.limits) {
            Some(head) => head.into_error(kind),
            None => crate::parser::bare_error(kind, start.unwrap_or(StartKind::Unknown)),
        };
        self.fatal_error(err)
    }

    fn fatal_error(&mut self, err: ParseError) -> ParseError {
        self.buf = Vec::new();
        self.scanned = 0;
        self.broken = Some(err.clone());
        err
    }
}

/// Best-effort header parse of an oversized, unterminated head, so a 513 can be answered.
fn parse_head_for_error(buf: &[u8], limits: &Limits) -> Option<crate::parser::Head> {
    let cut = buf.len().min(limits.max_message_size);
    let bytes = buf.get(..cut)?;
    // Only complete lines are meaningful.
    let last_lf = bytes.iter().rposition(|&b| b == b'\n')?;
    parse_head(bytes.get(..=last_lf)?, limits).ok()
}

impl Default for Framer {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}
