//! `switchboard compile`: compile components ahead of time into the artifact store, with
//! the engine settings `serve` will use, so a start, deploy or rollback does not compile.

use std::path::PathBuf;

use switchboard::Config;
use switchboard::deploy::artifacts::ArtifactStore;
use switchboard::deploy::versions::source_bytes;
use switchboard::runtime::Runtime;

pub(crate) async fn run(config: Option<PathBuf>, files: Vec<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load_without_secrets(config.as_deref())?;
    let report = tokio::task::spawn_blocking(move || precompile(&config, &files)).await??;
    #[allow(clippy::print_stdout, reason = "the command's report")]
    for line in report {
        println!("{line}");
    }
    Ok(())
}

/// Compiles every configured component and `extra_files` into the artifact store of
/// `config` (its `data_dir`); one line each.
fn precompile(config: &Config, extra_files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let Some(dir) = config.data_dir.as_deref() else {
        anyhow::bail!("no data_dir configured: there is no artifact store to fill");
    };
    let runtime = Runtime::new(switchboard::host::engine_settings(config)).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let artifacts = ArtifactStore::new(Some(dir), runtime.engine())?;
    let mut sources: Vec<(String, Vec<u8>)> = Vec::new();
    for component in config.components.values() {
        sources.push((component.name.clone(), source_bytes(component)?));
    }
    for file in extra_files {
        let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        sources.push((file.display().to_string(), bytes));
    }
    let mut lines = Vec::new();
    for (name, bytes) in sources {
        let started = std::time::Instant::now();
        let (_, digest, compiled) = artifacts.compile(runtime.engine(), &bytes).map_err(|e| anyhow::anyhow!("{name}: {e:#}"))?;
        lines.push(format!("{name}: {digest} {compiled:?} in {:.0} ms -> {}", started.elapsed().as_secs_f64() * 1e3, dir.display()));
    }
    Ok(lines)
}
