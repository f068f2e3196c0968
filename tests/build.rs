//! Builds the test guest components and exposes their paths as `GUEST_<NAME>`.

fn main() {
    match guest_build::build(&[
        "echo-guest",
        "relay-guest",
        "hostile-guest",
        "versioned-v1-guest",
        "versioned-v2-guest",
        "autobahn-guest",
        "billing-guest",
        "fetch-guest",
        "voice-pipeline",
        "voice-agent",
    ]) {
        Ok(built) => guest_build::export_paths(&built),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
