//! Builds guest components (`wasm32-wasip2`) from a build script.
//!
//! The host embeds the bundled voice-pipeline component and the test harness needs its test
//! guests; both get them by calling [`build`] from `build.rs`. The guests are built by a
//! nested `cargo build` into a target directory of their own (`<target>/guests`), so the
//! nested build never waits on the lock of the build that runs it.
//!
//! Components in TypeScript and Python are built by [`build_foreign`] with their own
//! toolchains, and kept under the digest of their inputs.
//!
//! ```no_run
//! // build.rs
//! let built = guest_build::build(&["echo-guest"]).expect("guest components build");
//! guest_build::export_paths(&built);
//! ```

#![allow(clippy::print_stdout, reason = "a build-script helper speaks to cargo on stdout")]

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod foreign;

pub use foreign::{ForeignGuest, Language, build_foreign};

/// The target every Switchboard guest is compiled for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// The cargo profile guests are built with (defined in the workspace `Cargo.toml`).
pub const GUEST_PROFILE: &str = "guest";

/// One built component: the package it came from and the `.wasm` file.
#[derive(Debug, Clone)]
pub struct BuiltComponent {
    /// The cargo package name, e.g. `voice-pipeline`.
    pub package: String,
    /// Absolute path of the component file.
    pub wasm: PathBuf,
}

/// Why the guests could not be built.
#[derive(Debug)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// Builds `packages` (workspace members) for [`GUEST_TARGET`] and returns their components.
///
/// Must run inside a build script: it reads `OUT_DIR`, `CARGO` and `CARGO_MANIFEST_DIR`
/// and prints `rerun-if-changed` lines for the guest sources and the WIT package.
pub fn build(packages: &[&str]) -> Result<Vec<BuiltComponent>, BuildError> {
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = workspace_root(Path::new(&env_var("CARGO_MANIFEST_DIR")?))?;
    let target_dir = outer_target_dir(&out_dir, env::var("TARGET").ok().as_deref())?.join("guests");

    let mut command = Command::new(&cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--target", GUEST_TARGET, "--profile", GUEST_PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    // The outer build's flags are for the host target, not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        command.env_remove(var);
    }
    let output = command.output().map_err(|e| BuildError(format!("could not run `{cargo}`: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            format!(
                "\nThe `{GUEST_TARGET}` target is missing: run `rustup target add {GUEST_TARGET}` (the README's commands do this for you)."
            )
        } else {
            String::new()
        };
        return Err(BuildError(format!("building guest components {packages:?} for {GUEST_TARGET} failed:\n{stderr}{hint}")));
    }

    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());
    // The `guest` profile is defined there: a changed profile rebuilds the guests.
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.toml").display());
    // Guests build on the shared crates (`crates/guest`, `crates/voice`): any change there counts.
    println!("cargo:rerun-if-changed={}", workspace.join("crates/guest").display());
    println!("cargo:rerun-if-changed={}", workspace.join("crates/voice").display());
    println!("cargo:rerun-if-changed={}", workspace.join("tests/guests").display());
    let mut built = Vec::new();
    for package in packages {
        let source_dir = package_dir(&workspace, package)?;
        println!("cargo:rerun-if-changed={}", source_dir.display());
        let file = format!("{}.wasm", package.replace('-', "_"));
        let wasm = target_dir.join(GUEST_TARGET).join(GUEST_PROFILE).join(file);
        if !wasm.is_file() {
            return Err(BuildError(format!("cargo reported success but {} does not exist: is `{package}` a cdylib?", wasm.display())));
        }
        built.push(BuiltComponent { package: (*package).to_owned(), wasm });
    }
    Ok(built)
}

/// Exposes each component's path to the crate being built as the compile-time environment
/// variable `GUEST_<PACKAGE>` (upper case, `-` as `_`), for `include_bytes!(env!(..))`.
pub fn export_paths(built: &[BuiltComponent]) {
    for component in built {
        let name = component.package.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env=GUEST_{name}={}", component.wasm.display());
    }
}

fn env_var(name: &str) -> Result<String, BuildError> {
    env::var(name).map_err(|_| BuildError(format!("{name} is not set: call this from build.rs")))
}

/// The directory holding the workspace `Cargo.lock`, searched upwards from `start`.
fn workspace_root(start: &Path) -> Result<PathBuf, BuildError> {
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file() || dir.join("wit").is_dir())
        .map(Path::to_path_buf)
        .ok_or_else(|| BuildError(format!("no workspace root above {}", start.display())))
}

/// The outer build's target directory, from the layout cargo gives `OUT_DIR`:
/// `<target-dir>/[<triple>/]<profile>/build/<package>-<hash>/out`. (Cargo's `CACHEDIR.TAG`
/// marks that directory only when cargo created it: not when, say, a script made
/// `target/py` first, as `scripts/setup.sh` does on a clean clone.)
fn outer_target_dir(out_dir: &Path, triple: Option<&str>) -> Result<PathBuf, BuildError> {
    let missing = || BuildError(format!("no cargo target directory above {}", out_dir.display()));
    let build_dir = out_dir.ancestors().nth(2).filter(|dir| dir.file_name().is_some_and(|name| name == "build")).ok_or_else(missing)?;
    let above_profile = build_dir.parent().and_then(Path::parent).ok_or_else(missing)?;
    match above_profile.file_name() {
        Some(name) if triple.is_some_and(|triple| name == triple) => above_profile.parent().map(Path::to_path_buf).ok_or_else(missing),
        _ => Ok(above_profile.to_path_buf()),
    }
}

/// Where a member package's sources live; guests sit under `component/`, `agent/` or
/// `tests/guests/`.
fn package_dir(workspace: &Path, package: &str) -> Result<PathBuf, BuildError> {
    let short = package.trim_end_matches("-guest");
    [workspace.join("component"), workspace.join("agent"), workspace.join("tests/guests").join(short), workspace.join("crates").join(short)]
        .into_iter()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .map(|manifest| manifest.contains(&format!("name = \"{package}\"")))
                .unwrap_or(false)
        })
        .ok_or_else(|| BuildError(format!("package `{package}` not found in the workspace")))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::outer_target_dir;

    #[test]
    fn target_dir_comes_from_the_out_dir_layout() {
        let plain = Path::new("/w/target/debug/build/host-0123/out");
        assert_eq!(outer_target_dir(plain, Some("x86_64-unknown-linux-gnu")).expect("a target dir"), Path::new("/w/target"));
        let cross = Path::new("/w/target/x86_64-unknown-linux-gnu/release/build/host-0123/out");
        assert_eq!(outer_target_dir(cross, Some("x86_64-unknown-linux-gnu")).expect("a target dir"), Path::new("/w/target"));
        assert!(outer_target_dir(Path::new("/somewhere/out"), None).is_err());
    }
}
