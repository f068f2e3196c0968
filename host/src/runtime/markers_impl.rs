//! Host side of `switchboard:call/markers`: guest events, references and transcript
//! entries onto the call's timeline.

use super::bindings::switchboard::call::markers::{Host, TranscriptEntry, Value};
use super::state::CallState;
use crate::observe::timeline::{Report, TranscriptEntry as Entry, Value as MarkerValue};

impl From<Value> for MarkerValue {
    fn from(value: Value) -> Self {
        match value {
            Value::Text(text) => MarkerValue::Text(text),
            Value::Integer(n) => MarkerValue::Integer(n),
            Value::Number(n) => MarkerValue::Number(n),
            Value::Flag(flag) => MarkerValue::Flag(flag),
        }
    }
}

impl Host for CallState {
    fn emit(&mut self, name: String, attributes: Vec<(String, Value)>) -> wasmtime::Result<()> {
        self.timeline.guest(name, attributes.into_iter().map(|(key, value)| (key, value.into())).collect());
        Ok(())
    }

    fn identify(&mut self, kind: String, value: String) -> wasmtime::Result<()> {
        self.timeline.report(Report::Identify { kind, value });
        Ok(())
    }

    fn transcript(&mut self, entry: TranscriptEntry) -> wasmtime::Result<()> {
        let TranscriptEntry { speaker, text, start_ms, end_ms, confidence } = entry;
        self.timeline.report(Report::Transcript(Entry { speaker, text, start_ms, end_ms, confidence }));
        Ok(())
    }
}
