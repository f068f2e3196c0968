//! Builds the bundled components so the binary can embed them (`GUEST_VOICE_PIPELINE`,
//! `GUEST_VOICE_AGENT`); needs the `wasm32-wasip2` target (the README's commands add it).

fn main() {
    match guest_build::build(&["voice-pipeline", "voice-agent"]) {
        Ok(built) => guest_build::export_paths(&built),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
