//! What a call's store holds: the resource table, a locked-down WASI context, the
//! `wasi:http` context and hooks, the call's sandbox and timeline, its outbound permits,
//! and its memory and CPU meters.

use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::WasiConfig;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::cpu::CpuMeter;
use super::http_hooks::HttpHooks;
use super::limits::MemoryLimiter;
use super::output::{OutputLog, Stream};
use super::sandbox::Sandbox;
use crate::observe::timeline::CallTimeline;

/// The store data of one call's instance.
pub struct CallState {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    /// The component's sandbox: policy, secrets, limits.
    pub(crate) sandbox: Arc<Sandbox>,
    /// Where this call's markers go.
    pub(crate) timeline: CallTimeline,
    /// One permit per outbound connection the instance may hold at once; a connection
    /// (or its handshake) holds one until it is dropped.
    pub(crate) outbound_permits: Arc<Semaphore>,
    /// Outbound connects started over the instance's life.
    pub(crate) connects_started: u32,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) cpu: CpuMeter,
    /// The guest's stdout and stderr, logged as they are written.
    pub(crate) output: OutputLog,
    http: WasiHttpCtx,
    /// The `wasi:http` send hook: policy, limits and the keep-alive pool of this call.
    http_hooks: HttpHooks,
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
        let http_hooks = HttpHooks::new(sandbox.clone(), timeline.clone());
        CallState {
            http_hooks,
            table: ResourceTable::new(),
            wasi: wasi.build(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            cpu: CpuMeter::new(limits.cpu_burst, limits.cpu_total),
            outbound_permits: Arc::new(Semaphore::new(limits.max_outbound_connections as usize)),
            sandbox,
            timeline,
            connects_started: 0,
            output,
            http: WasiHttpCtx::new(),
        }
    }

    /// The `wasi:config/store` view: the component's non-secret settings.
    pub fn config(&mut self) -> WasiConfig<'_> {
        WasiConfig::new(&self.sandbox.settings)
    }

    /// When the instance has trapped: why, for markers and logs.
    pub fn trap_cause(&self) -> &'static str {
        if self.cpu.exceeded() {
            "cpu-budget"
        } else if self.limiter.hit() {
            "memory-limit"
        } else {
            "trap"
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_hooks }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
