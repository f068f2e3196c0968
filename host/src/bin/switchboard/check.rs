//! `switchboard check`: validate the configuration and compile and check every component,
//! without serving.

use std::path::{Path, PathBuf};

use switchboard::config::Overrides;
use switchboard::{Config, Switchboard};

/// The file's configuration, or the built-in defaults, with `overrides` applied.
pub(crate) fn load_config(path: Option<&Path>, overrides: Overrides) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load_with(path, overrides)?,
        None => Config::builtin_with(overrides)?,
    })
}

pub(crate) async fn run(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load_config(config.as_deref(), Overrides::default())?;
    let components: Vec<String> = config.components.keys().cloned().collect();
    tokio::task::spawn_blocking(move || Switchboard::new(config)).await??;
    #[allow(clippy::print_stdout, reason = "the command's report")]
    for name in components {
        println!("component `{name}`: ok (imports provided, exports switchboard:call/handler)");
    }
    Ok(())
}
