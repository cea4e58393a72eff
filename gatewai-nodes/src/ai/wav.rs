//! Wraps raw PCM (Gemini's speech: `audio/L16;codec=pcm;rate=24000`, 16-bit little-endian
//! mono) in a WAV file.

/// The sample rate and channel count of an `audio/L16` / `audio/pcm` mime type, or `None` when
/// the mime type is not raw PCM or its parameters cannot go in a WAV header (a byte rate past
/// `u32`, a block past `u16`).
pub(crate) fn pcm_format(mime_type: &str) -> Option<(u32, u16)> {
    let mut params = mime_type.split(';').map(str::trim);
    let essence = params.next()?.to_ascii_lowercase();
    if essence != "audio/l16" && essence != "audio/pcm" {
        return None;
    }
    let mut rate: u32 = 24_000;
    let mut channels: u16 = 1;
    for param in params {
        if let Some((name, value)) = param.split_once('=') {
            match name.trim().to_ascii_lowercase().as_str() {
                "rate" => rate = value.trim().parse().ok().filter(|r| *r > 0)?,
                "channels" => channels = value.trim().parse().ok().filter(|c| *c > 0)?,
                _ => {}
            }
        }
    }
    let block_align = channels.checked_mul(2)?;
    rate.checked_mul(u32::from(block_align))?;
    Some((rate, channels))
}

/// A WAV file (RIFF, PCM, 16 bits per sample) holding `pcm`; `None` when the header's fields
/// cannot hold the format or the length (see [`pcm_format`]).
pub(crate) fn wav_from_pcm16(pcm: &[u8], sample_rate: u32, channels: u16) -> Option<Vec<u8>> {
    let data_len = u32::try_from(pcm.len()).ok()? & !1;
    let riff_len = data_len.checked_add(36)?;
    let block_align = channels.checked_mul(2)?;
    let byte_rate = sample_rate.checked_mul(u32::from(block_align))?;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&riff_len.to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&sample_rate.to_le_bytes());
    wav.extend_from_slice(&byte_rate.to_le_bytes());
    wav.extend_from_slice(&block_align.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.extend_from_slice(&pcm[..data_len as usize]);
    Some(wav)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_mime_types() {
        assert_eq!(
            pcm_format("audio/L16;codec=pcm;rate=24000"),
            Some((24_000, 1))
        );
        assert_eq!(
            pcm_format("audio/pcm; rate=16000; channels=2"),
            Some((16_000, 2))
        );
        assert_eq!(pcm_format("audio/wav"), None);
        assert_eq!(pcm_format("audio/L16;rate=zero"), None);
        // Past what a WAV header holds.
        assert_eq!(pcm_format("audio/L16;rate=4000000000"), None);
        assert_eq!(pcm_format("audio/L16;channels=65535"), None);
        assert_eq!(wav_from_pcm16(&[0, 0], u32::MAX, 1), None);
        assert_eq!(wav_from_pcm16(&[0, 0], 8000, u16::MAX), None);
    }

    #[test]
    fn wav_header_is_canonical() {
        let wav = wav_from_pcm16(&[1, 0, 2, 0, 3], 24_000, 1).unwrap();
        assert_eq!(wav.len(), 44 + 4);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()), 40);
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
        assert_eq!(u32::from_le_bytes(wav[28..32].try_into().unwrap()), 48_000);
        assert_eq!(u16::from_le_bytes(wav[34..36].try_into().unwrap()), 16);
        assert_eq!(&wav[36..40], b"data");
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 4);
        assert_eq!(infer::get(&wav).map(|t| t.mime_type()), Some("audio/x-wav"));
    }
}
