//! `teletrace`: runs a trace pipeline described in YAML, in the OpenTelemetry Collector's
//! config format. With no `--config`, runs the embedded all-in-one preset.

fn main() -> anyhow::Result<()> {
    teletrace::main_with(|| {})
}
