//! The agent's settings, read from `wasi:config/store`. Listening takes the voice
//! pipeline's own settings (`deepgram_url`, `model`, `endpointing`, ...); these are the
//! rest. None is secret: the LLM's key, Deepgram's key and Twilio's credentials are
//! injected by the host as secret headers and never seen here.

use std::fmt;

use switchboard_voice::settings::{SettingError, Settings as ListenSettings, encode, flag, number};

/// What the agent does when the caller speaks over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeIn {
    /// Stop at Deepgram's `SpeechStarted` (fastest; a cough counts too).
    SpeechStarted,
    /// Stop at an interim transcript with at least `barge_in_min_words` words.
    Words,
    /// Never stop: what the caller said is answered after the agent has finished.
    Off,
}

/// Everything the agent can be told besides listening.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// Listening (Deepgram live STT), as the voice pipeline reads it.
    pub listen: ListenSettings,
    /// The chat-completions URL.
    pub llm_url: String,
    /// `model`.
    pub llm_model: String,
    /// `temperature`.
    pub llm_temperature: f64,
    /// `max_tokens` of one answer.
    pub llm_max_tokens: u32,
    /// Time allowed to the LLM's response head, ms.
    pub llm_first_byte_timeout_ms: u64,
    /// Silence allowed inside the LLM's streamed answer, ms.
    pub llm_between_tokens_timeout_ms: u64,
    /// The system prompt.
    pub system_prompt: String,
    /// Spoken when the stream starts (empty: nothing).
    pub greeting: String,
    /// Spoken when the LLM fails (429, 5xx, a timeout).
    pub fallback_text: String,
    /// Spoken before hanging up on a hang-up phrase.
    pub farewell: String,
    /// Caller phrases that end the call (lower case, matched as words).
    pub hangup_phrases: Vec<String>,
    /// Offer the model an `end_call` tool.
    pub end_call_tool: bool,
    /// After the stream ends, hang the call up through Twilio's REST API.
    pub twilio_rest_hangup: bool,
    /// Twilio's REST API base URL.
    pub twilio_api_url: String,
    /// Deepgram's speak endpoint, without a query.
    pub tts_url: String,
    /// The voice, e.g. `aura-2-thalia-en`.
    pub tts_model: String,
    /// How far speech may run ahead of playback, ms.
    pub lead_ms: u64,
    /// The shortest sentence sent to speech on its own, characters.
    pub min_sentence_chars: usize,
    /// At most this many `Flush` per minute (Deepgram allows 20).
    pub max_flushes_per_minute: usize,
    /// What counts as the caller interrupting.
    pub barge_in: BargeIn,
    /// With [`BargeIn::Words`]: the words an interim must have.
    pub barge_in_min_words: usize,
    /// Keypad digits are answered after this long without another, ms.
    pub dtmf_wait_ms: u64,
    /// Conversation turns kept for the LLM (older ones are dropped).
    pub max_history_turns: usize,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            listen: ListenSettings::default(),
            llm_url: "https://api.openai.com/v1/chat/completions".to_owned(),
            llm_model: "gpt-4o-mini".to_owned(),
            llm_temperature: 0.7,
            llm_max_tokens: 300,
            llm_first_byte_timeout_ms: 10_000,
            llm_between_tokens_timeout_ms: 5_000,
            system_prompt: "You are a friendly voice assistant on a phone call. Answer in one to three short sentences, \
                            in plain words without lists, markdown or emoji."
                .to_owned(),
            greeting: "Hello! How can I help you today?".to_owned(),
            fallback_text: "Sorry, I'm having trouble right now. Could you say that again?".to_owned(),
            farewell: "Goodbye!".to_owned(),
            hangup_phrases: vec!["goodbye".to_owned(), "bye bye".to_owned()],
            end_call_tool: true,
            twilio_rest_hangup: false,
            twilio_api_url: "https://api.twilio.com".to_owned(),
            tts_url: "wss://api.deepgram.com/v1/speak".to_owned(),
            tts_model: "aura-2-thalia-en".to_owned(),
            lead_ms: 100,
            min_sentence_chars: 8,
            max_flushes_per_minute: 20,
            barge_in: BargeIn::SpeechStarted,
            barge_in_min_words: 2,
            dtmf_wait_ms: 1_500,
            max_history_turns: 20,
        }
    }
}

