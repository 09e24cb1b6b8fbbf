//! The transaction user: prechecks, OPTIONS, and the hand-off of REGISTER and INVITE to the
//! registrar and the INVITE gate.

use std::sync::Arc;

use sip::transaction::{ConnectionId, Peer, TransactionId};
use sip::{Method, Request, Response};

use crate::calls::{self, Calls};
use crate::core::{CoreHandle, Tu};
use crate::policy;
use crate::registrar::Registrar;

pub(crate) struct Services {
    pub(crate) registrar: Arc<Registrar>,
    pub(crate) gate: Arc<crate::trunks::Trunks>,
    pub(crate) calls: Arc<Calls>,
}

impl Tu for Services {
    fn on_request(
        &self,
        core: &CoreHandle,
        transaction: TransactionId,
        request: Request,
        peer: Peer,
    ) -> Option<Response> {
        if let Some(answer) = policy::precheck(&request) {
            return Some(answer);
        }
        // Requests inside a dialog belong to the call that owns it (481 if none does).
        if request.method != Method::Register && calls::in_dialog(&request) {
            return self.calls.route_request(transaction, request);
        }
        if let Some(answer) = policy::simple(&request) {
            return Some(answer);
        }
        match request.method {
            Method::Register => {
                let registrar = self.registrar.clone();
                let core = core.clone();
                tokio::spawn(async move {
                    let response = registrar.register(request, peer).await;
                    core.respond(transaction, response).await;
                });
                None
            }
            Method::Invite => {
                let gate = self.gate.clone();
                let registrar = self.registrar.clone();
                let calls = self.calls.clone();
                let core = core.clone();
                let inbox = calls.expect(transaction);
                tokio::spawn(async move {
                    // One of our phones places a call when its From is an agent's AOR in a
                    // tenant's SIP domain; everything else must come from a trunk.
                    let from_host =
                        request.headers.from().ok().and_then(|f| f.uri.as_sip().map(|u| u.host.to_string()));
                    let from_phone = match &from_host {
                        Some(host) => registrar.is_tenant_domain(host).await,
                        None => false,
                    };
                    let refusal = if from_phone {
                        match registrar.authenticate_invite(&request, &peer).await {
                            Ok(agent) => {
                                calls.start_outbound(transaction, inbox, request, peer, agent);
                                return;
                            }
                            Err(refusal) => refusal,
                        }
                    } else {
                        match gate.route(&request, &peer).await {
                            Ok((tenant, did)) => {
                                calls.start_inbound(transaction, inbox, request, peer, tenant, did);
                                return;
                            }
                            Err(refusal) => refusal,
                        }
                    };
                    let mut refusal = refusal;
                    if refusal.headers.to().is_ok_and(|to| to.tag().is_none()) {
                        refusal.set_to_tag(&format!("{:016x}", rand::random::<u64>()));
                    }
                    calls.invite_done(transaction);
                    core.respond(transaction, refusal).await;
                });
                None
            }
            _ => {
                Some(policy::with_allow(Response::for_request(&request, sip::StatusCode::METHOD_NOT_ALLOWED)))
            }
        }
    }

    fn on_connection_closed(&self, id: ConnectionId) {
        self.registrar.connection_closed(id);
    }

    fn on_ack(&self, request: Request, _peer: Peer) {
        self.calls.on_ack(request);
    }

    fn on_cancelled(&self, invite: TransactionId) -> bool {
        self.calls.on_cancelled(invite)
    }

    fn on_ack_timeout(&self, invite: TransactionId) {
        self.calls.on_ack_timeout(invite);
    }
}
