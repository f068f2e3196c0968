//! OpenAI-compatible chat completions, streamed: the request body the agent posts, and the
//! `data:` payloads of the server-sent events it reads back, token by token.
//!
//! A `data:` payload is one `chat.completion.chunk` (a piece of `delta.content`, pieces of
//! a tool call's arguments, a `finish_reason`) or the literal `[DONE]`. An error answer is
//! an ordinary HTTP status with `{"error":{"message":…}}`.

use serde::Deserialize;
use serde_json::{Value as Json, json};

/// Who said a line of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The instructions.
    System,
    /// The caller.
    User,
    /// The agent.
    Assistant,
}

impl Role {
    /// The role's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One line of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Who said it.
    pub role: Role,
    /// What was said (for the assistant: what the caller heard).
    pub content: String,
}

/// The name of the tool the model calls to hang up.
pub const END_CALL_TOOL: &str = "end_call";

/// What a completion request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask<'a> {
    /// `model`.
    pub model: &'a str,
    /// `temperature`.
    pub temperature: f64,
    /// The most tokens of one answer (`max_tokens`).
    pub max_tokens: u32,
    /// Offer the [`END_CALL_TOOL`] tool.
    pub end_call_tool: bool,
}

/// The JSON body of `POST /v1/chat/completions` with `"stream": true`.
pub fn request_body(ask: &Ask<'_>, lines: &[Line]) -> String {
    let messages: Vec<Json> = lines.iter().map(|line| json!({"role": line.role.as_str(), "content": line.content})).collect();
    let mut body = json!({
        "model": ask.model,
        "messages": messages,
        "stream": true,
        "temperature": ask.temperature,
        "max_tokens": ask.max_tokens,
    });
    if ask.end_call_tool {
        body["tools"] = json!([{
            "type": "function",
            "function": {
                "name": END_CALL_TOOL,
                "description": "Hang up the phone call, after saying goodbye.",
                "parameters": {"type": "object", "properties": {}},
            },
        }]);
    }
    body.to_string()
}

/// What one `data:` payload said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// A piece of the answer's text.
    Text(String),
    /// The model asked for a tool (announced with its name; arguments may follow in pieces).
    ToolCall {
        /// The function's name.
        name: String,
    },
    /// The answer is complete, and why (`stop`, `length`, `tool_calls`).
    Finished(String),
    /// `[DONE]`: the stream's end.
    Done,
    /// Nothing the agent uses (a role-only delta, argument pieces, an empty chunk).
    Nothing,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<RawDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<RawToolCall>,
}

#[derive(Deserialize)]
struct RawToolCall {
    #[serde(default)]
    function: Option<RawFunction>,
}

#[derive(Deserialize)]
struct RawFunction {
    #[serde(default)]
    name: Option<String>,
}

/// Parses one `data:` payload; several deltas may come of one chunk (text and a finish).
pub fn parse_data(data: &str) -> Result<Vec<Delta>, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(vec![Delta::Done]);
    }
    let chunk: Chunk = serde_json::from_str(data).map_err(|e| format!("not a chat.completion.chunk: {e}"))?;
    let mut deltas = Vec::new();
    for choice in chunk.choices.into_iter().take(1) {
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                deltas.push(Delta::Text(text));
            }
            for call in delta.tool_calls {
                if let Some(name) = call.function.and_then(|function| function.name).filter(|name| !name.is_empty()) {
                    deltas.push(Delta::ToolCall { name });
                }
            }
        }
        if let Some(reason) = choice.finish_reason {
            deltas.push(Delta::Finished(reason));
        }
    }
    if deltas.is_empty() {
        deltas.push(Delta::Nothing);
    }
    Ok(deltas)
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
}

/// The `error.message` of an error answer, or the body's start when it has none.
pub fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) if !parsed.error.message.is_empty() => parsed.error.message.chars().take(200).collect(),
        _ => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_the_conversation_and_asks_for_a_stream() {
        let lines = [
            Line { role: Role::System, content: "Be brief.".into() },
            Line { role: Role::User, content: "Hi".into() },
            Line { role: Role::Assistant, content: "Hello!".into() },
        ];
        let ask = Ask { model: "m1", temperature: 0.5, max_tokens: 200, end_call_tool: true };
        let body: Json = serde_json::from_str(&request_body(&ask, &lines)).expect("JSON");
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["model"], json!("m1"));
        assert_eq!(body["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(body["messages"][2], json!({"role": "assistant", "content": "Hello!"}));
        assert_eq!(body["tools"][0]["function"]["name"], json!(END_CALL_TOOL));
        let plain: Json = serde_json::from_str(&request_body(&Ask { end_call_tool: false, ..ask }, &lines)).expect("JSON");
        assert!(plain.get("tools").is_none());
    }

    #[test]
    fn chunks_become_deltas() {
        let first =
            r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        assert_eq!(parse_data(first), Ok(vec![Delta::Nothing]));
        let text = r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#;
        assert_eq!(parse_data(text), Ok(vec![Delta::Text("Hel".into())]));
        let last = r#"{"choices":[{"index":0,"delta":{"content":"lo."},"finish_reason":"stop"}]}"#;
        assert_eq!(parse_data(last), Ok(vec![Delta::Text("lo.".into()), Delta::Finished("stop".into())]));
        let tool = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"end_call","arguments":""}}]}}]}"#;
        assert_eq!(parse_data(tool), Ok(vec![Delta::ToolCall { name: "end_call".into() }]));
        let pieces = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#;
        assert_eq!(parse_data(pieces), Ok(vec![Delta::Nothing]));
        assert_eq!(parse_data(" [DONE]"), Ok(vec![Delta::Done]));
        assert!(parse_data("{not json").is_err());
    }

    #[test]
    fn error_answers_name_their_message() {
        assert_eq!(
            error_message(br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit"}}"#),
            "Rate limit reached"
        );
        assert_eq!(error_message(b"upstream timed out"), "upstream timed out");
    }
}
