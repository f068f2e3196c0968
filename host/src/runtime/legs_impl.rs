//! Host side of `switchboard:call/legs`: a guest's legs and faults onto the call's
//! timeline, where the call store classifies them.

use super::bindings::switchboard::call::legs::{Host, Impact};
use super::state::CallState;
use crate::observe::timeline::{Impact as FaultImpact, Report};

impl Host for CallState {
    fn name_inbound(&mut self, name: String) -> wasmtime::Result<()> {
        self.timeline.report(Report::NameInbound(name));
        Ok(())
    }

    fn declare(&mut self, name: String) -> wasmtime::Result<()> {
        self.timeline.report(Report::Declare(name));
        Ok(())
    }

    fn fault(&mut self, leg: String, impact: Impact, cause: String, detail: String) -> wasmtime::Result<()> {
        let impact = match impact {
            Impact::Recovered => FaultImpact::Recovered,
            Impact::Failed => FaultImpact::Failed,
        };
        self.timeline.report(Report::Fault { leg, impact, cause, detail });
        Ok(())
    }

    fn complete(&mut self, leg: String) -> wasmtime::Result<()> {
        self.timeline.report(Report::Complete(leg));
        Ok(())
    }
}
