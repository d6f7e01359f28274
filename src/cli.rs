//! Command-line interface: `run` (the default), `validate`, `components`, `print-config`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::time::Duration;
use teletrace_core::config::{self, ConfigSource};
use teletrace_core::telemetry::{self, Metrics};
use teletrace_core::{registry, Kind, Service};

/// The all-in-one preset, used when no `--config` is given.
pub const ALL_IN_ONE: &str = include_str!("../configs/teletrace-all-in-one.yaml");

#[derive(Parser, Debug)]
#[command(
    name = "teletrace",
    version,
    about = "Trace pipeline and trace store: OTLP in, spans stored in SQLite, a query API and web UI.",
    long_about = "Runs a trace pipeline described in YAML, in the OpenTelemetry Collector's config format \
(receivers, processors, exporters, extensions, service). With no --config it runs the embedded \
all-in-one preset: OTLP on 4317 (gRPC) and 4318 (HTTP), spans stored in SQLite (embedded_spans.db), \
and on http://localhost:8080 the web UI, the Teletrace v1 API and the Jaeger query API (/api).\n\n\
Environment variables in config values are expanded: ${env:VAR}, ${VAR}, ${env:VAR:-default}; $$ is a literal $.",
    after_help = "Examples:\n  teletrace                                   run the all-in-one preset\n  \
teletrace --config pipeline.yaml            run a pipeline\n  \
teletrace --config base.yaml --config prod.yaml --set exporters::debug::verbosity=detailed\n  \
teletrace validate --config pipeline.yaml   check a config without starting anything\n  \
teletrace components                        list linked components"
)]
pub struct Args {
    /// Config source; repeat to merge several in order (later wins). A file path,
    /// `file:PATH`, `env:VAR` (YAML in a variable) or `yaml:INLINE`. Default: the
    /// embedded all-in-one preset.
    #[arg(long = "config", short = 'c', global = true, value_name = "URI")]
    pub configs: Vec<String>,

    /// Override one config value after merging, e.g. `exporters::debug::verbosity=detailed`
    /// (`.` also separates keys). Repeatable.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub sets: Vec<String>,

    /// How long shutdown may take to drain receivers, processors and exporters after
    /// SIGINT/SIGTERM, e.g. `30s`.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug, Clone, Copy)]
pub enum Command {
    /// Run the pipeline until SIGINT or SIGTERM (the default).
    Run,
    /// Check the config (every key, every reference, every component's values) and build
    /// the components without starting them; exits non-zero on any error.
    Validate,
    /// List every linked component by kind, with its stability.
    Components,
    /// Print the resolved config (sources merged, --set applied, variables expanded).
    PrintConfig,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    config::duration::parse(s)
}

fn sources(args: &Args) -> Vec<ConfigSource> {
    if args.configs.is_empty() {
        vec![ConfigSource::Embedded {
            name: "teletrace-all-in-one (embedded)".into(),
            text: ALL_IN_ONE.into(),
        }]
    } else {
        args.configs
            .iter()
            .map(|c| ConfigSource::parse(c))
            .collect()
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs the command; returns the process exit code.
pub async fn run(args: Args) -> Result<i32> {
    let command = args.command.unwrap_or(Command::Run);
    if let Command::Components = command {
        print_components();
        return Ok(0);
    }
    let raw = match config::load_merged(&sources(&args), &args.sets, &env_lookup) {
        Ok(raw) => raw,
        Err(e) => {
            eprintln!("Error: invalid configuration:\n  {e}");
            return Ok(1);
        }
    };
    if let Command::PrintConfig = command {
        print!(
            "{}",
            serde_yaml::to_string(&raw).context("printing the config")?
        );
        return Ok(0);
    }
    let resolved = match config::resolve(&raw) {
        Ok(r) => r,
        Err(errors) => {
            eprint!("Error: {errors}");
            return Ok(1);
        }
    };
    telemetry::init_logging(&resolved.telemetry.logs);
    let mut service = match Service::build(&resolved, Metrics::new()) {
        Ok(s) => s,
        Err(errors) => {
            eprint!("Error: {errors}");
            return Ok(1);
        }
    };
    if let Command::Validate = command {
        println!("config is valid: {} pipeline(s)", resolved.pipelines.len());
        return Ok(0);
    }
    if let Err(e) = service.start().await {
        tracing::error!(error = %e, "failed to start");
        eprintln!("Error: {e}");
        return Ok(1);
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    service.shutdown(args.shutdown_timeout).await;
    tracing::info!("shutdown complete");
    Ok(0)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; waiting for Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn print_components() {
    for kind in Kind::ALL {
        println!("{}:", kind.section());
        let mut regs: Vec<_> = registry::all().filter(|r| r.kind() == kind).collect();
        regs.sort_by_key(|r| r.type_name);
        for r in regs {
            let aliases = if r.aliases.is_empty() {
                String::new()
            } else {
                format!(" (alias {})", r.aliases.join(", "))
            };
            println!(
                "  {:<22} {:<12} {}{}",
                r.type_name,
                r.stability.to_string(),
                r.description,
                aliases
            );
        }
    }
}
