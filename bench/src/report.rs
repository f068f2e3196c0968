//! The comparison's results: the JSON document, the Markdown tables (figures with ratios
//! against the native relay, then the targets), both written beside the chart.

use std::fmt::Write as _;

use serde::Serialize;

use crate::instantiate::Instantiation;
use crate::search::Search;
use crate::sut::System;
use crate::trial::{Phases, Trial};

/// Everything one comparison run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What ran where.
    pub machine: Machine,
    /// Trial timing.
    pub phases: Phases,
    /// Calls at which the systems are compared side by side.
    pub reference_calls: u32,
    /// One search per system.
    pub searches: Vec<Search>,
    /// Trials at `reference_calls`, the systems taking turns round after round, so that
    /// the machine's drift over the run falls on all of them alike.
    pub reference_rounds: Vec<Trial>,
    /// Switchboard's instantiation benchmark.
    pub instantiation: Option<Instantiation>,
    /// The targets, checked.
    pub targets: Vec<Target>,
}

/// The machine and the pinning.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// Cores on the machine.
    pub cores: usize,
    /// CPUs the systems under test were pinned to.
    pub system_cpus: Option<String>,
    /// CPU the harness (callers and fake Deepgram) was pinned to.
    pub harness_cpu: Option<usize>,
}

impl Machine {
    /// This machine.
    pub fn here(cores: usize, system_cpus: Option<String>, harness_cpu: Option<usize>) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned()))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine { cpu, cores, system_cpus, harness_cpu }
    }
}

/// One target from the benchmark issue.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is promised.
    pub name: String,
    /// What was measured.
    pub measured: String,
    /// Whether it holds (`None`: not measured in this run).
    pub met: Option<bool>,
}

impl Report {
    /// The search of `system`.
    pub fn search(&self, system: System) -> Option<&Search> {
        self.searches.iter().find(|s| s.system == system)
    }

