//! The pipeline's settings, read from `wasi:config/store` (non-secret: the API key is
//! injected by the host and never seen here).

use std::fmt;

/// Everything the pipeline can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Deepgram's live endpoint, without a query.
    pub deepgram_url: String,
    /// `model`, e.g. `nova-3`.
    pub model: String,
    /// `language`, when set.
    pub language: Option<String>,
    /// `interim_results`.
    pub interim_results: bool,
    /// `endpointing`: milliseconds of silence, or `false`.
    pub endpointing: String,
    /// `utterance_end_ms`, when set (needs interim results).
    pub utterance_end_ms: Option<u32>,
    /// `vad_events`.
    pub vad_events: bool,
    /// `smart_format`.
    pub smart_format: bool,
    /// `punctuate`.
    pub punctuate: bool,
    /// Audio per binary frame sent to Deepgram, milliseconds (20 to 250).
    pub batch_ms: u32,
    /// KeepAlive after this long without sending audio, milliseconds.
    pub keepalive_ms: u64,
    /// Audio kept for replay after a reconnect, milliseconds.
    pub replay_buffer_ms: u64,
    /// First reconnect delay, milliseconds (doubles per attempt, with jitter).
    pub reconnect_base_ms: u64,
    /// Longest reconnect delay, milliseconds.
    pub reconnect_max_ms: u64,
    /// Consecutive failed connects before giving up.
    pub max_reconnects: u32,
    /// After the call ends, how long to wait for Deepgram's final results, milliseconds.
    pub final_wait_ms: u64,
    /// Flux: the end-of-turn confidence threshold (`eot_threshold`), when set.
    pub eot_threshold: Option<f64>,
    /// Flux: the longest silence before a turn ends (`eot_timeout_ms`), when set.
    pub eot_timeout_ms: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deepgram_url: "wss://api.deepgram.com/v1/listen".to_owned(),
            model: "nova-3".to_owned(),
            language: None,
            interim_results: true,
            endpointing: "300".to_owned(),
            utterance_end_ms: Some(1000),
            vad_events: true,
            smart_format: true,
            punctuate: true,
            batch_ms: 40,
            keepalive_ms: 4_000,
            replay_buffer_ms: 30_000,
            reconnect_base_ms: 250,
            reconnect_max_ms: 5_000,
            max_reconnects: 8,
            final_wait_ms: 5_000,
            eot_threshold: None,
            eot_timeout_ms: None,
        }
    }
}

/// A setting whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The key.
    pub key: &'static str,
    /// What was expected.
    pub expected: &'static str,
    /// The value given.
    pub value: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "setting `{}` = {:?}: expected {}", self.key, self.value, self.expected)
    }
}

