//! Components written in TypeScript and Python, built with their own toolchains from a
//! build script: `sdk/js/bin/componentize.mjs` (componentize-js, from `sdk/js/node_modules`)
//! and `componentize-py` (from the project's virtual environment, `target/py`). Both are
//! installed by `scripts/setup.sh --tests`.
//!
//! Each takes seconds and writes a component of many megabytes, so a build is kept under
//! the digest of everything it reads (its sources, the SDK, the WIT package, the pinned
//! toolchain versions): a rebuild with nothing changed, or another profile's build script
//! (clippy's, the tests'), reuses it.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{BuildError, BuiltComponent, env_var, outer_target_dir, workspace_root};

/// The language of a [`ForeignGuest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// A TypeScript (or JavaScript) entry module exporting `handler`.
    TypeScript,
    /// A directory holding the `app` module with a `Handler` class.
    Python,
}

/// One component built from TypeScript or Python sources.
#[derive(Debug, Clone)]
pub struct ForeignGuest {
    /// The name its path is exported under (`GUEST_<NAME>`), e.g. `ts-echo`.
    pub name: &'static str,
    /// Its language.
    pub language: Language,
    /// The entry file (TypeScript) or the app directory (Python), relative to the workspace.
    pub source: &'static str,
}

impl ForeignGuest {
    /// A TypeScript component from `entry` (relative to the workspace root).
    pub const fn typescript(name: &'static str, entry: &'static str) -> Self {
        ForeignGuest { name, language: Language::TypeScript, source: entry }
    }

    /// A Python component from the `app` module in `dir` (relative to the workspace root).
    pub const fn python(name: &'static str, dir: &'static str) -> Self {
        ForeignGuest { name, language: Language::Python, source: dir }
    }
}

/// Builds `guests` (or reuses earlier builds of the same inputs) and returns their components.
///
/// Must run inside a build script; prints `rerun-if-changed` lines for every input.
pub fn build_foreign(guests: &[ForeignGuest]) -> Result<Vec<BuiltComponent>, BuildError> {
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let workspace = workspace_root(Path::new(&env_var("CARGO_MANIFEST_DIR")?))?;
    let cache = outer_target_dir(&out_dir, std::env::var("TARGET").ok().as_deref())?.join("guests").join("foreign");
    std::fs::create_dir_all(&cache).map_err(|e| BuildError(format!("could not create {}: {e}", cache.display())))?;
    for input in [
        "wit",
        "sdk/js/src",
        "sdk/js/bin",
        "sdk/js/tsconfig.base.json",
        "sdk/js/package.json",
        "sdk/js/package-lock.json",
        "sdk/python/switchboard_guest",
        "scripts/requirements-test.txt",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
    let mut built = Vec::new();
    for guest in guests {
        let source = workspace.join(guest.source);
        let watched = match guest.language {
            Language::TypeScript => source.parent().unwrap_or(&source),
            Language::Python => &source,
        };
        println!("cargo:rerun-if-changed={}", watched.display());
        let inputs: Vec<PathBuf> = match guest.language {
            Language::TypeScript => {
                // The entry's whole directory: it may import modules beside it.
                let entry_dir = source.parent().map_or_else(|| source.clone(), Path::to_path_buf);
                vec![
                    entry_dir,
                    workspace.join("sdk/js/src"),
                    workspace.join("sdk/js/bin"),
                    workspace.join("sdk/js/tsconfig.base.json"),
                    workspace.join("sdk/js/package.json"),
                    workspace.join("sdk/js/package-lock.json"),
                ]
            }
            Language::Python => {
                vec![source.clone(), workspace.join("sdk/python/switchboard_guest"), workspace.join("scripts/requirements-test.txt")]
            }
        };
        let key = digest_of(&workspace, inputs.iter().chain([&workspace.join("wit")]))?;
        let wasm = cache.join(format!("{}-{}.wasm", guest.name, &key[..16]));
        if !wasm.is_file() {
            // Another build script (the bench's, the tests') may build the same one at once.
            let partial = wasm.with_extension(format!("{}.partial.wasm", std::process::id()));
            run(command_for(&workspace, guest, &source, &partial)?, guest)?;
            std::fs::rename(&partial, &wasm).map_err(|e| BuildError(format!("could not keep {}: {e}", wasm.display())))?;
        }
        built.push(BuiltComponent { package: guest.name.to_owned(), wasm });
    }
    Ok(built)
}

fn command_for(workspace: &Path, guest: &ForeignGuest, source: &Path, out: &Path) -> Result<Command, BuildError> {
    match guest.language {
        Language::TypeScript => {
            let tool = workspace.join("sdk/js/bin/componentize.mjs");
            if !workspace.join("sdk/js/node_modules/@bytecodealliance/componentize-js").is_dir() {
                return Err(missing_tool("sdk/js/node_modules (componentize-js)"));
            }
            let mut command = Command::new("node");
            command.current_dir(workspace).arg(tool).arg(source).arg("-o").arg(out);
            Ok(command)
        }
        Language::Python => {
            let tool = workspace.join("target/py/bin/componentize-py");
            if !tool.is_file() {
                return Err(missing_tool("target/py/bin/componentize-py"));
            }
            let mut command = Command::new(tool);
            command
                .current_dir(workspace)
                .args(["-d", "wit", "-w", "call-handler", "componentize", "-p", "sdk/python", "-p"])
                .arg(source)
                .arg("app")
                .arg("-o")
                .arg(out);
            Ok(command)
        }
    }
}

fn missing_tool(what: &str) -> BuildError {
    BuildError(format!(
        "{what} is missing: run `scripts/setup.sh --tests` (the README's test command does) to install the guest toolchains"
    ))
}

fn run(mut command: Command, guest: &ForeignGuest) -> Result<(), BuildError> {
    let output = command
        .output()
        .map_err(|e| BuildError(format!("could not start the {:?} toolchain for `{}`: {e}", guest.language, guest.name)))?;
    if output.status.success() {
        return Ok(());
    }
    Err(BuildError(format!(
        "building `{}` from {} failed:\n{}{}",
        guest.name,
        guest.source,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// SHA-256 over the relative names and contents of every file under `roots`, in order.
fn digest_of<'a>(workspace: &Path, roots: impl Iterator<Item = &'a PathBuf>) -> Result<String, BuildError> {
    let mut hasher = Sha256::new();
    for root in roots {
        let mut files = Vec::new();
        collect_files(root, &mut files)?;
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| BuildError(format!("could not read {}: {e}", file.display())))?;
            hasher.update(file.strip_prefix(workspace).unwrap_or(&file).to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), BuildError> {
    if path.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|e| BuildError(format!("could not read {}: {e}", path.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| BuildError(format!("could not read {}: {e}", path.display())))?;
        let name = entry.file_name();
        // Caches the toolchains write beside the sources are not inputs.
        if name == "__pycache__" || name == "node_modules" {
            continue;
        }
        collect_files(&entry.path(), files)?;
    }
    Ok(())
}
