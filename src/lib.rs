//! The `fleetscope` command line: flag groups ([`args`]), one module per subcommand ([`cmd`]),
//! drawing in the terminal ([`chart`], [`top`]), and the HTTP serving every server shares ([`web`]:
//! TLS, basic authentication).
//! Only this package uses `anyhow` and initialises `tracing`; the logic lives in the library crates.

pub mod args;
pub mod chart;
pub mod cmd;
pub mod top;
pub mod web;
