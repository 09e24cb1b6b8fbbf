//! Client transactions: the INVITE (RFC 3261 §17.1.1, RFC 6026 §8.4) and non-INVITE
//! (§17.1.2) state machines.

use std::time::{Duration, Instant};

use super::key::ClientKey;
use super::{Event, Output, Peer, TimerConfig, TransactionId, Transmit, later};
use crate::header::HeaderName;
use crate::message::{Request, Response};
use crate::method::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientState {
    /// INVITE sent, nothing heard yet.
    Calling,
    /// Non-INVITE sent, nothing heard yet.
    Trying,
    Proceeding,
    /// A non-2xx final response arrived; absorbing retransmissions (Timer D or K).
    Completed,
    /// A 2xx to INVITE arrived; later 2xx responses still go to the TU (Timer M).
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub(crate) struct ClientTx {
    pub(crate) id: TransactionId,
    pub(crate) key: ClientKey,
    pub(crate) request: Request,
    bytes: Vec<u8>,
    pub(crate) peer: Peer,
    pub(crate) state: ClientState,
    /// Timer A or E: when to retransmit next, and the current interval.
    retransmit: Option<(Instant, Duration)>,
    /// Timer B or F.
    timeout_at: Option<Instant>,
    /// Timer D, K or M: when the terminal wait ends.
    linger_until: Option<Instant>,
    /// The ACK for a non-2xx final response, resent on each retransmitted response.
    ack: Option<Vec<u8>>,
    /// A CANCEL requested before any provisional response: sent when one arrives.
    pub(crate) pending_cancel: Option<TransactionId>,
}

/// What a response did to the transaction, for the endpoint's CANCEL bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseEffect {
    Ignored,
    Provisional,
    Final,
}

impl ClientTx {
    pub(crate) fn start(
        id: TransactionId,
        key: ClientKey,
        request: Request,
        peer: Peer,
        now: Instant,
        timers: &TimerConfig,
        out: &mut Output,
    ) -> Self {
        let invite = request.method == Method::Invite;
        let bytes = request.to_bytes();
        out.transmits.push_back(Transmit {
            peer: peer.clone(),
            payload: bytes.clone(),
            transaction: Some(id),
        });
        let reliable = peer.is_reliable();
        let retransmit = (!reliable).then(|| (later(now, timers.t1), timers.t1));
        Self {
            id,
            key,
            request,
            bytes,
            peer,
            state: if invite { ClientState::Calling } else { ClientState::Trying },
            retransmit: retransmit.and_then(|(at, d)| at.map(|at| (at, d))),
            timeout_at: later(now, timers.t1.saturating_mul(64)),
            linger_until: None,
            ack: None,
            pending_cancel: None,
        }
    }

    fn is_invite(&self) -> bool {
        self.request.method == Method::Invite
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [self.retransmit.map(|(at, _)| at), self.timeout_at, self.linger_until].into_iter().flatten().min()
    }

    pub(crate) fn on_response(
        &mut self,
        now: Instant,
        response: Response,
        timers: &TimerConfig,
        out: &mut Output,
    ) -> ResponseEffect {
        let status = response.status;
        let event = |response| Event::Response { transaction: self.id, response };
        match (self.state, status.is_provisional(), status.is_success()) {
            (ClientState::Calling | ClientState::Trying | ClientState::Proceeding, true, _) => {
                self.state = ClientState::Proceeding;
                if self.is_invite() {
                    // Timer A stops; Timer B only matters in Calling.
                    self.retransmit = None;
                    self.timeout_at = None;
                } else if let Some((at, _)) = self.retransmit {
                    // Timer E continues at T2 in Proceeding (§17.1.2.2).
                    self.retransmit = Some((at, timers.t2));
                }
                out.events.push_back(event(response));
                ResponseEffect::Provisional
            }
            (ClientState::Calling | ClientState::Proceeding, false, true) if self.is_invite() => {
                self.state = ClientState::Accepted;
                self.retransmit = None;
                self.timeout_at = None;
                self.linger_until = later(now, timers.t1.saturating_mul(64));
                out.events.push_back(event(response));
                ResponseEffect::Final
            }
            (ClientState::Calling | ClientState::Proceeding, false, false) if self.is_invite() => {
                self.state = ClientState::Completed;
                self.retransmit = None;
                self.timeout_at = None;
                let ack = self.build_ack(&response).to_bytes();
                self.send(out, ack.clone());
                self.ack = Some(ack);
                self.linger_until =
                    if self.peer.is_reliable() { Some(now) } else { later(now, timers.timer_d()) };
                out.events.push_back(event(response));
                ResponseEffect::Final
            }
            (ClientState::Trying | ClientState::Proceeding, false, _) => {
                self.state = ClientState::Completed;
                self.retransmit = None;
                self.timeout_at = None;
                self.linger_until = if self.peer.is_reliable() { Some(now) } else { later(now, timers.t4) };
                out.events.push_back(event(response));
                ResponseEffect::Final
            }
            // A retransmitted 2xx, or a 2xx from another fork: the TU must ACK it (RFC 6026).
            (ClientState::Accepted, false, true) => {
                out.events.push_back(event(response));
                ResponseEffect::Ignored
            }
            // A retransmitted non-2xx final: the ACK was lost.
            (ClientState::Completed, false, false) if self.is_invite() => {
                if let Some(ack) = self.ack.clone() {
                    self.send(out, ack);
                }
                ResponseEffect::Ignored
            }
            _ => ResponseEffect::Ignored,
        }
    }

