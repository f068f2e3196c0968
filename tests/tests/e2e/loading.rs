//! Loading and checking components: bad ones are refused with a reason, before serving.

use std::path::Path;

use switchboard::Config;
use switchboard::runtime::LoadError;
use switchboard_harness::guests;

fn config_for(wasm: &Path) -> anyhow::Result<Config> {
    let toml = format!(
        "max_concurrent_calls = 4\n[[routes]]\npath = \"/x\"\ncomponent = \"c\"\n[components.c]\nwasm = {}\n",
        toml::Value::String(wasm.display().to_string())
    );
    Ok(Config::parse(&toml, "test", Path::new("."), &|_| None)?)
}

fn load(wasm: &Path) -> anyhow::Result<Result<switchboard::Switchboard, switchboard::StartError>> {
    Ok(switchboard::Switchboard::new(config_for(wasm)?))
}

fn write_wat(dir: &tempfile::TempDir, name: &str, text: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.path().join(name);
    std::fs::write(&path, wat::parse_str(text)?)?;
    Ok(path)
}

#[test]
fn every_test_guest_and_the_bundled_pipeline_load() -> anyhow::Result<()> {
    for wasm in [guests::ECHO, guests::RELAY, guests::HOSTILE, guests::VOICE_PIPELINE] {
        load(Path::new(wasm))?.map_err(|e| anyhow::anyhow!("{wasm}: {e}"))?;
    }
    Ok(())
}

#[test]
fn missing_imports_are_listed_by_name() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let wasm = write_wat(
        &dir,
        "missing.wasm",
        r#"(component
            (import "acme:telephony/dialer@1.0.0" (instance (export "dial" (func))))
            (import "wasi:http/outgoing-handler@0.2.0" (instance (export "handle" (func))))
        )"#,
    )?;
    let error = load(&wasm)?.expect_err("must be refused");
    let switchboard::StartError::Component(LoadError::MissingImports { missing, .. }) = &error else {
        anyhow::bail!("wrong error: {error}");
    };
    assert_eq!(missing, &["acme:telephony/dialer@1.0.0", "wasi:http/outgoing-handler@0.2.0"]);
    let message = error.to_string();
    assert!(message.contains("acme:telephony/dialer@1.0.0"), "{message}");
    Ok(())
}

#[test]
fn a_component_without_the_handler_export_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let wasm = write_wat(&dir, "empty.wasm", "(component)")?;
    let error = load(&wasm)?.expect_err("must be refused");
    assert!(matches!(error, switchboard::StartError::Component(LoadError::WrongExport { .. })), "{error}");
    assert!(error.to_string().contains("switchboard:call/handler"), "{error}");
    Ok(())
}

#[test]
fn corrupt_bytes_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("corrupt.wasm");
    std::fs::write(&path, b"\0asm\x0d\x00\x01\x00garbage")?;
    let error = load(&path)?.expect_err("must be refused");
    assert!(matches!(error, switchboard::StartError::Component(LoadError::Compile { .. })), "{error}");
    Ok(())
}
