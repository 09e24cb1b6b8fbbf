//! Fuzzes the stream framer with the input cut into chunks whose sizes come from the input
//! itself: framing must not panic, and must not depend on how the bytes were split.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::{Frame, Framer};

fn frames(chunks: &[&[u8]]) -> Vec<Result<Frame, String>> {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    if framer.is_broken() {
                        return out;
                    }
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let size = usize::from(split % 16) + 1;
    let chunked: Vec<&[u8]> = rest.chunks(size).collect();
    let whole = frames(&[rest]);
    let pieces = frames(&chunked);
    // Keep-alive detection legitimately depends on timing of a lone CRLF; compare messages.
    let messages = |v: &[Result<Frame, String>]| -> Vec<sip::Message> {
        v.iter()
            .filter_map(|f| match f {
                Ok(Frame::Message(m)) => Some(m.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(messages(&whole), messages(&pieces));
});
