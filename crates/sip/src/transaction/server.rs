//! Server transactions: the INVITE (RFC 3261 §17.2.1, RFC 6026 §8.5-8.7) and non-INVITE
//! (§17.2.2) state machines.
//!
//! The INVITE server transaction also does the UAS core's 2xx retransmission (§13.3.1.4)
//! while it waits in Accepted, because that needs the same timers and the same ACK
//! matching; the TU only hears about the ACK, or about its absence.

use std::time::{Duration, Instant};

use super::key::{AckKey, ServerKey};
use super::{Event, Output, Peer, TimerConfig, TransactionId, Transmit, later};
use crate::message::{Request, Response, StatusCode};
use crate::method::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerState {
    /// Non-INVITE received, no response yet.
    Trying,
    Proceeding,
    /// A non-2xx final was sent; waiting for the ACK (INVITE) or absorbing retransmissions.
    Completed,
    /// INVITE only: the ACK for the non-2xx arrived (Timer I).
    Confirmed,
    /// INVITE only: a 2xx was sent (Timer L).
    Accepted,
    Terminated,
}

/// Why the TU's response was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespondError {
    #[error("no such server transaction")]
    UnknownTransaction,
    /// E.g. a provisional after the final, or a second non-2xx final.
    #[error("the transaction cannot send this response in its current state")]
    InvalidState,
}

#[derive(Debug)]
pub(crate) struct ServerTx {
    pub(crate) id: TransactionId,
    pub(crate) key: ServerKey,
    pub(crate) request: Request,
    pub(crate) peer: Peer,
    pub(crate) state: ServerState,
    /// The last response sent, resent on request retransmissions.
    last_response: Option<Vec<u8>>,
    /// The To tag of the responses sent, reused for the 200 to a CANCEL (§9.2).
    pub(crate) to_tag: Option<String>,
    /// When to send 100 Trying if the TU has not answered an INVITE (§17.2.1).
    trying_at: Option<Instant>,
    /// Timer G (non-2xx) or the 2xx retransmission timer.
    retransmit: Option<(Instant, Duration)>,
    /// Timer H (no ACK for a non-2xx), or a bound on a non-INVITE left unanswered.
    timeout_at: Option<Instant>,
    /// Timer I, J or L.
    linger_until: Option<Instant>,
    /// Accepted only: the dialog identifiers an ACK for the 2xx carries.
    pub(crate) ack_key: Option<AckKey>,
    pub(crate) acked: bool,
}

impl ServerTx {
    pub(crate) fn new(
        id: TransactionId,
        key: ServerKey,
        request: Request,
        peer: Peer,
        now: Instant,
        timers: &TimerConfig,
    ) -> Self {
        let invite = request.method == Method::Invite;
        Self {
            id,
            key,
            request,
            peer,
            state: if invite { ServerState::Proceeding } else { ServerState::Trying },
            last_response: None,
            to_tag: None,
            trying_at: if invite { later(now, timers.trying) } else { None },
            retransmit: None,
            // The client gives up after Timer F; an unanswered non-INVITE is pointless after.
            timeout_at: if invite { None } else { later(now, timers.t1.saturating_mul(64)) },
            linger_until: None,
            ack_key: None,
            acked: false,
        }
    }

