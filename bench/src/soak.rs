//! The soak run: a system carries N concurrent calls for M minutes. Calls have varied
//! lengths and each is replaced as it ends, so instances are created and destroyed all
//! along. Every interval it reports resident memory, CPU, live calls, latency and errors;
//! at the end, frames lost over every call.

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::caller::{self, CallPlan, FRAME_INTERVAL};
use crate::fake_deepgram::FakeDeepgram;
use crate::procfs;
use crate::sut::{self, Environment, System};
use crate::trial::{Percentiles, Tally};

/// What to run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SoakPlan {
    /// The system under test.
    pub system: System,
    /// Concurrent calls.
    pub calls: u32,
    /// How long to keep calls coming.
    pub duration: Duration,
    /// Average call length (each is 0.5x to 1.5x this).
    pub call_length: Duration,
    /// Report every.
    pub interval: Duration,
}

/// One interval's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub at_s: u64,
    /// Resident memory of the system, bytes.
    pub rss_bytes: u64,
    /// Its CPU use over the interval, share of one core.
    pub cpu_share: f64,
    /// Deepgram connections open.
    pub live_calls: usize,
    /// Calls finished so far.
    pub calls_done: u64,
    /// Latency of the frames received in the interval.
    pub latency: Percentiles,
    /// Calls that failed so far.
    pub failed_calls: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// What ran.
    pub plan: SoakPlan,
    /// Every interval.
    pub samples: Vec<Sample>,
    /// Calls placed.
    pub calls_done: u64,
    /// Frames sent by callers.
    pub frames_sent: u64,
    /// Frames sent and never received.
    pub frames_lost: u64,
    /// Frames received twice.
    pub duplicates: u64,
    /// Calls that failed, plus Deepgram connections refused or broken.
    pub failed_calls: u64,
    /// The first few errors.
    pub errors: Vec<String>,
    /// Latency over the whole run.
    pub latency: Percentiles,
}

/// Runs the soak, printing a line per interval through `progress`.
pub async fn run(
    plan: SoakPlan,
    environment: &Environment,
    deepgram: &FakeDeepgram,
    mut progress: impl FnMut(&Sample),
) -> anyhow::Result<SoakReport> {
    let running = sut::start(plan.system, environment, plan.calls + 16).await?;
    let recorder = deepgram.record(0, u64::MAX);
    let started = Instant::now();
    let stop_placing = started + plan.duration;
    let mut callers = JoinSet::new();
    let mut next_call = 0u32;
    let mut place = |callers: &mut JoinSet<_>, connect_at: Instant| {
        // Lengths spread evenly over 0.5x..1.5x (golden-ratio sequence), so calls end apart.
        let spread = 0.5 + (f64::from(next_call) * 0.618_033_988_75).fract();
        let frames = (plan.call_length.mul_f64(spread).as_millis() / FRAME_INTERVAL.as_millis()) as u32;
        callers.spawn(caller::run(CallPlan { url: running.url.clone(), call: next_call, connect_at, frames: frames.max(1) }));
        next_call += 1;
    };
    let ramp = Duration::from_secs(5);
    for i in 0..plan.calls {
        place(&mut callers, started + ramp.mul_f64(f64::from(i) / f64::from(plan.calls)));
    }

    let mut reports = Vec::new();
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval_at(started + plan.interval, plan.interval);
    let mut cpu_before = procfs::cpu_seconds(running.pid)?;
    let mut sampled_at = Instant::now();
    loop {
        tokio::select! {
            finished = callers.join_next() => {
                let Some(finished) = finished else { break };
                reports.push(finished?);
                if Instant::now() < stop_placing {
                    place(&mut callers, Instant::now());
                }
            }
            _ = ticker.tick() => {
                let cpu = procfs::cpu_seconds(running.pid)?;
                let sample = Sample {
                    at_s: started.elapsed().as_secs(),
                    rss_bytes: procfs::rss_bytes(running.pid)?,
                    cpu_share: (cpu - cpu_before) / sampled_at.elapsed().as_secs_f64(),
                    live_calls: recorder.live(),
                    calls_done: reports.len() as u64,
                    latency: Percentiles::of(&recorder.take_interval()),
                    failed_calls: reports.iter().filter(|r: &&caller::CallReport| r.error.is_some()).count() as u64,
                };
                (cpu_before, sampled_at) = (cpu, Instant::now());
                progress(&sample);
                samples.push(sample);
            }
        }
    }
    recorder.wait_closed(Duration::from_secs(20)).await;
    running.stop().await;
    let seen = recorder.snapshot();
    let tally = Tally::of(&reports, &seen);
    Ok(SoakReport {
        plan,
        samples,
        calls_done: reports.len() as u64,
        frames_sent: tally.frames_sent,
        frames_lost: tally.frames_lost,
        duplicates: seen.duplicates,
        failed_calls: tally.failed_calls,
        errors: tally.errors,
        latency: Percentiles::of(&seen.latency_us),
    })
}
