//! Generated audio, 20 ms at a time: music on hold, ringback, and looping WAV playback.
//!
//! Generators compute each sample from its index in a fixed-length loop, so they are
//! deterministic, never drift, and start every loop cleanly (no clicks at the seam).

use std::f64::consts::TAU;

use crate::codec::{CLOCK_RATE, CodecKind, FRAME_SAMPLES};
use crate::wav::{Wav, WavError};

/// A source of 8 kHz mono PCM, one 20 ms frame per call.
pub trait FrameSource {
    fn next_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]);

    /// The next frame encoded in `codec`, appended to `out`.
    fn next_encoded(&mut self, codec: CodecKind, out: &mut Vec<u8>) {
        let mut frame = [0i16; FRAME_SAMPLES];
        self.next_frame(&mut frame);
        codec.encode(&frame, out);
    }
}

/// Root-mean-square level of PCM samples (0 for silence, ~23170 for a full-scale sine).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

fn sine(frequency: f64, n: u64) -> f64 {
    (TAU * frequency * n as f64 / f64::from(CLOCK_RATE)).sin()
}

/// The default hold music: a soft arpeggio over C – Am – F – G with a bass note under each
/// chord, 2 s per chord, looping every 8 s. Not silence, so callers know they are still
/// connected, and not a beep, so they stay.
#[derive(Debug, Clone, Default)]
pub struct MusicOnHold {
    n: u64,
}

const CHORD_SAMPLES: u64 = 2 * CLOCK_RATE as u64;
const NOTE_SAMPLES: u64 = CHORD_SAMPLES / 8;
/// Four notes of each chord, low to high (Hz).
const CHORDS: [[f64; 4]; 4] = [
    [261.63, 329.63, 392.00, 523.25], // C
    [220.00, 261.63, 329.63, 440.00], // Am
    [174.61, 220.00, 261.63, 349.23], // F
    [196.00, 246.94, 293.66, 392.00], // G
];
/// Which chord note each of the 8 arpeggio steps plays.
const ARPEGGIO: [usize; 8] = [0, 1, 2, 3, 2, 1, 2, 1];

impl MusicOnHold {
    pub fn new() -> Self {
        Self::default()
    }

    fn sample(n: u64) -> i16 {
        let n = n % (CHORD_SAMPLES * CHORDS.len() as u64);
        let chord = CHORDS.get((n / CHORD_SAMPLES) as usize).copied().unwrap_or_default();
        let in_chord = n % CHORD_SAMPLES;
        let step = ARPEGGIO.get((in_chord / NOTE_SAMPLES) as usize).copied().unwrap_or_default();
        let note = chord.get(step).copied().unwrap_or(261.63);
        let in_note = in_chord % NOTE_SAMPLES;
        // A quick 10 ms attack, then a decay that reaches zero at the note's end: no clicks.
        let t = in_note as f64 / NOTE_SAMPLES as f64;
        let attack = (in_note as f64 / 80.0).min(1.0);
        let envelope = attack * (1.0 - t) * (1.0 - t);
        let melody = envelope * (sine(note, in_note) + 0.3 * sine(note * 2.0, in_note));
        // The bass swells and fades over the whole chord.
        let bass_note = chord.first().copied().unwrap_or(261.63) / 2.0;
        let bass =
            (std::f64::consts::PI * in_chord as f64 / CHORD_SAMPLES as f64).sin() * sine(bass_note, in_chord);
        ((0.22 * melody + 0.12 * bass) * 32767.0) as i16
    }
}

/// One whole loop of the tune (8 s, 128 KB), computed once: every queued caller plays it, and
/// the per-sample sines cost about a tenth of the media CPU at a few hundred waiting callers.
static MUSIC_LOOP: std::sync::LazyLock<Vec<i16>> =
    std::sync::LazyLock::new(|| (0..CHORD_SAMPLES * CHORDS.len() as u64).map(MusicOnHold::sample).collect());

impl FrameSource for MusicOnHold {
    fn next_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        let tune = &*MUSIC_LOOP;
        for s in frame.iter_mut() {
            *s = tune.get((self.n % tune.len().max(1) as u64) as usize).copied().unwrap_or(0);
            self.n += 1;
        }
    }
}

/// Which country's ringback cadence to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RingbackStyle {
    /// 440 + 480 Hz, 2 s on, 4 s off.
    #[default]
    NorthAmerica,
    /// 425 Hz, 1 s on, 4 s off (ITU-T E.180, most of Europe).
    Europe,
}

/// The ringing tone a caller hears while the other side is alerted. Starts with tone.
#[derive(Debug, Clone, Default)]
pub struct Ringback {
    style: RingbackStyle,
    n: u64,
}

impl Ringback {
    pub fn new(style: RingbackStyle) -> Self {
        Self { style, n: 0 }
    }

    fn sample(&self, n: u64) -> i16 {
        let second = u64::from(CLOCK_RATE);
        let (on, period) = match self.style {
            RingbackStyle::NorthAmerica => (2 * second, 6 * second),
            RingbackStyle::Europe => (second, 5 * second),
        };
        let n = n % period;
        if n >= on {
            return 0;
        }
        // About −13 dBm0 in total: audible, well below clipping.
        let value = match self.style {
            RingbackStyle::NorthAmerica => 0.5 * (sine(440.0, n) + sine(480.0, n)),
            RingbackStyle::Europe => sine(425.0, n),
        };
        (value * 0.2 * 32767.0) as i16
    }
}

