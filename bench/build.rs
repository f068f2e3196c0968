//! Builds the hostile test guest (the neighbours benchmark runs it beside the measured
//! calls) and the fetch test guest (the HTTP benchmark's component), and exposes their
//! paths as `GUEST_HOSTILE_GUEST` and `GUEST_FETCH_GUEST`.

fn main() {
    match guest_build::build(&["hostile-guest", "fetch-guest"]) {
        Ok(built) => guest_build::export_paths(&built),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
