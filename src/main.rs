//! The `fleetscope` binary: one subcommand per component (see `fleetscope --help`).

use std::process::ExitCode;

/// The shipper's hot path allocates per series and sample; mimalloc measurably beats glibc's
/// allocator there (see the README's Performance section). The `system-allocator` feature keeps
/// the system's, for heap profilers that hook `malloc` (docs/shipper-memory.md).
#[cfg(not(feature = "system-allocator"))]
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
    // Commands that print and end behave as Unix tools in a pipe (`fleetscope blocks ls | head`):
    // end quietly when the reader goes away. Servers keep Rust's default (the signal ignored).
    if matches!(
        cli.command,
        fleetscope::cmd::Command::Query(_)
            | fleetscope::cmd::Command::Sql(_)
            | fleetscope::cmd::Command::Capacity(_)
            | fleetscope::cmd::Command::Blocks(_)
            | fleetscope::cmd::Command::Compact(_)
            | fleetscope::cmd::Command::Import(_)
    ) {
        sigpipe::reset();
    }
    fleetscope::args::init_tracing(&cli.log);
    // `capacity` answers an admission hook: 0 fits, 1 does not, 2 could not tell.
    let failure = if matches!(cli.command, fleetscope::cmd::Command::Capacity(_)) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(fleetscope_query::STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On a worker thread, whose stack is the large one, not on this thread's.
    let command = runtime.spawn(fleetscope::cmd::run(cli.command));
    match runtime
        .block_on(command)
        .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<fleetscope::cmd::NoneFits>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            failure
        }
    }
}