    pub(crate) fn on_timer(&mut self, now: Instant, timers: &TimerConfig, out: &mut Output) {
        if self.linger_until.is_some_and(|t| t <= now) {
            self.state = ClientState::Terminated;
            return;
        }
        if self.timeout_at.is_some_and(|t| t <= now) {
            // Timer B or F: the peer never answered.
            self.state = ClientState::Terminated;
            out.events.push_back(Event::Timeout { transaction: self.id });
            return;
        }
        if let Some((at, interval)) = self.retransmit
            && at <= now
        {
            self.send(out, self.bytes.clone());
            let next = if self.is_invite() {
                // Timer A doubles without a cap.
                interval.saturating_mul(2)
            } else if self.state == ClientState::Proceeding {
                timers.t2
            } else {
                interval.saturating_mul(2).min(timers.t2)
            };
            self.retransmit = later(now, next).map(|at| (at, next));
        }
    }

    pub(crate) fn on_transport_error(&mut self, out: &mut Output) {
        self.state = ClientState::Terminated;
        out.events.push_back(Event::TransportError { transaction: self.id });
    }

    fn send(&self, out: &mut Output, payload: Vec<u8>) {
        out.transmits.push_back(Transmit { peer: self.peer.clone(), payload, transaction: Some(self.id) });
    }

    /// The ACK for a non-2xx final response (§17.1.1.3).
    fn build_ack(&self, response: &Response) -> Request {
        let mut ack = Request::new(Method::Ack, self.request.uri.clone());
        let request_headers = &self.request.headers;
        if let Some(via) = request_headers.get(&HeaderName::Via) {
            // Only the top Via value, which may share a line with others.
            let top = crate::scan::split_commas(via).and_then(|v| v.into_iter().next()).unwrap_or(via);
            ack.headers.push(HeaderName::Via, top);
        }
        for route in request_headers.get_all(&HeaderName::Route) {
            ack.headers.push(HeaderName::Route, route);
        }
        ack.headers.push(HeaderName::MaxForwards, "70");
        copy(request_headers, &mut ack, &HeaderName::From);
        match response.headers.get(&HeaderName::To) {
            Some(to) => ack.headers.push(HeaderName::To, to),
            None => copy(request_headers, &mut ack, &HeaderName::To),
        }
        copy(request_headers, &mut ack, &HeaderName::CallId);
        if let Ok(cseq) = request_headers.cseq() {
            ack.headers.push(HeaderName::CSeq, format!("{} ACK", cseq.seq));
        }
        ack
    }
}

/// Builds a CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, Call-ID, From, To and
/// CSeq number, the top Via only, and the same Route headers.
pub(crate) fn build_cancel(invite: &Request) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    let headers = &invite.headers;
    if let Some(via) = headers.get(&HeaderName::Via) {
        let top = crate::scan::split_commas(via).and_then(|v| v.into_iter().next()).unwrap_or(via);
        cancel.headers.push(HeaderName::Via, top);
    }
    for route in headers.get_all(&HeaderName::Route) {
        cancel.headers.push(HeaderName::Route, route);
    }
    cancel.headers.push(HeaderName::MaxForwards, "70");
    copy(headers, &mut cancel, &HeaderName::From);
    copy(headers, &mut cancel, &HeaderName::To);
    copy(headers, &mut cancel, &HeaderName::CallId);
    if let Ok(cseq) = headers.cseq() {
        cancel.headers.push(HeaderName::CSeq, format!("{} CANCEL", cseq.seq));
    }
    cancel
}

fn copy(from: &crate::header::Headers, to: &mut Request, name: &HeaderName) {
    if let Some(v) = from.get(name) {
        to.headers.push(name.clone(), v);
    }
}
