//! What a call's store holds: the resource table, a locked-down WASI context, the call's
//! sandbox and timeline, and its memory and CPU meters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::WasiConfig;

use super::component::Sandbox;
use super::cpu::CpuMeter;
use super::output::{OutputLog, Stream};
use crate::timeline::CallTimeline;

/// The store data of one call's instance.
pub struct CallState {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    /// The component's sandbox: policy, secrets, limits.
    pub(crate) sandbox: Arc<Sandbox>,
    /// Where this call's markers go.
    pub(crate) timeline: CallTimeline,
    /// Outbound connections open now (shared with their slot guards).
    pub(crate) open_outbound: Arc<AtomicU32>,
    /// Outbound connects started over the instance's life.
    pub(crate) connects_started: u32,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) cpu: CpuMeter,
    /// The guest's stdout and stderr, logged as they are written.
    pub(crate) output: OutputLog,
}

impl CallState {
    /// Fresh state for one call of a component.
    pub fn new(sandbox: Arc<Sandbox>, timeline: CallTimeline) -> Self {
        let limits = &sandbox.limits;
        let output = OutputLog::new(timeline.call(), limits.log_bytes, limits.log_bytes_per_second);
        let mut wasi = WasiCtx::builder();
        // No environment, arguments or preopened directories are given; sockets are off.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .stdout(output.stream(Stream::Stdout))
            .stderr(output.stream(Stream::Stderr));
        CallState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            cpu: CpuMeter::new(limits.cpu_burst, limits.cpu_total),
            sandbox,
            timeline,
            open_outbound: Arc::new(AtomicU32::new(0)),
            connects_started: 0,
            output,
        }
    }

    /// The `wasi:config/store` view: the component's non-secret settings.
    pub fn config(&mut self) -> WasiConfig<'_> {
        WasiConfig::new(&self.sandbox.settings)
    }

    /// Outbound connections open right now.
    pub fn open_outbound(&self) -> u32 {
        self.open_outbound.load(Ordering::Relaxed)
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory and tables; remembers whether the cap was hit, so a trap that
/// follows can be blamed on it.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    hit: bool,
    largest: usize,
}

/// Table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl MemoryLimiter {
    fn new(max_bytes: usize) -> Self {
        MemoryLimiter { max_bytes, hit: false, largest: 0 }
    }

    /// The largest size any of the instance's linear memories reached, bytes (reserved
    /// by the guest, not necessarily touched).
    pub fn largest(&self) -> usize {
        self.largest
    }

    /// Whether a growth was refused.
    pub fn hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            self.largest = self.largest.max(current);
            return Ok(false);
        }
        self.largest = self.largest.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Frees an outbound-connection slot when dropped.
pub(crate) struct OutboundSlot(pub(crate) Arc<AtomicU32>);

impl Drop for OutboundSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
