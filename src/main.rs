//! The `fleetscope` binary: one subcommand per component (see `fleetscope --help`).

use std::process::ExitCode;

/// The system's allocator by default: with requests decoded into one buffer each, it keeps the
/// shipper at half of mimalloc's resident memory for about the same CPU (docs/shipper-memory.md).
/// The `mimalloc` feature trades that memory for a little CPU.
#[cfg(feature = "mimalloc")]
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
    match cli.command {
        fleetscope::cmd::Command::Shipper(_) => spawn_trimmer(),
        fleetscope::cmd::Command::Querier(_) => keep_query_memory(),
        _ => {}
    }
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

/// Free memory at the top of its heap the querier's allocator keeps instead of handing it back.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const QUERY_HEAP_KEPT: i32 = 64 << 20;

/// A query allocates and frees the same buffers (decompressed Parquet pages, decoded chunks)
/// every time. By default glibc maps buffers over 128 KiB afresh and hands back the top of its
/// heap once 128 KiB of it are free, so each query faulted its pages in again (16% of a small
/// instant query's CPU); the querier takes buffers up to 1 MiB from its heap and keeps up to
/// [`QUERY_HEAP_KEPT`] of it free.
#[allow(unsafe_code)]
fn keep_query_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    // SAFETY: mallopt only sets the allocator's tunables, under its lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, QUERY_HEAP_KEPT);
        libc::mallopt(libc::M_TOP_PAD, QUERY_HEAP_KEPT / 4);
    }
}

/// How often the shipper hands the memory its allocator holds free back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// glibc's allocator keeps memory freed in the middle of its heaps (a block cut and uploaded) as
/// its own, so the shipper's resident memory would stay at its highest mark; `malloc_trim`
/// returns those pages, on a thread of its own every [`TRIM_EVERY`] (a walk of the free lists:
/// milliseconds). The querier does the opposite ([`keep_query_memory`]).
#[allow(unsafe_code)]
fn spawn_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    {
        let spawned = std::thread::Builder::new()
            .name("fleetscope-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_EVERY);
                    // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks.
                    unsafe { libc::malloc_trim(0) };
                }
            });
        if let Err(e) = spawned {
            eprintln!("warning: memory trimming not started: {e}");
        }
    }
}
