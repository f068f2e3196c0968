//! G.711 mu-law: decoding, encoding, and a frame's loudness.

/// Decodes one mu-law byte to a 16-bit sample.
pub fn decode(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = byte & 0x0f;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let sample = magnitude - 0x84;
    (if sign != 0 { -sample } else { sample }) as i16
}

/// Encodes one 16-bit sample as mu-law.
pub fn encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut value = i32::from(sample);
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(CLIP) + BIAS;
    let exponent = (7 - (value.leading_zeros() as i32 - 17)).clamp(0, 7);
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Root-mean-square level of a mu-law frame, 0 to 32767.
pub fn rms(frame: &[u8]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|b| f64::from(decode(*b)).powi(2)).sum();
    (sum / frame.len() as f64).sqrt()
}

/// `millis` of mu-law audio: silence, or a tone of `hertz` at about a third of full scale.
pub fn tone(millis: u32, hertz: f64) -> Vec<u8> {
    let samples = millis as usize * 8;
    (0..samples)
        .map(|i| {
            if hertz <= 0.0 {
                encode(0)
            } else {
                let t = i as f64 / 8000.0;
                encode((10_000.0 * (2.0 * std::f64::consts::PI * hertz * t).sin()) as i16)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_within_quantisation() {
        for sample in [-32_000i16, -1_000, -10, 0, 10, 1_000, 32_000] {
            let back = decode(encode(sample));
            let tolerance = (i32::from(sample).abs() / 16).max(8);
            assert!((i32::from(back) - i32::from(sample)).abs() <= tolerance, "{sample} -> {back}");
        }
        assert_eq!(decode(0xff), 0);
    }

    #[test]
    fn tones_are_loud_and_silence_is_not() {
        assert!(rms(&tone(20, 440.0)) > 5_000.0);
        assert!(rms(&tone(20, 0.0)) < 10.0);
    }
}
