//! WAV files: the streaming stereo writer behind call recording, and a small reader for
//! playback files and tests.
//!
//! The writer is generic over `Write + Seek` (a file in the driver, a `Cursor` in tests): it
//! writes a header with zero sizes first, appends 20 ms stereo frames as they come, and fixes
//! the RIFF and data sizes on [`StereoWavWriter::finish`] — so a recording cut short by a crash
//! is still a WAV file most tools open, just with wrong sizes.

use std::io::{self, Seek, SeekFrom, Write};

use crate::codec::{CLOCK_RATE, FRAME_SAMPLES};

const HEADER_LEN: u64 = 44;
/// The data chunk cannot grow past what a 32-bit RIFF size can describe.
const MAX_DATA: u64 = u32::MAX as u64 - HEADER_LEN;

/// What a finished recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavSummary {
    /// Sample frames per channel.
    pub frames: u64,
    pub duration_ms: u64,
    /// Size of the whole file.
    pub file_bytes: u64,
}

/// Writes 8 kHz 16-bit stereo PCM, one 20 ms frame at a time.
#[derive(Debug)]
pub struct StereoWavWriter<W: Write + Seek> {
    out: W,
    data_bytes: u64,
    scratch: Vec<u8>,
}

fn header(data_bytes: u32, sample_rate: u32, channels: u16) -> [u8; 44] {
    let block_align = channels * 2;
    let mut h = [0u8; 44];
    let fields: [(usize, &[u8]); 13] = [
        (0, b"RIFF"),
        (4, &data_bytes.saturating_add(36).to_le_bytes()),
        (8, b"WAVE"),
        (12, b"fmt "),
        (16, &16u32.to_le_bytes()),
        (20, &1u16.to_le_bytes()),
        (22, &channels.to_le_bytes()),
        (24, &sample_rate.to_le_bytes()),
        (28, &(sample_rate * u32::from(block_align)).to_le_bytes()),
        (32, &block_align.to_le_bytes()),
        (34, &16u16.to_le_bytes()),
        (36, b"data"),
        (40, &data_bytes.to_le_bytes()),
    ];
    for (at, bytes) in fields {
        if let Some(dst) = h.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    h
}

/// A whole mono or stereo 16-bit PCM WAV image (used by tests and tone fixtures).
pub fn encode_pcm16(sample_rate: u32, channels: u16, interleaved: &[i16]) -> Vec<u8> {
    let data_bytes = (interleaved.len() * 2).min(MAX_DATA as usize) as u32;
    let mut out = header(data_bytes, sample_rate, channels).to_vec();
    for s in interleaved {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

impl<W: Write + Seek> StereoWavWriter<W> {
    /// Starts a file: writes the header with sizes to be fixed by [`Self::finish`].
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&header(0, CLOCK_RATE, 2))?;
        Ok(Self { out, data_bytes: 0, scratch: Vec::with_capacity(FRAME_SAMPLES * 4) })
    }

    /// Appends one 20 ms frame (160 samples per channel). A missing side, or a short one, is
    /// filled with silence; samples beyond 160 are ignored. Frames past the 4 GiB RIFF limit
    /// (about 37 hours) are dropped.
    pub fn write_frame(&mut self, left: Option<&[i16]>, right: Option<&[i16]>) -> io::Result<()> {
        if self.data_bytes + (FRAME_SAMPLES as u64) * 4 > MAX_DATA {
            return Ok(());
        }
        let left = left.unwrap_or_default();
        let right = right.unwrap_or_default();
        self.scratch.clear();
        for i in 0..FRAME_SAMPLES {
            self.scratch.extend_from_slice(&left.get(i).copied().unwrap_or(0).to_le_bytes());
            self.scratch.extend_from_slice(&right.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        self.out.write_all(&self.scratch)?;
        self.data_bytes += self.scratch.len() as u64;
        Ok(())
    }

    /// Sample frames written so far, per channel.
    pub fn frames(&self) -> u64 {
        self.data_bytes / 4
    }

    /// Fixes the sizes in the header, flushes, and hands back the sink.
    pub fn finish(mut self) -> io::Result<(W, WavSummary)> {
        let data = self.data_bytes as u32;
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&data.saturating_add(36).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&data.to_le_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        let frames = self.frames();
        let summary = WavSummary {
            frames,
            duration_ms: frames * 1000 / u64::from(CLOCK_RATE),
            file_bytes: HEADER_LEN + self.data_bytes,
        };
        Ok((self.out, summary))
    }
}

/// Why a WAV file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("WAV file is truncated or has no fmt/data chunk")]
    Truncated,
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
}

/// A decoded 16-bit PCM WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    pub sample_rate: u32,
    pub channels: u16,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

fn le16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

fn le32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([*buf.get(at)?, *buf.get(at + 1)?, *buf.get(at + 2)?, *buf.get(at + 3)?]))
}

