//! Reaching a running host's operator listener from the command line.

use switchboard::config::OperatorAddress;
use switchboard::http::client::OperatorClient;

use crate::args::OperatorArgs;

impl OperatorArgs {
    /// A client of the listener, sending the token from `token_env` when it is set.
    pub(crate) fn client(&self, token_env: &str) -> anyhow::Result<OperatorClient> {
        let base = match &self.operator {
            Some(url) => url.clone(),
            None => OperatorAddress::load(self.config.as_deref())?.url(),
        };
        let mut client = OperatorClient::new(&base)?;
        if let Some(token) = std::env::var(token_env).ok().filter(|t| !t.is_empty()) {
            client = client.token(&token);
        }
        if let Some(ca) = &self.ca_cert {
            client = client.trust_pem_file(ca)?;
        }
        Ok(client)
    }
}