impl Settings {
    /// Reads every setting through `lookup`; absent keys keep their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
        let mut s = Settings::default();
        let flag = |key: &'static str, default: bool| flag(&lookup, key, default);
        let number = |key: &'static str, default: u64, min: u64, max: u64, expected: &'static str| {
            number(&lookup, key, default, min..=max, expected)
        };
        if let Some(url) = lookup("deepgram_url") {
            if !(url.starts_with("wss://") || url.starts_with("ws://")) || url.contains('?') {
                return Err(SettingError { key: "deepgram_url", expected: "a ws:// or wss:// URL without a query", value: url });
            }
            s.deepgram_url = url;
        }
        let flux = s.deepgram_url.trim_end_matches('/').ends_with("/v2/listen");
        match lookup("model") {
            Some(model) if flux != model.starts_with("flux") => {
                let expected =
                    if flux { "a `flux-*` model for a /v2/listen URL" } else { "a /v1/listen model (`flux-*` needs a /v2/listen URL)" };
                return Err(SettingError { key: "model", expected, value: model });
            }
            Some(model) => s.model = model,
            None if flux => s.model = "flux-general-en".to_owned(),
            None => {}
        }
        if let Some(text) = lookup("eot_threshold") {
            let value = text.trim().parse::<f64>().ok().filter(|t| (0.5..=1.0).contains(t));
            s.eot_threshold = Some(value.ok_or(SettingError { key: "eot_threshold", expected: "0.5 to 1.0 (Flux only)", value: text })?);
        }
        if lookup("eot_timeout_ms").is_some() {
            s.eot_timeout_ms = Some(number("eot_timeout_ms", 5_000, 500, 60_000, "500 to 60000 ms (Flux only)")? as u32);
        }
        s.language = lookup("language").or(s.language);
        s.interim_results = flag("interim_results", s.interim_results)?;
        if let Some(endpointing) = lookup("endpointing") {
            if endpointing != "false" && endpointing.parse::<u32>().is_err() {
                return Err(SettingError { key: "endpointing", expected: "milliseconds or `false`", value: endpointing });
            }
            s.endpointing = endpointing;
        }
        s.utterance_end_ms = match lookup("utterance_end_ms").as_deref() {
            None => s.utterance_end_ms,
            Some("false") | Some("") => None,
            Some(_) => Some(number("utterance_end_ms", 1000, 1000, 5000, "1000 to 5000 ms, or `false`")? as u32),
        };
        s.vad_events = flag("vad_events", s.vad_events)?;
        s.smart_format = flag("smart_format", s.smart_format)?;
        s.punctuate = flag("punctuate", s.punctuate)?;
        s.batch_ms = number("batch_ms", u64::from(s.batch_ms), 20, 250, "20 to 250 (ms of audio per frame)")? as u32;
        s.keepalive_ms = number("keepalive_ms", s.keepalive_ms, 1_000, 9_000, "1000 to 9000 ms")?;
        s.replay_buffer_ms = number("replay_buffer_ms", s.replay_buffer_ms, 1_000, 600_000, "1000 to 600000 ms")?;
        s.reconnect_base_ms = number("reconnect_base_ms", s.reconnect_base_ms, 10, 60_000, "10 to 60000 ms")?;
        s.reconnect_max_ms = number("reconnect_max_ms", s.reconnect_max_ms, s.reconnect_base_ms, 300_000, "at least reconnect_base_ms")?;
        s.max_reconnects = number("max_reconnects", u64::from(s.max_reconnects), 0, 1_000, "0 to 1000")? as u32;
        s.final_wait_ms = number("final_wait_ms", s.final_wait_ms, 100, 60_000, "100 to 60000 ms")?;
        if s.utterance_end_ms.is_some() && !s.interim_results {
            return Err(SettingError {
                key: "utterance_end_ms",
                expected: "interim_results = true (Deepgram requires it)",
                value: "set".to_owned(),
            });
        }
        Ok(s)
    }

    /// The endpoint is Flux (`/v2/listen`): turns end with `EndOfTurn`, not `speech_final`.
    pub fn flux(&self) -> bool {
        self.deepgram_url.trim_end_matches('/').ends_with("/v2/listen")
    }

    /// The Deepgram URL with the query for telephone audio (mu-law, 8 kHz, mono).
    pub fn listen_url(&self) -> String {
        if self.flux() {
            let mut query = vec![("model", self.model.clone()), ("encoding", "mulaw".to_owned()), ("sample_rate", "8000".to_owned())];
            if let Some(threshold) = self.eot_threshold {
                query.push(("eot_threshold", threshold.to_string()));
            }
            if let Some(ms) = self.eot_timeout_ms {
                query.push(("eot_timeout_ms", ms.to_string()));
            }
            let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={}", encode(&v))).collect();
            return format!("{}?{}", self.deepgram_url, query.join("&"));
        }
        let mut query = vec![
            ("model", self.model.clone()),
            ("encoding", "mulaw".to_owned()),
            ("sample_rate", "8000".to_owned()),
            ("channels", "1".to_owned()),
            ("interim_results", self.interim_results.to_string()),
            ("endpointing", self.endpointing.clone()),
            ("vad_events", self.vad_events.to_string()),
            ("smart_format", self.smart_format.to_string()),
            ("punctuate", self.punctuate.to_string()),
        ];
        if let Some(language) = &self.language {
            query.push(("language", language.clone()));
        }
        if let Some(ms) = self.utterance_end_ms {
            query.push(("utterance_end_ms", ms.to_string()));
        }
        let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={}", encode(&v))).collect();
        format!("{}?{}", self.deepgram_url, query.join("&"))
    }

    /// Bytes of mu-law audio per frame sent to Deepgram (8 bytes per millisecond).
    pub fn batch_bytes(&self) -> usize {
        self.batch_ms as usize * BYTES_PER_MS
    }

    /// Bytes of audio kept for replay.
    pub fn replay_buffer_bytes(&self) -> usize {
        self.replay_buffer_ms as usize * BYTES_PER_MS
    }
}

