//! Fuzzes the Digest header parsers.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = text.parse::<sip::auth::Challenge>() {
        let again: sip::auth::Challenge = c.to_string().parse().expect("challenge round trip");
        assert_eq!(c, again);
    }
    if let Ok(c) = text.parse::<sip::auth::Credentials>() {
        let again: sip::auth::Credentials = c.to_string().parse().expect("credentials round trip");
        assert_eq!(c, again);
    }
});
