//! G.711 μ-law (PCMU) and A-law (PCMA) companding between 16-bit linear PCM and 8-bit codes.
//!
//! Bit arithmetic after ITU-T G.711 (the classic CCITT/Sun reference shapes). Every function is a
//! `const fn` so the two 256-entry transcoding tables ([`ULAW_TO_ALAW`], [`ALAW_TO_ULAW`]) are
//! built at compile time: relaying PCMU↔PCMA is then one table lookup per byte.

/// μ-law bias added before finding the segment (the encoder works on magnitude + 0x84).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude μ-law can represent once the bias is added (32635 + 132 = 32767).
const ULAW_CLIP: i32 = 32635;

/// Encodes one linear sample as μ-law.
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let sign: i32 = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS;
    // The segment (exponent) is the position of the highest set bit above bit 7.
    let highest = 31 - (pcm as u32).leading_zeros() as i32;
    let mut exponent = highest - 7;
    if exponent < 0 {
        exponent = 0;
    }
    if exponent > 7 {
        exponent = 7;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one μ-law code to linear PCM (range ±32124).
pub const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code as i32;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0F;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 { -magnitude as i16 } else { magnitude as i16 }
}

/// Encodes one linear sample as A-law.
pub const fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13 bits of magnitude.
    let mut pcm = (sample as i32) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // Segment = number of bits above the 5-bit first segment, 0..=7; 8 means "clip".
    let mut segment = 0;
    while segment < 8 && pcm >= (0x20 << segment) {
        segment += 1;
    }
    if segment >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mantissa = if segment < 2 { (pcm >> 1) & 0x0F } else { (pcm >> segment) & 0x0F };
    (((segment << 4) | mantissa) ^ mask) as u8
}

/// Decodes one A-law code to linear PCM (range ±32256).
pub const fn alaw_to_linear(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut magnitude = (a & 0x0F) << 4;
    let segment = (a & 0x70) >> 4;
    magnitude = match segment {
        0 => magnitude + 8,
        1 => magnitude + 0x108,
        _ => (magnitude + 0x108) << (segment - 1),
    };
    if a & 0x80 != 0 { magnitude as i16 } else { -magnitude as i16 }
}

const fn build_ulaw_to_alaw() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = linear_to_alaw(ulaw_to_linear(i as u8));
        i += 1;
    }
    table
}

const fn build_alaw_to_ulaw() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = linear_to_ulaw(alaw_to_linear(i as u8));
        i += 1;
    }
    table
}

/// μ-law code → A-law code of the same decoded value (nearest representable).
pub static ULAW_TO_ALAW: [u8; 256] = build_ulaw_to_alaw();
/// A-law code → μ-law code of the same decoded value (nearest representable).
pub static ALAW_TO_ULAW: [u8; 256] = build_alaw_to_ulaw();

/// Encodes `pcm` as μ-law, appending to `out`.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
}

/// Encodes `pcm` as A-law, appending to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
}

/// Decodes μ-law `codes`, appending to `out`.
pub fn decode_ulaw(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| ulaw_to_linear(c)));
}

/// Decodes A-law `codes`, appending to `out`.
pub fn decode_alaw(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| alaw_to_linear(c)));
}

/// Rewrites μ-law bytes as A-law in place.
pub fn ulaw_to_alaw_in_place(bytes: &mut [u8]) {
    for b in bytes {
        *b = ULAW_TO_ALAW[usize::from(*b)];
    }
}

/// Rewrites A-law bytes as μ-law in place.
pub fn alaw_to_ulaw_in_place(bytes: &mut [u8]) {
    for b in bytes {
        *b = ALAW_TO_ULAW[usize::from(*b)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xCE), 988);
        assert_eq!(ulaw_to_linear(0xF0), 120);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(linear_to_alaw(1000), 0xFA);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xFA), 1008);
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            // 0x7F is μ-law's negative zero: it decodes to 0, which encodes as positive zero.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(linear_to_ulaw(ulaw_to_linear(code)), expected, "ulaw {code:#04x}");
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "alaw {code:#04x}");
        }
    }

    #[test]
    fn encoding_is_monotonic_and_close() {
        let mut previous_u = ulaw_to_linear(linear_to_ulaw(i16::MIN));
        let mut previous_a = alaw_to_linear(linear_to_alaw(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(s));
            let a = alaw_to_linear(linear_to_alaw(s));
            assert!(u >= previous_u && a >= previous_a, "not monotonic at {s}");
            previous_u = u;
            previous_a = a;
            // Quantisation error is at most half a step, and steps are at most 1/16 of the magnitude.
            let tolerance = (i32::from(s).abs() / 16).max(16);
            assert!((i32::from(u) - i32::from(s)).abs() <= tolerance, "ulaw error at {s}: {u}");
            assert!((i32::from(a) - i32::from(s)).abs() <= tolerance, "alaw error at {s}: {a}");
        }
    }

    #[test]
    fn transcoding_tables_preserve_values() {
        for code in 0..=255u8 {
            let u = i32::from(ulaw_to_linear(code));
            let a = i32::from(alaw_to_linear(ULAW_TO_ALAW[usize::from(code)]));
            assert!((u - a).abs() <= (u.abs() / 16).max(16), "{code:#04x}: {u} vs {a}");
        }
        let mut bytes = [0xFFu8, 0x80, 0x00];
        ulaw_to_alaw_in_place(&mut bytes);
        assert_eq!(bytes, [0xD5, 0xAA, 0x2A]);
        alaw_to_ulaw_in_place(&mut bytes);
        // A-law has no zero: its quietest code (±8) becomes μ-law's ±8, not 0.
        assert_eq!(bytes, [0xFE, 0x80, 0x00]);
    }

    #[test]
    fn slice_helpers() {
        let mut codes = Vec::new();
        encode_ulaw(&[0, 1000, -1000], &mut codes);
        assert_eq!(codes, [0xFF, 0xCE, 0x4E]);
        let mut pcm = Vec::new();
        decode_ulaw(&codes, &mut pcm);
        assert_eq!(pcm, [0, 988, -988]);
        codes.clear();
        encode_alaw(&[0, 1000], &mut codes);
        pcm.clear();
        decode_alaw(&codes, &mut pcm);
        assert_eq!(pcm, [8, 1008]);
    }
}
