//! `switchboard deploy`: upload, point at an OCI reference, list and roll back component
//! versions through a running host's deploy API; and `switchboard push`, which publishes
//! a component to an OCI registry.

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
        DeployAction::Ref { component, reference } => client.deploy_reference(component, reference).await?,
        DeployAction::List => client.components().await?,
        DeployAction::Rollback { component, to } => client.rollback(component, *to).await?,
    };
    #[allow(clippy::print_stdout, reason = "the command's report")]
    {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(())
}

/// `switchboard push FILE oci://…`: prints the pinned reference.
pub(crate) async fn push(file: &std::path::Path, reference: &str) -> anyhow::Result<()> {
    let reference = switchboard::deploy::oci::OciReference::parse(reference)?;
    anyhow::ensure!(reference.digest.is_none(), "push to a tag, not a digest: the registry names what it stores");
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let pinned = switchboard::deploy::oci::registry::push(&reference, bytes).await?;
    #[allow(clippy::print_stdout, reason = "the command's report")]
    {
        println!("{pinned}");
    }
    Ok(())
}
