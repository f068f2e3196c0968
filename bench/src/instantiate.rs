//! How long a call's instance takes to create: a fresh store plus the voice-pipeline
//! component instantiated in it, exactly as the host does per call
//! ([`LoadedComponent::instantiate`]), with the pooling allocator the host uses and with
//! on-demand allocation for comparison. Also how long the instance takes to drop.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use switchboard::config::ComponentConfig;
use switchboard::observe::timeline::{CallId, Timeline};
use switchboard::runtime::state::CallState;
use switchboard::runtime::{EngineSettings, LoadedComponent, Runtime, Sandbox};
use wasmtime::component::Component;

/// Percentiles of one allocation strategy, microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Figures {
    /// Instances timed.
    pub iterations: u32,
    /// Creating store and instance, median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Dropping the store (and returning the slot), median.
    pub drop_p50_us: f64,
    /// Of the creation: building the call's host state (WASI context, meters), median.
    pub state_p50_us: f64,
}

/// Pooling against on-demand.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Instantiation {
    /// The pooling allocator (what the host runs).
    pub pooling: Figures,
    /// On-demand allocation.
    pub on_demand: Figures,
}

/// Times `iterations` instantiations of the bundled voice pipeline with each strategy.
pub async fn run(iterations: u32) -> anyhow::Result<Instantiation> {
    let config = switchboard::Config::builtin()?;
    let pipeline = config.components.get("voice-pipeline").context("the built-in config has no voice-pipeline")?;
    Ok(Instantiation {
        pooling: measure(pipeline, true, iterations, 200).await?,
        on_demand: measure(pipeline, false, iterations, 200).await?,
    })
}

/// Times `iterations` instantiations of `component_config`'s component (after `warmup`
/// untimed ones), with the pooling allocator or on demand.
pub async fn measure(component_config: &ComponentConfig, pooling: bool, iterations: u32, warmup: u32) -> anyhow::Result<Figures> {
    let runtime = Runtime::new(EngineSettings {
        max_instances: 64,
        max_memory_bytes: component_config.limits.memory_bytes,
        pooling,
        perf_map: false,
    })
    .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let bytes = switchboard::deploy::versions::source_bytes(component_config)?;
    let component = Component::new(runtime.engine(), &bytes).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let sandbox = Arc::new(Sandbox::from_config(component_config, Arc::new(switchboard::observe::metrics::Metrics::new()))?);
    let loaded = LoadedComponent::link(&runtime, sandbox, &component)?;
    let timeline = Timeline::new(16);

    let mut create = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3)?;
    let mut teardown = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3)?;
    let mut state = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3)?;
    for i in 0..warmup + iterations {
        let call = timeline.start_call(CallId(u64::from(i)));
        let started = Instant::now();
        let (store, _handler) = loaded.instantiate(call).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let created = started.elapsed();
        let dropping = Instant::now();
        drop(store);
        let dropped = dropping.elapsed();
        let building = Instant::now();
        let call_state = CallState::new(loaded.sandbox().clone(), timeline.start_call(CallId(u64::from(i) + 1_000_000)));
        let built = building.elapsed();
        drop(call_state);
        if i >= warmup {
            state.record(built.as_nanos().max(1) as u64)?;
            create.record(created.as_nanos() as u64)?;
            teardown.record(dropped.as_nanos() as u64)?;
        }
    }
    let us = |histogram: &Histogram<u64>, q: f64| histogram.value_at_quantile(q) as f64 / 1_000.0;
    Ok(Figures {
        iterations,
        p50_us: us(&create, 0.5),
        p99_us: us(&create, 0.99),
        drop_p50_us: us(&teardown, 0.5),
        state_p50_us: us(&state, 0.5),
    })
}