impl AgentSettings {
    /// Reads every setting through `lookup`; absent keys keep their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<AgentSettings, SettingError> {
        let mut s = AgentSettings { listen: ListenSettings::from_lookup(&lookup)?, ..AgentSettings::default() };
        let number = |key: &'static str, default: u64, min: u64, max: u64, expected: &'static str| {
            number(&lookup, key, default, min..=max, expected)
        };
        let flag = |key: &'static str, default: bool| flag(&lookup, key, default);
        let url = |key: &'static str, schemes: &[&str], expected: &'static str, default: String| -> Result<String, SettingError> {
            match lookup(key) {
                None => Ok(default),
                Some(url) if schemes.iter().any(|scheme| url.starts_with(scheme)) && !url.contains('?') => Ok(url),
                Some(url) => Err(SettingError { key, expected, value: url }),
            }
        };
        s.llm_url = url("llm_url", &["https://", "http://"], "an http(s):// URL without a query", s.llm_url)?;
        s.llm_model = lookup("llm_model").unwrap_or(s.llm_model);
        if let Some(text) = lookup("llm_temperature") {
            s.llm_temperature = text.trim().parse::<f64>().ok().filter(|t| (0.0..=2.0).contains(t)).ok_or(SettingError {
                key: "llm_temperature",
                expected: "a number from 0 to 2",
                value: text,
            })?;
        }
        s.llm_max_tokens = number("llm_max_tokens", u64::from(s.llm_max_tokens), 1, 16_384, "1 to 16384")? as u32;
        s.llm_first_byte_timeout_ms = number("llm_first_byte_timeout_ms", s.llm_first_byte_timeout_ms, 100, 120_000, "100 to 120000 ms")?;
        s.llm_between_tokens_timeout_ms =
            number("llm_between_tokens_timeout_ms", s.llm_between_tokens_timeout_ms, 100, 120_000, "100 to 120000 ms")?;
        s.system_prompt = lookup("system_prompt").unwrap_or(s.system_prompt);
        s.greeting = lookup("greeting").unwrap_or(s.greeting);
        s.fallback_text = lookup("fallback_text").unwrap_or(s.fallback_text);
        s.farewell = lookup("farewell").unwrap_or(s.farewell);
        if let Some(phrases) = lookup("hangup_phrases") {
            s.hangup_phrases = phrases.split(',').map(normalize).filter(|phrase| !phrase.is_empty()).collect();
        }
        s.end_call_tool = flag("end_call_tool", s.end_call_tool)?;
        s.twilio_rest_hangup = flag("twilio_rest_hangup", s.twilio_rest_hangup)?;
        s.twilio_api_url = url("twilio_api_url", &["https://", "http://"], "an http(s):// URL without a query", s.twilio_api_url)?;
        s.tts_url = url("tts_url", &["wss://", "ws://"], "a ws:// or wss:// URL without a query", s.tts_url)?;
        s.tts_model = lookup("tts_model").unwrap_or(s.tts_model);
        s.lead_ms = number("lead_ms", s.lead_ms, 20, 2_000, "20 to 2000 ms")?;
        s.min_sentence_chars = number("min_sentence_chars", s.min_sentence_chars as u64, 1, 200, "1 to 200")? as usize;
        s.max_flushes_per_minute = number("max_flushes_per_minute", s.max_flushes_per_minute as u64, 1, 20, "1 to 20")? as usize;
        s.barge_in = match lookup("barge_in").as_deref() {
            None => s.barge_in,
            Some("speech-started") => BargeIn::SpeechStarted,
            Some("words") => BargeIn::Words,
            Some("off") => BargeIn::Off,
            Some(other) => {
                return Err(SettingError { key: "barge_in", expected: "`speech-started`, `words` or `off`", value: other.to_owned() });
            }
        };
        s.barge_in_min_words = number("barge_in_min_words", s.barge_in_min_words as u64, 1, 20, "1 to 20")? as usize;
        s.dtmf_wait_ms = number("dtmf_wait_ms", s.dtmf_wait_ms, 100, 30_000, "100 to 30000 ms")?;
        s.max_history_turns = number("max_history_turns", s.max_history_turns as u64, 1, 200, "1 to 200")? as usize;
        if s.barge_in == BargeIn::SpeechStarted && !s.listen.vad_events {
            return Err(SettingError {
                key: "barge_in",
                expected: "vad_events = true for `speech-started`",
                value: "speech-started".into(),
            });
        }
        Ok(s)
    }

    /// The speak URL with the query for Twilio's audio (mu-law, 8 kHz: raw samples, as Twilio plays them).
    pub fn speak_url(&self) -> String {
        format!("{}?model={}&encoding=mulaw&sample_rate=8000", self.tts_url, encode(&self.tts_model))
    }

    /// Twilio's REST URL of this call.
    pub fn call_url(&self, account_sid: &str, call_sid: &str) -> String {
        format!("{}/2010-04-01/Accounts/{}/Calls/{}.json", self.twilio_api_url.trim_end_matches('/'), encode(account_sid), encode(call_sid))
    }
}

