//! The B2BUA: one actor (a tokio task) per call owns its legs, dialogs and media bridge.
//!
//! This module is the switchboard around the actors: it starts an actor for each new inbound
//! INVITE that the trunk gate lets in, routes in-dialog requests, ACKs and CANCELs to the
//! actor that owns the dialog (by Call-ID and our tag, which is the same key for a leg where
//! we are the UAS — our To tag — and one where we are the UAC — our From tag), keeps the set
//! of agents a call is ringing so two calls never ring the same agent, and gives the API a
//! handle on every live call.
//!
//! ## Picking an agent (the ACD)
//!
//! A queued call's actor picks the longest-idle member who is available, registered, on no open
//! call and not being rung for another call. Nothing queue-wide is locked on the way: callers
//! entering one queue and calls picking agents in it never wait for each other.
//!
//! - **Who may be rung** is an indexed walk of the tenant's available agents in idle order that
//!   stops after a few qualify (`db::calls::queue_candidates`, at most
//!   `db::calls::CANDIDATE_LIMIT`), not a sorted list of every member on every attempt.
//! - **On one node** the reservation is `Routes::busy_agents` ([`Calls::reserve_agent`]): an
//!   agent in it is rung by one call only. It must be held until every INVITE sent to the agent
//!   has its final answer (and a 2xx that crossed our CANCEL has been ACKed and ended with BYE):
//!   the phone is busy until then, whatever the database says.
//! - **Across nodes** the durable reservation is the agent's state row:
//!   `db::calls::claim_agent` takes the longest-idle qualifying agent with
//!   `for update skip locked` and writes `offer_call_id`/`offer_until` in the same statement, so
//!   two nodes never claim one agent and neither waits for the other; `release_offer`, the
//!   answer (`on_call`) and the end of the call clear it, and `offer_until` (ring timeout plus a
//!   margin) lets a dead node's reservation lapse. A reservation that could not be written (the
//!   database timed out) means no INVITE: the offer is made only after the claim committed.
//!
//! The actor (`call.rs`) still picks with `queue_candidates` plus the in-memory reservation;
//! switching it to `claim_agent` (passing the round's tried agents as `exclude`) is what makes
//! the pick multi-node safe.

mod call;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use domain::{CallId, TenantId, UserId};
use sip::transaction::{Peer, TransactionId};
use sip::{HeaderName, Request, Response, StatusCode};
use tokio::sync::mpsc;

use crate::core::CoreHandle;
use crate::transport::StreamCtx;

/// Settings of the call layer.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Where stereo WAV recordings are written.
    pub recordings_dir: PathBuf,
    /// Queues' hold-music files must lie in here (8 kHz mono 16-bit WAV).
    pub music_dir: PathBuf,
    /// Session-Expires we accept at least (RFC 4028 Min-SE).
    pub min_session_expires: u32,
    /// How often a queued call looks for a free agent when none was available.
    pub queue_retry: std::time::Duration,
    /// Where `sivo` serves HTTP as the outside world reaches it (recording URLs start so).
    pub public_http_url: String,
    /// How long a recording URL in `call.recorded` stays valid.
    pub recording_url_ttl: chrono::Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            recordings_dir: PathBuf::from("recordings"),
            music_dir: PathBuf::from("music"),
            min_session_expires: 90,
            queue_retry: std::time::Duration::from_millis(500),
            public_http_url: "http://127.0.0.1:8080".into(),
            recording_url_ttl: chrono::Duration::hours(24),
        }
    }
}

/// What an actor hears from the SIP side and the API.
// One input moves at a time; boxing the request would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum CallInput {
    /// A request inside one of the call's dialogs (BYE, re-INVITE, INFO, UPDATE, ...).
    Request { transaction: TransactionId, request: Request },
    /// The ACK for a 2xx we sent on one of the call's dialogs.
    Ack,
    /// The caller cancelled the INVITE before we answered.
    Cancelled,
    /// The caller never ACKed our 2xx.
    AckTimeout,
    /// An order from the API.
    Control(Control),
    /// Another call asks for this call's answered leg (REFER with Replaces naming this call's
    /// dialog): given when this is an agent's own call that is up and its legs live on `shard`.
    HandOver { shard: usize, reply: tokio::sync::oneshot::Sender<Option<call::HandedLeg>> },
}

