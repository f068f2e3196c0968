//! Builds the bundled voice-pipeline component so the binary can embed it
//! (`GUEST_VOICE_PIPELINE`); needs the `wasm32-wasip2` target (the README's commands add it).

fn main() {
    match guest_build::build(&["voice-pipeline"]) {
        Ok(built) => guest_build::export_paths(&built),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
