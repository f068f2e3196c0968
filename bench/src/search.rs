//! The step search for the most concurrent calls a system carries with p99 within
//! [`P99_LIMIT_US`](crate::trial::P99_LIMIT_US) and nothing lost: double from a start
//! until a trial fails, then bisect between the last pass and the first failure.

use serde::Serialize;

use crate::fake_deepgram::FakeDeepgram;
use crate::sut::{Environment, System};
use crate::trial::{self, Phases, Trial};

/// Calls are searched in steps of this many.
const GRANULARITY: u32 = 50;

/// A failed trial whose harness used more of its core than this says more about the load
/// generator than about the system: the search stops there.
const HARNESS_SATURATED: f64 = 0.9;

/// One system's search.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    /// The system.
    pub system: System,
    /// Every trial run, in order.
    pub trials: Vec<Trial>,
    /// The most calls that passed (0 when none did).
    pub max_calls: u32,
    /// The search stopped because the load generator itself fell behind: the system may
    /// carry more than `max_calls`.
    pub harness_bound: bool,
    /// The search reached its upper limit still passing.
    pub limit_reached: bool,
}

impl Search {
    /// The trial at `calls`, if one ran.
    pub fn at(&self, calls: u32) -> Option<&Trial> {
        self.trials.iter().find(|t| t.calls == calls)
    }

    /// The trial at the most calls that passed.
    pub fn best(&self) -> Option<&Trial> {
        self.at(self.max_calls)
    }
}

/// Searches `system` from `start` calls up to `limit`, also running `reference` calls if
/// the steps skip it; `progress` hears of every trial.
pub async fn run(
    system: System,
    environment: &Environment,
    deepgram: &FakeDeepgram,
    phases: Phases,
    (start, limit, reference): (u32, u32, u32),
    mut progress: impl FnMut(&Trial),
) -> anyhow::Result<Search> {
    let mut search = Search { system, trials: Vec::new(), max_calls: 0, harness_bound: false, limit_reached: false };
    let mut failed_at: Option<u32> = None;
    let mut calls = start.max(1);
    let mut step = |search: &mut Search, trial: Trial| {
        progress(&trial);
        let passed = trial.passed;
        let harness_bound = !passed && trial.harness_cpu_share > HARNESS_SATURATED;
        if passed {
            search.max_calls = search.max_calls.max(trial.calls);
        }
        search.harness_bound |= harness_bound;
        search.trials.push(trial);
        passed
    };
    // Double until a failure.
    loop {
        let trial = trial::run(system, calls, environment, deepgram, phases).await?;
        if !step(&mut search, trial) {
            failed_at = Some(calls);
            break;
        }
        if calls >= limit {
            search.limit_reached = true;
            break;
        }
        calls = (calls * 2).min(limit);
    }
    // Bisect between the last pass and the first failure.
    if let Some(mut failed) = failed_at
        && !search.harness_bound
    {
        while failed - search.max_calls > GRANULARITY.max(search.max_calls / 10) {
            let middle = (search.max_calls + failed) / 2 / GRANULARITY * GRANULARITY;
            if middle <= search.max_calls {
                break;
            }
            let trial = trial::run(system, middle, environment, deepgram, phases).await?;
            if !step(&mut search, trial) {
                failed = middle;
                if search.harness_bound {
                    break;
                }
            }
        }
    }
    if search.at(reference).is_none() {
        let trial = trial::run(system, reference, environment, deepgram, phases).await?;
        step(&mut search, trial);
    }
    search.trials.sort_by_key(|t| t.calls);
    Ok(search)
}
