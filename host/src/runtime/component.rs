//! A compiled, checked component ready to be instantiated once per call.
//!
//! Linking checks a compiled component: that the host provides every import it needs
//! (naming each missing one) and that it exports the `handler` interface. Instantiation
//! then only allocates from the pool.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Component;
use wasmtime::{Store, UpdateDeadline};

use super::bindings::{CallHandler, CallHandlerPre};
use super::cpu::Tick;
use super::engine::Runtime;
pub use super::error::LoadError;
use super::sandbox::Sandbox;
use super::state::CallState;
use crate::observe::timeline::CallTimeline;

/// A component compiled for the host's engine, with its sandbox.
pub struct LoadedComponent {
    sandbox: Arc<Sandbox>,
    pre: CallHandlerPre<CallState>,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent").field("name", &self.sandbox.name).finish_non_exhaustive()
    }
}

impl LoadedComponent {
    /// Checks a compiled component against the host's imports and the expected export.
    pub fn link(runtime: &Runtime, sandbox: Arc<Sandbox>, component: &Component) -> Result<Self, LoadError> {
        let pre = link(runtime, &sandbox.name, component)?;
        Ok(LoadedComponent { sandbox, pre })
    }

    /// The component's sandbox.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// A fresh store and instance for one call, with the memory limit, the CPU budget
    /// and the call's timeline wired in.
    pub async fn instantiate(&self, timeline: CallTimeline) -> wasmtime::Result<(Store<CallState>, CallHandler)> {
        let engine = self.pre.engine();
        let mut store = Store::new(engine, CallState::new(self.sandbox.clone(), timeline));
        store.limiter(|state| &mut state.limiter);
        store.call_hook(|context, hook| {
            context.data().cpu.on_transition(hook);
            Ok(())
        });
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|context| {
            let meter = &context.data().cpu;
            match meter.check_at_tick().map_err(wasmtime::Error::new)? {
                Tick::CarryOn => {
                    meter.carry_on();
                    Ok(UpdateDeadline::Continue(1))
                }
                Tick::Yield => {
                    let meter = meter.clone();
                    Ok(UpdateDeadline::YieldCustom(
                        1,
                        Box::pin(async move {
                            tokio::task::yield_now().await;
                            meter.resume();
                        }),
                    ))
                }
            }
        });
        let handler = self.pre.instantiate_async(&mut store).await?;
        Ok((store, handler))
    }
}

/// Pre-instantiates `component`, or explains which imports or exports do not fit.
fn link(runtime: &Runtime, name: &str, component: &Component) -> Result<CallHandlerPre<CallState>, LoadError> {
    let instance_pre = runtime.linker().instantiate_pre(component).map_err(|error| LoadError::MissingImports {
        name: name.to_owned(),
        missing: missing_imports(runtime, component),
        detail: Some(format!("{error:#}")),
    })?;
    CallHandlerPre::new(instance_pre)
        .map_err(|e| LoadError::WrongExport { name: name.to_owned(), message: wrong_export(runtime, component, &e) })
}

/// Why a component does not fit the `handler` export, saying what it exports instead: a
/// component that exports nothing is most often a file cut short at a section boundary
/// (every prefix of a component that ends between sections is itself a valid component).
fn wrong_export(runtime: &Runtime, component: &Component, error: &wasmtime::Error) -> String {
    let exports: Vec<String> = component.component_type().exports(runtime.engine()).map(|(name, _)| name.to_owned()).collect();
    if exports.is_empty() {
        let imports = component.component_type().imports(runtime.engine()).count();
        format!(
            "it exports nothing at all ({imports} imports): an incomplete file (cut short on its way?) or not a call handler; \
             build it for the `switchboard:call/call-handler` world"
        )
    } else {
        format!("{error:#}; it exports: {}", exports.join(", "))
    }
}

/// The component's imports that the host's linker does not define at all.
///
/// A name is free in a linker exactly when defining it succeeds, so each import is probed
/// by defining it in a throw-away copy of the linker.
fn missing_imports(runtime: &Runtime, component: &Component) -> Vec<String> {
    let engine = runtime.engine();
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| {
            let mut probe = runtime.linker().clone();
            probe.root().func_wrap(name, |_, (): ()| Ok(())).is_ok()
        })
        .collect()
}

/// Elapsed microseconds since `start`, for markers.
pub fn micros_since(start: Instant) -> String {
    start.elapsed().as_micros().to_string()
}
