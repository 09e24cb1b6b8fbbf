//! Integration tests of the sip crate, one module per behaviour area.

mod framer;
mod parse;
mod torture;
