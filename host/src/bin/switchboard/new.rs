//! `switchboard new NAME --lang rust|ts|python`: writes a ready project (an echo
//! component, a test against a real host, a configuration and a README) that builds and
//! tests with one command each.
//!
//! The TypeScript and Python projects carry their own copies of the SDK and the WIT
//! package (embedded in this binary), so they need no Switchboard checkout; the TypeScript
//! one pins the SDK's npm packages with the SDK's own lockfile. The Rust project depends
//! on `switchboard-guest` and `switchboard-harness` by path, in the sources this binary was
//! built from unless `--switchboard-source` says otherwise, and starts from Switchboard's
//! own `Cargo.lock` and `rust-toolchain.toml` (wasmtime's Rust version, with the guest
//! target).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::args::Language;

/// A file of a project: where it goes and its text.
struct File {
    path: &'static str,
    text: &'static str,
    /// Whether `{{name}}` and the like are filled in (templates yes, vendored SDK files no).
    render: bool,
}

macro_rules! template {
    ($path:literal) => {
        File { path: $path, text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $path)), render: true }
    };
    ($path:literal from $lang:literal) => {
        File { path: $path, text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $lang, "/", $path)), render: true }
    };
}

macro_rules! vendored {
    ($path:literal from $source:literal) => {
        File { path: $path, text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $source)), render: false }
    };
}

const WIT: &[File] = &[
    vendored!("wit/handler.wit" from "wit/handler.wit"),
    vendored!("wit/legs.wit" from "wit/legs.wit"),
    vendored!("wit/markers.wit" from "wit/markers.wit"),
    vendored!("wit/outbound.wit" from "wit/outbound.wit"),
    vendored!("wit/websocket.wit" from "wit/websocket.wit"),
    vendored!("wit/world.wit" from "wit/world.wit"),
    vendored!("wit/deps/cli.wit" from "wit/deps/cli.wit"),
    vendored!("wit/deps/clocks.wit" from "wit/deps/clocks.wit"),
    vendored!("wit/deps/filesystem.wit" from "wit/deps/filesystem.wit"),
    vendored!("wit/deps/http.wit" from "wit/deps/http.wit"),
    vendored!("wit/deps/io.wit" from "wit/deps/io.wit"),
    vendored!("wit/deps/random.wit" from "wit/deps/random.wit"),
    vendored!("wit/deps/sockets.wit" from "wit/deps/sockets.wit"),
    vendored!("wit/deps/config/store.wit" from "wit/deps/config/store.wit"),
    vendored!("wit/deps/config/world.wit" from "wit/deps/config/world.wit"),
];

const RUST: &[File] = &[
    template!("Cargo.toml" from "rust"),
    template!("component/Cargo.toml" from "rust"),
    template!("component/src/lib.rs" from "rust"),
    template!("tests/Cargo.toml" from "rust"),
    template!("tests/build.rs" from "rust"),
    template!("tests/src/lib.rs" from "rust"),
    template!("tests/tests/component.rs" from "rust"),
    template!("switchboard.toml" from "rust"),
    template!("README.md" from "rust"),
    template!(".gitignore" from "rust"),
    vendored!("Cargo.lock" from "Cargo.lock"),
    vendored!("rust-toolchain.toml" from "rust-toolchain.toml"),
];

const TYPESCRIPT: &[File] = &[
    template!("src/component.ts" from "ts"),
    template!("test/component.test.mjs" from "ts"),
    template!("tsconfig.json" from "ts"),
    template!("switchboard.toml" from "ts"),
    template!("README.md" from "ts"),
    template!(".gitignore" from "ts"),
    vendored!("switchboard/src/errors.ts" from "sdk/js/src/errors.ts"),
    vendored!("switchboard/src/http.ts" from "sdk/js/src/http.ts"),
    vendored!("switchboard/src/index.ts" from "sdk/js/src/index.ts"),
    vendored!("switchboard/src/io.ts" from "sdk/js/src/io.ts"),
    vendored!("switchboard/src/settings.ts" from "sdk/js/src/settings.ts"),
    vendored!("switchboard/src/timeline.ts" from "sdk/js/src/timeline.ts"),
    vendored!("switchboard/src/websocket.ts" from "sdk/js/src/websocket.ts"),
    vendored!("switchboard/bin/componentize.mjs" from "sdk/js/bin/componentize.mjs"),
    vendored!("switchboard/bin/types.mjs" from "sdk/js/bin/types.mjs"),
    vendored!("switchboard/tsconfig.base.json" from "sdk/js/tsconfig.base.json"),
];