impl FrameSource for Ringback {
    fn next_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        for s in frame.iter_mut() {
            *s = self.sample(self.n);
            self.n += 1;
        }
    }
}

/// Loops the samples of an 8 kHz mono 16-bit WAV file.
#[derive(Debug, Clone)]
pub struct FilePlayback {
    samples: Vec<i16>,
    position: usize,
}

impl FilePlayback {
    /// Takes a decoded WAV; only 8 kHz mono is accepted for now (no resampling or downmix yet).
    pub fn new(wav: Wav) -> Result<Self, WavError> {
        if wav.sample_rate != CLOCK_RATE || wav.channels != 1 {
            return Err(WavError::Unsupported(format!(
                "playback needs 8000 Hz mono 16-bit PCM, this file is {} Hz with {} channel(s)",
                wav.sample_rate, wav.channels
            )));
        }
        if wav.samples.is_empty() {
            return Err(WavError::Unsupported("playback file has no samples".to_owned()));
        }
        Ok(Self { samples: wav.samples, position: 0 })
    }

    /// Reads and checks a WAV image.
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Self, WavError> {
        Self::new(Wav::parse(bytes)?)
    }
}

impl FrameSource for FilePlayback {
    fn next_frame(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        for s in frame.iter_mut() {
            if self.position >= self.samples.len() {
                self.position = 0;
            }
            *s = self.samples.get(self.position).copied().unwrap_or(0);
            self.position += 1;
        }
    }
}

/// Energy at `frequency` (Goertzel) in 8 kHz samples, normalised by length: what the unit
/// tests use to hear a tone.
#[cfg(test)]
pub(crate) fn tone_power(samples: &[i16], frequency: f64) -> f64 {
    let coeff = 2.0 * (TAU * frequency / f64::from(CLOCK_RATE)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).sqrt() / samples.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wav::encode_pcm16;

    fn frames(source: &mut impl FrameSource, count: usize) -> Vec<i16> {
        let mut all = Vec::new();
        let mut frame = [0; FRAME_SAMPLES];
        for _ in 0..count {
            source.next_frame(&mut frame);
            all.extend_from_slice(&frame);
        }
        all
    }

    #[test]
    fn hold_music_is_audible_varied_and_loops() {
        let mut moh = MusicOnHold::new();
        let loop_frames = 8 * 50;
        let audio = frames(&mut moh, loop_frames * 2);
        // Every 250 ms note is audible; nothing clips.
        for note in audio.chunks(2000) {
            assert!(rms(note) > 1500.0, "a quiet note: {}", rms(note));
        }
        assert!(audio.iter().all(|s| s.unsigned_abs() < 16000));
        // Several pitches: the chords differ.
        let c_chord = &audio[..16000];
        let am_chord = &audio[16000..32000];
        assert!(tone_power(c_chord, 392.0) > 4.0 * tone_power(am_chord, 392.0), "G4 sounds in C, not in Am");
        // The pattern repeats exactly.
        assert_eq!(audio[..64000], audio[64000..]);
        // It survives G.711: encoded frames are not digital silence.
        let mut encoded = Vec::new();
        moh.next_encoded(CodecKind::Pcmu, &mut encoded);
        assert_eq!(encoded.len(), 160);
        assert!(encoded.iter().filter(|&&b| b != 0xFF && b != 0x7F).count() > 100);
    }

    #[test]
    fn ringback_cadences() {
        let mut us = Ringback::new(RingbackStyle::NorthAmerica);
        let audio = frames(&mut us, 300); // 6 s
        let (on, off) = audio.split_at(16000);
        assert!(rms(on) > 3000.0);
        assert!(off.iter().all(|&s| s == 0));
        assert!(tone_power(on, 440.0) > 10.0 * tone_power(on, 425.0 + 200.0));
        assert!(tone_power(on, 480.0) > 1000.0);

        let mut eu = Ringback::new(RingbackStyle::Europe);
        let audio = frames(&mut eu, 250); // 5 s
        assert!(rms(&audio[..8000]) > 3000.0);
        assert!(audio[8000..].iter().all(|&s| s == 0));
        assert!(tone_power(&audio[..8000], 425.0) > 10.0 * tone_power(&audio[..8000], 480.0));
    }

    #[test]
    fn file_playback_loops_and_rejects_other_formats() {
        let samples: Vec<i16> = (0..100).collect();
        let mut player = FilePlayback::from_wav_bytes(&encode_pcm16(8000, 1, &samples)).unwrap();
        let audio = frames(&mut player, 2);
        assert_eq!(audio[..100], samples[..]);
        assert_eq!(audio[100..200], samples[..]);
        assert_eq!(audio[200..300], samples[..]);
        assert_eq!(audio[300..], samples[..20]);

        let err = FilePlayback::from_wav_bytes(&encode_pcm16(16000, 1, &samples)).unwrap_err();
        assert!(err.to_string().contains("8000 Hz mono"), "{err}");
        assert!(FilePlayback::from_wav_bytes(&encode_pcm16(8000, 2, &samples)).is_err());
        assert!(FilePlayback::from_wav_bytes(&encode_pcm16(8000, 1, &[])).is_err());
    }
}
