//! Test guest that misbehaves on purpose. The `mode` setting picks how:
//!
//! - `loop`: spins forever without yielding (the CPU budget must stop it);
//! - `memory-bomb`: allocates until memory runs out (the memory limit must stop it);
//! - `trap`: panics, which traps the instance;
//! - `connect-then-trap`: opens a connection to `target`, then traps while holding it;
//! - `ignore`: never reads its inbound socket (the host must stop reading for it);
//! - `connect`: connects to the `target` setting and reports the outcome to the caller as
//!   a text message (`ok` or the error), e.g. a target not allowed or `ws://` where only
//!   `wss://` is allowed;
//! - `connect-storm`: starts `count` connects to `target` at once and reports how many
//!   were accepted and how many refused with `connection-limit`;
//! - `print`: prints `print_mib` MiB (default 10) to stdout and stderr;
//! - `never-return`: never reads, never returns, whatever happens to its sockets;
//! - `snoop`: reports everything the guest can see that could carry a secret: settings,
//!   environment, arguments, files, the request's headers, and what a connect to `target`
//!   (with a guest-chosen `authorization` header) returns.
//!
//! Every report is one text message to the caller, then the guest waits for the caller to
//! close.

use switchboard_guest::io::finish_connect;
use switchboard_guest::outbound::{ConnectOptions, connect};
use switchboard_guest::{Connection, ErrorCode, Handler, Message, RequestInfo, Value, mark, setting};

struct Hostile;

impl Handler for Hostile {
    fn handle(request: RequestInfo, inbound: Connection) {
        let mode = setting("mode").unwrap_or_default();
        mark("hostile.mode", &[("mode", Value::from(mode.clone()))]);
        let report = match mode.as_str() {
            "loop" => spin(),
            "memory-bomb" => allocate_forever(),
            "trap" => panic!("hostile guest traps on purpose"),
            "ignore" => {
                switchboard_guest::io::timer_ms(3_600_000).block();
                String::new()
            }
            "connect" => connect_once(),
            "connect-then-trap" => {
                let held = connect(&target(), &no_options()).and_then(|future| finish_connect(&future));
                mark("hostile.connected", &[("ok", Value::from(held.is_ok().to_string()))]);
                panic!("hostile guest traps while holding a connection")
            }
            "connect-storm" => connect_storm(),
            "snoop" => snoop(&request),
            "print" => print_lots(),
            "never-return" => never_return(),
            other => format!("unknown mode {other:?}"),
        };
        let _ = inbound.send(&Message::Text(report));
        wait_for_close(&inbound);
    }
}

/// Prints `print_mib` MiB (default 10) to stdout and stderr with `print!`, which panics
/// (traps) if a write fails, then reports `printed`.
#[allow(clippy::print_stdout, reason = "printing is what this mode tests")]
fn print_lots() -> String {
    let mib: usize = setting("print_mib").and_then(|m| m.parse().ok()).unwrap_or(10);
    let line = "x".repeat(1023);
    for index in 0..mib * 1024 {
        if index % 2 == 0 {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
    "printed".to_owned()
}

/// Ignores the inbound socket's end and never returns (the host must stop it).
fn never_return() -> String {
    loop {
        switchboard_guest::io::timer_ms(3_600_000).block();
    }
}

fn spin() -> String {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn allocate_forever() -> String {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[0] = 1;
        hoard.push(std::hint::black_box(block));
    }
}

fn target() -> String {
    setting("target").unwrap_or_else(|| "wss://not-configured.invalid/".to_owned())
}

fn no_options() -> ConnectOptions {
    ConnectOptions { headers: Vec::new(), subprotocols: Vec::new(), timeout: None, leg: None }
}

fn connect_once() -> String {
    match connect(&target(), &no_options()).and_then(|future| finish_connect(&future)) {
        Ok(_connection) => "ok".to_owned(),
        Err(error) => format!("{error:?}"),
    }
}

fn connect_storm() -> String {
    let count: usize = setting("count").and_then(|c| c.parse().ok()).unwrap_or(100);
    let mut accepted = Vec::new();
    let mut limited = 0;
    let mut other = 0;
    for _ in 0..count {
        match connect(&target(), &no_options()) {
            Ok(future) => accepted.push(future),
            Err(ErrorCode::ConnectionLimit) => limited += 1,
            Err(_) => other += 1,
        }
    }
    format!("accepted={} limited={limited} other={other}", accepted.len())
}

fn snoop(request: &RequestInfo) -> String {
    let mut seen = Vec::new();
    seen.push(format!("settings={:?}", switchboard_guest::bindings::wasi::config::store::get_all()));
    seen.push(format!("env={:?}", std::env::vars().collect::<Vec<_>>()));
    seen.push(format!("args={:?}", std::env::args().collect::<Vec<_>>()));
    seen.push(format!("files={:?}", std::fs::read_dir("/").map(|d| d.count())));
    seen.push(format!("request-headers={:?}", request.headers));
    if let Some(address) = setting("tcp_target") {
        // A plain socket through wasi:sockets, around the host's policy: must fail.
        seen.push(format!("tcp={:?}", std::net::TcpStream::connect(address.as_str()).map(|_| "connected")));
    }
    let options = ConnectOptions {
        headers: vec![("authorization".into(), "guest-chosen".into())],
        subprotocols: Vec::new(),
        timeout: None,
        leg: None,
    };
    match connect(&target(), &options).and_then(|future| finish_connect(&future)) {
        Ok(connection) => {
            seen.push(format!("protocol={:?}", connection.protocol()));
            // Whatever the server sends first (a server that reflects the request, say).
            let ready = connection.subscribe();
            let timeout = switchboard_guest::io::timer_ms(5_000);
            switchboard_guest::io::wait_any(&[&ready, &timeout]);
            drop(ready);
            seen.push(format!("first-message={:?}", connection.receive()));
        }
        Err(error) => seen.push(format!("connect={error:?}")),
    }
    seen.join("\n")
}

fn wait_for_close(inbound: &Connection) {
    loop {
        match inbound.receive() {
            Ok(Some(_)) => {}
            Ok(None) => inbound.subscribe().block(),
            Err(_) => return,
        }
    }
}

switchboard_guest::export_handler!(Hostile);
