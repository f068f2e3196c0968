//! `switchboard-bench`: runs the side-by-side comparison (default), the soak, or the
//! instantiation benchmark, and writes the results (Markdown, JSON, SVG) to `--out`.
//!
//! The harness (callers and fake Deepgram) runs on one thread pinned to one CPU; each
//! system under test is its own process pinned to another, so every system gets exactly
//! one core and the figures are per core.

#![allow(clippy::print_stdout, reason = "a command-line report")]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use switchboard_bench::fake_deepgram::FakeDeepgram;
use switchboard_bench::report::{Machine, Report, trial_line};
use switchboard_bench::soak::{self, SoakPlan};
use switchboard_bench::sut::{self, Environment, System};
use switchboard_bench::trial::{self, Phases};
use switchboard_bench::{chart, fetch_latency, instantiate, languages, search, speak_latency};
use switchboard_sim::tls::TestCa;

#[derive(Parser)]
#[command(about = "Switchboard's benchmarks: Switchboard vs a native Rust relay vs a Node.js relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Clone)]
struct Common {
    /// Where results go.
    #[arg(long, global = true, default_value = "target/bench")]
    out: PathBuf,
    /// CPUs (taskset list) for the system under test; default `1` on a machine with two
    /// or more cores, none (unpinned) otherwise.
    #[arg(long, global = true)]
    system_cpus: Option<String>,
    /// CPU for the harness; default `0` on a machine with two or more cores.
    #[arg(long, global = true)]
    harness_cpu: Option<usize>,
    /// Directory of the `switchboard` and `native-relay` binaries (default: beside this one).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// The three systems side by side, with the step search, and the instantiation benchmark.
    Compare(CompareArgs),
    /// N calls for M minutes through one system: memory over time, frames lost, errors.
    Soak(SoakArgs),
    /// Switchboard's calls alone, then beside hostile guests (loop, memory bomb, trap,
    /// connect storm, oversize message): do they keep their latency and lose nothing?
    Neighbours {
        /// Measured calls.
        #[arg(long, default_value_t = 200)]
        calls: u32,
        /// Concurrent attackers, each opening one hostile call after another.
        #[arg(long, default_value_t = 2)]
        attackers: u32,
        /// Measurement window, seconds.
        #[arg(long, default_value_t = 20)]
        measure_secs: u64,
    },
    /// The latency a `wasi:http` request gains through Switchboard, against native hyper.
    Http {
        /// Requests timed per round and system.
        #[arg(long, default_value_t = 5_000)]
        requests: u32,
        /// Requests made first in each round and not timed.
        #[arg(long, default_value_t = 500)]
        warmup: u32,
        /// Rounds, alternating the systems.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Speech-back latency: a TTS audio frame leaving Deepgram to its `media` message
    /// reaching Twilio, through the voice agent vs the native relay `native-speak`.
    Speak {
        /// 20 ms frames per flush (two flushes per call).
        #[arg(long, default_value_t = 500)]
        frames: u32,
        /// Rounds, alternating the systems.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// The relay component in Rust, TypeScript and Python side by side: size,
    /// instantiation time, host memory per call, host CPU per relayed message.
    Languages {
        /// Concurrent relayed calls per language.
        #[arg(long, default_value_t = 50)]
        calls: u32,
        /// Seconds the calls are measured for.
        #[arg(long, default_value_t = 10)]
        measure_secs: u64,
        /// Instantiations timed per language.
        #[arg(long, default_value_t = 2_000)]
        iterations: u32,
    },
    /// Instantiation time of the voice-pipeline component, pooling vs on-demand.
    Instantiate {
        /// Instances to time per strategy.
        #[arg(long, default_value_t = 5_000)]
        iterations: u32,
    },
}

#[derive(Args, Clone)]
struct CompareArgs {
    /// Systems to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "switchboard,native,node")]
    systems: Vec<System>,
    /// Calls at which the systems are compared side by side.
    #[arg(long, default_value_t = 200)]
    reference_calls: u32,
    /// First step of the search.
    #[arg(long, default_value_t = 100)]
    start_calls: u32,
    /// Most calls tried.
    #[arg(long, default_value_t = 3_200)]
    max_calls: u32,
    /// Measurement window per trial, seconds.
    #[arg(long, default_value_t = 10)]
    measure_secs: u64,
    /// Warm-up after the ramp, seconds.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// Interleaved rounds at the reference calls (each system in turn, per round).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Instances timed in the instantiation benchmark (0 skips it).
    #[arg(long, default_value_t = 5_000)]
    iterations: u32,
}

#[derive(Args, Clone)]
struct SoakArgs {
    /// The system under test.
    #[arg(long, default_value = "switchboard")]
    system: System,
    /// Concurrent calls.
    #[arg(long, default_value_t = 200)]
    calls: u32,
    /// Minutes to run.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Average call length, seconds.
    #[arg(long, default_value_t = 60)]
    call_secs: u64,
    /// Seconds between reports.
    #[arg(long, default_value_t = 30)]
    every_secs: u64,
}

fn main() -> anyhow::Result<()> {
    // With no subcommand, `compare` runs.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_none_or(|first| first.to_string_lossy().starts_with('-') && first != "--help" && first != "-h") {
        args.insert(1, "compare".into());
    }
    let cli = Cli::parse_from(args);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let pinned = cores >= 2;
    let harness_cpu = cli.common.harness_cpu.or(pinned.then_some(0));
    let system_cpus = cli.common.system_cpus.clone().or(pinned.then(|| "1".to_owned()));
    if let Some(cpu) = harness_cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(cli, Machine::here(cores, system_cpus, harness_cpu)))
}

