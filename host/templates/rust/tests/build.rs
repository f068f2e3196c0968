//! Builds the component for wasm32-wasip2 and exposes its path as `GUEST_{{crate_upper}}`.

fn main() {
    match guest_build::build(&["{{name}}"]) {
        Ok(built) => guest_build::export_paths(&built),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
