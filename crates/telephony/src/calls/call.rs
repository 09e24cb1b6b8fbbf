//! One call's actor: the caller's leg (we are its UAS), the agent legs we ring (we are their
//! UAC), the queue wait, the media bridge, and the CDR written when it ends — however it ends.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use domain::{CallId, TenantId, UserId};
use media::{Codec, CodecKind, Direction, SessionDescription};
use serde_json::{Value, json};
use sip::dialog::{Dialog, RequestParts};
use sip::transaction::{ConnectionId, Peer, TransactionId};
use sip::{HeaderName, Host, Method, NameAddr, Request, Response, SipUri, StatusCode, Transport, Uri, Via};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{CallInput, Calls, Control, Inbox, LiveCall, TransferTarget};
use crate::core::{ClientEvent, ClientEventKind};
use crate::registrar::AgentAuth;

const SUPPORTED_CODECS: [CodecKind; 2] = [CodecKind::Pcmu, CodecKind::Pcma];
const DTMF_PAYLOAD_TYPE: u8 = 101;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallerState {
    /// No final response sent yet.
    Early,
    Answered,
    Gone,
}

struct CallerLeg {
    invite_tx: TransactionId,
    invite: Request,
    peer: Peer,
    dialog: Dialog,
    media: media::Leg,
    codec: Codec,
    state: CallerState,
    /// Our SDP's o= session id and version (bumped on every new answer).
    sdp_session: u64,
    sdp_version: u64,
    sent_ringing: bool,
    /// A browser caller (WebRTC over WS/WSS): our SDP answer, reused for re-offers.
    webrtc_answer: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AgentState {
    Ringing {
        deadline: Instant,
    },
    Up,
    /// We cancelled it; waiting for the 487 (or a racing 2xx we must ACK and BYE).
    Cancelling,
}

/// The leg we place: to an agent's phone, or through a trunk to an external number.
struct AgentLeg {
    /// `None` for a leg to an external number.
    agent: Option<UserId>,
    /// The agent's extension, or the external number.
    extension: String,
    /// Set for a leg through a trunk.
    trunk: Option<TrunkLeg>,
    peer: Peer,
    invite: Request,
    transaction: TransactionId,
    local_contact: NameAddr,
    local: SocketAddr,
    dialog: Option<Dialog>,
    /// Opened with the INVITE for an RTP phone; for a browser (WebRTC over WS/WSS) only when
    /// its offer arrives in the 2xx.
    media: Option<media::Leg>,
    state: AgentState,
    codec: Option<Codec>,
    on_hold: bool,
    /// A browser leg: the INVITE carried no offer (delayed offer, RFC 3261 §13.2.1) and this
    /// is the answer we sent in the ACK, reused for its hold/resume re-offers.
    webrtc_answer: Option<String>,
}

/// A leg through a trunk: where it goes, and whether the carrier's challenge was answered.
struct TrunkLeg {
    dial: crate::trunks::Dial,
    authorized: bool,
}

/// The answered leg one call gives another when an attended transfer by REFER with Replaces
/// joins them.
pub(crate) struct HandedLeg {
    leg: AgentLeg,
}

impl std::fmt::Debug for HandedLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandedLeg").field("extension", &self.leg.extension).finish_non_exhaustive()
    }
}

/// An agent INVITE we cancelled, until its final answer arrives.
struct CancelledInvite {
    transaction: TransactionId,
    /// The agent stays reserved until then: the phone may have answered before our CANCEL
    /// reached it, and must not be offered another call while that 2xx is in flight.
    agent: Option<UserId>,
    invite: Request,
    peer: Peer,
    local: SocketAddr,
    local_contact: NameAddr,
}

struct QueueWait {
    queue: db::queues::QueueRow,
    deadline: Instant,
}

/// How a call ended, for the CDR.
struct Ending {
    cause: String,
    side: &'static str,
    /// The final answer for a caller still early (ignored once answered).
    status: StatusCode,
}

struct Call {
    calls: Arc<Calls>,
    inbox_tx: Inbox,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    client_tx: mpsc::UnboundedSender<ClientEvent>,
    client_rx: mpsc::UnboundedReceiver<ClientEvent>,
    id: CallId,
    tenant: TenantId,
    domain: String,
    from_number: String,
    caller: CallerLeg,
    agent: Option<AgentLeg>,
    /// Agent legs that ended, for the CDR.
    past_legs: Vec<Value>,
    cancelled: Vec<CancelledInvite>,
    queue: Option<QueueWait>,
    /// A DID routed straight to an agent: ring them, no queue.
    direct_agent: Option<UserId>,
    /// Agents this round of the queue already tried.
    tried: HashSet<UserId>,
    next_try: Option<Instant>,
    timeline: Vec<Value>,
    ending: Option<Ending>,
    session_timer: Option<(u32, Instant)>,
    recording: Option<std::path::PathBuf>,
    answered: bool,
    /// During a blind transfer to an extension: the transferor, who gets the call back if
    /// the destination does not answer.
    transfer_back: Option<(UserId, String)>,
    /// The agent who placed this call from their phone (the caller leg is theirs).
    originator: Option<AgentAuth>,
    /// Whether this call marked the originator busy (and frees them at the end).
    reserved_originator: bool,
    /// The media shard group of the call's legs.
    media_group: u128,
    /// The agent's other phones being rung with `agent` (every binding on this node rings;
    /// the first to answer takes the call).
    forks: Vec<AgentLeg>,
    /// During an attended transfer: the transferring agent's leg, while `agent` is the leg to
    /// the person consulted (ringing or talking to the agent; the caller hears hold music).
    consulting: Option<AgentLeg>,
    /// What the agent consulted (`extension 1002`, `number +1…`), for the CDR's transfer history.
    consult_destination: Option<String>,
    /// The caller, the agent and the consulted person hear each other (3-way).
    conference: bool,
}

/// What is known of a new call before its caller is answered.
struct Arrival<'a> {
    tenant: TenantId,
    direction: domain::events::CallDirection,
    /// The CDR's from and to.
    from: String,
    to: String,
    did: Option<&'a db::trunks::DidRow>,
    trunk_id: Option<uuid::Uuid>,
    /// The agent who placed the call from their phone.
    originator: Option<AgentAuth>,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_inbound(
    calls: Arc<Calls>,
    inbox_tx: Inbox,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    transaction: TransactionId,
    request: Request,
    peer: Peer,
    tenant: TenantId,
    did: db::trunks::DidRow,
) {
    let arrival = Arrival {
        tenant,
        direction: domain::events::CallDirection::Inbound,
        from: caller_number(&request),
        to: did.number.clone(),
        did: Some(&did),
        trunk_id: Some(did.trunk_id),
        originator: None,
    };
    let Some(mut call) = accept(calls, inbox_tx, inbox, transaction, request, peer, arrival).await else {
        return;
    };
    call.route(&did).await;
    call.run().await;
}

/// Where an agent's own call goes.
enum Dialed {
    /// Another agent's extension in the tenant.
    Agent(UserId),
    /// An external number, through a trunk.
    External(OutboundTarget),
}

/// An outbound call's trunk, number and presented caller id.
#[derive(Clone)]
struct OutboundTarget {
    trunk_id: uuid::Uuid,
    number: String,
    caller_id: String,
}

