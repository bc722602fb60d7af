//! The `fleetscope` command line: flag groups ([`args`]) and one module per subcommand ([`cmd`]).
//! Only this package uses `anyhow` and initialises `tracing`; the logic lives in the library crates.

pub mod args;
pub mod cmd;
