//! SIP protocol core (RFC 3261): message model, parser, transactions, dialogs, digest auth. Sans-IO.
//!
//! This crate never touches sockets, never reads the clock and never draws random numbers
//! on its own: time comes in as `now: Instant` arguments and randomness as caller-supplied
//! generators. It never panics on input; every parser returns a typed error instead.
//!
//! # Layout
//!
//! - [`parse_datagram`] and [`Framer`] turn bytes into a [`Message`]; [`Message::to_bytes`]
//!   turns it back. [`ParseError::disposition`] says whether to answer a broken message
//!   (400, 413/513) or drop it.
//! - [`Request`], [`Response`], [`Headers`] and the typed values ([`Uri`], [`Via`],
//!   [`NameAddr`], [`CSeq`], ...) form the message model. Header values are kept as received;
//!   typed views parse on demand.
//! - [`check_request`] and friends decide the RFC 3261 §8.2 answers (400, 416, 420, 505).
//! - [`auth`] is Digest authentication, server and client side.
//! - [`transaction`] holds the sans-IO [`transaction::Endpoint`]: the four RFC 3261 §17
//!   state machines with RFC 6026, driven by `handle_*(now, ..)` and drained by `poll_*`.
//! - [`dialog`] tracks dialogs (§12) and builds in-dialog requests, ACKs and responses.

#![forbid(unsafe_code)]

pub mod auth;
mod check;
pub mod dialog;
mod framer;
mod header;
mod message;
mod method;
mod name_addr;
mod params;
mod parser;
mod scan;
pub mod transaction;
mod typed;
mod uri;
mod via;

pub use check::{
    Defect, bad_extension_response, check_register, check_request, check_response, unsupported_extensions,
};
pub use framer::{Frame, Framer};
pub use header::{Header, HeaderError, HeaderName, Headers};
pub use message::{Message, Request, Response, StatusCode, Version};
pub use method::{InvalidMethod, Method};
pub use name_addr::{Contacts, InvalidNameAddr, NameAddr};
pub use params::{Param, Params};
pub use parser::{
    Disposition, Limits, ParseError, ParseErrorKind, StartKind, StartLineError, parse_datagram,
    parse_datagram_with,
};
pub use typed::{CSeq, InvalidValue, MediaType};
pub use uri::{Host, OtherUri, SipUri, TelUri, Uri, UriError};
pub use via::{BRANCH_MAGIC_COOKIE, InvalidVia, Transport, Via};
