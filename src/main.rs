//! The `fleetscope` binary: one subcommand per component (see `fleetscope --help`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = fleetscope::cmd::Cli::parse();
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
