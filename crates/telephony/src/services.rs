//! The transaction user: prechecks, OPTIONS, and the hand-off of REGISTER and INVITE to the
//! registrar and the INVITE gate.

use sip::transaction::{ConnectionId, Peer, TransactionId};
use sip::{Method, Request, Response, StatusCode};

use crate::SipConfig;
use crate::core::{CoreHandle, Tu};
use crate::policy;

pub(crate) struct Services {
    #[allow(dead_code)]
    config: SipConfig,
}

impl Services {
    pub(crate) fn new(config: SipConfig) -> Self {
        Self { config }
    }
}

impl Tu for Services {
    fn on_request(
        &self,
        _core: &CoreHandle,
        _transaction: TransactionId,
        request: Request,
        _peer: Peer,
    ) -> Option<Response> {
        if let Some(answer) = policy::precheck(&request).or_else(|| policy::simple(&request)) {
            return Some(answer);
        }
        match request.method {
            Method::Register | Method::Invite => {
                Some(Response::for_request(&request, StatusCode::SERVICE_UNAVAILABLE))
            }
            _ => Some(policy::with_allow(Response::for_request(&request, StatusCode::METHOD_NOT_ALLOWED))),
        }
    }

    fn on_connection_closed(&self, _id: ConnectionId) {}
}
