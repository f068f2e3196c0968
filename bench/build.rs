//! Builds the hostile test guest (the neighbours benchmark runs it beside the measured
//! calls) and exposes its path as `GUEST_HOSTILE_GUEST`.

fn main() {
    match guest_build::build(&["hostile-guest"]) {
        Ok(built) => guest_build::export_paths(&built),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