const PYTHON: &[File] = &[
    template!("app.py" from "python"),
    template!("test_app.py" from "python"),
    template!("build.sh" from "python"),
    template!("test.sh" from "python"),
    template!("requirements.txt" from "python"),
    template!("switchboard.toml" from "python"),
    template!("README.md" from "python"),
    template!(".gitignore" from "python"),
    vendored!("switchboard_guest/__init__.py" from "sdk/python/switchboard_guest/__init__.py"),
    vendored!("switchboard_guest/errors.py" from "sdk/python/switchboard_guest/errors.py"),
    vendored!("switchboard_guest/http.py" from "sdk/python/switchboard_guest/http.py"),
    vendored!("switchboard_guest/io.py" from "sdk/python/switchboard_guest/io.py"),
    vendored!("switchboard_guest/settings.py" from "sdk/python/switchboard_guest/settings.py"),
    vendored!("switchboard_guest/timeline.py" from "sdk/python/switchboard_guest/timeline.py"),
    vendored!("switchboard_guest/websocket.py" from "sdk/python/switchboard_guest/websocket.py"),
];

/// The TypeScript SDK's manifest and lockfile: the project pins the same packages.
const SDK_PACKAGE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/js/package.json"));
const SDK_LOCK: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/js/package-lock.json"));
const TS_PACKAGE: File = template!("package.json" from "ts");

/// Names a project may not take: the host's own marker namespaces and leg names.
const RESERVED: &[&str] = &["call", "instance", "guest", "outbound", "markers", "leg", "transcript", "host", "policy"];

pub(crate) fn run(name: &str, language: Language, dir: Option<PathBuf>, source: Option<PathBuf>) -> anyhow::Result<()> {
    check_name(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut entries| entries.next().is_some()).unwrap_or(true) {
        anyhow::bail!("{} already exists and is not empty: choose another name or --dir", dir.display());
    }
    let crate_name = name.replace('-', "_");
    let mut values = vec![("{{name}}", name.to_owned()), ("{{crate}}", crate_name.clone()), ("{{crate_upper}}", crate_name.to_uppercase())];
    let mut extra = Vec::new();
    let files = match language {
        Language::Rust => {
            values.push(("{{source}}", switchboard_source(source)?.display().to_string()));
            RUST
        }
        Language::Ts => {
            let (package, lock) = npm_manifests(name)?;
            extra.push(("package.json", package));
            extra.push(("package-lock.json", lock));
            TYPESCRIPT
        }
        Language::Python => PYTHON,
    };
    let render = |text: &str| values.iter().fold(text.to_owned(), |text, (key, value)| text.replace(key, value));
    let wit = if language == Language::Rust { &[][..] } else { WIT };
    for file in files.iter().chain(wit) {
        let text = if file.render { render(file.text) } else { file.text.to_owned() };
        write(&dir.join(file.path), &text)?;
    }
    for (path, text) in extra {
        write(&dir.join(path), &render(&text))?;
    }
    for script in ["build.sh", "test.sh"] {
        make_executable(&dir.join(script))?;
    }
    #[allow(clippy::print_stdout, reason = "the command's report")]
    {
        println!("created {} ({}) in {}", name, language.label(), dir.display());
        println!("{}", language.next_steps(&dir));
    }
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        anyhow::bail!("`{name}` is not a project name: use 1 to 64 of a-z, 0-9 and -, starting with a letter (e.g. `call-relay`)");
    }
    if RESERVED.contains(&name) {
        anyhow::bail!("`{name}` is one of the host's own names ({}): choose another", RESERVED.join(", "));
    }
    Ok(())
}

/// The Switchboard sources the Rust project's path dependencies point at.
fn switchboard_source(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let candidate = given.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let source = candidate.canonicalize().with_context(|| format!("the Switchboard sources at {}", candidate.display()))?;
    if !source.join("crates/guest/Cargo.toml").is_file() || !source.join("tests/Cargo.toml").is_file() {
        anyhow::bail!("{} does not hold the Switchboard sources (crates/guest, tests): pass --switchboard-source", source.display());
    }
    Ok(source)
}

/// The project's `package.json` (the SDK's pinned devDependencies) and a lockfile that
/// matches it (the SDK's, with the project's name at its root).
fn npm_manifests(name: &str) -> anyhow::Result<(String, String)> {
    let sdk: serde_json::Value = serde_json::from_str(SDK_PACKAGE).context("the embedded SDK package.json")?;
    let dev = sdk.get("devDependencies").cloned().unwrap_or_default();
    let package = TS_PACKAGE.text.replace("{{dev_dependencies}}", &serde_json::to_string_pretty(&dev)?.replace('\n', "\n  "));
    let mut lock: serde_json::Value = serde_json::from_str(SDK_LOCK).context("the embedded SDK package-lock.json")?;
    lock["name"] = name.into();
    lock["packages"][""] = serde_json::json!({ "name": name, "version": "0.1.0", "devDependencies": dev });
    Ok((package, serde_json::to_string_pretty(&lock)? + "\n"))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if path.is_file() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    Ok(())
}