async fn run(cli: Cli, machine: Machine) -> anyhow::Result<()> {
    let out = cli.common.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let command = cli.command;
    if let Command::Instantiate { iterations } = command {
        let figures = instantiate::run(iterations).await?;
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(());
    }

    let bin_dir = match cli.common.bin_dir.clone() {
        Some(dir) => dir,
        None => std::env::current_exe()?.parent().context("the bench binary has no folder")?.to_owned(),
    };
    let work_dir = out.join("work");
    std::fs::create_dir_all(&work_dir)?;
    if let Command::Http { requests, warmup, rounds } = command {
        let plan = fetch_latency::Plan {
            requests,
            warmup,
            rounds,
            bin_dir,
            work_dir: std::path::absolute(&work_dir)?,
            cpus: machine.system_cpus.clone(),
            fetch_wasm: PathBuf::from(env!("GUEST_FETCH_GUEST")),
        };
        println!(
            "machine: {} ({} cores); systems on CPU {:?}, harness on CPU {:?}",
            machine.cpu, machine.cores, machine.system_cpus, machine.harness_cpu
        );
        println!("http: {rounds} rounds of {requests} sequential GETs (after {warmup} untimed) per system");
        let outcome = fetch_latency::run(&plan, |line| println!("{line}")).await?;
        let table = outcome.table();
        println!("{table}");
        std::fs::write(out.join("http.md"), &table)?;
        std::fs::write(out.join("http.json"), serde_json::to_string_pretty(&outcome)?)?;
        println!("written: {}", out.join("http.md").display());
        return Ok(());
    }

    if let Command::Languages { calls, measure_secs, iterations } = command {
        let plan = languages::Plan {
            calls,
            measure_secs,
            iterations,
            bin_dir,
            work_dir: std::path::absolute(&work_dir)?,
            cpus: machine.system_cpus.clone(),
            components: vec![
                ("Rust", PathBuf::from(env!("GUEST_RELAY_GUEST"))),
                ("TypeScript", PathBuf::from(env!("GUEST_TS_RELAY"))),
                ("Python", PathBuf::from(env!("GUEST_PY_RELAY"))),
            ],
        };
        println!(
            "machine: {} ({} cores); systems on CPU {:?}, harness on CPU {:?}",
            machine.cpu, machine.cores, machine.system_cpus, machine.harness_cpu
        );
        let figures = languages::run(&plan, |line| println!("{line}")).await?;
        let table = languages::table(&figures);
        println!("{table}");
        std::fs::write(out.join("languages.md"), &table)?;
        std::fs::write(out.join("languages.json"), serde_json::to_string_pretty(&figures)?)?;
        println!("written: {}", out.join("languages.md").display());
        return Ok(());
    }

    if let Command::Speak { frames, rounds } = command {
        let plan =
            speak_latency::Plan { frames, rounds, bin_dir, work_dir: std::path::absolute(&work_dir)?, cpus: machine.system_cpus.clone() };
        println!(
            "machine: {} ({} cores); systems on CPU {:?}, harness on CPU {:?}",
            machine.cpu, machine.cores, machine.system_cpus, machine.harness_cpu
        );
        println!("speak: {rounds} rounds of one call per system, {} frames of 20 ms each", frames * 2);
        let outcome = speak_latency::run(&plan, |line| println!("{line}")).await?;
        let table = speak_latency::table(&outcome);
        println!("{table}");
        std::fs::write(out.join("speak.md"), &table)?;
        std::fs::write(out.join("speak.json"), serde_json::to_string_pretty(&outcome)?)?;
        println!("written: {}", out.join("speak.md").display());
        return Ok(());
    }

    let ca = TestCa::new()?;
    let api_key = "bench-key";
    let deepgram = FakeDeepgram::start(ca.server_config()?, api_key).await?;
    let environment = Environment {
        deepgram_url: deepgram.url(),
        deepgram_origin: deepgram.origin(),
        ca_pem: ca.pem_path().to_owned(),
        api_key: api_key.to_owned(),
        work_dir: std::path::absolute(&work_dir)?,
        bin_dir,
        node_relay_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node-relay"),
        cpus: machine.system_cpus.clone(),
        hostile_wasm: matches!(command, Command::Neighbours { .. }).then(|| env!("GUEST_HOSTILE_GUEST").to_owned()),
    };
    println!(
        "machine: {} ({} cores); systems on CPU {:?}, harness on CPU {:?}",
        machine.cpu, machine.cores, machine.system_cpus, machine.harness_cpu
    );

    match command {
        Command::Soak(args) => {
            let plan = SoakPlan {
                system: args.system,
                calls: args.calls,
                duration: Duration::from_secs_f64(args.minutes * 60.0),
                call_length: Duration::from_secs(args.call_secs),
                interval: Duration::from_secs(args.every_secs),
            };
            if let Some(why) = sut::unavailable(plan.system, &environment) {
                anyhow::bail!("{} cannot run: {why}", plan.system.label());
            }
            println!("soak: {} calls through {} for {:.1} min", plan.calls, plan.system.label(), args.minutes);
            let report = soak::run(plan, &environment, &deepgram, |s| {
                println!(
                    "{:>5} s  RSS {:>7.1} MiB  CPU {:>5.1}%  live {:>4}  done {:>6}  p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>8.3} ms  failed {}",
                    s.at_s,
                    s.rss_bytes as f64 / 1_048_576.0,
                    s.cpu_share * 100.0,
                    s.live_calls,
                    s.calls_done,
                    s.latency.p50_us as f64 / 1_000.0,
                    s.latency.p99_us as f64 / 1_000.0,
                    s.latency.max_us as f64 / 1_000.0,
                    s.failed_calls,
                );
            })
            .await?;
            let rss: Vec<u64> = report.samples.iter().map(|s| s.rss_bytes).collect();
            println!(
                "soak done: {} calls, {} frames sent, {} lost, {} duplicated, {} failed calls; RSS first {:.1} MiB, last {:.1} MiB, max {:.1} MiB; \
                 latency p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
                report.calls_done,
                report.frames_sent,
                report.frames_lost,
                report.duplicates,
                report.failed_calls,
                rss.first().copied().unwrap_or(0) as f64 / 1_048_576.0,
                rss.last().copied().unwrap_or(0) as f64 / 1_048_576.0,
                rss.iter().copied().max().unwrap_or(0) as f64 / 1_048_576.0,
                report.latency.p50_us as f64 / 1_000.0,
                report.latency.p99_us as f64 / 1_000.0,
                report.latency.max_us as f64 / 1_000.0,
            );
            for error in &report.errors {
                println!("  error: {error}");
            }
            let path = out.join("soak.json");
            std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
            println!("written: {}", path.display());
            anyhow::ensure!(report.frames_lost == 0 && report.failed_calls == 0, "the soak lost frames or calls");
        }
        Command::Compare(args) => compare(args, machine, &environment, &deepgram, &out).await?,
        Command::Neighbours { calls, attackers, measure_secs } => {
            let phases = Phases {
                ramp_per_call: Duration::from_millis(4),
                min_ramp: Duration::from_secs(1),
                warmup: Duration::from_secs(3),
                measure: Duration::from_secs(measure_secs),
            };
            println!("== {calls} calls through Switchboard alone, then beside {attackers} attackers");
            let alone = trial::run_beside(System::Switchboard, calls, 0, &environment, &deepgram, phases).await?;
            println!("{}", trial_line(&alone));
            let beside = trial::run_beside(System::Switchboard, calls, attackers, &environment, &deepgram, phases).await?;
            println!("{}", trial_line(&beside));
            if let Some(attacks) = &beside.attacks {
                println!("hostile calls: {} ({})", attacks.total(), serde_json::to_string(&attacks.outcomes)?);
            }
            let path = out.join("neighbours.json");
            std::fs::write(&path, serde_json::to_string_pretty(&serde_json::json!({ "alone": alone, "beside": beside }))?)?;
            println!("written: {}", path.display());
        }
        Command::Instantiate { .. } | Command::Http { .. } | Command::Speak { .. } | Command::Languages { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

async fn compare(
    args: CompareArgs,
    machine: Machine,
    environment: &Environment,
    deepgram: &FakeDeepgram,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let phases = Phases {
        ramp_per_call: Duration::from_millis(4),
        min_ramp: Duration::from_secs(1),
        warmup: Duration::from_secs(args.warmup_secs),
        measure: Duration::from_secs(args.measure_secs),
    };
    let mut searches = Vec::new();
    for &system in &args.systems {
        if let Some(why) = sut::unavailable(system, environment) {
            println!("skipping {}: {why}", system.label());
            continue;
        }
        println!("== {}", system.label());
        let limits = (args.start_calls, args.max_calls, args.reference_calls);
        searches.push(search::run(system, environment, deepgram, phases, limits, |t| println!("{}", trial_line(t))).await?);
    }
    let mut reference_rounds = Vec::new();
    for round in 1..=args.rounds {
        println!("== round {round} of {} at {} calls", args.rounds, args.reference_calls);
        for search in &searches {
            let trial = trial::run(search.system, args.reference_calls, environment, deepgram, phases).await?;
            println!("{}", trial_line(&trial));
            reference_rounds.push(trial);
        }
    }
    let instantiation = if args.iterations > 0 {
        println!("== instantiation ({} instances per strategy)", args.iterations);
        Some(instantiate::run(args.iterations).await?)
    } else {
        None
    };
    let mut report =
        Report { machine, phases, reference_calls: args.reference_calls, searches, reference_rounds, instantiation, targets: Vec::new() };
    report.check_targets();
    let markdown = report.markdown();
    println!("\n{markdown}");
    std::fs::write(out.join("results.md"), &markdown)?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&report)?)?;
    chart::draw(&report.searches, &out.join("latency.svg"))?;
    println!("written: {0}/results.md, {0}/results.json, {0}/latency.svg", out.display());
    Ok(())
}
