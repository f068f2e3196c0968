//! One trial: a fresh system under test carries N calls at real-time pacing; the fake
//! Deepgram times every frame sent inside a measurement window after the ramp and the
//! warm-up, and `/proc` gives the system's CPU time over that window and its memory in
//! the middle of it.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::caller::{self, CallPlan, CallReport, FRAME_INTERVAL};
use crate::fake_deepgram::{FakeDeepgram, Seen};
use crate::neighbours::{self, Attacks};
use crate::procfs;
use crate::stamp::now_ns;
use crate::sut::{self, Environment, System};

/// A trial passes when p99 stays at or under this, with nothing lost.
pub const P99_LIMIT_US: u64 = 20_000;

/// Timing of a trial.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Phases {
    /// Calls connect spread over `max(min_ramp, calls x ramp_per_call)`.
    pub ramp_per_call: Duration,
    /// The shortest ramp.
    pub min_ramp: Duration,
    /// After the ramp, before measuring.
    pub warmup: Duration,
    /// The measurement window.
    pub measure: Duration,
}

impl Phases {
    fn ramp(&self, calls: u32) -> Duration {
        self.min_ramp.max(self.ramp_per_call * calls)
    }
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Frames measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Worst.
    pub max_us: u64,
}

impl Percentiles {
    /// The percentiles of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

/// Everything one trial measured.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// The system under test.
    pub system: System,
    /// Concurrent calls.
    pub calls: u32,
    /// p99 within the limit, nothing lost, no call failed.
    pub passed: bool,
    /// Caller send to Deepgram receive, frames sent in the window.
    pub latency: Percentiles,
    /// The same for each call's first frame (includes opening Deepgram).
    pub first_audio: Percentiles,
    /// Media messages the callers sent.
    pub frames_sent: u64,
    /// Distinct frames the fake Deepgram received.
    pub frames_received: u64,
    /// Sent and never received.
    pub frames_lost: u64,
    /// Received more than once.
    pub duplicates: u64,
    /// Calls that failed (connect, send), plus Deepgram handshakes refused or broken.
    pub failed_calls: u64,
    /// `CloseStream` messages Deepgram received.
    pub close_streams: u64,
    /// The system's CPU time over the window, seconds.
    pub cpu_seconds: f64,
    /// CPU seconds per minute of one call.
    pub cpu_per_call_minute: f64,
    /// Resident memory before the calls, bytes.
    pub rss_idle_bytes: u64,
    /// Resident memory mid-window, bytes.
    pub rss_loaded_bytes: u64,
    /// Their difference per call, bytes.
    pub rss_per_call_bytes: u64,
    /// How far behind schedule the slowest caller sent a frame, us (late callers mean a
    /// busy harness or a system that stopped reading).
    pub harness_lateness_us: u64,
    /// Share of its core the harness (callers and fake Deepgram) used over the window: near
    /// 1.0 the load generator itself is the limit and the trial says little of the system.
    pub harness_cpu_share: f64,
    /// The first few errors seen.
    pub errors: Vec<String>,
    /// Hostile calls placed beside the measured ones, if any.
    pub attacks: Option<Attacks>,
}

/// The callers' reports held against what the fake Deepgram saw.
pub struct Tally {
    /// Media messages the callers sent.
    pub frames_sent: u64,
    /// Distinct frames received.
    pub frames_received: u64,
    /// Sent and never received, summed per call.
    pub frames_lost: u64,
    /// Calls that failed, plus Deepgram handshakes refused and established connections broken.
    pub failed_calls: u64,
    /// The first few errors of each side.
    pub errors: Vec<String>,
}

impl Tally {
    /// Tallies `reports` against `seen`.
    pub fn of(reports: &[CallReport], seen: &Seen) -> Self {
        let received = |call: u32| seen.frames.get(&call).map_or(0, |f| f.count());
        let mut errors: Vec<String> = reports.iter().filter_map(|r| r.error.clone()).take(5).collect();
        errors.extend(seen.errors.iter().take(5).cloned());
        Tally {
            frames_sent: reports.iter().map(|r| u64::from(r.sent)).sum(),
            frames_received: seen.frames.values().map(|f| u64::from(f.count())).sum(),
            frames_lost: reports.iter().map(|r| u64::from(r.sent.saturating_sub(received(r.call)))).sum(),
            failed_calls: reports.iter().filter(|r| r.error.is_some()).count() as u64 + seen.unauthorized + seen.error_count,
            errors,
        }
    }
}

