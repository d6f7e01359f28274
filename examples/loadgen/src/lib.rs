//! `loadgen`: an OTLP trace load generator.
//!
//! The binary (`src/main.rs`) is a thin wrapper around this library so that
//! tests can drive a run in-process:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use clap::Parser;
//! let cfg = loadgen::args::Args::parse_from(["loadgen", "--spans", "1000"]).into_config()?;
//! loadgen::run::preflight(&cfg).await?;
//! let summary = loadgen::run::run(cfg).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```
//!
//! Modules: [`args`] (CLI), [`generate`] (span data, encoding, ID patching),
//! [`workload`] (pre-built bodies), [`grpc`] and [`http`] (transports),
//! [`transport`] (common outcome type), [`run`] (load loop), [`stats`]
//! (counters, histograms, summary).

pub mod args;
pub mod generate;
pub mod grpc;
pub mod http;
pub mod run;
pub mod stats;
pub mod transport;
pub mod workload;
