//! Benchmark: time from deploying a component version to the first call served by it.
//!
//! ```text
//! cargo run --release -p switchboard-harness --example swap_latency [-- ROUNDS]
//! ```
//!
//! A host on loopback with an artifact store serves the `versioned` test guests. Each
//! round uploads the other version through the admin API and times (a) the upload until
//! the new version is current and (b) from the start of the upload to a new call's
//! `version:` banner. The first upload of each version compiles it ("cold"); later ones
//! find it in the store ("precompiled"). The baseline is a call on an unchanged version,
//! run side by side in the same rounds.

use std::time::{Duration, Instant};

use switchboard_harness::{ComponentSpec, TestClient, TestHost, guests};

const TOKEN: &str = "bench-admin-token-0123456789";

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn first_call(host: &TestHost) -> anyhow::Result<String> {
    let mut client = TestClient::connect(&host.url("/call")).await?;
    let banner = client.next_text().await?;
    client.close(1000, "").await?;
    Ok(banner)
}

#[tokio::main]
#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let data = tempfile::tempdir()?;
    let host = TestHost::builder()
        .admin_token(TOKEN)
        .data_dir(data.path())
        .route("/call", ComponentSpec::new("app", guests::VERSIONED_V1))
        .start()
        .await?;
    let versions = [std::fs::read(guests::VERSIONED_V2)?, std::fs::read(guests::VERSIONED_V1)?];
    let names = ["version:v2", "version:v1"];
    let (mut cold_deploy, mut cold_first) = (Vec::new(), Vec::new());
    let (mut warm_deploy, mut warm_first, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let which = round % 2;
        let started = Instant::now();
        let answer = host.operator(Some(TOKEN))?.upload("app", versions[which].clone()).await?;
        let deployed = started.elapsed();
        let banner = first_call(&host).await?;
        let first = started.elapsed();
        anyhow::ensure!(banner == names[which], "round {round}: expected {}, got {banner}", names[which]);
        if answer["compiled"] == "cached" {
            warm_deploy.push(deployed);
            warm_first.push(first);
        } else {
            cold_deploy.push(deployed);
            cold_first.push(first);
        }
        let started = Instant::now();
        first_call(&host).await?;
        baseline.push(started.elapsed());
    }
    println!("swap latency over {rounds} rounds (host and client on one machine, loopback)\n");
    println!("{:<38} {:>7} {:>10} {:>10}", "measure", "samples", "p50 ms", "p99 ms");
    let mut rows = vec![
        ("baseline: a call, no deploy", baseline),
        ("cold: upload -> current (compiles)", cold_deploy),
        ("cold: upload -> first call served", cold_first),
        ("precompiled: upload -> current", warm_deploy),
        ("precompiled: upload -> first call", warm_first),
    ];
    let base_p50 = percentile(&mut rows[0].1.clone(), 0.5);
    for (name, samples) in &mut rows {
        if samples.is_empty() {
            continue;
        }
        let p50 = percentile(samples, 0.5);
        let p99 = percentile(samples, 0.99);
        println!("{name:<38} {:>7} {:>10.2} {:>10.2}   ({:.1}x baseline)", samples.len(), ms(p50), ms(p99), ms(p50) / ms(base_p50));
    }
    Ok(())
}