/// Runs one trial of `calls` concurrent calls through a fresh `system`.
pub async fn run(system: System, calls: u32, environment: &Environment, deepgram: &FakeDeepgram, phases: Phases) -> anyhow::Result<Trial> {
    run_beside(system, calls, 0, environment, deepgram, phases).await
}

/// The same, with `attackers` placing hostile calls for the whole trial (Switchboard with
/// the hostile guest configured; see [`crate::neighbours`]).
pub async fn run_beside(
    system: System,
    calls: u32,
    attackers: u32,
    environment: &Environment,
    deepgram: &FakeDeepgram,
    phases: Phases,
) -> anyhow::Result<Trial> {
    let running = sut::start(system, environment, calls + 16).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = procfs::rss_bytes(running.pid)?;

    let start = Instant::now() + Duration::from_millis(100);
    let ramp = phases.ramp(calls);
    let window_start = start + ramp + phases.warmup;
    let window_end = window_start + phases.measure;
    let call_length = ramp + phases.warmup + phases.measure + Duration::from_millis(500);
    let frames = call_length.as_millis().div_ceil(FRAME_INTERVAL.as_millis()) as u32;
    let to_ns = |at: Instant| now_ns() + at.saturating_duration_since(Instant::now()).as_nanos() as u64;
    let recorder = deepgram.record(to_ns(window_start), to_ns(window_end));

    let base_url = running.url.trim_end_matches("/twilio/media").to_owned();
    let attacks = (attackers > 0).then(|| tokio::spawn(neighbours::attack(base_url, attackers, window_end)));
    let mut callers = JoinSet::new();
    for call in 0..calls {
        let connect_at = start + ramp.mul_f64(f64::from(call) / f64::from(calls));
        callers.spawn(caller::run(CallPlan { url: running.url.clone(), call, connect_at, frames }));
    }
    tokio::time::sleep_until(window_start).await;
    let cpu_before = procfs::cpu_seconds(running.pid)?;
    let harness_before = procfs::cpu_seconds(std::process::id())?;
    tokio::time::sleep_until(window_start + phases.measure / 2).await;
    let rss_loaded = procfs::rss_bytes(running.pid)?;
    tokio::time::sleep_until(window_end).await;
    let cpu_seconds = procfs::cpu_seconds(running.pid)? - cpu_before;
    let harness_cpu_share = (procfs::cpu_seconds(std::process::id())? - harness_before) / phases.measure.as_secs_f64();

    let mut reports: Vec<CallReport> = Vec::with_capacity(calls as usize);
    while let Some(report) = callers.join_next().await {
        reports.push(report?);
    }
    let attacks = match attacks {
        Some(task) => Some(task.await?),
        None => None,
    };
    recorder.wait_closed(Duration::from_secs(20)).await;
    running.stop().await;
    let seen = recorder.snapshot();

    let Tally { frames_sent, frames_received, frames_lost, failed_calls, errors } = Tally::of(&reports, &seen);
    let latency = Percentiles::of(&seen.latency_us);
    let passed = failed_calls == 0 && frames_lost == 0 && latency.count > 0 && latency.p99_us <= P99_LIMIT_US;
    let call_minutes = f64::from(calls) * phases.measure.as_secs_f64() / 60.0;
    Ok(Trial {
        system,
        calls,
        passed,
        latency,
        first_audio: Percentiles::of(&seen.first_audio_us),
        frames_sent,
        frames_received,
        frames_lost,
        duplicates: seen.duplicates,
        failed_calls,
        close_streams: seen.close_streams,
        cpu_seconds,
        cpu_per_call_minute: cpu_seconds / call_minutes,
        rss_idle_bytes: rss_idle,
        rss_loaded_bytes: rss_loaded,
        rss_per_call_bytes: rss_loaded.saturating_sub(rss_idle) / u64::from(calls.max(1)),
        harness_lateness_us: reports.iter().map(|r| r.max_lateness.as_micros() as u64).max().unwrap_or(0),
        harness_cpu_share,
        errors,
        attacks,
    })
}
