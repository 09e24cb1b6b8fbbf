//! Integration tests of the sip crate, one module per behaviour area.

mod auth;
mod dialog;
mod framer;
mod parse;
mod robustness;
mod torture;
mod transaction;