/// An INVITE from an agent's phone (already authenticated): dials another extension, or an
/// external number through the tenant's outbound trunk with the tenant's caller id.
pub(super) async fn run_outbound(
    calls: Arc<Calls>,
    inbox_tx: Inbox,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    transaction: TransactionId,
    request: Request,
    peer: Peer,
    agent: AgentAuth,
) {
    let ctx = &calls.ctx;
    let refuse = |status: StatusCode, reason: &str| {
        let mut r = Response::for_request(&request, status).with_reason(reason);
        r.set_to_tag(&super::tag());
        r
    };
    let dialed = dialled(&request);
    let decided = async {
        let mut tx = ctx.db.tenant_tx(agent.tenant).await?;
        let account = db::sip::find_by_extension(&mut tx, &dialed).await?;
        let route = match account {
            Some(_) => None,
            None => db::tenant_settings::outbound_route(&mut tx, agent.tenant).await?,
        };
        tx.commit().await?;
        Ok::<_, db::DbError>((account, route))
    }
    .await;
    let target = match decided {
        Ok((Some(account), _)) if account.user_id == agent.user.as_uuid() => {
            Err((StatusCode::FORBIDDEN, "Cannot Call Yourself"))
        }
        Ok((Some(account), _)) => Ok(Dialed::Agent(UserId(account.user_id))),
        Ok((None, _)) if !is_dialable(&dialed) => Err((StatusCode::NOT_FOUND, "No Such Extension Or Number")),
        Ok((None, None)) => Err((StatusCode::FORBIDDEN, "No Outbound Trunk")),
        Ok((None, Some(db::tenant_settings::OutboundRoute { caller_id: None, .. }))) => {
            Err((StatusCode::FORBIDDEN, "No Caller Id (Set One Or Add A DID)"))
        }
        Ok((None, Some(db::tenant_settings::OutboundRoute { trunk_id, caller_id: Some(caller_id) }))) => {
            Ok(Dialed::External(OutboundTarget { trunk_id, number: dialed.clone(), caller_id }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "routing an agent's call failed");
            Err((StatusCode::SERVICE_UNAVAILABLE, "Database Unavailable"))
        }
    };
    let target = match target {
        Ok(t) => t,
        Err((status, reason)) => {
            calls.invite_done(transaction);
            ctx.core.respond(transaction, refuse(status, reason)).await;
            return;
        }
    };
    let (from, trunk_id) = match &target {
        Dialed::External(t) => (t.caller_id.clone(), Some(t.trunk_id)),
        Dialed::Agent(_) => (agent.extension.clone(), None),
    };
    let arrival = Arrival {
        tenant: agent.tenant,
        direction: domain::events::CallDirection::Outbound,
        from,
        to: dialed.chars().take(64).collect(),
        did: None,
        trunk_id,
        originator: Some(agent),
    };
    let Some(mut call) = accept(calls, inbox_tx, inbox, transaction, request, peer, arrival).await else {
        return;
    };
    while let Ok(input) = call.inbox.try_recv() {
        call.on_input(input).await;
    }
    if call.ending.is_none() {
        match target {
            Dialed::Agent(user) => {
                call.direct_agent = Some(user);
                call.next_try = Some(Instant::now());
            }
            Dialed::External(target) => {
                if let Err(reason) = call.ring_external(&target).await {
                    call.note(
                        "callee",
                        "routing",
                        json!({ "message": "outbound call failed", "reason": reason }),
                    );
                    call.end("trunk_unavailable", "system", StatusCode::SERVICE_UNAVAILABLE);
                }
            }
        }
    }
    call.run().await;
}

/// What an agent's phone dialled: the Request-URI's user part without visual separators
/// (RFC 3966), as typed — an extension, or a number passed to the carrier unchanged.
fn dialled(request: &Request) -> String {
    let user = match &request.uri {
        Uri::Sip(u) => u.user_unescaped().and_then(|u| String::from_utf8(u).ok()).unwrap_or_default(),
        Uri::Tel(t) => t.number.clone(),
        Uri::Other(_) => String::new(),
    };
    let user = user.split(';').next().unwrap_or_default();
    user.chars().filter(|c| !"-.() ".contains(*c)).take(64).collect()
}

/// Whether an agent may dial this as an external number: digits with an optional leading
/// `+` (and `*`/`#` for carrier services), nothing that could smuggle URI syntax.
fn is_dialable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (2..=32).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// Takes the caller's INVITE: negotiates media (plain RTP, or WebRTC for a browser), checks
/// the session timer, records the call and publishes it. Answers the INVITE itself and gives
/// `None` when the call cannot be taken.
async fn accept(
    calls: Arc<Calls>,
    inbox_tx: Inbox,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    transaction: TransactionId,
    request: Request,
    peer: Peer,
    arrival: Arrival<'_>,
) -> Option<Call> {
    let ctx = &calls.ctx;
    let tenant = arrival.tenant;
    let reject = |status: StatusCode, reason: &str| {
        let mut r = Response::for_request(&request, status).with_reason(reason);
        r.set_to_tag(&super::tag());
        r
    };
    let refuse = |response: Response| {
        let calls = calls.clone();
        async move {
            calls.invite_done(transaction);
            calls.ctx.core.respond(transaction, response).await;
        }
    };
    // What the caller offers and what we take of it.
    let body = std::str::from_utf8(&request.body).ok();
    let offer = match body.map(SessionDescription::parse) {
        Some(Ok(offer)) => offer,
        _ if request.body.is_empty() => {
            refuse(reject(StatusCode::NOT_ACCEPTABLE_HERE, "SDP Offer Required")).await;
            return None;
        }
        _ => {
            refuse(reject(StatusCode::BAD_REQUEST, "Malformed SDP")).await;
            return None;
        }
    };
    // RFC 4028: an interval below our minimum gets 422 with Min-SE.
    let session_expires = session_expires(&request);
    if let Some(interval) = session_expires
        && interval < ctx.config.min_session_expires
    {
        let mut r =
            reject(StatusCode::new(422).unwrap_or(StatusCode::BAD_REQUEST), "Session Interval Too Small");
        r.headers.push(HeaderName::MinSe, ctx.config.min_session_expires.to_string());
        refuse(r).await;
        return None;
    }
    let id = CallId(uuid::Uuid::now_v7());
    let media_group = match &arrival.originator {
        Some(agent) => calls.media_group(agent.user, id),
        None => id.as_uuid().as_u128(),
    };
    let browser = matches!(peer.transport, Transport::Ws | Transport::Wss);
    let plain = media::sdp::negotiate(&offer, &SUPPORTED_CODECS);
    let (media_leg, codec, webrtc_answer) = match (plain, browser) {
        (Some(codec), _) => match ctx.media.open_leg(media_group).await {
            Ok(leg) => {
                if let Some(remote) = offer.audio().and_then(|m| m.remote_addr(&offer)) {
                    let _ = ctx.media.set_remote(leg.id, remote, codec).await;
                }
                (leg, codec, None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no media port for a new call");
                refuse(reject(StatusCode::SERVICE_UNAVAILABLE, "Media Unavailable")).await;
                return None;
            }
        },
        (None, true) => match ctx.media.open_webrtc_leg(media_group, body.unwrap_or_default()).await {
            Ok((leg, answer)) => {
                let codec = webrtc_codec(ctx, leg.id).await;
                (leg, codec, Some(answer))
            }
            Err(e) => {
                tracing::info!(error = %e, "a browser's WebRTC offer could not be answered");
                refuse(reject(StatusCode::NOT_ACCEPTABLE_HERE, "No Common Codec (PCMU, PCMA)")).await;
                return None;
            }
        },
        (None, false) => {
            refuse(reject(StatusCode::NOT_ACCEPTABLE_HERE, "No Common Codec (PCMU, PCMA)")).await;
            return None;
        }
    };
    let local_tag = super::tag();
    let local = super::local_towards(&ctx.streams, &peer).await;
    let local_contact = contact_for(local, &peer.transport);
    let Ok(dialog) = Dialog::new_uas(&request, &local_tag, local_contact) else {
        let _ = ctx.media.close_leg(media_leg.id).await;
        refuse(reject(StatusCode::BAD_REQUEST, "Missing Contact")).await;
        return None;
    };
    let Some(domain) = tenant_domain(ctx, tenant).await else {
        let _ = ctx.media.close_leg(media_leg.id).await;
        refuse(reject(StatusCode::SERVICE_UNAVAILABLE, "Database Unavailable")).await;
        return None;
    };
    let now = Utc::now();
    let created = async {
        let mut tx = ctx.db.tenant_tx(tenant).await?;
        db::calls::create_call(
            &mut tx,
            tenant,
            &db::calls::NewCall {
                id,
                direction: arrival.direction,
                from: &arrival.from,
                to: &arrival.to,
                did: arrival.did.map(|d| d.number.as_str()),
                did_id: arrival.did.map(|d| d.id),
                trunk_id: arrival.trunk_id,
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<_, db::DbError>(())
    }
    .await;
    if let Err(e) = created {
        tracing::warn!(error = %e, "could not record a new call");
        let _ = ctx.media.close_leg(media_leg.id).await;
        refuse(reject(StatusCode::SERVICE_UNAVAILABLE, "Database Unavailable")).await;
        return None;
    }
    // The agent placing a call is busy with it: queues do not ring them meanwhile. (On a
    // consultation call they are busy already, and stay so until their first call ends.)
    let reserved_originator = arrival.originator.as_ref().is_some_and(|a| calls.reserve_agent(a.user));
    calls.add_dialog(&dialog.id().call_id, &local_tag, &inbox_tx);
    calls.publish(
        LiveCall {
            id,
            tenant_id: tenant,
            from: arrival.from.clone(),
            to: arrival.to.clone(),
            state: "ringing",
            agent_id: arrival.originator.as_ref().map(|a| a.user),
            queue_id: None,
            created_at: now,
        },
        &inbox_tx,
    );
    let (client_tx, client_rx) = mpsc::unbounded_channel();
    let min_se = ctx.config.min_session_expires;
    let mut call = Call {
        calls: calls.clone(),
        inbox_tx,
        inbox,
        client_tx,
        client_rx,
        id,
        tenant,
        domain,
        from_number: arrival.from,
        caller: CallerLeg {
            invite_tx: transaction,
            invite: request,
            peer,
            dialog,
            media: media_leg,
            codec,
            state: CallerState::Early,
            sdp_session: rand::random::<u32>().into(),
            sdp_version: 1,
            sent_ringing: false,
            webrtc_answer,
        },
        agent: None,
        past_legs: Vec::new(),
        cancelled: Vec::new(),
        queue: None,
        direct_agent: None,
        tried: HashSet::new(),
        next_try: None,
        timeline: Vec::new(),
        ending: None,
        session_timer: session_expires.map(|s| (s.max(min_se), Instant::now())),
        recording: None,
        answered: false,
        transfer_back: None,
        originator: arrival.originator,
        reserved_originator,
        media_group,
        consulting: None,
        consult_destination: None,
        conference: false,
        forks: Vec::new(),
    };
    let webrtc = call.caller.webrtc_answer.is_some();
    call.note(
        "caller",
        "sip",
        json!({ "message": "INVITE received", "transport": call.caller.peer.transport.as_str(), "webrtc": webrtc }),
    );
    call.note("caller", "codec", json!({ "codec": codec_name(codec), "payload_type": codec.payload_type }));
    Some(call)
}

/// The codec a WebRTC leg settled on (it is chosen when the offer is answered): G.711 when the
/// browser offered it, else Opus.
async fn webrtc_codec(ctx: &super::CallCtx, leg: media::LegId) -> Codec {
    let name = ctx.media.stats(leg).await.ok().and_then(|s| s.codec);
    let kind = [CodecKind::Pcma, CodecKind::Opus]
        .into_iter()
        .find(|k| name.as_deref() == Some(k.rtpmap_name().as_str()))
        .unwrap_or(CodecKind::Pcmu);
    Codec::new(kind)
}

impl Call {
    /// Sends the call where its DID points.
    async fn route(&mut self, did: &db::trunks::DidRow) {
        // A CANCEL may have come while the call was being set up.
        while let Ok(input) = self.inbox.try_recv() {
            self.on_input(input).await;
        }
        if self.ending.is_some() {
            return;
        }
        match (did.destination_type.as_str(), did.destination_id) {
            ("queue", Some(queue)) => self.enter_queue(queue).await,
            ("agent", Some(agent)) => {
                self.direct_agent = Some(UserId(agent));
                self.next_try = Some(Instant::now());
            }
            _ => self.end("no_route", "system", StatusCode::TEMPORARILY_UNAVAILABLE),
        }
    }

    /// Answers the caller, plays hold music and waits for an agent of `queue`.
    async fn enter_queue(&mut self, queue_id: uuid::Uuid) {
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let loaded = async {
            let mut tx = ctx.db.tenant_tx(self.tenant).await?;
            let queue = db::queues::get_queue(&mut tx, queue_id).await?;
            tx.commit().await?;
            Ok::<_, db::DbError>(queue)
        }
        .await;
        let queue = match loaded {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(error = %e, "queue of a DID could not be loaded");
                self.end("queue_not_found", "system", StatusCode::TEMPORARILY_UNAVAILABLE);
                return;
            }
        };
        if self.caller.state == CallerState::Early {
            self.answer_caller().await;
        }
        let playback = match &queue.music_on_hold {
            Some(path) => match music_file(&ctx.config.music_dir, path).await {
                Some(file) => media::Playback::File(file),
                None => {
                    self.note("caller", "media", json!({ "message": "hold music file refused (must be inside the music directory); default tone played" }));
                    media::Playback::MusicOnHold
                }
            },
            None => media::Playback::MusicOnHold,
        };
        if let Err(e) = ctx.media.play(self.caller.media.id, playback).await {
            tracing::warn!(error = %e, "hold music failed; the caller waits in silence");
            let _ = ctx.media.play(self.caller.media.id, media::Playback::MusicOnHold).await;
        }
        let now = Utc::now();
        let entered = async {
            let mut tx = ctx.db.tenant_tx(self.tenant).await?;
            let position = db::calls::enter_queue(&mut tx, self.tenant, self.id, queue.id, now).await?;
            tx.commit().await?;
            Ok::<_, db::DbError>(position)
        }
        .await;
        if let Err(e) = entered {
            tracing::warn!(error = %e, "could not record a call entering a queue");
        }
        self.note(
            "caller",
            "queue",
            json!({ "message": "entered queue", "queue_id": queue.id, "queue": queue.name }),
        );
        let queue_id = queue.id;
        self.calls.update(self.id, |c| {
            c.state = "queued";
            c.queue_id = Some(queue_id);
        });
        let wait = std::time::Duration::from_secs(u64::try_from(queue.max_wait_secs).unwrap_or(300));
        self.queue = Some(QueueWait { queue, deadline: Instant::now() + wait });
        self.tried.clear();
        self.next_try = Some(Instant::now());
    }

    async fn run(mut self) {
        while self.ending.is_none() {
            let deadline = self.deadline();
            tokio::select! {
                input = self.inbox.recv() => match input {
                    Some(input) => self.on_input(input).await,
                    None => self.end("internal_error", "system", StatusCode::SERVER_INTERNAL_ERROR),
                },
                Some(event) = self.client_rx.recv() => self.on_client(event).await,
                () = sleep_until(deadline) => self.on_timer().await,
            }
        }
        self.finish().await;
    }

    fn deadline(&self) -> Option<Instant> {
        let ringing = match self.agent.as_ref().map(|a| a.state) {
            Some(AgentState::Ringing { deadline }) => Some(deadline),
            _ => None,
        };
        let try_next = if self.agent.is_none() { self.next_try } else { None };
        let queue = self.queue.as_ref().filter(|_| !self.answered).map(|q| q.deadline);
        let session = self
            .session_timer
            .filter(|_| self.answered)
            .map(|(secs, since)| since + std::time::Duration::from_secs(u64::from(secs)));
        [ringing, try_next, queue, session].into_iter().flatten().min()
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if let Some(agent) = &self.agent
            && let AgentState::Ringing { deadline } = agent.state
            && deadline <= now
        {
            let (agent_id, leg) = (agent.agent, leg_name(agent));
            self.note(leg, "sip", json!({ "message": "ring timeout", "agent_id": agent_id }));
            self.cancel_agent("no_answer").await;
            self.after_failed_leg(agent_id, leg, 480, "ring timeout", "no_answer").await;
            return;
        }
        if let Some(q) = &self.queue
            && !self.answered
            && q.deadline <= now
        {
            self.overflow().await;
            return;
        }
        if let Some((secs, since)) = self.session_timer
            && self.answered
            && since + std::time::Duration::from_secs(u64::from(secs)) <= now
        {
            self.note("caller", "sip", json!({ "message": "session timer expired" }));
            self.end("session_timer_expired", "system", StatusCode::REQUEST_TIMEOUT);
            return;
        }
        if self.agent.is_none() && self.next_try.is_some_and(|t| t <= now) {
            self.next_try = None;
            self.try_next_agent().await;
        }
    }

    /// Max wait reached: the queue's overflow destination takes the call.
    async fn overflow(&mut self) {
        let Some(q) = self.queue.as_ref() else { return };
        let (kind, target, current) = (q.queue.overflow_type.clone(), q.queue.overflow_id, q.queue.id);
        self.note("caller", "queue", json!({ "message": "max wait reached", "overflow": kind }));
        if self.agent.is_some() {
            self.cancel_agent("overflow").await;
        }
        match (kind.as_str(), target) {
            ("queue", Some(next)) if next != current => self.enter_queue(next).await,
            ("agent", Some(agent)) => {
                self.queue = None;
                self.direct_agent = Some(UserId(agent));
                self.next_try = Some(Instant::now());
            }
            _ => self.end("queue_timeout", "system", StatusCode::TEMPORARILY_UNAVAILABLE),
        }
    }

    /// Rings the longest-idle available, registered member not tried yet in this round.
    async fn try_next_agent(&mut self) {
        let retry = self.calls.ctx.config.queue_retry;
        if let Some(agent) = self.direct_agent {
            if self.tried.contains(&agent) {
                self.end("agent_unavailable", "system", StatusCode::TEMPORARILY_UNAVAILABLE);
                return;
            }
            self.tried.insert(agent);
            if !self.calls.reserve_agent(agent) {
                self.end("agent_busy", "system", StatusCode::BUSY_HERE);
                return;
            }
            if let Err(reason) = self.ring(agent).await {
                self.calls.release_agent(agent);
                self.note(
                    "agent",
                    "routing",
                    json!({ "message": "agent not reachable", "agent_id": agent, "reason": reason }),
                );
                self.end("agent_unavailable", "system", StatusCode::TEMPORARILY_UNAVAILABLE);
            }
            return;
        }
        let Some(q) = &self.queue else { return };
        let queue_id = q.queue.id;
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let found = async {
            let mut tx = ctx.db.tenant_tx(self.tenant).await?;
            let c = db::calls::queue_candidates(&mut tx, self.tenant, queue_id, Utc::now()).await?;
            tx.commit().await?;
            Ok::<_, db::DbError>(c)
        }
        .await;
        let candidates = match found {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "queue candidates could not be read");
                self.next_try = Some(Instant::now() + retry);
                return;
            }
        };
        // Everyone available was tried: start a new round.
        if !candidates.is_empty() && candidates.iter().all(|c| self.tried.contains(&c.user_id)) {
            self.tried.clear();
        }
        for candidate in candidates {
            if self.tried.contains(&candidate.user_id) || !self.calls.reserve_agent(candidate.user_id) {
                continue;
            }
            self.tried.insert(candidate.user_id);
            match self.ring(candidate.user_id).await {
                Ok(()) => return,
                Err(reason) => {
                    self.calls.release_agent(candidate.user_id);
                    self.note(
                        "agent",
                        "routing",
                        json!({ "message": "agent not reachable", "agent_id": candidate.user_id, "reason": reason }),
                    );
                }
            }
        }
        self.next_try = Some(Instant::now() + retry);
    }

    /// Sends an INVITE to the agent's most recent binding held by this node.
    async fn ring(&mut self, agent: UserId) -> Result<(), String> {
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let now = Utc::now();
        let found = async {
            let mut tx = ctx.db.tenant_tx(self.tenant).await?;
            let bindings = db::sip::bindings(&mut tx, agent, now).await?;
            let account = db::sip::get_account(&mut tx, agent).await?;
            tx.commit().await?;
            Ok::<_, db::DbError>((bindings, account))
        }
        .await;
        let (bindings, account) = found.map_err(|e| format!("database: {e}"))?;
        let extension = account.map(|a| a.extension).ok_or("no SIP account")?;
        // Every phone of the agent held by this node rings (browser tabs, a desk phone).
        let mut seen = HashSet::new();
        let reachable: Vec<(String, Peer)> = bindings
            .iter()
            .filter(|b| b.node_id == ctx.node_id && seen.insert(b.contact.clone()))
            .filter_map(|b| binding_peer(b).map(|p| (b.contact.clone(), p)))
            .collect();
        if reachable.is_empty() {
            return Err("not registered".into());
        }
        let mut last_error = String::new();
        for (contact, peer) in reachable {
            match self.ring_binding(agent, &extension, &contact, peer).await {
                Ok(leg) if self.agent.is_none() => self.agent = Some(leg),
                Ok(leg) => self.forks.push(leg),
                Err(e) => last_error = e,
            }
        }
        if self.agent.is_none() {
            return Err(last_error);
        }
        self.calls.agent_in_group(agent, self.media_group);
        Ok(())
    }

    /// Sends an INVITE to one phone of `agent`; the leg is not placed in the call yet.
    async fn ring_binding(
        &mut self,
        agent: UserId,
        extension: &str,
        contact: &str,
        peer: Peer,
    ) -> Result<AgentLeg, String> {
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let extension = extension.to_owned();
        let target: Uri = contact.parse().map_err(|_| "unusable contact")?;
        // Browsers (SIP over WebSocket) get no offer: their own WebRTC offer comes in the 2xx
        // and our media answers it; RTP phones get an RTP offer in the caller's codec.
        let webrtc = matches!(peer.transport, Transport::Ws | Transport::Wss);
        let leg = if webrtc {
            None
        } else {
            Some(ctx.media.open_leg(self.media_group).await.map_err(|e| format!("media: {e}"))?)
        };
        let local = super::local_towards(&ctx.streams, &peer).await;
        let local_contact = contact_for(local, &peer.transport);
        let caller_codec = self.caller.codec;
        let offer = leg.as_ref().map(|leg| {
            media::sdp::offer(
                rand::random::<u32>().into(),
                1,
                leg.local,
                &rtp_offer_codecs(caller_codec.kind),
                Some(DTMF_PAYLOAD_TYPE),
                Direction::SendRecv,
            )
        });
        let mut from = NameAddr::new(Uri::Sip(
            SipUri::new(Host::Domain(self.domain.clone())).with_user(self.from_number.clone()),
        ));
        from.display_name = Some(self.from_number.clone());
        from.set_tag(&super::tag());
        let to = NameAddr::new(Uri::Sip(
            SipUri::new(Host::Domain(self.domain.clone())).with_user(extension.clone()),
        ));
        let via = via_for(local, &peer.transport);
        let mut invite = sip::dialog::new_request(RequestParts {
            method: Method::Invite,
            uri: target,
            from,
            to,
            call_id: format!("{}-{:08x}@sivo", self.id, rand::random::<u32>()),
            cseq: 1,
            via,
            contact: Some(local_contact.clone()),
            routes: Vec::new(),
        });
        let h = &mut invite.headers;
        h.push(HeaderName::Other("X-Sivo-Call-Id".into()), self.id.to_string());
        if let Some(q) = &self.queue {
            h.push(HeaderName::Other("X-Sivo-Queue".into()), q.queue.name.clone());
        }
        h.push(HeaderName::Allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE");
        h.push(HeaderName::UserAgent, format!("SIVO/{}", env!("CARGO_PKG_VERSION")));
        if let Some(offer) = offer {
            invite.headers.push(HeaderName::ContentType, "application/sdp");
            invite.body = offer.into_bytes();
        }
        let Some(transaction) = ctx.core.start(invite.clone(), peer.clone(), self.client_tx.clone()).await
        else {
            if let Some(leg) = leg {
                let _ = ctx.media.close_leg(leg.id).await;
            }
            return Err("the INVITE could not be sent".into());
        };
        if let (Ok(call_id), Some(tag)) =
            (invite.headers.call_id(), invite.headers.from().ok().and_then(|f| f.tag().map(str::to_owned)))
        {
            self.calls.add_dialog(call_id, &tag, &self.inbox_tx);
        }
        let ring_secs =
            self.queue.as_ref().map_or(30, |q| u64::try_from(q.queue.ring_timeout_secs).unwrap_or(20));
        self.note("agent", "sip", json!({ "message": "INVITE sent", "agent_id": agent, "extension": extension, "transport": peer.transport.as_str() }));
        Ok(AgentLeg {
            agent: Some(agent),
            extension,
            trunk: None,
            peer,
            invite,
            transaction,
            local_contact,
            local,
            dialog: None,
            media: leg,
            state: AgentState::Ringing {
                deadline: Instant::now() + std::time::Duration::from_secs(ring_secs),
            },
            codec: None,
            on_hold: false,
            webrtc_answer: None,
        })
    }

    /// Calls an external number through the tenant's trunk, presenting the tenant's caller id.
    async fn ring_external(&mut self, target: &OutboundTarget) -> Result<(), String> {
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let dial = ctx.trunks.dial(self.tenant, target.trunk_id).await?;
        let leg = ctx.media.open_leg(self.media_group).await.map_err(|e| format!("media: {e}"))?;
        let peer = dial.peer.clone();
        let local = super::local_towards(&ctx.streams, &peer).await;
        let local_contact = contact_for(local, &peer.transport);
        let offer = media::sdp::offer(
            rand::random::<u32>().into(),
            1,
            leg.local,
            &outbound_codecs(self.caller.codec.kind),
            Some(DTMF_PAYLOAD_TYPE),
            Direction::SendRecv,
        );
        let mut uri = SipUri::new(dial.host.clone()).with_user(target.number.clone()).with_port(dial.port);
        if peer.transport != Transport::Udp {
            uri = uri.with_param("transport", Some(peer.transport.as_str().to_ascii_lowercase()));
        }
        let local_host = match local.ip().to_canonical() {
            std::net::IpAddr::V4(v4) => Host::Ipv4(v4),
            std::net::IpAddr::V6(v6) => Host::Ipv6(v6),
        };
        let identity = Uri::Sip(SipUri::new(local_host).with_user(target.caller_id.clone()));
        let mut from = NameAddr::new(identity.clone());
        from.set_tag(&super::tag());
        let to = NameAddr::new(Uri::Sip(SipUri::new(dial.host.clone()).with_user(target.number.clone())));
        let mut invite = sip::dialog::new_request(RequestParts {
            method: Method::Invite,
            uri: Uri::Sip(uri),
            from,
            to,
            call_id: format!("{}-{:08x}@sivo", self.id, rand::random::<u32>()),
            cseq: 1,
            via: via_for(local, &peer.transport),
            contact: Some(local_contact.clone()),
            routes: Vec::new(),
        });
        let h = &mut invite.headers;
        // RFC 3325: carriers take the presented number from here when they trust us.
        h.push(HeaderName::Other("P-Asserted-Identity".into()), format!("<{identity}>"));
        h.push(HeaderName::Allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE");
        h.push(HeaderName::UserAgent, format!("SIVO/{}", env!("CARGO_PKG_VERSION")));
        h.push(HeaderName::ContentType, "application/sdp");
        invite.body = offer.into_bytes();
        let Some(transaction) = ctx.core.start(invite.clone(), peer.clone(), self.client_tx.clone()).await
        else {
            let _ = ctx.media.close_leg(leg.id).await;
            return Err("the INVITE could not be sent".into());
        };
        if let (Ok(call_id), Some(tag)) =
            (invite.headers.call_id(), invite.headers.from().ok().and_then(|f| f.tag().map(str::to_owned)))
        {
            self.calls.add_dialog(call_id, &tag, &self.inbox_tx);
        }
        self.note(
            "callee",
            "sip",
            json!({ "message": "INVITE sent", "number": target.number, "trunk_id": target.trunk_id, "caller_id": target.caller_id, "transport": peer.transport.as_str() }),
        );
        self.agent = Some(AgentLeg {
            agent: None,
            extension: target.number.clone(),
            trunk: Some(TrunkLeg { dial, authorized: false }),
            peer,
            invite,
            transaction,
            local_contact,
            local,
            dialog: None,
            media: Some(leg),
            state: AgentState::Ringing { deadline: Instant::now() + OUTBOUND_RING_TIMEOUT },
            codec: None,
            on_hold: false,
            webrtc_answer: None,
        });
        Ok(())
    }

    /// The tenant's way out to `number`.
    async fn outbound_target(&self, number: &str) -> Result<OutboundTarget, String> {
        let ctx = &self.calls.ctx;
        let mut tx = ctx.db.tenant_tx(self.tenant).await.map_err(|e| format!("database: {e}"))?;
        let route = db::tenant_settings::outbound_route(&mut tx, self.tenant)
            .await
            .map_err(|e| format!("database: {e}"))?;
        let _ = tx.commit().await;
        match route {
            Some(db::tenant_settings::OutboundRoute { trunk_id, caller_id: Some(caller_id) }) => {
                Ok(OutboundTarget { trunk_id, number: number.to_owned(), caller_id })
            }
            Some(_) => Err("no caller id for outbound calls".into()),
            None => Err("no outbound trunk".into()),
        }
    }

    /// A carrier's 183 with SDP (ringback, announcements): the caller hears it before the
    /// answer, through our 183 with SDP (RFC 3960 gateway model).
    async fn early_media(&mut self, response: &Response) {
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let Some(agent) = self.agent.as_mut() else { return };
        let Some(leg) = agent.media.as_ref().map(|m| m.id) else { return };
        let answer = std::str::from_utf8(&response.body).ok().and_then(|b| SessionDescription::parse(b).ok());
        let negotiated = answer.as_ref().and_then(|a| media::sdp::negotiate(a, &SUPPORTED_CODECS));
        let remote = answer.as_ref().and_then(|a| a.audio().and_then(|m| m.remote_addr(a)));
        let (Some(codec), Some(remote)) = (negotiated, remote) else { return };
        let _ = ctx.media.set_remote(leg, remote, codec).await;
        agent.codec = Some(codec);
        if let Err(e) = ctx.media.bridge(self.caller.media.id, leg).await {
            tracing::warn!(error = %e, "early media bridge failed");
            return;
        }
        let mut progress =
            self.caller.dialog.create_response(&self.caller.invite, StatusCode::SESSION_PROGRESS);
        progress.headers.push(HeaderName::ContentType, "application/sdp");
        progress.body = self.caller_sdp(Direction::SendRecv).into_bytes();
        ctx.core.respond(self.caller.invite_tx, progress).await;
        self.caller.sent_ringing = true;
        self.note("caller", "sip", json!({ "message": "183 Session Progress sent (early media)" }));
    }

    /// Our SDP towards the caller: the WebRTC answer for a browser, else a plain RTP answer.
    fn caller_sdp(&self, direction: Direction) -> String {
        match &self.caller.webrtc_answer {
            Some(answer) => with_direction(answer, direction),
            None => media::sdp::answer(
                self.caller.sdp_session,
                self.caller.sdp_version,
                self.caller.media.local,
                self.caller.codec,
                direction,
            ),
        }
    }

    /// A carrier's 401/407 to our INVITE: sends it again once with the trunk's credentials.
    /// `false` when there is nothing (more) to answer the challenge with.
    async fn authorize_trunk_invite(&mut self, response: &Response) -> bool {
        let core = self.calls.ctx.core.clone();
        let Some(agent) = self.agent.as_mut() else { return false };
        let Some(trunk) = agent.trunk.as_mut() else { return false };
        let (Some((user, password)), false) = (trunk.dial.credentials.clone(), trunk.authorized) else {
            return false;
        };
        let Some(challenge) = sip::auth::DigestClient::select_challenge(response) else { return false };
        trunk.authorized = true;
        let mut invite = agent.invite.clone();
        let seq = invite.headers.cseq().map(|c| c.seq).unwrap_or(1) + 1;
        invite.headers.set(HeaderName::CSeq, format!("{seq} INVITE"));
        invite.headers.set(HeaderName::Via, via_for(agent.local, &agent.peer.transport).to_string());
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let proxy = response.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED;
        sip::auth::DigestClient::new(user, password).authorize_request(
            &mut invite,
            &challenge,
            proxy,
            &cnonce,
        );
        let Some(transaction) = core.start(invite.clone(), agent.peer.clone(), self.client_tx.clone()).await
        else {
            return false;
        };
        agent.invite = invite;
        agent.transaction = transaction;
        self.note("callee", "sip", json!({ "message": format!("{} {}; INVITE sent again with credentials", response.status.as_u16(), response.reason) }));
        true
    }

    /// Responses to the agent INVITE (and to our in-dialog requests, which need nothing).
    async fn on_client(&mut self, event: ClientEvent) {
        if let Some(i) = self.cancelled.iter().position(|c| c.transaction == event.transaction) {
            self.cancelled_answer(i, event).await;
            return;
        }
        if let Some(i) = self.forks.iter().position(|f| f.transaction == event.transaction) {
            self.fork_event(i, event).await;
            return;
        }
        let Some(agent) = &self.agent else { return };
        if event.transaction != agent.transaction {
            return;
        }
        // The agent's first phone failed while another still rings: that one goes on.
        let failed = match &event.kind {
            ClientEventKind::Response(r) => {
                r.status.as_u16() >= 300 && !matches!(r.status.as_u16(), 401 | 407)
            }
            ClientEventKind::Timeout | ClientEventKind::TransportError => true,
        };
        if failed && !self.forks.is_empty() {
            let next = self.forks.remove(0);
            if let Some(leg) = self.agent.replace(next) {
                self.close_leg(leg, "failed", false).await;
            }
            return;
        }
        let (external, leg) = (agent.trunk.is_some(), leg_name(agent));
        match event.kind {
            ClientEventKind::Response(response) => {
                let status = response.status;
                if status.is_success() {
                    self.agent_answered(response).await;
                } else if matches!(status.as_u16(), 401 | 407)
                    && external
                    && self.authorize_trunk_invite(&response).await
                {
                    // Sent again with credentials; its answer comes on the new transaction.
                } else if status.as_u16() >= 300 {
                    self.agent_failed(status.as_u16(), &response.reason).await;
                } else if status != StatusCode::TRYING {
                    self.note(
                        leg,
                        "sip",
                        json!({ "message": format!("{} {}", status.as_u16(), response.reason) }),
                    );
                    if external && !response.body.is_empty() && self.caller.state == CallerState::Early {
                        self.early_media(&response).await;
                    } else if (self.direct_agent.is_some() || external)
                        && self.caller.state == CallerState::Early
                        && !self.caller.sent_ringing
                    {
                        self.caller.sent_ringing = true;
                        let ringing =
                            self.caller.dialog.create_response(&self.caller.invite, StatusCode::RINGING);
                        self.calls.ctx.core.respond(self.caller.invite_tx, ringing).await;
                    }
                }
            }
            ClientEventKind::Timeout => self.agent_failed(408, "Request Timeout").await,
            ClientEventKind::TransportError => self.agent_failed(503, "Transport Error").await,
        }
    }

    async fn agent_answered(&mut self, response: Response) {
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let Some(agent) = self.agent.as_mut() else { return };
        // A retransmitted 2xx: ACK it again.
        if let Some(dialog) = &agent.dialog {
            let seq = agent.invite.headers.cseq().map(|c| c.seq).unwrap_or(1);
            let ack = dialog.create_ack(seq, &via_for(agent.local, &agent.peer.transport));
            ctx.core.send_stateless(agent.peer.clone(), sip::Message::Request(ack)).await;
            return;
        }
        let Ok(dialog) = Dialog::new_uac(&agent.invite, &response, agent.local_contact.clone()) else {
            // A 2xx we cannot build a dialog from (no Contact, no tag): treat as failure.
            self.agent_failed(502, "Bad 2xx").await;
            return;
        };
        // This phone answered: the agent's other phones stop ringing.
        self.cancel_forks("answered_elsewhere").await;
        let Some(agent) = self.agent.as_mut() else { return };
        let seq = agent.invite.headers.cseq().map(|c| c.seq).unwrap_or(1);
        let mut ack = dialog.create_ack(seq, &via_for(agent.local, &agent.peer.transport));
        if agent.media.is_none() && self.ending.is_none() {
            // Delayed offer: the browser's offer is in this 2xx, our answer goes in the ACK.
            let offer = std::str::from_utf8(&response.body).unwrap_or_default();
            match ctx.media.open_webrtc_leg(self.media_group, offer).await {
                Ok((leg, answer)) => {
                    agent.codec = Some(webrtc_codec(ctx, leg.id).await);
                    ack.headers.push(HeaderName::ContentType, "application/sdp");
                    ack.body = answer.clone().into_bytes();
                    agent.media = Some(leg);
                    agent.webrtc_answer = Some(answer);
                }
                Err(e) => tracing::warn!(error = %e, "a browser's WebRTC offer could not be answered"),
            }
        }
        ctx.core.send_stateless(agent.peer.clone(), sip::Message::Request(ack)).await;
        agent.dialog = Some(dialog);
        if self.ending.is_some() {
            self.bye_agent().await;
            self.close_agent_leg("cancelled").await;
            return;
        }
        if agent.webrtc_answer.is_some() {
            self.agent_up().await;
            return;
        }
        let Some(agent_media) = agent.media.as_ref().map(|m| m.id) else {
            self.note("agent", "sip", json!({ "message": "2xx with an offer we could not answer" }));
            self.bye_agent().await;
            self.close_agent_leg("bad_sdp").await;
            self.next_try = Some(Instant::now());
            return;
        };
        let answer = std::str::from_utf8(&response.body).ok().and_then(|b| SessionDescription::parse(b).ok());
        let negotiated = answer.as_ref().and_then(|a| media::sdp::negotiate(a, &SUPPORTED_CODECS));
        let remote = answer.as_ref().and_then(|a| a.audio().and_then(|m| m.remote_addr(a)));
        match (negotiated, remote) {
            (Some(codec), Some(remote)) => {
                let _ = ctx.media.set_remote(agent_media, remote, codec).await;
                agent.codec = Some(codec);
            }
            _ => {
                self.note("agent", "sip", json!({ "message": "2xx without a usable SDP answer" }));
                self.bye_agent().await;
                self.close_agent_leg("bad_sdp").await;
                self.next_try = Some(Instant::now());
                return;
            }
        }
        self.agent_up().await;
    }

    /// The agent's leg is up with media: note it and connect the call.
    async fn agent_up(&mut self) {
        let Some(agent) = self.agent.as_mut() else { return };
        agent.state = AgentState::Up;
        let webrtc = agent.webrtc_answer.is_some();
        let (agent_id, codec, leg) = (agent.agent, agent.codec, leg_name(agent));
        self.note(leg, "sip", json!({ "message": "200 OK", "agent_id": agent_id, "webrtc": webrtc }));
        if let Some(codec) = codec {
            self.note(
                leg,
                "codec",
                json!({ "codec": codec_name(codec), "payload_type": codec.payload_type }),
            );
        }
        self.connect().await;
    }

    /// The agent answered: answer the caller if needed, bridge, record, tell everyone.
    async fn connect(&mut self) {
        if self.caller.state == CallerState::Early {
            self.answer_caller().await;
        }
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let Some(agent) = &self.agent else { return };
        let Some(b) = agent.media.as_ref().map(|m| m.id) else { return };
        if let Some(transferor) = self.consulting.as_ref().and_then(|t| t.media.as_ref()).map(|m| m.id) {
            // The consultation is answered: the agent and the consulted person talk while the
            // caller waits with music.
            if let Err(e) = ctx.media.bridge(transferor, b).await {
                tracing::warn!(error = %e, "consultation bridge failed");
            }
            let destination = agent.extension.clone();
            self.note(
                "agent",
                "transfer",
                json!({ "message": "consultation answered", "destination": destination }),
            );
            return;
        }
        // The agent on the call: the one rung, or the one who dialled out; none when a caller
        // was transferred to an external number.
        let agent_id = agent.agent.or(self.originator.as_ref().map(|o| o.user));
        let a = self.caller.media.id;
        if let Err(e) = ctx.media.bridge(a, b).await {
            tracing::warn!(error = %e, "bridge failed");
        }
        self.answered = true;
        if let Some((secs, _)) = self.session_timer {
            self.session_timer = Some((secs, Instant::now()));
        }
        let queue_for_setting = self.queue.as_ref().map(|q| q.queue.id);
        let wanted = async {
            let mut tx = ctx.db.tenant_tx(self.tenant).await?;
            let wanted =
                db::tenant_settings::recording_wanted(&mut tx, self.tenant, queue_for_setting).await?;
            tx.commit().await?;
            Ok::<_, db::DbError>(wanted)
        }
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "recording setting unreadable; not recording");
            false
        });
        if wanted {
            let path =
                ctx.config.recordings_dir.join(self.tenant.to_string()).join(format!("{}.wav", self.id));
            let made = match path.parent() {
                Some(dir) => tokio::fs::create_dir_all(dir).await,
                None => Ok(()),
            };
            match made {
                Ok(()) => match ctx.media.record(a, b, path.clone()).await {
                    Ok(()) => self.recording = Some(path),
                    Err(e) => tracing::warn!(error = %e, "recording could not start"),
                },
                Err(e) => tracing::warn!(error = %e, "recordings directory could not be created"),
            }
        }
        let queue_id = self.queue.as_ref().map(|q| q.queue.id);
        let now = Utc::now();
        let recorded = async {
            let mut tx = ctx.db.tenant_tx(self.tenant).await?;
            db::calls::answer_call(&mut tx, self.tenant, self.id, agent_id, now).await?;
            tx.commit().await?;
            Ok::<_, db::DbError>(())
        }
        .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record an answered call");
        }
        self.calls.update(self.id, |c| {
            c.state = "answered";
            c.agent_id = agent_id;
            c.queue_id = queue_id;
        });
    }

    /// The agent declined, was busy, or never answered in time.
    async fn agent_failed(&mut self, status: u16, reason: &str) {
        let Some(agent) = &self.agent else { return };
        let (agent_id, leg) = (agent.agent, leg_name(agent));
        let cancelling = agent.state == AgentState::Cancelling;
        self.note(leg, "sip", json!({ "message": format!("{status} {reason}"), "agent_id": agent_id }));
        let cause = match status {
            486 | 600 => "busy",
            603 => "declined",
            408 => "no_answer",
            487 => "cancelled",
            _ => "failed",
        };
        self.close_agent_leg(cause).await;
        if cancelling || self.ending.is_some() {
            return;
        }
        self.after_failed_leg(agent_id, leg, status, reason, cause).await;
    }

    /// What follows a leg that did not answer: a transfer returns to its transferor, a call
    /// to one agent or one number ends with the callee's answer, a queue tries the next agent.
    async fn after_failed_leg(
        &mut self,
        agent_id: Option<UserId>,
        leg: &'static str,
        status: u16,
        reason: &str,
        cause: &str,
    ) {
        if self.ending.is_some() {
            return;
        }
        if self.consulting.is_some() {
            let reason = format!("destination answered {status} {reason}");
            self.note(
                "agent",
                "transfer",
                json!({ "message": "consultation failed; the agent has the caller back", "reason": reason }),
            );
            let destination = self.consult_destination.clone().unwrap_or_else(|| leg.to_owned());
            let from = self.consulting.as_ref().and_then(|t| t.agent);
            let reason = format!("{reason} ({cause})");
            self.back_to_transferor().await;
            self.record_transfer(
                domain::events::TransferKind::Attended,
                &destination,
                from,
                false,
                Some(&reason),
                db::audit::Actor::system(),
            )
            .await;
            return;
        }
        if let Some((transferor, destination)) = self.transfer_back.take()
            && Some(transferor) != agent_id
        {
            // The transfer destination did not take the call: it goes back to the transferor.
            let reason = format!("destination answered {status} {reason}");
            self.note(
                "agent",
                "transfer",
                json!({ "message": "transfer failed; call returned to the transferor", "reason": reason }),
            );
            self.record_transfer(
                domain::events::TransferKind::Blind,
                &destination,
                Some(transferor),
                false,
                Some(&reason),
                db::audit::Actor::system(),
            )
            .await;
            self.direct_agent = Some(transferor);
            self.tried.clear();
            self.next_try = Some(Instant::now());
            return;
        }
        if leg == "callee" {
            // An external number's answer goes back to the agent who dialled it.
            let answer = match status {
                404 | 484 | 486 | 600 | 603 => {
                    StatusCode::new(status).unwrap_or(StatusCode::TEMPORARILY_UNAVAILABLE)
                }
                _ => StatusCode::TEMPORARILY_UNAVAILABLE,
            };
            self.end(&format!("callee_{cause}"), "callee", answer);
            return;
        }
        if self.direct_agent.is_some() {
            let answer = match status {
                486 | 600 => StatusCode::BUSY_HERE,
                603 => StatusCode::DECLINE,
                _ => StatusCode::TEMPORARILY_UNAVAILABLE,
            };
            self.end(&format!("agent_{cause}"), "agent", answer);
            return;
        }
        self.next_try = Some(Instant::now());
    }

    async fn on_input(&mut self, input: CallInput) {
        match input {
            CallInput::Request { transaction, request } => {
                let call_id = request.headers.call_id().unwrap_or_default().to_owned();
                if call_id == self.caller.dialog.id().call_id {
                    self.caller_request(transaction, request).await;
                } else if self.agent.as_ref().and_then(|a| a.invite.headers.call_id().ok())
                    == Some(call_id.as_str())
                {
                    self.agent_request(transaction, request).await;
                } else if self.consulting.as_ref().and_then(|a| a.invite.headers.call_id().ok())
                    == Some(call_id.as_str())
                {
                    self.transferor_request(transaction, request).await;
                } else {
                    let r = Response::for_request(&request, StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST);
                    self.calls.ctx.core.respond(transaction, r).await;
                }
            }
            CallInput::Ack => {
                // The caller confirmed our 2xx; nothing else waits on it.
            }
            CallInput::Cancelled => {
                if self.caller.state == CallerState::Early {
                    self.note("caller", "sip", json!({ "message": "CANCEL received" }));
                    self.end("caller_cancelled", "caller", StatusCode::REQUEST_TERMINATED);
                }
            }
            CallInput::AckTimeout => {
                self.note("caller", "sip", json!({ "message": "no ACK for our 200" }));
                self.end("ack_timeout", "system", StatusCode::REQUEST_TIMEOUT);
            }
            CallInput::Control(Control::Hangup) => {
                self.note("caller", "api", json!({ "message": "hangup requested" }));
                self.end("api_hangup", "system", StatusCode::TEMPORARILY_UNAVAILABLE);
            }
            CallInput::Control(Control::Transfer { target, by, reply }) => {
                let result = self.blind_transfer(target, by).await;
                let _ = reply.send(result);
            }
            CallInput::Control(Control::Consult { target, by, reply }) => {
                let result = self.consult(target, by).await;
                let _ = reply.send(result);
            }
            CallInput::Control(Control::CompleteTransfer { by, reply }) => {
                let result = self.complete_transfer(by).await;
                let _ = reply.send(result);
            }
            CallInput::Control(Control::CancelConsult { reply }) => {
                let result = self.cancel_consult().await;
                let _ = reply.send(result);
            }
            CallInput::HandOver { shard, reply } => {
                let _ = reply.send(self.hand_over(shard).await);
            }
            CallInput::Control(Control::Conference { by, reply }) => {
                let result = self.start_conference(by).await;
                let _ = reply.send(result);
            }
        }
    }

    async fn caller_request(&mut self, transaction: TransactionId, request: Request) {
        let core = self.calls.ctx.core.clone();
        if let Err(e) = self.caller.dialog.handle_request(&request) {
            let status = match e {
                sip::dialog::DialogError::OutOfOrder { .. } => StatusCode::SERVER_INTERNAL_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            core.respond(transaction, self.caller.dialog.create_response(&request, status)).await;
            return;
        }
        match request.method {
            Method::Bye => {
                core.respond(transaction, self.caller.dialog.create_response(&request, StatusCode::OK)).await;
                self.caller.state = CallerState::Gone;
                self.note("caller", "sip", json!({ "message": "BYE received" }));
                // In an agent's own call the caller leg is the agent.
                if self.originator.is_some() {
                    self.end("agent_hangup", "agent", StatusCode::OK);
                } else {
                    self.end("caller_hangup", "caller", StatusCode::OK);
                }
            }
            Method::Invite | Method::Update => {
                // A re-INVITE/UPDATE: a new offer (hold, codec change, session refresh).
                if let Some((secs, _)) = self.session_timer {
                    self.session_timer = Some((secs, Instant::now()));
                }
                let response = self.reoffer_caller(&request).await;
                core.respond(transaction, response).await;
            }
            Method::Info | Method::Options | Method::Notify => {
                core.respond(transaction, self.caller.dialog.create_response(&request, StatusCode::OK)).await;
            }
            _ => {
                let mut r = self.caller.dialog.create_response(&request, StatusCode::METHOD_NOT_ALLOWED);
                super::allow(&mut r);
                core.respond(transaction, r).await;
            }
        }
    }

    /// Answers a new offer from the caller on the same media port. When the caller is an
    /// agent (their own outbound call), hold plays music to the other party.
    async fn reoffer_caller(&mut self, request: &Request) -> Response {
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let mut direction = Direction::SendRecv;
        if !request.body.is_empty() {
            let Some(offer) =
                std::str::from_utf8(&request.body).ok().and_then(|b| SessionDescription::parse(b).ok())
            else {
                return self
                    .caller
                    .dialog
                    .create_response(request, StatusCode::BAD_REQUEST)
                    .with_reason("Malformed SDP");
            };
            let audio = offer.audio();
            direction = audio.map_or(Direction::SendRecv, |m| m.direction.answer_to());
            // A browser keeps its ICE and DTLS session; only the direction moves.
            if self.caller.webrtc_answer.is_none() {
                let Some(codec) = media::sdp::negotiate(&offer, &SUPPORTED_CODECS) else {
                    return self.caller.dialog.create_response(request, StatusCode::NOT_ACCEPTABLE_HERE);
                };
                if let Some(remote) = audio.and_then(|m| m.remote_addr(&offer)) {
                    let _ = ctx.media.set_remote(self.caller.media.id, remote, codec).await;
                }
                self.caller.codec = codec;
            }
            let hold = matches!(direction, Direction::RecvOnly | Direction::Inactive);
            if self.originator.is_some()
                && let Some(other) = self.agent.as_mut().filter(|a| a.state == AgentState::Up)
                && let Some(other_media) = other.media.as_ref().map(|m| m.id)
                && hold != other.on_hold
            {
                other.on_hold = hold;
                if hold {
                    let _ = ctx.media.play(other_media, media::Playback::MusicOnHold).await;
                } else {
                    let _ = ctx.media.stop_play(other_media).await;
                }
            }
            self.note("caller", "sip", json!({ "message": format!("re-{} with offer", request.method), "direction": format!("{direction:?}") }));
        }
        self.caller.sdp_version += 1;
        let mut response = self.caller.dialog.create_response(request, StatusCode::OK);
        if !request.body.is_empty() || request.method == Method::Invite {
            response.headers.push(HeaderName::ContentType, "application/sdp");
            response.body = self.caller_sdp(direction).into_bytes();
        }
        if let Some((secs, _)) = self.session_timer {
            response.headers.push(HeaderName::SessionExpires, format!("{secs};refresher=uac"));
        }
        response
    }

    async fn agent_request(&mut self, transaction: TransactionId, request: Request) {
        let core = self.calls.ctx.core.clone();
        let Some(agent) = self.agent.as_mut() else { return };
        let Some(dialog) = agent.dialog.as_mut() else {
            // Early-dialog requests from the agent (PRACK, UPDATE) are not supported.
            core.respond(
                transaction,
                Response::for_request(&request, StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST),
            )
            .await;
            return;
        };
        if let Err(e) = dialog.handle_request(&request) {
            let status = match e {
                sip::dialog::DialogError::OutOfOrder { .. } => StatusCode::SERVER_INTERNAL_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            core.respond(transaction, dialog.create_response(&request, status)).await;
            return;
        }
        match request.method {
            Method::Bye => {
                core.respond(transaction, dialog.create_response(&request, StatusCode::OK)).await;
                agent.dialog = None;
                if self.consulting.is_some() {
                    // The consulted person hung up: the agent has the caller back.
                    self.note("agent", "transfer", json!({ "message": "the consulted person hung up" }));
                    self.close_agent_leg("completed").await;
                    self.back_to_transferor().await;
                } else if agent.trunk.is_some() {
                    self.note("callee", "sip", json!({ "message": "BYE received" }));
                    self.end("callee_hangup", "callee", StatusCode::OK);
                } else {
                    self.note("agent", "sip", json!({ "message": "BYE received" }));
                    self.end("agent_hangup", "agent", StatusCode::OK);
                }
            }
            Method::Invite | Method::Update => {
                let response = self.reoffer_agent(&request).await;
                core.respond(transaction, response).await;
            }
            Method::Info | Method::Options | Method::Notify => {
                core.respond(transaction, dialog.create_response(&request, StatusCode::OK)).await;
            }
            Method::Refer => self.refer(transaction, request).await,
            _ => {
                let mut r = dialog.create_response(&request, StatusCode::METHOD_NOT_ALLOWED);
                super::allow(&mut r);
                core.respond(transaction, r).await;
            }
        }
    }

    /// The agent's phone asks for a transfer (RFC 3515): 202, then a NOTIFY with the outcome
    /// as a sipfrag. A Refer-To with Replaces (RFC 3891) is an attended transfer: the agent's
    /// other call (to the person consulted) gives up its leg, which takes the caller; otherwise
    /// a blind transfer to the extension.
    async fn refer(&mut self, transaction: TransactionId, request: Request) {
        let core = self.calls.ctx.core.clone();
        let Some(dialog) = self.agent.as_ref().and_then(|a| a.dialog.as_ref()) else { return };
        let refer_to = request.headers.get(&HeaderName::ReferTo).and_then(|v| v.parse::<NameAddr>().ok());
        let (user, replaces) = match refer_to.as_ref().map(|to| &to.uri) {
            Some(Uri::Sip(u)) => (
                u.user.clone(),
                u.headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("Replaces"))
                    .map(|(_, v)| percent_decode(v)),
            ),
            _ => (None, None),
        };
        if let Some(replaces) = replaces {
            let Some(target) = Replaces::parse(&replaces) else {
                let r = dialog.create_response(&request, StatusCode::BAD_REQUEST).with_reason("Bad Replaces");
                core.respond(transaction, r).await;
                return;
            };
            core.respond(transaction, dialog.create_response(&request, StatusCode::ACCEPTED)).await;
            match self.take_over(&target).await {
                Ok(()) => {}
                Err(reason) => self.notify_refer(&format!("SIP/2.0 503 {}", sanitize_reason(&reason))).await,
            }
            return;
        }
        let Some(extension) = user else {
            let r = dialog
                .create_response(&request, StatusCode::NOT_IMPLEMENTED)
                .with_reason("Only Transfers To An Extension");
            core.respond(transaction, r).await;
            return;
        };
        let accepted = dialog.create_response(&request, StatusCode::ACCEPTED);
        core.respond(transaction, accepted).await;
        let by = self.agent.as_ref().map_or_else(db::audit::Actor::system, |a| db::audit::Actor {
            kind: "user",
            id: a.agent.map(|u| u.as_uuid()),
            label: Some(format!("extension {}", a.extension)),
        });
        let outcome = self.blind_transfer_notify_first(TransferTarget::Extension(extension), by).await;
        if let Err(reason) = outcome {
            self.notify_refer(&format!("SIP/2.0 480 {}", sanitize_reason(&reason))).await;
        }
    }

    /// Attended transfer by REFER with Replaces: the call owning the named dialog (the agent's
    /// own call to the person consulted) hands over its answered leg; the caller is bridged to
    /// it and the agent's leg here ends.
    async fn take_over(&mut self, target: &Replaces) -> Result<(), String> {
        let Some(from_agent) =
            self.agent.as_ref().filter(|a| a.state == AgentState::Up).and_then(|a| a.agent)
        else {
            return Err("this call has no answered agent".into());
        };
        let owner = self
            .calls
            .owner_of(&target.call_id, [&target.to_tag, &target.from_tag])
            .ok_or("the dialog to replace does not exist")?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        owner
            .send(CallInput::HandOver { shard: self.caller.media.id.shard(), reply })
            .map_err(|_| "the dialog to replace has ended")?;
        let handed = tokio::time::timeout(std::time::Duration::from_secs(5), answer)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .ok_or("the other call cannot be joined (not answered, or not the agent's own call)")?;
        let leg = handed.leg;
        let destination = match leg.agent {
            Some(_) => format!("extension {}", leg.extension),
            None => format!("number {}", leg.extension),
        };
        if let Some(dialog) = &leg.dialog {
            self.calls.add_dialog(&dialog.id().call_id, &dialog.id().local_tag, &self.inbox_tx);
        }
        self.notify_refer("SIP/2.0 200 OK").await;
        self.bye_agent().await;
        self.close_agent_leg("transferred").await;
        self.agent = Some(leg);
        self.note(
            "agent",
            "transfer",
            json!({ "message": "attended transfer (REFER with Replaces)", "destination": destination }),
        );
        let by = db::audit::Actor { kind: "user", id: Some(from_agent.as_uuid()), label: None };
        self.record_transfer(
            domain::events::TransferKind::Attended,
            &destination,
            Some(from_agent),
            true,
            None,
            by,
        )
        .await;
        self.connect().await;
        Ok(())
    }

    /// Gives this call's answered leg to another call (see [`CallInput::HandOver`]) and ends:
    /// the agent's phone gets our BYE, as RFC 3891 has the replaced dialog end.
    async fn hand_over(&mut self, shard: usize) -> Option<HandedLeg> {
        let usable = self.originator.is_some()
            && self.consulting.is_none()
            && self.agent.as_ref().is_some_and(|a| {
                a.state == AgentState::Up && a.media.as_ref().is_some_and(|m| m.id.shard() == shard)
            });
        if !usable || self.ending.is_some() {
            return None;
        }
        let leg = self.agent.take()?;
        if let Some(dialog) = &leg.dialog {
            self.calls.remove_dialog(&dialog.id().call_id, &dialog.id().local_tag);
        }
        if let Some(media) = &leg.media {
            let _ = self.calls.ctx.media.unbridge(self.caller.media.id, media.id).await;
        }
        self.note(
            "agent",
            "transfer",
            json!({ "message": "leg handed to the transferred call", "extension": leg.extension }),
        );
        self.end("attended_transfer", "agent", StatusCode::OK);
        Some(HandedLeg { leg })
    }

    /// Sends the REFER's final NOTIFY (sipfrag) on the agent's dialog.
    async fn notify_refer(&mut self, frag: &str) {
        let core = self.calls.ctx.core.clone();
        let Some(agent) = self.agent.as_mut() else { return };
        let Some(dialog) = agent.dialog.as_mut() else { return };
        let mut notify = dialog.create_request(Method::Notify, &via_for(agent.local, &agent.peer.transport));
        notify.headers.push(HeaderName::Event, "refer");
        notify.headers.push(HeaderName::SubscriptionState, "terminated;reason=noresource");
        notify.headers.push(HeaderName::ContentType, "message/sipfrag;version=2.0");
        notify.body = frag.as_bytes().to_vec();
        let _ = core.start(notify, agent.peer.clone(), self.client_tx.clone()).await;
    }

    async fn blind_transfer_notify_first(
        &mut self,
        target: TransferTarget,
        by: db::audit::Actor,
    ) -> Result<(), String> {
        self.transfer(target, by, true).await
    }

    async fn blind_transfer(&mut self, target: TransferTarget, by: db::audit::Actor) -> Result<(), String> {
        self.transfer(target, by, false).await
    }

    /// Moves the answered call from its agent to `target`. Checks first that the destination
    /// can take it (else the agent keeps the call and the failure is recorded); then the
    /// caller hears hold music, the agent's leg ends, and the destination is rung or queued.
    async fn transfer(
        &mut self,
        target: TransferTarget,
        by: db::audit::Actor,
        notify: bool,
    ) -> Result<(), String> {
        let Some(agent) = self.agent.as_ref().filter(|a| a.state == AgentState::Up) else {
            return Err("the call has no answered agent to transfer from".into());
        };
        let Some(from_agent) = agent.agent else {
            return Err("only a call answered by an agent can be transferred".into());
        };
        let destination = target.to_string();
        let checked = self.check_destination(&target, from_agent).await;
        if let Err(reason) = &checked {
            self.note(
                "agent",
                "transfer",
                json!({ "message": "blind transfer refused", "destination": destination, "reason": reason }),
            );
            self.record_transfer(
                domain::events::TransferKind::Blind,
                &destination,
                Some(from_agent),
                false,
                Some(reason),
                by,
            )
            .await;
            return Err(reason.clone());
        }
        self.note("agent", "transfer", json!({ "message": "blind transfer", "destination": destination }));
        self.record_transfer(
            domain::events::TransferKind::Blind,
            &destination,
            Some(from_agent),
            true,
            None,
            by,
        )
        .await;
        if notify {
            self.notify_refer("SIP/2.0 200 OK").await;
        }
        let calls = self.calls.clone();
        let _ = calls.ctx.media.play(self.caller.media.id, media::Playback::MusicOnHold).await;
        self.bye_agent().await;
        self.close_agent_leg("transferred").await;
        self.answered = false;
        match (target, checked) {
            (TransferTarget::Queue(queue), _) => {
                self.direct_agent = None;
                self.enter_queue(queue).await;
            }
            (TransferTarget::Extension(extension), Ok(Some(user))) => {
                self.queue = None;
                self.transfer_back = Some((from_agent, format!("extension {extension}")));
                self.direct_agent = Some(user);
                self.tried.clear();
                self.next_try = Some(Instant::now());
            }
            (TransferTarget::Extension(_), _) => {}
            (TransferTarget::External(number), _) => {
                self.queue = None;
                self.direct_agent = None;
                self.transfer_back = Some((from_agent, format!("number {number}")));
                let route = self.outbound_target(&number).await;
                let rung = match route {
                    Ok(target) => self.ring_external(&target).await,
                    Err(e) => Err(e),
                };
                if let Err(reason) = rung {
                    self.after_failed_leg(None, "callee", 503, &reason, "failed").await;
                }
            }
        }
        Ok(())
    }

    /// Whether `target` can take the call now: the agent behind an extension must exist, be
    /// registered on this node, available and not busy; a queue must exist.
    async fn check_destination(
        &self,
        target: &TransferTarget,
        from_agent: UserId,
    ) -> Result<Option<UserId>, String> {
        let ctx = &self.calls.ctx;
        let mut tx = ctx.db.tenant_tx(self.tenant).await.map_err(|e| format!("database: {e}"))?;
        let result = match target {
            TransferTarget::Queue(queue) => match db::queues::get_queue(&mut tx, *queue).await {
                Ok(_) => Ok(None),
                Err(_) => Err(format!("queue {queue} does not exist")),
            },
            TransferTarget::External(number) if !is_dialable(number) => {
                Err(format!("{number} is not a dialable number"))
            }
            TransferTarget::External(_) => {
                match db::tenant_settings::outbound_route(&mut tx, self.tenant).await {
                    Ok(Some(db::tenant_settings::OutboundRoute { caller_id: Some(_), .. })) => Ok(None),
                    Ok(Some(_)) => Err("no caller id for outbound calls (set one or add a DID)".into()),
                    Ok(None) => Err("no outbound trunk".into()),
                    Err(e) => Err(format!("database: {e}")),
                }
            }
            TransferTarget::Extension(extension) => {
                let account = db::sip::find_by_extension(&mut tx, extension)
                    .await
                    .map_err(|e| format!("database: {e}"))?;
                match account {
                    None => Err(format!("extension {extension} does not exist")),
                    Some(a) if UserId(a.user_id) == from_agent => {
                        Err("cannot transfer a call to yourself".into())
                    }
                    Some(a) => {
                        let user = UserId(a.user_id);
                        let bindings = db::sip::bindings(&mut tx, user, Utc::now())
                            .await
                            .map_err(|e| format!("database: {e}"))?;
                        let state = db::agent_states::get_state(&mut tx, user)
                            .await
                            .map_err(|e| format!("database: {e}"))?;
                        let status = state.map_or_else(|| "logged_out".to_owned(), |s| s.status);
                        if !bindings.iter().any(|b| b.node_id == ctx.node_id) {
                            Err(format!("extension {extension} is not registered"))
                        } else if status != "available" {
                            Err(format!("extension {extension} is not available ({status})"))
                        } else if !self.calls.reserve_agent(user) {
                            Err(format!("extension {extension} is busy"))
                        } else {
                            self.calls.release_agent(user);
                            Ok(Some(user))
                        }
                    }
                }
            }
        };
        let _ = tx.commit().await;
        result
    }

    /// Attended transfer, step 1: the caller waits with music while the agent's phone is
    /// connected to `target` (rung now). Then complete, cancel, or make it a 3-way call.
    async fn consult(&mut self, target: TransferTarget, by: db::audit::Actor) -> Result<(), String> {
        if self.consulting.is_some() {
            return Err("a consultation is already in progress".into());
        }
        let Some(agent) = self.agent.as_ref().filter(|a| a.state == AgentState::Up) else {
            return Err("the call has no answered agent".into());
        };
        let Some(from_agent) = agent.agent else {
            return Err("only a call answered by an agent can be transferred".into());
        };
        let Some(transferor_media) = agent.media.as_ref().map(|m| m.id) else {
            return Err("the agent's leg has no media".into());
        };
        if matches!(target, TransferTarget::Queue(_)) {
            return Err("a consultation needs an extension or a number".into());
        }
        let destination = target.to_string();
        let started = self.start_consultation(&target, from_agent, transferor_media, &destination).await;
        if let Err(reason) = &started {
            self.record_transfer(
                domain::events::TransferKind::Attended,
                &destination,
                Some(from_agent),
                false,
                Some(reason),
                by,
            )
            .await;
        }
        started
    }

    /// Puts the caller on hold music and rings what the agent consults; on failure the agent
    /// has the caller back.
    async fn start_consultation(
        &mut self,
        target: &TransferTarget,
        from_agent: UserId,
        transferor_media: media::LegId,
        destination: &str,
    ) -> Result<(), String> {
        let user = self.check_destination(target, from_agent).await?;
        let calls = self.calls.clone();
        let media = &calls.ctx.media;
        let _ = media.unbridge(self.caller.media.id, transferor_media).await;
        let _ = media.play(self.caller.media.id, media::Playback::MusicOnHold).await;
        self.consulting = self.agent.take();
        self.consult_destination = Some(destination.to_owned());
        let rung = match (target, user) {
            (TransferTarget::Extension(_), Some(user)) => {
                if self.calls.reserve_agent(user) {
                    let rung = self.ring(user).await;
                    if rung.is_err() {
                        self.calls.release_agent(user);
                    }
                    rung
                } else {
                    Err(format!("{destination} is busy"))
                }
            }
            (TransferTarget::External(number), _) => match self.outbound_target(number).await {
                Ok(t) => self.ring_external(&t).await,
                Err(e) => Err(e),
            },
            _ => Err(format!("{destination} cannot be consulted")),
        };
        if let Err(reason) = rung {
            self.back_to_transferor().await;
            return Err(reason);
        }
        self.note(
            "agent",
            "transfer",
            json!({ "message": "consultation started", "destination": destination }),
        );
        Ok(())
    }

    /// Ends a consultation: the transferring agent talks to the caller again.
    async fn back_to_transferor(&mut self) {
        let Some(transferor) = self.consulting.take() else { return };
        if let Some(leg) = self.agent.take() {
            // Still ringing or talking: that leg ends.
            self.agent = Some(leg);
            match self.agent.as_ref().map(|a| a.state) {
                Some(AgentState::Ringing { .. }) => self.cancel_agent("consultation_cancelled").await,
                _ => {
                    self.bye_agent().await;
                    self.close_agent_leg("consultation_ended").await;
                }
            }
        }
        self.conference = false;
        if let Some(media) = transferor.media.as_ref().map(|m| m.id) {
            // Bridging ends the caller's hold music (and any conference).
            let _ = self.calls.ctx.media.bridge(self.caller.media.id, media).await;
        }
        self.agent = Some(transferor);
    }

    /// Attended transfer, step 2: the consulted person takes the caller; the agent's leg ends.
    async fn complete_transfer(&mut self, by: db::audit::Actor) -> Result<(), String> {
        if self.consulting.is_none() {
            return Err("no consultation in progress".into());
        }
        let Some(consulted) = self.agent.take() else { return Err("no consultation in progress".into()) };
        if consulted.state != AgentState::Up {
            self.agent = Some(consulted);
            return Err("the consulted person has not answered yet".into());
        }
        let kind = if self.conference {
            domain::events::TransferKind::ThreeWay
        } else {
            domain::events::TransferKind::Attended
        };
        let destination = match consulted.agent {
            Some(_) => format!("extension {}", consulted.extension),
            None => format!("number {}", consulted.extension),
        };
        // The transferring agent leaves.
        self.agent = self.consulting.take();
        let from_agent = self.agent.as_ref().and_then(|a| a.agent);
        self.bye_agent().await;
        self.close_agent_leg("transferred").await;
        self.agent = Some(consulted);
        self.conference = false;
        self.note(
            "agent",
            "transfer",
            json!({ "message": "attended transfer completed", "destination": destination }),
        );
        self.record_transfer(kind, &destination, from_agent, true, None, by).await;
        self.connect().await;
        Ok(())
    }

    /// Attended transfer abandoned: the consulted person's leg ends, the agent has the caller.
    async fn cancel_consult(&mut self) -> Result<(), String> {
        if self.consulting.is_none() {
            return Err("no consultation in progress".into());
        }
        self.note("agent", "transfer", json!({ "message": "consultation cancelled" }));
        self.back_to_transferor().await;
        Ok(())
    }

    /// 3-way call: the caller, the agent and the consulted person hear each other.
    async fn start_conference(&mut self, by: db::audit::Actor) -> Result<(), String> {
        let consulted = match (&self.consulting, &self.agent) {
            (Some(t), Some(c)) if c.state == AgentState::Up => (t, c),
            (Some(_), _) => return Err("the consulted person has not answered yet".into()),
            _ => return Err("a 3-way call needs a consultation first".into()),
        };
        let (transferor, consulted) = consulted;
        let (Some(t), Some(c)) = (transferor.media.as_ref(), consulted.media.as_ref()) else {
            return Err("a leg has no media".into());
        };
        let legs = [self.caller.media.id, t.id, c.id];
        let destination = consulted.extension.clone();
        let from_agent = transferor.agent;
        self.calls.ctx.media.conference(&legs).await.map_err(|e| format!("media: {e}"))?;
        self.conference = true;
        self.note("agent", "conference", json!({ "message": "3-way call started", "with": destination }));
        let entry = db::audit::NewAudit {
            id: domain::AuditId(uuid::Uuid::now_v7()),
            tenant_id: Some(self.tenant),
            at: Utc::now(),
            actor: by,
            action: "call.conference".into(),
            resource_type: "call".into(),
            resource_id: Some(self.id.to_string()),
            before: None,
            after: Some(json!({ "from_agent_id": from_agent, "with": destination })),
            source_ip: None,
            request_id: None,
        };
        let ctx = &self.calls.ctx;
        let written = async {
            let mut tx = ctx.db.tenant_tx(self.tenant).await?;
            db::audit::insert(&mut tx, &entry).await?;
            tx.commit().await?;
            Ok::<_, db::DbError>(())
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not audit a 3-way call");
        }
        Ok(())
    }

    /// A request on the transferring agent's dialog during a consultation. Their BYE hands
    /// the caller to the consulted person (transfer by hanging up); when that one has not
    /// answered yet, it becomes a blind transfer.
    async fn transferor_request(&mut self, transaction: TransactionId, request: Request) {
        let consulted = self.agent.take();
        self.agent = self.consulting.take();
        let bye = request.method == Method::Bye;
        self.agent_request(transaction, request).await;
        if !bye {
            self.consulting = self.agent.take();
            self.agent = consulted;
            return;
        }
        // `agent_request` answered the BYE and dropped the dialog; the call goes on.
        self.ending = None;
        self.close_agent_leg("transferred").await;
        self.agent = consulted;
        let answered = self.agent.as_ref().is_some_and(|a| a.state == AgentState::Up);
        self.conference = false;
        self.note(
            "agent",
            "transfer",
            json!({ "message": "the transferring agent hung up", "consulted_answered": answered }),
        );
        if answered {
            let destination = self.agent.as_ref().map(|a| a.extension.clone()).unwrap_or_default();
            self.record_transfer(
                domain::events::TransferKind::Attended,
                &destination,
                None,
                true,
                None,
                db::audit::Actor::system(),
            )
            .await;
            self.connect().await;
        }
    }

    /// Adds a transfer to the call's history (`call.transferred`) and the audit log.
    async fn record_transfer(
        &mut self,
        kind: domain::events::TransferKind,
        destination: &str,
        from_agent: Option<UserId>,
        succeeded: bool,
        failure_reason: Option<&str>,
        by: db::audit::Actor,
    ) {
        let ctx = &self.calls.ctx;
        let now = Utc::now();
        let entry = json!({
            "at": now, "kind": kind, "from_agent_id": from_agent, "destination": destination,
            "succeeded": succeeded, "failure_reason": failure_reason,
        });
        let written = async {
            let mut tx = ctx.db.tenant_tx(self.tenant).await?;
            db::calls::add_transfer(
                &mut tx,
                self.tenant,
                self.id,
                &entry,
                &db::calls::TransferEvent {
                    kind,
                    from_agent_id: from_agent,
                    destination,
                    succeeded,
                    failure_reason,
                    at: now,
                },
            )
            .await?;
            db::audit::insert(
                &mut tx,
                &db::audit::NewAudit {
                    id: domain::AuditId(uuid::Uuid::now_v7()),
                    tenant_id: Some(self.tenant),
                    at: now,
                    actor: by,
                    action: if succeeded { "call.transfer".into() } else { "call.transfer.failed".into() },
                    resource_type: "call".into(),
                    resource_id: Some(self.id.to_string()),
                    before: None,
                    after: Some(entry.clone()),
                    source_ip: None,
                    request_id: None,
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<_, db::DbError>(())
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not record a transfer");
        }
    }

    /// The agent's new offer: hold (sendonly/inactive) plays hold music to the caller;
    /// resume bridges again.
    async fn reoffer_agent(&mut self, request: &Request) -> Response {
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let caller_media = self.caller.media.id;
        let caller_codec = self.caller.codec;
        let Some(agent) = self.agent.as_mut() else {
            return Response::for_request(request, StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST);
        };
        let (Some(dialog), Some(agent_media)) = (agent.dialog.as_ref(), agent.media.as_ref()) else {
            return Response::for_request(request, StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST);
        };
        let mut direction = Direction::SendRecv;
        let mut codec = agent.codec.unwrap_or(caller_codec);
        if !request.body.is_empty() {
            let Some(offer) =
                std::str::from_utf8(&request.body).ok().and_then(|b| SessionDescription::parse(b).ok())
            else {
                return dialog.create_response(request, StatusCode::BAD_REQUEST).with_reason("Malformed SDP");
            };
            let audio = offer.audio();
            direction = audio.map_or(Direction::SendRecv, |m| m.direction.answer_to());
            let hold = if agent.webrtc_answer.is_some() {
                // A browser's hold/resume: same ICE and DTLS session, only the direction moves.
                matches!(direction, Direction::RecvOnly | Direction::Inactive)
            } else {
                let Some(c) = media::sdp::negotiate(&offer, &SUPPORTED_CODECS) else {
                    return dialog.create_response(request, StatusCode::NOT_ACCEPTABLE_HERE);
                };
                codec = c;
                let remote = audio.and_then(|m| m.remote_addr(&offer));
                if let Some(remote) = remote {
                    let _ = ctx.media.set_remote(agent_media.id, remote, codec).await;
                }
                agent.codec = Some(codec);
                remote.is_none() || matches!(direction, Direction::RecvOnly | Direction::Inactive)
            };
            if hold && !agent.on_hold {
                agent.on_hold = true;
                let _ = ctx.media.play(caller_media, media::Playback::MusicOnHold).await;
            } else if !hold && agent.on_hold {
                agent.on_hold = false;
                let _ = ctx.media.stop_play(caller_media).await;
            }
        }
        let mut response = dialog.create_response(request, StatusCode::OK);
        if !request.body.is_empty() || request.method == Method::Invite {
            let sdp = match &agent.webrtc_answer {
                Some(answer) => with_direction(answer, direction),
                None => {
                    media::sdp::answer(rand::random::<u32>().into(), 2, agent_media.local, codec, direction)
                }
            };
            response.headers.push(HeaderName::ContentType, "application/sdp");
            response.body = sdp.into_bytes();
        }
        let on_hold = agent.on_hold;
        self.note("agent", "sip", json!({ "message": format!("re-{}", request.method), "hold": on_hold }));
        response
    }

    /// Sends the caller our 200 with the SDP answer.
    async fn answer_caller(&mut self) {
        let mut ok = self.caller.dialog.create_response(&self.caller.invite, StatusCode::OK);
        let sdp = self.caller_sdp(Direction::SendRecv);
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        super::allow(&mut ok);
        if let Some((secs, _)) = self.session_timer {
            ok.headers.push(HeaderName::SessionExpires, format!("{secs};refresher=uac"));
            ok.headers.push(HeaderName::Require, "timer");
        }
        ok.body = sdp.into_bytes();
        self.calls.ctx.core.respond(self.caller.invite_tx, ok).await;
        self.caller.dialog.confirm();
        self.caller.state = CallerState::Answered;
        self.calls.invite_done(self.caller.invite_tx);
        self.note("caller", "sip", json!({ "message": "200 OK sent" }));
    }

    /// Stops ringing the current agent.
    async fn cancel_agent(&mut self, cause: &str) {
        self.cancel_forks(cause).await;
        let Some(agent) = self.agent.as_mut() else { return };
        if let AgentState::Ringing { .. } = agent.state {
            agent.state = AgentState::Cancelling;
            self.calls.ctx.core.cancel(agent.transaction).await;
            let agent_id = agent.agent;
            self.note(
                "agent",
                "sip",
                json!({ "message": "CANCEL sent", "agent_id": agent_id, "reason": cause }),
            );
            // The 487 (or a racing 2xx, ACKed and BYEd) arrives later; this round moves on now.
            self.close_agent_leg(cause).await;
        }
    }

    /// Stops ringing the agent's other phones (browser tabs, a desk phone).
    async fn cancel_forks(&mut self, cause: &str) {
        for mut fork in std::mem::take(&mut self.forks) {
            if let AgentState::Ringing { .. } = fork.state {
                fork.state = AgentState::Cancelling;
                self.calls.ctx.core.cancel(fork.transaction).await;
            }
            self.close_leg(fork, cause, false).await;
        }
    }

    /// An answer on one of the agent's other phones: a 2xx makes it the agent's leg (the
    /// others are cancelled); a failure just drops that branch.
    async fn fork_event(&mut self, index: usize, event: ClientEvent) {
        match event.kind {
            ClientEventKind::Response(response) if response.status.is_success() => {
                let fork = self.forks.remove(index);
                if let Some(primary) = self.agent.replace(fork) {
                    let answered = self.agent.replace(primary);
                    if let Some(agent) = self.agent.as_mut() {
                        agent.state = AgentState::Cancelling;
                        self.calls.ctx.core.cancel(agent.transaction).await;
                    }
                    if let Some(leg) = self.agent.take() {
                        self.close_leg(leg, "answered_elsewhere", false).await;
                    }
                    self.agent = answered;
                }
                self.cancel_forks("answered_elsewhere").await;
                self.agent_answered(response).await;
            }
            ClientEventKind::Response(response) if response.status.as_u16() < 300 => {}
            ClientEventKind::Response(response) => {
                let fork = self.forks.remove(index);
                let outcome = if matches!(response.status.as_u16(), 486 | 600) { "busy" } else { "failed" };
                self.note("agent", "sip", json!({ "message": format!("{} {} (another phone of the agent)", response.status.as_u16(), response.reason) }));
                self.close_leg(fork, outcome, false).await;
            }
            ClientEventKind::Timeout | ClientEventKind::TransportError => {
                let fork = self.forks.remove(index);
                self.close_leg(fork, "failed", false).await;
            }
        }
    }

    async fn bye_agent(&mut self) {
        let Some(agent) = self.agent.as_mut() else { return };
        let Some(dialog) = agent.dialog.as_mut() else { return };
        let bye = dialog.create_request(Method::Bye, &via_for(agent.local, &agent.peer.transport));
        let _ = self.calls.ctx.core.start(bye, agent.peer.clone(), self.client_tx.clone()).await;
        agent.dialog = None;
    }

    async fn bye_caller(&mut self) {
        if self.caller.state != CallerState::Answered {
            return;
        }
        let local = super::local_towards(&self.calls.ctx.streams, &self.caller.peer).await;
        let bye =
            self.caller.dialog.create_request(Method::Bye, &via_for(local, &self.caller.peer.transport));
        let _ = self.calls.ctx.core.start(bye, self.caller.peer.clone(), self.client_tx.clone()).await;
        self.caller.state = CallerState::Gone;
    }

    /// Closes the agent leg's media and remembers it for the CDR; frees the agent.
    async fn close_agent_leg(&mut self, outcome: &str) {
        let Some(agent) = self.agent.take() else { return };
        self.close_leg(agent, outcome, true).await;
    }

    /// Closes a leg we placed; `release` frees its agent (not when another branch of the same
    /// agent goes on).
    async fn close_leg(&mut self, agent: AgentLeg, outcome: &str, release: bool) {
        let stats = match &agent.media {
            Some(m) => self.calls.ctx.media.close_leg(m.id).await.ok(),
            None => None,
        };
        if let Some(dialog) = &agent.dialog {
            self.calls.remove_dialog(&dialog.id().call_id, &dialog.id().local_tag);
        } else if let (Ok(call_id), Some(tag)) = (
            agent.invite.headers.call_id(),
            agent.invite.headers.from().ok().and_then(|f| f.tag().map(str::to_owned)),
        ) {
            self.calls.remove_dialog(call_id, &tag);
        }
        let awaiting_answer = agent.state == AgentState::Cancelling && agent.dialog.is_none();
        if let Some(user) = agent.agent.filter(|_| release) {
            // A cancelled INVITE frees its agent when its final answer comes (`settle_cancelled`).
            if !awaiting_answer {
                self.calls.release_agent(user);
            }
            self.calls.agent_left_group(user, self.media_group);
        }
        self.past_legs.push(json!({
            "leg": leg_name(&agent),
            "agent_id": agent.agent,
            "extension": agent.extension,
            "transport": agent.peer.transport.as_str(),
            "sip_call_id": agent.invite.headers.call_id().unwrap_or_default(),
            "outcome": outcome,
            "codec": agent.codec.map(codec_name),
            "rtp": stats,
        }));
        // A cancelled leg still owes us its 487; keep listening for its transaction so a
        // 2xx that crossed our CANCEL can be ACKed and BYEd (§9.1).
        if awaiting_answer {
            self.cancelled.push(CancelledInvite {
                transaction: agent.transaction,
                agent: agent.agent.filter(|_| release),
                invite: agent.invite,
                peer: agent.peer,
                local: agent.local,
                local_contact: agent.local_contact,
            });
        }
    }

    /// A final answer to an INVITE we cancelled: a 2xx is ACKed and ended with BYE. Either
    /// way (or on the transaction's timeout) its agent is free again.
    async fn cancelled_answer(&mut self, index: usize, event: ClientEvent) {
        let ClientEventKind::Response(response) = event.kind else {
            let entry = self.cancelled.swap_remove(index);
            self.settle_cancelled(&entry);
            return;
        };
        if !response.status.is_final() {
            return;
        }
        let entry = self.cancelled.swap_remove(index);
        if !response.status.is_success() {
            self.settle_cancelled(&entry);
            return;
        }
        if let Ok(mut dialog) = Dialog::new_uac(&entry.invite, &response, entry.local_contact.clone()) {
            let core = &self.calls.ctx.core;
            let seq = entry.invite.headers.cseq().map(|c| c.seq).unwrap_or(1);
            let ack = dialog.create_ack(seq, &via_for(entry.local, &entry.peer.transport));
            core.send_stateless(entry.peer.clone(), sip::Message::Request(ack)).await;
            let bye = dialog.create_request(Method::Bye, &via_for(entry.local, &entry.peer.transport));
            let _ = core.start(bye, entry.peer.clone(), self.client_tx.clone()).await;
            self.note("agent", "sip", json!({ "message": "2xx crossed our CANCEL: ACK and BYE" }));
        }
        // The BYE is on its way before any next offer could be.
        self.settle_cancelled(&entry);
    }

    /// A cancelled INVITE has its final answer (or never will): its agent may be offered calls.
    fn settle_cancelled(&self, entry: &CancelledInvite) {
        if let Some(user) = entry.agent {
            self.calls.release_agent(user);
        }
    }

    /// Records why the call ends; the loop then tears it down.
    fn end(&mut self, cause: &str, side: &'static str, status: StatusCode) {
        if self.ending.is_none() {
            self.ending = Some(Ending { cause: cause.to_owned(), side, status });
        }
    }

    /// Tears everything down and writes the CDR.
    async fn finish(mut self) {
        let Some(ending) = self.ending.take() else { return };
        let ctx_core = self.calls.ctx.core.clone();
        if self.caller.state == CallerState::Early {
            let mut r = self.caller.dialog.create_response(&self.caller.invite, ending.status);
            if ending.status == StatusCode::OK {
                r = self
                    .caller
                    .dialog
                    .create_response(&self.caller.invite, StatusCode::TEMPORARILY_UNAVAILABLE);
            }
            ctx_core.respond(self.caller.invite_tx, r).await;
            self.caller.state = CallerState::Gone;
        }
        self.cancel_forks(&ending.cause).await;
        // Whoever hung up has no dialog left; the other side gets our BYE, before the
        // recording is finished (that waits for the disk).
        self.bye_caller().await;
        if self.agent.as_ref().is_some_and(|a| a.state == AgentState::Up) {
            self.bye_agent().await;
        }
        // Finish the file before closing legs: closing the caller's leg would end the
        // recording without telling us.
        let recording = match &self.recording {
            Some(_) => self.calls.ctx.media.stop_record(self.caller.media.id).await.ok().flatten(),
            None => None,
        };
        match self.agent.as_ref().map(|a| a.state) {
            Some(AgentState::Ringing { .. }) => self.cancel_agent(&ending.cause).await,
            Some(AgentState::Up) => {
                self.bye_agent().await;
                self.close_agent_leg("completed").await;
            }
            _ => {}
        }
        if let Some(transferor) = self.consulting.take() {
            self.agent = Some(transferor);
            self.bye_agent().await;
            self.close_agent_leg("completed").await;
        }
        if self.reserved_originator
            && let Some(originator) = &self.originator
        {
            self.calls.release_agent(originator.user);
        }
        let media = &self.calls.ctx.media;
        let caller_stats = media.close_leg(self.caller.media.id).await.ok();
        self.calls.invite_done(self.caller.invite_tx);
        self.calls.remove_dialog(&self.caller.dialog.id().call_id, &self.caller.dialog.id().local_tag);
        self.calls.unpublish(self.id);
        let mut legs = vec![json!({
            "leg": "caller",
            "agent_id": self.originator.as_ref().map(|o| o.user),
            "extension": self.originator.as_ref().map(|o| o.extension.clone()),
            "from": self.from_number,
            "transport": self.caller.peer.transport.as_str(),
            "sip_call_id": self.caller.dialog.id().call_id,
            "codec": codec_name(self.caller.codec),
            "rtp": caller_stats,
        })];
        legs.append(&mut self.past_legs);
        let recording_info = recording.as_ref().map(|r| r.duration_ms);
        let recording = recording.map(
            |r| json!({ "path": r.path, "duration_ms": r.duration_ms, "bytes": r.bytes, "channels": 2 }),
        );
        self.note(
            "caller",
            "call",
            json!({ "message": "ended", "cause": ending.cause, "side": ending.side }),
        );
        let end = db::calls::CallEnd {
            at: Utc::now(),
            hangup_cause: &ending.cause,
            hangup_side: ending.side,
            legs: Value::Array(legs),
            timeline: Value::Array(std::mem::take(&mut self.timeline)),
            recording,
        };
        let calls = self.calls.clone();
        let ctx = &calls.ctx;
        let at = end.at;
        let url = recording_info.as_ref().map(|duration_ms| {
            let expires = at + ctx.config.recording_url_ttl;
            let path = ctx.urls.path(self.tenant, self.id, expires);
            (format!("{}{path}", ctx.config.public_http_url), expires, *duration_ms)
        });
        // The CDR must exist however the call ended: retry a few times if PostgreSQL blinks.
        for attempt in 0..5u32 {
            let written = async {
                let mut tx = ctx.db.tenant_tx(self.tenant).await?;
                let fresh = db::calls::get_call(&mut tx, self.id).await?.ended_at.is_none();
                db::calls::end_call(&mut tx, self.tenant, self.id, &end).await?;
                if fresh && let Some((url, expires, duration_ms)) = &url {
                    db::calls::recorded(&mut tx, self.tenant, self.id, url, *expires, *duration_ms, at)
                        .await?;
                }
                tx.commit().await?;
                Ok::<_, db::DbError>(())
            }
            .await;
            match written {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "could not write a CDR; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        // An agent INVITE we cancelled may still be answered with a 2xx that crossed the
        // CANCEL; stay to ACK and BYE it rather than leave the phone off-hook, and keep its
        // agent reserved until then. A phone that never answers is given up on with the
        // INVITE transaction itself (Timer B, 64·T1 = 32 s); usually the 487 comes at once.
        let linger = Instant::now() + std::time::Duration::from_secs(34);
        while !self.cancelled.is_empty() {
            match tokio::time::timeout_at(linger, self.client_rx.recv()).await {
                Ok(Some(event)) => {
                    if let Some(i) = self.cancelled.iter().position(|c| c.transaction == event.transaction) {
                        self.cancelled_answer(i, event).await;
                    }
                }
                _ => break,
            }
        }
        // Phones that never answered our CANCEL: nothing more to wait for on this call.
        for entry in std::mem::take(&mut self.cancelled) {
            self.settle_cancelled(&entry);
        }
    }

    /// Adds an entry to the call's "Technical" timeline.
    fn note(&mut self, leg: &str, kind: &str, detail: Value) {
        self.timeline.push(json!({ "at": Utc::now(), "leg": leg, "kind": kind, "detail": detail }));
    }
}

/// The dialog a Replaces header (RFC 3891) names.
struct Replaces {
    call_id: String,
    to_tag: String,
    from_tag: String,
}

impl Replaces {
    /// `call-id;to-tag=…;from-tag=…` (other parameters such as early-only ignored).
    fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let call_id = parts.next()?.trim().to_owned();
        let (mut to_tag, mut from_tag) = (None, None);
        for p in parts {
            match p.trim().split_once('=') {
                Some((k, v)) if k.eq_ignore_ascii_case("to-tag") => to_tag = Some(v.to_owned()),
                Some((k, v)) if k.eq_ignore_ascii_case("from-tag") => from_tag = Some(v.to_owned()),
                _ => {}
            }
        }
        (!call_id.is_empty()).then_some(Self { call_id, to_tag: to_tag?, from_tag: from_tag? })
    }
}

/// `%XX` escapes of a URI header value decoded (invalid ones kept as they are).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The timeline's and CDR's name of the leg we placed.
fn leg_name(leg: &AgentLeg) -> &'static str {
    if leg.trunk.is_some() { "callee" } else { "agent" }
}

/// Codecs offered to a carrier: the caller's first, so the call is a plain relay. A caller
/// speaking Opus (a browser without G.711) is transcoded: carriers get G.711.
fn outbound_codecs(first: CodecKind) -> Vec<CodecKind> {
    let mut codecs: Vec<CodecKind> = SUPPORTED_CODECS.iter().copied().filter(|k| *k == first).collect();
    codecs.extend(SUPPORTED_CODECS.iter().copied().filter(|k| *k != first));
    codecs
}

/// Codecs offered to an agent's RTP phone: the caller's alone when it is G.711 (a relay), else
/// every G.711 codec (the media plane transcodes an Opus caller).
fn rtp_offer_codecs(caller: CodecKind) -> Vec<CodecKind> {
    if SUPPORTED_CODECS.contains(&caller) { vec![caller] } else { SUPPORTED_CODECS.to_vec() }
}

/// How long an external number may ring before the call gives up.
const OUTBOUND_RING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A reason phrase safe for a status line.
fn sanitize_reason(reason: &str) -> String {
    reason.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// Our earlier answer with its direction attribute set to `direction` (browser hold/resume).
fn with_direction(answer: &str, direction: Direction) -> String {
    let wanted = match direction {
        Direction::SendRecv => "a=sendrecv",
        Direction::SendOnly => "a=sendonly",
        Direction::RecvOnly => "a=recvonly",
        Direction::Inactive => "a=inactive",
    };
    answer
        .split("\r\n")
        .map(|line| match line {
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive" => wanted,
            other => other,
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Where to send to an agent's binding: its UDP source, or its live stream connection.
fn binding_peer(b: &db::sip::BindingRow) -> Option<Peer> {
    let addr: SocketAddr = b.source.parse().ok()?;
    let transport = Transport::parse(&b.transport);
    match transport {
        Transport::Udp => Some(Peer::udp(addr)),
        _ => {
            let id = u64::try_from(b.connection_id?).ok()?;
            Some(Peer { transport, addr, connection: Some(ConnectionId(id)) })
        }
    }
}

fn via_for(local: SocketAddr, transport: &Transport) -> Via {
    let host = match local.ip().to_canonical() {
        std::net::IpAddr::V4(v4) => Host::Ipv4(v4),
        std::net::IpAddr::V6(v6) => Host::Ipv6(v6),
    };
    let mut via = Via::new(transport.clone(), host, Some(local.port()), &super::branch());
    via.params.set("rport", None);
    via
}

fn contact_for(local: SocketAddr, transport: &Transport) -> NameAddr {
    let host = match local.ip().to_canonical() {
        std::net::IpAddr::V4(v4) => Host::Ipv4(v4),
        std::net::IpAddr::V6(v6) => Host::Ipv6(v6),
    };
    let mut uri = SipUri::new(host).with_user("sivo").with_port(local.port());
    if *transport != Transport::Udp {
        uri = uri.with_param("transport", Some(transport.as_str().to_ascii_lowercase()));
    }
    NameAddr::new(Uri::Sip(uri))
}

/// The caller's number: the From URI's user part (or the whole URI).
fn caller_number(request: &Request) -> String {
    let Ok(from) = request.headers.from() else { return "anonymous".into() };
    match &from.uri {
        Uri::Sip(u) => u.user.clone().unwrap_or_else(|| "anonymous".into()),
        Uri::Tel(t) => t.number.clone(),
        Uri::Other(_) => "anonymous".into(),
    }
    .chars()
    .take(64)
    .collect()
}

/// RFC 4028 Session-Expires (or its compact form `x`), in seconds.
fn session_expires(request: &Request) -> Option<u32> {
    let value = request.headers.get(&HeaderName::SessionExpires)?;
    value.split(';').next()?.trim().parse().ok()
}

fn codec_name(codec: Codec) -> String {
    codec.kind.rtpmap_name()
}

async fn tenant_domain(ctx: &super::CallCtx, tenant: TenantId) -> Option<String> {
    let mut tx = ctx.db.tenant_tx(tenant).await.ok()?;
    let row = db::tenants::get(&mut tx, tenant).await.ok()?;
    tx.commit().await.ok()?;
    Some(format!("{}.{}", row.slug, ctx.base_domain))
}

/// A queue's hold-music file, only if it lies inside the configured music directory: the path
/// is chosen by a tenant admin and must never reach another tenant's files (recordings are
/// WAV files too).
async fn music_file(music_dir: &std::path::Path, path: &str) -> Option<std::path::PathBuf> {
    let dir = tokio::fs::canonicalize(music_dir).await.ok()?;
    let wanted = std::path::Path::new(path);
    let full = if wanted.is_absolute() { wanted.to_path_buf() } else { dir.join(wanted) };
    let file = tokio::fs::canonicalize(full).await.ok()?;
    file.starts_with(&dir).then_some(file)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
