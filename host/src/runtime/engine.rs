//! The wasmtime engine and linker a host runs every component on.
//!
//! The engine uses the pooling allocator (instances are carved out of memory reserved at
//! start-up, so instantiating per call is microseconds), async support (guests run on
//! fibers that suspend at every async host call) and epoch interruption, advanced by a
//! dedicated thread every [`cpu::EPOCH_TICK`](super::cpu::EPOCH_TICK) so that even a
//! guest that never yields is interrupted when every async worker thread is busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::switchboard::call::{legs, markers, outbound, websocket};
use super::cpu::EPOCH_TICK;
use super::state::CallState;

/// Sizing of the instance pool.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Instances alive at once (one per call).
    pub max_instances: u32,
    /// The largest linear memory any component may have, bytes.
    pub max_memory_bytes: usize,
    /// Carve instances out of a pool reserved up front (what the host does). `false`
    /// allocates each instance on demand; the instantiation benchmark compares the two.
    pub pooling: bool,
    /// Write `/tmp/perf-<pid>.map` naming the guests' compiled functions for `perf`.
    pub perf_map: bool,
}

/// The engine, the linker with every import the host provides, and the epoch thread.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// The pool: every slot sized for the largest component, `max_instances` of each kind.
fn pool_config(settings: &EngineSettings) -> PoolingAllocationConfig {
    let instances = settings.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_memories_per_component(2)
        .max_memory_size(settings.max_memory_bytes)
        .max_unused_warm_slots(instances.min(100));
    pool
}

impl Runtime {
    /// Builds the engine and the linker.
    pub fn new(settings: EngineSettings) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        if settings.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }

        if settings.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool_config(&settings)));
        } else {
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        }

        let engine = Engine::new(&config)?;
        let linker = build_linker(&engine)?;
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Runtime { engine, linker, _ticker: ticker })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker, holding every import the host provides.
    pub fn linker(&self) -> &Linker<CallState> {
        &self.linker
    }
}

/// The imports a guest gets: WASI (sandboxed by each call's `WasiCtx`), `wasi:config/store`
/// and the Switchboard interfaces.
fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_config::add_to_linker(&mut linker, |state: &mut CallState| state.config())?;
    super::http_impl::add_to_linker(&mut linker)?;
    websocket::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
    outbound::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
    markers::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
    legs::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// Advances the engine's epoch on its own thread until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("switchboard-epoch".to_owned()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(EpochTicker { stop, thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perf_map_names_the_guests_compiled_functions() {
        let settings = EngineSettings { max_instances: 1, max_memory_bytes: 64 << 20, pooling: false, perf_map: true };
        let runtime = Runtime::new(settings).expect("engine");
        wasmtime::component::Component::new(runtime.engine(), crate::config::Builtin::VoicePipeline.wasm()).expect("compiles");
        let path = format!("/tmp/perf-{}.map", std::process::id());
        let map = std::fs::read_to_string(&path).expect("the engine wrote its perf map");
        // Only this test's engine writes one in the test process: leave /tmp as it was.
        let _ = std::fs::remove_file(&path);
        assert!(map.lines().any(|line| line.contains("voice_pipeline")), "no voice-pipeline function named in {path}");
    }
}
