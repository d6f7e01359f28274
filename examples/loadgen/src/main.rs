//! `loadgen` binary: parse arguments, run, print the summary.
//!
//! Exit codes: 0 when the run happened (even if requests failed), 2 for bad
//! arguments, 1 when the receiver could not be reached at all.

use std::process::ExitCode;

use clap::Parser;
use loadgen::args::Args;
use loadgen::run;

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let json = cfg.args.json;
        if let Err(e) = run::preflight(&cfg).await {
            eprintln!("loadgen: {e:#}");
            return ExitCode::FAILURE;
        }
        let summary = match run::run(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("loadgen: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        if json {
            match serde_json::to_string(&summary) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("loadgen: cannot serialize the summary: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            print!("{summary}");
        }
        if summary.responses == 0 && summary.requests_sent > 0 {
            eprintln!(
                "loadgen: no request got a response from {} (see errors above)",
                summary.endpoint
            );
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    })
}
