//! Request methods (RFC 3261 §7.1 and the extensions a contact center meets).

use std::fmt;
use std::str::FromStr;

use crate::scan::is_token;

/// A request method. Methods are case-sensitive (RFC 3261 §7.1), so `invite` is an
/// extension method, not INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token, kept verbatim.
    Other(String),
}

impl Method {
    /// Parses a method token; `None` if it is not a token.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "REGISTER" => Self::Register,
            "OPTIONS" => Self::Options,
            "INFO" => Self::Info,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "REFER" => Self::Refer,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other if is_token(other) => Self::Other(other.to_owned()),
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Register => "REGISTER",
            Self::Options => "OPTIONS",
            Self::Info => "INFO",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Other(s) => s,
        }
    }
}

/// Error for [`Method::from_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("method is not a token")]
pub struct InvalidMethod;

impl FromStr for Method {
    type Err = InvalidMethod;
    fn from_str(s: &str) -> Result<Self, InvalidMethod> {
        Self::parse(s).ok_or(InvalidMethod)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::parse("INVITE"), Some(Method::Invite));
        assert_eq!(Method::parse("invite"), Some(Method::Other("invite".into())));
        assert_eq!(Method::parse("IN VITE"), None);
    }
}
