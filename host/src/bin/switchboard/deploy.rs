//! `switchboard deploy`: upload, list and roll back component versions through a running
//! host's deploy API.

use anyhow::Context;

use crate::args::{DeployAction, OperatorArgs};

pub(crate) async fn run(operator: &OperatorArgs, admin_token_env: &str, action: DeployAction) -> anyhow::Result<()> {
    if std::env::var(admin_token_env).map_or(true, |t| t.is_empty()) {
        anyhow::bail!("the admin token variable `{admin_token_env}` is not set");
    }
    let client = operator.client(admin_token_env)?;
    let answer = match &action {
        DeployAction::Upload { component, file } => {
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            client.upload(component, bytes).await?
        }
        DeployAction::List => client.components().await?,
        DeployAction::Rollback { component, to } => client.rollback(component, *to).await?,
    };
    #[allow(clippy::print_stdout, reason = "the command's report")]
    {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(())
}
