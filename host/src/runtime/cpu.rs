//! The CPU budget: how long a guest may execute, measured at every guest/host transition.
//!
//! The engine's epoch advances every [`EPOCH_TICK`]. At each tick a running guest is
//! interrupted: the meter adds up its execution time and either traps it (over budget) or,
//! once it has executed for [`MIN_SLICE`] since it last waited or yielded, yields to the
//! async runtime, so a guest that never waits cannot hold a worker thread and every other
//! call keeps flowing. Time spent waiting in host calls, or parked after a yield, does not
//! count.
//!
//! A guest that waits (for its next media frame, say) finds the epoch advanced when it
//! wakes, so the first check it meets interrupts it at once. Yielding there would cost a
//! fiber switch and a trip through the scheduler on every message for nothing, since the
//! guest has just been given the thread: below [`MIN_SLICE`] it carries on.
//!
//! Two budgets apply: `burst`, the longest stretch of execution without waiting on the
//! host (a host call that takes at least [`WAIT_THRESHOLD`] counts as waiting), which stops
//! a guest stuck in a loop within about a second; and `total`, the execution time of the
//! whole call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::CallHook;

/// How often the engine's epoch advances: the longest a guest runs before it yields to
/// the other calls on its worker thread. Each slice delays every other call sharing the
/// thread, so it is short (the neighbours benchmark measured p50 35 ms at 10 ms slices
/// with two looping guests on one core); the ticker thread's cost is a wake-up per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A host call at least this long means the guest was waiting, which ends a burst.
pub const WAIT_THRESHOLD: Duration = Duration::from_millis(1);

/// A guest yields at a tick only after executing this long since it last waited or
/// yielded: at most one tick plus this before the other calls on its thread run again.
pub const MIN_SLICE: Duration = Duration::from_micros(250);

/// What a tick within budget asks of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// It has had its slice: yield, then [`CpuMeter::resume`].
    Yield,
    /// It has only just been given the thread: carry on (see [`CpuMeter::carry_on`]).
    CarryOn,
}

/// Which budget a guest exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CpuBudgetExceeded {
    /// It executed longer than the burst budget without waiting.
    #[error("guest ran {used:?} without waiting on the host (burst budget {limit:?})")]
    Burst {
        /// Execution time of the burst.
        used: Duration,
        /// The budget.
        limit: Duration,
    },
    /// It executed longer than the call's total budget.
    #[error("guest used {used:?} of execution time (call budget {limit:?})")]
    Total {
        /// Execution time of the call.
        used: Duration,
        /// The budget.
        limit: Duration,
    },
}

/// Per-call execution-time accounting. Cheap to clone; clones share the counters.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    inner: Arc<MeterInner>,
}

#[derive(Debug)]
struct MeterInner {
    origin: Instant,
    burst_limit: Duration,
    total_limit: Duration,
    /// Nanoseconds since `origin` (plus one) when the current stretch in wasm began; 0 when
    /// the guest is not executing.
    running_since: AtomicU64,
    /// Nanoseconds since `origin` (plus one) when the current host call began; 0 outside one.
    in_host_since: AtomicU64,
    burst: AtomicU64,
    /// Execution since the guest last waited or yielded, nanoseconds.
    slice: AtomicU64,
    total: AtomicU64,
    exceeded: AtomicBool,
}

