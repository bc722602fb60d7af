//! The `fleetscope` binary: one subcommand per component (see `fleetscope --help`).

use std::process::ExitCode;

/// The shipper's hot path allocates per series and sample; mimalloc measurably beats glibc's
/// allocator there (see the README's Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> ExitCode {
    let mut cli = fleetscope::cmd::Cli::parse();
    // The demo talks to a person: keep the components' info logs out of its output.
    if matches!(cli.command, fleetscope::cmd::Command::Demo(_))
        && std::env::var_os("FLEETSCOPE_LOG").is_none()
    {
        cli.log.level = "warn".into();
    }
    fleetscope::args::init_tracing(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fleetscope::cmd::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
