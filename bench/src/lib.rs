//! Switchboard's benchmark harness: simulated Twilio callers at real-time pacing, a fake
//! Deepgram over real TLS that times every frame, the three systems under test started as
//! processes, the step search for the most calls each carries, the instantiation benchmark,
//! the soak run, the HTTP latency benchmark, the languages benchmark, and the reports (table, JSON, SVG chart).

pub mod caller;
pub mod chart;
pub mod fake_deepgram;
pub mod fetch_latency;
pub mod instantiate;
pub mod languages;
pub mod neighbours;
pub mod procfs;
pub mod report;
pub mod search;
pub mod soak;
pub mod speak_latency;
pub mod stamp;
pub mod sut;
pub mod trial;
pub mod wire;
