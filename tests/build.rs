//! Builds the test guest components (Rust, and the TypeScript and Python ones with their
//! toolchains) and exposes their paths as `GUEST_<NAME>`.

use guest_build::ForeignGuest;

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
    ])
    .and_then(|mut built| {
        built.extend(guest_build::build_foreign(&FOREIGN)?);
        Ok(built)
    }) {
        Ok(built) => guest_build::export_paths(&built),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}

/// The TypeScript and Python guests: the SDKs' examples, and a hostile guest and an
/// HTTP guest in each.
const FOREIGN: [ForeignGuest; 8] = [
    ForeignGuest::typescript("ts-echo", "sdk/js/examples/echo.ts"),
    ForeignGuest::typescript("ts-relay", "sdk/js/examples/relay.ts"),
    ForeignGuest::typescript("ts-hostile", "tests/guests/hostile-ts/hostile.ts"),
    ForeignGuest::python("py-echo", "sdk/python/examples/echo"),
    ForeignGuest::python("py-relay", "sdk/python/examples/relay"),
    ForeignGuest::python("py-hostile", "tests/guests/hostile-py"),
    ForeignGuest::typescript("ts-fetch", "tests/guests/fetch-ts/fetch.ts"),
    ForeignGuest::python("py-fetch", "tests/guests/fetch-py"),
];