/// Lower case, single spaces, no punctuation: how phrases are compared.
pub fn normalize(text: &str) -> String {
    let cleaned: String = text.chars().map(|c| if c.is_alphanumeric() || c == '\'' { c.to_ascii_lowercase() } else { ' ' }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for BargeIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BargeIn::SpeechStarted => "speech-started",
            BargeIn::Words => "words",
            BargeIn::Off => "off",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<AgentSettings, SettingError> {
        AgentSettings::from_lookup(|key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_and_urls() {
        let s = from(&[]).expect("defaults");
        assert_eq!(s, AgentSettings::default());
        assert_eq!(s.speak_url(), "wss://api.deepgram.com/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000");
        assert_eq!(s.call_url("AC1", "CA 2"), "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls/CA%202.json");
    }

    #[test]
    fn settings_override_and_bad_values_are_named() {
        let s = from(&[
            ("llm_url", "http://127.0.0.1:9/v1/chat/completions"),
            ("barge_in", "words"),
            ("barge_in_min_words", "3"),
            ("hangup_phrases", "Good-bye!, see you later,,"),
            ("model", "nova-2"),
        ])
        .expect("valid");
        assert_eq!((s.barge_in, s.barge_in_min_words), (BargeIn::Words, 3));
        assert_eq!(s.hangup_phrases, vec!["good bye".to_owned(), "see you later".to_owned()]);
        assert_eq!(s.listen.model, "nova-2", "listening settings are the pipeline's");
        assert_eq!(from(&[("llm_url", "ftp://x")]).expect_err("scheme").key, "llm_url");
        assert_eq!(from(&[("tts_url", "wss://x/v1/speak?model=a")]).expect_err("query").key, "tts_url");
        assert_eq!(from(&[("lead_ms", "5")]).expect_err("range").key, "lead_ms");
        assert_eq!(from(&[("barge_in", "sometimes")]).expect_err("choice").key, "barge_in");
        assert_eq!(from(&[("llm_temperature", "3")]).expect_err("range").key, "llm_temperature");
        assert_eq!(from(&[("vad_events", "false")]).expect_err("needs vad").key, "barge_in");
        assert!(from(&[("vad_events", "false"), ("barge_in", "words")]).is_ok());
    }
}
