//! A Teletrace distribution with the example `name_prefix` processor linked in: every
//! standard component plus this crate's.

fn main() -> anyhow::Result<()> {
    teletrace::main_with(custom_component::link)
}
