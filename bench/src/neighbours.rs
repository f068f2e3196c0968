//! Hostile neighbours: while Switchboard carries the measured calls, attackers keep
//! opening calls to misbehaving guests (the `hostile` test guest): one that spins forever,
//! one that allocates until its memory limit, one that traps, one that storms outbound
//! connects, and a caller that sends a 2 MiB message. Each is contained by the sandbox; the
//! trial shows whether the other calls keep their latency and lose nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use switchboard::config::{FileComponent, FileConfig, FileRoute};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The misbehaviours, in the order attackers cycle through them. All but `oversize` are
/// modes of the hostile guest, served on `/hostile/<mode>`.
pub const MODES: [&str; 5] = ["loop", "memory-bomb", "trap", "connect-storm", "oversize"];

/// Adds the hostile guest's routes to Switchboard's configuration.
pub fn add_routes(file: &mut FileConfig, hostile_wasm: &str, storm_target: &str) {
    for mode in MODES.iter().filter(|m| **m != "oversize") {
        let name = format!("hostile-{mode}");
        file.routes.push(FileRoute { path: format!("/hostile/{mode}"), component: name.clone(), ..FileRoute::default() });
        let settings =
            [("mode", *mode), ("target", storm_target), ("count", "50")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let component = FileComponent {
            wasm: Some(hostile_wasm.into()),
            allow_outbound: vec![storm_target.trim_end_matches("/v1/listen").to_owned()],
            settings,
            secret_headers: vec![crate::sut::bench_key_header()],
            ..FileComponent::default()
        };
        file.components.insert(name, component);
    }
}

/// How the hostile calls ended, by mode and close code.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attacks {
    /// `mode -> close code -> count` (`0`: no close frame, `-1`: could not connect).
    pub outcomes: BTreeMap<String, BTreeMap<i32, u32>>,
}

impl Attacks {
    /// Hostile calls placed.
    pub fn total(&self) -> u32 {
        self.outcomes.values().flat_map(|codes| codes.values()).sum()
    }
}

/// Keeps attacking until `until`: each attacker opens one hostile call after another.
pub async fn attack(base_url: String, attackers: u32, until: Instant) -> Attacks {
    let mut tasks = tokio::task::JoinSet::new();
    for attacker in 0..attackers {
        let base = base_url.clone();
        tasks.spawn(async move {
            let mut seen: Vec<(&'static str, i32)> = Vec::new();
            let mut turn = attacker as usize;
            while Instant::now() < until {
                let mode = MODES[turn % MODES.len()];
                turn += 1;
                seen.push((mode, one_attack(&base, mode).await));
            }
            seen
        });
    }
    let mut attacks = Attacks::default();
    while let Some(Ok(seen)) = tasks.join_next().await {
        for (mode, code) in seen {
            *attacks.outcomes.entry(mode.to_owned()).or_default().entry(code).or_default() += 1;
        }
    }
    attacks
}

/// One hostile call; the close code the host answered with.
async fn one_attack(base: &str, mode: &str) -> i32 {
    let url = if mode == "oversize" { format!("{base}/twilio/media") } else { format!("{base}/hostile/{mode}") };
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
        return -1;
    };
    if mode == "oversize" {
        let _ = socket.send(Message::Text("x".repeat(2 << 20).into())).await;
    }
    let deadline = Duration::from_secs(15);
    let outcome = tokio::time::timeout(deadline, async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => {
                    return frame.map_or(0, |f| i32::from(u16::from(f.code)));
                }
                // A report (connect-storm): the guest now waits for the caller to hang up.
                Ok(Message::Text(_)) => {
                    let _ = socket.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
                }
                Ok(_) => {}
                Err(_) => return 0,
            }
        }
        0
    })
    .await;
    outcome.unwrap_or(0)
}
