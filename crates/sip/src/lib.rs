//! SIP protocol core (RFC 3261): message model, parser, transactions, dialogs, digest auth. Sans-IO.