impl Wav {
    /// Reads a 16-bit PCM WAV (format 1, or WAVE_FORMAT_EXTENSIBLE with a PCM subformat).
    /// Unknown chunks are skipped; a data size larger than the file (a writer that never
    /// fixed it) is cut to what is there.
    pub fn parse(bytes: &[u8]) -> Result<Self, WavError> {
        if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
            return Err(WavError::NotWave);
        }
        let mut at = 12;
        let mut format = None;
        while let (Some(id), Some(size)) = (bytes.get(at..at + 4), le32(bytes, at + 4)) {
            let body_start = at + 8;
            let size = size as usize;
            match id {
                b"fmt " => {
                    let body = bytes.get(body_start..body_start + size.min(40)).ok_or(WavError::Truncated)?;
                    let mut tag = le16(body, 0).ok_or(WavError::Truncated)?;
                    if tag == 0xFFFE {
                        // WAVE_FORMAT_EXTENSIBLE: the real tag starts the subformat GUID.
                        tag = le16(body, 24).ok_or(WavError::Truncated)?;
                    }
                    let channels = le16(body, 2).ok_or(WavError::Truncated)?;
                    let sample_rate = le32(body, 4).ok_or(WavError::Truncated)?;
                    let bits = le16(body, 14).ok_or(WavError::Truncated)?;
                    if tag != 1 || bits != 16 || channels == 0 {
                        return Err(WavError::Unsupported(format!(
                            "need 16-bit PCM, got format tag {tag}, {bits}-bit, {channels} channel(s)"
                        )));
                    }
                    format = Some((sample_rate, channels));
                }
                b"data" => {
                    let (sample_rate, channels) = format.ok_or(WavError::Truncated)?;
                    let end = body_start.saturating_add(size).min(bytes.len());
                    let data = bytes.get(body_start..end).ok_or(WavError::Truncated)?;
                    let samples = data.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
                    return Ok(Self { sample_rate, channels, samples });
                }
                _ => {}
            }
            // Chunks are padded to an even size.
            at = body_start.saturating_add(size).saturating_add(size & 1);
        }
        Err(WavError::Truncated)
    }

    /// The samples of one channel.
    pub fn channel(&self, index: usize) -> Vec<i16> {
        self.samples.iter().skip(index).step_by(usize::from(self.channels.max(1))).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn stereo_writer_header_and_silence_fill() {
        let mut writer = StereoWavWriter::new(Cursor::new(Vec::new())).unwrap();
        let left = [1000i16; 160];
        let right = [-2000i16; 100];
        writer.write_frame(Some(&left), None).unwrap();
        writer.write_frame(None, Some(&right)).unwrap();
        writer.write_frame(None, None).unwrap();
        let (cursor, summary) = writer.finish().unwrap();
        let bytes = cursor.into_inner();
        assert_eq!(summary, WavSummary { frames: 480, duration_ms: 60, file_bytes: 44 + 480 * 4 });
        assert_eq!(bytes.len() as u64, summary.file_bytes);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(le32(&bytes, 4), Some(36 + 480 * 4));
        assert_eq!(&bytes[8..16], b"WAVEfmt ");
        assert_eq!(le16(&bytes, 20), Some(1), "PCM");
        assert_eq!(le16(&bytes, 22), Some(2), "stereo");
        assert_eq!(le32(&bytes, 24), Some(8000));
        assert_eq!(le32(&bytes, 28), Some(32000), "byte rate");
        assert_eq!(le16(&bytes, 32), Some(4), "block align");
        assert_eq!(le16(&bytes, 34), Some(16));
        assert_eq!(&bytes[36..40], b"data");
        assert_eq!(le32(&bytes, 40), Some(480 * 4));

        let wav = Wav::parse(&bytes).unwrap();
        assert_eq!((wav.sample_rate, wav.channels), (8000, 2));
        let (l, r) = (wav.channel(0), wav.channel(1));
        assert!(l[..160].iter().all(|&s| s == 1000) && l[160..].iter().all(|&s| s == 0));
        assert!(r[..160].iter().all(|&s| s == 0));
        assert!(r[160..260].iter().all(|&s| s == -2000) && r[260..].iter().all(|&s| s == 0));
    }

    #[test]
    fn reader_skips_chunks_and_rejects_garbage() {
        let mono = encode_pcm16(8000, 1, &[1, -1, 300]);
        // Insert an odd-sized LIST chunk (with its pad byte) before fmt.
        let mut with_list = mono[..12].to_vec();
        with_list.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        with_list.extend_from_slice(&mono[12..]);
        let wav = Wav::parse(&with_list).unwrap();
        assert_eq!((wav.sample_rate, wav.channels, wav.samples.clone()), (8000, 1, vec![1, -1, 300]));
        // A data size never fixed by its writer.
        let mut unfixed = mono.clone();
        unfixed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Wav::parse(&unfixed).unwrap().samples, vec![1, -1, 300]);

        assert_eq!(Wav::parse(b"hello"), Err(WavError::NotWave));
        assert_eq!(Wav::parse(&mono[..30]), Err(WavError::Truncated));
        let mut float = mono.clone();
        float[20] = 3;
        assert!(matches!(Wav::parse(&float), Err(WavError::Unsupported(_))));
        let mut eight_bit = mono;
        eight_bit[34] = 8;
        assert!(matches!(Wav::parse(&eight_bit), Err(WavError::Unsupported(_))));
        for len in 0..60 {
            let _ = Wav::parse(&with_list[..len.min(with_list.len())]);
        }
    }
}