/// Orders the call-control API gives a live call.
#[derive(Debug)]
pub enum Control {
    Hangup,
    /// Blind transfer of the answered call away from its agent. The reply says whether the
    /// destination took it on; when it cannot (unknown, unregistered, unavailable) the call
    /// stays with the agent, and the reason is in the CDR and the answer.
    Transfer {
        target: TransferTarget,
        by: db::audit::Actor,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// Attended transfer, step 1: the caller waits with music while the agent is connected to
    /// `target` (an extension or a number).
    Consult {
        target: TransferTarget,
        by: db::audit::Actor,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// The consulted person takes the caller; the agent leaves.
    CompleteTransfer {
        by: db::audit::Actor,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// The consulted person's leg ends; the agent has the caller back.
    CancelConsult {
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// During a consultation: caller, agent and consulted person hear each other.
    Conference {
        by: db::audit::Actor,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
}

/// Where a blind transfer sends the caller.
#[derive(Debug, Clone)]
pub enum TransferTarget {
    /// An agent's extension in the same tenant.
    Extension(String),
    Queue(uuid::Uuid),
    /// An external number, through the tenant's outbound trunk.
    External(String),
}

impl std::fmt::Display for TransferTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Extension(e) => write!(f, "extension {e}"),
            Self::Queue(q) => write!(f, "queue {q}"),
            Self::External(n) => write!(f, "number {n}"),
        }
    }
}

/// A live call as the API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveCall {
    pub id: CallId,
    pub tenant_id: TenantId,
    pub from: String,
    pub to: String,
    pub state: &'static str,
    pub agent_id: Option<UserId>,
    pub queue_id: Option<uuid::Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

type Inbox = mpsc::UnboundedSender<CallInput>;

#[derive(Default)]
struct Routes {
    /// (Call-ID, our tag) of every dialog a call owns, early ones included.
    dialogs: HashMap<(String, String), Inbox>,
    /// The caller's INVITE server transaction of each call not yet finally answered.
    invites: HashMap<TransactionId, Inbox>,
    calls: HashMap<CallId, (Inbox, LiveCall)>,
    /// Agents some call is ringing or talking to right now.
    busy_agents: HashSet<UserId>,
    /// The media group of the call each agent's phone has a leg in.
    agent_groups: HashMap<UserId, u128>,
}

/// Everything an actor needs from the outside.
pub(crate) struct CallCtx {
    pub(crate) core: CoreHandle,
    pub(crate) db: db::Db,
    pub(crate) media: media::Media,
    pub(crate) streams: StreamCtx,
    pub(crate) node_id: String,
    pub(crate) base_domain: String,
    pub(crate) config: CallConfig,
    pub(crate) urls: crate::RecordingUrls,
    pub(crate) trunks: Arc<crate::trunks::Trunks>,
}

/// The switchboard.
pub(crate) struct Calls {
    ctx: CallCtx,
    routes: Mutex<Routes>,
}

impl Calls {
    pub(crate) fn new(ctx: CallCtx) -> Self {
        Self { ctx, routes: Mutex::default() }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes charge of a new INVITE's CANCEL while the gate decides (`abandon` or
    /// `start_inbound` follows).
    pub(crate) fn expect(&self, transaction: TransactionId) -> (Inbox, mpsc::UnboundedReceiver<CallInput>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes().invites.insert(transaction, tx.clone());
        (tx, rx)
    }

    /// A new inbound INVITE the trunk gate accepted for `tenant`'s `did`.
    pub(crate) fn start_inbound(
        self: &Arc<Self>,
        transaction: TransactionId,
        (tx, rx): (Inbox, mpsc::UnboundedReceiver<CallInput>),
        request: Request,
        peer: Peer,
        tenant: TenantId,
        did: db::trunks::DidRow,
    ) {
        let calls = self.clone();
        tokio::spawn(async move {
            call::run_inbound(calls, tx, rx, transaction, request, peer, tenant, did).await;
        });
    }

    /// A new INVITE from one of our phones, whose Digest credentials are `agent`'s: a call to
    /// another extension or, through the tenant's trunk, to an external number.
    pub(crate) fn start_outbound(
        self: &Arc<Self>,
        transaction: TransactionId,
        (tx, rx): (Inbox, mpsc::UnboundedReceiver<CallInput>),
        request: Request,
        peer: Peer,
        agent: crate::registrar::AgentAuth,
    ) {
        let calls = self.clone();
        tokio::spawn(async move {
            call::run_outbound(calls, tx, rx, transaction, request, peer, agent).await;
        });
    }

    /// The media group for a new call of `agent`: the one of a call they are already on (a
    /// consultation call), so both calls' legs share a media shard and can be joined later.
    fn media_group(&self, agent: UserId, fresh: CallId) -> u128 {
        self.routes().agent_groups.get(&agent).copied().unwrap_or(fresh.as_uuid().as_u128())
    }

    /// `agent`'s phone has a leg in media group `group` (rung or answered; set before the
    /// phone can answer, so a consultation call it places next always finds it).
    fn agent_in_group(&self, agent: UserId, group: u128) {
        self.routes().agent_groups.insert(agent, group);
    }

    /// `agent`'s leg in `group` ended.
    fn agent_left_group(&self, agent: UserId, group: u128) {
        let mut routes = self.routes();
        if routes.agent_groups.get(&agent) == Some(&group) {
            routes.agent_groups.remove(&agent);
        }
    }

    /// Routes a request that carries a To tag. `None` when no call owns the dialog: the
    /// caller answers 481.
    pub(crate) fn route_request(&self, transaction: TransactionId, request: Request) -> Option<Response> {
        let Some(key) = dialog_key(&request) else {
            return Some(Response::for_request(&request, StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST));
        };
        let inbox = self.routes().dialogs.get(&key).cloned();
        match inbox {
            Some(inbox) => match inbox.send(CallInput::Request { transaction, request }) {
                Ok(()) => None,
                Err(mpsc::error::SendError(CallInput::Request { request, .. })) => {
                    Some(Response::for_request(&request, StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST))
                }
                Err(_) => None,
            },
            None => Some(Response::for_request(&request, StatusCode::CALL_TRANSACTION_DOES_NOT_EXIST)),
        }
    }

    /// The call owning the dialog a Replaces header names (RFC 3891): looked up by Call-ID and
    /// whichever of its tags is ours.
    fn owner_of(&self, call_id: &str, tags: [&str; 2]) -> Option<Inbox> {
        let routes = self.routes();
        tags.iter().find_map(|tag| routes.dialogs.get(&(call_id.to_owned(), (*tag).to_owned())).cloned())
    }

    pub(crate) fn on_ack(&self, request: Request) {
        let Some(key) = dialog_key(&request) else { return };
        if let Some(inbox) = self.routes().dialogs.get(&key) {
            let _ = inbox.send(CallInput::Ack);
        }
    }

    pub(crate) fn on_cancelled(&self, invite: TransactionId) -> bool {
        match self.routes().invites.get(&invite) {
            Some(inbox) => inbox.send(CallInput::Cancelled).is_ok(),
            None => false,
        }
    }

    pub(crate) fn on_ack_timeout(&self, invite: TransactionId) {
        if let Some(inbox) = self.routes().invites.get(&invite) {
            let _ = inbox.send(CallInput::AckTimeout);
        }
    }

    fn add_dialog(&self, call_id: &str, local_tag: &str, inbox: &Inbox) {
        self.routes().dialogs.insert((call_id.to_owned(), local_tag.to_owned()), inbox.clone());
    }

    fn remove_dialog(&self, call_id: &str, local_tag: &str) {
        self.routes().dialogs.remove(&(call_id.to_owned(), local_tag.to_owned()));
    }

    pub(crate) fn invite_done(&self, transaction: TransactionId) {
        self.routes().invites.remove(&transaction);
    }

    fn publish(&self, call: LiveCall, inbox: &Inbox) {
        self.routes().calls.insert(call.id, (inbox.clone(), call));
    }

    fn update(&self, id: CallId, change: impl FnOnce(&mut LiveCall)) {
        if let Some((_, call)) = self.routes().calls.get_mut(&id) {
            change(call);
        }
    }

    fn unpublish(&self, id: CallId) {
        self.routes().calls.remove(&id);
    }

    /// Reserves an agent for ringing; `false` if another call has them.
    fn reserve_agent(&self, agent: UserId) -> bool {
        self.routes().busy_agents.insert(agent)
    }

    fn release_agent(&self, agent: UserId) {
        self.routes().busy_agents.remove(&agent);
    }

    /// The tenant's calls in progress on this node.
    pub(crate) fn live(&self, tenant: TenantId) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self
            .routes()
            .calls
            .values()
            .filter(|(_, c)| c.tenant_id == tenant)
            .map(|(_, c)| c.clone())
            .collect();
        calls.sort_by_key(|c| c.created_at);
        calls
    }

    /// Sends an API order to a live call of `tenant`; `false` if there is no such call here.
    pub(crate) fn control(&self, tenant: TenantId, id: CallId, order: Control) -> Result<(), Control> {
        let inbox = match self.routes().calls.get(&id) {
            Some((inbox, call)) if call.tenant_id == tenant => inbox.clone(),
            _ => return Err(order),
        };
        inbox.send(CallInput::Control(order)).map_err(|e| match e.0 {
            CallInput::Control(order) => order,
            _ => Control::Hangup,
        })
    }
}

/// Ends the calls a previous run of this node left open (it crashed or was killed): their CDRs
/// get hang-up cause `system_restart`, their agents are freed. Single-node deployments only:
/// calls carry no node id yet, so a second node would close the first one's live calls.
pub(crate) async fn close_orphans(
    db: &db::Db,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<usize, db::DbError> {
    let mut tenants = Vec::new();
    let mut after = None;
    loop {
        let mut tx = db.platform_tx().await?;
        let page = db::tenants::list(&mut tx, after, 500).await?;
        tx.commit().await?;
        tenants.extend(page.items.iter().map(|t| TenantId(t.id)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut closed = 0;
    let now = chrono::Utc::now();
    for tenant in tenants {
        let mut tx = db.tenant_tx(tenant).await?;
        // Calls this run created meanwhile are alive.
        let open = db::calls::calls_in_progress(&mut tx, tenant).await?;
        for call in open.into_iter().filter(|c| c.created_at < started) {
            let end = db::calls::CallEnd {
                at: now,
                hangup_cause: "system_restart",
                hangup_side: "system",
                legs: serde_json::Value::Null,
                timeline: serde_json::json!([{ "at": now, "leg": "caller", "kind": "call", "detail": { "message": "closed after a restart of the node that handled it" } }]),
                recording: None,
            };
            db::calls::end_call(&mut tx, tenant, CallId(call.id), &end).await?;
            closed += 1;
        }
        db::agent_states::release_stale_on_call(&mut tx, tenant, now).await?;
        tx.commit().await?;
    }
    Ok(closed)
}

/// (Call-ID, To tag) of a request: our tag in whichever dialog it belongs to.
fn dialog_key(request: &Request) -> Option<(String, String)> {
    let call_id = request.headers.call_id().ok()?.to_owned();
    let tag = request.headers.to().ok()?.tag()?.to_owned();
    Some((call_id, tag))
}

/// Whether a request claims to be inside a dialog (its To has a tag).
pub(crate) fn in_dialog(request: &Request) -> bool {
    request.headers.to().is_ok_and(|to| to.tag().is_some())
}

/// Adds `Server`-like identification and the methods we accept inside a call.
fn allow(response: &mut Response) {
    response.headers.push(HeaderName::Allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE");
}

/// A fresh RFC 3261 branch.
fn branch() -> String {
    format!("{}{:016x}{:016x}", sip::BRANCH_MAGIC_COOKIE, rand::random::<u64>(), rand::random::<u64>())
}

fn tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Our address as `peer` sees it, for Via and Contact.
async fn local_towards(streams: &StreamCtx, peer: &Peer) -> SocketAddr {
    crate::trunks::local_addr_towards(peer.addr, streams).await
}