    fn is_invite(&self) -> bool {
        self.request.method == Method::Invite
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [self.trying_at, self.retransmit.map(|(at, _)| at), self.timeout_at, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// The TU sends a response.
    pub(crate) fn respond(
        &mut self,
        now: Instant,
        response: &Response,
        timers: &TimerConfig,
        out: &mut Output,
    ) -> Result<(), RespondError> {
        let status = response.status;
        let reliable = self.peer.is_reliable();
        match self.state {
            ServerState::Trying | ServerState::Proceeding => {}
            // Retransmissions of the 2xx by the TU pass through (RFC 6026 §8.5).
            ServerState::Accepted if status.is_success() => {}
            _ => return Err(RespondError::InvalidState),
        }
        if let Ok(to) = response.headers.to()
            && let Some(tag) = to.tag()
        {
            self.to_tag = Some(tag.to_owned());
        }
        let bytes = response.to_bytes();
        self.send(out, bytes.clone());
        self.last_response = Some(bytes);
        self.trying_at = None;
        if status.is_provisional() {
            self.state = ServerState::Proceeding;
            return Ok(());
        }
        self.timeout_at = None;
        if !self.is_invite() {
            self.state = ServerState::Completed;
            self.linger_until = if reliable { Some(now) } else { later(now, timers.t1.saturating_mul(64)) };
        } else if status.is_success() {
            if self.state != ServerState::Accepted {
                self.state = ServerState::Accepted;
                self.linger_until = later(now, timers.t1.saturating_mul(64));
                self.ack_key = AckKey::from_request(&self.request);
                if !reliable {
                    self.retransmit = later(now, timers.t1).map(|at| (at, timers.t1));
                }
            }
        } else {
            self.state = ServerState::Completed;
            if !reliable {
                self.retransmit = later(now, timers.t1).map(|at| (at, timers.t1));
            }
            self.timeout_at = later(now, timers.t1.saturating_mul(64));
        }
        Ok(())
    }

    /// A retransmission of the request that created the transaction.
    pub(crate) fn on_retransmission(&mut self, out: &mut Output) {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => match self.last_response.clone() {
                Some(bytes) => self.send(out, bytes),
                // No provisional yet: answer the INVITE retransmission with 100 now.
                None if self.is_invite() => self.send_trying(out),
                None => {}
            },
            // Trying absorbs; Accepted absorbs (RFC 6026 §8.7); Confirmed absorbs ACKs.
            _ => {}
        }
    }

    /// The ACK for a non-2xx final response (matched by transaction key).
    pub(crate) fn on_ack(&mut self, now: Instant, timers: &TimerConfig) {
        if self.state == ServerState::Completed {
            self.state = ServerState::Confirmed;
            self.retransmit = None;
            self.timeout_at = None;
            self.linger_until = if self.peer.is_reliable() { Some(now) } else { later(now, timers.t4) };
        }
    }

    /// The ACK for our 2xx (matched by dialog identifiers): stop retransmitting.
    pub(crate) fn on_2xx_ack(&mut self) {
        self.acked = true;
        self.retransmit = None;
    }

    pub(crate) fn on_timer(&mut self, now: Instant, timers: &TimerConfig, out: &mut Output) {
        if self.linger_until.is_some_and(|t| t <= now) {
            if self.state == ServerState::Accepted && !self.acked {
                out.events.push_back(Event::AckTimeout { transaction: self.id });
            }
            self.state = ServerState::Terminated;
            return;
        }
        if self.timeout_at.is_some_and(|t| t <= now) {
            // Timer H (no ACK for our non-2xx), or the TU never answered a non-INVITE.
            self.state = ServerState::Terminated;
            out.events.push_back(Event::Timeout { transaction: self.id });
            return;
        }
        if self.trying_at.is_some_and(|t| t <= now) {
            self.trying_at = None;
            if self.last_response.is_none() {
                self.send_trying(out);
            }
        }
        if let Some((at, interval)) = self.retransmit
            && at <= now
        {
            if let Some(bytes) = self.last_response.clone() {
                self.send(out, bytes);
            }
            // Timer G and the 2xx retransmission both double up to T2.
            let next = interval.saturating_mul(2).min(timers.t2);
            self.retransmit = later(now, next).map(|at| (at, next));
        }
    }

    pub(crate) fn on_transport_error(&mut self, out: &mut Output) {
        self.state = ServerState::Terminated;
        out.events.push_back(Event::TransportError { transaction: self.id });
    }

    fn send_trying(&mut self, out: &mut Output) {
        let trying = Response::for_request(&self.request, StatusCode::TRYING).to_bytes();
        self.send(out, trying.clone());
        self.last_response = Some(trying);
    }

    fn send(&self, out: &mut Output, payload: Vec<u8>) {
        out.transmits.push_back(Transmit { peer: self.peer.clone(), payload, transaction: Some(self.id) });
    }
}
