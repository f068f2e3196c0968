//! Host side of `switchboard:call/markers`: guest events onto the call's timeline.

use super::bindings::switchboard::call::markers::Host;
use super::state::CallState;

impl Host for CallState {
    async fn emit(&mut self, name: String, attributes: Vec<(String, String)>) -> wasmtime::Result<()> {
        self.timeline.guest(name, attributes);
        Ok(())
    }
}