/// Mu-law at 8 kHz mono: one byte per sample.
pub const BYTES_PER_MS: usize = 8;

/// A `true` / `false` setting through `lookup`; `default` when unset.
pub fn flag(lookup: &impl Fn(&str) -> Option<String>, key: &'static str, default: bool) -> Result<bool, SettingError> {
    match lookup(key).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(SettingError { key, expected: "`true` or `false`", value: other.to_owned() }),
    }
}

/// A whole-number setting in `range` through `lookup`; `default` when unset; `expected`
/// says what is wanted when the value is refused.
pub fn number(
    lookup: &impl Fn(&str) -> Option<String>,
    key: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    expected: &'static str,
) -> Result<u64, SettingError> {
    match lookup(key) {
        None => Ok(default),
        Some(text) => text.trim().parse::<u64>().ok().filter(|n| range.contains(n)).ok_or(SettingError { key, expected, value: text }),
    }
}

/// Percent-encodes a query value or path segment (unreserved characters pass).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, SettingError> {
        Settings::from_lookup(|key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn the_readme_lists_every_setting_and_only_those() {
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|key| {
            read.borrow_mut().insert(key.to_owned());
            None
        })
        .expect("defaults");
        let readme = include_str!("../../../README.md");
        let start = readme.find("Settings (`[components.NAME.settings]`").expect("README lists the settings");
        let documented: std::collections::BTreeSet<String> = readme[start..]
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .flat_map(|row| row.split('|').nth(1).unwrap_or_default().split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>())
            .collect();
        assert_eq!(documented, read.into_inner(), "README's settings differ from what the pipeline reads");
    }

    #[test]
    fn a_v2_url_is_flux_with_a_flux_model_and_its_own_query() {
        let s = from(&[("deepgram_url", "wss://api.deepgram.com/v2/listen"), ("eot_threshold", "0.8"), ("eot_timeout_ms", "3000")])
            .expect("flux");
        assert!(s.flux());
        assert_eq!(
            s.listen_url(),
            "wss://api.deepgram.com/v2/listen?model=flux-general-en&encoding=mulaw&sample_rate=8000&eot_threshold=0.8&eot_timeout_ms=3000"
        );
        assert_eq!(from(&[("deepgram_url", "wss://x/v2/listen"), ("model", "nova-3")]).expect_err("not flux").key, "model");
        assert_eq!(from(&[("model", "flux-general-en")]).expect_err("v1 url").key, "model");
        assert_eq!(from(&[("eot_threshold", "0.2")]).expect_err("range").key, "eot_threshold");
        assert!(!Settings::default().flux());
    }

    #[test]
    fn defaults_build_a_telephony_url() {
        let url = Settings::default().listen_url();
        assert!(url.starts_with("wss://api.deepgram.com/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000&channels=1"), "{url}");
        assert!(url.contains("interim_results=true"));
        assert!(url.contains("utterance_end_ms=1000"));
        assert!(url.contains("vad_events=true"));
    }

    #[test]
    fn settings_override_and_encode() {
        let s = from(&[("deepgram_url", "ws://127.0.0.1:9/v1/listen"), ("language", "en-US"), ("model", "nova 3"), ("batch_ms", "100")])
            .expect("valid settings");
        let url = s.listen_url();
        assert!(url.starts_with("ws://127.0.0.1:9/v1/listen?model=nova%203&"), "{url}");
        assert!(url.contains("language=en-US"));
        assert_eq!(s.batch_bytes(), 800);
    }

    #[test]
    fn bad_values_are_named() {
        let error = from(&[("batch_ms", "5")]).expect_err("too small");
        assert_eq!(error.key, "batch_ms");
        assert!(from(&[("interim_results", "yes")]).is_err());
        assert!(from(&[("deepgram_url", "https://x/")]).is_err());
        assert!(from(&[("endpointing", "soon")]).is_err());
        let error = from(&[("interim_results", "false")]).expect_err("utterance_end_ms needs interim results");
        assert_eq!(error.key, "utterance_end_ms");
        assert!(from(&[("interim_results", "false"), ("utterance_end_ms", "false")]).is_ok());
    }
}
