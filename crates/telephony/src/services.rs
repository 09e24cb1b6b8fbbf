//! The transaction user: prechecks, OPTIONS, and the hand-off of REGISTER and INVITE to the
//! registrar and the INVITE gate.

use std::sync::Arc;

use sip::transaction::{ConnectionId, Peer, TransactionId};
use sip::{Method, Request, Response};

use crate::core::{CoreHandle, Tu};
use crate::policy;
use crate::registrar::Registrar;

pub(crate) struct Services {
    pub(crate) registrar: Arc<Registrar>,
    pub(crate) gate: Arc<crate::trunks::Trunks>,
}

impl Tu for Services {
    fn on_request(
        &self,
        core: &CoreHandle,
        transaction: TransactionId,
        request: Request,
        peer: Peer,
    ) -> Option<Response> {
        if let Some(answer) = policy::precheck(&request).or_else(|| policy::simple(&request)) {
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
                let core = core.clone();
                tokio::spawn(async move {
                    let response = gate.invite(&request, &peer).await;
                    core.respond(transaction, response).await;
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
}
