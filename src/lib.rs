//! The `teletrace` distribution: the command-line interface over every component family.
//!
//! A custom distribution links its own component crates and calls [`main_with`]:
//!
//! ```no_run
//! fn main() -> anyhow::Result<()> {
//!     // my_components::link();
//!     teletrace::main_with(|| {})
//! }
//! ```

pub mod cli;

use clap::Parser;

/// Links every component family shipped with Teletrace.
pub fn link_all() {
    teletrace_receivers::link();
    teletrace_processors::link();
    teletrace_exporters::link();
    teletrace_extensions::link();
}

/// Runs the CLI: parses arguments, runs the command on a Tokio runtime and exits with
/// its code. `link` is called first, so a distribution can make sure its own component
/// crates are linked.
pub fn main_with(link: impl FnOnce()) -> anyhow::Result<()> {
    link_all();
    link();
    let args = cli::Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(cli::run(args))?;
    drop(runtime);
    std::process::exit(code);
}
