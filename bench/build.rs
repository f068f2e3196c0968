//! Builds the hostile test guest (the neighbours benchmark runs it beside the measured
//! calls) and the fetch test guest (the HTTP benchmark's component), and exposes their
//! paths as `GUEST_HOSTILE_GUEST` and `GUEST_FETCH_GUEST`; and the relay in Rust,
//! TypeScript and Python (the languages benchmark) as `GUEST_RELAY_GUEST`, `GUEST_TS_RELAY`
//! and `GUEST_PY_RELAY`.

fn main() {
    let built = guest_build::build(&["hostile-guest", "fetch-guest", "relay-guest"]).and_then(|mut built| {
        built.extend(guest_build::build_foreign(&[
            guest_build::ForeignGuest::typescript("ts-relay", "sdk/js/examples/relay.ts"),
            guest_build::ForeignGuest::python("py-relay", "sdk/python/examples/relay"),
        ])?);
        Ok(built)
    });
    match built {
        Ok(built) => guest_build::export_paths(&built),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
