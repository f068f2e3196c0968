//! `native-fetch`: the HTTP benchmark's baseline. The same requests the fetch test guest
//! makes through Switchboard (`time <n> <url>`), made directly with hyper over
//! tokio-rustls: one kept-alive HTTP/1.1 connection, one `GET` after another, each timed
//! from sending to the end of its body. Prints the figures in the guest's format.
//!
//! ```text
//! native-fetch --url https://localhost:9000/ping --ca ca.pem --requests 5000
//! ```

#![allow(clippy::print_stdout, reason = "prints its figures for the benchmark to read")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

#[derive(Parser)]
#[command(about = "Sequential HTTPS GETs over one kept-alive connection, timed (the HTTP benchmark's baseline)")]
struct Args {
    /// The URL to GET (`https://host:port/path`).
    #[arg(long)]
    url: url::Url,
    /// A PEM CA certificate to trust.
    #[arg(long)]
    ca: PathBuf,
    /// Requests to time.
    #[arg(long, default_value_t = 5_000)]
    requests: u32,
    /// Requests made first and not timed.
    #[arg(long, default_value_t = 500)]
    warmup: u32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&args.ca)? {
        roots.add(cert?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = args.url.host_str().context("the URL has a host")?.to_owned();
    let port = args.url.port_or_known_default().context("the URL has a port")?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(ServerName::try_from(host.clone())?, tcp).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let path = args.url[url::Position::BeforePath..].to_owned();
    let authority = format!("{host}:{port}");
    let mut took_ns: Vec<u64> = Vec::with_capacity(args.requests as usize);
    let mut failed = 0u32;
    for i in 0..args.warmup + args.requests {
        let started = Instant::now();
        let request = hyper::Request::get(path.as_str()).header(hyper::header::HOST, authority.as_str()).body(Empty::<Bytes>::new())?;
        sender.ready().await?;
        let outcome = match sender.send_request(request).await {
            Ok(response) => response.into_body().collect().await.map(drop).map_err(anyhow::Error::from),
            Err(error) => Err(error.into()),
        };
        if i < args.warmup {
            continue;
        }
        match outcome {
            Ok(()) => took_ns.push(started.elapsed().as_nanos() as u64),
            Err(_) => failed += 1,
        }
    }
    took_ns.sort_unstable();
    let at = |q: f64| took_ns.get(((took_ns.len() as f64 * q) as usize).min(took_ns.len().saturating_sub(1))).copied().unwrap_or(0) / 1_000;
    let mean = took_ns.iter().sum::<u64>() / (took_ns.len().max(1) as u64) / 1_000;
    println!("time n={} failed={failed} p50_us={} p90_us={} p99_us={} mean_us={mean}", took_ns.len(), at(0.5), at(0.9), at(0.99));
    Ok(())
}
