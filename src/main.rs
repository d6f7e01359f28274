//! `teletrace`: runs a trace pipeline described in YAML, in the OpenTelemetry Collector's
//! config format. With no `--config`, runs the embedded all-in-one preset.

use teletrace_core::allocator;

/// mimalloc (see `teletrace_core::allocator`).
#[global_allocator]
static GLOBAL: allocator::Allocator = allocator::ALLOCATOR;

fn main() -> anyhow::Result<()> {
    allocator::purge_freed_memory_at_once();
    // SAFETY: first thing in main, before any thread or SQLite connection exists.
    unsafe { teletrace_exporters::sqlite::allocate_with_mimalloc() };
    teletrace::main_with(|| {})
}