    /// The side-by-side figures of `system` at `reference_calls`: the median of each figure
    /// over the interleaved rounds (frames lost: their sum), or the search's trial there.
    pub fn reference(&self, system: System) -> Option<Trial> {
        let rounds: Vec<&Trial> = self.reference_rounds.iter().filter(|t| t.system == system).collect();
        let Some(first) = rounds.first() else {
            return self.search(system).and_then(|s| s.at(self.reference_calls)).cloned();
        };
        let median_u64 = |f: &dyn Fn(&Trial) -> u64| {
            let mut values: Vec<u64> = rounds.iter().map(|t| f(t)).collect();
            values.sort_unstable();
            values[values.len() / 2]
        };
        let median_f64 = |f: &dyn Fn(&Trial) -> f64| {
            let mut values: Vec<f64> = rounds.iter().map(|t| f(t)).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let mut trial = (*first).clone();
        trial.latency.p50_us = median_u64(&|t| t.latency.p50_us);
        trial.latency.p99_us = median_u64(&|t| t.latency.p99_us);
        trial.latency.max_us = median_u64(&|t| t.latency.max_us);
        trial.first_audio.p50_us = median_u64(&|t| t.first_audio.p50_us);
        trial.cpu_per_call_minute = median_f64(&|t| t.cpu_per_call_minute);
        trial.rss_per_call_bytes = median_u64(&|t| t.rss_per_call_bytes);
        trial.frames_lost = rounds.iter().map(|t| t.frames_lost).sum();
        trial.failed_calls = rounds.iter().map(|t| t.failed_calls).sum();
        Some(trial)
    }

    /// Fills in the targets from the figures.
    pub fn check_targets(&mut self) {
        let reference = |system| self.reference(system);
        let (switchboard, native) = (reference(System::Switchboard), reference(System::Native));
        let mut targets = Vec::new();
        let mut add = |name: &str, measured: Option<(String, bool)>| {
            let (measured, met) = measured.map_or(("not measured".to_owned(), None), |(m, ok)| (m, Some(ok)));
            targets.push(Target { name: name.to_owned(), measured, met });
        };
        add(
            "instantiation p50 <= 10 us (pooling)",
            self.instantiation.map(|i| (format!("{:.1} us", i.pooling.p50_us), i.pooling.p50_us <= 10.0)),
        );
        add(
            "CPU per call <= 1.15x the native relay",
            switchboard.as_ref().zip(native.as_ref()).map(|(s, n)| {
                let ratio = s.cpu_per_call_minute / n.cpu_per_call_minute;
                (format!("{ratio:.2}x at {} calls", self.reference_calls), ratio <= 1.15)
            }),
        );
        add(
            "added latency per pass <= 15 us p50",
            switchboard.as_ref().zip(native.as_ref()).map(|(s, n)| {
                let added = s.latency.p50_us as i64 - n.latency.p50_us as i64;
                (format!("{added} us at {} calls", self.reference_calls), added <= 15)
            }),
        );
        let switchboard_search = self.search(System::Switchboard);
        add(
            ">= 1,000 concurrent calls, p99 <= 20 ms, 0 lost",
            switchboard_search.map(|s| (format!("{} calls{}", s.max_calls, bound_note(s)), s.max_calls >= 1_000)),
        );
        add(
            ">= 2x the Node relay's calls per core",
            switchboard_search.zip(self.search(System::Node)).map(|(s, n)| {
                let ratio = f64::from(s.max_calls) / f64::from(n.max_calls.max(1));
                (format!("{ratio:.2}x ({} vs {} calls on one core)", s.max_calls, n.max_calls), ratio >= 2.0)
            }),
        );
        add(
            "host memory per live call <= 100 KiB",
            switchboard_search.and_then(Search::best).map(|t| {
                (format!("{:.0} KiB at {} calls", t.rss_per_call_bytes as f64 / 1024.0, t.calls), t.rss_per_call_bytes <= 100 * 1024)
            }),
        );
        self.targets = targets;
    }

    /// The Markdown tables.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let native = self.reference(System::Native);
        let rounds = self.reference_rounds.iter().filter(|t| t.system == System::Switchboard).count();
        let _ = writeln!(
            out,
            "Side by side at {} concurrent calls (median of {} interleaved rounds), then the most calls each carries \
             (p99 <= 20 ms, 0 lost); ratios against the native relay.\n",
            self.reference_calls, rounds
        );
        let _ = writeln!(
            out,
            "| system | p50 | p99 | max | CPU s per call-minute | calls per core (CPU) | RSS per call | frames lost | first audio p50 | most calls |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for search in &self.searches {
            let Some(trial) = self.reference(search.system) else {
                continue;
            };
            let ratio = |value: f64, base: Option<f64>| match base {
                Some(base) if base > 0.0 && search.system != System::Native => {
                    format!(" ({:.2}x)", value / base)
                }
                _ => String::new(),
            };
            let base = native.as_ref();
            let _ = writeln!(
                out,
                "| {} | {}{} | {}{} | {} | {:.3}{} | {:.0} | {} | {} | {} | {}{} |",
                search.system.label(),
                ms(trial.latency.p50_us),
                ratio(trial.latency.p50_us as f64, base.map(|n| n.latency.p50_us as f64)),
                ms(trial.latency.p99_us),
                ratio(trial.latency.p99_us as f64, base.map(|n| n.latency.p99_us as f64)),
                ms(trial.latency.max_us),
                trial.cpu_per_call_minute,
                ratio(trial.cpu_per_call_minute, base.map(|n| n.cpu_per_call_minute)),
                60.0 / trial.cpu_per_call_minute.max(1e-9),
                rss_per_call(search),
                trial.frames_lost,
                ms(trial.first_audio.p50_us),
                search.max_calls,
                bound_note(search),
            );
        }
        if let Some(i) = self.instantiation {
            let _ = writeln!(
                out,
                "\nInstantiation of the voice-pipeline component (store + instance), {} runs: pooling p50 {:.1} us, p99 {:.1} us \
                 (of which host state {:.1} us; drop {:.1} us); on-demand p50 {:.1} us, p99 {:.1} us (drop {:.1} us).",
                i.pooling.iterations,
                i.pooling.p50_us,
                i.pooling.p99_us,
                i.pooling.state_p50_us,
                i.pooling.drop_p50_us,
                i.on_demand.p50_us,
                i.on_demand.p99_us,
                i.on_demand.drop_p50_us
            );
        }
        let _ = writeln!(out, "\n| target | measured | met |\n|---|---|---|");
        for target in &self.targets {
            let met = match target.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(out, "| {} | {} | {met} |", target.name, target.measured);
        }
        let _ = writeln!(
            out,
            "\nEvery trial:\n\n| system | calls | p50 | p99 | max | lost | failed | CPU s/call-min | RSS/call | harness CPU | pass |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for search in &self.searches {
            for t in &search.trials {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.0} KiB | {:.0}% | {} |",
                    search.system.label(),
                    t.calls,
                    ms(t.latency.p50_us),
                    ms(t.latency.p99_us),
                    ms(t.latency.max_us),
                    t.frames_lost,
                    t.failed_calls,
                    t.cpu_per_call_minute,
                    t.rss_per_call_bytes as f64 / 1024.0,
                    t.harness_cpu_share * 100.0,
                    if t.passed { "yes" } else { "no" },
                );
            }
        }
        out
    }
}

/// A one-line summary of a trial, for progress output.
pub fn trial_line(t: &Trial) -> String {
    format!(
        "{:<18} {:>5} calls: p50 {:>8} p99 {:>8} max {:>8}  lost {:>5}  failed {:>3}  CPU {:.3} s/call-min  RSS {:>4.0} KiB/call  harness CPU {:>3.0}%  {}",
        t.system.label(),
        t.calls,
        ms(t.latency.p50_us),
        ms(t.latency.p99_us),
        ms(t.latency.max_us),
        t.frames_lost,
        t.failed_calls,
        t.cpu_per_call_minute,
        t.rss_per_call_bytes as f64 / 1024.0,
        t.harness_cpu_share * 100.0,
        if t.passed { "pass" } else { "FAIL" },
    )
}

fn rss_per_call(search: &Search) -> String {
    search.best().map_or("-".to_owned(), |t| format!("{:.0} KiB (at {})", t.rss_per_call_bytes as f64 / 1024.0, t.calls))
}

fn bound_note(search: &Search) -> &'static str {
    if search.harness_bound {
        " (load generator bound)"
    } else if search.limit_reached {
        " (search limit)"
    } else {
        ""
    }
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1_000.0)
}