impl CpuMeter {
    /// A meter with the given budgets.
    pub fn new(burst_limit: Duration, total_limit: Duration) -> Self {
        CpuMeter {
            inner: Arc::new(MeterInner {
                origin: Instant::now(),
                burst_limit,
                total_limit,
                running_since: AtomicU64::new(0),
                in_host_since: AtomicU64::new(0),
                burst: AtomicU64::new(0),
                slice: AtomicU64::new(0),
                total: AtomicU64::new(0),
                exceeded: AtomicBool::new(false),
            }),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.inner.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// The guest starts (or resumes) executing at `now`.
    fn start_stretch(&self, now: u64) {
        self.inner.running_since.store(now, Ordering::Relaxed);
    }

    /// The guest stops executing at `now`: its stretch is added to both counters.
    fn end_stretch(&self, now: u64) {
        let since = self.inner.running_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            let elapsed = now.saturating_sub(since);
            self.inner.burst.fetch_add(elapsed, Ordering::Relaxed);
            self.inner.slice.fetch_add(elapsed, Ordering::Relaxed);
            self.inner.total.fetch_add(elapsed, Ordering::Relaxed);
        }
    }

    /// Feeds a guest/host transition (from `Store::call_hook`). Runs several times per
    /// message a guest handles, so it reads the clock once.
    pub fn on_transition(&self, hook: CallHook) {
        let now = self.now();
        match hook {
            CallHook::CallingWasm => self.start_stretch(now),
            CallHook::ReturningFromWasm => self.end_stretch(now),
            CallHook::CallingHost => {
                self.end_stretch(now);
                self.inner.in_host_since.store(now, Ordering::Relaxed);
            }
            CallHook::ReturningFromHost => {
                let since = self.inner.in_host_since.swap(0, Ordering::Relaxed);
                if since != 0 && now.saturating_sub(since) >= WAIT_THRESHOLD.as_nanos() as u64 {
                    self.inner.burst.store(0, Ordering::Relaxed);
                    self.inner.slice.store(0, Ordering::Relaxed);
                }
                self.start_stretch(now);
            }
        }
    }

    /// Called at an epoch tick while the guest executes: counts the stretch so far,
    /// checks the budgets and says whether the guest has had its slice.
    pub fn check_at_tick(&self) -> Result<Tick, CpuBudgetExceeded> {
        self.end_stretch(self.now());
        let burst = Duration::from_nanos(self.inner.burst.load(Ordering::Relaxed));
        let total = Duration::from_nanos(self.inner.total.load(Ordering::Relaxed));
        let verdict = if burst > self.inner.burst_limit {
            Err(CpuBudgetExceeded::Burst { used: burst, limit: self.inner.burst_limit })
        } else if total > self.inner.total_limit {
            Err(CpuBudgetExceeded::Total { used: total, limit: self.inner.total_limit })
        } else {
            Ok(())
        };
        if verdict.is_err() {
            self.inner.exceeded.store(true, Ordering::Relaxed);
        }
        verdict?;
        let slice = Duration::from_nanos(self.inner.slice.load(Ordering::Relaxed));
        Ok(if slice >= MIN_SLICE { Tick::Yield } else { Tick::CarryOn })
    }

    /// The guest resumes after a yield, with a fresh slice. The epoch callback runs
    /// inside a host transition (the interrupt is a libcall); the time spent parked must
    /// not look like waiting, or a guest that never waits would have its burst reset at
    /// every tick.
    pub fn resume(&self) {
        self.inner.slice.store(0, Ordering::Relaxed);
        self.carry_on();
    }

    /// The guest goes on executing after a tick that did not make it yield.
    pub fn carry_on(&self) {
        self.inner.in_host_since.store(0, Ordering::Relaxed);
        self.start_stretch(self.now());
    }

    /// Whether a budget was exceeded (the reason the instance trapped).
    pub fn exceeded(&self) -> bool {
        self.inner.exceeded.load(Ordering::Relaxed)
    }

    /// Execution time so far.
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.inner.total.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(duration: Duration) {
        let start = Instant::now();
        while start.elapsed() < duration {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn a_long_burst_is_refused_and_waiting_resets_it() {
        let meter = CpuMeter::new(Duration::from_millis(20), Duration::from_secs(10));
        meter.on_transition(CallHook::CallingWasm);
        busy(Duration::from_millis(5));
        assert_eq!(meter.check_at_tick(), Ok(Tick::Yield));
        meter.resume();
        // A host call that waits ends the burst.
        meter.on_transition(CallHook::CallingHost);
        std::thread::sleep(WAIT_THRESHOLD * 2);
        meter.on_transition(CallHook::ReturningFromHost);
        busy(Duration::from_millis(25));
        let verdict = meter.check_at_tick();
        assert!(matches!(verdict, Err(CpuBudgetExceeded::Burst { .. })), "{verdict:?}");
        assert!(meter.exceeded());
        assert!(meter.total() >= Duration::from_millis(30));
    }

    #[test]
    fn time_in_host_calls_does_not_count() {
        let meter = CpuMeter::new(Duration::from_millis(20), Duration::from_millis(20));
        meter.on_transition(CallHook::CallingWasm);
        meter.on_transition(CallHook::CallingHost);
        std::thread::sleep(Duration::from_millis(40));
        meter.on_transition(CallHook::ReturningFromHost);
        assert!(meter.check_at_tick().is_ok());
        assert!(meter.total() < Duration::from_millis(20));
    }

    #[test]
    fn a_guest_just_woken_carries_on_and_one_that_ran_its_slice_yields() {
        let meter = CpuMeter::new(Duration::from_secs(10), Duration::from_secs(10));
        meter.on_transition(CallHook::CallingWasm);
        busy(MIN_SLICE * 2);
        // It waited for its next message; the tick finds it just after waking.
        meter.on_transition(CallHook::CallingHost);
        std::thread::sleep(WAIT_THRESHOLD * 2);
        meter.on_transition(CallHook::ReturningFromHost);
        assert_eq!(meter.check_at_tick(), Ok(Tick::CarryOn));
        meter.carry_on();
        // Host calls that return at once do not start a new slice.
        for _ in 0..3 {
            busy(MIN_SLICE / 2);
            meter.on_transition(CallHook::CallingHost);
            meter.on_transition(CallHook::ReturningFromHost);
        }
        assert_eq!(meter.check_at_tick(), Ok(Tick::Yield));
        meter.resume();
        // After the yield the slice starts afresh.
        assert_eq!(meter.check_at_tick(), Ok(Tick::CarryOn));
    }

    #[test]
    fn the_total_budget_spans_bursts() {
        let meter = CpuMeter::new(Duration::from_secs(10), Duration::from_millis(15));
        for _ in 0..4 {
            meter.on_transition(CallHook::CallingWasm);
            busy(Duration::from_millis(5));
            meter.on_transition(CallHook::ReturningFromWasm);
        }
        meter.on_transition(CallHook::CallingWasm);
        assert!(matches!(meter.check_at_tick(), Err(CpuBudgetExceeded::Total { .. })));
    }
}
