//! `teletrace`: runs a trace pipeline described in YAML, in the OpenTelemetry Collector's
//! config format. With no `--config`, runs the embedded all-in-one preset.

mod cli;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    teletrace_receivers::link();
    teletrace_processors::link();
    teletrace_exporters::link();
    teletrace_extensions::link();
    let args = cli::Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(cli::run(args))?;
    drop(runtime);
    std::process::exit(code);
}
